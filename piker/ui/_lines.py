"""Price-level lines of order mode: staged, order and position lines.

A `LevelLine` is a horizontal line across the price pane with a text
label riding on its left end and a price tag on the price axis. Its look
says what it is at a glance:

- colour: the side (buy, sell, alert) or the position colour;
- dash: dotted for orders held in emsd's dark book (dark orders, alerts),
  solid for orders working at the venue (live), dashed for a bracket
  child emsd holds until its entry fills (`held`);
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

Dash = Literal['dark', 'live', 'position', 'held']

LINE_WIDTH = 2
HOVER_WIDTH = 4
LABEL_POS = 0.01        # label's place along the visible line (0 = left edge)

_STYLES: dict[str, QtCore.Qt.PenStyle] = {
    'dark': QtCore.Qt.PenStyle.DotLine,
    'live': QtCore.Qt.PenStyle.SolidLine,
    'position': QtCore.Qt.PenStyle.DashDotLine,
    'held': QtCore.Qt.PenStyle.DashLine,    # a bracket child not armed yet
}


LABEL_Z = 5000      # above every line: no stroke crosses a label's text


class _OverLabel(pg.InfLineLabel):
    """A line label drawn above *every* line, not just its own.

    As a child of its line a label stacks with that line, so the strokes
    of nearby lines (other orders, bid/ask/last) cross its text. `lift()`
    makes it a sibling of the lines with a higher z; it still rides on its
    line (positions are mapped from the line's coordinates).
    """

    def lift(self) -> None:
        parent = self.line.parentItem()
        if parent is not None:
            self.setParentItem(parent)
            self.setZValue(LABEL_Z)
            self.updatePosition()

    def updatePosition(self) -> None:  # noqa: N802 (pyqtgraph API)
        super().updatePosition()
        if self.parentItem() is not self.line:
            self.setPos(self.line.mapToParent(self.pos()))


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
        self.label = _OverLabel(
            self, text='', position=LABEL_POS, anchors=[(0, 1), (0, 1)],
            color=qcolor(theme.label_text), fill=pg.mkBrush(qcolor(colour)),
        )
        font = QtGui.QFont()
        font.setPointSize(theme.font_size)
        self.label.setFont(font)
        self.tag = AxisLabel(
            chart.price_axis, chart.format_price, bg=colour, theme=theme, z=60, pin=True,
        )
        self._text = ''
        self._shown = ''
        self._apply_style()
        chart.price_plot.addItem(self, ignoreBounds=True)
        self.label.lift()
        self._labels = LabelStack.of(chart)
        self._labels.add(self)
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
            self._shown = ''
            self._labels.layout()

    def fit_label(self, room: float) -> None:
        """Show the text on as many lines as it needs to be `room` px wide
        at most (a narrow chart must not push a label under the axis)."""
        metrics = QtGui.QFontMetricsF(self.label.textItem.font())
        pad = 2 * self.label.textItem.document().documentMargin() + 2
        lines: list[str] = []
        for word in self._text.split(' '):
            if lines and metrics.horizontalAdvance(f'{lines[-1]} {word}') + pad <= room:
                lines[-1] = f'{lines[-1]} {word}'
            else:
                lines.append(word)
        shown = '\n'.join(ln.strip() for ln in lines)
        if shown != getattr(self, '_shown', ''):
            self._shown = shown
            # InfLineLabel formats with str.format: escape braces
            self.label.setFormat(shown.replace('{', '{{').replace('}', '}}'))

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
        self.tag.detach()
        scene = self.tag.scene()
        if scene is not None:
            scene.removeItem(self.tag)
        self.chart.price_plot.removeItem(self)
        if self.label.scene() is not None:
            self.label.scene().removeItem(self.label)
        self._labels.discard(self)

    def setVisible(self, visible: bool) -> None:  # noqa: N802 (Qt API)
        """The label is not a child (see `_OverLabel`): it follows by hand."""
        super().setVisible(visible)
        label = getattr(self, 'label', None)
        if label is not None and label.isVisible() != visible:
            label.setVisible(visible)
            self._labels.layout()

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
        labels = getattr(self, '_labels', None)
        if labels is not None:
            labels.layout()

    def _on_drag_done(self, *_) -> None:
        self.sig_drag_done.emit(self)


LABEL_GAP = 4       # px between labels set side by side


class LabelStack:
    """The left-edge labels of one chart's level lines, kept readable.

    Orders a few ticks apart (or an order at the position's ppu) would
    print their labels on top of each other. `layout()` keeps each label
    on its own line (its y is its price) and slides the ones that would
    overlap to the right, next to the label they would have covered.
    Runs after every pan, zoom, resize, line move and text change.
    """

    def __init__(self, chart: ChartWidget) -> None:
        self.chart = chart
        self.lines: list[LevelLine] = []
        chart.view.sigRangeChanged.connect(self.layout)
        chart.view.sigResized.connect(self.layout)

    @classmethod
    def of(cls, chart: ChartWidget) -> LabelStack:
        stack = getattr(chart, '_piker_label_stack', None)
        if stack is None:
            stack = cls(chart)
            chart._piker_label_stack = stack
        return stack

    def add(self, line: LevelLine) -> None:
        self.lines.append(line)
        self.layout()

    def discard(self, line: LevelLine) -> None:
        if line in self.lines:
            self.lines.remove(line)
            self.layout()

    def layout(self, *_) -> None:
        """Top line first: each label goes to the leftmost free slot on its
        line; when its row is full, to the nearest free row above or below
        (a label then sits a row or more off its line, still beside it)."""
        view = self.chart.view
        vb = view.sceneBoundingRect()
        if vb.width() <= 0:
            return
        (_x0, _x1), (y0, y1) = view.viewRange()
        shown = [
            ln for ln in self.lines
            if ln.isVisible() and ln.text() and y0 <= ln.price <= y1
        ]
        for ln in self.lines:
            if ln not in shown:
                _place(ln, LABEL_POS, 0)
        placed: list[QtCore.QRectF] = []
        base = vb.left() + LABEL_POS * vb.width()
        room = vb.width() * (1 - 2 * LABEL_POS)
        for ln in sorted(shown, key=lambda ln: -ln.price):
            ln.fit_label(room)
            _place(ln, LABEL_POS, 0)
            rect = ln.label.sceneBoundingRect()
            xs = sorted({base, *(r.right() + LABEL_GAP for r in placed)})
            best = (LABEL_POS, 0)
            for row in (0, 1, -1, 2, -2, 3, -3, 4, -4):
                found = False
                for x in xs:
                    cand = rect.translated(x - rect.left(), -row * rect.height())
                    if (
                        cand.right() <= vb.right() and vb.top() <= cand.top()
                        and cand.bottom() <= vb.bottom()
                        and not any(cand.intersects(r) for r in placed)
                    ):
                        best, found = ((x - vb.left()) / vb.width(), row), True
                        break
                if found:
                    break
            _place(ln, *best)
            placed.append(ln.label.sceneBoundingRect())


def _place(ln: LevelLine, frac: float, row: int) -> None:
    """Label of `ln` at `frac` of the view's width, `row` label heights
    above its line (0: sitting on it; negative: below)."""
    anchor = (0, 1 + row)
    if ln.label.anchors[0] != anchor:
        ln.label.anchors = [anchor, anchor]
    ln.label.setPosition(min(max(frac, 0.0), 1.0))
