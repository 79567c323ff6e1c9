"""Live bid/ask/last price markers: horizontal lines tagged on the price axis
(greyed while the quote feed is stale)."""
from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from pyqtgraph.Qt import QtCore

from ._axes import AxisLabel
from ._theme import DARK, Theme, qcolor

L1_KINDS = ('ask', 'last', 'bid')


class L1Markers:
    """One horizontal line + axis tag per L1 level, kept unstacked on the axis.

    When bid, ask and last are a few ticks apart their tags would overlap;
    `declutter()` pushes them apart vertically (ask above, bid below) while
    the lines stay at their exact prices.
    """

    def __init__(
        self,
        plot: pg.PlotItem,
        axis: pg.AxisItem,
        formatter: Callable[[float], str],
        theme: Theme = DARK,
    ) -> None:
        colours = {'bid': theme.bid, 'ask': theme.ask, 'last': theme.last}
        self._colours = colours
        self._stale_colour = theme.stale
        self.stale = False
        styles = {
            'bid': QtCore.Qt.PenStyle.DashLine,
            'ask': QtCore.Qt.PenStyle.DashLine,
            'last': QtCore.Qt.PenStyle.DotLine,
        }
        self.lines: dict[str, pg.InfiniteLine] = {}
        self.labels: dict[str, AxisLabel] = {}
        self.prices: dict[str, float | None] = dict.fromkeys(L1_KINDS)
        for kind in L1_KINDS:
            line = pg.InfiniteLine(
                angle=0, movable=False,
                pen=pg.mkPen(qcolor(colours[kind], 200), width=1, style=styles[kind]),
            )
            line.setZValue(500)
            line.setVisible(False)
            plot.addItem(line, ignoreBounds=True)
            self.lines[kind] = line
            label = AxisLabel(axis, formatter, bg=colours[kind], theme=theme, z=50)
            self.labels[kind] = label
        view = axis.linkedView()
        if view is not None:
            # after each label's own reposition (connected first)
            view.sigRangeChanged.connect(self.declutter)
            view.sigResized.connect(self.declutter)

    def set(self, bid: float | None = None, ask: float | None = None, last: float | None = None) -> None:
        """Move the given markers (None leaves a marker where it is)."""
        changed = False
        for kind, price in (('bid', bid), ('ask', ask), ('last', last)):
            if price is None or price == self.prices[kind]:
                continue
            self.prices[kind] = price
            line = self.lines[kind]
            line.setPos(price)
            line.setVisible(True)
            self.labels[kind].set_value(price)
            changed = True
        if changed:
            self.declutter()

    def set_stale(self, stale: bool) -> None:
        """Grey every marker and tag (the feed is lost or silent: these prices
        may be wrong), or give them back their colours."""
        if stale == self.stale:
            return
        self.stale = stale
        for kind, line in self.lines.items():
            colour = self._stale_colour if stale else self._colours[kind]
            pen = line.pen
            pen.setColor(qcolor(colour, 200))
            line.setPen(pen)
            self.labels[kind].set_background(colour)

    def label_text(self, kind: str) -> str:
        return self.labels[kind].text()

    def declutter(self, *_) -> None:
        """Stack overlapping tags top-down so each is at least a tag height apart."""
        anchored = []
        for kind in L1_KINDS:
            if self.prices[kind] is None:
                continue
            y = self.labels[kind].anchor()
            if y is not None:
                anchored.append((y, kind))
        anchored.sort()            # top of the axis first
        placed: float | None = None
        for y, kind in anchored:
            lab = self.labels[kind]
            if placed is not None and y < placed + lab.height():
                y = placed + lab.height()
            lab.set_offset_y(y)
            placed = y
