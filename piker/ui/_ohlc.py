"""Candlestick graphics item: green/red candles, M4-decimated when dense."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui

from ._bars import BarsModel
from ._decimate import Decimated
from ._graphics import Bars, BarsGraphicsItem, Frame
from ._primitives import LineBatch, RectBatch
from ._theme import DARK, Theme, qcolor

BODY_WIDTH = 0.7  # of a bar's x slot


class CandlestickItem(BarsGraphicsItem):
    """OHLC candles of a `BarsModel`, one x unit per bar.

    Zoomed in, each bar is a wick line plus a filled body. Zoomed out past
    one bar per pixel column, each column is one high-low line coloured by
    the column's first open vs last close, which renders the same pixels as
    drawing every bar.
    """

    def __init__(self, model: BarsModel, theme: Theme = DARK) -> None:
        self._pens = {
            True: pg.mkPen(qcolor(theme.up), width=1),
            False: pg.mkPen(qcolor(theme.down), width=1),
        }
        self._brushes = {
            True: pg.mkBrush(qcolor(theme.up)),
            False: pg.mkBrush(qcolor(theme.down)),
        }
        self._wicks = {True: LineBatch(), False: LineBatch()}
        self._bodies = {True: RectBatch(), False: RectBatch()}
        self._has_bodies = False
        super().__init__(model, theme)

    def _y_extent(self, bars: Bars) -> tuple[float, float]:
        return float(bars['low'].min()), float(bars['high'].max())

    def _cols_y_extent(self, cols: Decimated) -> tuple[float, float]:
        return float(cols.low.min()), float(cols.high.max())

    def _build(self, frame: Frame) -> None:
        if frame.decimated:
            c = frame.cols
            x, o, h, lo, cl = c.x, c.open, c.high, c.low, c.close
        else:
            b = frame.bars
            x = np.arange(frame.start, frame.start + frame.count, dtype=np.float64)
            o, h, lo, cl = b['open'], b['high'], b['low'], b['close']
        up = cl >= o
        for side, mask in ((True, up), (False, ~up)):
            xs = x[mask]
            self._wicks[side].set(xs, lo[mask], xs, h[mask])
            if frame.decimated:
                self._bodies[side].set(*([np.empty(0)] * 4))
            else:
                bot = np.minimum(o[mask], cl[mask])
                top = np.maximum(o[mask], cl[mask])
                self._bodies[side].set(xs - BODY_WIDTH / 2, bot, BODY_WIDTH, top - bot)
        self._has_bodies = not frame.decimated

    def _draw_bulk(self, p: QtGui.QPainter) -> None:
        for side in (True, False):
            p.setPen(self._pens[side])
            self._wicks[side].draw(p)
            if self._has_bodies:
                p.setBrush(self._brushes[side])
                self._bodies[side].draw(p)

    def _draw_last(self, p: QtGui.QPainter, index: int, bar: dict[str, float], decimated: bool) -> None:
        o, h, lo, c = bar['open'], bar['high'], bar['low'], bar['close']
        side = c >= o
        p.setPen(self._pens[side])
        p.drawLine(QtCore.QPointF(index, lo), QtCore.QPointF(index, h))
        if not decimated:
            p.setBrush(self._brushes[side])
            p.drawRect(QtCore.QRectF(
                index - BODY_WIDTH / 2, min(o, c), BODY_WIDTH, abs(c - o),
            ))
