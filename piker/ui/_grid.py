"""Grid lines of a pane, drawn in the view from its axes' tick values.

pyqtgraph draws grid lines as part of each AxisItem, which makes every axis
as big as the whole view: any small repaint (a live tick, a cursor move)
then replays all the axis' tick lines and labels, and the axis draws its
grid one `drawLine` call per line from Python. This item draws the same
lines (at the axes' own tick values, so they line up with the labels) in
one batched call per tick level and only for the view's current range.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui

from ._primitives import LineBatch
from ._theme import DARK, Theme, qcolor

LEVEL_ALPHA = (46, 20)   # major, minor tick levels


class GridItem(pg.GraphicsObject):
    """Vertical lines at `x_axis` ticks and horizontal lines at `y_axis` ticks."""

    def __init__(self, x_axis: pg.AxisItem, y_axis: pg.AxisItem, theme: Theme = DARK) -> None:
        super().__init__()
        self.x_axis = x_axis
        self.y_axis = y_axis
        self._pens = [pg.mkPen(qcolor(theme.muted, a), width=1) for a in LEVEL_ALPHA]
        self._batches = [LineBatch() for _ in LEVEL_ALPHA]
        self._rect = QtCore.QRectF()
        self._key: tuple | None = None
        self.setZValue(-100)

    def viewRangeChanged(self) -> None:  # noqa: N802 (pyqtgraph hook)
        self.prepareGeometryChange()
        self._rect = QtCore.QRectF()
        self.update()

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802
        if self._rect.isNull():
            vr = self.viewRect()
            self._rect = QtCore.QRectF(vr) if vr is not None else QtCore.QRectF()
        return QtCore.QRectF(self._rect)

    def _rebuild(self) -> None:
        vb = self.getViewBox()
        if vb is None:
            return
        (x0, x1), (y0, y1) = vb.viewRange()
        w, h = vb.width(), vb.height()
        key = (x0, x1, y0, y1, w, h)
        if key == self._key:
            return
        self._key = key
        xt = self.x_axis.tickValues(x0, x1, w) if w > 0 else []
        yt = self.y_axis.tickValues(y0, y1, h) if h > 0 else []
        for level, batch in enumerate(self._batches):
            xs = np.asarray(xt[level][1] if level < len(xt) else [], dtype=float)
            ys = np.asarray(yt[level][1] if level < len(yt) else [], dtype=float)
            batch.set(
                np.r_[xs, np.full(len(ys), x0)],
                np.r_[np.full(len(xs), y0), ys],
                np.r_[xs, np.full(len(ys), x1)],
                np.r_[np.full(len(xs), y1), ys],
            )

    def paint(self, p: QtGui.QPainter, opt=None, widget=None) -> None:
        self._rebuild()
        for pen, batch in zip(self._pens, self._batches, strict=True):
            p.setPen(pen)
            batch.draw(p)
