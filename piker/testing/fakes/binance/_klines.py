"""Deterministic klines for any time range: `GET /api/v3/klines`.

The past is a pure function of `(seed, symbol, t0, time)`: the log price
at epoch second t is a sum of value-noise octaves (lattice spacings from
20s to a week, hashed lattice values, smooth interpolation), shifted so
that the price at `t0` is the pair's start level, where the live walk
begins; any bar of any range is computed directly, with no walk to replay
from an origin. (With an injected clock, `t0` is fixed too.) A 1s
bar opens at P(t) and closes at P(t+1) (the next bar opens at this close),
with hashed wicks outside both and hashed volume/trade counts. Longer bars
aggregate sub-bars: exact 1s aggregates up to 15m bars (a 1m bar is
exactly the aggregate of its 60 1s bars), 1m sub-bars up to 12h, 15m
sub-bars above. Every bar has low <= open, close <= high.

From `t0` (the fake's start, a whole second) on, bars come from the live
market instead (`LiveSeconds`, fed with every public trade the fake
prints); seconds without a trade repeat the last close with no volume, as
Binance's own klines do. `gaps` are open-time spans with no bars at all
(a closed market); paging across them behaves as on Binance.
"""
from __future__ import annotations

import math
import zlib
from bisect import bisect_left

import numpy as np

from ._errors import BinanceError, invalid_interval
from ._fmt import d8
from ._symbols import SymbolSpec

INTERVALS: dict[str, int] = {
    '1s': 1, '1m': 60, '3m': 180, '5m': 300, '15m': 900, '30m': 1800,
    '1h': 3600, '2h': 7200, '4h': 14400, '6h': 21600, '8h': 28800,
    '12h': 43200, '1d': 86400, '3d': 259200, '1w': 604800,
}
# 1w bars open on Mondays 00:00 UTC; epoch 0 was a Thursday
_OFFSET = {'1w': 4 * 86400}
_OCTAVES = (20, 300, 3600, 86400, 7 * 86400)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
LIVE_SECONDS_KEPT = 86_400
MAX_LIMIT = 1000


def interval_seconds(interval: str) -> int:
    try:
        return INTERVALS[interval]
    except KeyError:
        raise invalid_interval() from None


def _sub(iv: int) -> int:
    return 1 if iv <= 900 else (60 if iv <= 43200 else 900)


def _hash(key: int, idx: np.ndarray) -> np.ndarray:
    """splitmix64 of `(key, idx)` as floats uniform in [0, 1)."""
    with np.errstate(over='ignore'):
        z = idx.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class PricePath:
    """The deterministic past of one symbol (see module docstring)."""

    def __init__(self, spec: SymbolSpec, seed: int, t0: int) -> None:
        self.spec = spec
        base = zlib.crc32(f'{seed}/{spec.symbol}'.encode())
        self._keys = [(base * 1_000_003 + k) & 0xFFFFFFFFFFFF for k in range(8)]
        self.tick = float(spec.tick_size)
        self.step = float(spec.step_size)
        self.pdigits = max(0, -spec.tick_size.normalize().as_tuple().exponent)
        self.sdigits = max(0, -spec.step_size.normalize().as_tuple().exponent)
        # per-second relative volatility of the walk at ~20 quotes/s
        self.vol_s = spec.step_vol * math.sqrt(20.0)
        # anchored so that P(t0) is the pair's start level: the live walk
        # starts there whatever the time, so frames depend on the seed only
        self.log0 = 0.0
        self.log0 = math.log(spec.start_price) - float(self._logp(np.array([t0]))[0])

    def _logp(self, t: np.ndarray) -> np.ndarray:
        logp = np.full(t.shape, self.log0)
        for k, span in enumerate(_OCTAVES):
            i = np.floor_divide(t, span)
            f = (t - i * span) / span
            f = f * f * (3 - 2 * f)
            a = _hash(self._keys[k], i) * 2 - 1
            b = _hash(self._keys[k], i + 1) * 2 - 1
            logp += 1.7 * self.vol_s * math.sqrt(span) * (a + (b - a) * f)
        return logp

    def price(self, t: np.ndarray) -> np.ndarray:
        """P(t) at epoch seconds `t` (int array), snapped to the tick."""
        logp = self._logp(np.asarray(t, dtype=np.int64))
        return np.maximum(np.round(np.exp(logp) / self.tick), 1.0) * self.tick

    def sub_bars(self, starts: np.ndarray, r: int) -> tuple[np.ndarray, ...]:
        """OHLCV, trades and taker-buy volume of the `r`-second sub-bars
        starting at `starts`."""
        o = self.price(starts)
        c = self.price(starts + r)
        w = self.vol_s * math.sqrt(r)
        up = _hash(self._keys[5], starts) * w
        dn = _hash(self._keys[6], starts) * w
        hi = np.maximum(np.ceil(np.maximum(o, c) * (1 + up) / self.tick) * self.tick, np.maximum(o, c))
        lo = np.minimum(np.floor(np.minimum(o, c) * (1 - dn) / self.tick) * self.tick, np.minimum(o, c))
        lo = np.maximum(lo, self.tick)
        u = _hash(self._keys[7], starts)
        vol = np.maximum(np.round(self.spec.lot * 4 * r * (0.2 + 1.6 * u) / self.step), 1) * self.step
        trades = (1 + (u * 10 * r)).astype(np.int64)
        taker = np.round(vol * (0.3 + 0.4 * _hash(self._keys[4], starts)) / self.step) * self.step
        return o, hi, lo, c, vol, trades, taker


