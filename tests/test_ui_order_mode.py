"""Order mode of the chart: keys + mouse -> orders, EMS events -> lines.

Most tests drive `OrderMode` on a real (offscreen) chart against a fake
client that records what would go to emsd, and feed it `Status` /
`BrokerdPosition` messages as emsd would. The end-to-end tests at the
bottom run the real thing: `ChartApp` as a trio guest of Qt, the service
tree, the paper engine and the sim market control.
"""
from __future__ import annotations

import os
import time
import uuid
from decimal import Decimal

import numpy as np
import pytest
import trio

from piker.accounting import Asset, MktPair
from piker.clearing._messages import BrokerdPosition, Order, Status
from piker.testing._proc import with_env
from tests._qt_input import hover

pytestmark = pytest.mark.timeout(60)

FQME = 'btcusdt.sim'
T0 = 1_700_000_000


def mk_mkt() -> MktPair:
    return MktPair(
        dst=Asset(name='btc', atype='crypto', tx_tick=Decimal('0.00000001')),
        src=Asset(name='usdt', atype='crypto', tx_tick=Decimal('0.000001')),
        price_tick=Decimal('0.1'), size_tick=Decimal('0.00001'), broker='sim',
    )


def mk_history(n: int, start_price: float = 30_000.0, seed: int = 0) -> np.ndarray:
    from piker.ui import OHLC_DTYPE
    rng = np.random.default_rng(seed)
    close = start_price + np.cumsum(rng.normal(0, 5, n))
    open_ = np.r_[close[0], close[:-1]]
    arr = np.zeros(n, dtype=OHLC_DTYPE)
    arr['time'] = T0 + np.arange(n) * 60
    arr['open'] = open_
    arr['close'] = close
    arr['high'] = np.maximum(open_, close) + rng.random(n) * 3
    arr['low'] = np.minimum(open_, close) - rng.random(n) * 3
    arr['volume'] = rng.random(n) * 10
    return arr


class FakeClient:
    """Records what order mode sends (an `OrderClient` without emsd)."""

    def __init__(self, fqme: str = FQME) -> None:
        self.fqme = fqme
        self.sent: list[Order] = []
        self.updates: list[tuple[str, float | None, float | None]] = []
        self.cancels: list[str] = []
        self.orders: dict[str, Order] = {}

    def mk_order(self, action, price, size, *, exec_mode='live', account='paper', symbol=None):
        return Order(
            oid=str(uuid.uuid4()), symbol=symbol or self.fqme, action=action,
            exec_mode=exec_mode, price=price, size=size, account=account,
            brokers=['sim'],
        )

    def send_nowait(self, order: Order) -> str:
        self.sent.append(order)
        self.orders[order.oid] = order
        return order.oid

    def update_nowait(self, oid, price=None, size=None) -> Order:
        if oid not in self.orders:
            raise KeyError(oid)
        self.updates.append((oid, price, size))
        changes = {k: v for k, v in (('price', price), ('size', size)) if v is not None}
        new = self.orders[oid].copy(changes)
        self.orders[oid] = new
        return new

    def cancel_nowait(self, oid: str) -> None:
        if oid not in self.orders:
            raise KeyError(oid)
        self.cancels.append(oid)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def status(order: Order, resp: str, filled: float = 0.0, **kw) -> Status:
    return Status(oid=order.oid, resp=resp, time_ns=time.time_ns(), req=order,
                  filled=filled, **kw)


@pytest.fixture
def om(qtbot, no_mouse_rate_limit):
    """An `OrderMode` on a shown 1200x800 window, with a fake client."""
    from piker.ui import MainWindow, get_qapp
    from piker.ui._order_mode import OrderMode
    get_qapp()
    win = MainWindow()
    qtbot.addWidget(win)
    chart = win.add_chart(FQME, mk_history(400), mk_mkt(), 60)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    chart.show_bars(100)
    client = FakeClient()
    mode = OrderMode(chart, client, mk_mkt(), win.status, accounts=['paper', 'margin'],
                     clock=Clock())
    mode.win = win
    return mode


# --- input helpers -------------------------------------------------------------

K_F, K_D, K_A, K_C = 'F', 'D', 'A', 'C'


def key(name: str):
    from pyqtgraph.Qt import QtCore
    return getattr(QtCore.Qt.Key, f'Key_{name}')


def press(qtbot, mode, name: str, ctrl: bool = False) -> None:
    from pyqtgraph.Qt import QtCore
    mods = QtCore.Qt.KeyboardModifier.ControlModifier if ctrl else QtCore.Qt.KeyboardModifier.NoModifier
    qtbot.keyPress(mode.chart, key(name), mods)


