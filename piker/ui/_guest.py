"""Run trio as a *guest* inside Qt's event loop (trio's guest mode).

Qt owns the main thread and its event loop; trio runs its scheduler in
slices that Qt executes as posted events, so Qt callbacks and trio tasks
share one thread. That is what lets order mode call trio's sync APIs
(`MemorySendChannel.send_nowait`, `CancelScope.cancel`) straight from a key
or mouse handler: trio keeps its run context for the thread for the whole
guest run and wakes itself when a callback schedules work.

The one rule (TRACTOR.md rule 14): the Qt loop must outlive the trio run.
Quitting Qt first would abandon trio mid-teardown and orphan sub-actors,
so `run_qt_guest()` quits Qt only from trio's done-callback; anything that
wants the app to end asks trio to finish instead.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from pyqtgraph.Qt import QtCore, QtWidgets

_REENTER = QtCore.QEvent.Type(QtCore.QEvent.registerEventType())


class _ReenterEvent(QtCore.QEvent):
    """A posted event carrying one trio callback to run on the Qt thread."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(_REENTER)
        self.fn = fn


class _Reenter(QtCore.QObject):
    """Receives `_ReenterEvent`s on the main thread and runs their callback."""

    def event(self, ev: QtCore.QEvent) -> bool:  # noqa: D102
        if ev.type() == _REENTER:
            ev.fn()
            return True
        return super().event(ev)


def run_qt_guest(
    async_fn: Callable[..., Awaitable[Any]],
    *args: Any,
    app: QtWidgets.QApplication | None = None,
) -> Any:
    """Run `async_fn(*args)` as a trio guest of `app`'s event loop; return its result.

    Blocks in `app.exec()` until the trio run is done, then re-raises its
    error or returns its value. Never call Qt's `processEvents()` or
    nested event loops from trio code: they would re-enter trio mid-step.
    """
    app = app or QtWidgets.QApplication.instance()
    if app is None:
        raise RuntimeError('run_qt_guest() needs a QApplication (see piker.ui.get_qapp)')
    reenter = _Reenter()
    done: dict[str, Any] = {}

    def run_sync_soon_threadsafe(fn: Callable[[], Any]) -> None:
        # postEvent is thread-safe: trio's I/O thread calls this too
        QtCore.QCoreApplication.postEvent(reenter, _ReenterEvent(fn))

    def done_callback(outcome: Any) -> None:
        done['outcome'] = outcome
        app.quit()

    trio.lowlevel.start_guest_run(
        async_fn, *args,
        run_sync_soon_threadsafe=run_sync_soon_threadsafe,
        done_callback=done_callback,
    )
    # the loop may also be quit by someone else (last window closed with
    # quitOnLastWindowClosed, a test calling app.quit()): keep running it
    # until trio says it is done
    while 'outcome' not in done:
        (app.exec if hasattr(app, 'exec') else app.exec_)()
    return done['outcome'].unwrap()
