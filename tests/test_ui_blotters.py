"""Blotters, log pane, flatten / market keys and notifications (`_cockpit`).

The cockpit runs on a real (offscreen) chart window with a real
`OrderMode` over a fake client that records what would go to emsd; the
EMS's messages are fed in as emsd would send them. The end-to-end test
at the bottom runs the real chart app against the paper engine.
"""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import trio

from piker.clearing._dark import pad_price
from piker.clearing._messages import BrokerdPosition, Status
from tests.test_ui_order_mode import FQME, Clock, FakeClient, mk_history, mk_mkt, status

pytestmark = pytest.mark.timeout(60)

T_FILL = 1_700_000_100.0


class FakeNotifier:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def notify(self, summary: str, body: str) -> None:
        self.sent.append((summary, body))


class Answer:
    """The flatten confirmation: records the questions, answers `yes`."""

    def __init__(self, yes: bool = True) -> None:
        self.yes = yes
        self.asked: list[str] = []

    def __call__(self, title: str, text: str) -> bool:
        self.asked.append(text)
        return self.yes


@pytest.fixture
def cp(qtbot, tmp_path, no_mouse_rate_limit):
    """A chart window with order mode and its cockpit (fake client)."""
    from piker.ui import get_qapp
    from piker.ui._app import ChartWindow
    from piker.ui._cockpit import Cockpit
    from piker.ui._order_mode import OrderMode
    get_qapp()
    win = ChartWindow()
    qtbot.addWidget(win)
    chart = win.add_chart(FQME, mk_history(400), mk_mkt(), 60)
    answer = Answer()
    cockpit = Cockpit(win, notifier=FakeNotifier(), confirm=answer,
                      layout_path=tmp_path / 'chart_layout.json', extra_docks=[win.dock])
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    chart.show_bars(100)
    mode = OrderMode(chart, FakeClient(), mk_mkt(), win.status, accounts=['paper', 'margin'],
                     clock=Clock())
    cockpit.attach(mode, {}, {})
    cockpit.answer = answer
    cockpit.mode = mode
    return cockpit


def quote(chart, bid: float, ask: float, last: float | None = None) -> dict:
    last = (bid + ask) / 2 if last is None else last
    t = float(chart.model.last['time']) + 1
    q = {'symbol': FQME, 'last': last, 'bid': bid, 'ask': ask, 'bsize': 1.0, 'asize': 1.0,
         'volume': 0.0, 'time_ns': int(t * 1e9), 'ticks': []}
    chart.update_quote(q)
    return q


def fill_status(order, tid: str, size: float, price: float, filled: float,
                cost: float = 0.0, t: float = T_FILL) -> Status:
    return status(order, 'fill', filled=filled, brokerd_msg={
        'tid': tid, 'action': order.action, 'size': size, 'price': price, 'cost': cost,
        'broker_time': t, 'time_ns': int(t * 1e9),
    })


def click(qtbot, table, rect) -> None:
    """A left click on a table cell (a row's button)."""
    from pyqtgraph.Qt import QtCore
    qtbot.mouseClick(table.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=rect.center())


def key(qtbot, widget, name: str, *mods: str) -> None:
    from pyqtgraph.Qt import QtCore
    m = QtCore.Qt.KeyboardModifier.NoModifier
    for mod in mods:
        m |= getattr(QtCore.Qt.KeyboardModifier, f'{mod}Modifier')
    qtbot.keyClick(widget, getattr(QtCore.Qt.Key, f'Key_{name}'), m)


# --- orders --------------------------------------------------------------------------

def test_orders_blotter_shows_other_clients_orders_and_cancels_from_a_row(qtbot, cp):
    mode, client = cp.mode, cp.mode.client
    other = client.mk_order('sell', 30_050.0, 0.02, exec_mode='live', account='margin')
    client.orders[other.oid] = other       # emsd told this session of it
    cp.on_msg(status(other, 'open'))
    mode.on_msg(status(other, 'open'))
    mode.stage('buy')
    mine = mode.submit(29_950.0)
    mode.unstage()
    cp.on_msg(status(client.orders[mine], 'dark_open'))
    cp.batch.flush()
    ob = cp.orders
    assert ob.oids() == [other.oid, mine]
    assert ob.cell(other.oid, 'source') == 'other client'
    assert ob.cell(mine, 'source') == 'this chart'
    assert [ob.cell(other.oid, c) for c in ('market', 'side', 'mode', 'account', 'price', 'size')] \
        == [FQME, 'sell', 'live', 'margin', '30,050.0', '0.02']
    assert ob.cell(mine, 'state') == 'open (dark)'
    # the row's cancel button: a Cancel through order mode
    click(qtbot, ob.table, ob.cancel_rect(other.oid))
    assert client.cancels == [other.oid]
    assert mode.lines[other.oid].state.value == 'cancelling'
    cp.on_msg(status(other, 'canceled'))
    cp.batch.flush()
    assert ob.oids() == [mine]
    # Delete on a selected row cancels it too
    ob.table.selectRow(0)
    key(qtbot, ob.table, 'Delete')
    assert client.cancels == [other.oid, mine]