def release(qtbot, mode, name: str, ctrl: bool = False) -> None:
    from pyqtgraph.Qt import QtCore
    mods = QtCore.Qt.KeyboardModifier.ControlModifier if ctrl else QtCore.Qt.KeyboardModifier.NoModifier
    qtbot.keyRelease(mode.chart, key(name), mods)


def pos_of(mode, price: float, bars_back: float = 10):
    from pyqtgraph.Qt import QtCore
    chart = mode.chart
    x = chart.index_to_x(len(chart.model) - bars_back)
    return QtCore.QPoint(int(round(x)), int(round(chart.price_to_y(price))))


def move(qtbot, mode, price: float, bars_back: float = 10) -> None:
    hover(mode.chart.price_canvas.viewport(), pos_of(mode, price, bars_back))


def click(qtbot, mode, price: float, bars_back: float = 10) -> None:
    from pyqtgraph.Qt import QtCore
    vp = mode.chart.price_canvas.viewport()
    pos = pos_of(mode, price, bars_back)
    hover(vp, pos)
    qtbot.mouseClick(vp, QtCore.Qt.MouseButton.LeftButton, pos=pos)


def drag(qtbot, mode, from_price: float, to_price: float, bars_back: float = 30) -> None:
    """Press on `from_price`, move in steps with the button held, release on `to_price`."""
    from pyqtgraph.Qt import QtCore
    vp = mode.chart.price_canvas.viewport()
    L = QtCore.Qt.MouseButton.LeftButton
    a, b = pos_of(mode, from_price, bars_back), pos_of(mode, to_price, bars_back)
    hover(vp, a)
    qtbot.mousePress(vp, L, pos=a)
    steps = 8
    for i in range(1, steps + 1):
        y = a.y() + (b.y() - a.y()) * i / steps
        hover(vp, QtCore.QPointF(a.x(), y), buttons=L)
    qtbot.mouseRelease(vp, L, pos=b)


def mid_price(mode, frac: float = 0.5) -> float:
    y0, y1 = mode.chart.view.y_range()
    return y0 + frac * (y1 - y0)


def px_per_price(mode) -> float:
    y0, y1 = mode.chart.view.y_range()
    return mode.chart.view.height() / (y1 - y0)


def on_tick(price: float) -> bool:
    return abs(round(price * 10) - price * 10) < 1e-6


# --- staging and submitting ------------------------------------------------------

def test_hold_f_stages_a_dark_buy_that_follows_the_cursor(qtbot, om):
    p = mid_price(om, 0.4)
    move(qtbot, om, p)
    press(qtbot, om, K_F)
    st = om.staged
    assert st is not None and st.action == 'buy' and not st.live
    assert st.line.dash == 'dark' and st.line.colour == om.theme.buy
    assert on_tick(st.line.price) and abs(st.line.price - p) <= 2 / px_per_price(om) + 0.1
    # label: account: size ~ notional, size from the allocator (5000 usdt / 4 slots)
    info = om.order_info('buy', st.line.price)
    assert info['size'] == pytest.approx(om.mkt.quantize(1250 / st.line.price, 'size'), abs=1e-5)
    assert st.line.text() == (
        f'paper: {info["size"]:,.5f} ~ {info["size"] * st.line.price:,.2f} (staged dark)')
    # follows the pointer, snapped to the 0.1 tick
    p2 = mid_price(om, 0.6)
    move(qtbot, om, p2)
    assert on_tick(st.line.price) and abs(st.line.price - p2) <= 2 / px_per_price(om) + 0.1
    # auto-repeat presses do not restage; release of f unstages
    from pyqtgraph.Qt import QtCore, QtGui
    line = st.line
    rep = QtGui.QKeyEvent(QtCore.QEvent.Type.KeyPress, key(K_F),
                          QtCore.Qt.KeyboardModifier.NoModifier, '', True)
    om.chart.view.keyPressEvent(rep)
    assert om.staged is not None and om.staged.line is line
    release(qtbot, om, K_F)
    assert om.staged is None
    assert om.client.sent == []