class LiveSeconds:
    """1s bars of the live market from its public trades (bounded).

    Seconds are kept sorted (`secs`, parallel `rows`), so a bar of any
    interval is found by bisection.
    """

    def __init__(self, t0: int, open_price: float) -> None:
        self.t0 = t0
        self.open_price = open_price
        self.secs: list[int] = []
        # [o, h, l, c, volume, quote volume, trades, taker buy vol, taker buy quote]
        self.rows: list[list] = []

    def trade(self, sec: int, price: float, qty: float, buyer_taker: bool) -> None:
        secs = self.secs
        if secs and sec <= secs[-1]:
            bar = self.rows[-1]  # same second (or the clock went back): the last bar
        else:
            secs.append(sec)
            bar = [price, price, price, price, 0.0, 0.0, 0, 0.0, 0.0]
            self.rows.append(bar)
            if len(secs) > 2 * LIVE_SECONDS_KEPT:
                del secs[:LIVE_SECONDS_KEPT]
                del self.rows[:LIVE_SECONDS_KEPT]
        bar[1] = max(bar[1], price)
        bar[2] = min(bar[2], price)
        bar[3] = price
        bar[4] += qty
        bar[5] += qty * price
        bar[6] += 1
        if buyer_taker:
            bar[7] += qty
            bar[8] += qty * price

    def close_before(self, sec: int) -> float:
        """The last live close before second `sec`."""
        i = bisect_left(self.secs, sec)
        return self.rows[i - 1][3] if i else self.open_price

    def aggregate(self, start: int, stop: int) -> list:
        """The bar of live seconds `[start, stop)`; it opens at the close
        before it (a second without trades prints no price)."""
        close = self.close_before(start)
        out = [close, close, close, close, 0.0, 0.0, 0, 0.0, 0.0]
        i, j = bisect_left(self.secs, start), bisect_left(self.secs, stop)
        for bar in self.rows[i:j]:
            out[1] = max(out[1], bar[1])
            out[2] = min(out[2], bar[2])
            out[3] = bar[3]
            for k in range(4, 9):
                out[k] += bar[k]
        return out