def test_modify_from_a_row_sends_an_update(qtbot, cp):
    mode, client = cp.mode, cp.mode.client
    buy = client.mk_order('buy', 29_900.0, 0.01, exec_mode='dark')
    client.orders[buy.oid] = buy
    for target in (mode, cp):
        target.on_msg(status(buy, 'dark_open'))
    cp.batch.flush()
    ob = cp.orders
    ob.edit(buy.oid, 'price', '29,925.04')
    assert client.updates == [(buy.oid, 29_925.0, 0.01)]     # snapped to the tick
    cp.batch.flush()
    assert ob.cell(buy.oid, 'price') == '29,925.0'
    assert ob.cell(buy.oid, 'state') == 'modifying'
    assert mode.lines[buy.oid].line.price == 29_925.0 and mode.lines[buy.oid].line.pending
    ob.edit(buy.oid, 'size', '0.03')
    assert client.updates[-1] == (buy.oid, 29_925.0, 0.03)   # the typed size, not the allocator's
    # nonsense is refused with a reason, nothing sent, the cell goes back
    ob.edit(buy.oid, 'size', 'lots')
    assert len(client.updates) == 2
    assert "'lots' is not a number" in cp.win.status.order_status('note:blotters')
    cp.batch.flush()
    assert ob.cell(buy.oid, 'size') == '0.03'


# --- fills ---------------------------------------------------------------------------

def _write_ledger(n: int) -> list:
    from piker.accounting import Transaction, open_trade_ledger
    txns = [
        Transaction(fqme=FQME, tid=f'L{i}', size=0.01 if i % 2 == 0 else -0.01,
                    price=30_000.0 + i, cost=0.05,
                    dt=datetime.fromtimestamp(T_FILL - 1000 + i, UTC))
        for i in range(n)
    ]
    with open_trade_ledger('sim', 'paper') as ledger:
        ledger.update_from_txns(txns)
    return txns


def test_fills_blotter_loads_the_ledger_and_appends_live_fills(qtbot, tmp_path):
    from piker.ui import get_qapp
    from piker.ui._app import ChartWindow
    from piker.ui._cockpit import Cockpit
    get_qapp()
    win = ChartWindow()
    qtbot.addWidget(win)
    cp = Cockpit(win, fills_page=3)
    txns = _write_ledger(5)
    trio.run(cp.load_ledgers, 'sim', ['paper', 'paper'])
    cp.batch.flush()
    fb = cp.fills
    assert [f.tid for f in fb.shown()] == ['L4', 'L3', 'L2']     # newest first, one page
    assert fb.info.text() == 'showing 3 of 5 fills'
    row = [fb.table.item(0, c).text() for c in range(7)]
    assert row[1:] == [FQME, 'paper', 'buy', '0.01', '30,004.00', '0.05']
    assert row[0] == datetime.fromtimestamp(txns[4].dt.timestamp()).strftime('%m-%d %H:%M:%S')
    fb.load_older()
    cp.batch.flush()
    assert [f.tid for f in fb.shown()] == ['L4', 'L3', 'L2', 'L1', 'L0']
    assert not fb.older.isEnabled()
    # a live fill goes on top; the same fill again (another session, the ledger) does not
    client = FakeClient()
    sell = client.mk_order('sell', 30_100.0, 0.02, exec_mode='live')
    cp.on_msg(fill_status(sell, 'T1', 0.02, 30_101.5, 0.02, cost=0.1))
    cp.on_msg(fill_status(sell, 'T1', 0.02, 30_101.5, 0.02, cost=0.1))
    cp.batch.flush()
    assert [f.tid for f in fb.shown()][:2] == ['T1', 'L4']
    assert [fb.table.item(0, c).text() for c in (3, 4, 5, 6)] == ['sell', '0.02', '30,101.50', '0.1']
    assert fb.info.text() == 'showing 6 of 6 fills'