def test_click_submits_buy_sell_and_alert(qtbot, om):
    client = om.client
    # dark buy
    p_buy = mid_price(om, 0.3)
    move(qtbot, om, p_buy)
    press(qtbot, om, K_F)
    click(qtbot, om, p_buy)
    release(qtbot, om, K_F)
    # live sell: ctrl held
    p_sell = mid_price(om, 0.7)
    move(qtbot, om, p_sell)
    press(qtbot, om, K_D, ctrl=True)
    assert om.staged.live and om.staged.line.dash == 'live'
    click(qtbot, om, p_sell)
    release(qtbot, om, K_D, ctrl=True)
    # alert (ctrl does not make an alert live)
    p_alert = mid_price(om, 0.85)
    move(qtbot, om, p_alert)
    press(qtbot, om, K_A, ctrl=True)
    assert om.staged.exec_mode == 'dark'
    click(qtbot, om, p_alert)
    release(qtbot, om, K_A)

    assert [(o.action, o.exec_mode) for o in client.sent] == [
        ('buy', 'dark'), ('sell', 'live'), ('alert', 'dark')]
    tol = 2 / px_per_price(om) + 0.1
    for o, p in zip(client.sent, (p_buy, p_sell, p_alert), strict=True):
        assert on_tick(o.price) and abs(o.price - p) <= tol
        assert o.account == 'paper' and o.symbol == FQME
    buy, sell, alert = client.sent
    assert buy.size == om.mkt.quantize(1250 / buy.price, 'size') or buy.size > 0
    assert sell.size > 0 and alert.size == 0
    # a pending line per order, coloured by side, dotted when dark
    for o, colour, dash in ((buy, om.theme.buy, 'dark'), (sell, om.theme.sell, 'live'),
                            (alert, om.theme.alert, 'dark')):
        ol = om.lines[o.oid]
        assert ol.line.colour == colour and ol.line.dash == dash
        assert ol.line.pending and ol.line.price == o.price
        assert ol.line.text().endswith('(pending)')
    assert om.lines[alert.oid].line.text() == 'alert (pending)'
    assert om.win.status.order_status(buy.oid).startswith('pending: buy')

    # the EMS confirms: solid look, label `account: size ~ notional`
    om.on_status(status(buy, 'dark_open'))
    om.on_status(status(sell, 'pending'))
    om.on_status(status(sell, 'open'))
    om.on_status(status(alert, 'dark_open'))
    for o in (buy, sell):
        ol = om.lines[o.oid]
        assert not ol.line.pending
        assert ol.line.text() == f'paper: {o.size:,.5f} ~ {o.size * o.price:,.2f}'
    assert om.win.status.order_status(sell.oid).startswith('open: sell')
    # terminal statuses remove lines
    om.on_status(status(buy, 'canceled'))
    om.on_status(status(sell, 'error', reason='venue says no'))
    assert set(om.lines) == {alert.oid}
    assert 'venue says no' in om.win.status.order_status(sell.oid)
    assert om.win.status.order_status(buy.oid).startswith('cancelled: buy')


def test_alert_trigger_draws_a_marker(qtbot, om):
    alert = om.client.mk_order('alert', 30_010.0, 0.0, exec_mode='dark')
    om.on_status(status(alert, 'dark_open'))
    assert alert.oid in om.lines
    om.on_status(status(alert, 'alert_triggered', brokerd_msg={'price': 30_010.5}))
    assert alert.oid not in om.lines
    n = len(om.chart.model)
    assert om.markers.alerts == [(n - 1, 30_010.5)]
    assert om.win.status.order_status(alert.oid).startswith('alert triggered')


def test_limit_reached_sends_nothing(qtbot, om):
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                   size=1.0, avg_price=30_000.0))   # 30k > 5k limit
    om.stage('buy')
    assert om.staged.line.text() == 'paper: limit reached'
    assert om.submit(30_000.0) is None
    assert om.client.sent == []
    assert 'limit reached' in om.win.status.order_status(f'note:{FQME}')
    # exits still size: a sell reduces toward flat
    om.stage('sell')
    oid = om.submit(30_100.0)
    assert oid is not None and om.client.sent[-1].size > 0


# --- modify by drag ----------------------------------------------------------------

def test_drag_modifies_with_a_quantized_price_and_allocator_size(qtbot, om):
    buy = om.client.mk_order('buy', om.quantize(mid_price(om, 0.3)), 0.01, exec_mode='dark')
    om.client.orders[buy.oid] = buy
    om.on_status(status(buy, 'dark_open'))
    target = mid_price(om, 0.45)
    drag(qtbot, om, buy.price, target)
    assert len(om.client.updates) == 1
    oid, price, size = om.client.updates[0]
    assert oid == buy.oid
    assert on_tick(price) and abs(price - target) <= 2 / px_per_price(om) + 0.1
    assert size == om.order_info('buy', price)['size']
    ol = om.lines[buy.oid]
    assert ol.line.price == price and ol.line.pending
    assert om.win.status.order_status(buy.oid).startswith('modifying: buy')
    # the EMS confirms the modify: the line keeps the new price, solid again
    om.on_status(status(om.client.orders[buy.oid], 'dark_open'))
    assert not ol.line.pending and ol.line.price == price
    # a modify rejected by the venue rolls the line back to the EMS's order
    om.on_status(status(buy, 'dark_open', reason='modify rejected: nope'))
    assert ol.line.price == buy.price


