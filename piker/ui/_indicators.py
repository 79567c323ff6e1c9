"""Indicators on a chart: overlay lines, linked subplots, the `i` menu.

The numbers come from the chart's own indicator actor (`piker.fsp.
open_indicators`): `ChartIndicators` turns the chart's bar changes into
bar deltas for it and draws the output deltas it streams back. Nothing
here computes an indicator, so a slow one only makes its line lag; the
window keeps painting (`tests/test_ui_indicators.py` checks it).

- overlays (`pane == 'overlay'`: SMA, EMA, VWAP) are lines on the price
  pane;
- subplots (RSI, dollar volume) get a pane each between the price and
  volume panes, x-linked to the price pane (one time axis), with their
  guide levels (RSI 30 / 70);
- `IndicatorLine` draws only the bars in view, min/max-reduced to two
  points per pixel column when zoomed out, and redraws only the live
  segment on a tick (a million bars stay cheap).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ..fsp import Delta, Growing, Selected
from ._axes import PriceAxisItem, TimeAxisItem, compact_number
from ._primitives import LineBatch
from ._theme import DARK, Theme, qcolor
from ._view import ChartView

if TYPE_CHECKING:
    from ._chart import ChartWidget

MENU_KEY = QtCore.Qt.Key.Key_I
SUBPLOT_HEIGHT = 120      # px at most per subplot pane
COMPACT_FROM = 1e5
LABEL_ROOM = 0.3          # of a subplot's value span, kept free above for its label
BLOCK = 256               # bars per cached min/max block (zoomed-out frames)
# line colours, in order of first use per chart
PALETTE = ('#e3b341', '#58a6ff', '#d2a8ff', '#3fb950', '#ff7b72', '#79c0ff')


class IndicatorLine(pg.GraphicsObject):
    """One output series in bar-index x (see the module doc)."""

    def __init__(self, values: Callable[[], np.ndarray], colour: str, width: float = 1.0) -> None:
        super().__init__()
        self._values = values
        self.pen = pg.mkPen(qcolor(colour), width=width)
        self.pen.setCosmetic(True)
        self._bounds = QtCore.QRectF()
        self._last_drawn = QtCore.QRectF()
        self._bulk_key: tuple[Any, ...] | None = None
        self._bulk: LineBatch | None = None
        self.version = 0          # bumps when rows before the last change
        self.builds = 0
        self._blocks: tuple[int, np.ndarray, np.ndarray] | None = None

    def changed(self, start: int, n: int) -> None:
        """Rows `[start, n)` are new: refresh bounds, keep the bulk if only
        the last row moved."""
        y = self._values()
        if start < n - 1:
            self.version += 1
        if not n:
            self.prepareGeometryChange()
            self._bounds = QtCore.QRectF()
            return
        seg = y if start == 0 else y[start:n]
        with np.errstate(all='ignore'):
            lo, hi = np.fmin.reduce(seg), np.fmax.reduce(seg)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo = hi = 0.0 if self._bounds.isNull() else self._bounds.top()
        b = self._bounds
        if start and not b.isNull():
            lo, hi = min(lo, b.top()), max(hi, b.bottom())
        new = QtCore.QRectF(-1.0, lo, n + 2.0, max(hi - lo, 1e-9))
        if new != b:
            self.prepareGeometryChange()
            self._bounds = new
            self.update()
        elif start >= n - 1 and n >= 2:
            # a live-bar tick: repaint the last segment only (and where it was)
            rect = self._last_rect(y, n)
            self.update(rect.united(self._last_drawn) if not self._last_drawn.isNull() else rect)
            self._last_drawn = rect
        else:
            self.update()

    def _last_rect(self, y: np.ndarray, n: int) -> QtCore.QRectF:
        a, b = float(y[n - 2]), float(y[n - 1])
        if not (math.isfinite(a) and math.isfinite(b)):
            return QtCore.QRectF(self._bounds)
        lo, hi = min(a, b), max(a, b)
        pad = max((self._bounds.height()) * 0.01, 1e-9)
        return QtCore.QRectF(n - 2.5, lo - pad, 2.0, hi - lo + 2 * pad)

    def boundingRect(self) -> QtCore.QRectF:  # noqa: N802
        return self._bounds

    def blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Min and max per `BLOCK` bars (complete blocks, cached per version):
        a zoomed-out frame reduces these instead of a million values."""
        key = self.version
        if self._blocks is None or self._blocks[0] != key:
            y = self._values()
            m = len(y) // BLOCK
            seg = np.ascontiguousarray(y[:m * BLOCK], dtype=np.float64).reshape(m, BLOCK)
            with np.errstate(all='ignore'):
                self._blocks = (key, np.fmin.reduce(seg, axis=1), np.fmax.reduce(seg, axis=1))
        return self._blocks[1], self._blocks[2]

    def visible_range(self, x0: float, x1: float) -> tuple[float, float] | None:
        y = self._values()
        i0, i1 = max(int(math.floor(x0)), 0), min(int(math.ceil(x1)) + 1, len(y))
        if i1 <= i0:
            return None
        with np.errstate(all='ignore'):
            if i1 - i0 > 4 * BLOCK:
                bmin, bmax = self.blocks()
                b0, b1 = -(-i0 // BLOCK), min(i1 // BLOCK, len(bmin))
                parts = [y[i0:b0 * BLOCK], y[b1 * BLOCK:i1]]
                lo = min(float(np.fmin.reduce(bmin[b0:b1])),
                         *(float(np.fmin.reduce(p)) for p in parts if len(p)))
                hi = max(float(np.fmax.reduce(bmax[b0:b1])),
                         *(float(np.fmax.reduce(p)) for p in parts if len(p)))
            else:
                seg = y[i0:i1]
                lo, hi = float(np.fmin.reduce(seg)), float(np.fmax.reduce(seg))
        return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None

    def paint(self, p: QtGui.QPainter, *_: Any) -> None:
        view = self.getViewBox()
        y = self._values()
        n = len(y)
        if view is None or n < 2:
            return
        (x0, x1), _ = view.viewRange()
        i0 = max(int(math.floor(x0)) - 1, 0)
        i1 = min(int(math.ceil(x1)) + 2, n)
        if i1 - i0 < 2:
            return
        p.setPen(self.pen)
        cols = max(int(view.width()), 1)
        key = (i0, min(i1, n - 1), cols, self.version)
        if key != self._bulk_key:
            self._bulk = _path(y, i0, min(i1, n - 1), cols, self.blocks)
            self._bulk_key = key
            self.builds += 1
        if self._bulk is not None:
            self._bulk.draw(p)
        if i1 == n and math.isfinite(y[n - 1]) and math.isfinite(y[n - 2]):
            p.drawLine(QtCore.QPointF(n - 2, float(y[n - 2])), QtCore.QPointF(n - 1, float(y[n - 1])))


def _path(
    y: np.ndarray, i0: int, i1: int, cols: int,
    blocks: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
) -> LineBatch | None:
    """The line over bars `[i0, i1)`: raw, or min/max per pixel column
    (from the `blocks` min/max when a column spans several blocks), as
    one batch of segments (one `drawLines` call; a `QPainterPath` of the
    same points strokes several times slower)."""
    count = i1 - i0
    if count < 2:
        return None
    per = count / cols
    if per <= 2:
        xs = np.arange(i0, i1, dtype=np.float64)
        ys = np.ascontiguousarray(y[i0:i1], dtype=np.float64)
        return _segments(xs, ys)
    if blocks is not None and per >= 2 * BLOCK:
        bmin, bmax = blocks()
        per_b = max(int(round(per / BLOCK)), 1)
        b0 = i0 // BLOCK
        m = (min(i1 // BLOCK, len(bmin)) - b0) // per_b
        if m >= 2:
            with np.errstate(all='ignore'):
                lo = np.fmin.reduce(bmin[b0:b0 + m * per_b].reshape(m, per_b), axis=1)
                hi = np.fmax.reduce(bmax[b0:b0 + m * per_b].reshape(m, per_b), axis=1)
            bucket = per_b * BLOCK
            return _zigzag(b0 * BLOCK, bucket, lo, hi)
    bucket = int(math.ceil(per))
    m = count // bucket
    seg = np.ascontiguousarray(y[i0:i0 + m * bucket], dtype=np.float64).reshape(m, bucket)
    with np.errstate(all='ignore'):
        lo, hi = np.fmin.reduce(seg, axis=1), np.fmax.reduce(seg, axis=1)
    return _zigzag(i0, bucket, lo, hi)


def _zigzag(x0: int, bucket: int, lo: np.ndarray, hi: np.ndarray) -> LineBatch:
    m = len(lo)
    centre = x0 + bucket * np.arange(m, dtype=np.float64) + bucket / 2
    xs = np.repeat(centre, 2)
    ys = np.empty(2 * m)
    ys[0::2], ys[1::2] = lo, hi
    return _segments(xs, ys)


def _segments(xs: np.ndarray, ys: np.ndarray) -> LineBatch:
    """Consecutive points joined, skipping any segment with a NaN end."""
    ok = np.isfinite(ys)
    keep = ok[:-1] & ok[1:]
    batch = LineBatch()
    batch.set(xs[:-1][keep], ys[:-1][keep], xs[1:][keep], ys[1:][keep])
    return batch


class IndicatorAxis(PriceAxisItem):
    """A subplot's value axis: 2 decimals (RSI 0-100), compact k/M/G labels
    once values reach `COMPACT_FROM` (dollar volume in the millions)."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 (pyqtgraph API)
        if values and max(abs(v) for v in values) >= COMPACT_FROM:
            return [compact_number(v) for v in values]
        return super().tickStrings(values, scale, spacing)


class Subplot:
    """A linked pane of one subplot indicator."""

    def __init__(self, chart: ChartWidget, key: str, levels: tuple[float, ...], theme: Theme) -> None:
        from ._chart import ChartCanvas, _mk_plot

        self.key = key
        self.view = ChartView(f'fsp:{key}')
        self.axis = IndicatorAxis(2)
        self.plot = _mk_plot(self.view, self.axis, TimeAxisItem(chart.model), theme)
        self.plot.hideAxis('bottom')
        self.view.setXLink(chart.view)
        self.lines: list[IndicatorLine] = []
        self.levels = levels
        for level in levels:
            ln = pg.InfiniteLine(
                pos=level, angle=0, movable=False,
                pen=pg.mkPen(qcolor(theme.muted), style=QtCore.Qt.PenStyle.DashLine),
            )
            self.plot.addItem(ln, ignoreBounds=True)
        self.view.bind(self._y_range, chart.model.time_at, chart.model.__len__)
        # the crosshair's bar line runs through this pane too
        src = self._src = chart.crosshair.vline
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=src.pen)
        self.vline.setZValue(1000)
        self.vline.setVisible(src.isVisible())
        self.plot.addItem(self.vline, ignoreBounds=True)
        # the chart's crosshair outlives this pane: `close()` cuts these,
        # or every later move of it would call into this pane's deleted line
        self._follows = ((src.sigPositionChanged, self._follow_pos),
                         (src.visibleChanged, self._follow_visible))
        for signal, slot in self._follows:
            signal.connect(slot)
        self.canvas = ChartCanvas(self.plot, theme.background)
        self.label = QtWidgets.QLabel(key, self.canvas)
        self.label.setStyleSheet(f'color: {theme.muted}; background: transparent;')
        self.label.move(6, 2)
        self.label.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.axis.setWidth(chart.price_axis.width())

    def _follow_pos(self, line: pg.InfiniteLine) -> None:
        self.vline.setPos(line.value())

    def _follow_visible(self) -> None:
        self.vline.setVisible(self._src.isVisible())

    def close(self) -> None:
        """Leave the chart: stop following its crosshair, unlink the time
        axis, delete the pane's widgets (later, in Qt's loop)."""
        for signal, slot in self._follows:
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass  # the crosshair went first (the window is closing)
        self._follows = ()
        self.view.setXLink(None)
        self.canvas.setParent(None)
        self.canvas.deleteLater()

    def covers_last(self) -> bool:
        """Whether the value range shows every line's last value."""
        y0, y1 = self.view.y_range()
        for ln in self.lines:
            y = ln._values()
            if len(y) and math.isfinite(y[-1]) and not y0 <= y[-1] <= y1:
                return False
        return True

    def _y_range(self, x0: float, x1: float, _width: float) -> tuple[float, float] | None:
        spans = [r for r in (ln.visible_range(x0, x1) for ln in self.lines) if r is not None]
        spans += [(lv, lv) for lv in self.levels]
        if not spans:
            return None
        lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
        # head-room above for the pane's name label, so it never sits on a line
        return lo, hi + (hi - lo) * LABEL_ROOM


class ChartIndicators:
    """The indicators of one chart: their output arrays and graphics.

    `set_info(info)` (from the session handshake) builds the items;
    `apply(delta)` folds an output delta in; `bars_delta()` says what of the
    chart's bars the actor has not seen yet. `errors` holds the indicators
    the actor switched off (key -> why), also shown in the status bar.
    """

    def __init__(self, chart: ChartWidget, theme: Theme = DARK) -> None:
        self.chart = chart
        self.theme = theme
        self.info: list[dict[str, Any]] = []
        self.outs: dict[str, Growing] = {}
        self.lines: dict[tuple[str, str], IndicatorLine] = {}
        self.subplots: dict[str, Subplot] = {}
        self.errors: dict[str, str] = {}
        self.applied = 0
        self._sent: tuple[int, int, int, int] | None = None   # n, version, t0, t[n-1]
        self._sent_last = -1
        self.legend: QtWidgets.QLabel | None = None

    # --- the actor's outputs ---------------------------------------------------

    def set_info(self, info: list[dict[str, Any]]) -> None:
        self.clear()
        self.info = list(info)
        chart = self.chart
        colours = iter(PALETTE * 4)
        for ind in self.info:
            key = ind['key']
            outputs = list(ind['outputs'])
            dtype = np.dtype([(o, 'f8') for o in outputs])
            self.outs[key] = Growing(dtype)
            sub = None
            if ind['pane'] == 'subplot':
                sub = Subplot(chart, key, tuple(ind.get('levels') or ()), self.theme)
                self.subplots[key] = sub
                chart.splitter.insertWidget(len(self.subplots), sub.canvas)
            for out in outputs:
                line = IndicatorLine(self._values(key, out), next(colours))
                self.lines[(key, out)] = line
                if sub is None:
                    chart.price_plot.addItem(line, ignoreBounds=True)
                else:
                    sub.lines.append(line)
                    sub.plot.addItem(line)
        overlays = [(k, o) for (k, o) in self.lines if k not in self.subplots]
        if overlays:
            # which line is which: a key under the price pane's bottom-left corner
            self.legend = QtWidgets.QLabel(chart.price_canvas)
            self.legend.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            self.legend.setStyleSheet('background: transparent;')
            self.legend.setText('  '.join(
                f'<span style="color:{self.lines[(k, o)].pen.color().name()}">'
                f'{k if o == k.split("(")[0] else f"{k}.{o}"}</span>' for k, o in overlays))
            self.legend.adjustSize()
            self.legend.move(6, max(chart.price_canvas.height() - self.legend.height() - 4, 0))
            self.legend.show()
            chart.price_canvas.installEventFilter(_Pin(self.legend, chart.price_canvas))
        if self.subplots:
            sizes = chart.splitter.sizes()
            total = sum(sizes) or 600
            k = len(self.subplots)
            sub_h = min(SUBPLOT_HEIGHT, total // (k + 4))
            vol = max(sizes[-1], sub_h)
            chart.splitter.setSizes([total - vol - k * sub_h, *([sub_h] * k), vol])
        self._sent = None

    def _values(self, key: str, out: str) -> Callable[[], np.ndarray]:
        def get() -> np.ndarray:
            return self.outs[key].view[out]
        return get

    def clear(self) -> None:
        if self.legend is not None:
            self.legend.deleteLater()
            self.legend = None
        for (key, _), line in self.lines.items():
            if key not in self.subplots:
                self.chart.price_plot.removeItem(line)
        for sub in self.subplots.values():
            sub.close()
        self.info, self.outs, self.lines, self.subplots = [], {}, {}, {}
        self.errors = {}

    def apply(self, delta: Delta) -> None:
        """Fold an output delta into the arrays and repaint what changed."""
        self.applied += 1
        self.errors.update(delta.errors)
        for key, rows in delta.arrays.items():
            buf = self.outs.get(key)
            if buf is None:
                continue
            start = min(delta.start, buf.n)
            buf.apply(rows, start)
            for out in rows.dtype.names or ():
                line = self.lines.get((key, out))
                if line is not None:
                    line.changed(start, buf.n)
        for sub in self.subplots.values():
            if sub.axis.width() != self.chart.price_axis.width():
                sub.axis.setWidth(self.chart.price_axis.width())
            if delta.start == 0 or not sub.covers_last():
                sub.view.fit_y()

    def values(self, key: str, out: str | None = None) -> np.ndarray:
        """The output `out` (default: the first) of indicator `key` so far."""
        buf = self.outs[key]
        return buf.view[out or buf.view.dtype.names[0]]

    # --- the chart's bars -------------------------------------------------------

    def bars_delta(self) -> Delta | None:
        """The chart's bars the actor has not seen (None: nothing new).

        An append or a live-bar tick resends from the last sent bar; any
        other change of the history (a backfill prepended, a reload)
        resends everything.
        """
        model = self.chart.model
        n = len(model)
        if not n:
            return None
        sent = self._sent
        if sent is not None and sent[1] == model.version and self._sent_last == model.last_version:
            return None
        times = model.column('time')
        start = 0
        if sent is not None:
            sn, _, t0, tl = sent
            if n >= sn and int(times[0]) == t0 and int(times[sn - 1]) == tl:
                start = sn - 1
        self._sent = (n, model.version, int(times[0]), int(times[n - 1]))
        self._sent_last = model.last_version
        return Delta(start, {'ohlc': model.to_array(start, n)})


class _Pin(QtCore.QObject):
    """Keeps a label at its canvas' bottom-left corner across resizes."""

    def __init__(self, label: QtWidgets.QLabel, canvas: QtWidgets.QWidget) -> None:
        super().__init__(label)
        self.label = label

    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:  # noqa: N802
        if ev.type() == QtCore.QEvent.Type.Resize:
            self.label.move(6, max(obj.height() - self.label.height() - 4, 0))
        return False


def indicator_menu(
    parent: QtWidgets.QWidget,
    known: list[str],
    chosen: list[Selected],
) -> QtWidgets.QMenu:
    """The `i` menu: one checkable entry per known indicator (with its
    chart's parameters if chosen); the caller reads `menu.chosen()`."""
    menu = QtWidgets.QMenu('Indicators', parent)
    by_name = {s.name: s for s in chosen}
    for name in known:
        sel = by_name.get(name)
        act = menu.addAction(sel.key if sel is not None else name)
        act.setCheckable(True)
        act.setChecked(sel is not None)
        act.setData(name)
    return menu


def toggled(chosen: list[Selected], name: str) -> list[Selected]:
    """`chosen` with indicator `name` switched off if on, on (defaults) if off."""
    if any(s.name == name for s in chosen):
        return [s for s in chosen if s.name != name]
    return [*chosen, Selected(name)]


POLL_S = 0.02     # how often the chart's bars are checked for a delta to send


class IndicatorController:
    """Runs one chart's indicator session (trio) and its `i` menu (Qt).

    The session is reopened when the selection changes (the menu) and
    after a lost actor (with `Backoff`); a refused selection is reported
    in the status bar and waits for the next change.
    """

    def __init__(
        self,
        chart: ChartWidget,
        selected: list[Selected],
        *,
        modules: list[str] | None = None,
        status: Any = None,
        loglevel: str | None = None,
        theme: Theme = DARK,
    ) -> None:
        import trio

        self.chart = chart
        self.selected = list(selected)
        self.modules = list(modules or ())
        self.status = status
        self.loglevel = loglevel
        self.indicators = ChartIndicators(chart, theme)
        self.sessions = 0
        self.error: str | None = None
        self.live = trio.Event()          # a session's first outputs are drawn
        self._changed = trio.Event()
        chart.view.sig_key_press.connect(self._on_key)

    def set_selected(self, selected: list[Selected]) -> None:
        self.selected = list(selected)
        self._changed.set()

    def _say(self, text: str, final: bool = False) -> None:
        if self.status is not None:
            self.status.set_order_status(f'fsp:{self.chart.fqme}', text, final=final)

    # --- the menu ------------------------------------------------------------

    def _on_key(self, ev: QtGui.QKeyEvent) -> None:
        if ev.key() == MENU_KEY and not ev.isAutoRepeat() and not ev.modifiers():
            self.open_menu()

    def open_menu(self, at: QtCore.QPoint | None = None, exec_: bool = True) -> QtWidgets.QMenu:
        from ..fsp import known

        menu = indicator_menu(self.chart, known(), self.selected)
        menu.triggered.connect(lambda act: self.set_selected(toggled(self.selected, act.data())))
        if exec_:
            menu.popup(at or QtGui.QCursor.pos())
        return menu

    # --- the session -----------------------------------------------------------

    async def run(self) -> None:
        import trio

        from ..fsp import IndicatorError, open_indicators
        from ..service import Backoff

        backoff = Backoff()
        while True:
            self._changed = trio.Event()
            if not self.selected:
                self.indicators.clear()
                await self._changed.wait()
                continue
            try:
                async with trio.open_nursery() as n:
                    n.start_soon(self._until_changed, n.cancel_scope)
                    async with open_indicators(
                        self.chart.fqme, self.selected,
                        modules=self.modules, loglevel=self.loglevel,
                    ) as session:
                        self.sessions += 1
                        self.error = None
                        backoff.reset()
                        self.indicators.set_info(session.info)
                        self._say(f'{self.chart.fqme}: indicators '
                                  f'{", ".join(s.key for s in self.selected)}', final=True)
                        n.start_soon(self._push_loop, session)
                        async for delta in session.results:
                            self.indicators.apply(delta)
                            for key, why in delta.errors.items():
                                self._say(f'{self.chart.fqme}: indicator {key} off: {why}', final=True)
                            self.live.set()
                    n.cancel_scope.cancel()
            except IndicatorError as err:
                self.error = str(err)
                self._say(f'{self.chart.fqme}: indicators refused: {err}', final=True)
                await self._changed.wait()
                continue
            except Exception as err:  # noqa: BLE001 - a lost actor: say so, retry
                from ._app import _lost

                why = await _lost(err)
                self._say(f'{self.chart.fqme}: indicator actor lost ({why}): retrying')
                self.indicators._sent = None
                await backoff.sleep()

    async def _until_changed(self, cs: Any) -> None:
        await self._changed.wait()
        cs.cancel()

    async def _push_loop(self, session: Any) -> None:
        import trio

        self.indicators._sent = None
        while True:
            delta = self.indicators.bars_delta()
            if delta is not None:
                session.push(delta)
            await trio.sleep(POLL_S)
