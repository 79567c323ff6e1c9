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

Both connections survive their daemon (README, Reliability). When emsd
dies the session ends with `PeerLost`: order mode goes *disconnected* at
once (banner, input refused, lines `unknown`) and the session is reopened
with `Backoff`; the new handshake redraws everything. When brokerd dies or
goes silent the prices turn stale (grey tags, a "quotes stale since"
banner) and the feed is reopened the same way; the charts keep their bars
and the live bar continues. "Silent" means nothing at all heard from
brokerd, whose feed session sends a heartbeat every 0.25 s when there are
no quotes, for `stale_after` seconds (default 2 s, `[ui] stale_after_s`):
a quiet market is never stale, a dead or hung brokerd is, ~1 s before
its stream gives up with `FeedError`. Each loss is one log line.

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
from ._boot import quiet_qt_noise  # noqa: F401 - re-exported
from ._cockpit import Cockpit
from ._docks import layout_path
from ._guest import run_qt_guest
from ._order_mode import OrderMode
from ._pane import SettingsDock
from ._theme import DARK, Theme
from ._window import MainWindow, get_qapp
from ._workspace import Workspace

if TYPE_CHECKING:
    from ..accounting import MktPair
    from ..config import IndicatorsConf, UIConf
    from ..data import Feed
    from ..service import Backoff

log = get_logger(__name__)

