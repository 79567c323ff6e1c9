"""`sim`: the built-in simulated market (DESIGN.md section 9).

A complete backend (see `piker.brokers` for the contract) with no network:
every market is a seeded random walk of an L1 book, deterministic for a
given `brokers.toml` `[sim] seed` (combined with the market key, so
markets differ), at `[sim] quote_rate` quotes per second per market
(default 20; 0 = as fast as possible).

Markets: `btcusdt.sim`, `ethusdt.sim`, `solusdt.sim` (crypto-like,
fractional sizes) and `simco.sim` (a stock: integer lots, named without
its quote currency). OHLC history (1s, 1m) ends exactly where the live
walk starts and continues with the bars the walk prints.

Paper only: there is no `trades_dialogue`; orders go to the paper engine.
Tests and scripts take the wheel with `open_market_control(fqme)`.

Module map: `_markets` (catalogue, search), `_walk` (the pure random
walk), `_history` (generated + live bars), `_runtime` (per-run market
state, walk driver), `_api` (backend endpoints), `_control` (push/resume).
"""
from ._api import get_mkt_info, open_history, stream_quotes, symbol_search
from ._control import MarketControl, market_control, open_market_control
from ._markets import MARKETS, MarketSpec
from ._runtime import SimMarket, get_market
from ._walk import Walk

# extra modules brokerd.sim must expose (the control endpoint)
__enable_modules__: list[str] = ['piker.brokers.sim._control']

__all__ = [
    'MARKETS',
    'MarketControl',
    'MarketSpec',
    'SimMarket',
    'Walk',
    'get_market',
    'get_mkt_info',
    'market_control',
    'open_history',
    'open_market_control',
    'stream_quotes',
    'symbol_search',
]
