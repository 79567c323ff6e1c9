"""`Banner`: persistent warnings across the top of a chart.

The status bar's entries are transient (a final status lingers a few
seconds, then goes): right for "filled", wrong for "the EMS is gone". What
stays true until something changes it - order entry is off because emsd
is unreachable, prices are stale because brokerd went silent - is shown
here, one line per key, until its owner clears it.
"""
from __future__ import annotations

from pyqtgraph.Qt import QtCore, QtWidgets

from ._theme import DARK, Theme


class Banner(QtWidgets.QWidget):
    """A stack of warning lines, one per key (e.g. `'ems'`, `'feed'`); hidden when empty."""

    def __init__(self, theme: Theme = DARK, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName('chart_banner')
        self.theme = theme
        self._lay = QtWidgets.QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.setSpacing(1)
        self._labels: dict[str, QtWidgets.QLabel] = {}
        self.setVisible(False)

    def set(self, key: str, text: str) -> None:
        """Show `text` on `key`'s line (added below the others if new) until `clear(key)`."""
        lab = self._labels.get(key)
        if lab is None:
            lab = QtWidgets.QLabel(self)
            lab.setObjectName(f'banner_{key}')
            lab.setTextFormat(QtCore.Qt.TextFormat.PlainText)
            t = self.theme
            lab.setStyleSheet(
                f'background: {t.banner_bg}; color: {t.banner_fg}; '
                f'font-weight: bold; padding: 4px 10px;'
            )
            self._lay.addWidget(lab)
            self._labels[key] = lab
        if lab.text() != text:
            lab.setText(text)
        self.setVisible(True)

    def clear(self, key: str) -> None:
        lab = self._labels.pop(key, None)
        if lab is not None:
            self._lay.removeWidget(lab)
            lab.deleteLater()
        self.setVisible(bool(self._labels))

    def text(self, key: str) -> str | None:
        lab = self._labels.get(key)
        return lab.text() if lab is not None else None

    def texts(self) -> list[str]:
        """Every line shown, top to bottom."""
        return [lab.text() for lab in self._labels.values()]
