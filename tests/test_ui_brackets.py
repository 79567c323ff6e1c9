"""Brackets, stops, take-profits and trailing stops on the chart (issue 15 item 5).

Order mode on an offscreen chart with the fake client of
`test_ui_order_mode`: statuses are synthesized as emsd sends them
(`resp='held'`, `armed`, `trigger`), and what the chart sends is read
off the fake client.
"""
# ruff: noqa: F811 - the tests take the imported `om` fixture as a parameter
from __future__ import annotations

import os
import uuid

import pytest

from piker.clearing._messages import BrokerdPosition, Order, Trail
from tests.test_ui_order_mode import (
    FQME,
    click,
    drag,
    key,
    mid_price,
    move,
    om,  # noqa: F401 - the fixture
    px_per_price,
    release,
    status,
)

pytestmark = pytest.mark.timeout(60)

SHOT = os.environ.get('PIKER_DOCS_SHOTS') and 'docs/chart_bracket.png'


def child(mode, entry: Order, kind: str, price: float, oco: str, **kw) -> Order:
    exit_action = 'sell' if entry.action == 'buy' else 'buy'
    base = mode.client.mk_order(exit_action, price, entry.size, exec_mode='dark')
    order = base.copy({'type': kind, 'parent': entry.oid, 'oco': oco, 'reduce_only': True, **kw})
    mode.client.orders[order.oid] = order
    return order


def bracket(mode, price: float, size: float = 1.0, tp_off: float = 5.0, sl_off: float = 2.5):
    """A long bracket as emsd reports it: entry working, TP/SL held."""
    price = mode.quantize(price)
    entry = mode.client.mk_order('buy', price, size, exec_mode='dark')
    mode.client.orders[entry.oid] = entry
    oco = str(uuid.uuid4())
    tp = child(mode, entry, 'take_profit', round(price + tp_off, 1), oco)
    sl = child(mode, entry, 'stop', round(price - sl_off, 1), oco)
    mode.on_status(status(entry, 'dark_open'))
    mode.on_status(status(tp, 'held', armed=0.0))
    mode.on_status(status(sl, 'held', armed=0.0))
    return entry, tp, sl


def group_text(mode, entry_or_oco: str) -> str | None:
    return mode.win.status.order_status(f'group:{entry_or_oco}')


def fill(mode, order: Order, filled: float, price: float, resp: str = 'fill',
         size: float | None = None, **kw):
    """A fill of `size` (default: all of `filled`) at `price`, `filled` in all."""
    mode.on_status(status(order, resp, filled=filled, brokerd_msg={
        'price': price, 'size': size or filled, 'action': order.action}, **kw))


def shift_press(qtbot, mode, name: str, shift: bool = True) -> None:
    from pyqtgraph.Qt import QtCore
    mods = QtCore.Qt.KeyboardModifier.ShiftModifier if shift else QtCore.Qt.KeyboardModifier.NoModifier
    qtbot.keyPress(mode.chart, key(name), mods)


# --- 1. linked drawing: held -> armed -> TP fill -> SL cancelled -----------------

