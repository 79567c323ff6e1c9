"""Market info, symbol search and history (the request/response part of
the backend contract, see `piker.brokers`). Keys are broker-native
(`btcusd`); Kraken's own names (`xbtusd`, `XXBTZUSD`, `BTC/USD`) and full
fqmes (`btcusd.kraken`) work too."""
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
    """`timeframe`-second bars (1 or 60): by default the last 12 h of 1 min
    bars (Kraken's 720-bar OHLC limit) or the last hour of 1 s bars (from
    trades); `start`/`end` (epoch s) or `bars` reach further back, paged
    through Kraken's trade history (see `_history`)."""
    market = await get_market(bs_fqme)
    return await fetch_bars(get_session().client, market, int(timeframe),
                            start=start, end=end, bars=bars)


__all__ = ['get_market', 'get_mkt_info', 'open_history', 'symbol_search']
