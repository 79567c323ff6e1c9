"""OHLC history: `/0/public/OHLC` for 60 s bars, `/0/public/Trades` for
the rest.

Kraken's OHLC endpoint serves only the most recent 720 bars of an
interval, whatever `since` says: for 1-minute bars that is the last 12
hours, and nothing older can be asked for. So:

- 60 s: the last 720 minutes come from OHLC (one request). An older
  start is paged around the limit through the public trade history
  (`Trades`, 1,000 trades a page, `since` in ns, `last` to continue),
  aggregated into minutes, up to `MAX_TRADE_PAGES` pages; if the trades
  of the older span do not fit in that, the bars start at the OHLC limit
  and a warning says so (the limit is stated, never papered over).
- 1 s: Kraken has no 1 s OHLC at all; 1 s bars are always built from
  `Trades` (by default the last hour), paged the same way.

Bars built from trades: a second (minute) with trades is their OHLCV; a
quiet one between two trades repeats the last close with no volume
(as Binance's own 1 s klines do), so bars stay evenly spaced.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ...log import get_logger
from ...ohlc import OHLC_DTYPE

log = get_logger('brokers.kraken.history')

OHLC_LIMIT = 720
TRADES_PAGE = 1000
MAX_TRADE_PAGES = 50
DEFAULT_SECONDS = {1: 3600, 60: OHLC_LIMIT * 60}
TIMEFRAMES = (1, 60)


def check_timeframe(timeframe: int) -> int:
    try:
        tf = int(timeframe)
    except (TypeError, ValueError):
        tf = -1
    if tf not in TIMEFRAMES:
        raise ValueError(f'kraken serves {list(TIMEFRAMES)}-second bars, not {timeframe!r}')
    return tf


def ohlc_rows_to_bars(rows: list[list[Any]]) -> np.ndarray:
    """OHLC rows `[time, open, high, low, close, vwap, volume, count]`."""
    out = np.empty(len(rows), dtype=OHLC_DTYPE)
    n = 0
    for row in rows:
        try:
            out[n] = (int(row[0]), float(row[1]), float(row[2]), float(row[3]),
                      float(row[4]), float(row[6]))
        except (TypeError, ValueError, IndexError):
            continue
        n += 1
    return out[:n]


def trades_to_bars(trades: list[tuple[float, float, float]], tf: int,
                   start: int, end: int) -> np.ndarray:
    """`(time, price, volume)` trades (oldest first) as `tf`-second bars
    from the first trade's bar to `end`, quiet bars flat."""
    trades = [t for t in trades if start <= t[0] < end + tf]
    if not trades:
        return np.empty(0, dtype=OHLC_DTYPE)
    first = int(trades[0][0]) // tf * tf
    last = int(end) // tf * tf
    n = (last - first) // tf + 1
    out = np.zeros(n, dtype=OHLC_DTYPE)
    out['time'] = first + tf * np.arange(n)
    seen = np.zeros(n, dtype=bool)
    for t, price, vol in trades:
        i = (int(t) // tf * tf - first) // tf
        if not 0 <= i < n:
            continue
        bar = out[i]
        if not seen[i]:
            bar['open'] = bar['high'] = bar['low'] = price
            seen[i] = True
        bar['high'] = max(bar['high'], price)
        bar['low'] = min(bar['low'], price)
        bar['close'] = price
        bar['volume'] += vol
    close = out['open'][0]
    for i in range(n):
        if seen[i]:
            close = out['close'][i]
        else:
            out[i]['open'] = out[i]['high'] = out[i]['low'] = out[i]['close'] = close
    return out


async def fetch_trades(client: Any, pair: str, start: float, end: float,
                       max_pages: int = MAX_TRADE_PAGES
                       ) -> tuple[list[tuple[float, float, float]], bool]:
    """Public trades in `[start, end)`, paged forward by `last`; and
    whether the span was covered (False: `max_pages` ran out first)."""
    since = int(start * 1e9)
    out: list[tuple[float, float, float]] = []
    for _ in range(max_pages):
        res = await client.trades(pair, since, TRADES_PAGE)
        rows = next((v for k, v in res.items() if k != 'last'), [])
        for row in rows:
            try:
                out.append((float(row[2]), float(row[0]), float(row[1])))
            except (TypeError, ValueError, IndexError):
                continue
        nxt = int(res.get('last', since))
        if len(rows) < TRADES_PAGE or nxt <= since or (out and out[-1][0] >= end):
            return out, True
        since = nxt
    return out, bool(out) and out[-1][0] >= end


async def fetch_bars(
    client: Any, market: Any, timeframe: int, *,
    start: float | None = None, end: float | None = None, bars: int | None = None,
) -> np.ndarray:
    """Bars of `market` (see module doc), oldest first."""
    tf = check_timeframe(timeframe)
    end_s = int(end if end is not None else time.time())
    if start is None:
        start = end_s - (bars * tf if bars else DEFAULT_SECONDS[tf])
    start_s = int(start) // tf * tf
    if tf == 1:
        trades, covered = await fetch_trades(client, market.key, start_s, end_s)
        if not covered:
            log.warning('kraken %s: 1s bars from %d are cut at %d trade pages',
                        market.symbol, start_s, MAX_TRADE_PAGES)
        return trades_to_bars(trades, 1, start_s, end_s)
    res = await client.ohlc(market.key, 1)
    rows = next((v for k, v in res.items() if k != 'last'), [])
    recent = ohlc_rows_to_bars(rows)
    recent = recent[(recent['time'] >= start_s) & (recent['time'] <= end_s)]
    first = int(recent['time'][0]) if len(recent) else end_s
    if start_s >= first - 60:
        return recent
    trades, covered = await fetch_trades(client, market.key, start_s, first)
    if not covered:
        log.warning(
            'kraken %s: OHLC serves only the last %d 1m bars; the %d minutes before '
            'them did not fit in %d trade pages, so history starts at %s',
            market.symbol, OHLC_LIMIT, (first - start_s) // 60, MAX_TRADE_PAGES,
            time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(first)))
        return recent
    older = trades_to_bars(trades, 60, start_s, first - 60)
    return np.concatenate([older[older['time'] < first], recent])


__all__ = ['OHLC_LIMIT', 'check_timeframe', 'fetch_bars', 'fetch_trades',
           'ohlc_rows_to_bars', 'trades_to_bars']