def test_a_bracket_draws_linked_lines_held_then_armed_then_tp_fill_cancels_sl(qtbot, om):
    p = om.quantize(mid_price(om, 0.5))
    entry, tp, sl = bracket(om, p)
    lines = om.lines
    assert set(lines) == {entry.oid, tp.oid, sl.oid}
    # linked: one rail from the entry to the TP (reward) and to the SL (risk)
    rail = om.brackets.rails[entry.oid]
    r, k = rail.reward.rect(), rail.risk.rect()
    assert (r.top(), r.bottom()) == pytest.approx((p, p + 5.0))
    assert (k.top(), k.bottom()) == pytest.approx((p - 2.5, p))
    assert all(item.isVisible() for item in rail.items)
    spine, tick = rail.spine.line(), rail.entry_tick.line()
    assert (spine.y1(), spine.y2()) == pytest.approx((p + 5.0, p - 2.5))
    assert tick.y1() == tick.y2() == pytest.approx(p)
    # in the right margin of the price pane, inside it
    (x0, x1), _ = om.chart.view.viewRange()
    assert x0 < r.left() < r.right() < x1 and r.right() > x1 - 0.05 * (x1 - x0)
    assert spine.x1() == pytest.approx(r.right())
    # held children: dashed, labelled with role, type, held size and P&L at their price
    assert lines[tp.oid].line.dash == 'held' and lines[sl.oid].line.dash == 'held'
    assert lines[tp.oid].line.text() == 'TP take-profit held 1.00000  pnl +5.00'
    assert lines[sl.oid].line.text() == 'SL stop held 1.00000  pnl -2.50'
    assert lines[entry.oid].line.text().startswith('entry paper: 1.00000 ~ ')
    assert not lines[tp.oid].line.pending          # held is confirmed, not pending

    # half the entry fills: emsd arms half of each child
    fill(om, entry, 0.5, p)
    assert group_text(om, entry.oid) == 'entry filled 0.5: TP/SL held'
    om.on_status(status(tp, 'dark_open', armed=0.5))
    assert group_text(om, entry.oid) == 'entry filled 0.5: TP armed 0.5, SL held'
    om.on_status(status(sl, 'dark_open', armed=0.5))
    assert group_text(om, entry.oid) == 'entry filled 0.5: TP/SL armed 0.5'
    assert lines[tp.oid].line.dash == 'dark'       # armed: drawn like a dark order
    assert lines[tp.oid].line.text() == 'TP take-profit armed 0.50000 of 1.00000  pnl +2.50'
    assert lines[sl.oid].line.text() == 'SL stop armed 0.50000 of 1.00000  pnl -1.25'

    # the rest fills 1 tick better: the P&L basis is the average fill
    fill(om, entry, 1.0, p - 0.2, size=0.5)
    om.on_status(status(entry, 'closed', filled=1.0))
    om.on_status(status(tp, 'dark_open', armed=1.0))
    om.on_status(status(sl, 'dark_open', armed=1.0))
    assert entry.oid not in lines
    assert group_text(om, entry.oid) == 'entry filled 1: TP/SL armed 1'
    assert lines[tp.oid].line.text() == 'TP take-profit armed 1.00000  pnl +5.10'
    rail = om.brackets.rails[entry.oid]
    assert rail.reward.rect().top() == pytest.approx(p - 0.1)     # avg fill

    # the TP fills; emsd cancels the SL (OCO)
    om.on_status(status(tp, 'closed', filled=1.0))
    assert group_text(om, entry.oid) == 'TP filled: SL armed 1'
    om.on_status(status(sl, 'canceled'))
    assert group_text(om, entry.oid) == 'TP filled: SL cancelled'
    assert om.lines == {} and om.brackets.rails == {} and om.brackets.members == {}
    assert om.win.status.order_status(sl.oid) is None     # the group line tells it


def test_group_texts_sl_filled_and_entry_cancelled(qtbot, om):
    p = om.quantize(mid_price(om, 0.5))
    entry, tp, sl = bracket(om, p)
    fill(om, entry, 1.0, p, resp='closed')
    om.on_status(status(tp, 'dark_open', armed=1.0))
    om.on_status(status(sl, 'dark_open', armed=1.0))
    om.on_status(status(sl, 'dark_triggered', armed=1.0))
    assert group_text(om, entry.oid) == 'entry filled 1: TP armed 1, SL triggered'
    om.on_status(status(sl, 'open'))
    assert group_text(om, entry.oid) == 'entry filled 1: TP armed 1, SL triggered'
    fill(om, sl, 1.0, p - 2.5, resp='closed')
    om.on_status(status(tp, 'canceled'))
    assert group_text(om, entry.oid) == 'SL filled: TP cancelled'

    entry, tp, sl = bracket(om, p - 1)
    om.on_status(status(entry, 'canceled'))
    assert group_text(om, entry.oid) == 'entry cancelled: TP/SL held'
    om.on_status(status(tp, 'canceled'))
    assert group_text(om, entry.oid) == 'entry cancelled: TP cancelled, SL held'
    om.on_status(status(sl, 'canceled'))
    assert group_text(om, entry.oid) == 'entry cancelled: TP/SL cancelled'
    assert om.lines == {} and om.brackets.rails == {}
    # a member emsd refuses says why
    entry, tp, sl = bracket(om, p - 2)
    om.on_status(status(sl, 'error', reason='risk: max_notional'))
    assert group_text(om, entry.oid) == 'SL error (risk: max_notional): TP held, entry open'
    texts = om.win.status.texts()
    assert not [t for t in texts if t.startswith('cancelled:')], texts