def test_lines_of_other_clients_are_drawn_and_follow_their_modifies(qtbot, om):
    other = om.client.mk_order('sell', 30_050.0, 0.02, exec_mode='live', account='margin')
    om.on_status(status(other, 'open'))
    ol = om.lines[other.oid]
    assert ol.line.price == 30_050.0 and ol.line.dash == 'live'
    assert ol.line.text() == 'margin: 0.02000 ~ 601.00'
    om.on_status(status(other.copy({'price': 30_060.0}), 'open'))
    assert ol.line.price == 30_060.0
    # statuses of other markets are ignored
    eth = om.client.mk_order('buy', 3000.0, 1.0, symbol='ethusdt.sim')
    om.on_status(status(eth, 'open'))
    assert eth.oid not in om.lines


# --- cancel -------------------------------------------------------------------------

def _open_orders(om, fracs):
    out = []
    for frac in fracs:
        o = om.client.mk_order('buy', om.quantize(mid_price(om, frac)), 0.01, exec_mode='dark')
        om.client.orders[o.oid] = o
        om.on_status(status(o, 'dark_open'))
        out.append(o)
    return out


def test_c_cancels_the_order_under_the_cursor(qtbot, om):
    a, b, c = _open_orders(om, (0.2, 0.5, 0.8))
    # 3 px off the line still picks it; the others are far away
    from pyqtgraph.Qt import QtCore
    pos = pos_of(om, b.price)
    hover(om.chart.price_canvas.viewport(), QtCore.QPoint(pos.x(), pos.y() + 3))
    press(qtbot, om, K_C)
    release(qtbot, om, K_C)
    assert om.client.cancels == [b.oid]
    assert om.lines[b.oid].state.value == 'cancelling' and om.lines[b.oid].line.pending
    assert om.win.status.order_status(b.oid).startswith('cancelling: buy')
    om.on_status(status(b, 'canceled'))
    assert set(om.lines) == {a.oid, c.oid}
    assert om.win.status.order_status(b.oid).startswith('cancelled: buy')
    # nothing under the cursor: nothing cancelled
    om.clock_t = om._clock.t = om._clock.t + 5
    move(qtbot, om, (a.price + c.price) / 2 + 1.3)
    press(qtbot, om, K_C)
    assert om.client.cancels == [b.oid]
    assert 'no order under the cursor' in om.win.status.order_status(f'note:{FQME}')


def test_c_c_cancels_all_with_a_group_status(qtbot, om):
    orders = _open_orders(om, (0.2, 0.5, 0.8))
    move(qtbot, om, mid_price(om, 0.35))
    press(qtbot, om, K_C)
    release(qtbot, om, K_C)
    om._clock.t += 0.2
    press(qtbot, om, K_C)
    release(qtbot, om, K_C)
    assert sorted(om.client.cancels) == sorted(o.oid for o in orders)
    texts = om.win.status.texts()
    assert 'cancelling 3 orders' in texts
    assert not [t for t in texts if t.startswith('cancelling:')]   # one group, no per-order
    assert all(ol.state.value == 'cancelling' for ol in om.lines.values())
    for o in orders[:2]:
        om.on_status(status(o, 'canceled'))
    assert 'cancelling 3 orders' in om.win.status.texts()
    om.on_status(status(orders[2], 'canceled'))
    assert om.lines == {}
    assert 'cancelled 3 orders' in om.win.status.texts()
    assert 'cancelling 3 orders' not in om.win.status.texts()
    # presses further apart than the double-press window are single presses
    more = _open_orders(om, (0.6,))
    om._clock.t += 5
    move(qtbot, om, mid_price(om, 0.1))
    press(qtbot, om, K_C)
    om._clock.t += 1.0
    press(qtbot, om, K_C)
    assert more[0].oid not in om.client.cancels


def test_cancel_group_reports_orders_that_filled_instead(qtbot, om):
    a, b = _open_orders(om, (0.3, 0.6))
    om.cancel_all()
    om.on_status(status(a, 'canceled'))
    om.on_status(status(b, 'closed', filled=b.size))
    assert 'cancelled 1 of 2 orders' in om.win.status.texts()


# --- start-up, fills and positions -------------------------------------------------------

