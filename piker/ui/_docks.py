"""The blotter docks: where they sit, how to show them, and remembering it.

Each blotter (and the log pane) lives in a `QDockWidget` the trader can
move, float, tab together or close. `ctrl+shift+<letter>` (O orders,
F fills, P positions, L log) and the window's View menu show and hide
them; the menu also holds the order settings pane (`p` on the chart).

The window's dock layout (`QMainWindow.saveState()`: which docks are
shown, where, how big) is written to `<config dir>/chart_layout.json` a
moment after every change and when the window closes, atomically
(`write_atomic`), and restored at the next start. A file that cannot be
read is moved aside (`quarantine`, bytes intact) and the default layout
used, with one log line.
"""
from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ..atomicfile import quarantine, write_atomic
from ..log import get_logger

log = get_logger(__name__)

LAYOUT_FILE = 'chart_layout.json'
LAYOUT_VERSION = 1
SAVE_DELAY_MS = 500
DEFAULT_HEIGHT = 220
# name -> (title, the letter of ctrl+shift+<letter>)
DOCKS: dict[str, tuple[str, str]] = {
    'orders': ('active orders', 'O'),
    'fills': ('fills', 'F'),
    'positions': ('positions & accounts', 'P'),
    'log': ('log', 'L'),
}
# the default split of the bottom row: what each blotter's columns need
SHARES = {'orders': 0.39, 'fills': 0.28, 'positions': 0.33}

Area = QtCore.Qt.DockWidgetArea


def layout_path() -> Path | None:
    """`<config dir>/chart_layout.json`; None (not remembered, one log
    line) when the config dir is unusable: the chart still opens."""
    from ..config import ConfigError, get_config_dir
    try:
        return get_config_dir() / LAYOUT_FILE
    except ConfigError as err:
        log.warning('the dock layout will not be remembered: %s', err)
        return None


class BlotterDocks(QtCore.QObject):
    """The docks of `widgets` (name -> widget, names of `DOCKS`) on `win`."""

    def __init__(
        self,
        win: QtWidgets.QMainWindow,
        widgets: dict[str, QtWidgets.QWidget],
        *,
        path: Path | None = None,
        extra: list[QtWidgets.QDockWidget] = (),
    ) -> None:
        super().__init__(win)
        self.win = win
        self.path = path
        self.docks: dict[str, QtWidgets.QDockWidget] = {}
        self.menu = win.menuBar().addMenu('&View')
        self.menu.setObjectName('view_menu')
        for name, widget in widgets.items():
            title, letter = DOCKS[name]
            dock = QtWidgets.QDockWidget(title, win)
            dock.setObjectName(f'blotter_{name}')
            dock.setWidget(widget)
            dock.setAllowedAreas(Area.AllDockWidgetAreas)
            self.docks[name] = dock
            act = dock.toggleViewAction()
            act.setText(f'{name} blotter' if name != 'log' else 'log pane')
            act.setShortcut(QtGui.QKeySequence(f'Ctrl+Shift+{letter}'))
            act.setShortcutContext(QtCore.Qt.ShortcutContext.WindowShortcut)
            win.addAction(act)
            self.menu.addAction(act)
        for dock in extra:
            act = dock.toggleViewAction()
            act.setText(f'{dock.windowTitle()} settings pane (p)')
            self.menu.addAction(act)
        self._default_layout()
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SAVE_DELAY_MS)
        self._timer.timeout.connect(self.save)
        self._split_pending = not self.restore()
        win.installEventFilter(self)
        for dock in self.docks.values():
            dock.visibilityChanged.connect(self._changed)
            dock.dockLocationChanged.connect(self._changed)
            dock.topLevelChanged.connect(self._changed)

    def dock(self, name: str) -> QtWidgets.QDockWidget:
        return self.docks[name]

    def toggle(self, name: str) -> None:
        self.docks[name].toggleViewAction().trigger()

    # --- the remembered layout ------------------------------------------------------

    def save(self) -> None:
        """Write the dock layout now (atomically); errors are logged."""
        self._timer.stop()
        if self.path is None:
            return
        state = bytes(self.win.saveState(LAYOUT_VERSION))
        body = json.dumps({
            'version': LAYOUT_VERSION, 'state': base64.b64encode(state).decode('ascii'),
        })
        try:
            write_atomic(self.path, body + '\n', durable=False)
        except OSError as err:
            log.warning('could not save the chart layout to %s: %s', self.path, err)

    def restore(self) -> bool:
        """Restore the saved layout; False (default layout) if there is none."""
        if self.path is None or not self.path.exists():
            return False
        try:
            data = json.loads(self.path.read_text(encoding='utf-8'))
            state = base64.b64decode(data['state'], validate=True)
            version = int(data['version'])
        except (OSError, ValueError, KeyError, TypeError, binascii.Error) as err:
            aside = quarantine(self.path)
            log.warning('chart layout %s unreadable (%s): moved to %s, default layout used',
                        self.path, err, aside.name)
            return False
        if version != LAYOUT_VERSION or not self.win.restoreState(QtCore.QByteArray(state),
                                                                  LAYOUT_VERSION):
            log.warning('chart layout %s is of another version: default layout used', self.path)
            return False
        return True

    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:  # noqa: N802
        if obj is self.win and ev.type() == QtCore.QEvent.Type.Show and self._split_pending:
            self._split_pending = False
            QtCore.QTimer.singleShot(0, self._split)
        return False

    def _split(self) -> None:
        """The default widths of the bottom row, once the window has one."""
        names = [n for n in SHARES if n in self.docks]
        width = self.win.width()
        self.win.resizeDocks([self.docks[n] for n in names],
                             [int(width * SHARES[n]) for n in names],
                             QtCore.Qt.Orientation.Horizontal)

    def _changed(self, *_) -> None:
        if self.path is not None:
            self._timer.start()

    def _default_layout(self) -> None:
        """Orders | fills | positions along the bottom, the log behind fills."""
        win, d = self.win, self.docks
        order = [n for n in ('orders', 'fills', 'positions') if n in d]
        for name in order:
            win.addDockWidget(Area.BottomDockWidgetArea, d[name])
        for a, b in zip(order, order[1:], strict=False):
            win.splitDockWidget(d[a], d[b], QtCore.Qt.Orientation.Horizontal)
        if 'log' in d:
            if 'fills' in d:
                win.tabifyDockWidget(d['fills'], d['log'])
                d['fills'].raise_()
            else:
                win.addDockWidget(Area.BottomDockWidgetArea, d['log'])
        if order:
            win.resizeDocks([d[n] for n in order], [DEFAULT_HEIGHT] * len(order),
                            QtCore.Qt.Orientation.Vertical)
