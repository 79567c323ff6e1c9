"""`ChartWidget`: one market's chart — price pane over volume pane.

Owns the market's `BarsModel` and every graphics item drawn from it, turns
quotes into bar updates and L1 markers, and exposes what order mode needs:
the price under the cursor, price <-> pixel mapping, and the price pane's
`ChartView` signals (keys, clicks, cursor moves).
"""
from __future__ import annotations

import math
import time
from functools import partial
from typing import Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ._axes import (
    EDGE_ARROWS,
    PriceAxisItem,
    TimeAxisItem,
    VolumeAxisItem,
    axis_width_for,
    compact_number,
    digits_for,
    format_price,
    format_time,
    tick_font,
)
from ._banner import Banner
from ._bars import BarsModel
from ._cursor import Crosshair, CursorPane
from ._grid import GridItem
from ._l1 import L1Markers
from ._ohlc import CandlestickItem
from ._theme import DARK, Theme, qcolor
from ._title import BarLegend, ChartTitle
from ._view import ChartView
from ._volume import VolumeItem

DEFAULT_BARS = 300          # bars in view after `set_history`
PRICE_STRETCH = 4           # price : volume pane height


def timeframe_label(seconds: float) -> str:
    """`60 -> '1m'`, `3600 -> '1h'`: the bar period as traders write it."""
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= size and seconds % size == 0:
            return f'{int(seconds // size)}{unit}'
    return f'{seconds:g}s'


class ChartCanvas(pg.PlotWidget):
    """A pane's QGraphicsView: never takes focus (the ChartWidget does) and
    reports paints and pointer exits."""

    sig_painted = QtCore.Signal()
    sig_left = QtCore.Signal()

    def __init__(self, plot: pg.PlotItem, background: str) -> None:
        super().__init__(background=background, plotItem=plot)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:  # noqa: N802
        super().paintEvent(ev)
        self.sig_painted.emit()

    def leaveEvent(self, ev: QtCore.QEvent) -> None:  # noqa: N802
        super().leaveEvent(ev)
        self.sig_left.emit()


def _mk_plot(view: ChartView, right: pg.AxisItem, bottom: TimeAxisItem, theme: Theme) -> pg.PlotItem:
    plot = pg.PlotItem(viewBox=view, axisItems={'right': right, 'bottom': bottom})
    plot.hideAxis('left')
    plot.showAxis('right')
    plot.hideButtons()
    plot.setMenuEnabled(False)
    pen = pg.mkPen(qcolor(theme.muted))
    for ax in (right, bottom):
        ax.setPen(pen)
        ax.setTextPen(pg.mkPen(qcolor(theme.muted)))
        ax.setStyle(tickFont=tick_font(theme), tickTextOffset=6, hideOverlappingLabels=True)
    plot.addItem(GridItem(bottom, right, theme), ignoreBounds=True)
    plot.layout.setContentsMargins(0, 0, 0, 0)
    return plot


