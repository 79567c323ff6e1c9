"""The sim backend's implementation of the backend contract (see
`piker.brokers`): market info, symbol search, OHLC history, live quotes.

Every function accepts a broker-native key (`btcusdt`) - what brokerd
passes - and, for convenience in scripts and tests, a full fqme
(`btcusdt.sim`).
"""
from __future__ import annotations

import numpy as np
import trio

from ...accounting import MktPair
from ._markets import get_spec, search
from ._runtime import get_market
from ._walk import Quote


async def get_mkt_info(fqme: str) -> MktPair:
    """The `MktPair` of a sim market; `SymbolNotFound` if there is none."""
    return get_spec(fqme).mkt


async def symbol_search(pattern: str) -> dict[str, MktPair]:
    """Markets matching `pattern`, best match first, keyed by fqme."""
    return {spec.mkt.fqme: spec.mkt for spec in search(pattern)}


async def open_history(
    fqme: str,
    timeframe: int = 60,
    *,
    start: int | None = None,
    end: int | None = None,
) -> np.ndarray:
    """OHLC bars (`piker.data.OHLC_DTYPE`) of `timeframe` seconds (1 or 60)
    opening in `[start, end]` (epoch s; default: everything there is).

    Deterministic past ending at the live walk's start price (a day of
    1 min bars, an hour of 1 s bars: nothing before), then the bars the
    live walk has printed in this process so far.
    """
    return in_range(get_market(fqme).history(int(timeframe)), start, end)


def in_range(bars: np.ndarray, start: int | None, end: int | None) -> np.ndarray:
    """The bars of `bars` (sorted) opening in `[start, end]`."""
    t = bars['time']
    lo = 0 if start is None else int(np.searchsorted(t, start, 'left'))
    hi = len(t) if end is None else int(np.searchsorted(t, end, 'right'))
    return bars[lo:hi]


async def stream_quotes(
    send_chan: trio.abc.SendChannel[Quote],
    bs_fqmes: list[str],
    *,
    task_status: trio.TaskStatus[dict[str, Quote]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Stream live L1 quotes of `bs_fqmes` into `send_chan` until cancelled.

    Quote rate per market: `brokers.toml` `[sim] quote_rate` (0 = as fast
    as possible). `task_status.started()` gets `{bs_fqme: first quote}`.
    """
    markets = [get_market(key) for key in bs_fqmes]
    first: dict[str, Quote] = {}
    async with trio.open_nursery() as n:
        for key, market in zip(bs_fqmes, markets, strict=True):
            quote = await n.start(market.stream, send_chan)
            first[key] = quote
        task_status.started(first)
