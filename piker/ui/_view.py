"""`ChartView`: the ViewBox of a chart pane, with navigation and input hooks.

Navigation is the trader's kind, not pyqtgraph's free 2D pan:

- mouse drag pans time, the wheel zooms time about the pointer, and the
  price range follows the visible bars (`auto_y`). Dragging or wheeling on
  the price axis takes manual control of the price scale; `Home` gives it
  back (and jumps to the live bar).
- keys: Left/Right pan, `+`/`-` or Ctrl+Up/Ctrl+Right (in) and
  Ctrl+Down/Ctrl+Left (out) zoom, Up/Down move the price scale, Home resets.
- zooming keeps the live bar pinned to the right edge while it is in view
  (`follow`), so a chart watching the market keeps watching it.

Order mode hooks in through the signals: `sig_key_press`/`sig_key_release`
carry the `QKeyEvent`; `sig_click(price, time)` fires on a left click and
`sig_cursor_moved(price, time)` on pointer moves (time is the epoch start of
the bar under the pointer).
"""
from __future__ import annotations

from collections.abc import Callable

import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui

YSource = Callable[[float, float, float], 'tuple[float, float] | None']

PAN_FRACTION = 0.125     # of the visible width per arrow key press
ZOOM_STEP = 1.25         # x range factor per zoom key press
WHEEL_STEP = 1.0015      # x range factor per wheel delta unit (120 = one notch)
MIN_BARS = 8             # can't zoom in further than this many bars
Y_PAD = 0.06             # fraction of the price range added above and below
KEEP_BARS = 5            # pan/zoom never leaves fewer bars than this in view
KEEP_Y = 0.1             # nor less than this fraction of the height on the bars


