"""Crosshair cursor spanning every pane of a chart, with axis read-outs.

One vertical line per pane (all at the hovered bar), a horizontal line in
the hovered pane only, the value under the cursor tagged on that pane's
y axis and the bar's time tagged on the bottom time axis.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyqtgraph as pg
from pyqtgraph.Qt import QtCore

from ._axes import AxisLabel
from ._theme import DARK, Theme, qcolor


@dataclass(slots=True)
class CursorPane:
    """One plot the crosshair spans, with its y axis and value formatter."""

    plot: pg.PlotItem
    y_axis: pg.AxisItem
    formatter: Callable[[float], str]


class Crosshair:
    """Vertical + horizontal cursor lines with price and time tags."""

    def __init__(
        self,
        panes: Sequence[CursorPane],
        time_axis: pg.AxisItem,
        time_formatter: Callable[[float], str],
        theme: Theme = DARK,
    ) -> None:
        self.panes = list(panes)
        pen = pg.mkPen(qcolor(theme.cursor), width=1, style=QtCore.Qt.PenStyle.DashLine)
        self._vlines: list[pg.InfiniteLine] = []
        self._hlines: list[pg.InfiniteLine] = []
        self._ylabels: list[AxisLabel] = []
        for pane in self.panes:
            v = pg.InfiniteLine(angle=90, movable=False, pen=pen)
            h = pg.InfiniteLine(angle=0, movable=False, pen=pen)
            for line in (v, h):
                line.setZValue(1000)
                line.setVisible(False)
                pane.plot.addItem(line, ignoreBounds=True)
            self._vlines.append(v)
            self._hlines.append(h)
            self._ylabels.append(
                AxisLabel(
                    pane.y_axis, pane.formatter, bg=theme.cursor, theme=theme, z=100,
                    stacked=False,
                )
            )
        self.time_label = AxisLabel(time_axis, time_formatter, bg=theme.cursor, theme=theme, z=100)
        self.index: int | None = None       # hovered bar index
        self.pane: int | None = None        # hovered pane
        self.value: float | None = None     # y value in the hovered pane

    @property
    def price_label(self) -> AxisLabel:
        """Tag on the first (price) pane's axis."""
        return self._ylabels[0]

    @property
    def vline(self) -> pg.InfiniteLine:
        """The first pane's vertical line (linked panes follow it)."""
        return self._vlines[0]

    def y_label(self, pane: int) -> AxisLabel:
        return self._ylabels[pane]

    def move_to(self, pane: int, x: float, y: float) -> None:
        """Put the cursor on bar `round(x)` at value `y` of pane `pane`."""
        idx = int(round(x))
        self.index, self.pane, self.value = idx, pane, y
        for i, (v, h, lab) in enumerate(zip(self._vlines, self._hlines, self._ylabels, strict=True)):
            v.setPos(idx)
            v.setVisible(True)
            hovered = i == pane
            h.setVisible(hovered)
            if hovered:
                h.setPos(y)
                lab.set_value(y)
            else:
                lab.set_value(None)
        self.time_label.set_value(float(idx))

    def hide(self) -> None:
        """Cursor left the chart."""
        self.index = self.pane = self.value = None
        for line in (*self._vlines, *self._hlines):
            line.setVisible(False)
        for lab in self._ylabels:
            lab.set_value(None)
        self.time_label.set_value(None)