def test_unreadable_ledger_is_said_in_the_fills_blotter(qtbot):
    from piker.accounting import ledger_path
    from piker.ui import get_qapp
    from piker.ui._app import ChartWindow
    from piker.ui._cockpit import Cockpit
    get_qapp()
    win = ChartWindow()
    qtbot.addWidget(win)
    cp = Cockpit(win)
    path = ledger_path('sim', 'paper')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[T1]\nfqme = "btcusdt.sim"\nsize = "many"\n')
    trio.run(cp.load_ledgers, 'sim', ['paper'])
    assert 'ledger sim.paper unreadable' in cp.fills.info.text()
    assert path.read_text().startswith('[T1]')       # left as it was


# --- positions ----------------------------------------------------------------------

def test_positions_blotter_pnl_follows_quotes_and_fills_realise(qtbot, cp):
    mode, chart = cp.mode, cp.mode.chart
    buy = mode.client.mk_order('buy', 30_000.0, 0.05, exec_mode='live')
    cp.on_msg(fill_status(buy, 'F1', 0.05, 30_000.0, 0.05, cost=0.5, t=T_FILL))
    pos = BrokerdPosition(broker='sim', account='paper', symbol=FQME, size=0.05, avg_price=30_010.0)
    mode.on_msg(pos)
    cp.on_msg(pos)
    cp.batch.flush()
    pb = cp.positions
    assert [pb.cell('paper', FQME, c) for c in ('size', 'ppu', 'P&L', 'realised')] == \
        ['0.05', '30,010.0', '', '+0.00']
    q = quote(chart, 30_109.0, 30_111.0, last=30_110.0)
    mode.on_quote(q)
    cp.on_quote(FQME, q)
    cp.batch.flush()
    assert pb.cell('paper', FQME, 'last') == '30,110.0'
    assert pb.cell('paper', FQME, 'P&L') == '+5.00'             # (30110 - 30010) * 0.05
    assert pb.account_cell('sim.paper', 'P&L') == '+5.00 usdt'
    assert pb.account_cell('sim.paper', 'positions') == '1'
    assert pb.account_cell('sim.paper', 'balances') == 'not reported'
    cp.on_quote(FQME, {'last': 29_990.0})
    cp.batch.flush()
    assert pb.cell('paper', FQME, 'P&L') == '-1.00'
    # a partial sell realises against the ppu of the fills (30000 + 0.5 fee / 0.05 = 30010)
    sell = mode.client.mk_order('sell', 30_200.0, 0.02, exec_mode='live')
    cp.on_msg(fill_status(sell, 'F2', 0.02, 30_200.0, 0.02, cost=0.2, t=T_FILL + 5))
    cp.batch.flush()
    assert pb.cell('paper', FQME, 'realised') == '+3.60'        # 190 * 0.02 - 0.2
    assert pb.account_cell('sim.paper', 'realised') == '+3.60 usdt'
    # a spot venue's position is a balance
    spot = BrokerdPosition(broker='binance', account='spot', symbol='ethusdt.binance',
                           size=1.5, avg_price=3000.0, currency='usdt')
    cp.on_msg(spot)
    cp.batch.flush()
    assert pb.account_cell('binance.spot', 'balances') == '1.5 ethusdt'


def test_pnl_book_realises_reductions_and_crossings_in_time_order():
    from piker.accounting import PnlBook, realised_by
    assert realised_by(0.0, 0.0, 1.0, 100.0, 1.0) == 0.0           # opening: fee in the ppu
    assert realised_by(2.0, 100.0, -1.0, 110.0, 0.5) == 9.5
    assert realised_by(-2.0, 100.0, 1.0, 90.0, 0.5) == 9.5           # a short mirrors
    assert realised_by(1.0, 100.0, -3.0, 90.0, 0.7) == -10.0          # crossing: fee to the new leg
    book = PnlBook()
    assert book.add('paper', FQME, 'b', -0.5, 110.0, 0.1, t=2.0)
    assert book.add('paper', FQME, 'a', 1.0, 100.0, 0.5, t=1.0)      # older, arrives late
    assert not book.add('paper', FQME, 'a', 1.0, 100.0, 0.5, t=1.0)  # same tid: once
    assert book.realised('paper', FQME) == pytest.approx((110.0 - 100.5) * 0.5 - 0.1)


