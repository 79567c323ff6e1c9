"""Status bar: per-order statuses and group statuses ("cancelling 3 orders").

Each entry is a label keyed by what it reports on (an order's oid, or a
group id). An entry that reaches a final state lingers for `linger_ms` so
the trader can read it, then goes away; a newer update to the same key
cancels the pending removal.
"""
from __future__ import annotations

from itertools import count

from pyqtgraph.Qt import QtCore, QtWidgets

from ._theme import DARK, Theme

LINGER_MS = 4000


class StatusBar(QtWidgets.QStatusBar):
    """Window status bar with keyed entries (orders, groups) left to right.

    `sig_message(text)` repeats every text shown, for the log pane that
    keeps them after they leave the bar.
    """

    sig_message = QtCore.Signal(str)

    def __init__(
        self,
        parent: QtWidgets.QWidget | None = None,
        linger_ms: int = LINGER_MS,
        theme: Theme = DARK,
    ) -> None:
        super().__init__(parent)
        self.linger_ms = linger_ms
        self.theme = theme
        self.setSizeGripEnabled(False)
        self._box = QtWidgets.QWidget(self)
        self._lay = QtWidgets.QHBoxLayout(self._box)
        self._lay.setContentsMargins(4, 0, 4, 0)
        self._lay.setSpacing(12)
        self._lay.addStretch(1)
        # many entries clip at the right edge instead of widening the window
        self._box.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred,
        )
        self.addWidget(self._box, 1)
        self._labels: dict[tuple[str, str], QtWidgets.QLabel] = {}
        self._gen: dict[tuple[str, str], int] = {}
        self._open_groups: list[int] = []
        self._group_ids = count(1)

    # --- orders -------------------------------------------------------------

    def set_order_status(self, oid: str, text: str, final: bool = False) -> None:
        """Show `text` for order `oid`; `final` (filled, cancelled, error) lingers then clears."""
        self._set(('order', oid), text, linger=final)

    def clear_order_status(self, oid: str) -> None:
        """Remove the entry of order `oid` now."""
        self._remove(('order', oid))

    def order_status(self, oid: str) -> str | None:
        lab = self._labels.get(('order', oid))
        return lab.text() if lab is not None else None

    # --- groups -------------------------------------------------------------

    def begin_group(self, text: str) -> int:
        """Show a group status (e.g. 'cancelling 3 orders'); returns its id."""
        gid = next(self._group_ids)
        self._open_groups.append(gid)
        self._set(('group', str(gid)), text, linger=False)
        return gid

    def end_group(self, text: str, gid: int | None = None) -> None:
        """Finish group `gid` (default: the latest open one) with `text`; it lingers then clears."""
        if gid is None:
            if not self._open_groups:
                raise KeyError(f'no open status group to end with {text!r}')
            gid = self._open_groups[-1]
        if gid in self._open_groups:
            self._open_groups.remove(gid)
        self._set(('group', str(gid)), text, linger=True)

    def open_groups(self) -> list[int]:
        return list(self._open_groups)

    # --- reading ------------------------------------------------------------

    def texts(self) -> list[str]:
        """Every shown entry's text, left to right."""
        out = []
        for i in range(self._lay.count()):
            w = self._lay.itemAt(i).widget()
            if isinstance(w, QtWidgets.QLabel):
                out.append(w.text())
        return out

    # --- internals ------------------------------------------------------------

    def _set(self, key: tuple[str, str], text: str, linger: bool) -> None:
        lab = self._labels.get(key)
        if lab is None:
            lab = QtWidgets.QLabel(self._box)
            lab.setObjectName(f'status_{key[0]}')
            self._lay.insertWidget(self._lay.count() - 1, lab)
            self._labels[key] = lab
        if lab.text() != text:
            self.sig_message.emit(text)
        lab.setText(text)
        gen = self._gen.get(key, 0) + 1
        self._gen[key] = gen
        if linger:
            QtCore.QTimer.singleShot(self.linger_ms, _remover(self, key, gen))

    def _remove(self, key: tuple[str, str], gen: int | None = None) -> None:
        if gen is not None and self._gen.get(key) != gen:
            return  # updated since: keep it
        lab = self._labels.pop(key, None)
        self._gen.pop(key, None)
        if lab is not None:
            self._lay.removeWidget(lab)
            lab.deleteLater()


def _remover(bar: StatusBar, key: tuple[str, str], gen: int):
    """Timer callback that removes `key` only if it was not updated since."""
    def _cb() -> None:
        try:
            bar._remove(key, gen)
        except RuntimeError:  # the bar was deleted before the timer fired
            pass
    return _cb
