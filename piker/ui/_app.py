"""`ChartApp`: the `piker chart` session — window, feed and EMS sessions.

The chart is an ordinary tractor client: `maybe_open_pikerd()` (join the
running service tree or start one in this process), `open_feed()` for
history and quotes, one `open_ems()` session per market for order mode.
trio runs as a guest of Qt's event loop (`run_qt_guest`), so Qt slots and
trio tasks share the main thread.

Start-up draws the charts as soon as the feed has history (the EMS
sessions connect in the background, so the first frame doesn't wait for
emsd and the paper engine to spawn); each market's order mode switches on
when its session's handshake arrives and draws the dialogs and positions
it returned.

Shutdown (TRACTOR.md rules 5 and 14): closing the window (or SIGINT /
SIGTERM) never quits Qt directly. It cancels the app's task nursery,
which lives *inside* the actor runtime, so sessions and the feed unwind
and, when this process is pikerd, its daemons are cancelled gracefully;
only when the trio run has finished does the guest runner quit Qt.
"""
from __future__ import annotations

import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tractor
import trio
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ..log import get_logger
from ._guest import run_qt_guest
from ._order_mode import OrderMode
from ._pane import SettingsDock
from ._theme import DARK, Theme
from ._window import MainWindow, get_qapp

if TYPE_CHECKING:
    from ..config import UIConf
    from ..data import Feed

log = get_logger(__name__)

DEFAULT_SIZE = (1600, 900)


class ChartWindow(MainWindow):
    """`MainWindow` plus the order settings dock and a close request signal.

    While trio runs, a close (window manager, Alt-F4, `close()`) is turned
    into `sig_close_requested` and ignored; the app closes the window for
    real once its trio run has ended (`allow_close()`).
    """

    sig_close_requested = QtCore.Signal()

    def __init__(self, theme: Theme = DARK, title: str = 'piker') -> None:
        super().__init__(theme=theme, title=title)
        self.dock = SettingsDock(self, theme=theme)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self._allow_close = False
        self.tabs.currentChanged.connect(self._sync_dock)

    def allow_close(self) -> None:
        self._allow_close = True

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802
        if self._allow_close:
            ev.accept()
            return
        ev.ignore()
        self.sig_close_requested.emit()

    def _sync_dock(self, *_) -> None:
        chart = self.current_chart()
        self.dock.show_for(chart.fqme if chart is not None else None)