def test_load_draws_handshake_dialogs_and_positions(qtbot, om):
    buy = om.client.mk_order('buy', 29_990.0, 0.01, exec_mode='dark')
    sell = om.client.mk_order('sell', 30_020.0, 0.02, exec_mode='live')
    pos = BrokerdPosition(broker='sim', account='paper', symbol=FQME, size=0.05, avg_price=30_000.0)
    om.load(
        {buy.oid: status(buy, 'dark_open'), sell.oid: status(sell, 'fill', filled=0.01)},
        {('sim', 'paper'): [pos]},
    )
    assert set(om.lines) == {buy.oid, sell.oid}
    assert om.lines[sell.oid].line.text() == 'paper: 0.01000 ~ 300.20'   # remaining
    assert om.markers.fills == []      # history is not re-drawn as new fills
    line = om.positions.lines['paper']
    assert line.price == 30_000.0 and line.dash == 'position'
    assert line.text() == 'paper: +0.05000 @ 30,000.0'
    # the allocator sees the start-up position (0.05 * 30000 = 1500 of 5000: 1.2 slots)
    assert om.pane.slots_text() == '1.20 / 4 slots'
    om.on_quote({'last': 30_100.0})
    assert line.text() == 'paper: +0.05000 @ 30,000.0  pnl +5.00 (+0.33%)'
    assert om.pane.pnl.text() == 'pnl +5.00 (+0.33%)'


def test_fills_draw_arrows_and_move_the_position_line(qtbot, om):
    chart = om.chart
    buy = om.client.mk_order('buy', 30_000.0, 0.02, exec_mode='live')
    om.on_status(status(buy, 'open'))
    t_bar = float(chart.model.time_at(len(chart.model) - 5))
    fill = {'price': 30_000.0, 'size': 0.01, 'action': 'buy', 'time_ns': int((t_bar + 1) * 1e9)}
    om.on_status(status(buy, 'fill', filled=0.01, brokerd_msg=fill))
    assert om.markers.fills == [(len(chart.model) - 5, 30_000.0, 'buy')]
    assert om.lines[buy.oid].line.text() == 'paper: 0.01000 ~ 300.00'
    assert 'fill: buy 0.01000 @ 30,000.0, 0.01000 left' in om.win.status.order_status(buy.oid)
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME, size=0.01, avg_price=30_000.0))
    om.on_status(status(buy, 'fill', filled=0.02, brokerd_msg=dict(fill, price=29_990.0)))
    om.on_status(status(buy, 'closed', filled=0.02))
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME, size=0.02, avg_price=29_995.0))
    assert buy.oid not in om.lines
    assert [f[1] for f in om.markers.fills] == [30_000.0, 29_990.0]
    assert om.positions.lines['paper'].price == 29_995.0
    om.on_quote({'last': 29_975.0})
    assert om.positions.pnl('paper') == pytest.approx(-0.4)
    assert 'pnl -0.40' in om.positions.lines['paper'].text()
    # sell fills point down; a flat position removes the line
    sell = om.client.mk_order('sell', 29_980.0, 0.02, exec_mode='live')
    om.on_status(status(sell, 'fill', filled=0.02, brokerd_msg=dict(fill, action='sell', price=29_980.0, size=0.02)))
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME, size=0.0, avg_price=0.0))
    assert om.markers.fills[-1][2] == 'sell'
    assert 'paper' not in om.positions.lines
    assert om.pane.position.text() == 'paper: flat'


def test_settings_pane_drives_the_allocator(qtbot, om):
    pane = om.pane
    om.stage('buy')
    om.staged.line.set_price(30_000.0)
    assert om.order_info('buy', 30_000.0)['size'] == pytest.approx(0.04166)
    pane.set_sizing(slots=2)
    assert om.order_info('buy', 30_000.0)['size'] == pytest.approx(0.08333)
    assert om.staged.line.text() == 'paper: 0.08333 ~ 2,499.90 (staged dark)'
    pane.set_sizing(size_unit='units', limit=1.0)
    assert om.order_info('buy', 30_000.0)['size'] == pytest.approx(0.5)
    assert om.staged.line.text() == 'paper: 0.50000 ~ 15,000.00 (staged dark)'
    pane.set_account('margin')
    assert om.staged.line.text().startswith('margin: ')
    oid = om.submit(30_000.0)
    assert om.client.orders[oid].account == 'margin'
    om.on_position(BrokerdPosition(broker='sim', account='margin', symbol=FQME, size=0.25, avg_price=30_000.0))
    assert pane.slots_text() == '0.50 / 2 slots'
    assert pane.slots_bar.value() == 250
    with pytest.raises(ValueError, match='unknown account'):
        pane.set_account('nope')
    pane.set_accounts(['paper', 'margin', 'ib'])      # keeps the current choice
    assert pane.current_account() == 'margin'
    pane.set_accounts(['paper'])
    assert pane.current_account() == 'paper'