# --- log pane ------------------------------------------------------------------------

def test_log_pane_keeps_a_status_after_the_status_bar_clears(qtbot, cp):
    bar = cp.win.status
    bar.linger_ms = 30
    bar.set_order_status('x1', 'error: buy 0.01 @ 30,000.0 - max_notional exceeded', final=True)
    qtbot.waitUntil(lambda: bar.order_status('x1') is None, timeout=2000)
    cp.batch.flush()
    lines = cp.log.lines()
    assert lines and lines[-1].endswith('error: buy 0.01 @ 30,000.0 - max_notional exceeded')
    assert re.fullmatch(r'\d\d:\d\d:\d\d  error: .*', lines[-1])
    # the same text shown again is not logged twice; a new one is
    bar.set_order_status('x2', 'open: sell 0.02', final=False)
    bar.set_order_status('x2', 'open: sell 0.02', final=False)
    cp.batch.flush()
    assert [ln[10:] for ln in cp.log.lines()[-2:]] == [
        'error: buy 0.01 @ 30,000.0 - max_notional exceeded', 'open: sell 0.02']


# --- flatten and market orders -------------------------------------------------------------

def _hold(cp, size: float, ppu: float = 30_000.0, account: str = 'paper') -> None:
    pos = BrokerdPosition(broker='sim', account=account, symbol=FQME, size=size, avg_price=ppu)
    cp.mode.on_msg(pos)
    cp.on_msg(pos)


def test_x_flattens_after_confirmation_with_a_closing_reduce_only_order(qtbot, cp):
    mode, client, chart = cp.mode, cp.mode.client, cp.mode.chart
    quote(chart, 30_100.0, 30_101.0)
    _hold(cp, 0.05)
    key(qtbot, chart, 'X')
    assert len(cp.answer.asked) == 1 and 'Flatten paper in btcusdt.sim?' in cp.answer.asked[0]
    (order,) = client.sent
    assert (order.action, order.size, order.exec_mode, order.account) == ('sell', 0.05, 'live', 'paper')
    assert order.reduce_only and order.type == 'limit'
    assert order.price == pad_price(30_100.0, 'sell', mode.mkt.price_tick, 5) == 30_099.5
    assert order.oid in mode.lines                      # drawn, reported like any order
    assert mode.status.order_status(order.oid).startswith('pending: sell 0.05000 @ 30,099.5')
    assert 'flatten sent: sell 0.05000' in mode.status.order_status(f'note:{FQME}')
    # declined: nothing
    cp.answer.yes = False
    key(qtbot, chart, 'X')
    assert len(client.sent) == 1 and len(cp.answer.asked) == 2
    assert 'declined: nothing sent' in mode.status.order_status(f'note:{FQME}')
    # a short is bought back, from the positions blotter's button too
    cp.answer.yes = True
    _hold(cp, -0.03, account='margin')
    cp.batch.flush()
    click(qtbot, cp.positions.table, cp.positions.flatten_rect('margin', FQME))
    assert (client.sent[-1].action, client.sent[-1].size, client.sent[-1].account) == \
        ('buy', 0.03, 'margin')
    assert client.sent[-1].price == pad_price(30_101.0, 'buy', mode.mkt.price_tick, 5)
    # a fill while the dialog is open: nothing sent, asked to press again
    def changes(title, text):
        _hold(cp, 0.07, account='paper')
        return True
    cp.flatteners[FQME].confirm = changes
    _hold(cp, 0.05)
    key(qtbot, chart, 'X')
    assert len(client.sent) == 2
    assert 'position changed while asking' in mode.status.order_status(f'note:{FQME}')
    cp.flatteners[FQME].confirm = cp.answer
    # flat: no question, nothing sent
    _hold(cp, 0.0)
    asked = len(cp.answer.asked)
    key(qtbot, chart, 'X')
    assert len(client.sent) == 2 and len(cp.answer.asked) == asked
    assert 'paper is flat in btcusdt.sim, nothing sent' in mode.status.order_status(f'note:{FQME}')


