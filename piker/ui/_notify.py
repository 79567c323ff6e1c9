"""Desktop notifications for fills and triggered alerts (`[ui] notify`).

Optional and best effort: a trader away from the chart hears about a
fill through the desktop's notification service. `notify-send` (the
freedesktop service's command-line client) if it is installed, else Qt's
`QSystemTrayIcon` if the desktop has a tray, else nothing at all: a box
without either must never see an error for a feature it cannot have.

`Notifier.notify()` never blocks the UI: `notify-send` is started and
left to finish on its own (its exit reaped by a Qt process object).
`notify_for()` turns an EMS `Status` into the one line worth a
notification, or None for everything else.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Protocol

from pyqtgraph.Qt import QtCore, QtWidgets

from ..clearing._messages import Status
from ..log import get_logger

log = get_logger(__name__)

APP_NAME = 'piker'
EXPIRE_MS = 6000


class NotifierLike(Protocol):
    def notify(self, summary: str, body: str) -> None: ...


class Notifier(QtCore.QObject):
    """Sends desktop notifications through whichever service exists.

    `which` finds an executable (injected by tests); `backend` says which
    service is used: 'notify-send', 'tray' or 'none'.
    """

    def __init__(
        self,
        parent: QtCore.QObject | None = None,
        *,
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        super().__init__(parent)
        self._exe = which('notify-send')
        self._tray: QtWidgets.QSystemTrayIcon | None = None
        self._procs: set[QtCore.QProcess] = set()
        app = QtWidgets.QApplication.instance()
        if self._exe is None and app is not None and QtWidgets.QSystemTrayIcon.isSystemTrayAvailable():
            icon = app.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxInformation)
            self._tray = QtWidgets.QSystemTrayIcon(icon, self)
            self._tray.setToolTip(APP_NAME)
            self._tray.show()
        self.backend = 'notify-send' if self._exe else ('tray' if self._tray else 'none')

    def notify(self, summary: str, body: str) -> None:
        if self._exe is not None:
            proc = QtCore.QProcess(self)
            self._procs.add(proc)
            proc.finished.connect(lambda *_: self._reap(proc))
            proc.errorOccurred.connect(lambda *_: self._reap(proc))
            proc.start(self._exe, [
                '--app-name', APP_NAME, '--expire-time', str(EXPIRE_MS), summary, body,
            ])
        elif self._tray is not None:
            self._tray.showMessage(summary, body, QtWidgets.QSystemTrayIcon.MessageIcon.Information,
                                   EXPIRE_MS)

    def _reap(self, proc: QtCore.QProcess) -> None:
        if proc in self._procs:
            self._procs.discard(proc)
            proc.deleteLater()


def notify_for(msg: Status, describe: Callable[[float], str] = '{:,}'.format) -> tuple[str, str] | None:
    """(summary, body) of the notification `msg` deserves, or None.

    Fills (each execution) and triggered alerts; `describe` formats a price.
    """
    req = msg.req
    if req is None:
        return None
    if msg.resp == 'fill':
        fill = msg.brokerd_msg
        price, size = fill.get('price'), fill.get('size')
        if price is None or size is None:
            return None
        action = fill.get('action') or req.action
        return (
            f'{req.symbol}: {action} filled',
            f'{action} {size:g} @ {describe(float(price))} ({req.account})',
        )
    if msg.resp == 'alert_triggered':
        price = msg.brokerd_msg.get('price', req.price)
        return f'{req.symbol}: alert', f'alert @ {describe(float(price))} triggered'
    return None