def test_ctrl_toggles_live_while_staged_and_escape_unstages(qtbot, om):
    from pyqtgraph.Qt import QtCore
    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
    move(qtbot, om, mid_price(om))
    press(qtbot, om, K_D)
    assert om.staged.exec_mode == 'dark' and om.staged.line.dash == 'dark'
    qtbot.keyPress(om.chart, QtCore.Qt.Key.Key_Control, ctrl)
    assert om.staged.exec_mode == 'live' and om.staged.line.dash == 'live'
    assert om.staged.line.text().endswith('(staged live)')
    qtbot.keyRelease(om.chart, QtCore.Qt.Key.Key_Control)
    assert om.staged.exec_mode == 'dark'
    qtbot.keyPress(om.chart, QtCore.Qt.Key.Key_Escape)
    assert om.staged is None


# --- end to end: ChartApp in guest mode, the service tree, the paper engine ---------

def _key(widget, name: str, ctrl: bool = False, release: bool = False) -> None:
    """Send a key event synchronously (no nested Qt loop inside trio)."""
    from pyqtgraph.Qt import QtCore, QtGui, QtWidgets
    mods = QtCore.Qt.KeyboardModifier.ControlModifier if ctrl else QtCore.Qt.KeyboardModifier.NoModifier
    kind = QtCore.QEvent.Type.KeyRelease if release else QtCore.QEvent.Type.KeyPress
    QtWidgets.QApplication.sendEvent(widget, QtGui.QKeyEvent(kind, key(name), mods))


def _click_at(chart, price: float, bars_back: int = 3) -> None:
    """Pointer to (bar, price), then a left click there (synchronous events)."""
    from pyqtgraph.Qt import QtCore, QtTest
    n = len(chart.model)
    chart.move_cursor(n - bars_back, price)
    pos = QtCore.QPoint(int(chart.index_to_x(n - bars_back)), int(round(chart.price_to_y(price))))
    QtTest.QTest.mouseClick(
        chart.price_canvas.viewport(), QtCore.Qt.MouseButton.LeftButton,
        QtCore.Qt.KeyboardModifier.NoModifier, pos,
    )


def _drag_line(chart, from_price: float, to_price: float, bars_back: int = 30) -> None:
    """Press on a line, move with the button held, release (synchronous events)."""
    from pyqtgraph.Qt import QtCore, QtGui, QtWidgets
    vp = chart.price_canvas.viewport()
    L, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.MouseButton.NoButton
    x = chart.index_to_x(len(chart.model) - bars_back)
    y0, y1 = chart.price_to_y(from_price), chart.price_to_y(to_price)

    def send(kind, y, button, buttons):
        QtWidgets.QApplication.sendEvent(vp, QtGui.QMouseEvent(
            kind, QtCore.QPointF(x, y), button, buttons, QtCore.Qt.KeyboardModifier.NoModifier,
        ))

    send(QtCore.QEvent.Type.MouseMove, y0, none, none)
    send(QtCore.QEvent.Type.MouseButtonPress, y0, L, L)
    for i in range(1, 9):
        send(QtCore.QEvent.Type.MouseMove, y0 + (y1 - y0) * i / 8, none, L)
    send(QtCore.QEvent.Type.MouseButtonRelease, y1, L, none)


async def until(pred, timeout: float = 15.0, what: str = '') -> None:
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.02)


def _confirmed(mode, oid: str) -> bool:
    ol = mode.lines.get(oid)
    return ol is not None and not ol.line.pending