class ChartView(pg.ViewBox):
    """ViewBox in bar-index x / value y with trader navigation and input signals."""

    sig_key_press = QtCore.Signal(object)       # QKeyEvent
    sig_key_release = QtCore.Signal(object)     # QKeyEvent
    sig_click = QtCore.Signal(float, float)     # price, bar time (epoch s)
    sig_cursor_moved = QtCore.Signal(float, float)  # price, bar time (epoch s)
    sig_auto_y_changed = QtCore.Signal(bool)

    def __init__(self, name: str = 'price', y_floor: float | None = None) -> None:
        super().__init__(enableMenu=False, defaultPadding=0.0)
        self.name = name
        self.y_floor = y_floor          # e.g. 0 for volume: never show below
        self._auto_y = True
        self._y_source: YSource | None = None
        self._time_at: Callable[[float], float] = float
        self._n_bars: Callable[[], int] = lambda: 0
        self.disableAutoRange()
        self.setMouseEnabled(x=True, y=False)
        self.setLimits(minXRange=MIN_BARS)
        self.sigXRangeChanged.connect(self._on_x_range)
        self.sigYRangeChanged.connect(self._keep_data_y)
        self.sigResized.connect(self._on_x_range)

    # --- wiring (done by ChartWidget) ----------------------------------------

    def bind(
        self,
        y_source: YSource,
        time_at: Callable[[float], float],
        n_bars: Callable[[], int],
    ) -> None:
        """Connect the view to its data: y extent of a range, index->time, bar count."""
        self._y_source = y_source
        self._time_at = time_at
        self._n_bars = n_bars

    # --- state ------------------------------------------------------------

    @property
    def auto_y(self) -> bool:
        """True while the value range follows the visible bars."""
        return self._auto_y

    @auto_y.setter
    def auto_y(self, on: bool) -> None:
        if on == self._auto_y:
            return
        self._auto_y = on
        self.setMouseEnabled(x=True, y=not on)
        if on:
            self.fit_y()
        self.sig_auto_y_changed.emit(on)

    @property
    def following(self) -> bool:
        """True while the live (last) bar is in view: new bars scroll the view."""
        n = self._n_bars()
        if not n:
            return True
        (x0, x1), _ = self.viewRange()
        return x0 - 0.5 <= n - 1 <= x1 + 0.5

    def x_range(self) -> tuple[float, float]:
        (x0, x1), _ = self.viewRange()
        return x0, x1

    def y_range(self) -> tuple[float, float]:
        _, (y0, y1) = self.viewRange()
        return y0, y1

    # --- navigation ---------------------------------------------------------

    def fit_y(self) -> None:
        """Fit the value range to the bars in view (when `auto_y`)."""
        if not self._auto_y or self._y_source is None:
            return
        x0, x1 = self.x_range()
        rng = self._y_source(x0, x1, self.width())
        if rng is None:
            return
        lo, hi = rng
        pad = (hi - lo) * Y_PAD or max(abs(hi) * 1e-3, 1e-9)
        lo, hi = lo - pad, hi + pad
        if self.y_floor is not None:
            lo = self.y_floor
        if (lo, hi) != self.y_range():
            self.setYRange(lo, hi, padding=0)

    def ensure_y_covers(self, lo: float, hi: float) -> None:
        """Refit if `[lo, hi]` escapes the value range (cheap check for live ticks)."""
        if not self._auto_y:
            return
        y0, y1 = self.y_range()
        if lo < y0 or hi > y1:
            self.fit_y()

    def pan(self, fraction: float) -> None:
        """Shift the time range by `fraction` of its width (+ is later)."""
        x0, x1 = self.x_range()
        d = (x1 - x0) * fraction
        self.setXRange(x0 + d, x1 + d, padding=0)

    def pan_bars(self, bars: float) -> None:
        """Shift the time range by a number of bars (new bar while following)."""
        x0, x1 = self.x_range()
        self.setXRange(x0 + bars, x1 + bars, padding=0)

    def zoom(self, factor: float, anchor: float | None = None) -> None:
        """Scale the time range by `factor` (< 1 zooms in) about x `anchor`.

        Without an anchor, zoom about the live bar while following (so it
        stays put on the right) else about the centre.
        """
        x0, x1 = self.x_range()
        if anchor is None:
            n = self._n_bars()
            anchor = float(n - 1) if self.following and n else (x0 + x1) / 2
        width = max(MIN_BARS, (x1 - x0) * factor)
        left_frac = (anchor - x0) / (x1 - x0) if x1 > x0 else 0.5
        nx0 = anchor - width * left_frac
        self.setXRange(nx0, nx0 + width, padding=0)

    def pan_y(self, fraction: float) -> None:
        """Move the value range by `fraction` of its height (manual price scale)."""
        self.auto_y = False
        y0, y1 = self.y_range()
        d = (y1 - y0) * fraction
        self.setYRange(y0 + d, y1 + d, padding=0)

    def show_bars(self, count: int, right_margin: float = 3.0) -> None:
        """Show the last `count` bars with the live bar `right_margin` bars from the edge."""
        n = self._n_bars()
        x1 = n - 1 + right_margin + 0.5
        self.setXRange(x1 - max(count, MIN_BARS) - right_margin, x1, padding=0)
        self.auto_y = True
        self.fit_y()

    # --- input --------------------------------------------------------------

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        """Emit `sig_key_press`, then apply navigation keys."""
        self.sig_key_press.emit(ev)
        self.navigate(ev)
        ev.accept()

    def keyReleaseEvent(self, ev: QtGui.QKeyEvent) -> None:  # noqa: N802
        self.sig_key_release.emit(ev)
        ev.accept()

    def navigate(self, ev: QtGui.QKeyEvent) -> bool:
        """Apply a navigation key; returns False for keys it does not handle."""
        key = ev.key()
        K = QtCore.Qt.Key
        ctrl = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier)
        if key in (K.Key_Plus, K.Key_Equal) or (ctrl and key in (K.Key_Up, K.Key_Right)):
            self.zoom(1 / ZOOM_STEP)
        elif key in (K.Key_Minus, K.Key_Underscore) or (ctrl and key in (K.Key_Down, K.Key_Left)):
            self.zoom(ZOOM_STEP)
        elif key == K.Key_Left:
            self.pan(-PAN_FRACTION)
        elif key == K.Key_Right:
            self.pan(PAN_FRACTION)
        elif key == K.Key_Up:
            self.pan_y(PAN_FRACTION)
        elif key == K.Key_Down:
            self.pan_y(-PAN_FRACTION)
        elif key == K.Key_Home:
            x0, x1 = self.x_range()
            self.show_bars(int(x1 - x0))
        else:
            return False
        return True

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        """Wheel zooms time about the pointer; on the price axis it scales price."""
        delta = ev.delta() if hasattr(ev, 'delta') else ev.angleDelta().y()
        if axis == 1:
            self.auto_y = False
            super().wheelEvent(ev, axis=1)
            return
        factor = WHEEL_STEP ** (-delta)
        anchor = self.mapSceneToView(ev.scenePos()).x()
        self.zoom(factor, anchor=anchor)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        """Drag pans time; on the price axis it takes manual price scale control."""
        if axis == 1:
            self.auto_y = False
        super().mouseDragEvent(ev, axis=axis)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        """Left click: `sig_click(price, time)`; double click: back to auto price scale."""
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            super().mouseClickEvent(ev)
            return
        ev.accept()
        if ev.double():
            self.auto_y = True
            return
        pt = self.mapSceneToView(ev.scenePos())
        self.sig_click.emit(float(pt.y()), float(self._time_at(round(pt.x()))))

    # --- internals ----------------------------------------------------------

    def _on_x_range(self, *_) -> None:
        if self._keep_data_x():
            return          # moved back: the recursive call refits
        self.fit_y()
        self._keep_data_y()

    def _keep_data_x(self) -> bool:
        """Pan/zoom must not leave the data: keep `KEEP_BARS` bars in view."""
        n = self._n_bars()
        if not n:
            return False
        keep = min(KEEP_BARS, n)
        x0, x1 = self.x_range()
        lo, hi = keep - 1.0, n - keep      # x1 must reach bar keep-1, x0 bar n-keep
        shift = max(lo - x1, 0.0) or min(hi - x0, 0.0)
        if not shift:
            return False
        self.setXRange(x0 + shift, x1 + shift, padding=0)
        return True

    def _keep_data_y(self, *_) -> None:
        """A manual price scale must not leave the bars either: keep `KEEP_Y`
        of the height on the visible bars' extent."""
        if self._auto_y or self._y_source is None:
            return
        x0, x1 = self.x_range()
        rng = self._y_source(x0, x1, self.width())
        if rng is None:
            return
        lo, hi = rng
        y0, y1 = self.y_range()
        margin = (y1 - y0) * KEEP_Y
        shift = max(lo + margin - y1, 0.0) or min(hi - margin - y0, 0.0)
        if shift:
            self.setYRange(y0 + shift, y1 + shift, padding=0)
