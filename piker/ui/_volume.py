"""Volume bars graphics item, decimated like the candles (max per column)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui

from ._bars import BarsModel
from ._decimate import Decimated
from ._graphics import Bars, BarsGraphicsItem, Frame
from ._primitives import LineBatch, RectBatch
from ._theme import DARK, Theme, qcolor

BAR_WIDTH = 0.7


class VolumeItem(BarsGraphicsItem):
    """Per-bar volume from 0 up, coloured like the candle of the same bar.

    Zoomed out, a pixel column shows the tallest volume bar in it (the
    max half of min/max downsampling: the min is always the 0 baseline).
    """

    def __init__(self, model: BarsModel, theme: Theme = DARK) -> None:
        a = theme.volume_alpha
        self._pens = {
            True: pg.mkPen(qcolor(theme.up, a), width=1),
            False: pg.mkPen(qcolor(theme.down, a), width=1),
        }
        self._brushes = {
            True: pg.mkBrush(qcolor(theme.up, a)),
            False: pg.mkBrush(qcolor(theme.down, a)),
        }
        self._lines = {True: LineBatch(), False: LineBatch()}
        self._rects = {True: RectBatch(), False: RectBatch()}
        self._decimated = False
        super().__init__(model, theme)

    def _y_extent(self, bars: Bars) -> tuple[float, float]:
        return 0.0, float(bars['volume'].max())

    def _cols_y_extent(self, cols: Decimated) -> tuple[float, float]:
        return 0.0, float(cols.volume.max())

    def _build(self, frame: Frame) -> None:
        self._decimated = frame.decimated
        if frame.decimated:
            c = frame.cols
            x, up, v = c.x, c.close >= c.open, c.volume
        else:
            b = frame.bars
            x = np.arange(frame.start, frame.start + frame.count, dtype=np.float64)
            up, v = b['close'] >= b['open'], b['volume']
        for side, mask in ((True, up), (False, ~up)):
            xs, vs = x[mask], v[mask]
            if frame.decimated:
                self._lines[side].set(xs, np.zeros_like(vs), xs, vs)
                self._rects[side].set(*([np.empty(0)] * 4))
            else:
                self._lines[side].set(*([np.empty(0)] * 4))
                self._rects[side].set(xs - BAR_WIDTH / 2, np.zeros_like(vs), BAR_WIDTH, vs)

    def _draw_bulk(self, p: QtGui.QPainter) -> None:
        for side in (True, False):
            if self._decimated:
                p.setPen(self._pens[side])
                self._lines[side].draw(p)
            else:
                p.setPen(QtCore.Qt.PenStyle.NoPen)
                p.setBrush(self._brushes[side])
                self._rects[side].draw(p)

    def _draw_last(self, p: QtGui.QPainter, index: int, bar: dict[str, float], decimated: bool) -> None:
        side = bar['close'] >= bar['open']
        v = bar['volume']
        if decimated:
            p.setPen(self._pens[side])
            p.drawLine(QtCore.QPointF(index, 0.0), QtCore.QPointF(index, v))
        else:
            p.setPen(QtCore.Qt.PenStyle.NoPen)
            p.setBrush(self._brushes[side])
            p.drawRect(QtCore.QRectF(index - BAR_WIDTH / 2, 0.0, BAR_WIDTH, v))
