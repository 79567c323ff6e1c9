"""Shared machinery of the bar graphics items (candles, volume).

A bar item draws in bar-index x coordinates and splits its work in two:

- the *bulk*: every bar in view except the live last one. It is rebuilt
  only when the visible bar range, the column width or the history changes,
  into numpy-backed primitive batches (one `drawLines`/`drawRects` call per
  colour). When more bars than pixel columns are in view the bulk is M4-
  decimated to one aggregate bar per column (`decimate_ohlc`).
- the *last bar*: drawn on its own at every paint, so a live tick only
  repaints the last bar's small rectangle (O(1), no rebuild).

Owners tell the item what changed: `reset()` after a new history,
`bar_appended()` after a new bar, `last_updated()` after a tick.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ._bars import OHLC_FIELDS, BarsModel
from ._decimate import Decimated, quantize_step
from ._theme import DARK, Theme

Bars = Mapping[str, np.ndarray]   # field name -> column (BarsModel, dict, record array)
DENSE_PX = 4.0      # px per bar under which a frame is `dense`


@dataclass(slots=True)
class Frame:
    """What the bulk of one view shows: raw bars or decimated columns."""

    start: int             # first bulk bar index in view
    stop: int              # one past the last bulk bar in view
    decimated: bool
    bars: dict[str, np.ndarray] | None = None   # raw mode: column slices (copies)
    cols: Decimated | None = None       # decimated mode: per-column aggregates
    # raw mode under `DENSE_PX` px per bar: gaps between bars are under a
    # pixel and would rasterise as moving empty bands (items may close them)
    dense: bool = False

    @property
    def count(self) -> int:
        """How many bars/columns the bulk draws."""
        if self.decimated:
            return len(self.cols) if self.cols is not None else 0
        return len(self.bars['high']) if self.bars is not None else 0


class BarsGraphicsItem(pg.GraphicsObject):
    """Base of `CandlestickItem` and `VolumeItem`; subclasses draw a `Frame`."""

    def __init__(self, model: BarsModel, theme: Theme = DARK) -> None:
        super().__init__()
        self.model = model
        self.theme = theme
        self._key: tuple[Any, ...] | None = None
        self._frame: Frame | None = None
        self._bounds = QtCore.QRectF()
        self._last_drawn = QtCore.QRectF()
        self.build_count = 0          # bulk (re)builds, for tests and benches
        self.reset()

    # --- owner notifications ----------------------------------------------

    def reset(self) -> None:
        """The whole history changed: recompute bounds, drop the bulk cache."""
        self.prepareGeometryChange()
        self._bounds = self._full_bounds()
        self._key = None
        self._last_drawn = QtCore.QRectF()
        self.update()

    def bar_appended(self) -> None:
        """A bar was appended: the old last bar joins the bulk."""
        self._last_drawn = QtCore.QRectF()
        self._grow_bounds()
        self.update()

    def last_updated(self) -> None:
        """The last bar changed in place: repaint only its rectangle (and the
        one it had, in case it shrank)."""
        if self._grow_bounds():
            self.update()
            return
        rect = self._last_rect()
        self.update(rect.united(self._last_drawn) if not self._last_drawn.isNull() else rect)
        self._last_drawn = rect

    # --- geometry -----------------------------------------------------------

    def _y_extent(self, bars: Bars) -> tuple[float, float]:
        """(lo, hi) of `bars`: anything indexable by field name."""
        raise NotImplementedError

    def _cols_y_extent(self, cols: Decimated) -> tuple[float, float]:
        raise NotImplementedError

    def _full_bounds(self) -> QtCore.QRectF:
        n = len(self.model)
        if not n:
            return QtCore.QRectF()
        lo, hi = self._y_extent(self.model)
        return _bounds_rect(n, lo, hi)

    def _grow_bounds(self) -> bool:
        """Extend the bounds to cover the last bar; True if they changed."""
        n = len(self.model)
        if not n:
            return False
        lo, hi = self._y_extent(self._last_cols())
        b = self._bounds
        if b.isEmpty():
            new = _bounds_rect(n, lo, hi)
        elif n <= b.right() + 0.5 and lo >= b.top() and hi <= b.bottom():
            return False
        else:
            new = _bounds_rect(max(n, int(round(b.width()))), min(b.top(), lo), max(b.bottom(), hi))
        self.prepareGeometryChange()
        self._bounds = new
        return True

    def _last_rect(self) -> QtCore.QRectF:
        n = len(self.model)
        if not n:
            return QtCore.QRectF()
        lo, hi = self._y_extent(self._last_cols())
        # pad by a few device pixels for the cosmetic pen
        px = self.pixelWidth() or 0.0
        py = self.pixelHeight() or 0.0
        return QtCore.QRectF(
            n - 1.5 - 2 * px, lo - 3 * py, 1.0 + 4 * px, (hi - lo) + 6 * py,
        )

    def boundingRect(self) -> QtCore.QRectF:
        return QtCore.QRectF(self._bounds)

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):  # noqa: N802
        """pyqtgraph auto-range hook: x = bar indices, y = extent of (visible) bars."""
        n = len(self.model)
        if not n:
            return None
        if ax == 0:
            return (-0.5, n - 0.5)
        i0, i1 = 0, n
        if orthoRange is not None:
            i0 = max(0, int(math.floor(orthoRange[0])))
            i1 = min(n, int(math.ceil(orthoRange[1])) + 1)
            if i1 <= i0:
                return None
        return self._y_extent(self._cols(i0, i1))

    # --- bulk frame ---------------------------------------------------------

    def frame(self, x0: float, x1: float, width_px: float) -> Frame:
        """The (cached) bulk frame for view x-range `[x0, x1]` drawn `width_px` wide."""
        n = len(self.model)
        bulk_stop = max(0, n - 1)
        i0 = min(bulk_stop, max(0, int(math.floor(x0))))
        i1 = max(i0, min(bulk_stop, int(math.ceil(x1)) + 1))
        bars_per_px = (x1 - x0) / max(width_px, 1.0)
        if bars_per_px > 1.0:
            num = quantize_step(bars_per_px)
            key = ('dec', i0, i1, num, self.model.version)
        else:
            num = 0
            dense = bars_per_px * DENSE_PX > 1.0
            key = ('raw', i0, i1, self.model.version, dense)
        if key != self._key or self._frame is None:
            if num:
                frame = Frame(i0, i1, True, cols=self.model.decimated(i0, i1, num))
            else:
                frame = Frame(i0, i1, False, bars=self._cols(i0, i1, copy=True), dense=dense)
            self._build(frame)
            self.build_count += 1
            self._frame = frame
            self._key = key
        return self._frame

    def view_frame(self) -> Frame | None:
        """The frame for the current view of this item's ViewBox."""
        vb = self.getViewBox()
        if vb is None or not len(self.model):
            return None
        (x0, x1), _ = vb.viewRange()
        return self.frame(x0, x1, vb.width())

    def visible_y_range(self, x0: float, x1: float, width_px: float) -> tuple[float, float] | None:
        """y extent of the bars within `[x0, x1]` (bulk + live last bar)."""
        n = len(self.model)
        if not n:
            return None
        f = self.frame(x0, x1, width_px)
        spans: list[tuple[float, float]] = []
        if f.count:
            spans.append(self._cols_y_extent(f.cols) if f.decimated else self._y_extent(f.bars))
        if x0 - 0.5 <= n - 1 <= x1 + 0.5:
            spans.append(self._y_extent(self._last_cols()))
        if not spans:
            return None
        return min(s[0] for s in spans), max(s[1] for s in spans)

    # --- drawing ------------------------------------------------------------

    def _build(self, frame: Frame) -> None:
        """Fill primitive batches for `frame` (subclass)."""
        raise NotImplementedError

    def _draw_bulk(self, p: QtGui.QPainter) -> None:
        raise NotImplementedError

    def _draw_last(self, p: QtGui.QPainter, index: int, bar: dict[str, float], decimated: bool) -> None:
        raise NotImplementedError

    def paint(
        self,
        p: QtGui.QPainter,
        opt: QtWidgets.QStyleOptionGraphicsItem | None = None,
        widget: QtWidgets.QWidget | None = None,
    ) -> None:
        n = len(self.model)
        if not n:
            return
        frame = self.view_frame()
        decimated = False
        if frame is not None:
            decimated = frame.decimated
            if frame.count:
                self._draw_bulk(p)
        self._draw_last(p, n - 1, self.model.bar(n - 1), decimated)

    # --- column access ---------------------------------------------------------

    def _cols(self, i0: int, i1: int, copy: bool = False) -> dict[str, np.ndarray]:
        m = self.model
        if copy:
            return {f: m.column(f)[i0:i1].copy() for f in OHLC_FIELDS}
        return {f: m.column(f)[i0:i1] for f in OHLC_FIELDS}

    def _last_cols(self) -> dict[str, np.ndarray]:
        n = len(self.model)
        return self._cols(n - 1, n)


def _bounds_rect(n: int, lo: float, hi: float) -> QtCore.QRectF:
    """Item bounds of `n` bars spanning `[lo, hi]`, never zero-height (Qt
    never paints an item whose bounding rect is empty, e.g. one flat bar)."""
    if hi <= lo:
        pad = max(abs(lo) * 1e-6, 1e-9)
        lo, hi = lo - pad, hi + pad
    return QtCore.QRectF(-0.5, lo, n, hi - lo)