def test_a_clients_oco_group_of_entries(qtbot, om):
    """Two breakout stops grouped OCO: no rail (no exits to link), the
    group status names them by type and side."""
    p = om.quantize(mid_price(om, 0.5))
    up = om.client.mk_order('buy', p + 4.0, 0.01, exec_mode='dark').copy({'type': 'stop', 'oco': 'g2'})
    down = om.client.mk_order('sell', p - 4.0, 0.01, exec_mode='dark').copy({'type': 'stop', 'oco': 'g2'})
    om.on_status(status(up, 'dark_open'))
    om.on_status(status(down, 'dark_open'))
    assert om.lines[up.oid].line.text().startswith('stop paper: 0.01000 ~ ')
    assert not om.brackets.rails['g2'].spine.isVisible()
    fill(om, up, 0.01, p + 4.1, resp='closed')
    om.on_status(status(down, 'canceled'))
    assert group_text(om, 'g2') == 'stop buy filled: stop sell cancelled'
    assert om.brackets.rails == {}


# --- 2. dragging -------------------------------------------------------------------

def test_drag_tp_modifies_the_child_and_drag_entry_moves_only_the_entry(qtbot, om):
    p = om.quantize(mid_price(om, 0.45))
    om.chart.l1.set(last=p)
    entry, tp, sl = bracket(om, p, size=0.01, tp_off=8.0, sl_off=6.0)
    target = tp.price + 3.0
    drag(qtbot, om, tp.price, target)
    assert len(om.client.updates) == 1
    oid, price, size = om.client.updates[0]
    tol = 2 / px_per_price(om) + 0.1
    assert oid == tp.oid and abs(price - target) <= tol
    assert size == tp.size                  # the child keeps its size, not the allocator's
    assert om.lines[tp.oid].line.pending and om.lines[tp.oid].line.price == price
    rail = om.brackets.rails[entry.oid]
    assert rail.reward.rect().bottom() == pytest.approx(price)     # the rail follows
    # emsd confirms the re-armed child
    om.on_status(status(om.client.orders[tp.oid], 'held', armed=0.0))
    assert om.lines[tp.oid].line.text().startswith('TP take-profit held 0.01000')

    # dragging the unfilled entry moves the entry only, same size
    target = p - 2.0
    drag(qtbot, om, p, target)
    oid, price, size = om.client.updates[-1]
    assert len(om.client.updates) == 2 and oid == entry.oid and size == entry.size
    assert abs(price - target) <= tol
    assert om.lines[sl.oid].line.price == sl.price
    assert om.lines[tp.oid].line.price == om.client.orders[tp.oid].price
    # the children's P&L now counts from the moved entry
    pnl = (om.client.orders[tp.oid].price - price) * 0.01
    assert om.lines[tp.oid].line.text().endswith(f'pnl {pnl:+,.2f}')
    # a stop-loss dragged above the market would fire at once: refused, line back
    om.chart.l1.set(last=sl.price + 1.0)
    drag(qtbot, om, sl.price, sl.price + 3.0)
    assert len(om.client.updates) == 2 and om.lines[sl.oid].line.price == sl.price
    assert om.win.status.order_status(sl.oid).startswith(
        'modify failed: stop-loss of a long position goes below the market')


def test_dragging_a_stop_limit_moves_its_limit_with_the_trigger(qtbot, om):
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                   size=0.02, avg_price=om.quantize(mid_price(om, 0.7))))
    trig = om.quantize(mid_price(om, 0.4))
    om.chart.l1.set(last=om.quantize(mid_price(om, 0.8)))
    base = om.client.mk_order('sell', trig, 0.02, exec_mode='dark')
    sl = base.copy({'type': 'stop_limit', 'limit': round(trig - 1.0, 1), 'reduce_only': True})
    om.client.orders[sl.oid] = sl
    om.on_status(status(sl, 'dark_open'))
    fmt = om.chart.format_price
    assert om.lines[sl.oid].line.text().startswith(
        f'SL stop-limit {fmt(trig)} lmt {fmt(trig - 1.0)} 0.02000  pnl -')
    drag(qtbot, om, trig, trig - 3.0)
    (new,) = om.client.sent
    assert new.oid == sl.oid and new.size == 0.02 and new.type == 'stop_limit'
    assert new.limit == pytest.approx(new.price - 1.0)
    assert om.win.status.order_status(sl.oid).startswith(f'modifying: stop-limit {fmt(new.price)}')