def test_alt_f_and_alt_d_send_marketable_orders_of_the_allocator_size(qtbot, cp):
    mode, client, chart = cp.mode, cp.mode.client, cp.mode.chart
    key(qtbot, chart, 'F', 'Alt')                 # no quote yet, but the bars: last close
    assert len(client.sent) == 1
    quote(chart, 30_100.0, 30_101.0)
    from pyqtgraph.Qt import QtCore
    alt = QtCore.Qt.KeyboardModifier.AltModifier
    qtbot.keyPress(chart, QtCore.Qt.Key.Key_F, alt)
    assert mode.staged is None                    # alt+f held is not a stage
    qtbot.keyRelease(chart, QtCore.Qt.Key.Key_F, alt)
    buy = client.sent[-1]
    assert (buy.action, buy.exec_mode, buy.account) == ('buy', 'live', 'paper')
    assert buy.price == pad_price(30_101.0, 'buy', mode.mkt.price_tick, 5) == 30_101.5
    assert buy.size == mode.order_info('buy', buy.price)['size'] > 0
    assert buy.oid in mode.lines
    key(qtbot, chart, 'D', 'Alt')
    sell = client.sent[-1]
    assert (sell.action, sell.price) == ('sell', 30_099.5)
    assert sell.size == mode.order_info('sell', sell.price)['size']
    # the pad is emsd's [ems] dark_pad_ticks
    cp.flatteners[FQME].pad_ticks = 0
    key(qtbot, chart, 'F', 'Alt')
    assert client.sent[-1].price == 30_101.0
    # the allocator says no: nothing sent
    mode.pane.set_sizing(size_unit='units', limit=0.00001, slots=1)
    _hold(cp, 0.00001)
    n = len(client.sent)
    key(qtbot, chart, 'F', 'Alt')
    assert len(client.sent) == n
    assert 'position limit reached' in mode.status.order_status(f'note:{FQME}')


# --- notifications ----------------------------------------------------------------------

def test_fills_and_triggered_alerts_notify_once(qtbot, cp):
    client = cp.mode.client
    buy = client.mk_order('buy', 30_000.0, 0.02, exec_mode='live')
    cp.on_msg(status(buy, 'open'))
    assert cp.notifier.sent == []
    cp.on_msg(fill_status(buy, 'N1', 0.01, 29_999.9, 0.01))
    cp.on_msg(fill_status(buy, 'N1', 0.01, 29_999.9, 0.01))        # repeated: once
    assert cp.notifier.sent == [('btcusdt.sim: buy filled', 'buy 0.01 @ 29,999.9 (paper)')]
    alert = client.mk_order('alert', 30_500.0, 0.0)
    cp.on_msg(status(alert, 'alert_triggered', brokerd_msg={'price': 30_500.2}))
    assert cp.notifier.sent[-1] == ('btcusdt.sim: alert', 'alert @ 30,500.2 triggered')
    assert len(cp.notifier.sent) == 2


def test_notifier_uses_notify_send_or_nothing(qtbot, monkeypatch, tmp_path):
    from pyqtgraph.Qt import QtWidgets

    from piker.ui import get_qapp
    from piker.ui._notify import Notifier
    get_qapp()
    monkeypatch.setattr(QtWidgets.QSystemTrayIcon, 'isSystemTrayAvailable', staticmethod(lambda: False))
    none = Notifier(which=lambda _name: None)
    assert none.backend == 'none'
    none.notify('x', 'y')                                # no service: no error
    monkeypatch.setattr(QtWidgets.QSystemTrayIcon, 'isSystemTrayAvailable', staticmethod(lambda: True))
    tray = Notifier(which=lambda _name: None)
    assert tray.backend == 'tray'
    tray.notify('x', 'y')
    out = tmp_path / 'args'
    exe = tmp_path / 'notify-send'
    exe.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {out}\n')
    exe.chmod(0o755)
    ns = Notifier(which=lambda _name: str(exe))
    assert ns.backend == 'notify-send'
    ns.notify('btcusdt.sim: buy filled', 'buy 0.01 @ 30,000.0 (paper)')
    qtbot.waitUntil(lambda: out.exists() and out.read_text().count('\n') >= 6, timeout=5000)
    assert out.read_text().splitlines()[-2:] == ['btcusdt.sim: buy filled', 'buy 0.01 @ 30,000.0 (paper)']


