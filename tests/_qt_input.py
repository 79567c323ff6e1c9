"""Deterministic pointer input for UI tests.

`qtbot.mouseMove` moves the (offscreen) platform cursor, and the platform
then delivers the move to whichever exposed top-level window contains that
global point: a window leaked by an earlier test, or a cursor already at
that point, makes the move land elsewhere or not at all. Sending the event
straight to the widget is synchronous and always hits it.
"""
from __future__ import annotations


def hover(widget, pos, buttons=None) -> None:
    """Deliver one mouse-move at widget-local `pos` (QPoint/QPointF)."""
    from pyqtgraph.Qt import QtCore, QtGui, QtWidgets
    b = buttons if buttons is not None else QtCore.Qt.MouseButton.NoButton
    QtWidgets.QApplication.sendEvent(widget, QtGui.QMouseEvent(
        QtCore.QEvent.Type.MouseMove, QtCore.QPointF(pos), b, b,
        QtCore.Qt.KeyboardModifier.NoModifier,
    ))