class KlineSource:
    """All klines of one symbol: generated past + live bars + gaps."""

    def __init__(self, spec: SymbolSpec, seed: int, t0: int) -> None:
        self.spec = spec
        self.path = PricePath(spec, seed, t0)
        self.t0 = t0
        self.start_price = float(self.path.price(np.array([t0]))[0])
        self.live = LiveSeconds(t0, self.start_price)
        self.gaps: list[tuple[int, int]] = []   # [start_ms, end_ms) of open times

    def set_gaps(self, gaps: list[tuple[int, int]]) -> None:
        for a, b in gaps:
            if not b > a:
                raise ValueError(f'a gap ends after it starts, got ({a}, {b})')
        self.gaps = sorted((int(a), int(b)) for a, b in gaps)

    def _in_gap(self, t_ms: int) -> tuple[int, int] | None:
        for a, b in self.gaps:
            if a <= t_ms < b:
                return a, b
        return None

    def open_times(self, interval: str, start_ms: int | None, end_ms: int | None,
                   limit: int, now_ms: int) -> list[int]:
        """Bar open times (ms) as Binance selects them (see `klines`)."""
        iv = INTERVALS[interval] * 1000
        off = _OFFSET.get(interval, 0) * 1000
        last = (now_ms - off) // iv * iv + off
        end = last if end_ms is None else min(last, (end_ms - off) // iv * iv + off)
        out: list[int] = []
        if start_ms is not None:
            t = -((off - start_ms) // iv) * iv + off  # first open >= start
            while t <= end and len(out) < limit:
                gap = self._in_gap(t)
                if gap is not None:
                    t = -((off - gap[1]) // iv) * iv + off
                    continue
                out.append(t)
                t += iv
            return out
        t = end
        floor = self.t0 * 1000 - 10 * 365 * 86_400_000
        while t >= floor and len(out) < limit:
            gap = self._in_gap(t)
            if gap is not None:
                t = (gap[0] - 1 - off) // iv * iv + off
                continue
            out.append(t)
            t -= iv
        out.reverse()
        return out

    def klines(self, interval: str, start_ms: int | None, end_ms: int | None,
               limit: int, now_ms: int) -> list[list]:
        """Rows as Binance sends them: `[openTime, "open", "high", "low",
        "close", "volume", closeTime, "quoteVolume", trades,
        "takerBuyBase", "takerBuyQuote", "0"]`.

        startTime given: the first `limit` bars opening at or after it
        (up to endTime / now); else the last `limit` bars opening at or
        before endTime (default now). Bars in a gap do not exist.
        """
        if interval not in INTERVALS:
            raise invalid_interval()
        if not 1 <= limit <= MAX_LIMIT:
            raise BinanceError(-1130, "Invalid data sent for a parameter.")
        times = self.open_times(interval, start_ms, end_ms, limit, now_ms)
        if not times:
            return []
        iv = INTERVALS[interval]
        starts = np.array(times, dtype=np.int64) // 1000
        rows = self._history_rows(starts, iv)
        path = self.path
        pd = path.pdigits
        out = []
        for j, t in enumerate(times):
            s = int(starts[j])
            if s + iv <= self.t0:
                o, h, lo, c, v, qv, n, tb, tbq = rows[j]
            else:
                o, h, lo, c, v, qv, n, tb, tbq = self._live_bar(s, iv, rows[j])
            out.append([
                t, d8(round(o, pd)), d8(round(h, pd)), d8(round(lo, pd)), d8(round(c, pd)),
                d8(round(v, path.sdigits)), t + iv * 1000 - 1, d8(round(qv, 8)), int(n),
                d8(round(tb, path.sdigits)), d8(round(tbq, 8)), '0',
            ])
        return out

    def _history_rows(self, starts: np.ndarray, iv: int) -> list[tuple]:
        r = _sub(iv)
        k = iv // r
        subs = starts[:, None] + r * np.arange(k, dtype=np.int64)[None, :]
        live = subs >= self.t0
        o, h, lo, c, v, n, tb = self.path.sub_bars(subs, r)
        mid = (o + c) / 2
        qv = v * mid
        tbq = tb * mid
        for arr, fill in ((h, -np.inf), (lo, np.inf), (v, 0), (n, 0), (tb, 0), (qv, 0), (tbq, 0)):
            arr[live] = fill
        rows = []
        agg = (o[:, 0], h.max(axis=1), lo.min(axis=1), c[:, -1], v.sum(axis=1),
               qv.sum(axis=1), n.sum(axis=1), tb.sum(axis=1), tbq.sum(axis=1))
        # the close of the last history sub-bar (a bar reaching into live time)
        has_hist = ~live
        last_idx = np.maximum(has_hist.sum(axis=1) - 1, 0)
        hist_close = c[np.arange(len(starts)), last_idx]
        for j in range(len(starts)):
            row = [float(a[j]) for a in agg]
            row[3] = float(hist_close[j]) if has_hist[j].any() else float('nan')
            rows.append(tuple(row))
        return rows

    def _live_bar(self, s: int, iv: int, hist: tuple) -> tuple:
        """A bar reaching into live time: its history part (if any) then
        the live seconds."""
        if s >= self.t0:
            return tuple(self.live.aggregate(s, s + iv))
        o, h, lo, c, v, qv, n, tb, tbq = hist
        live = self.live.aggregate(self.t0, s + iv)
        return (o, max(h, live[1]), min(lo, live[2]), live[3], v + live[4], qv + live[5],
                n + live[6], tb + live[7], tbq + live[8])