DEFAULT_SIZE = (1600, 900)   # at most; a window is fitted to its screen
PANE_KEY = QtCore.Qt.Key.Key_P    # shows / hides the order settings pane
# nothing heard from brokerd for this long (its heartbeat is 0.25 s): stale
DEFAULT_STALE_AFTER = 2.0


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
        self.sig_chart_added.connect(self._watch_keys)

    def toggle_pane(self) -> None:
        """Show or hide the order settings pane (`p`): more room for the chart."""
        self.dock.setVisible(not self.dock.isVisible())

    def _watch_keys(self, fqme: str) -> None:
        self.chart(fqme).view.sig_key_press.connect(self._on_key)

    def _on_key(self, ev: QtGui.QKeyEvent) -> None:
        if ev.key() == PANE_KEY and not ev.isAutoRepeat() and not ev.modifiers():
            self.toggle_pane()

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
    (`modes[fqme]` exists) or emsd refused it (`ems_errors[fqme]` says
    why). `ems_connects[fqme]` / `feed_connects` count the sessions / feeds
    opened so far (reconnects included); `cockpit`: the blotter docks,
    log pane, flatten/market keys and notifications (`_cockpit`);
    `workspace`: indicators, symbol search, tabs, linked views (`_workspace`).

    `stale_after`: seconds without a word from brokerd before the prices
    are marked stale (default `[ui] stale_after_s`, else 2 s); `backoff`:
    makes the `Backoff` of each reconnect loop (tests pass one they hold);
    `owns_daemons`: stop the daemons on close even though the runtime was
    already open (its opener started pikerd for this chart); default: only
    if `run()` itself started pikerd.
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
        size: tuple[int, int] | None = None,
        stale_after: float | None = None,
        backoff: Callable[[], Backoff] | None = None,
        owns_daemons: bool | None = None,
        indicators: IndicatorsConf | None = None,
        linked: bool = False,
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
        if size is None:
            # a screenshot is an image, not a window on a screen
            size = DEFAULT_SIZE if self.screenshot else fit_to_screen(self.win, DEFAULT_SIZE)
        self.win.resize(*size)
        self.win.sig_close_requested.connect(self.request_close)
        self.win.sig_first_frame.connect(self._on_first_frame)
        # blotters, log pane, flatten keys, notifications (`_cockpit`)
        self.cockpit = Cockpit(
            self.win, theme=theme, layout_path=layout_path(), extra_docks=[self.win.dock],
        )
        self.stale_after = stale_after
        self.owns_daemons = owns_daemons
        # a fresh one per reconnect loop (tests inject one they control)
        self._backoff = backoff or _default_backoff
        self.modes: dict[str, OrderMode] = {}
        self.feed: Feed | None = None
        self.mkts: dict[str, MktPair] = {}
        self.first_frame_s: float | None = None
        self.close_requested = False
        self._scope: trio.CancelScope | None = None
        # trio events need no running loop to be created: waitable before run()
        self.ready = trio.Event()
        self.ems_ready: dict[str, trio.Event] = {f: trio.Event() for f in self.fqmes}
        self.ems_errors: dict[str, str] = {}
        self.ems_connects: dict[str, int] = dict.fromkeys(self.fqmes, 0)
        self.feed_connects = 0
        # indicators, symbol search, tab keys, linked views (`_workspace`)
        self.workspace = Workspace(self, indicators, linked)

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
        if self.stale_after is None:
            self.stale_after = self.ui.stale_after_s or DEFAULT_STALE_AFTER
        self.cockpit.configure(self.ui)
        self.workspace.prepare()
        self.win.status.set_order_status('app', 'connecting to pikerd…')
        for fqme in self.fqmes:
            # the widgets are built while the daemons start, with the bars
            # stored on this host (a second run paints at once); the
            # backend's history merges in when the feed is up
            self.win.add_chart(fqme, await _stored(fqme, self.timeframe),
                               timeframe=self.timeframe)
        self.win.show()
        # a runtime already running here (a test, a script embedding the
        # chart) owns the tree: leave its daemons alone on close
        joined = tractor.current_actor(err_on_no_runtime=False) is not None
        if self.owns_daemons is not None:
            # the caller opened this process's pikerd for us (`run_chart_booted`)
            joined = not self.owns_daemons
        try:
            async with maybe_open_pikerd(loglevel=self.loglevel) as services:
                try:
                    async with trio.open_nursery() as n:
                        self._scope = n.cancel_scope
                        if self.close_requested:
                            n.cancel_scope.cancel()
                        if self.handle_signals:
                            n.start_soon(self._watch_signals)
                        self.workspace.start(n)
                        await self._run_feed(n)
                finally:
                    self._scope = None
                    if services is not None and not joined:
                        # this process started pikerd: its daemons go with it
                        self.win.status.set_order_status('app', 'stopping daemons…')
                        await stop_daemons()
        finally:
            self._scope = None
            self.cockpit.docks.save()
            self.win.allow_close()

    async def _run_feed(self, n: trio.Nursery, fqmes: list[str] | None = None) -> None:
        """Open the feed, draw the charts, stream quotes; reopen a lost feed.

        Failing to open the first feed ends the session (a bad market is
        the user's error); once the charts are up, losses are retried.
        `fqmes`: a market opened later (symbol search), in a feed of its own.
        """
        from ..data import open_feed

        main = fqmes is None
        fqmes = self.fqmes if fqmes is None else fqmes
        self.win.status.set_order_status('app', f'loading {", ".join(fqmes)}…')
        backoff = self._backoff()
        drawn = False
        while True:
            feed: Feed | None = None
            try:
                async with open_feed(fqmes, loglevel=self.loglevel) as feed:
                    if main:
                        self.feed = feed
                    self.feed_connects += 1
                    if not drawn:
                        await self._draw_charts(feed, n)
                        drawn = True
                    else:
                        log.warning('quote feed of %s is back', ', '.join(feed.fqmes))
                    for fqme in feed.fqmes:
                        quote = feed.first_quotes.get(fqme)
                        if quote:
                            self._on_quotes({fqme: quote})
                        self.win.chart(fqme).set_live()
                    backoff.reset()
                    async with trio.open_nursery() as fn:
                        fn.start_soon(self._watch_link, feed)
                        async for batch in feed.stream:
                            self._on_quotes(batch)
                        fn.cancel_scope.cancel()
                why = 'the quote feed ended'
            except BaseException as err:
                if not drawn and main:
                    raise
                why = await _lost(err)
                if not drawn:
                    self.win.status.set_order_status('app', f'cannot open {fqmes}: {why}', final=True)
                    self.win.remove_chart(fqmes[0])
                    return
            if main:
                self.feed = None
            if backoff.attempts == 0:
                log.warning('quote feed lost (%s): reconnecting', why)
            else:
                log.info('quote feed still down (%s): retrying', why)
            self._mark_stale(feed, f'{why}; reconnecting (attempt {backoff.attempts + 1})…',
                             None if main else fqmes)
            await backoff.sleep()

    async def _draw_charts(self, feed: Feed, n: trio.Nursery) -> None:
        """The first feed: a chart per market from its history, then order
        mode (one EMS session per market, in the background)."""
        first = not self.ready.is_set()
        self.mkts.update(feed.mkts)
        for fqme in set(self.win.charts) - set(feed.fqmes) if first else ():
            self.win.remove_chart(fqme)     # pre-made under a name the feed spells otherwise
        for fqme in feed.fqmes:
            # stored bars at once; the backend's (backfilled into the store
            # by brokerd) merge in when they come
            history = await feed.stored(fqme, self.timeframe)
            if len(history):
                n.start_soon(self._backfill, feed, fqme)
            else:
                history = await feed.history(fqme, self.timeframe)
            self.win.add_chart(fqme, history, feed.mkts[fqme], self.timeframe)
        self.win.set_current(feed.fqmes[0])
        self.win.status.clear_order_status('app')
        self.ready.set()
        if self.first_frame_t0 is not None:     # bench: when the feed had served
            print(f'FEED_CHARTS {time.time() - self.first_frame_t0:.6f}', flush=True)
        for fqme in feed.fqmes:
            self.ems_ready.setdefault(fqme, trio.Event())
            self.ems_connects.setdefault(fqme, 0)
            n.start_soon(self._order_session, fqme)
        self.workspace.charts_drawn(list(feed.fqmes), feed)
        if self.screenshot is not None and first:
            n.start_soon(self._take_screenshot)

    async def _backfill(self, feed: Feed, fqme: str) -> None:
        """Merge the backend's bars into a chart drawn from stored ones."""
        try:
            bars = await feed.history(fqme, self.timeframe)
        except Exception as err:  # noqa: BLE001 - the chart goes on with what it has
            log.warning('%s: backfill failed: %s', fqme, err)
            return
        chart = self.win.charts.get(fqme)
        if chart is not None:
            added = chart.merge_history(bars)
            log.info('%s: backfilled, %d older bars prepended', fqme, added)

    def _on_quotes(self, batch: dict[str, dict]) -> None:
        self.win.update_quotes(batch)
        self.workspace.on_quotes(batch)
        for fqme, quote in batch.items():
            chart = self.win.charts.get(fqme)
            if chart is not None and chart.stale_since is not None:
                chart.set_live()
            mode = self.modes.get(fqme)
            if mode is not None:
                mode.on_quote(quote)
            self.cockpit.on_quote(fqme, quote)

    def _mark_stale(self, feed: Feed | None, why: str, fqmes: list[str] | None = None) -> None:
        """Grey every chart of `feed` (all of `fqmes`, default every chart,
        if it never opened): stale since brokerd was last heard, for `why`."""
        now_t, now = trio.current_time(), time.time()
        for fqme, chart in self.win.charts.items():
            if fqmes is not None and fqme not in fqmes:
                continue
            since = now
            if feed is not None:
                try:
                    since = now - max(now_t - feed.last_heard(fqme), 0.0)
                except ValueError:
                    pass
            chart.set_stale(since, why)

    async def _watch_link(self, feed: Feed) -> None:
        """Stale while brokerd is silent (not even its heartbeat) for
        `stale_after` s; live again as soon as it is heard."""
        from ..accounting import unpack_fqme

        assert self.stale_after is not None
        while True:
            await trio.sleep(min(self.stale_after / 4, 0.25))
            now = trio.current_time()
            for fqme in feed.fqmes:
                chart = self.win.charts.get(fqme)
                if chart is None:
                    continue
                silent = now - feed.last_heard(fqme)
                if silent > self.stale_after:
                    broker = unpack_fqme(fqme)[0]
                    chart.set_stale(
                        time.time() - silent,
                        f'nothing heard from brokerd.{broker} for {silent:.0f}s',
                    )
                elif chart.stale_since is not None:
                    chart.set_live()

    async def _order_session(self, fqme: str) -> None:
        """Order mode of `fqme`: an EMS session, reopened whenever it is lost.

        Only a refusal of the first session (emsd says no: wrong mode, a
        backend without live trading) switches order mode off for good.
        """
        from ..clearing import EMSError, open_ems

        key = f'ems:{fqme}'
        status = self.win.status
        chart = self.win.chart(fqme)
        status.set_order_status(key, f'{fqme}: connecting to emsd ({self.mode})…')
        backoff = self._backoff()
        mode: OrderMode | None = None
        try:
            while True:
                try:
                    async with open_ems(fqme, mode=self.mode, loglevel=self.loglevel) as (
                        client, trades, positions, accounts, dialogs,
                    ):
                        self.ems_connects[fqme] += 1
                        if mode is None:
                            mode = OrderMode(
                                chart, client, self.mkts[fqme], status,
                                accounts=accounts, ui=self.ui, theme=self.theme,
                            )
                            self.modes[fqme] = mode
                            self.win.dock.add(fqme, mode.pane)
                            self.win._sync_dock()
                            chart.banner.clear('ems')
                            mode.load(dialogs, positions)
                            self.cockpit.attach(mode, dialogs, positions)
                        else:
                            mode.reconnect(client, dialogs, positions)
                            self.cockpit.resync(mode, dialogs, positions)
                            log.warning('EMS session of %s is back', fqme)
                        backoff.reset()
                        status.set_order_status(
                            key, f'{fqme}: order mode on ({self.mode})', final=True,
                        )
                        self.ems_ready[fqme].set()
                        await self.cockpit.load_ledgers(mode.mkt.broker, accounts)
                        async for msg in trades:
                            mode.on_msg(msg)
                            self.cockpit.on_msg(msg)
                    why = 'emsd ended the session'
                except BaseException as err:
                    if mode is None and isinstance(err, EMSError):
                        raise
                    why = await _lost(err)
                if mode is None:
                    log.warning('cannot reach emsd for %s (%s): retrying', fqme, why)
                elif backoff.attempts == 0:
                    log.warning('EMS session of %s lost (%s): reconnecting', fqme, why)
                else:
                    log.info('EMS session of %s still down (%s): retrying', fqme, why)
                if mode is not None:
                    mode.disconnect(why)
                else:
                    chart.banner.set(
                        'ems', f'EMS unreachable: retrying... order entry is off ({why})',
                    )
                status.set_order_status(key, f'{fqme}: order mode off: EMS disconnected')
                await backoff.sleep()
        except EMSError as err:
            self.ems_errors[fqme] = str(err) or type(err).__name__
            log.warning('order mode of %s is off: %s', fqme, self.ems_errors[fqme])
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


