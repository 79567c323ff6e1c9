"""numpy-backed batches of QLineF / QRectF drawn with one QPainter call.

Calling `QPainter.drawLines(list_of_QLineF)` from Python is dominated by
building the Python objects. pyqtgraph's `PrimitiveArray` exposes the C
array behind `drawLines`/`drawRects` as a numpy array (sip.array on PyQt,
a raw pointer on PySide), so a whole batch is filled by vectorised numpy
column assignment and drawn in a single C++ call. pyqtgraph's own
BarGraphItem and PlotCurveItem draw the same way.
"""
from __future__ import annotations

import numpy as np
from pyqtgraph.Qt import QtCore, QtGui
from pyqtgraph.Qt.internals import PrimitiveArray


class _Batch:
    _klass: type = QtCore.QLineF

    def __init__(self) -> None:
        self._arr = PrimitiveArray(self._klass, 4)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _fill(self, a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> None:
        n = len(a)
        self._n = n
        self._arr.resize(n)
        if n:
            mem = self._arr.ndarray()
            mem[:, 0] = a
            mem[:, 1] = b
            mem[:, 2] = c
            mem[:, 3] = d


class LineBatch(_Batch):
    """Segments `(x1, y1) -> (x2, y2)`."""

    _klass = QtCore.QLineF

    def set(self, x1: np.ndarray, y1: np.ndarray, x2: np.ndarray, y2: np.ndarray) -> None:
        self._fill(x1, y1, x2, y2)

    def draw(self, painter: QtGui.QPainter) -> None:
        if self._n:
            painter.drawLines(*self._arr.drawargs())


class RectBatch(_Batch):
    """Rectangles `(x, y, w, h)`."""

    _klass = QtCore.QRectF

    def set(self, x: np.ndarray, y: np.ndarray, w: np.ndarray | float, h: np.ndarray) -> None:
        self._fill(x, y, w, h)

    def draw(self, painter: QtGui.QPainter) -> None:
        if self._n:
            painter.drawRects(*self._arr.drawargs())