@pytest.mark.timeout(90)
def test_e2e_startup_script_orders_two_windows_modify_and_cancel_all(qtbot, no_mouse_rate_limit):
    """A script's orders are drawn at start-up and live; two windows stay in
    sync through a drag-modify and a `c c` cancel-all."""
    from piker.brokers.sim import open_market_control
    from piker.clearing import open_ems, wait_for_status
    from piker.service import maybe_open_pikerd
    from piker.ui import get_qapp
    from piker.ui._app import ChartApp, stop_daemons
    from piker.ui._guest import run_qt_guest

    app = get_qapp()
    seen: dict = {}

    async def main() -> None:
        async with maybe_open_pikerd():
            async with open_market_control(FQME, resume_on_exit=False) as ctl:
                q = await ctl.push(bsize=5, asize=5)
                last = float(q['last'])
                async with open_ems(FQME) as (sc, strades, _pps, _accts, _dialogs):
                    early = sc.mk_order('buy', round(last - 40, 1), 0.01, exec_mode='dark')
                    await sc.send(early)
                    await wait_for_status(strades, early.oid, 'dark_open')

                    a = ChartApp([FQME], handle_signals=False)
                    b = ChartApp([FQME], handle_signals=False)
                    async with trio.open_nursery() as n:
                        n.start_soon(a.run)
                        n.start_soon(b.run)
                        with trio.fail_after(40):
                            await a.ems_ready[FQME].wait()
                            await b.ems_ready[FQME].wait()
                        ma, mb = a.modes[FQME], b.modes[FQME]
                        # drawn at start-up from the handshake, confirmed
                        assert _confirmed(ma, early.oid) and _confirmed(mb, early.oid)
                        assert ma.lines[early.oid].line.price == early.price

                        # a script order placed later appears in both windows
                        later = sc.mk_order('sell', round(last + 40, 1), 0.02, exec_mode='live')
                        await sc.send(later)
                        await until(lambda: _confirmed(ma, later.oid) and _confirmed(mb, later.oid))
                        assert ma.lines[later.oid].line.dash == 'live'

                        # window A places a dark sell with keys + click; B and the script see it
                        chart_a = a.win.chart(FQME)
                        target = round(last + 20, 1)
                        _key(chart_a, K_D)
                        _click_at(chart_a, target)
                        _key(chart_a, K_D, release=True)
                        assert ma.staged is None
                        (mine,) = [o for o in ma.lines if o not in (early.oid, later.oid)]
                        st = await wait_for_status(strades, mine, 'dark_open')
                        assert st.req.action == 'sell' and st.req.exec_mode == 'dark'
                        assert abs(st.req.price - target) < 1.0
                        await until(lambda: _confirmed(mb, mine))

                        # window B drags the script's early order: modify with a snapped price
                        chart_b = b.win.chart(FQME)
                        chart_b.view.auto_y = False
                        chart_b.view.setYRange(last - 60, last + 60, padding=0)
                        ol = mb.lines[early.oid]
                        _drag_line(chart_b, early.price, early.price + 7.33)
                        new_price = ol.line.price
                        assert on_tick(new_price) and abs(new_price - (early.price + 7.33)) < 1.0
                        st = await wait_for_status(strades, early.oid, 'dark_open')
                        assert st.req.price == new_price
                        await until(lambda: ma.lines[early.oid].line.price == new_price
                                    and _confirmed(ma, early.oid))
                        assert ol.line.price == new_price

                        # `c c` in window A cancels all three; one group status
                        chart_a.move_cursor(len(chart_a.model) - 3, last)
                        _key(chart_a, K_C)
                        _key(chart_a, K_C, release=True)
                        _key(chart_a, K_C)
                        await until(lambda: not ma.lines and not mb.lines)
                        seen['texts'] = a.win.status.texts()
                        seen['chart_b'] = chart_b
                        a.request_close()
                        b.request_close()
            # pikerd's own teardown cancels every daemon at once: go in order
            await stop_daemons()

    run_qt_guest(main, app=app)
    assert 'cancelled 3 orders' in seen['texts']


@pytest.mark.timeout(90)
def test_e2e_fill_arrows_position_pnl_and_clean_window_close(qtbot):
    """ctrl+f + click buys at the market: a fill arrow, a position line whose
    PnL follows quotes; closing the window ends every process gracefully."""
    from piker.brokers.sim import open_market_control
    from piker.testing._sim import descendants
    from piker.ui._app import run_chart

    seen: dict = {}

    async def driver(app) -> None:
        with trio.fail_after(40):
            await app.ems_ready[FQME].wait()
        mode = app.modes[FQME]
        chart = app.win.chart(FQME)
        async with open_market_control(FQME, resume_on_exit=False) as ctl:
            q = await ctl.push(bsize=5, asize=5)
            ask = float(q['ask'])
            _key(chart, K_F, ctrl=True)
            _click_at(chart, ask + 3.0)
            _key(chart, K_F, ctrl=True, release=True)
            await until(lambda: mode.markers.fills and mode.positions.holdings.get('paper'))
            idx, price, action = mode.markers.fills[0]
            assert (price, action) == (ask, 'buy') and idx == len(chart.model) - 1
            h = mode.positions.holdings['paper']
            assert h.ppu == ask and h.size > 0
            assert mode.positions.lines['paper'].price == ask
            await until(lambda: not mode.lines)           # closed
            await ctl.push(last=ask + 10.0, bid=ask + 9.9, ask=ask + 10.1)
            want = f'pnl {10.0 * h.size:+,.2f}'
            await until(lambda: want in mode.positions.lines['paper'].text())
            assert want in mode.pane.pnl.text()
            # a sell at the bid flattens: down arrow, no position line
            _key(chart, K_D, ctrl=True)
            _click_at(chart, ask + 9.9 - 3.0)
            _key(chart, K_D, ctrl=True, release=True)
            await until(lambda: len(mode.markers.fills) == 2 and not mode.positions.holdings)
            assert mode.markers.fills[1][2] == 'sell'
        seen['kids'] = descendants(os.getpid())
        app.win.close()                 # the window manager's close
        seen['close_requested'] = app.close_requested
        seen['visible'] = app.win.isVisible()
        seen['t_close'] = time.monotonic()

    app = run_chart([FQME], driver=driver, handle_signals=False)
    took = time.monotonic() - seen['t_close']
    assert seen['kids'], 'the chart should have started pikerd daemons'
    assert seen['close_requested'] and seen['visible']   # closing waits for trio
    assert not app.win.isVisible()
    assert descendants(os.getpid()) == set()
    assert took < 10


