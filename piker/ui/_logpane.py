"""The log pane: every status-bar message, kept after it leaves the bar.

Status-bar entries linger a few seconds and go; a trader who looked away
must still be able to read that an order was rejected and why. The pane
gets each text the bar shows (`StatusBar.sig_message`), stamps it with the
local time and appends it, newest at the bottom. Appends are batched per
frame (`FrameBatch`) and the pane keeps the last `max_lines` lines.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from pyqtgraph.Qt import QtGui, QtWidgets

from ._blotters import FrameBatch
from ._theme import DARK, Theme

MAX_LINES = 5000


class LogPane(QtWidgets.QPlainTextEdit):
    """Time-stamped status messages, oldest first, bounded."""

    def __init__(
        self,
        batch: FrameBatch,
        *,
        theme: Theme = DARK,
        max_lines: int = MAX_LINES,
        clock: Callable[[], float] = time.time,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName('log_pane')
        self.batch = batch
        self._clock = clock
        self._queue: list[str] = []
        self.setReadOnly(True)
        self.setMaximumBlockCount(max_lines)
        self.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.setStyleSheet(f'background: {theme.background}; color: {theme.foreground};')

    def add(self, text: str) -> None:
        """Log `text` (a status-bar message) with the time it was shown."""
        stamp = time.strftime('%H:%M:%S', time.localtime(self._clock()))
        self._queue.append(f'{stamp}  {text}')
        self.batch.request(self._flush)

    def lines(self) -> list[str]:
        """The logged lines (after the pending flush)."""
        text = self.toPlainText()
        return text.splitlines() if text else []

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        if not queue:
            return
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self.appendPlainText('\n'.join(queue))
        if at_end:
            bar.setValue(bar.maximum())
