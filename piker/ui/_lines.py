"""Price-level lines of order mode: staged, order and position lines.

A `LevelLine` is a horizontal line across the price pane with a text
label riding on its left end and a price tag on the price axis. Its look
says what it is at a glance:

- colour: the side (buy, sell, alert) or the position colour;
- dash: dotted for orders held in emsd's dark book (dark orders, alerts),
  solid for orders working at the venue (live);
- alpha: faded while *pending* (submitted, modified or cancelling but not
  yet confirmed by the EMS), opaque once confirmed.

Movable lines (working orders) snap to the market's price tick while
dragged, so what the trader sees is exactly the price that will be sent.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui

from ._axes import AxisLabel
from ._theme import DARK, Theme, qcolor

if TYPE_CHECKING:
    from ._chart import ChartWidget

Dash = Literal['dark', 'live', 'position']

LINE_WIDTH = 2
HOVER_WIDTH = 4
LABEL_POS = 0.01        # label's place along the visible line (0 = left edge)

_STYLES: dict[str, QtCore.Qt.PenStyle] = {
    'dark': QtCore.Qt.PenStyle.DotLine,
    'live': QtCore.Qt.PenStyle.SolidLine,
    'position': QtCore.Qt.PenStyle.DashDotLine,
}


class LevelLine(pg.InfiniteLine):
    """A horizontal price level with a left-hand label and a price-axis tag.

    `quantize` (price -> price) snaps every position change, including
    each step of a mouse drag. `sig_drag_done(line)` fires once per drag,
    on release, with the line already at its final (snapped) price.
    """

    sig_drag_done = QtCore.Signal(object)

    def __init__(
        self,
        chart: ChartWidget,
        colour: str,
        *,
        dash: Dash = 'live',
        price: float = 0.0,
        movable: bool = False,
        quantize: Callable[[float], float] | None = None,
        theme: Theme = DARK,
        z: float = 600,
    ) -> None:
        self._quantize = quantize
        super().__init__(angle=0, pos=price, movable=movable)
        self.chart = chart
        self.theme = theme
        self._colour = colour
        self._dash: Dash = dash
        self._pending = False
        self.setZValue(z)
        self.label = pg.InfLineLabel(
            self, text='', position=LABEL_POS, anchors=[(0, 1), (0, 1)],
            color=qcolor(theme.label_text), fill=pg.mkBrush(qcolor(colour)),
        )
        font = QtGui.QFont()
        font.setPointSize(theme.font_size)
        self.label.setFont(font)
        self.label.setZValue(z + 1)
        self.tag = AxisLabel(
            chart.price_axis, chart.format_price, bg=colour, theme=theme, z=60,
        )
        self._text = ''
        self._apply_style()
        chart.price_plot.addItem(self, ignoreBounds=True)
        self.sigPositionChanged.connect(self._on_moved)
        self.sigPositionChangeFinished.connect(self._on_drag_done)
        self._on_moved()

    # --- reading ------------------------------------------------------------

    @property
    def price(self) -> float:
        return float(self.value())

    @property
    def dash(self) -> Dash:
        return self._dash

    @property
    def pending(self) -> bool:
        return self._pending

    @property
    def colour(self) -> str:
        return self._colour

    @property
    def dragging(self) -> bool:
        return bool(self.moving)

    def text(self) -> str:
        """The label's text."""
        return self._text

    # --- writing ------------------------------------------------------------

    def set_price(self, price: float) -> None:
        self.setPos(price)

    def set_text(self, text: str) -> None:
        if text != self._text:
            self._text = text
            # InfLineLabel formats with str.format: escape braces
            self.label.setFormat(text.replace('{', '{{').replace('}', '}}'))

    def set_style(
        self,
        colour: str | None = None,
        dash: Dash | None = None,
        pending: bool | None = None,
    ) -> None:
        """Change colour, dash (dark/live/position) and pending (faded) look."""
        if colour is not None:
            self._colour = colour
        if dash is not None:
            self._dash = dash
        if pending is not None:
            self._pending = pending
        self._apply_style()

    def remove(self) -> None:
        """Take the line, its label and its axis tag off the chart."""
        self.tag.set_value(None)
        scene = self.tag.scene()
        if scene is not None:
            scene.removeItem(self.tag)
        self.chart.price_plot.removeItem(self)

    def setPos(self, pos) -> None:  # noqa: N802 (pyqtgraph API)
        """Every move goes through here: snap y to the price grid."""
        quantize = getattr(self, '_quantize', None)
        if quantize is not None:
            if isinstance(pos, QtCore.QPointF):
                pos = QtCore.QPointF(pos.x(), quantize(pos.y()))
            elif isinstance(pos, list | tuple):
                pos = [pos[0], quantize(pos[1])]
            else:
                pos = quantize(float(pos))
        super().setPos(pos)

    # --- internals ------------------------------------------------------------

    def _apply_style(self) -> None:
        alpha = self.theme.pending_alpha if self._pending else 255
        colour = qcolor(self._colour, alpha)
        style = _STYLES[self._dash]
        self.setPen(pg.mkPen(colour, width=LINE_WIDTH, style=style))
        self.setHoverPen(pg.mkPen(qcolor(self._colour), width=HOVER_WIDTH, style=style))
        self.label.fill = pg.mkBrush(colour)
        self.label.update()
        self.tag.set_background(colour)

    def _on_moved(self, *_) -> None:
        self.tag.set_value(self.price)

    def _on_drag_done(self, *_) -> None:
        self.sig_drag_done.emit(self)