# --- the command ------------------------------------------------------------------------

def test_cli_chart_rejects_bad_markets_before_starting_anything():
    from typer.testing import CliRunner

    from piker.cli import app
    runner = CliRunner()
    res = runner.invoke(app, ['chart', 'btcusdt'])
    assert res.exit_code == 2 and 'broker suffix' in res.output
    res = runner.invoke(app, ['chart', 'btcusdt.nosuchbroker'])
    assert res.exit_code == 2 and 'sim' in res.output      # lists the known backends
    res = runner.invoke(app, ['chart', 'btcusdt.sim', '--mode', 'bogus'])
    assert res.exit_code == 2 and "'paper' or 'live'" in res.output


@pytest.mark.timeout(90)
def test_cli_chart_headless_screenshot_and_clean_exit(tmp_path):
    """`QT_QPA_PLATFORM=offscreen piker chart FQME --screenshot PNG --after S`
    starts its own tree, saves the PNG and exits 0 leaving no process."""
    import subprocess
    import sys

    from pyqtgraph.Qt import QtGui

    shot = tmp_path / 'shot.png'
    exe = os.path.join(os.path.dirname(sys.executable), 'piker')
    env = dict(os.environ, QT_QPA_PLATFORM='offscreen')
    proc = subprocess.run(
        [exe, 'chart', FQME, '--screenshot', str(shot), '--after', '0.5'],
        env=env, capture_output=True, text=True, timeout=80,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr and 'ERROR' not in proc.stderr, proc.stderr[-3000:]
    img = QtGui.QImage(str(shot))
    assert not img.isNull() and img.width() >= 1200 and img.height() >= 700
    assert with_env('PIKER_CONFIG_DIR', os.environ['PIKER_CONFIG_DIR']) == []


def test_filled_status_tells_the_average_fill_price_not_the_limit(qtbot, om):
    """Issue #16 item 2: `filled:` said the order's limit price."""
    buy = om.client.mk_order('buy', 30_000.0, 0.02, exec_mode='live')
    om.on_status(status(buy, 'open'))
    fill = {'price': 29_990.0, 'size': 0.01, 'action': 'buy', 'time_ns': time.time_ns()}
    om.on_status(status(buy, 'fill', filled=0.01, brokerd_msg=fill))
    om.on_status(status(buy, 'fill', filled=0.02, brokerd_msg=dict(fill, price=29_970.0)))
    om.on_status(status(buy, 'closed', filled=0.02))
    text = om.win.status.order_status(buy.oid)
    assert text.startswith('filled: buy 0.02000 @ 29,980.0 avg (live, paper)'), text
    assert '30,000' not in text
    # fills this window never saw (it joined late): say so, limit named as a limit
    sell = om.client.mk_order('sell', 31_000.0, 0.01, exec_mode='live')
    om.on_status(status(sell, 'open'), replay=True)
    om.on_status(status(sell, 'closed', filled=0.01))
    text = om.win.status.order_status(sell.oid)
    assert text == 'filled: sell 0.01000 (live, paper), limit 31,000.0; fill price not seen here', text


def test_the_pane_hint_names_every_order_key(om):
    """The order pane's hint lists the keys the chart answers to, the
    later ones (brackets, attach, market, flatten) included."""
    from pyqtgraph.Qt import QtGui

    from piker.ui._bracket_keys import ATTACH_KEYS
    from piker.ui._flatten import FLATTEN_KEY, MARKET_KEYS

    hint = om.pane.hint.text()

    def name(key) -> str:
        return QtGui.QKeySequence(key).toString().lower()

    assert f"{'/'.join(name(k) for k in ATTACH_KEYS)} tp/sl" in hint
    assert f'{name(FLATTEN_KEY)} flatten' in hint
    assert f"alt+{'/'.join(name(k) for k in MARKET_KEYS)} market" in hint
    for words in ('+shift bracket', '+ctrl live', 'c c cancel all', 'i indicators',
                  'ctrl+l markets', 'p hide pane'):
        assert words in hint