class ChartApp:
    """One chart session over `fqmes` (see the module doc).

    `run()` is the trio entry point (use `run_chart()` from a plain
    process). Read-outs for tests and tools: `win`, `feed`, `modes`
    (fqme -> `OrderMode`), the `ready` event (charts drawn) and
    `ems_ready[fqme]` events: set once that market's EMS session is up
    (`modes[fqme]` exists) or has failed (`ems_errors[fqme]` says why).
    """

    def __init__(
        self,
        fqmes: list[str],
        *,
        mode: str = 'paper',
        timeframe: int = 60,
        loglevel: str | None = None,
        screenshot: Path | str | None = None,
        after: float = 3.0,
        first_frame_t0: float | None = None,
        exit_on_first_frame: bool = False,
        handle_signals: bool = True,
        ui: UIConf | None = None,
        theme: Theme = DARK,
        size: tuple[int, int] = DEFAULT_SIZE,
    ) -> None:
        self.fqmes = [f.strip().lower() for f in fqmes]
        self.mode = mode
        self.timeframe = int(timeframe)
        self.loglevel = loglevel
        self.screenshot = Path(screenshot) if screenshot else None
        self.after = float(after)
        self.first_frame_t0 = first_frame_t0
        self.exit_on_first_frame = exit_on_first_frame
        self.handle_signals = handle_signals
        self.ui = ui
        self.theme = theme
        self.win = ChartWindow(theme=theme, title=f'piker: {" ".join(self.fqmes)}')
        self.win.resize(*size)
        self.win.sig_close_requested.connect(self.request_close)
        self.win.sig_first_frame.connect(self._on_first_frame)
        self.modes: dict[str, OrderMode] = {}
        self.feed: Feed | None = None
        self.first_frame_s: float | None = None
        self.close_requested = False
        self._scope: trio.CancelScope | None = None
        # trio events need no running loop to be created: waitable before run()
        self.ready = trio.Event()
        self.ems_ready: dict[str, trio.Event] = {f: trio.Event() for f in self.fqmes}
        self.ems_errors: dict[str, str] = {}

    # --- control ----------------------------------------------------------------

    def request_close(self) -> None:
        """Ask the session to end (safe from Qt slots and trio tasks)."""
        self.close_requested = True
        if self._scope is not None:
            self._scope.cancel()

    # --- the trio side ------------------------------------------------------------

    async def run(self) -> None:
        """Run the session until the window is closed (or a signal arrives)."""
        from ..service import maybe_open_pikerd

        if self.ui is None:
            from ..config import load_conf
            self.ui = load_conf().ui
        self.win.status.set_order_status('app', 'connecting to pikerd…')
        self.win.show()
        # a runtime already running here (a test, a script embedding the
        # chart) owns the tree: leave its daemons alone on close
        joined = tractor.current_actor(err_on_no_runtime=False) is not None
        try:
            async with maybe_open_pikerd(loglevel=self.loglevel) as services:
                try:
                    async with trio.open_nursery() as n:
                        self._scope = n.cancel_scope
                        if self.close_requested:
                            n.cancel_scope.cancel()
                        if self.handle_signals:
                            n.start_soon(self._watch_signals)
                        await self._run_feed(n)
                finally:
                    self._scope = None
                    if services is not None and not joined:
                        # this process started pikerd: its daemons go with it
                        self.win.status.set_order_status('app', 'stopping daemons…')
                        await stop_daemons()
        finally:
            self._scope = None
            self.win.allow_close()

    async def _run_feed(self, n: trio.Nursery) -> None:
        from ..brokers._errors import FeedError
        from ..data import open_feed

        self.win.status.set_order_status('app', f'loading {", ".join(self.fqmes)}…')
        async with open_feed(self.fqmes, loglevel=self.loglevel) as feed:
            self.feed = feed
            for fqme in feed.fqmes:
                history = await feed.history(fqme, self.timeframe)
                chart = self.win.add_chart(fqme, history, feed.mkts[fqme], self.timeframe)
                quote = feed.first_quotes.get(fqme)
                if quote:
                    chart.update_quote(quote)
            self.win.set_current(feed.fqmes[0])
            self.win.status.clear_order_status('app')
            self.ready.set()
            for fqme in feed.fqmes:
                n.start_soon(self._order_session, fqme)
            if self.screenshot is not None:
                n.start_soon(self._take_screenshot)
            try:
                async for batch in feed.stream:
                    self.win.update_quotes(batch)
                    for fqme, quote in batch.items():
                        mode = self.modes.get(fqme)
                        if mode is not None:
                            mode.on_quote(quote)
            except FeedError as err:
                # keep the window (and order mode) up: the trader decides
                log.error('quote feed lost: %s', err)
                self.win.status.set_order_status('app', f'quote feed lost: {err}')
            await trio.sleep_forever()

    async def _order_session(self, fqme: str) -> None:
        from ..clearing import EMSError, open_ems

        assert self.feed is not None
        key = f'ems:{fqme}'
        status = self.win.status
        status.set_order_status(key, f'{fqme}: connecting to emsd ({self.mode})…')
        try:
            async with open_ems(fqme, mode=self.mode, loglevel=self.loglevel) as (
                client, trades, positions, accounts, dialogs,
            ):
                mode = OrderMode(
                    self.win.chart(fqme), client, self.feed.mkts[fqme], status,
                    accounts=accounts, ui=self.ui, theme=self.theme,
                )
                self.modes[fqme] = mode
                self.win.dock.add(fqme, mode.pane)
                self.win._sync_dock()
                mode.load(dialogs, positions)
                status.set_order_status(key, f'{fqme}: order mode on ({self.mode})', final=True)
                self.ems_ready[fqme].set()
                async for msg in trades:
                    mode.on_msg(msg)
            status.set_order_status(key, f'{fqme}: EMS session ended', final=True)
        except Exception as err:  # noqa: BLE001 - the chart outlives its order session
            if not isinstance(err, EMSError):
                log.exception('order session of %s failed', fqme)
            self.ems_errors[fqme] = str(err) or type(err).__name__
            status.set_order_status(
                key, f'{fqme}: order mode off: {self.ems_errors[fqme]}', final=True,
            )
        finally:
            self.ems_ready[fqme].set()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
            async for sig in sigs:
                log.warning('%s: closing the chart', signal.Signals(sig).name)
                self.request_close()

    async def _take_screenshot(self) -> None:
        assert self.screenshot is not None
        # show order mode on (or its error): wait for the EMS sessions first
        with trio.move_on_after(30):
            for ev in self.ems_ready.values():
                await ev.wait()
        await trio.sleep(self.after)
        self.save_screenshot(self.screenshot)
        self.request_close()

    # --- Qt side ------------------------------------------------------------------

    def save_screenshot(self, path: Path | str) -> Path:
        """Save the window as a PNG (works offscreen)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.win.grab().save(str(path)):
            raise OSError(f'could not write screenshot {path}')
        print(f'saved {path}', file=sys.stderr)
        return path

    def _on_first_frame(self) -> None:
        now = time.time()
        if self.first_frame_t0 is not None:
            self.first_frame_s = now - self.first_frame_t0
            print(f'FIRST_FRAME {self.first_frame_s:.6f}', flush=True)
        if self.exit_on_first_frame:
            self.request_close()


# Qt messages that say nothing to a user (the offscreen platform has no
# window manager to pass size hints to)
_QT_NOISE = ('propagateSizeHints', 'XDG_RUNTIME_DIR')


def quiet_qt_noise() -> None:
    """Drop known-harmless Qt warnings; print every other Qt message as usual."""

    def handler(_mode: Any, _ctx: Any, msg: str) -> None:
        if not any(noise in msg for noise in _QT_NOISE):
            print(msg, file=sys.stderr)

    QtCore.qInstallMessageHandler(handler)


async def stop_daemons(timeout: float = 10.0) -> None:
    """Stop this process's pikerd's daemons, each before the daemons it
    consumes (`Services.stop_all`), while the window says so."""
    from ..service import current_services

    services = current_services()
    if services is not None:
        await services.stop_all(timeout)


def run_chart(
    fqmes: list[str],
    app: QtWidgets.QApplication | None = None,
    driver: Callable[[ChartApp], Awaitable[Any]] | None = None,
    **kw: Any,
) -> ChartApp:
    """Run a `ChartApp` in this process until it closes; returns it.

    `driver(app)`, if given, runs beside the session (tests, scripted
    screenshots); the session is closed when it returns.
    """
    app = app or get_qapp()
    chart_app = ChartApp(fqmes, **kw)

    async def main() -> None:
        if driver is None:
            await chart_app.run()
            return
        async with trio.open_nursery() as n:
            n.start_soon(chart_app.run)
            try:
                await driver(chart_app)
            finally:
                chart_app.request_close()

    try:
        run_qt_guest(main, app=app)
    finally:
        chart_app.win.allow_close()
        chart_app.win.close()
    return chart_app
