"""The chart workspace: indicators, search, tabs and linked views around the charts.

Kept apart from `_app` (the session and its connections) so each feature
is a few lines there:

- per chart an `IndicatorController` (its own indicator actor) running
  the `[indicators]` choice of `conf.toml`, checked before any window
  work (`prepare()` raises `ConfigError` naming the bad key);
- `ctrl+l`: the symbol search box (`_search`); choosing a market opens
  its tab (its own feed, order mode and indicators) or switches to it;
- `ctrl+Tab` / `ctrl+shift+Tab`: next / previous tab;
- with `linked`, the 1 m view of the current market under the 1 s tab
  (`_linked`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from pyqtgraph.Qt import QtCore, QtGui

from ..log import get_logger
from ._search import SearchBox, is_search_key, load_catalogue, searched_backends

if TYPE_CHECKING:
    from ..config import IndicatorsConf
    from ..data import Feed
    from ..fsp import Selected
    from ._app import ChartApp
    from ._indicators import IndicatorController
    from ._linked import LinkedDock, LinkedView

log = get_logger(__name__)

# extras wait for the first painted frame, at most this long (a window
# that is never shown never paints)
FIRST_FRAME_WAIT = 2.0


def tab_step(ev: QtGui.QKeyEvent) -> int:
    """+1 for ctrl+Tab, -1 for ctrl+shift+Tab, 0 for any other key."""
    mods = ev.modifiers()
    if not mods & QtCore.Qt.KeyboardModifier.ControlModifier:
        return 0
    key = ev.key()
    if key == QtCore.Qt.Key.Key_Backtab:
        return -1
    if key == QtCore.Qt.Key.Key_Tab:
        return -1 if mods & QtCore.Qt.KeyboardModifier.ShiftModifier else 1
    return 0


class Workspace:
    def __init__(self, app: ChartApp, indicators: IndicatorsConf | None = None,
                 linked: bool = False) -> None:
        self.app = app
        self.win = app.win
        self.conf = indicators
        self.linked = linked
        self.selected: dict[str, list[Selected]] = {}
        self.controllers: dict[str, IndicatorController] = {}
        self.views: dict[str, LinkedView] = {}
        self.dock: LinkedDock | None = None
        self.search = SearchBox(self.win, self.app.theme)
        self.search.sig_chosen.connect(self.open_market)
        self.catalogue_loaded = trio.Event()
        self._loading = False
        self._n: trio.Nursery | None = None
        self.first_frame = trio.Event()
        self.win.sig_first_frame.connect(self._on_first_frame)
        self.win.sig_chart_added.connect(self._watch_keys)
        self.win.tabs.currentChanged.connect(self._on_tab)

    # --- start-up ------------------------------------------------------------

    def prepare(self) -> None:
        """Load and check `[indicators]` for the markets (`ConfigError`)."""
        from ..config import load_conf
        from ..fsp import resolve

        if self.conf is None:
            self.conf = load_conf().indicators
        for fqme in self.app.fqmes:
            self.selected[fqme] = resolve(self.conf, fqme)

    def start(self, n: trio.Nursery) -> None:
        self._n = n

    def charts_drawn(self, fqmes: list[str], feed: Feed | None = None) -> None:
        """The first history of `fqmes` (from `feed`) is drawn: start their
        extras once the window has painted it (off the cold-start path)."""
        assert self._n is not None
        self._n.start_soon(self._start_extras, list(fqmes), feed)

    def _on_first_frame(self) -> None:
        self.first_frame.set()

    async def _start_extras(self, fqmes: list[str], feed: Feed | None) -> None:
        from ..config import ConfigError
        from ..fsp import resolve
        from ._indicators import IndicatorController

        with trio.move_on_after(FIRST_FRAME_WAIT):
            await self.first_frame.wait()
        assert self._n is not None
        for fqme in fqmes:
            chart = self.win.chart(fqme)
            if fqme not in self.selected:
                try:
                    self.selected[fqme] = resolve(self.conf, fqme) if self.conf else []
                except ConfigError as err:
                    self.win.status.set_order_status(f'fsp:{fqme}', str(err), final=True)
                    self.selected[fqme] = []
            if fqme not in self.controllers:
                ctl = IndicatorController(
                    chart, self.selected[fqme], modules=list(self.conf.modules if self.conf else ()),
                    status=self.win.status, loglevel=self.app.loglevel, theme=self.app.theme,
                )
                self.controllers[fqme] = ctl
                self._n.start_soon(ctl.run)
            if self.linked and fqme not in self.views:
                self._n.start_soon(self._open_linked, fqme, feed)

    # --- keys ------------------------------------------------------------------

    def _watch_keys(self, fqme: str) -> None:
        self.win.chart(fqme).view.sig_key_press.connect(self._on_key)

    def _on_key(self, ev: QtGui.QKeyEvent) -> None:
        if is_search_key(ev):
            self.open_search()
            return
        step = tab_step(ev)
        if step:
            self.switch_tab(step)

    def switch_tab(self, step: int) -> None:
        tabs = self.win.tabs
        if tabs.count() > 1:
            tabs.setCurrentIndex((tabs.currentIndex() + step) % tabs.count())

    # --- search ----------------------------------------------------------------

    def open_search(self) -> None:
        self.search.open()
        if not self.catalogue_loaded.is_set() and not self._loading and self._n is not None:
            self._loading = True
            self._n.start_soon(self._load_catalogue)

    async def _load_catalogue(self) -> None:
        backends = searched_backends(self.win.charts)
        self.search.set_entries({}, f'loading markets of {", ".join(backends)}…')
        entries, errors = await load_catalogue(backends, self.app.loglevel)
        note = f'{len(entries)} markets ({", ".join(backends)})'
        if errors:
            note += '; not reachable: ' + ', '.join(errors)
            for name, why in errors.items():
                log.warning('symbol search: %s: %s', name, why)
        self.search.set_entries(entries, note)
        self._loading = False
        self.catalogue_loaded.set()

    def open_market(self, fqme: str) -> None:
        """Switch to `fqme`'s tab, or open one (its own feed session)."""
        fqme = fqme.strip().lower()
        if fqme in self.win.charts:
            self.win.set_current(fqme)
            return
        assert self._n is not None
        self.win.add_chart(fqme, timeframe=self.app.timeframe)
        self.win.set_current(fqme)
        self._n.start_soon(self.app._run_feed, self._n, [fqme])

    # --- linked views ------------------------------------------------------------

    async def _open_linked(self, fqme: str, feed: Feed | None) -> None:
        from ._linked import SLOW_TIMEFRAME, LinkedView, add_linked_dock

        if self.dock is None:
            self.dock = add_linked_dock(self.win)
        view = LinkedView(self.win.chart(fqme), self.app.theme)
        self.views[fqme] = view
        self.dock.add(view)
        self._on_tab()
        feed = feed or self.app.feed
        if feed is None:
            return
        try:
            bars = await feed.history(fqme, SLOW_TIMEFRAME)
        except Exception as err:  # noqa: BLE001 - the fast chart goes on without it
            log.warning('%s: no 1m history for the linked view: %s', fqme, err)
            return
        view.set_history(bars)

    def on_quotes(self, batch: dict[str, Any]) -> None:
        for fqme, quote in batch.items():
            view = self.views.get(fqme)
            if view is not None:
                view.update_quote(quote)

    def _on_tab(self, *_: Any) -> None:
        if self.dock is not None:
            chart = self.win.current_chart()
            self.dock.show_for(chart.fqme if chart is not None else None)
