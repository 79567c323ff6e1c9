"""Axes of a chart: bar-index time axis, price axis, and value tags on axes.

The x coordinate of every chart item is the *bar index* (so market closes
and gaps never show as holes); `TimeAxisItem` turns indices back into
human-readable times through the `BarsModel`. `AxisLabel` is the filled
tag that rides on an axis at a data value: the crosshair's price/time
read-outs and the bid/ask/last markers use it, and order lines will too.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ._bars import BarsModel
from ._theme import DARK, Theme, qcolor

AXIS_WIDTH = 72     # px, minimum; every pane's value axis gets the same width so x stays aligned
AXIS_HEIGHT = 26
EDGE_ARROWS = {-1: '\u25b2 ', 1: '\u25bc ', 0: ''}   # before a tag pinned to an edge


def tick_font(theme: Theme = DARK) -> QtGui.QFont:
    """Font of axis tick labels and axis tags."""
    font = QtGui.QFont()
    font.setPointSize(theme.font_size)
    return font


def axis_width_for(texts: list[str], theme: Theme = DARK) -> int:
    """Axis width that fits the widest of `texts` as a tick label or tag."""
    metrics = QtGui.QFontMetrics(tick_font(theme))
    widest = max((metrics.horizontalAdvance(t) for t in texts), default=0)
    return max(AXIS_WIDTH, widest + 18)


def format_time(t: float, timeframe: float = 60.0) -> str:
    """Crosshair time read-out: local date and time, seconds if bars are sub-minute."""
    fmt = '%Y-%m-%d %H:%M:%S' if timeframe < 60 else '%Y-%m-%d %H:%M'
    return dt.datetime.fromtimestamp(t).strftime(fmt)


def format_price(value: float, digits: int) -> str:
    """Fixed-point price with thousands separators."""
    return f'{value:,.{max(0, digits)}f}'


def digits_for(values: np.ndarray) -> int:
    """Guess display decimals from price magnitude when no tick size is known."""
    if not len(values):
        return 2
    mag = float(np.nanmedian(np.abs(values)))
    if mag >= 1000:
        return 2
    if mag >= 1:
        return max(2, 4 - int(math.floor(math.log10(mag))) - 1)
    return 6


class TimeAxisItem(pg.AxisItem):
    """Bottom axis mapping bar indices to wall-clock time labels."""

    def __init__(self, model: BarsModel, **kw) -> None:
        super().__init__(orientation='bottom', **kw)
        self.model = model
        self.setHeight(AXIS_HEIGHT)

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph API)
        if not len(values):
            return []
        tf = self.model.timeframe
        span = spacing * tf
        times = np.atleast_1d(self.model.time_at(np.asarray(values, dtype=float)))
        if span < 60:
            fmt = '%H:%M:%S'
        elif span < 86400:
            fmt = '%H:%M'
        elif span < 86400 * 60:
            fmt = '%b %d'
        else:
            fmt = '%Y-%m'
        out = []
        prev_day = None
        for t in times:
            d = dt.datetime.fromtimestamp(float(t))
            if fmt in ('%H:%M', '%H:%M:%S') and d.date() != prev_day:
                # first tick of each day in view carries the date
                out.append(d.strftime(f'%b %d {fmt}'))
            else:
                out.append(d.strftime(fmt))
            prev_day = d.date()
        return out


class PriceAxisItem(pg.AxisItem):
    """Right-hand price axis with a fixed width and fixed-decimal labels."""

    def __init__(self, digits: int = 2, **kw) -> None:
        super().__init__(orientation='right', **kw)
        self.digits = digits
        self.setWidth(AXIS_WIDTH)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph API)
        if spacing >= 1000 and self.digits <= 2:
            return [f'{v:,.0f}' for v in values]
        return [format_price(v, self.digits) for v in values]


class VolumeAxisItem(pg.AxisItem):
    """Right-hand volume axis with compact (k/M/G) labels."""

    def __init__(self, **kw) -> None:
        super().__init__(orientation='right', **kw)
        self.setWidth(AXIS_WIDTH)
        self.enableAutoSIPrefix(False)

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph API)
        return [compact_number(v) for v in values]


def compact_number(v: float) -> str:
    """`1234567 -> '1.23M'`: short volume labels."""
    a = abs(v)
    for div, suf in ((1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if a >= div:
            return f'{v / div:.3g}{suf}'
    return f'{v:.3g}'


class AxisLabel(QtWidgets.QGraphicsObject):
    """A filled tag on an axis at a data value (price on y axes, bar index on x).

    Repositions itself when its axis' view pans, zooms or resizes; hidden
    while its value is out of view.
    """

    def __init__(
        self,
        axis: pg.AxisItem,
        formatter: Callable[[float], str],
        bg: str,
        fg: str | None = None,
        theme: Theme = DARK,
        z: float = 10,
        stacked: bool = True,
        pin: bool = False,
    ) -> None:
        super().__init__(axis)
        self.axis = axis
        self.formatter = formatter
        self._bg = qcolor(bg)
        self._fg = qcolor(fg or theme.label_text)
        self._value: float | None = None
        self._text = ''
        self._base = ''         # the formatted value, without an edge arrow
        # `pin`: out of view, sit on the nearest edge with an arrow (an order
        # or position beyond the price range is still on screen)
        self._pin = pin
        self._edge = 0          # -1 above the view, +1 below, 0 inside
        self._font = QtGui.QFont()
        self._font.setPointSize(theme.font_size)
        self._metrics = QtGui.QFontMetricsF(self._font)
        self._rect = QtCore.QRectF()
        self.setZValue(z)
        self.setVisible(False)
        self._vertical = axis.orientation in ('left', 'right')
        # tags of a value axis share it: `TagStack` keeps them apart (the
        # crosshair's read-out floats above them all instead)
        self._stack = TagStack.of(axis) if stacked and self._vertical else None
        if self._stack is not None:
            self._stack.add(self)
            return
        view = axis.linkedView()
        if view is not None:
            view.sigRangeChanged.connect(self.reposition)
            view.sigResized.connect(self.reposition)

    # --- public -------------------------------------------------------------

    @property
    def value(self) -> float | None:
        return self._value

    def text(self) -> str:
        """The text currently shown (empty when never set)."""
        return self._text

    def set_value(self, value: float | None, text: str | None = None) -> None:
        """Show the tag at `value` (hide with None); `text` overrides the formatter."""
        self._value = value
        if value is None:
            self.setVisible(False)
            if self._stack is not None:
                self._stack.declutter()
            return
        self._base = text if text is not None else self.formatter(value)
        self._set_text()
        if self._stack is not None:
            self._stack.relayout()
        else:
            self.reposition()

    def anchor(self) -> float | None:
        """Axis-local coordinate (y for price axes, x for time) of the value."""
        view = self.axis.linkedView()
        if view is None or self._value is None:
            return None
        if self._vertical:
            pt = view.mapViewToScene(QtCore.QPointF(0.0, self._value))
            return self.axis.mapFromScene(pt).y()
        pt = view.mapViewToScene(QtCore.QPointF(self._value, 0.0))
        return self.axis.mapFromScene(pt).x()

    @property
    def edge(self) -> int:
        """-1 pinned to the top edge (value above the view), +1 to the
        bottom, 0 at its value."""
        return self._edge

    def _set_text(self) -> None:
        arrow = EDGE_ARROWS[self._edge]
        new_text = f'{arrow}{self._base}'
        if new_text != self._text:
            self.prepareGeometryChange()
            self._text = new_text
            w = self._metrics.horizontalAdvance(new_text) + 10
            h = self._metrics.height() + 4
            self._rect = QtCore.QRectF(0, -h / 2, w, h)
            self.update()

    def reposition(self, *_) -> None:
        """Move onto the axis at the value's position; hide when off-axis
        (or, pinned, sit on the nearest edge with an arrow)."""
        a = self.anchor()
        if a is None:
            return
        geo = self.axis.geometry()
        if self._vertical:
            inside = 0 <= a <= geo.height()
            edge = 0 if inside or not self._pin else (-1 if a < 0 else 1)
            if edge != self._edge:
                self._edge = edge
                self._set_text()
            if edge:
                h = self._rect.height()
                a = h / 2 if edge < 0 else geo.height() - h / 2
                inside = True
            self.setPos(1.0, a)
        else:
            inside = 0 <= a <= geo.width()
            self.setPos(a - self._rect.width() / 2, self._rect.height() / 2 + 1)
        self.setVisible(inside)

    def set_background(self, bg: str | QtGui.QColor) -> None:
        """Change the tag's fill colour (e.g. an order line's pending look)."""
        self._bg = qcolor(bg) if isinstance(bg, str) else QtGui.QColor(bg)
        self.update()

    def set_offset_y(self, y: float) -> None:
        """Place at axis-local `y` (used to unstack overlapping tags)."""
        self.setPos(self.pos().x(), y)

    def height(self) -> float:
        return self._rect.height()

    def detach(self) -> None:
        """Hide for good and leave the axis' stack (the tag's line is gone)."""
        self._value = None
        self.setVisible(False)
        if self._stack is not None:
            self._stack.discard(self)
            self._stack = None

    # --- QGraphicsItem ------------------------------------------------------

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802
        return QtCore.QRectF(self._rect)

    def paint(self, p: QtGui.QPainter, opt=None, widget=None) -> None:
        p.setPen(QtCore.Qt.PenStyle.NoPen)
        p.setBrush(self._bg)
        p.drawRoundedRect(self._rect, 2, 2)
        p.setPen(self._fg)
        p.setFont(self._font)
        p.drawText(self._rect, QtCore.Qt.AlignmentFlag.AlignCenter, self._text)


class TagStack:
    """Every stacked `AxisLabel` of one value axis, kept from overlapping.

    bid/ask/last, order and position tags all ride on the price axis; when
    their prices are a few ticks apart they would hide each other. After
    each pan, zoom, resize or tag move `declutter()` packs every run of
    overlapping tags into a column centred on their prices (so a tag stays
    as close to its price as the others allow); the lines themselves stay
    at their exact prices.
    """

    def __init__(self, axis: pg.AxisItem) -> None:
        self.axis = axis
        self.tags: list[AxisLabel] = []
        view = axis.linkedView()
        if view is not None:
            view.sigRangeChanged.connect(self.relayout)
            view.sigResized.connect(self.relayout)

    @classmethod
    def of(cls, axis: pg.AxisItem) -> TagStack:
        """The stack of `axis` (made on first use)."""
        stack = getattr(axis, '_piker_tag_stack', None)
        if stack is None:
            stack = cls(axis)
            axis._piker_tag_stack = stack
        return stack

    def add(self, tag: AxisLabel) -> None:
        self.tags.append(tag)

    def discard(self, tag: AxisLabel) -> None:
        if tag in self.tags:
            self.tags.remove(tag)
            self.declutter()

    def relayout(self, *_) -> None:
        """Every tag back onto its value, then apart."""
        for tag in self.tags:
            tag.reposition()
        self.declutter()

    def declutter(self, *_) -> None:
        """Pack overlapping visible tags into columns centred on their values."""
        items = []
        for tag in self.tags:
            if tag.value is None or not tag.isVisible():
                continue
            y = tag.anchor()
            if y is not None:
                items.append((tag.pos().y() if tag.edge else y, tag))
        # tags pinned to one edge share a y: higher prices above
        items.sort(key=lambda it: (it[0], -(it[1].value or 0.0)))
        # clusters: [top, total height, sum of (anchor - offset in cluster), tags]
        clusters: list[list] = []
        for y, tag in items:
            h = tag.height()
            cl = [y - h / 2, h, y - h / 2, 1, [tag]]
            while clusters and clusters[-1][0] + clusters[-1][1] > cl[0]:
                prev = clusters.pop()
                # merge: the new tags sit below prev's; re-centre on all anchors
                shift = prev[1]
                total = prev[2] + cl[2] - shift * cl[3]
                n = prev[3] + cl[3]
                cl = [total / n, prev[1] + cl[1], total, n, prev[4] + cl[4]]
            clusters.append(cl)
        tops: list[tuple[float, AxisLabel]] = []
        for top, _h, _sum, _n, tags in clusters:
            y = top
            for tag in tags:
                tops.append((y, tag))
                y += tag.height()
        # inside the axis (pinned edge tags, a cluster near an edge), still apart
        height = self.axis.geometry().height()
        floor = 0.0
        for i, (y, tag) in enumerate(tops):
            y = max(y, floor)
            tops[i] = (y, tag)
            floor = y + tag.height()
        ceiling = height
        for i in range(len(tops) - 1, -1, -1):
            y, tag = tops[i]
            y = max(min(y, ceiling - tag.height()), 0.0)
            tops[i] = (y, tag)
            ceiling = y
        for y, tag in tops:
            tag.set_offset_y(y + tag.height() / 2)