# --- 3. trailing stops and type labels --------------------------------------------------

def test_trailing_stop_line_follows_the_trigger_and_is_labelled_by_its_trail(qtbot, om):
    p = om.quantize(mid_price(om, 0.6))
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                   size=0.1, avg_price=p))
    base = om.client.mk_order('sell', p - 5.0, 0.1, exec_mode='dark')
    trail = base.copy({'type': 'trailing_stop', 'trail': Trail(amount=0.5, unit='pct'),
                       'reduce_only': True})
    om.on_status(status(trail, 'dark_open', trigger=p - 5.0))
    ol = om.lines[trail.oid]
    assert ol.line.price == pytest.approx(p - 5.0)
    assert ol.line.text() == 'SL trail 0.5% 0.10000  pnl -0.50'
    assert not ol.line.movable             # emsd owns the trail
    for trig in (p - 4.0, p - 2.5, p + 1.0):
        om.on_status(status(trail, 'dark_open', trigger=trig))
        assert ol.line.price == pytest.approx(trig)
    assert ol.line.text() == 'SL trail 0.5% 0.10000  pnl +0.10'
    ticks = om.client.mk_order('sell', p - 1.0, 0.1, exec_mode='dark').copy(
        {'type': 'trailing_stop', 'trail': Trail(amount=5)})
    om.on_status(status(ticks, 'dark_open', trigger=p - 0.5))
    assert om.lines[ticks.oid].line.text().startswith('trail 5t paper: 0.10000 ~ ')
    assert om.lines[ticks.oid].line.price == pytest.approx(p - 0.5)
    # trailing from the market (price 0): no line until emsd says the trigger
    market = om.client.mk_order('sell', 1.0, 0.1, exec_mode='dark').copy(
        {'type': 'trailing_stop', 'price': 0.0, 'trail': Trail(amount=3), 'reduce_only': True})
    om.on_status(status(market, 'dark_open'))
    line = om.lines[market.oid].line
    assert not line.isVisible() and not line.label.isVisible() and not line.tag.isVisible()
    om.on_status(status(market, 'dark_open', trigger=p - 0.3))
    assert line.isVisible() and line.label.isVisible() and line.tag.isVisible()
    assert line.price == pytest.approx(p - 0.3)
    # a plain (entry) stop and a take-profit name their type too
    stop = om.client.mk_order('buy', p + 3.0, 0.01, exec_mode='dark').copy({'type': 'stop'})
    om.on_status(status(stop, 'dark_open'))
    assert om.lines[stop.oid].line.text().startswith('stop paper: 0.01000 ~ ')
    tp = om.client.mk_order('sell', p + 4.0, 0.1, exec_mode='dark').copy(
        {'type': 'take_profit', 'reduce_only': True})
    om.on_status(status(tp, 'dark_open'))
    assert om.lines[tp.oid].line.text() == 'TP take-profit 0.10000  pnl +0.40'


# --- 4. hotkeys: shift+f stages a bracket, t / s attach to the position --------------

