"""OHLC history of a sim market, consistent with its live walk.

The past (`gen_history()`) is deterministic: prices depend only on
`(seed, market)`, bar times on the minute the market came to life in
this process (`first_live`, a minute boundary).

- 1m bars: a backward random walk that *ends* at the walk's start price:
  the last generated bar closes exactly where the live walk begins.
- 1s bars (the last hour): a Brownian bridge inside each of the last 60
  minutes, from that minute's open to its close; those minutes' 1m highs,
  lows and volumes are then the aggregates of their 1s bars, so the two
  timeframes agree wherever they overlap.

Between `first_live` and the second the market came to life,
`gen_bridge()` fills the 1s series with a short bridge from the walk's
start price back to it (a market started mid-minute shows no flat hole),
and the live 1m bar starts with that bridge's range and volume.

The present (`LiveBars`) aggregates the live walk's trades into bars from
then on, so `open_history()` returns one continuous series: generated
past, then the bars the walk has printed since. Every bar opens
at the previous close; bars with no trade repeat it with zero volume
(charts want no holes).
"""
from __future__ import annotations

import math

import numpy as np

from ...ohlc import OHLC_DTYPE
from ._markets import MarketSpec
from ._walk import walk_seed

# generated bars per timeframe: 1h of 1s bars, 1 day of 1m bars
HISTORY_BARS: dict[int, int] = {1: 3600, 60: 1440}
MINUTE = 60
# the live walk's reference quote rate used to scale bar volatility
_REF_RATE = 20.0


def check_timeframe(timeframe: int) -> int:
    if timeframe not in HISTORY_BARS:
        raise ValueError(
            f'sim has no {timeframe!r}s history; timeframes: '
            f'{", ".join(str(t) for t in HISTORY_BARS)} (seconds)'
        )
    return int(timeframe)


