"""`piker chart`'s start-up: the service tree boots while the UI imports.

Cold start used to be strictly serial: import the whole UI (pyqtgraph's
graphics, order mode, accounting, the EMS client: ~0.5-0.8 s), open the
actor runtime, *then* spawn brokerd (another Python process that imports
tractor and its backend: ~0.5-0.8 s) and only then load history. Here
the QApplication and the trio guest run start first with the least
imported; the runtime opens and brokerd's spawn is started for every
market's backend, and the UI modules are imported in a worker thread
meanwhile, so the child boots on the other core while this process
imports. The spawn runs in pikerd's own nursery (`Services.ensure_daemon`)
and the chart's `open_feed()` finds the daemon started (or waits for it).

Only a process that starts its own tree gains: joining a running pikerd
finds brokerd already up.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

import trio

from ..log import get_logger

log = get_logger(__name__)


def run_chart_booted(fqmes: list[str], loglevel: str | None = None, **kw: Any) -> Any:
    """`run_chart()` for the command line: same arguments, same result (the
    `ChartApp`), with brokerd spawned in parallel with the UI imports."""
    from pyqtgraph.Qt import QtWidgets

    from ._guest import run_qt_guest

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(['piker'])
    app.setApplicationName('piker')
    out: dict[str, Any] = {}

    async def main() -> None:
        from ..accounting import unpack_fqme
        from ..service import maybe_open_pikerd

        async with maybe_open_pikerd(loglevel=loglevel) as services:
            async with trio.open_nursery() as n:
                for broker in dict.fromkeys(unpack_fqme(f)[0] for f in fqmes):
                    n.start_soon(_prewarm, broker, loglevel)
                # the store too (polars): the window opens with the stored bars
                mod = await trio.to_thread.run_sync(_import_app)
                # the feed stack too, while brokerd boots
                n.start_soon(trio.to_thread.run_sync, importlib.import_module, 'piker.data')
                from ._window import get_qapp
                get_qapp()      # the theme, now that it is imported
                chart = mod.ChartApp(fqmes, loglevel=loglevel, owns_daemons=services is not None, **kw)
                out['app'] = chart
                try:
                    await chart.run()
                finally:
                    chart.win.allow_close()
                    chart.win.close()
                n.cancel_scope.cancel()

    run_qt_guest(main, app=app)
    return out.get('app')


def _import_app() -> Any:
    importlib.import_module('piker.storage')
    return importlib.import_module('piker.ui._app')


async def _prewarm(broker: str, loglevel: str | None) -> None:
    """Start brokerd.<broker>'s spawn now; errors are the feed's to report."""
    from ..brokers._brokerd import maybe_spawn_brokerd

    try:
        async with maybe_spawn_brokerd(broker, loglevel=loglevel):
            pass
    except Exception as err:  # noqa: BLE001 - open_feed() will raise it with context
        log.debug('pre-spawn of brokerd.%s failed: %r', broker, err)


# Qt messages that say nothing to a user (the offscreen platform has no
# window manager to pass size hints to)
_QT_NOISE = ('propagateSizeHints', 'XDG_RUNTIME_DIR')


def quiet_qt_noise() -> None:
    """Drop known-harmless Qt warnings; print every other Qt message as usual."""
    from pyqtgraph.Qt import QtCore

    def handler(_mode: Any, _ctx: Any, msg: str) -> None:
        if not any(noise in msg for noise in _QT_NOISE):
            print(msg, file=sys.stderr)

    QtCore.qInstallMessageHandler(handler)