def test_ui_notify_setting_turns_notifications_on(qtbot):
    from piker.config import UIConf
    from piker.ui import get_qapp
    from piker.ui._app import ChartWindow
    from piker.ui._cockpit import Cockpit
    get_qapp()
    win = ChartWindow()
    qtbot.addWidget(win)
    off = Cockpit(win)
    off.configure(UIConf())
    assert off.notifier is None
    on = Cockpit(ChartWindow())
    on.configure(UIConf(notify=True))
    assert on.notifier is not None and on.notifier.backend in ('notify-send', 'tray', 'none')


# --- docks ---------------------------------------------------------------------------

def test_docks_toggle_with_keys_and_menu_and_their_layout_is_remembered(qtbot, cp, tmp_path):
    from piker.ui import get_qapp
    from piker.ui._app import ChartWindow
    from piker.ui._cockpit import Cockpit
    docks = cp.docks
    assert all(d.isVisible() for n, d in docks.docks.items() if n != 'log')
    names = [a.text() for a in docks.menu.actions()]
    assert names[:4] == ['orders blotter', 'fills blotter', 'positions blotter', 'log pane']
    assert [a.shortcut().toString() for a in docks.menu.actions()[:4]] == [
        'Ctrl+Shift+O', 'Ctrl+Shift+F', 'Ctrl+Shift+P', 'Ctrl+Shift+L']
    # ctrl+shift+o on the chart hides the orders dock (and stages nothing)
    key(qtbot, cp.mode.chart, 'O', 'Control', 'Shift')
    qtbot.waitUntil(lambda: not docks.dock('orders').isVisible(), timeout=2000)
    key(qtbot, cp.mode.chart, 'F', 'Control', 'Shift')
    qtbot.waitUntil(lambda: not docks.dock('fills').isVisible(), timeout=2000)
    assert cp.mode.staged is None and cp.mode.client.sent == []
    docks.menu.actions()[0].trigger()                       # the menu shows it again
    assert docks.dock('orders').isVisible()
    docks.save()
    saved = json.loads((tmp_path / 'chart_layout.json').read_text())
    assert saved['version'] == 1 and saved['state']
    assert not list(tmp_path.glob('.chart_layout.json.*.tmp'))      # atomic: no leftovers
    # a new window starts with that layout: fills hidden, orders shown
    get_qapp()
    win2 = ChartWindow()
    qtbot.addWidget(win2)
    cp2 = Cockpit(win2, layout_path=tmp_path / 'chart_layout.json', extra_docks=[win2.dock])
    win2.show()
    qtbot.waitExposed(win2)
    assert cp2.docks.dock('orders').isVisible() and not cp2.docks.dock('fills').isVisible()
    # a damaged file is moved aside, the default layout used
    (tmp_path / 'chart_layout.json').write_text('{"version": 1, "state": "%%%"}')
    win3 = ChartWindow()
    qtbot.addWidget(win3)
    cp3 = Cockpit(win3, layout_path=tmp_path / 'chart_layout.json')
    assert not (tmp_path / 'chart_layout.json').exists()
    assert list(tmp_path.glob('chart_layout.json.corrupt-*'))
    win3.show()
    qtbot.waitExposed(win3)
    assert cp3.docks.dock('fills').isVisible()


# --- end to end ----------------------------------------------------------------------------

@pytest.mark.timeout(90)
def shown(table, *key_and_column):
    """A cell's text once the table shows its row, else None: a row the
    model holds reaches the table at the next frame's flush."""
    try:
        return table.cell(*key_and_column)
    except KeyError:
        return None


