"""Live bid/ask/last price markers: horizontal lines tagged on the price axis
(greyed while the quote feed is stale)."""
from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from pyqtgraph.Qt import QtCore

from ._axes import AxisLabel, TagStack
from ._theme import DARK, Theme, qcolor

L1_KINDS = ('ask', 'last', 'bid')


class L1Markers:
    """One horizontal line + axis tag per L1 level.

    When bid, ask and last are a few ticks apart their tags would overlap:
    the axis' `TagStack` pushes them (and any order or position tag) apart
    vertically while the lines stay at their exact prices.
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
        self._axis = axis
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
        """Keep the tags apart (and apart from order and position tags)."""
        TagStack.of(self._axis).declutter()
