"""Market info, symbol search and history: the request/response part of
the backend contract (see `piker.brokers`), over `_markets` and
`_history`. Every function takes the broker-native key (`btcusdt`) and,
for scripts, a full fqme (`btcusdt.binance`)."""
from __future__ import annotations

import numpy as np

from ...accounting import MktPair
from ._history import fetch_bars
from ._markets import Market, search_keys
from ._session import get_session

# symbol_search answers at most this many markets
SEARCH_LIMIT = 50


async def get_market(key: str) -> Market:
    sess = get_session()
    return await sess.markets.get(sess.client, key)


async def get_mkt_info(bs_fqme: str) -> MktPair:
    """The market's `MktPair`; `SymbolNotFound` if Binance has none."""
    return (await get_market(bs_fqme)).mkt


async def symbol_search(pattern: str) -> dict[str, MktPair]:
    """Markets matching `pattern`, best first, keyed by fqme."""
    sess = get_session()
    markets = await sess.markets.load(sess.client)
    keys = search_keys(markets, pattern)[:SEARCH_LIMIT]
    return {markets[k].mkt.fqme: markets[k].mkt for k in keys}


async def open_history(
    bs_fqme: str,
    timeframe: int = 60,
    *,
    start: float | None = None,
    end: float | None = None,
    bars: int | None = None,
) -> np.ndarray:
    """`timeframe`-second bars (1 or 60) from `/api/v3/klines`: by default
    the last hour of 1 s bars or two days of 1 min bars; `start`/`end`
    (epoch s) or `bars` reach further back."""
    market = await get_market(bs_fqme)
    return await fetch_bars(
        get_session().client, market.symbol, int(timeframe),
        start=start, end=end, bars=bars,
    )


__all__ = ['get_market', 'get_mkt_info', 'open_history', 'symbol_search']