def test_e2e_blotters_with_a_script_market_keys_and_flatten(qtbot):
    """The real chart app over the paper engine: a script's order shows as
    another client's, is modified and cancelled from its row; alt+f buys at the
    market (a fill row, a position row with P&L); `x` flattens through
    emsd; the log pane kept the statuses."""
    from piker.brokers.sim import open_market_control
    from piker.clearing import open_ems, wait_for_status
    from piker.ui._app import run_chart
    from tests.test_ui_order_mode import until

    seen: dict = {}

    async def driver(app) -> None:
        with trio.fail_after(40):
            await app.ems_ready[FQME].wait()
        cp, mode = app.cockpit, app.modes[FQME]
        chart = app.win.chart(FQME)
        answer = Answer()
        cp.flatteners[FQME].confirm = answer
        async with (
            open_market_control(FQME, resume_on_exit=False) as ctl,
            open_ems(FQME) as (sc, strades, _pps, _accts, _dialogs),
        ):
            q = await ctl.push(bsize=5, asize=5)
            last, ask = float(q['last']), float(q['ask'])
            rest = sc.mk_order('buy', round(last - 50, 1), 0.01, exec_mode='live')
            await sc.send(rest)
            await until(lambda: rest.oid in cp.orders.rows and rest.oid in cp.orders.oids())
            assert cp.orders.cell(rest.oid, 'source') == 'other client'
            # its price edited in the row: the script sees the modify
            new_price = round(last - 45, 1)
            cp.orders.edit(rest.oid, 'price', f'{new_price:,.1f}')
            with trio.fail_after(10):
                while True:
                    st = await wait_for_status(strades, rest.oid, 'open')
                    if st.req.price == new_price:
                        break
            await until(lambda: cp.orders.cell(rest.oid, 'price') == f'{new_price:,.1f}'
                        and cp.orders.cell(rest.oid, 'state') == 'open')
            click(qtbot, cp.orders.table, cp.orders.cancel_rect(rest.oid))
            await wait_for_status(strades, rest.oid, 'canceled')
            await until(lambda: rest.oid not in cp.orders.oids())

            from pyqtgraph.Qt import QtCore, QtGui
            ev = QtGui.QKeyEvent(QtCore.QEvent.Type.KeyPress, QtCore.Qt.Key.Key_F,
                                 QtCore.Qt.KeyboardModifier.AltModifier)
            chart.view.keyPressEvent(ev)
            await until(lambda: cp.fills.shown() and mode.positions.holdings.get('paper'))
            size = mode.positions.holdings['paper'].size
            fill = cp.fills.shown()[0]
            assert (fill.side, fill.price, fill.size) == ('buy', ask, size)
            await until(lambda: cp.positions.row('paper', FQME) is not None
                        and cp.positions.row('paper', FQME).size == size)
            await ctl.push(last=ask + 10.0, bid=ask + 9.9, ask=ask + 10.1)
            await until(lambda: shown(cp.positions, 'paper', FQME, 'P&L') == f'{10.0 * size:+,.2f}')

            flat_ev = QtGui.QKeyEvent(QtCore.QEvent.Type.KeyPress, QtCore.Qt.Key.Key_X,
                                      QtCore.Qt.KeyboardModifier.NoModifier)
            chart.view.keyPressEvent(flat_ev)
            assert len(answer.asked) == 1
            await until(lambda: not mode.positions.holdings and len(cp.fills.shown()) == 2)
            assert cp.fills.shown()[0].side == 'sell'
            await until(lambda: shown(cp.positions, 'paper', FQME, 'size') == 'flat')
            await until(lambda: any('filled: sell' in ln for ln in cp.log.lines()))
            seen['realised'] = cp.positions.row('paper', FQME).realised
            seen['want'] = (ask + 9.9 - ask) * size

    run_chart([FQME], driver=driver, handle_signals=False)
    assert seen['realised'] == pytest.approx(seen['want'])


def test_a_reconnect_handshake_resyncs_the_blotters(qtbot, cp):
    """Orders that ended while emsd was away leave, new ones come, a
    position the handshake does not list is flat, the ledger is read again."""
    client = cp.mode.client
    gone = client.mk_order('buy', 29_900.0, 0.01, exec_mode='dark')
    kept = client.mk_order('sell', 30_100.0, 0.01, exec_mode='live')
    cp.on_msg(status(gone, 'dark_open'))
    cp.on_msg(status(kept, 'open'))
    _hold(cp, 0.05)
    trio.run(cp.load_ledgers, 'sim', ['paper'])
    cp.batch.flush()
    assert cp.fills.fills == [] and cp.positions.cell('paper', FQME, 'size') == '0.05'
    new = client.mk_order('buy', 29_800.0, 0.02, exec_mode='dark')
    _write_ledger(2)                                   # fills while the chart was away
    cp.resync(cp.mode, {kept.oid: status(kept, 'open'), new.oid: status(new, 'dark_open')}, {})
    trio.run(cp.load_ledgers, 'sim', ['paper'])
    cp.batch.flush()
    assert cp.orders.oids() == [kept.oid, new.oid]
    assert cp.positions.cell('paper', FQME, 'size') == 'flat'
    assert [f.tid for f in cp.fills.shown()] == ['L1', 'L0']
