"""M4 (min/max) downsampling of OHLC bars to pixel columns.

When more bars are in view than the view has pixel columns, drawing every
bar only overdraws the same pixels. Instead each pixel column gets one
aggregate bar: first open, max high, min low, last close (and max volume,
the tallest volume bar in the column). That is the M4 idea: the rendered
pixels are identical to drawing every bar, at a cost of O(columns) to draw.

Column membership uses integer arithmetic so it is exact and *stable while
panning*: the column width is quantised to `1/STEP_DEN` of a bar and bar
`i` belongs to column `(i * STEP_DEN) // step_num`. Columns are anchored at
bar 0, so moving the view does not make columns shimmer.

Qt-free and fully vectorised (`ufunc.reduceat`): 1,000,000 bars decimate in
well under a millisecond.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEP_DEN = 1024


def quantize_step(bars_per_column: float) -> int:
    """Return the integer numerator of a column width of `bars_per_column` bars."""
    return max(STEP_DEN, int(round(bars_per_column * STEP_DEN)))


@dataclass(frozen=True, slots=True)
class Decimated:
    """Per-column aggregates of bars `[start, stop)`; all arrays have one row per column."""

    col: np.ndarray      # column id (global, anchored at bar 0)
    first: np.ndarray    # index of the column's first bar
    last: np.ndarray     # index of the column's last bar
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray   # max bar volume in the column

    def __len__(self) -> int:
        return len(self.col)

    @property
    def x(self) -> np.ndarray:
        """Column centre in bar-index coordinates (where to draw it)."""
        return (self.first + self.last) * 0.5


def decimate_ohlc(
    ohlc: np.ndarray,
    start: int,
    stop: int,
    step_num: int,
) -> Decimated:
    """Aggregate bars `ohlc[start:stop]` into columns `step_num/STEP_DEN` bars wide.

    `ohlc` is anything indexable by field name giving 1-D arrays: a
    `BarsModel` (contiguous columns: fastest), a dict of arrays or an
    `OHLC_DTYPE` record array.
    Requires `step_num >= STEP_DEN` (at least one bar per column) so no column
    in the range is empty.
    """
    if step_num < STEP_DEN:
        raise ValueError(f'step_num={step_num} < {STEP_DEN}: columns would be empty')
    start = max(0, int(start))
    stop = min(len(ohlc['high']), int(stop))
    if stop <= start:
        empty_i = np.empty(0, dtype=np.int64)
        empty_f = np.empty(0, dtype=np.float64)
        return Decimated(empty_i, empty_i, empty_i, *([empty_f] * 5))

    c0 = (start * STEP_DEN) // step_num
    c1 = ((stop - 1) * STEP_DEN) // step_num
    cols = np.arange(c0, c1 + 1, dtype=np.int64)
    # first bar of column c: smallest i with i * DEN >= c * num
    firsts = -((-cols * step_num) // STEP_DEN)
    firsts[0] = start
    lasts = np.empty_like(firsts)
    lasts[:-1] = firsts[1:] - 1
    lasts[-1] = stop - 1

    offs = firsts - start
    return Decimated(
        col=cols,
        first=firsts,
        last=lasts,
        open=np.asarray(ohlc['open'])[firsts],
        high=np.maximum.reduceat(ohlc['high'][start:stop], offs),
        low=np.minimum.reduceat(ohlc['low'][start:stop], offs),
        close=np.asarray(ohlc['close'])[lasts],
        volume=np.maximum.reduceat(ohlc['volume'][start:stop], offs),
    )
