"""Market info, symbol search and history: the request/response part of
the backend contract (see `piker.brokers`), over `_markets` and
`_history`. Every function takes the broker-native key (`btcusdt`) and,
for scripts, a full fqme (`btcusdt.binance`)."""
from __future__ import annotations

import numpy as np

from .._market_api import MarketApi
from ._history import fetch_bars
from ._markets import search_keys
from ._session import get_session

_api = MarketApi(get_session, search_keys)
get_market = _api.get_market
get_mkt_info = _api.get_mkt_info
symbol_search = _api.symbol_search


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
