"""Read-outs of a chart: the title strip (market, timeframe, live price)
and the legend of the bar under the cursor.

Both are built so an update repaints only themselves: the title is made of
fixed-size plain-text labels (one rich-text title re-parsed its HTML and,
by changing size, re-laid out and repainted the whole window on every tick:
~1.7 ms), and the bar legend is a scene item drawn over the price pane, so
a cursor move repaints one line of text instead of the window.
"""
from __future__ import annotations

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ._theme import DARK, Theme

HEIGHT = 24


class ChartTitle(QtWidgets.QWidget):
    """`BTCUSDT.SIM  1m  93.40`: market, bar period and live price."""

    def __init__(self, name: str, timeframe: str, theme: Theme = DARK, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName('chart_title')
        self.theme = theme
        self.setFixedHeight(HEIGHT)
        font = QtGui.QFont()
        font.setPointSize(theme.font_size + 1)
        bold = QtGui.QFont(font)
        bold.setBold(True)
        self.name = self._label(name, bold, theme.foreground)
        self.timeframe = self._label(timeframe, font, theme.muted)
        self.price = self._label('', bold, theme.foreground)
        # fixed width: a text change must not re-lay out the window
        self.price.setFixedWidth(QtGui.QFontMetrics(bold).horizontalAdvance('0' * 16))
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(8, 0, 8, 0)
        lay.setSpacing(10)
        for w in (self.name, self.timeframe, self.price):
            lay.addWidget(w)
        lay.addStretch(1)
        self._price_colour = theme.foreground

    def _label(self, text: str, font: QtGui.QFont, colour: str) -> QtWidgets.QLabel:
        lab = QtWidgets.QLabel(text, self)
        lab.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        lab.setFont(font)
        lab.setStyleSheet(f'color: {colour}; background: transparent;')
        lab.setFixedHeight(HEIGHT)
        return lab

    def set_timeframe(self, text: str) -> None:
        self.timeframe.setText(text)

    def set_price(self, text: str, colour: str) -> None:
        """Live price, coloured by the live bar's direction."""
        if text != self.price.text():
            self.price.setText(text)
        if colour != self._price_colour:
            self._price_colour = colour
            self.price.setStyleSheet(f'color: {colour}; background: transparent;')

    def text(self) -> str:
        """Everything shown, as one line."""
        parts = (self.name, self.timeframe, self.price)
        return '  '.join(w.text() for w in parts if w.text())


class BarLegend(QtWidgets.QGraphicsSimpleTextItem):
    """`2023-11-18 08:53  O 92.30  H 92.48  L 91.97  C 92.26  V 895` at the
    top left of a pane, in pixel coordinates of its ViewBox."""

    def __init__(self, view: QtWidgets.QGraphicsItem, theme: Theme = DARK) -> None:
        super().__init__(view)
        font = QtGui.QFont()
        font.setPointSize(theme.font_size)
        self.setFont(font)
        self._metrics = QtGui.QFontMetricsF(font)
        self.setBrush(QtGui.QColor(theme.foreground))
        self.setPos(8, 4)
        self.setZValue(2000)
        self._view = view
        self._line = ''
        resized = getattr(view, 'sigResized', None)
        if resized is not None:
            resized.connect(self._wrap)

    def set_text(self, text: str) -> None:
        if text != self._line:
            self._line = text
            self._wrap()

    def line_text(self) -> str:
        """The legend as one line (however it is wrapped on screen)."""
        return self._line

    def _wrap(self, *_) -> None:
        """One line if it fits the pane, else as many as needed (a narrow
        window, e.g. 650 px with the order pane open, must not clip it)."""
        room = self._view.boundingRect().width() - 2 * self.pos().x()
        lines: list[str] = []
        for part in self._line.split('   '):
            if lines and self._metrics.horizontalAdvance(f'{lines[-1]}   {part}') <= room:
                lines[-1] = f'{lines[-1]}   {part}'
            else:
                lines.append(part)
        text = '\n'.join(lines) if self._line else ''
        if text != self.text():
            self.setText(text)
