"""`binance`: Binance spot, market data and live trading (DESIGN.md section 12).

Native trio: `httpx` for REST, `trio-websocket` for streams.

- `get_mkt_info` / `symbol_search`: markets from `GET /api/v3/exchangeInfo`
  (exact `Decimal` ticks, fqmes like `btcusdt.binance`), cached.
- `open_history`: 1 s and 60 s bars from `GET /api/v3/klines`, paged.
- `stream_quotes`: `bookTicker` + `trade` on one combined websocket,
  started from a REST snapshot, reconnecting by itself.
- `trades_dialogue` (`REPORTS_ORDERS`): GTC limit orders, cancel, modify
  (`order/cancelReplace`), the user data stream, the order report.

Settings: `brokers.toml` `[binance]` (`piker.config.BinanceConf`): keys
(inline, files or env), `accounts`, `testnet`, `rest_url`/`ws_url`.
Without keys the backend is market data + paper trading only.

Module map: `_rest` (client, signing, rate limits, errors), `_markets`
(exchangeInfo), `_history` (klines), `_feed` (quotes), `_userstream`
(listenKey stream), `_orders` (ids, tracking, event translation, pure),
`_trades` (the dialogue, the order report), `_positions` (balances as
positions), `_ledger` (fills into piker's ledger), `_state` (symbols
traded), `_session` (per run).
"""
from ._api import get_mkt_info, open_history, symbol_search
from ._feed import stream_quotes
from ._trades import REPORTS_ORDERS, TIME_IN_FORCE, trades_dialogue

# brokerd.binance must expose the module the trades dialogue lives in
__enable_modules__: list[str] = ['piker.brokers.binance._trades']


def live_unavailable() -> str | None:
    """Why `--mode live` cannot work now (no keys), or None."""
    from ...config import load_brokers_conf
    if load_brokers_conf().binance.has_keys:
        return None
    return ('binance has no API keys configured, so it serves market data and paper '
            'trading only: set api_key/api_secret (or api_key_file/api_secret_file, or '
            'PIKER_BINANCE_API_KEY/PIKER_BINANCE_API_SECRET) in brokers.toml [binance]')


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