def test_shift_f_stages_a_bracket_and_the_click_sends_entry_tp_and_sl(qtbot, om):
    p = mid_price(om, 0.4)
    move(qtbot, om, p)
    shift_press(qtbot, om, 'F')
    sb = om.brackets.keys.staged
    assert sb is not None and om.staged is not None and om.staged.action == 'buy'
    entry_px = om.staged.line.price
    assert sb.tp.price == pytest.approx(entry_px + 5.0)      # 50 ticks of 0.1
    assert sb.sl.price == pytest.approx(entry_px - 2.5)      # 25 ticks
    assert sb.tp.text().startswith('TP take-profit 50t  pnl +') and sb.tp.text().endswith('(staged)')
    assert sb.sl.text().startswith('SL stop 25t  pnl -')
    # the previews follow the cursor
    move(qtbot, om, mid_price(om, 0.5))
    assert sb.tp.price == pytest.approx(om.staged.line.price + 5.0)
    click(qtbot, om, p)
    entry, tp, sl = om.client.sent
    assert (entry.action, entry.type, entry.parent, entry.reduce_only) == ('buy', 'limit', None, False)
    assert entry.size > 0 and entry.exec_mode == 'dark'
    for c, kind, price in ((tp, 'take_profit', entry.price + 5.0), (sl, 'stop', entry.price - 2.5)):
        assert c.type == kind and c.action == 'sell' and c.size == entry.size
        assert c.parent == entry.oid and c.reduce_only and c.account == entry.account
        assert c.price == pytest.approx(price)
    assert tp.oco is not None and tp.oco == sl.oco
    assert set(om.lines) == {entry.oid, tp.oid, sl.oid}
    assert om.lines[tp.oid].line.dash == 'held' and om.lines[tp.oid].line.pending
    assert entry.oid in om.brackets.rails
    assert group_text(om, entry.oid).startswith('bracket pending: buy ')
    # emsd confirms all three: the group line says so (and lingers, then goes)
    om.on_status(status(entry, 'dark_open'))
    om.on_status(status(tp, 'held', armed=0.0))
    assert group_text(om, entry.oid).startswith('bracket pending: buy ')
    om.on_status(status(sl, 'held', armed=0.0))
    assert group_text(om, entry.oid).startswith('bracket placed: buy ')
    assert om.win.status.order_status(tp.oid) is None     # the group line tells it
    assert not om.lines[tp.oid].line.pending
    release(qtbot, om, 'F')
    assert om.staged is None and om.brackets.keys.staged is None
    # shift+d: a short bracket, TP below
    move(qtbot, om, p)
    shift_press(qtbot, om, 'D')
    assert om.brackets.keys.staged.tp.price == pytest.approx(om.staged.line.price - 5.0)
    qtbot.keyPress(om.chart, key('Escape'))
    assert om.brackets.keys.staged is None
    # plain f stages no bracket
    shift_press(qtbot, om, 'F', shift=False)
    assert om.staged is not None and om.brackets.keys.staged is None


def test_a_bracket_whose_child_cannot_be_sent_is_taken_back(qtbot, om):
    """Never half a bracket: a child the client refuses cancels what went out."""
    client = om.client
    send = client.send_nowait

    def refuse_stops(order):
        if order.type == 'stop':
            raise RuntimeError('session closed')
        return send(order)

    client.send_nowait = refuse_stops
    p = mid_price(om, 0.4)
    move(qtbot, om, p)
    shift_press(qtbot, om, 'F')
    click(qtbot, om, p)
    entry, tp = client.sent
    assert tp.type == 'take_profit'
    assert client.cancels == [entry.oid, tp.oid]
    assert 'bracket not sent (session closed): cancelling its entry/TP' in om.win.status.order_status(
        f'note:{FQME}')


def test_t_and_s_attach_to_the_position_and_refuse_when_flat(qtbot, om):
    p = om.quantize(mid_price(om, 0.5))
    move(qtbot, om, p + 3.0)
    shift_press(qtbot, om, 'T', shift=False)
    assert om.client.sent == []
    assert 'paper is flat in btcusdt.sim' in om.win.status.order_status(f'note:{FQME}')
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                   size=0.05, avg_price=p))
    om.on_quote({'last': p})
    om.chart.l1.set(last=p)
    shift_press(qtbot, om, 'T', shift=False)
    (tp,) = om.client.sent
    assert tp.type == 'take_profit' and tp.action == 'sell' and tp.size == 0.05
    assert tp.reduce_only and tp.parent is None and tp.oco
    assert abs(tp.price - (p + 3.0)) <= 2 / px_per_price(om) + 0.1
    # a stop-loss above the market of a long would fire at once: refused
    shift_press(qtbot, om, 'S', shift=False)
    assert len(om.client.sent) == 1
    assert 'goes below the market' in om.win.status.order_status(f'note:{FQME}')
    move(qtbot, om, p - 2.0)
    shift_press(qtbot, om, 'S', shift=False)
    sl = om.client.sent[-1]
    assert sl.type == 'stop' and sl.action == 'sell' and sl.size == 0.05 and sl.reduce_only
    assert sl.oco == tp.oco                  # one position's TP and SL are OCO
    assert om.lines[sl.oid].line.text().startswith('SL stop 0.05000  pnl -')
    # the group's story in the status bar
    om.on_status(status(tp, 'dark_open'))
    om.on_status(status(sl, 'dark_open'))
    om.on_status(status(tp, 'closed', filled=0.05))
    om.on_status(status(sl, 'canceled'))
    assert group_text(om, tp.oco) == 'TP filled: SL cancelled'
    # a short's TP goes below, on the buy side
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                   size=-0.02, avg_price=p))
    shift_press(qtbot, om, 'T', shift=False)
    short_tp = om.client.sent[-1]
    assert short_tp.action == 'buy' and short_tp.size == 0.02 and short_tp.type == 'take_profit'


