"""OHLC history from `GET /api/v3/klines`, paged forward by `startTime`.

Binance serves at most 1,000 klines a request, starting at the first bar
at or after `startTime`. So a span is fetched oldest first, each page
starting one bar after the last one received, until the span's end or
an empty/short page, pacing itself under the request weight limit
(`pace()`: at most `HISTORY_SHARE` of a minute's weight, then it waits
for the next minute). Bars come exactly as Binance has them: a minute
with no trades that Binance does not list stays a gap (no invented
bars), and a repeated bar (pages overlapping) is kept once.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import trio

from ...log import get_logger
from ...ohlc import OHLC_DTYPE

log = get_logger('brokers.binance.history')

INTERVALS = {1: '1s', 60: '1m'}
PAGE = 1000
# bars fetched when the caller does not say how far back
DEFAULT_BARS = {1: 3600, 60: 2880}


# a long backfill uses at most this share of the minute's request weight
# (Binance counts it per IP per clock minute): the rest stays free for
# orders, cancels and the other daemons' calls, and no page ever meets a 429
HISTORY_SHARE = 0.5
KLINES_WEIGHT = 2   # /api/v3/klines at limit 1000


async def pace(client: Any) -> None:
    """Wait for the next weight window if one more page would take the
    minute's used weight past `HISTORY_SHARE` of the limit."""
    limit = getattr(client, 'weight_limit', 0) or 0
    used = getattr(client, 'used_weight', 0) or 0
    if limit and used + KLINES_WEIGHT > HISTORY_SHARE * limit:
        wait = 60.0 - time.time() % 60.0 + 0.05
        log.info('binance history: %d of %d weight used this minute, next page in %.1fs',
                 used, limit, wait)
        await trio.sleep(wait)
        client.used_weight = 0   # a new window (the next reply says for sure)


def check_timeframe(timeframe: int) -> str:
    try:
        return INTERVALS[int(timeframe)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(
            f'binance serves {sorted(INTERVALS)}-second bars, not {timeframe!r}'
        ) from None


def rows_to_bars(rows: list[list[Any]]) -> np.ndarray:
    """Kline rows `[openTime ms, open, high, low, close, volume, ...]`
    (prices as strings) as `OHLC_DTYPE` bars; malformed rows are skipped."""
    out = np.empty(len(rows), dtype=OHLC_DTYPE)
    n = 0
    for row in rows:
        try:
            out[n] = (int(row[0]) // 1000, float(row[1]), float(row[2]),
                      float(row[3]), float(row[4]), float(row[5]))
        except (TypeError, ValueError, IndexError):
            continue
        n += 1
    return out[:n]


async def fetch_bars(
    client: Any,
    symbol: str,
    timeframe: int,
    *,
    start: float | None = None,
    end: float | None = None,
    bars: int | None = None,
) -> np.ndarray:
    """Bars of `symbol` from `start` (epoch s; default `bars` back from
    `end`) up to `end` (default now), oldest first, gaps kept."""
    interval = check_timeframe(timeframe)
    tf = int(timeframe)
    end_s = int(end if end is not None else time.time())
    if start is None:
        start = end_s - (bars or DEFAULT_BARS[tf]) * tf
    start_ms = int(start) // tf * tf * 1000
    end_ms = end_s * 1000
    pages: list[np.ndarray] = []
    while start_ms <= end_ms:
        if pages:
            await pace(client)
        rows = await client.klines(symbol, interval, start_ms, limit=PAGE, end_ms=end_ms)
        page = rows_to_bars(rows)
        if not len(page):
            break
        pages.append(page)
        start_ms = (int(page['time'][-1]) + tf) * 1000
        if len(rows) < PAGE:
            break
    if not pages:
        return np.empty(0, dtype=OHLC_DTYPE)
    arr = np.concatenate(pages)
    _, keep = np.unique(arr['time'], return_index=True)
    return arr[keep]


__all__ = ['INTERVALS', 'PAGE', 'check_timeframe', 'fetch_bars', 'rows_to_bars']
