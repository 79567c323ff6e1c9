"""`kraken`: Kraken spot, market data and live trading (DESIGN.md section 12).

Native trio: `httpx` for REST, `trio-websocket` for websocket v2.

- `get_mkt_info` / `symbol_search`: pairs from `GET /0/public/AssetPairs`
  (exact ticks from `tick_size`/`lot_decimals`; Kraken's `XBT`/`XDG` are
  `btc`/`doge`: `btcusd.kraken`, `dogeusd.kraken`, `pepeusd.kraken`).
- `open_history`: 60 s bars from `/0/public/OHLC` (Kraken serves only the
  last 720), older ones and 1 s bars built from `/0/public/Trades`.
- `stream_quotes`: websocket v2 `ticker` (on every touch change) + `trade`,
  healing itself after disconnects.
- `trades_dialogue` (`REPORTS_ORDERS`): GTC limit orders over the
  authenticated websocket (`add_order`, `amend_order`, `cancel_order`),
  the `executions` channel, its snapshot as the order report.

Settings: `brokers.toml` `[kraken]` (`piker.config.KrakenConf`). Without
keys the backend is market data + paper trading only.

Module map: `_rest` (client, signing, nonces, errors), `_markets`
(AssetPairs, names), `_history`, `_feed` (public websocket), `_private`
(authenticated websocket), `_orders` (ids, executions -> messages,
pure), `_trades` (the dialogue), `_session` (per run).
"""
from ._api import get_mkt_info, open_history, symbol_search
from ._feed import stream_quotes
from ._trades import REPORTS_ORDERS, TIME_IN_FORCE, trades_dialogue

__enable_modules__: list[str] = ['piker.brokers.kraken._trades']


def live_unavailable() -> str | None:
    """Why `--mode live` cannot work now (no keys), or None."""
    from ...config import load_brokers_conf
    if load_brokers_conf().kraken.has_keys:
        return None
    return ('kraken has no API keys configured, so it serves market data and paper '
            'trading only: set api_key/api_secret (or api_key_file/api_secret_file, or '
            'PIKER_KRAKEN_API_KEY/PIKER_KRAKEN_API_SECRET) in brokers.toml [kraken]')


__all__ = [
    'REPORTS_ORDERS',
    'TIME_IN_FORCE',
    'get_mkt_info',
    'live_unavailable',
    'open_history',
    'stream_quotes',
    'symbol_search',
    'trades_dialogue',
]