def test_hotkeys_refused_while_the_ems_is_disconnected(qtbot, om):
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                   size=0.05, avg_price=om.quantize(mid_price(om))))
    om.disconnect('test')
    move(qtbot, om, mid_price(om, 0.7))
    shift_press(qtbot, om, 'T', shift=False)
    shift_press(qtbot, om, 'F')
    assert om.client.sent == [] and om.brackets.keys.staged is None
    assert 'refused: EMS disconnected' in om.win.status.order_status(f'note:{FQME}')


# --- a new window, a reconnect, the settings --------------------------------------------

def test_a_new_window_draws_a_bracket_whose_entry_filled_from_the_handshake(qtbot, om):
    """The handshake lists only working dialogs: the children of a filled
    entry count their P&L from the position's ppu; history says nothing."""
    p = om.quantize(mid_price(om, 0.5))
    entry = om.client.mk_order('buy', p, 1.0, exec_mode='dark')
    tp = child(om, entry, 'take_profit', round(p + 5.0, 1), 'g1')
    sl = child(om, entry, 'stop', round(p - 2.5, 1), 'g1')
    pos = BrokerdPosition(broker='sim', account='paper', symbol=FQME, size=1.0, avg_price=p - 0.5)
    om.load({tp.oid: status(tp, 'dark_open', armed=1.0), sl.oid: status(sl, 'dark_open', armed=1.0)},
            {('sim', 'paper'): [pos]})
    assert om.lines[tp.oid].line.text() == 'TP take-profit armed 1.00000  pnl +5.50'
    assert om.lines[sl.oid].line.text() == 'SL stop armed 1.00000  pnl -2.00'
    rail = om.brackets.rails[entry.oid]
    assert rail.reward.rect().top() == pytest.approx(p - 0.5)
    assert group_text(om, entry.oid) is None
    # a reconnect whose handshake no longer has them: lines and rail go
    om.disconnect('test')
    om.reconnect(om.client, {}, {('sim', 'paper'): [pos]})
    assert om.lines == {} and om.brackets.rails == {} and om.brackets.members == {}


def test_bracket_offsets_come_from_conf_toml_and_are_validated(piker_env):
    from piker.config import ConfigError, load_conf
    confdir, _ = piker_env
    path = confdir / 'conf.toml'
    path.write_text('[ui]\nbracket_tp_ticks = 80\nbracket_sl_ticks = 30\n')
    ui = load_conf().ui
    assert (ui.bracket_tp_ticks, ui.bracket_sl_ticks) == (80, 30)
    path.write_text('[ui]\nbracket_sl_ticks = 0\n')
    with pytest.raises(ConfigError, match="'ui.bracket_sl_ticks'.*greater than or equal to 1"):
        load_conf()


# --- the docs picture ---------------------------------------------------------------------

def test_bracket_screenshot_labels_do_not_overlap(qtbot, om):
    from tests.test_ui_busy import label_rects, overlaps
    chart = om.chart
    p = om.quantize(mid_price(om, 0.5))
    chart.l1.set(bid=p + 1.9, ask=p + 2.1, last=p + 2.0)
    om.on_quote({'last': p + 2.0})
    entry, tp, sl = bracket(om, p, size=0.04, tp_off=12.0, sl_off=8.0)
    fill(om, entry, 0.02, p)
    om.on_status(status(tp, 'dark_open', armed=0.02))
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                   size=0.02, avg_price=p))
    base = om.client.mk_order('sell', p - 14.0, 0.02, exec_mode='dark')
    trail = base.copy({'type': 'trailing_stop', 'trail': Trail(amount=0.05, unit='pct'),
                       'reduce_only': True})
    om.on_status(status(trail, 'dark_open', trigger=p - 13.0))
    rects = label_rects(chart)
    everything = rects['tags'] + rects['labels']
    assert overlaps(everything) == [], overlaps(everything)
    assert group_text(om, entry.oid) == 'entry filled 0.02: TP armed 0.02, SL held'
    if SHOT:
        y0, y1 = chart.view.y_range()
        chart.move_cursor(len(chart.model) - 25, y0 + (y1 - y0) * 0.85)
        qtbot.wait(50)          # the status bar lays out its new entries
        om.win.grab().save(SHOT)