async def _stored(fqme: str, timeframe: int):
    """`fqme`'s stored bars, or None (none stored, or not a market name)."""
    from ..data._feed import stored_bars

    try:
        bars = await stored_bars(fqme, timeframe)
    except ValueError:
        return None
    return bars if len(bars) else None


# room for the window manager's title bar and borders (unknown before show)
FRAME_ALLOWANCE = (16, 48)


def fit_to_screen(win: QtWidgets.QWidget, want: tuple[int, int]) -> tuple[int, int]:
    """`want`, shrunk to fit the available area (no panels) of `win`'s
    screen, frame included: on a 1600x900 screen a 1600x900 window puts
    its status bar off-screen."""
    screen = win.screen() if hasattr(win, 'screen') else None
    screen = screen or QtGui.QGuiApplication.primaryScreen()
    if screen is None:
        return want
    avail = screen.availableGeometry()
    return (
        max(min(want[0], avail.width() - FRAME_ALLOWANCE[0]), 320),
        max(min(want[1], avail.height() - FRAME_ALLOWANCE[1]), 240),
    )


def _default_backoff() -> Backoff:
    from ..service import Backoff
    return Backoff()


async def _lost(err: BaseException) -> str:
    """Why a connection was lost, in one line (for a log line and a banner).

    Re-raises if this task is being cancelled (the app is closing: not a
    loss) or for `KeyboardInterrupt`/`SystemExit`; exception groups are
    searched for their first real error (tractor wraps the cause of a
    dead peer in `Cancelled`s).
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    if isinstance(err, KeyboardInterrupt | SystemExit):
        raise err
    while isinstance(err, BaseExceptionGroup):
        real = [e for e in err.exceptions if not isinstance(e, trio.Cancelled)]
        err = (real or err.exceptions)[0]
    if not isinstance(err, _link_errors()):
        # not a lost connection but a bug: worth its traceback
        log.error('unexpected %s (reconnecting anyway)', type(err).__name__, exc_info=err)
    return str(err) or type(err).__name__


def _link_errors() -> tuple[type[BaseException], ...]:
    """What a dead, hung or refusing daemon raises in a session or feed."""
    from ..brokers import BrokerError
    from ..clearing import EMSError
    from ..service import ServiceError
    return (
        ServiceError, EMSError, BrokerError, OSError, trio.BrokenResourceError,
        trio.ClosedResourceError, trio.EndOfChannel, trio.TooSlowError, trio.Cancelled,
        tractor.RemoteActorError, tractor.ContextCancelled,
    )


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
