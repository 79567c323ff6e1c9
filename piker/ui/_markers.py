"""Execution markers: fill arrows and triggered-alert marks.

Placed in chart coordinates (bar index, price) so they stay on the bar and
price where the event happened while the view pans and zooms. A buy fill
is an arrow pointing up at the fill price from below, a sell fill one
pointing down from above; a triggered alert is a diamond at the trigger
price.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg

from ._theme import DARK, Theme, qcolor

if TYPE_CHECKING:
    from ._chart import ChartWidget

ARROW_HEAD = 16     # px
ARROW_TAIL = 10     # px
ALERT_SIZE = 13     # px


class ExecMarkers:
    """Fill arrows and alert marks of one chart (`fills`, `alerts` record them)."""

    def __init__(self, chart: ChartWidget, theme: Theme = DARK) -> None:
        self.chart = chart
        self.theme = theme
        self.arrows: list[pg.ArrowItem] = []
        # (bar index, price, action) of every fill / (bar index, price) of alerts
        self.fills: list[tuple[int, float, str]] = []
        self.alerts: list[tuple[int, float]] = []
        self._alert_item = pg.ScatterPlotItem(
            symbol='d', size=ALERT_SIZE,
            pen=pg.mkPen(qcolor(theme.background), width=1),
            brush=pg.mkBrush(qcolor(theme.alert)),
        )
        self._alert_item.setZValue(700)
        chart.price_plot.addItem(self._alert_item, ignoreBounds=True)

    def _index_at(self, t: float) -> int:
        model = self.chart.model
        return model.index_of_time(t) if len(model) else 0

    def add_fill(self, action: str, price: float, time_s: float) -> pg.ArrowItem:
        """Arrow at `price` on the bar covering epoch `time_s`."""
        idx = self._index_at(time_s)
        buy = action == 'buy'
        colour = qcolor(self.theme.buy if buy else self.theme.sell)
        arrow = pg.ArrowItem(
            pos=(idx, price),
            angle=90 if buy else -90,   # tip at the price: up for buys, down for sells
            headLen=ARROW_HEAD, tipAngle=55, tailLen=ARROW_TAIL, tailWidth=5,
            pen=pg.mkPen(qcolor(self.theme.background), width=1),
            brush=pg.mkBrush(colour),
        )
        arrow.setZValue(700)
        self.chart.price_plot.addItem(arrow, ignoreBounds=True)
        self.arrows.append(arrow)
        self.fills.append((idx, float(price), action))
        return arrow

    def add_alert(self, price: float, time_s: float) -> None:
        """Diamond at `price` on the bar covering epoch `time_s`."""
        idx = self._index_at(time_s)
        self.alerts.append((idx, float(price)))
        self._alert_item.addPoints([{'pos': (idx, price)}])