class ChartWidget(QtWidgets.QWidget):
    """Price (candles + L1 markers) and volume panes of one market, x-linked.

    `view` is the price pane's `ChartView`: order mode connects to its
    `sig_key_press`, `sig_key_release`, `sig_click(price, time)` and
    `sig_cursor_moved(price, time)`, adds its lines to `price_plot` and its
    tags to `price_axis` (see `AxisLabel`).
    """

    sig_painted = QtCore.Signal()   # the price pane painted a frame

    def __init__(
        self,
        fqme: str,
        history: np.ndarray | None = None,
        timeframe: float = 60.0,
        mkt_info: Any = None,
        theme: Theme = DARK,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.fqme = fqme
        self.mkt_info = mkt_info
        self.theme = theme
        self.model = BarsModel(timeframe)
        self.digits = int(getattr(mkt_info, 'price_tick_digits', 2))
        self._cursor_price: float | None = None

        # price pane
        self.view = ChartView('price')
        self.price_axis = PriceAxisItem(self.digits)
        self.price_plot = _mk_plot(self.view, self.price_axis, TimeAxisItem(self.model), theme)
        self.price_plot.hideAxis('bottom')     # time labels live under the volume pane
        self.ohlc_item = CandlestickItem(self.model, theme)
        self.price_plot.addItem(self.ohlc_item)

        # volume pane
        self.volume_view = ChartView('volume', y_floor=0.0)
        self.volume_axis = VolumeAxisItem()
        self.time_axis = TimeAxisItem(self.model)
        self.volume_plot = _mk_plot(self.volume_view, self.volume_axis, self.time_axis, theme)
        self.volume_item = VolumeItem(self.model, theme)
        self.volume_plot.addItem(self.volume_item)
        self.volume_view.setXLink(self.view)

        n_bars = self.model.__len__
        self.view.bind(self.ohlc_item.visible_y_range, self.model.time_at, n_bars)
        self.volume_view.bind(self.volume_item.visible_y_range, self.model.time_at, n_bars)

        # overlays
        self.l1 = L1Markers(self.price_plot, self.price_axis, self.format_price, theme)
        self.crosshair = Crosshair(
            [
                CursorPane(self.price_plot, self.price_axis, self.format_price),
                CursorPane(self.volume_plot, self.volume_axis, compact_number),
            ],
            self.time_axis,
            lambda i: format_time(self.model.time_at(i), self.model.timeframe),
            theme,
        )

        # widgets
        self.title = ChartTitle(fqme.upper(), timeframe_label(timeframe), theme, self)
        self.banner = Banner(theme, self)
        self.stale_since: float | None = None   # epoch s of the last good quote, while stale
        self.legend = BarLegend(self.view, theme)
        self.price_canvas = ChartCanvas(self.price_plot, theme.background)
        self.volume_canvas = ChartCanvas(self.volume_plot, theme.background)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self.price_canvas)
        self.splitter.addWidget(self.volume_canvas)
        self.splitter.setStretchFactor(0, PRICE_STRETCH)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([PRICE_STRETCH * 100, 100])
        self.splitter.setHandleWidth(1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.title)
        lay.addWidget(self.banner)
        lay.addWidget(self.splitter, 1)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

        self._views = (self.view, self.volume_view)
        for i, canvas in enumerate((self.price_canvas, self.volume_canvas)):
            canvas.scene().sigMouseMoved.connect(partial(self._on_mouse_moved, i))
            canvas.sig_left.connect(self._on_pointer_left)
        # the pointer stays put while a zoom or pan moves the data under it:
        # the crosshair (and a staged order) follow the new price there
        self._cursor_scene: tuple[int, QtCore.QPointF] | None = None
        for i, view in enumerate(self._views):
            view.sigRangeChanged.connect(partial(self._on_range_changed, i))
        self.price_canvas.sig_painted.connect(self.sig_painted)

        if history is not None:
            self.set_history(history, timeframe)
        else:
            self._update_title()

    # --- data ---------------------------------------------------------------

    def set_history(self, array: np.ndarray, timeframe: float | None = None) -> None:
        """Replace the bars (`open_history()` layout) and show the most recent ones."""
        self.model.set_history(array, timeframe)
        if self.mkt_info is None and len(self.model):
            self.digits = digits_for(self.model['close'][-1000:])
            self.price_axis.digits = self.digits
        self.ohlc_item.reset()
        self.volume_item.reset()
        self._fit_axes()
        self.view.show_bars(min(DEFAULT_BARS, max(len(self.model), 1)))
        self.volume_view.fit_y()
        self._update_title()

    def merge_history(self, array: np.ndarray) -> int:
        """Merge backfilled bars in place (no reload): older bars are
        prepended and the view shifts with them, so it shows the same bars
        as before. Returns how many bars were prepended."""
        x0, x1 = self.view.viewRange()[0]
        before = self.model.merge_history(array)
        self.ohlc_item.reset()
        self.volume_item.reset()
        self._fit_axes()
        if before:
            self.view.setXRange(x0 + before, x1 + before, padding=0)
        self._update_title()
        return before

    def set_mkt_info(self, mkt_info: Any) -> None:
        """Use `mkt_info` (a `MktPair`) for price decimals and cursor tick rounding."""
        self.mkt_info = mkt_info
        digits = getattr(mkt_info, 'price_tick_digits', None)
        if digits is not None:
            self.digits = int(digits)
            self.price_axis.digits = self.digits
            self.price_axis.picture = None      # re-render tick labels
            self.price_axis.update()
            self._fit_axes()
            for kind, price in self.l1.prices.items():
                if price is not None:
                    self.l1.labels[kind].set_value(price)
            self._update_title()

    def update_quote(self, quote: dict[str, Any]) -> None:
        """Apply one quote (CONTRACTS.md layout): L1 markers and the live bar.

        A quote from brokerd carries its live bars (`quote['bars']`, see
        `piker.brokers._livebars`): the last bar is then brokerd's, the one
        it stores, never rebuilt here. A quote without them (fed by hand)
        folds its `trade` ticks (or `last` ticks when it has no `trade`
        tick, so a print is never counted twice) into the last bar, or opens
        a new bar when the quote's time passes the bar period. While the
        live bar is in view, new bars scroll the view along.
        """
        ticks = quote.get('ticks') or ()
        tns = quote.get('time_ns')
        t_s = tns / 1e9 if tns else time.time()
        has_trade = any(t.get('type') == 'trade' for t in ticks)
        bid, ask, last = quote.get('bid'), quote.get('ask'), quote.get('last')
        was_following = self.view.following
        n_before = len(self.model)
        traded = False
        # brokerd's bars (the ones it stores) when the quote carries them
        live = (quote.get('bars') or {}).get(str(int(self.model.timeframe)))
        if live:
            n_live = self.model.last_version
            self.model.set_live(live)
            traded = self.model.last_version != n_live
        for tick in ticks:
            kind = tick.get('type')
            price = tick.get('price')
            if price is None or not math.isfinite(price):
                continue
            if kind == 'trade' or (kind == 'last' and not has_trade):
                if live is None:
                    size = tick.get('size') or 0.0
                    self.model.apply_trade(
                        float(price), float(size) if math.isfinite(size) else 0.0, t_s)
                    traded = True
                last = price
            elif kind == 'bid':
                bid = price
            elif kind == 'ask':
                ask = price
        self.l1.set(bid=_finite(bid), ask=_finite(ask), last=_finite(last))

        added = len(self.model) - n_before
        if added:
            self.ohlc_item.bar_appended()
            self.volume_item.bar_appended()
            if not n_before:        # first bar of a chart started without history
                self._fit_axes()
                self.view.show_bars(DEFAULT_BARS)
            elif was_following:
                self.view.pan_bars(added)
        elif traded:
            self.ohlc_item.last_updated()
            self.volume_item.last_updated()
        if traded:
            bar = self.model.last
            self.view.ensure_y_covers(bar['low'], bar['high'])
            self.volume_view.ensure_y_covers(0.0, bar['volume'])
        if traded or last is not None:
            self._update_title()

    def set_stale(self, since: float, why: str) -> None:
        """Mark the prices stale: quotes stopped at `since` (epoch s) because
        of `why`; L1 tags and the title price go grey under a banner until
        `set_live()`."""
        if self.stale_since is None or since < self.stale_since:
            self.stale_since = since
        self.l1.set_stale(True)
        stamp = time.strftime('%H:%M:%S', time.localtime(self.stale_since))
        self.banner.set('feed', f'quotes stale since {stamp}: {why}')
        self._update_title()

    def set_live(self) -> None:
        """Quotes flow again: live colours, no feed banner."""
        if self.stale_since is None:
            return
        self.stale_since = None
        self.l1.set_stale(False)
        self.banner.clear('feed')
        self._update_title()

    # --- cursor and coordinates ----------------------------------------------

    def format_price(self, price: float) -> str:
        return format_price(price, self.digits)

    def cursor_price(self) -> float | None:
        """Price under the pointer in the price pane (tick-rounded), else None."""
        p = self._cursor_price
        if p is None:
            return None
        quantize = getattr(self.mkt_info, 'quantize', None)
        if quantize is not None:
            return float(quantize(p, 'price'))
        return round(p, self.digits)

    def cursor_index(self) -> int | None:
        """Bar index under the pointer, else None."""
        return self.crosshair.index

    def move_cursor(self, x: float, price: float) -> None:
        """Put the crosshair on bar `x` at `price` (as a pointer move would)."""
        self._cursor_at(0, x, price)

    def price_to_y(self, price: float) -> float:
        """Pixel y (in `price_canvas` coordinates) of `price`."""
        scene = self.view.mapViewToScene(QtCore.QPointF(0.0, price))
        return self.price_canvas.mapFromScene(scene).y()

    def y_to_price(self, y: float) -> float:
        """Price at pixel y of `price_canvas`."""
        scene = self.price_canvas.mapToScene(QtCore.QPoint(0, int(round(y))))
        return float(self.view.mapSceneToView(QtCore.QPointF(scene)).y())

    def index_to_x(self, index: float) -> float:
        """Pixel x (in `price_canvas` coordinates) of bar `index`."""
        scene = self.view.mapViewToScene(QtCore.QPointF(index, 0.0))
        return self.price_canvas.mapFromScene(scene).x()

    def show_bars(self, count: int) -> None:
        """Show the last `count` bars, following the live bar."""
        self.view.show_bars(count)

    # --- Qt events -------------------------------------------------------------

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        self.view.keyPressEvent(ev)

    def keyReleaseEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        self.view.keyReleaseEvent(ev)

    def enterEvent(self, ev) -> None:  # noqa: N802
        # hotkeys act on the chart under the pointer (tiling-WM habit)
        self.setFocus(QtCore.Qt.FocusReason.MouseFocusReason)
        super().enterEvent(ev)

    # --- internals ---------------------------------------------------------------

    def _fit_axes(self) -> None:
        """Size both value axes to fit the widest label so neither pane's
        labels get clipped and both panes keep the same plot width (x aligned)."""
        if not len(self.model):
            return
        top = max(abs(float(self.model['high'].max())), abs(float(self.model['low'].min())))
        vol = float(self.model['volume'].max())
        # head-room: prices may double before the next history load
        width = axis_width_for(
            [EDGE_ARROWS[-1] + self.format_price(top * 2), compact_number(vol * 100)], self.theme,
        )
        for ax in (self.price_axis, self.volume_axis):
            ax.setWidth(width)

    def _on_mouse_moved(self, pane: int, scene_pos: QtCore.QPointF) -> None:
        view = self._views[pane]
        if not view.sceneBoundingRect().contains(scene_pos):
            self._on_pointer_left()
            return
        pt = view.mapSceneToView(scene_pos)
        self._cursor_at(pane, pt.x(), pt.y())

    def _on_range_changed(self, pane: int, *_) -> None:
        if self._cursor_scene is None or self._cursor_scene[0] != pane:
            return
        pt = self._views[pane].mapSceneToView(self._cursor_scene[1])
        self._cursor_at(pane, pt.x(), pt.y(), keep_scene=True)

    def _cursor_at(self, pane: int, x: float, y: float, keep_scene: bool = False) -> None:
        if not keep_scene:
            view = self._views[pane]
            self._cursor_scene = (pane, view.mapViewToScene(QtCore.QPointF(x, y)))
        self.crosshair.move_to(pane, x, y)
        if pane == 0:
            self._cursor_price = float(y)
            self.view.sig_cursor_moved.emit(float(y), float(self.model.time_at(round(x))))
        else:
            self._cursor_price = None
        self._update_title()

    def _on_pointer_left(self) -> None:
        self._cursor_scene = None
        self._cursor_price = None
        self.crosshair.hide()
        self._update_title()

    def _update_title(self) -> None:
        t = self.theme
        n = len(self.model)
        self.title.set_timeframe(timeframe_label(self.model.timeframe))
        last = self.l1.prices.get('last')
        colour = t.foreground
        if n:
            bar = self.model.last
            if last is None:
                last = bar['close']
            colour = t.up if bar['close'] >= bar['open'] else t.down
        if self.stale_since is not None:
            colour = t.stale
        self.title.set_price(self.format_price(last) if last is not None else '', colour)
        idx = self.crosshair.index
        if idx is None or not n:
            self.legend.set_text('')
            return
        bar = self.model.bar(min(max(idx, 0), n - 1))
        fp = self.format_price
        self.legend.set_text(
            f'{format_time(bar["time"], self.model.timeframe)}   '
            f'O {fp(bar["open"])}   H {fp(bar["high"])}   L {fp(bar["low"])}   '
            f'C {fp(bar["close"])}   V {compact_number(bar["volume"])}'
        )

    def title_text(self) -> str:
        """The title as one line of plain text (for tests and logs)."""
        return self.title.text()

    def legend_text(self) -> str:
        """Read-out of the bar under the cursor ('' when the cursor is away)."""
        return self.legend.line_text()


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
