"""Volume bars graphics item, decimated like the candles (max per column)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui

from ._bars import BarsModel
from ._decimate import Decimated
from ._graphics import Bars, BarsGraphicsItem, Frame
from ._primitives import RectBatch
from ._theme import DARK, Theme, qcolor

BAR_WIDTH = 0.7


class VolumeItem(BarsGraphicsItem):
    """Per-bar volume from 0 up, coloured like the candle of the same bar.

    Zoomed out, a pixel column shows the tallest volume bar in it (the
    max half of min/max downsampling: the min is always the 0 baseline),
    as a rectangle exactly as wide as the column's bars.
    """

    def __init__(self, model: BarsModel, theme: Theme = DARK) -> None:
        a = theme.volume_alpha
        self._brushes = {
            True: pg.mkBrush(qcolor(theme.up, a)),
            False: pg.mkBrush(qcolor(theme.down, a)),
        }
        self._rects = {True: RectBatch(), False: RectBatch()}
        self._decimated = False
        self._width = BAR_WIDTH
        super().__init__(model, theme)

    def _y_extent(self, bars: Bars) -> tuple[float, float]:
        return 0.0, float(bars['volume'].max())

    def _cols_y_extent(self, cols: Decimated) -> tuple[float, float]:
        return 0.0, float(cols.volume.max())

    def _build(self, frame: Frame) -> None:
        """Rectangles that tile the x axis when bars are a pixel or so wide.

        Decimated, each column's rectangle spans its bars exactly (first - 0.5
        to last + 0.5): columns hold 1 or 2 bars near one bar per pixel, so
        one-pixel lines at their centres were unevenly spaced and left empty
        pixel columns that moved while panning. Dense raw bars (under
        `DENSE_PX` px each) are drawn full width for the same reason.
        """
        self._decimated = frame.decimated
        self._width = 1.0 if frame.dense else BAR_WIDTH
        if frame.decimated:
            c = frame.cols
            left, right = c.first - 0.5, c.last + 0.5
            up, v = c.close >= c.open, c.volume
        else:
            b = frame.bars
            x = np.arange(frame.start, frame.start + frame.count, dtype=np.float64)
            left, right = x - self._width / 2, x + self._width / 2
            up, v = b['close'] >= b['open'], b['volume']
        for side, mask in ((True, up), (False, ~up)):
            lo = left[mask]
            self._rects[side].set(lo, np.zeros_like(lo), right[mask] - lo, v[mask])

    def _draw_bulk(self, p: QtGui.QPainter) -> None:
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        for side in (True, False):
            p.setBrush(self._brushes[side])
            self._rects[side].draw(p)

    def _draw_last(self, p: QtGui.QPainter, index: int, bar: dict[str, float], decimated: bool) -> None:
        side = bar['close'] >= bar['open']
        v = bar['volume']
        width = 1.0 if decimated else self._width
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(self._brushes[side])
        p.drawRect(QtCore.QRectF(index - width / 2, 0.0, width, v))