def first_live_time(t0: float) -> int:
    """The minute boundary at (or before) `t0`: where history ends."""
    return int(t0 // MINUTE) * MINUTE


class _Bars:
    """Shapes generated bars onto a market's price and size grids."""

    def __init__(self, spec: MarketSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        self.rng = rng
        self.tick = float(spec.price_tick)
        self.stick = float(spec.size_tick)
        self.pdigits = max(0, -spec.price_tick.normalize().as_tuple().exponent)
        self.sdigits = max(0, -spec.size_tick.normalize().as_tuple().exponent)

    def snap(self, x: np.ndarray, fn=np.round) -> np.ndarray:
        return np.maximum(fn(x / self.tick), 1.0) * self.tick

    def volumes(self, shape: tuple[int, ...] | int, seconds: int) -> np.ndarray:
        raw = self.spec.lot * _REF_RATE * seconds * np.exp(self.rng.normal(0.0, 0.5, shape))
        return np.maximum(np.round(raw / self.stick), 1) * self.stick

    def wicks(self, o: np.ndarray, c: np.ndarray, vol: float) -> tuple[np.ndarray, np.ndarray]:
        # wicks outward onto the grid, then low <= open, close <= high
        snap = self.snap
        w = np.abs(self.rng.normal(0.0, vol * 0.5, (2, *o.shape)))
        high = np.maximum(snap(np.maximum(o, c) * (1.0 + w[0]), np.ceil), np.maximum(o, c))
        low = np.minimum(snap(np.minimum(o, c) * (1.0 - w[1]), np.floor), np.minimum(o, c))
        return high, low

    def pack(self, tf: int, end: int, *cols: np.ndarray) -> np.ndarray:
        """Bars of `tf` seconds, the last one starting at `end - tf`."""
        o_, h_, l_, c_, v_ = (col.reshape(-1) for col in cols)
        arr = np.zeros(len(o_), dtype=OHLC_DTYPE)
        arr['time'] = end - tf * np.arange(len(o_), 0, -1, dtype=np.int64)
        for name, col in zip(('open', 'high', 'low', 'close'), (o_, h_, l_, c_), strict=True):
            arr[name] = np.round(col, self.pdigits)
        arr['volume'] = np.round(v_, self.sdigits)
        return arr


def gen_history(
    spec: MarketSpec,
    seed: int,
    end_price: float,
    first_live: int,
) -> dict[int, np.ndarray]:
    """Generate both timeframes' bars before epoch second `first_live`.

    Returns `{1: 1s bars, 60: 1m bars}`; each series' last bar closes at
    `end_price`.
    """
    if first_live % MINUTE:
        raise ValueError(f'first_live must be a minute boundary, got {first_live}')
    rng = np.random.Generator(np.random.PCG64(walk_seed(seed, f'{spec.key}/history')))
    bars = _Bars(spec, rng)
    snap, volumes, wicks = bars.snap, bars.volumes, bars.wicks

    # -- 1m: backward walk of log closes ending at `end_price`
    n = HISTORY_BARS[MINUTE]
    vol_m = spec.step_vol * math.sqrt(_REF_RATE * MINUTE)
    rets = rng.normal(0.0, vol_m, n)
    close_m = snap(np.exp(math.log(end_price) - np.concatenate(
        [np.cumsum(rets[::-1])[::-1][1:], [0.0]]
    )))
    close_m[-1] = end_price
    open_m = np.empty(n)
    open_m[1:] = close_m[:-1]
    open_m[0] = snap(np.array([close_m[0] * math.exp(-rng.normal(0.0, vol_m))]))[0]
    high_m, low_m = wicks(open_m, close_m, vol_m)
    volume_m = volumes(n, MINUTE)

    # -- 1s: a bridge from each of the last minutes' open to its close
    k = HISTORY_BARS[1] // MINUTE
    o, c = open_m[-k:], close_m[-k:]
    vol_s = spec.step_vol * math.sqrt(_REF_RATE)
    walk = np.cumsum(rng.normal(0.0, vol_s, (k, MINUTE)), axis=1)
    frac = np.arange(1, MINUTE + 1) / MINUTE
    drift = walk[:, -1] - (np.log(c) - np.log(o))
    close_s = snap(np.exp(np.log(o)[:, None] + walk - frac[None, :] * drift[:, None]))
    close_s[:, -1] = c
    open_s = np.concatenate([o[:, None], close_s[:, :-1]], axis=1)
    high_s, low_s = wicks(open_s, close_s, vol_s)
    volume_s = volumes((k, MINUTE), 1)
    # ...and those minutes are the aggregates of their seconds
    high_m[-k:] = high_s.max(axis=1)
    low_m[-k:] = low_s.min(axis=1)
    volume_m[-k:] = volume_s.sum(axis=1)

    return {
        1: bars.pack(1, first_live, open_s, high_s, low_s, close_s, volume_s),
        MINUTE: bars.pack(MINUTE, first_live, open_m, high_m, low_m, close_m, volume_m),
    }


def gen_bridge(spec: MarketSpec, seed: int, price: float, start: int, stop: int) -> np.ndarray:
    """1s bars for epoch seconds `[start, stop)`: a Brownian bridge from
    `price` back to `price` (the walk's start price: where the generated
    history ends and the live walk begins). Empty if `stop <= start`."""
    n = stop - start
    if n <= 0:
        return np.zeros(0, dtype=OHLC_DTYPE)
    rng = np.random.Generator(np.random.PCG64(walk_seed(seed, f'{spec.key}/bridge/{start}')))
    bars = _Bars(spec, rng)
    vol_s = spec.step_vol * math.sqrt(_REF_RATE)
    walk = np.cumsum(rng.normal(0.0, vol_s, n))
    frac = np.arange(1, n + 1) / n
    close = bars.snap(price * np.exp(walk - frac * walk[-1]))
    close[-1] = price
    open_ = np.concatenate([[price], close[:-1]])
    high, low = bars.wicks(open_, close, vol_s)
    return bars.pack(1, stop, open_, high, low, close, bars.volumes(n, 1))


class LiveBars:
    """Bars of one timeframe built from live trades (bounded memory)."""

    def __init__(
        self,
        timeframe: int,
        start_price: float,
        start_time: float,
        since: np.ndarray | None = None,
    ) -> None:
        """`since`: bars already generated inside the first live bar (the
        bridge): its range and volume start from theirs."""
        self.tf = check_timeframe(timeframe)
        self.max_bars = HISTORY_BARS[self.tf]
        self._rows: list[tuple[int, float, float, float, float, float]] = []
        # the bar in progress: [time, open, high, low, close, volume]
        # every bar opens at the previous close (as generated history does)
        self._cur: list = [self.bar_time(start_time), start_price, start_price,
                           start_price, start_price, 0.0]
        if since is not None and len(since):
            self._cur[2] = max(start_price, float(since['high'].max()))
            self._cur[3] = min(start_price, float(since['low'].min()))
            self._cur[5] = float(since['volume'].sum())

    def bar_time(self, epoch_s: float) -> int:
        return int(epoch_s // self.tf) * self.tf

    def _roll(self, bar: int) -> None:
        """Close the current bar and fill any empty bars up to `bar`."""
        cur = self._cur
        rows = self._rows
        rows.append(tuple(cur))
        close = cur[4]
        t = cur[0] + self.tf
        # at most `max_bars` flat fillers: older ones would be trimmed anyway
        t = max(t, bar - self.tf * self.max_bars)
        while t < bar:
            rows.append((t, close, close, close, close, 0.0))
            t += self.tf
        if len(rows) > 2 * self.max_bars:
            del rows[: len(rows) - self.max_bars]
        self._cur = [bar, close, close, close, close, 0.0]

    def trade(self, price: float, size: float, epoch_s: float) -> None:
        bar = int(epoch_s // self.tf) * self.tf
        cur = self._cur
        if bar > cur[0]:
            self._roll(bar)
            cur = self._cur
        if price > cur[2]:
            cur[2] = price
        if price < cur[3]:
            cur[3] = price
        cur[4] = price
        cur[5] += size

    def array(self, now: float) -> np.ndarray:
        """Every live bar up to and including the one containing `now`."""
        bar = self.bar_time(now)
        if bar > self._cur[0]:
            self._roll(bar)
        rows = self._rows[-self.max_bars:] + [tuple(self._cur)]
        return np.array(rows, dtype=OHLC_DTYPE)
