"""`MainWindow`: one tab per market, a status bar, the dark theme.

`piker chart FQME...` builds one of these, adds a chart per market and
feeds it quote batches (`update_quotes`); order mode later reports through
`status`.
"""
from __future__ import annotations

import sys
from functools import partial
from typing import Any

import numpy as np
from pyqtgraph.Qt import QtCore, QtWidgets

from ._chart import ChartWidget
from ._statusbar import StatusBar
from ._theme import DARK, Theme, apply_dark_theme


def get_qapp(argv: list[str] | None = None, theme: Theme = DARK) -> QtWidgets.QApplication:
    """The process' QApplication (created on first call) with the piker theme."""
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(argv if argv is not None else sys.argv[:1])
        app.setApplicationName('piker')
    apply_dark_theme(app, theme)
    return app


class MainWindow(QtWidgets.QMainWindow):
    """Tabs of `ChartWidget`s (one per fqme) above a `StatusBar`."""

    sig_chart_added = QtCore.Signal(str)     # fqme
    sig_first_frame = QtCore.Signal()        # first chart frame with bars painted (startup timing)

    def __init__(self, theme: Theme = DARK, title: str = 'piker') -> None:
        super().__init__()
        self.theme = theme
        self.setWindowTitle(title)
        self.tabs = QtWidgets.QTabWidget(self)
        self.tabs.setDocumentMode(True)
        self.tabs.setMovable(True)
        self.setCentralWidget(self.tabs)
        self.status = StatusBar(self, theme=theme)
        self.setStatusBar(self.status)
        self._charts: dict[str, ChartWidget] = {}
        self._first_frame_done = False
        self.tabs.currentChanged.connect(self._on_tab_changed)

    # --- charts -------------------------------------------------------------

    def add_chart(
        self,
        fqme: str,
        history: np.ndarray | None = None,
        mkt_info: Any = None,
        timeframe: float = 60.0,
    ) -> ChartWidget:
        """Add (or refresh) the tab of market `fqme` and return its chart."""
        chart = self._charts.get(fqme)
        if chart is not None:
            if mkt_info is not None:
                chart.set_mkt_info(mkt_info)
            if history is not None:
                chart.set_history(history, timeframe)
            self.set_current(fqme)
            return chart
        chart = ChartWidget(fqme, history, timeframe=timeframe, mkt_info=mkt_info, theme=self.theme)
        self._charts[fqme] = chart
        chart.sig_painted.connect(partial(self._on_chart_painted, chart))
        self.tabs.addTab(chart, fqme)
        self.sig_chart_added.emit(fqme)
        return chart

    def chart(self, fqme: str) -> ChartWidget:
        """The chart of `fqme` (KeyError naming the open markets if absent)."""
        try:
            return self._charts[fqme]
        except KeyError:
            raise KeyError(f'no chart for {fqme!r}; open: {sorted(self._charts)}') from None

    @property
    def charts(self) -> dict[str, ChartWidget]:
        return dict(self._charts)

    def current_chart(self) -> ChartWidget | None:
        w = self.tabs.currentWidget()
        return w if isinstance(w, ChartWidget) else None

    def set_current(self, fqme: str) -> None:
        self.tabs.setCurrentWidget(self.chart(fqme))

    def remove_chart(self, fqme: str) -> None:
        chart = self._charts.pop(fqme)
        self.tabs.removeTab(self.tabs.indexOf(chart))
        chart.deleteLater()

    def update_quotes(self, batch: dict[str, dict]) -> None:
        """Route a feed batch (`{fqme: quote}`) to the charts showing those markets."""
        for fqme, quote in batch.items():
            chart = self._charts.get(fqme)
            if chart is not None:
                chart.update_quote(quote)

    # --- internals ------------------------------------------------------------

    def _on_tab_changed(self, _index: int) -> None:
        chart = self.current_chart()
        if chart is not None:
            chart.setFocus()

    def _on_chart_painted(self, chart: ChartWidget) -> None:
        # a chart made before its history arrived paints empty: not a frame yet
        if not self._first_frame_done and len(chart.model):
            self._first_frame_done = True
            self.sig_first_frame.emit()
