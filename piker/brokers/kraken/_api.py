"""Market info, symbol search and history (the request/response part of
the backend contract, see `piker.brokers`). Keys are broker-native
(`btcusd`); Kraken's own names (`xbtusd`, `XXBTZUSD`, `BTC/USD`) and full
fqmes (`btcusd.kraken`) work too."""
from __future__ import annotations

import numpy as np

from ...accounting import MktPair
from ._history import fetch_bars
from ._markets import Market, search_keys
from ._session import get_session

SEARCH_LIMIT = 50


async def get_market(key: str) -> Market:
    sess = get_session()
    return await sess.markets.get(sess.client, key)


async def get_mkt_info(bs_fqme: str) -> MktPair:
    """The market's `MktPair`; `SymbolNotFound` if Kraken has none."""
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
    """`timeframe`-second bars (1 or 60): by default the last 12 h of 1 min
    bars (Kraken's 720-bar OHLC limit) or the last hour of 1 s bars (from
    trades); `start`/`end` (epoch s) or `bars` reach further back, paged
    through Kraken's trade history (see `_history`)."""
    market = await get_market(bs_fqme)
    return await fetch_bars(get_session().client, market, int(timeframe),
                            start=start, end=end, bars=bars)


__all__ = ['get_market', 'get_mkt_info', 'open_history', 'symbol_search']
