"""Linked 1 s and 1 m views of one market (`piker chart --linked`).

The tab shows the fast (1 s) chart; a dock under it shows the same
market at 1 m with the fast chart's visible time span as a shaded
region. Panning or zooming the fast chart moves the region; dragging the
region pans the fast chart. Both charts are fed the same quotes, each
building bars of its own period.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets

from ._chart import ChartWidget
from ._theme import DARK, Theme, qcolor

if TYPE_CHECKING:
    from ._bars import BarsModel

SLOW_TIMEFRAME = 60
REGION_ALPHA = 50
DOCK_MIN_HEIGHT = 160


def index_at_time(model: BarsModel, t: float) -> float:
    """Fractional bar index of epoch time `t` (extrapolated past the data)."""
    n = len(model)
    if not n:
        return 0.0
    times = model.column('time')
    tf = model.timeframe
    if t <= times[0]:
        return (t - times[0]) / tf
    i = int(np.searchsorted(times, t, side='right')) - 1
    return i + min((t - times[i]) / tf, 1.0 if i < n - 1 else math.inf)


class LinkedView:
    """The slow chart of `fast`'s market and the region tracking `fast`."""

    def __init__(self, fast: ChartWidget, theme: Theme = DARK, timeframe: float = SLOW_TIMEFRAME) -> None:
        self.fast = fast
        self.slow = ChartWidget(fast.fqme, timeframe=timeframe, mkt_info=fast.mkt_info, theme=theme)
        self.region = pg.LinearRegionItem(
            orientation='vertical', movable=True,
            brush=pg.mkBrush(qcolor(theme.cursor, REGION_ALPHA)),
            pen=pg.mkPen(qcolor(theme.cursor, 160)),
        )
        self.region.setZValue(-5)
        self.slow.price_plot.addItem(self.region, ignoreBounds=True)
        self._syncing = False
        self.has_history = False
        fast.view.sigXRangeChanged.connect(self.sync)
        fast.view.sigResized.connect(self.sync)
        self.region.sigRegionChanged.connect(self._region_moved)

    def set_history(self, bars: np.ndarray) -> None:
        self.slow.set_history(bars)
        self.has_history = True
        self.sync()

    def update_quote(self, quote: dict[str, Any]) -> None:
        # before its history a quote would start a lone bar the history replaces
        if self.has_history:
            self.slow.update_quote(quote)

    def fast_span(self) -> tuple[float, float]:
        """Epoch seconds of the fast chart's visible span."""
        x0, x1 = self.fast.view.x_range()
        m = self.fast.model
        return float(m.time_at(x0)), float(m.time_at(x1))

    def sync(self, *_: Any) -> None:
        """Put the region over the fast chart's span (in slow bar indices)."""
        if self._syncing or not len(self.slow.model):
            return
        t0, t1 = self.fast_span()
        m = self.slow.model
        r0, r1 = index_at_time(m, t0) - 0.5, index_at_time(m, t1 + self.fast.model.timeframe) - 0.5
        self._syncing = True
        try:
            self.region.setRegion((r0, max(r1, r0 + 0.2)))
        finally:
            self._syncing = False

    def _region_moved(self, *_: Any) -> None:
        """A dragged region pans the fast chart to the same span."""
        if self._syncing or not len(self.fast.model) or not len(self.slow.model):
            return
        r0, _ = self.region.getRegion()
        t0 = float(self.slow.model.time_at(r0 + 0.5))
        x0, x1 = self.fast.view.x_range()
        new_x0 = index_at_time(self.fast.model, t0)
        self._syncing = True
        try:
            self.fast.view.setXRange(new_x0, new_x0 + (x1 - x0), padding=0)
        finally:
            self._syncing = False
        self.sync()


class LinkedDock(QtWidgets.QDockWidget):
    """The dock of the slow views: the current tab's market on top."""

    def __init__(self, parent: QtWidgets.QMainWindow) -> None:
        super().__init__('1m', parent)
        self.setObjectName('linked_1m')
        self.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.stack = QtWidgets.QStackedWidget(self)
        self.setWidget(self.stack)
        self.views: dict[str, LinkedView] = {}

    def add(self, view: LinkedView) -> None:
        self.views[view.fast.fqme] = view
        self.stack.addWidget(view.slow)

    def show_for(self, fqme: str | None) -> None:
        view = self.views.get(fqme or '')
        if view is not None:
            self.stack.setCurrentWidget(view.slow)
            self.setWindowTitle(f'{fqme} 1m: the shaded span is the 1s chart above')

    def size_hint_rows(self) -> None:
        self.setMinimumHeight(DOCK_MIN_HEIGHT)


def add_linked_dock(win: QtWidgets.QMainWindow) -> LinkedDock:
    dock = LinkedDock(win)
    dock.size_hint_rows()
    win.addDockWidget(QtCore.Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    # the fast chart is the one traded from: it keeps two thirds of the height
    win.resizeDocks([dock], [max(DOCK_MIN_HEIGHT, win.height() // 3)], QtCore.Qt.Orientation.Vertical)
    return dock
