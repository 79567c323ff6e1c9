"""Rendering core of the chart UI: bars, decimation, items, chart, window."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piker.ui import OHLC_DTYPE, BarsModel, decimate_ohlc, quantize_step
from piker.ui._decimate import STEP_DEN
from tests._qt_input import hover

pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_000


def mk_history(n: int, seed: int = 0, tf: int = 60, start: int = T0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.5, n))
    open_ = np.r_[close[0], close[:-1]]
    arr = np.zeros(n, dtype=OHLC_DTYPE)
    arr['time'] = start + np.arange(n) * tf
    arr['open'] = open_
    arr['close'] = close
    arr['high'] = np.maximum(open_, close) + rng.random(n)
    arr['low'] = np.minimum(open_, close) - rng.random(n)
    arr['volume'] = rng.random(n) * 100
    return arr


def quote(price: float, t: float, size: float = 1.0, kinds=('trade',), bid=None, ask=None) -> dict:
    return {
        'symbol': 'btcusdt.sim', 'last': price,
        'bid': price - 0.5 if bid is None else bid,
        'ask': price + 0.5 if ask is None else ask,
        'bsize': 1.0, 'asize': 1.0, 'volume': 0.0, 'time_ns': int(t * 1e9),
        'ticks': [{'type': k, 'price': price, 'size': size} for k in kinds],
    }


# --- model + decimation (Qt-free) -------------------------------------------

def naive_decimate(arr: np.ndarray, start: int, stop: int, num: int) -> dict:
    cols: dict[int, list[int]] = {}
    for i in range(start, stop):
        cols.setdefault((i * STEP_DEN) // num, []).append(i)
    out: dict[str, list] = {k: [] for k in ('col', 'first', 'last', 'open', 'high', 'low', 'close', 'volume')}
    for c in sorted(cols):
        idx = cols[c]
        out['col'].append(c)
        out['first'].append(idx[0])
        out['last'].append(idx[-1])
        out['open'].append(arr['open'][idx[0]])
        out['close'].append(arr['close'][idx[-1]])
        out['high'].append(max(arr['high'][i] for i in idx))
        out['low'].append(min(arr['low'][i] for i in idx))
        out['volume'].append(max(arr['volume'][i] for i in idx))
    return out


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 400),
    a=st.integers(0, 400),
    b=st.integers(0, 400),
    bars_per_col=st.floats(1.0, 50.0),
    seed=st.integers(0, 2**16),
)
def test_decimate_matches_naive_per_column_reference(n, a, b, bars_per_col, seed):
    arr = mk_history(n, seed)
    start, stop = sorted((min(a, n), min(b, n)))
    num = quantize_step(bars_per_col)
    got = decimate_ohlc(arr, start, stop, num)
    want = naive_decimate(arr, start, stop, num)
    for field, values in want.items():
        np.testing.assert_array_equal(getattr(got, field), np.asarray(values), err_msg=field)
    # the model (columnar) gives the same answer as the record array
    model = BarsModel(60, arr)
    got2 = decimate_ohlc(model, start, stop, num)
    np.testing.assert_array_equal(got2.high, got.high)
    np.testing.assert_array_equal(got2.close, got.close)


def test_decimate_million_bars_to_pixel_columns():
    arr = mk_history(1_000_000, seed=3)
    model = BarsModel(60, arr)
    width = 1600
    got = decimate_ohlc(model, 0, len(arr), quantize_step(len(arr) / width))
    assert width - 1 <= len(got) <= width + 1
    assert got.high.max() == arr['high'].max()
    assert got.low.min() == arr['low'].min()
    assert got.first[0] == 0 and got.last[-1] == len(arr) - 1
    # columns partition the bars exactly
    np.testing.assert_array_equal(got.first[1:], got.last[:-1] + 1)


def test_decimate_rejects_sub_bar_columns():
    with pytest.raises(ValueError, match='empty'):
        decimate_ohlc(mk_history(10), 0, 10, STEP_DEN - 1)


def test_bars_model_append_update_and_growth():
    m = BarsModel(60)
    assert len(m) == 0 and m.last is None
    for i in range(3000):  # crosses several capacity doublings
        m.append(T0 + 60 * i, 1.0, 2.0, 0.5, 1.5, 10.0)
    assert len(m) == 3000
    assert m.column('time')[-1] == T0 + 60 * 2999
    v = m.version
    m.update_last(close=1.75, volume=11.0)
    assert m.last['close'] == 1.75 and m.last['volume'] == 11.0
    assert m.version == v  # last-bar updates don't invalidate bulk caches
    arr = m.to_array(10, 20)
    assert arr.dtype == OHLC_DTYPE and len(arr) == 10
    with pytest.raises(ValueError, match='unknown'):
        m.update_last(bogus=1)


def test_bars_model_history_validation_and_time_mapping():
    bad = np.zeros(3, dtype=[('time', 'i8'), ('close', 'f8')])
    with pytest.raises(ValueError, match='lacks field'):
        BarsModel(60, bad)
    with pytest.raises(ValueError, match='timeframe'):
        BarsModel(0)
    # extra fields are fine
    extra = np.zeros(5, dtype=OHLC_DTYPE.descr + [('vwap', 'f8')])
    extra['time'] = T0 + np.arange(5) * 60
    m = BarsModel(60, extra)
    assert m.time_at(2) == T0 + 120
    assert m.time_at(7) == T0 + 420        # extrapolated past the data
    assert m.time_at(-1) == T0 - 60
    assert m.index_of_time(T0 + 130) == 2


def test_apply_trade_updates_and_rolls_over():
    m = BarsModel(60, mk_history(3))
    last_t = int(m.last['time'])
    assert m.apply_trade(m.last['high'] + 5, 2.0, last_t + 30) is False
    assert m.last['close'] == m.last['high']
    vol = m.last['volume']
    assert m.apply_trade(m.last['low'] - 5, 1.0, last_t + 59) is False
    assert m.last['low'] == m.last['close'] and m.last['volume'] == vol + 1.0
    assert m.apply_trade(123.0, 4.0, last_t + 61) is True
    assert len(m) == 4
    assert m.last == {'time': last_t + 60, 'open': 123.0, 'high': 123.0,
                      'low': 123.0, 'close': 123.0, 'volume': 4.0}


def test_import_is_lazy():
    code = (
        'import sys, piker.ui as ui; assert "pyqtgraph" not in sys.modules;'
        'ui.BarsModel; assert "pyqtgraph" not in sys.modules;'
        'ui.ChartWidget; assert "pyqtgraph" in sys.modules'
    )
    subprocess.run([sys.executable, '-c', code], check=True, timeout=60)


# --- Qt -----------------------------------------------------------------------

@pytest.fixture
def chart(qtbot):
    from piker.ui import ChartWidget, get_qapp
    get_qapp()
    w = ChartWidget('btcusdt.sim', mk_history(5000), timeframe=60)
    qtbot.addWidget(w)
    w.resize(1200, 700)
    w.show()
    qtbot.waitExposed(w)
    return w


def _painted(qtbot, chart) -> None:
    """Force a synchronous repaint of both panes."""
    chart.price_canvas.viewport().repaint()
    chart.volume_canvas.viewport().repaint()


def test_only_visible_bars_are_drawn(qtbot, chart):
    chart.show_bars(100)
    _painted(qtbot, chart)
    x0, x1 = chart.view.x_range()
    f = chart.ohlc_item.view_frame()
    assert not f.decimated
    assert x0 - 1 <= f.start and f.stop <= x1 + 2
    assert f.count <= 104
    drawn = sum(len(b) for b in chart.ohlc_item._wicks.values())
    assert drawn == f.count
    # a repaint without view change reuses the cached bulk
    builds = chart.ohlc_item.build_count
    _painted(qtbot, chart)
    assert chart.ohlc_item.build_count == builds


def test_zoomed_out_decimates_to_pixel_columns(qtbot, chart):
    n = len(chart.model)
    chart.view.setXRange(-0.5, n - 0.5, padding=0)
    _painted(qtbot, chart)
    f = chart.ohlc_item.view_frame()
    width = chart.view.width()
    assert f.decimated
    assert f.count <= width + 1
    drawn = sum(len(b) for b in chart.ohlc_item._wicks.values())
    assert drawn == f.count
    assert sum(len(b) for b in chart.ohlc_item._bodies.values()) == 0
    vf = chart.volume_item.view_frame()
    assert vf.decimated and vf.count == f.count


def test_y_range_follows_visible_bars(qtbot, chart):
    chart.show_bars(200)
    chart.view.pan(-2.0)
    x0, x1 = chart.view.x_range()
    i0, i1 = int(np.ceil(x0)), int(np.floor(x1)) + 1
    lo = chart.model['low'][i0:i1].min()
    hi = chart.model['high'][i0:i1].max()
    y0, y1 = chart.view.y_range()
    assert y0 <= lo and hi <= y1
    assert (y1 - y0) < 1.5 * (hi - lo)      # fitted, not the whole history
    assert chart.volume_view.y_range()[0] == 0.0
    assert chart.volume_view.x_range() == chart.view.x_range()   # x-linked


def test_quote_updates_last_bar_and_markers(qtbot, chart):
    m = chart.model
    n = len(m)
    t_last = m.last['time']
    high = m.last['high']
    vol = m.last['volume']
    chart.update_quote(quote(high + 3.0, t_last + 10, size=2.5, bid=high + 2.9, ask=high + 3.1))
    assert len(m) == n
    assert m.last['close'] == high + 3.0 == m.last['high']
    assert m.last['volume'] == pytest.approx(vol + 2.5)
    assert chart.l1.prices == {'bid': high + 2.9, 'ask': high + 3.1, 'last': high + 3.0}
    assert chart.l1.lines['bid'].value() == high + 2.9
    assert chart.l1.label_text('ask') == chart.format_price(high + 3.1)
    assert chart.format_price(high + 3.0) in chart.title_text()
    y0, y1 = chart.view.y_range()
    assert y1 >= high + 3.0                 # the live high stays in view
    # a print counted once even when the quote has both trade and last ticks
    chart.update_quote(quote(high + 1.0, t_last + 20, size=1.0, kinds=('trade', 'last')))
    assert m.last['volume'] == pytest.approx(vol + 3.5)
    # `last` ticks alone are prints too
    chart.update_quote(quote(high + 1.5, t_last + 30, size=1.0, kinds=('last',)))
    assert m.last['volume'] == pytest.approx(vol + 4.5)
    # bid/ask-only quotes move markers, not bars
    q = quote(high, t_last + 40, kinds=())
    q['ticks'] = [{'type': 'bid', 'price': high - 0.25, 'size': 1.0},
                  {'type': 'ask', 'price': high + 0.25, 'size': 1.0}]
    chart.update_quote(q)
    assert m.last['close'] == high + 1.5
    assert chart.l1.prices['bid'] == high - 0.25      # ticks are the latest word
    assert chart.l1.prices['ask'] == high + 0.25
    assert chart.l1.prices['last'] == high               # top-level `last`


def test_new_bar_rolls_over_and_view_follows(qtbot, chart):
    m = chart.model
    n = len(m)
    x0, x1 = chart.view.x_range()
    t_next = m.last['time'] + 60
    chart.update_quote(quote(101.0, t_next + 1, size=3.0))
    assert len(m) == n + 1
    assert m.last == {'time': t_next, 'open': 101.0, 'high': 101.0, 'low': 101.0,
                      'close': 101.0, 'volume': 3.0}
    nx0, nx1 = chart.view.x_range()
    assert nx0 == pytest.approx(x0 + 1) and nx1 == pytest.approx(x1 + 1)
    # not following (scrolled back in history): the view stays put
    chart.view.pan(-5.0)
    assert not chart.view.following
    x0, x1 = chart.view.x_range()
    chart.update_quote(quote(102.0, t_next + 61))
    assert len(m) == n + 2
    assert chart.view.x_range() == (x0, x1)
    _painted(qtbot, chart)


def test_last_bar_update_repaints_only_last_bar(qtbot, chart):
    chart.show_bars(300)
    _painted(qtbot, chart)
    builds = chart.ohlc_item.build_count
    t = chart.model.last['time']
    for i in range(20):
        chart.update_quote(quote(chart.model.last['close'] + 0.01 * i, t + 1))
        _painted(qtbot, chart)
    assert chart.ohlc_item.build_count == builds   # bulk never rebuilt


def test_crosshair_labels_show_cursor_price_and_time(qtbot, chart, no_mouse_rate_limit):
    from piker.ui import format_time
    chart.show_bars(100)
    n = len(chart.model)
    price = float(np.mean(chart.view.y_range()))
    chart.move_cursor(n - 10.3, price)
    ch = chart.crosshair
    assert ch.index == n - 10
    assert ch.price_label.text() == chart.format_price(price)
    assert ch.price_label.isVisible()
    want_time = format_time(chart.model.time_at(n - 10), 60)
    assert ch.time_label.text() == want_time
    assert chart.cursor_price() == round(price, chart.digits)
    assert want_time in chart.legend_text()

    # a real pointer move over the price pane drives the same read-outs
    seen = []
    chart.view.sig_cursor_moved.connect(lambda p, t: seen.append((p, t)))
    px = int(chart.index_to_x(n - 20))
    py = int(chart.price_to_y(price))
    from pyqtgraph.Qt import QtCore
    hover(chart.price_canvas.viewport(), QtCore.QPoint(px, py))
    qtbot.waitUntil(lambda: ch.index == n - 20, timeout=2000)
    assert abs(chart.cursor_price() - price) < 2 * (chart.view.y_range()[1] - chart.view.y_range()[0]) / chart.view.height()
    assert seen and seen[-1][1] == chart.model.time_at(n - 20)
    assert ch.time_label.text() == format_time(chart.model.time_at(n - 20), 60)


def test_price_pixel_mapping_round_trips(qtbot, chart):
    y0, y1 = chart.view.y_range()
    price = y0 + 0.3 * (y1 - y0)
    y = chart.price_to_y(price)
    assert 0 < y < chart.price_canvas.height()
    px_per_price = chart.view.height() / (y1 - y0)
    assert abs(chart.y_to_price(y) - price) <= 1.0 / px_per_price
    assert chart.price_to_y(y1 - 0.01 * (y1 - y0)) < chart.price_to_y(y0 + 0.01 * (y1 - y0))


def test_left_click_emits_price_and_time(qtbot, chart):
    from pyqtgraph.Qt import QtCore
    n = len(chart.model)
    y0, y1 = chart.view.y_range()
    price = (y0 + y1) / 2
    px, py = int(chart.index_to_x(n - 5)), int(chart.price_to_y(price))
    with qtbot.waitSignal(chart.view.sig_click, timeout=2000) as sig:
        qtbot.mouseClick(
            chart.price_canvas.viewport(), QtCore.Qt.MouseButton.LeftButton,
            pos=QtCore.QPoint(px, py),
        )
    got_price, got_time = sig.args
    assert abs(got_price - price) < 2 * (y1 - y0) / chart.view.height()
    assert got_time == chart.model.time_at(n - 5)


def test_keys_pan_and_zoom(qtbot, chart):
    from pyqtgraph.Qt import QtCore
    K = QtCore.Qt.Key
    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
    view = chart.view
    presses, releases = [], []
    view.sig_key_press.connect(lambda ev: presses.append(ev.key()))
    view.sig_key_release.connect(lambda ev: releases.append(ev.key()))

    x0, x1 = view.x_range()
    qtbot.keyClick(chart, K.Key_Left)
    a0, a1 = view.x_range()
    assert a0 < x0 and a1 < x1 and (a1 - a0) == pytest.approx(x1 - x0)
    qtbot.keyClick(chart, K.Key_Right)
    qtbot.keyClick(chart, K.Key_Right)
    b0, b1 = view.x_range()
    assert b0 > a0 and (b1 - b0) == pytest.approx(x1 - x0)

    w = b1 - b0
    qtbot.keyClick(chart, K.Key_Plus)
    assert view.x_range()[1] - view.x_range()[0] < w
    w = view.x_range()[1] - view.x_range()[0]
    qtbot.keyClick(chart, K.Key_Minus)
    assert view.x_range()[1] - view.x_range()[0] > w
    w = view.x_range()[1] - view.x_range()[0]
    qtbot.keyClick(chart, K.Key_Up, modifier=ctrl)
    assert view.x_range()[1] - view.x_range()[0] < w
    w = view.x_range()[1] - view.x_range()[0]
    qtbot.keyClick(chart, K.Key_Down, modifier=ctrl)
    assert view.x_range()[1] - view.x_range()[0] > w

    # zooming while following keeps the live bar in view
    qtbot.keyClick(chart, K.Key_Home)
    assert view.following and view.auto_y
    for _ in range(5):
        qtbot.keyClick(chart, K.Key_Plus)
    assert view.following

    # Up/Down take manual control of the price scale; Home gives it back
    y = view.y_range()
    qtbot.keyClick(chart, K.Key_Up)
    assert not view.auto_y and view.y_range()[0] > y[0]
    qtbot.keyClick(chart, K.Key_Home)
    assert view.auto_y

    assert K.Key_Left in presses and K.Key_Plus in presses
    assert K.Key_Left in releases


def test_main_window_tabs_and_quote_routing(qtbot):
    from piker.ui import MainWindow, get_qapp
    get_qapp()
    win = MainWindow()
    qtbot.addWidget(win)
    fqmes = ['btcusdt.sim', 'ethusdt.sim', 'simco.sim']
    for i, fqme in enumerate(fqmes):
        with qtbot.waitSignal(win.sig_chart_added) as sig:
            chart = win.add_chart(fqme, mk_history(500 + i, seed=i))
        assert sig.args == [fqme]
        assert chart.fqme == fqme
    assert win.tabs.count() == 3
    assert [win.tabs.tabText(i) for i in range(3)] == fqmes
    assert set(win.charts) == set(fqmes)
    # re-adding refreshes the same tab
    again = win.add_chart('ethusdt.sim', mk_history(10, seed=9))
    assert again is win.chart('ethusdt.sim') and len(again.model) == 10
    assert win.current_chart() is again
    with pytest.raises(KeyError, match='btcusdt.sim'):
        win.chart('nope.sim')

    eth = win.chart('ethusdt.sim')
    t = eth.model.last['time']
    win.update_quotes({'ethusdt.sim': quote(77.0, t + 1), 'unknown.sim': quote(1.0, t)})
    assert eth.model.last['close'] == 77.0
    assert win.chart('btcusdt.sim').l1.prices['last'] is None

    with qtbot.waitSignal(win.sig_first_frame, timeout=5000):
        win.resize(900, 600)
        win.show()
    win.remove_chart('simco.sim')
    assert win.tabs.count() == 2


def test_status_bar_orders_and_groups(qtbot):
    from piker.ui import StatusBar
    bar = StatusBar(linger_ms=30)
    qtbot.addWidget(bar)
    bar.set_order_status('oid-1', 'submitting buy 1 @ 100')
    bar.set_order_status('oid-2', 'submitting sell 2 @ 110')
    bar.set_order_status('oid-1', 'open buy 1 @ 100')
    assert bar.texts() == ['open buy 1 @ 100', 'submitting sell 2 @ 110']
    assert bar.order_status('oid-1') == 'open buy 1 @ 100'

    gid = bar.begin_group('cancelling 3 orders')
    assert 'cancelling 3 orders' in bar.texts()
    assert bar.open_groups() == [gid]
    bar.end_group('cancelled 3 orders')
    assert 'cancelled 3 orders' in bar.texts()
    assert 'cancelling 3 orders' not in bar.texts()
    assert bar.open_groups() == []
    qtbot.waitUntil(lambda: 'cancelled 3 orders' not in bar.texts(), timeout=2000)

    # two groups at once end independently
    g1 = bar.begin_group('cancelling 2 orders')
    g2 = bar.begin_group('closing position')
    bar.end_group('cancelled 2 orders', g1)
    assert bar.open_groups() == [g2]
    assert 'closing position' in bar.texts()
    with pytest.raises(KeyError):
        StatusBar().end_group('nothing open')

    # final order statuses linger then clear; an update in between keeps it
    bar.set_order_status('oid-2', 'filled sell 2 @ 110', final=True)
    bar.set_order_status('oid-1', 'cancelled', final=True)
    bar.set_order_status('oid-1', 'open buy 1 @ 101')   # re-opened: not final
    qtbot.waitUntil(lambda: bar.order_status('oid-2') is None, timeout=2000)
    assert bar.order_status('oid-1') == 'open buy 1 @ 101'
    bar.clear_order_status('oid-1')
    assert bar.order_status('oid-1') is None


def test_screenshot_is_a_dark_chart_with_candles(qtbot, tmp_path):
    import pyqtgraph as pg
    from pyqtgraph.Qt import QtGui

    from piker.ui import DARK, MainWindow, get_qapp
    get_qapp()
    win = MainWindow()
    qtbot.addWidget(win)
    chart = win.add_chart('btcusdt.sim', mk_history(5000))
    win.resize(1000, 600)
    win.show()
    qtbot.waitExposed(win)
    last = chart.model.last
    chart.update_quote(quote(last['close'], last['time'] + 1, bid=last['close'] - 0.2,
                             ask=last['close'] + 0.2))
    path = tmp_path / 'chart.png'
    assert win.grab().save(str(path))
    img = QtGui.QImage(str(path)).convertToFormat(QtGui.QImage.Format.Format_RGB32)
    w, h = img.width(), img.height()
    px = pg.functions.ndarray_from_qimage(img)      # (h, w, 4) BGRA, any Qt binding
    bgr = px[:, :, :3].reshape(-1, 3).astype(int)

    def count(hexstr: str) -> int:
        c = QtGui.QColor(hexstr)
        return int(np.sum(np.all(np.abs(bgr - [c.blue(), c.green(), c.red()]) <= 8, axis=1)))

    bg = QtGui.QColor(DARK.background)
    assert count(DARK.background) > 0.5 * w * h, 'mostly dark background'
    assert count(DARK.up) > 500 and count(DARK.down) > 500, 'green and red candles'
    assert count(DARK.bid) > 50 and count(DARK.ask) > 50, 'bid/ask tags'
    assert bg.lightness() < 40


def test_chart_without_history_builds_bars_from_quotes(qtbot):
    from piker.ui import ChartWidget, get_qapp
    get_qapp()
    chart = ChartWidget('simco.sim', timeframe=60)
    qtbot.addWidget(chart)
    chart.resize(800, 500)
    chart.show()
    t0 = 1_700_000_040
    for i in range(30):   # two quotes per minute bar
        chart.update_quote(quote(10.0 + i, t0 + 30 * i, size=1.0))
    _painted(qtbot, chart)
    m = chart.model
    assert len(m) == 15
    assert m.bar(0) == {'time': t0, 'open': 10.0, 'high': 11.0, 'low': 10.0,
                        'close': 11.0, 'volume': 2.0}
    x0, x1 = chart.view.x_range()
    assert x0 < 0 and 14 < x1                      # every bar in view
    y0, y1 = chart.view.y_range()
    assert y0 <= 10.0 and 39.0 <= y1
    assert chart.view.following


def _wheel(widget, pos, dy):
    from pyqtgraph.Qt import QtCore, QtGui, QtWidgets
    ev = QtGui.QWheelEvent(
        QtCore.QPointF(pos), QtCore.QPointF(widget.mapToGlobal(pos)),
        QtCore.QPoint(0, 0), QtCore.QPoint(0, dy),
        QtCore.Qt.MouseButton.NoButton, QtCore.Qt.KeyboardModifier.NoModifier,
        QtCore.Qt.ScrollPhase.NoScrollPhase, False,
    )
    QtWidgets.QApplication.sendEvent(widget, ev)


def test_mouse_wheel_and_drag(qtbot, chart, no_mouse_rate_limit):
    from pyqtgraph.Qt import QtCore
    view, vp = chart.view, chart.price_canvas.viewport()
    chart.show_bars(300)
    # wheel over the plot zooms time about the pointer, price stays automatic
    x0, x1 = view.x_range()
    anchor_x = int(chart.index_to_x((x0 + x1) / 2))
    _wheel(vp, QtCore.QPoint(anchor_x, 200), 120)
    nx0, nx1 = view.x_range()
    assert nx1 - nx0 < x1 - x0 and nx0 > x0 and nx1 < x1
    assert view.auto_y
    # wheel over the price axis scales price: manual price scale
    y0, y1 = view.y_range()
    axis_x = int(chart.index_to_x(view.x_range()[1])) + 20
    _wheel(vp, QtCore.QPoint(axis_x, 200), 120)
    assert not view.auto_y
    assert view.y_range()[1] - view.y_range()[0] < y1 - y0

    # drag right pans to earlier bars
    x0, x1 = view.x_range()
    L = QtCore.Qt.MouseButton.LeftButton
    qtbot.mousePress(vp, L, pos=QtCore.QPoint(300, 200))
    for x in range(300, 500, 20):
        hover(vp, QtCore.QPoint(x, 200), buttons=L)
    qtbot.mouseRelease(vp, L, pos=QtCore.QPoint(500, 200))
    nx0, nx1 = view.x_range()
    assert nx0 < x0 and nx1 - nx0 == pytest.approx(x1 - x0)


class FakeMkt:
    """Duck-typed stand-in for accounting.MktPair (price tick 0.5)."""

    price_tick_digits = 1

    def quantize(self, value: float, quantity_type: str = 'size') -> float:
        assert quantity_type == 'price'
        return round(value * 2) / 2


def test_mkt_info_sets_decimals_and_cursor_ticks(qtbot):
    from piker.ui import MainWindow, get_qapp
    get_qapp()
    win = MainWindow()
    qtbot.addWidget(win)
    chart = win.add_chart('simco.sim', mk_history(300))
    assert chart.digits == 2
    win.add_chart('simco.sim', mkt_info=FakeMkt())
    assert chart.digits == 1 and chart.format_price(1234.56) == '1,234.6'
    n = len(chart.model)
    chart.move_cursor(n - 3, 101.3)
    assert chart.cursor_price() == 101.5
    assert chart.crosshair.price_label.text() == '101.3'
    chart.update_quote(quote(100.26, chart.model.last['time'] + 1))
    assert chart.l1.label_text('last') == '100.3'


def test_model_decimation_memo_tracks_the_live_bar():
    m = BarsModel(60, mk_history(100))
    num = quantize_step(10)
    a = m.decimated(0, 99, num)
    assert m.decimated(0, 99, num) is a           # shared between items
    m.update_last(high=1e6)
    assert m.decimated(0, 99, num) is a           # bulk excludes the live bar
    full = m.decimated(0, 100, num)
    assert full.high[-1] == 1e6
    m.update_last(high=2e6)
    assert m.decimated(0, 100, num).high[-1] == 2e6


def test_history_dtype_matches_the_feed_layer():
    from piker.data import OHLC_DTYPE as FEED_DTYPE
    assert OHLC_DTYPE == FEED_DTYPE


@pytest.mark.parametrize('bars_per_px', [0.75, 0.9, 1.0, 1.1, 1.3, 1.7])
def test_volume_pane_has_no_empty_bands_near_one_bar_per_pixel(qtbot, bars_per_px):
    """Issue #16 item 5: at ~1 bar per pixel the volume pane showed empty
    vertical bands that moved while panning (sub-pixel bars and columns of
    uneven width rasterised to nothing). Every bar has volume here, so the
    bottom rows of the pane must be covered at every x, at every pan offset."""
    from pyqtgraph.Qt import QtGui

    from piker.ui import ChartWidget
    arr = mk_history(6000)
    arr['volume'] = 10.0
    chart = ChartWidget('btcusdt.sim', arr)
    qtbot.addWidget(chart)
    chart.resize(900, 500)
    chart.show()
    qtbot.waitExposed(chart)
    vb = chart.volume_view
    width_px = vb.width()
    span = width_px * bars_per_px
    bg = QtGui.QColor(chart.theme.background).rgb()
    for shift in (0.0, 0.3, 17.6):
        x1 = len(chart.model) - 1 - shift
        chart.view.setXRange(x1 - span, x1, padding=0)
        vb.setYRange(0, 20, padding=0)
        img = chart.volume_canvas.grab().toImage()
        r = vb.sceneBoundingRect()
        y = int(r.bottom() - 3)
        empty = [x for x in range(int(r.left()) + 2, int(r.right()) - 2)
                 if img.pixel(x, y) & 0xFFFFFF == bg & 0xFFFFFF]
        assert empty == [], f'{len(empty)} empty px columns at {bars_per_px} bars/px, shift {shift}: {empty[:10]}'
