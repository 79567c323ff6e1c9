"""Pre-trade risk checks (`piker.clearing._risk`), their config and the
persisted trading state: pure, no actors."""
from __future__ import annotations

import math
import tomllib
import uuid

import pytest

from piker.clearing._dark import Triggered
from piker.clearing._messages import (
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    Order,
    Status,
)
from piker.clearing._risk import RiskGate, TokenBucket, TradingState, quote_mark
from piker.clearing._risk_state import (
    STATE_FILE,
    SavedState,
    load_saved_state,
    open_risk_gate,
    save_state,
    switch_state,
)
from piker.config import _DEFAULTS, Conf, ConfigError, RiskConf, load_conf

FQME = 'btcusdt.sim'


def mk(
    action: str = 'buy', size: float = 1.0, price: float = 100.0, *,
    symbol: str = FQME, account: str = 'paper', exec_mode: str = 'live',
    oid: str | None = None,
) -> Order:
    return Order(
        oid=oid or str(uuid.uuid4()), symbol=symbol, action=action,
        exec_mode=exec_mode, price=price, size=size, account=account,
    )


def gate(clock=None, **risk) -> RiskGate:
    conf = RiskConf.model_validate(risk)
    return RiskGate(conf, clock=clock) if clock else RiskGate(conf)


def position(size: float, symbol: str = FQME, account: str = 'paper') -> BrokerdPosition:
    return BrokerdPosition(broker='sim', account=account, symbol=symbol, size=size,
                           avg_price=100.0)


# ---- emsd's order path in miniature -------------------------------------
# The gate checks, the dialog table applies (with no checkpoint between,
# as emsd's intake does), the gate observes every Status the table makes:
# the working orders it counts are the table's.

def publish(g: RiskGate, effects: list) -> None:
    for eff in effects:
        if isinstance(eff, Status):
            g.observe(eff)


def place(g: RiskGate, order: Order, **kw) -> object:
    """Check `order` (a modify if its dialog works); apply it if accepted."""
    live = g.dialogs.get(order.oid)
    existing = live.req if live is not None and not live.terminal else None
    refusal = g.check(order, existing=existing, **kw)
    if refusal is None:
        publish(g, g.dialogs.on_client_msg(order, owner=1, route='paper'))
    return refusal


def venue(g: RiskGate, order: Order, status: str = 'open', filled: float = 0.0) -> None:
    """The venue acks `order` (once) and reports `status`."""
    reqid = f'r-{order.oid}'
    if g.dialogs.by_reqid('sim', reqid) is None:
        publish(g, g.dialogs.on_broker_msg(
            BrokerdOrderAck(oid=order.oid, reqid=reqid, account=order.account), 'sim'))
    publish(g, g.dialogs.on_broker_msg(BrokerdStatus(
        reqid=reqid, oid=order.oid, status=status, account=order.account, time_ns=1,
        filled=filled, remaining=order.size - filled,
    ), 'sim'))


def fill(g: RiskGate, order: Order, size: float, tid: str | None = None) -> None:
    publish(g, g.dialogs.on_broker_msg(BrokerdFill(
        reqid=f'r-{order.oid}', oid=order.oid, tid=tid or str(uuid.uuid4()),
        action=order.action, size=size, price=order.price, broker_time=1.0, time_ns=1,
    ), 'sim'))


def trigger(g: RiskGate, order: Order) -> None:
    publish(g, g.dialogs.on_trigger(Triggered(
        oid=order.oid, fqme=order.symbol, action=order.action, level=order.price,
        direction='up', price=order.price, tick_type='last', size=order.size,
        submit_price=order.price,
    )))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- config -------------------------------------------------------------

def test_defaults_are_all_off():
    risk = Conf().ems.risk
    assert risk.state == 'active'
    assert risk.max_order_size is None and risk.max_notional is None
    assert risk.max_open_orders is None and risk.max_orders_per_sec == 0
    assert risk.accounts == {} and risk.fqmes == {}
    g = RiskGate(risk)
    for _ in range(1000):
        assert g.check(mk(size=1e9, price=1e9), session=1) is None


def test_commented_default_conf_is_valid_and_documents_risk():
    text = _DEFAULTS['conf.toml']
    for key in ('[ems.risk]', 'state', 'max_order_size', 'max_notional',
                'max_open_orders', 'max_orders_per_sec', 'order_burst',
                '[ems.risk.accounts."sim.paper"]', '[ems.risk.fqmes."btcusdt.sim"]'):
        assert key in text
    uncommented = '\n'.join(ln[2:].split('#')[0] for ln in text.splitlines()[1:])
    conf = Conf.model_validate(tomllib.loads(uncommented))
    risk = conf.ems.risk
    assert risk.fqmes['btcusdt.sim'].max_order_size == 5.0
    assert risk.accounts['sim.paper'].max_notional == 10000.0
    assert risk.max_orders_per_sec == 20.0 and risk.order_burst == 40


def test_fqme_keys_quoted_or_not(piker_env):
    confdir, _ = piker_env
    (confdir / 'conf.toml').write_text(
        '[ems.risk.fqmes."BTCUSDT.sim"]\nmax_order_size = 5\n'
        '[ems.risk.fqmes.ethusdt.sim]\nmax_notional = 1000\n'
        '[ems.risk.fqmes.mnq.cme.20261218.ib]\nmax_open_orders = 2\n'
        '[ems.risk.accounts.sim.paper]\nmax_open_orders = 3\n'
        '[ems.risk.accounts.paper]\nmax_open_orders = 4\n'
    )
    risk = load_conf().ems.risk
    assert set(risk.fqmes) == {'btcusdt.sim', 'ethusdt.sim', 'mnq.cme.20261218.ib'}
    assert risk.fqmes['btcusdt.sim'].max_order_size == 5
    assert risk.fqmes['ethusdt.sim'].max_notional == 1000
    assert risk.fqmes['mnq.cme.20261218.ib'].max_open_orders == 2
    assert risk.accounts['sim.paper'].max_open_orders == 3
    assert risk.accounts['paper'].max_open_orders == 4


@pytest.mark.parametrize('body, expect', [
    ('[ems.risk.fqmes.btcusdt]\nmax_order_size = 1\n',
     "bad key 'ems.risk.fqmes.btcusdt': Value error, fqme 'btcusdt' has no broker suffix"),
    ('[ems.risk.fqmes."btcusdt.sim"]\nmax_order_size = -1\n',
     """key 'ems.risk.fqmes."btcusdt.sim".max_order_size': Input should be greater than 0"""),
    ('[ems.risk.fqmes."btcusdt.sim"]\nmax_order_sise = 1\n',
     """unknown key 'ems.risk.fqmes."btcusdt.sim".max_order_sise'"""),
    ('[ems.risk.fqmes."btcusdt.sim"]\nmax_order_size = 1\n'
     '[ems.risk.fqmes.BTCUSDT.sim]\nmax_order_size = 2\n',
     "key 'ems.risk.fqmes': Value error, fqme 'btcusdt.sim' is given twice"),
    ('[ems.risk]\nstate = "paused"\n',
     "key 'ems.risk.state': Input should be 'active', 'reduce_only' or 'halted' (got 'paused')"),
    ('[ems.risk]\nmax_orders_per_sec = nan\n',
     "key 'ems.risk.max_orders_per_sec': Input should be a finite number"),
    ('[ems.risk]\norder_burst = 0\n',
     "key 'ems.risk.order_burst': Input should be greater than or equal to 1"),
    ('[ems.risk]\nmax_open_orders = 1.5\n',
     "key 'ems.risk.max_open_orders': Input should be a valid integer"),
    ('[ems.risk.accounts.".paper"]\nmax_open_orders = 1\n',
     """bad key 'ems.risk.accounts.".paper"': Value error, '.paper' is not an account key"""),
    ('[ems.risk]\nmax_notionl = 5\n', "unknown key 'ems.risk.max_notionl'"),
])
def test_config_errors_name_the_key(piker_env, body, expect):
    confdir, _ = piker_env
    (confdir / 'conf.toml').write_text(body)
    with pytest.raises(ConfigError) as info:
        load_conf()
    assert 'conf.toml' in str(info.value)
    assert expect in str(info.value)


# ---- per-order limits -------------------------------------------------------

def test_max_order_size_scopes_and_messages():
    g = gate(
        max_order_size=10,
        fqmes={'btcusdt.sim': {'max_order_size': 5}, 'ethusdt.sim': {'max_order_size': float('inf')}},
        accounts={'sim.big': {'max_order_size': 3}, 'small': {'max_order_size': 2}},
    )
    assert g.check(mk(size=5)) is None
    r = g.check(mk(size=7))
    assert r.limit == 'max_order_size'
    assert r.reason == 'max_order_size for btcusdt.sim is 5, order size 7'
    # default applies where no override
    assert g.check(mk(size=10, symbol='solusdt.sim')) is None
    r = g.check(mk(size=11, symbol='solusdt.sim'))
    assert r.reason == 'max_order_size (default) is 10, order size 11'
    # inf lifts the default for that market, the account default still holds
    r = g.check(mk(size=1000, symbol='ethusdt.sim'))
    assert r.reason == 'max_order_size (default) is 10, order size 1000'
    # account overrides: '<broker>.<account>' and bare '<account>'
    r = g.check(mk(size=4, account='big'))
    assert r.reason == 'max_order_size for account sim.big is 3, order size 4'
    r = g.check(mk(size=2.5, account='small'))
    assert r.reason == 'max_order_size for account sim.small is 2, order size 2.5'
    assert g.refused['max_order_size'] == 5


def test_broker_account_override_wins_field_by_field():
    g = gate(accounts={'sim.paper': {'max_notional': 1000},
                       'paper': {'max_order_size': 2, 'max_notional': 10}})
    assert g.check(mk(size=2, price=400)) is None      # notional 800 < 1000
    assert g.check(mk(size=3, price=1)).reason == (
        'max_order_size for account sim.paper is 2, order size 3')


def test_max_notional():
    g = gate(max_notional=1000, fqmes={'btcusdt.sim': {'max_notional': 500}})
    assert g.check(mk(size=5, price=100)) is None
    r = g.check(mk(size=5.5, price=100))
    assert r.limit == 'max_notional'
    assert r.reason == 'max_notional for btcusdt.sim is 500, order notional 550'
    r = g.check(mk(size=11, price=100, symbol='ethusdt.sim'))
    assert r.reason == 'max_notional (default) is 1000, order notional 1100'


def test_limits_apply_to_modifies():
    g = gate(max_order_size=5)
    order = mk(size=5)
    assert g.check(order) is None
    bigger = order.copy({'size': 6.0})
    r = g.check(bigger, existing=order)
    assert r.reason == 'max_order_size (default) is 5, modify size 6'


def test_alerts_are_exempt_from_limits():
    g = gate(max_order_size=1, max_notional=1, max_open_orders=0, max_orders_per_sec=1,
             state='reduce_only')
    for _ in range(5):
        assert place(g, mk('alert', size=0, price=1e6), session=1) is None
    assert g.working() == 0 and len(g.dialogs.active()) == 5


# ---- open orders ---------------------------------------------------------------

def test_max_open_orders_per_account_and_fqme():
    g = gate(max_open_orders=2, fqmes={'ethusdt.sim': {'max_open_orders': 1}})
    a, b = mk(), mk()
    assert place(g, a) is None and place(g, b) is None   # counted on acceptance
    r = g.check(mk())
    assert r.limit == 'max_open_orders'
    assert r.reason == 'max_open_orders for btcusdt.sim (default) is 2, 2 working already'
    # other market, same account: the account default (2) is full too
    r = g.check(mk(symbol='solusdt.sim'))
    assert r.reason == 'max_open_orders for account sim.paper (default) is 2, 2 working already'
    # another account on another market is free
    assert place(g, mk(symbol='ethusdt.sim', account='other')) is None
    r = g.check(mk(symbol='ethusdt.sim', account='third'))
    assert r.reason == 'max_open_orders for ethusdt.sim is 1, 1 working already'
    # a terminal status frees the slot; a modify does not take one
    venue(g, a, 'canceled')
    assert place(g, b.copy({'price': 99.0})) is None
    c = mk()
    assert place(g, c) is None
    assert g.check(mk()).limit == 'max_open_orders'
    assert g.report().open_by_account == {'sim.other': 1, 'sim.paper': 2}
    assert g.report().open_by_fqme == {'btcusdt.sim': 2, 'ethusdt.sim': 1}


def test_open_orders_count_dark_orders_and_orders_from_elsewhere():
    g = gate(accounts={'paper': {'max_open_orders': 1}})
    full = 'max_open_orders for account sim.paper is 1, 1 working already'
    dark = mk(exec_mode='dark')
    assert place(g, dark) is None
    assert g.check(mk()).reason == full
    trigger(g, dark)  # dark_triggered: its live order is being sent
    assert g.check(mk()).reason == full
    venue(g, dark, 'closed', filled=1.0)
    assert g.check(mk()) is None
    # a dialog the gate did not accept itself: a venue's external order
    publish(g, g.dialogs.on_broker_msg(BrokerdStatus(
        reqid='ext-1', status='open', account='paper', time_ns=1, remaining=1.0,
        req=BrokerdOrder(oid='ext', reqid='ext-1', symbol='btcusdt', action='buy',
                         price=100.0, size=1.0, account='paper', time_ns=1),
    ), 'sim', route='live'))
    assert g.check(mk()).reason == full
    publish(g, g.dialogs.on_broker_msg(BrokerdStatus(
        reqid='ext-1', status='canceled', account='paper', time_ns=2,
    ), 'sim'))
    assert g.check(mk()) is None


def test_max_open_orders_zero_blocks_new_orders_only():
    g = gate(max_open_orders=0)
    order = mk()
    r = g.check(order)
    assert r.reason == 'max_open_orders for btcusdt.sim (default) is 0, 0 working already'


# ---- order rate ----------------------------------------------------------------

def test_token_bucket():
    b = TokenBucket(rate=2.0, capacity=3, now=0.0)
    assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.5)
    assert not b.full(0.25)
    assert b.take(0.5) == 0.0
    assert b.full(10.0)


def test_rate_throttle_per_session():
    clock = Clock()
    g = gate(clock, max_orders_per_sec=2)
    assert place(g, mk(), session='a') is None
    assert place(g, mk(), session='a') is None   # burst = ceil(rate) = 2
    r = place(g, mk(), session='a')
    assert r.limit == 'max_orders_per_sec'
    assert r.reason == ('max_orders_per_sec is 2 (burst 2) per session: '
                        'order refused, retry in 0.500s')
    # another session has its own bucket
    assert place(g, mk(), session='b') is None
    clock.now += 0.5
    assert place(g, mk(), session='a') is None
    assert place(g, mk(), session='a') is not None
    assert g.working() == 4  # refused orders are not counted


def test_rate_counts_modifies_not_refusals():
    clock = Clock()
    g = gate(clock, max_orders_per_sec=1, order_burst=2, max_order_size=5)
    order = mk()
    assert g.check(order, session=1) is None
    # refused by another limit: no token taken
    for _ in range(5):
        assert g.check(mk(size=6), session=1).limit == 'max_order_size'
    modify = order.copy({'price': 101.0})
    assert g.check(modify, existing=order, session=1) is None
    r = g.check(modify.copy({'price': 102.0}), existing=modify, session=1)
    assert r.reason.startswith('max_orders_per_sec is 1 (burst 2) per session: modify refused')


def test_idle_buckets_are_pruned():
    clock = Clock()
    g = gate(clock, max_orders_per_sec=10)
    for s in range(RiskGate._PRUNE_AT):
        g.check(mk(), session=s)
    clock.now += 10
    g.check(mk(), session='new')
    assert len(g._buckets) == 1


# ---- halted ----------------------------------------------------------------------

def test_halted_refuses_everything_new():
    g = gate()
    order = mk(exec_mode='dark')
    assert place(g, order) is None
    alert = mk('alert', size=0)
    assert place(g, alert) is None
    assert g.set_state('halted', 'fat finger') is TradingState.ACTIVE
    for req, existing in ((mk(), None), (mk('alert', size=0), None),
                          (order.copy({'price': 1.0}), order),
                          (alert.copy({'price': 1.0}), alert)):
        r = g.check(req, existing=existing)
        assert r.limit == 'halted'
        assert r.reason == ('trading is halted (fat finger): no new orders or modifies '
                            '(cancels work; `piker ems resume` to trade again)')
    # a resting dark order that triggers is not sent; an alert still fires
    r = g.check_trigger(order.oid)
    assert r.limit == 'halted' and 'triggered dark order was cancelled' in r.reason
    assert g.check_trigger(alert.oid) is None
    g.set_state('active')
    assert g.check(mk()) is None and g.check_trigger(order.oid) is None
    assert g.refused['halted'] == 5


def test_unknown_state():
    with pytest.raises(ValueError, match="unknown trading state 'paused': use one of "
                                         'active, reduce_only, halted'):
        gate().set_state('paused')


# ---- reduce_only -------------------------------------------------------------------

def test_reduce_only_needs_a_position_and_the_opposite_side():
    g = gate(state='reduce_only')
    r = g.check(mk('sell', 1))
    assert r.limit == 'reduce_only'
    assert r.reason == 'reduce_only: no position in btcusdt.sim [sim.paper] to reduce'
    g.observe(position(5))
    r = g.check(mk('buy', 1))
    assert r.reason == ('reduce_only: a buy would not reduce the position in '
                        'btcusdt.sim [sim.paper] (5)')
    assert g.check(mk('sell', 5)) is None
    # other accounts / markets are separate
    assert g.check(mk('sell', 1, account='other')).reason.startswith('reduce_only: no position')
    g.observe(position(-2, symbol='ethusdt.sim'))
    assert g.check(mk('buy', 2, symbol='ethusdt.sim')) is None


def test_reduce_only_counts_working_orders_on_the_same_side():
    g = gate(state='reduce_only')
    g.observe(position(5))
    first = mk('sell', 3)
    assert place(g, first) is None
    r = g.check(mk('sell', 3))
    assert r.reason == ('reduce_only: sell 3 exceeds what is left to reduce in '
                        'btcusdt.sim [sim.paper]: 2 (position 5; working sells 3)')
    assert place(g, mk('sell', 2)) is None
    assert g.check(mk('sell', 0.5)).limit == 'reduce_only'
    # a modify does not count its own old size; growing past the room fails
    assert g.check(first.copy({'size': 3.0, 'price': 90.0}), existing=first) is None
    r = g.check(first.copy({'size': 4.0}), existing=first)
    assert r.reason.startswith('reduce_only: sell 4 exceeds what is left to reduce')
    # shrinking a modify is always fine
    assert g.check(first.copy({'size': 1.0}), existing=first) is None


def test_reduce_only_counts_an_oco_group_once_and_never_against_itself():
    """A take-profit and a stop-loss for one position (a client OCO group)
    fill at most the largest of them together: in reduce_only the second
    exit fits beside the first, a third group counts at its largest."""
    g = gate(state='reduce_only')
    g.observe(position(2))
    tp = mk('sell', 2, 110.0).copy({'oco': 'exit'})
    sl = mk('sell', 2, 90.0, exec_mode='dark').copy({'oco': 'exit'})
    assert place(g, tp) is None
    assert place(g, sl) is None  # was: exceeds what is left to reduce: 0
    # the group counts once, at its largest, for orders outside it
    r = g.check(mk('sell', 0.5))
    assert r.reason == ('reduce_only: sell 0.5 exceeds what is left to reduce in '
                        'btcusdt.sim [sim.paper]: 0 (position 2; working sells 2)')
    # and for another group's members
    other = mk('sell', 1, 120.0).copy({'oco': 'other'})
    assert g.check(other).limit == 'reduce_only'
    # the stop triggering sends its 2: its sibling is no resting sell beside it
    assert g.check_trigger(sl.oid) is None
    # a group smaller than the position leaves room for the rest
    g2 = gate(state='reduce_only')
    g2.observe(position(3))
    for o in (mk('sell', 1, 110.0), mk('sell', 2, 111.0)):
        assert place(g2, o.copy({'oco': 'g'})) is None
    assert place(g2, mk('sell', 1, 112.0)) is None
    assert g2.check(mk('sell', 0.5)).limit == 'reduce_only'


def test_reduce_only_shrinking_an_increasing_order_is_allowed():
    g = gate()
    g.observe(position(5))
    buy = mk('buy', 3)
    assert place(g, buy) is None
    g.set_state('reduce_only')
    assert g.check(buy.copy({'size': 2.0}), existing=buy) is None
    assert g.check(buy.copy({'size': 2.0, 'price': 101.0}), existing=buy).limit == 'reduce_only'


def test_reduce_only_tracks_fills_before_the_position_report():
    g = gate(state='reduce_only')
    g.observe(position(5))
    sell = mk('sell', 3)
    assert place(g, sell) is None
    venue(g, sell, 'open')
    # the fill (and the close) arrive before the new position: the gate
    # counts the fill itself, so the room stays 2, not 5
    fill(g, sell, 3.0)
    assert g.dialogs[sell.oid].phase == 'closed'
    assert g.position('sim', 'paper', FQME) == (5.0, 2.0)
    r = g.check(mk('sell', 3))
    assert r.reason == ('reduce_only: sell 3 exceeds what is left to reduce in '
                        'btcusdt.sim [sim.paper]: 2 (position 2, last reported 5; '
                        'working sells 0)')
    g.observe(position(2))
    assert g.position('sim', 'paper', FQME) == (2.0, 2.0)
    assert g.check(mk('sell', 2)) is None


def test_reduce_only_fails_closed_when_views_disagree():
    g = gate(state='reduce_only')
    g.observe(position(5))
    sell = mk('sell', 5)
    assert place(g, sell) is None
    venue(g, sell, 'open')
    # a venue reporting the position before the fill: the views disagree
    g.observe(position(0))
    fill(g, sell, 5.0)
    assert g.position('sim', 'paper', FQME) == (0.0, -5.0)
    for action in ('buy', 'sell'):
        assert g.check(mk(action, 1)).limit == 'reduce_only'
    g.observe(position(0))
    assert g.check(mk('buy', 1)).reason.startswith('reduce_only: no position')


def test_late_fill_after_terminal_still_moves_the_position():
    g = gate(state='reduce_only')
    g.observe(position(4))
    sell = mk('sell', 2)
    assert place(g, sell) is None
    venue(g, sell, 'canceled')
    fill(g, sell, 2.0)  # after the cancel
    assert g.position('sim', 'paper', FQME) == (4.0, 2.0)
    fill(g, sell, 1.0)  # an over-fill still counts all it sold
    assert g.position('sim', 'paper', FQME) == (4.0, 1.0)


def test_reduce_only_dark_trigger():
    g = gate()
    g.observe(position(2))
    stop = mk('sell', 2, exec_mode='dark')
    grow = mk('buy', 1, exec_mode='dark')
    assert place(g, stop) is None and place(g, grow) is None
    g.set_state('reduce_only')
    assert g.check_trigger(stop.oid) is None
    r = g.check_trigger(grow.oid)
    assert r.limit == 'reduce_only'
    assert r.reason == ('reduce_only: a buy would not reduce the position in btcusdt.sim '
                        '[sim.paper] (2): the triggered dark order was cancelled, not sent')


def test_reduce_only_trigger_checks_the_armed_share_not_all_that_remains():
    """A bracket's exit armed for half its entry's fill sends only that
    half: in reduce_only it fits a position of that half."""
    g = gate()
    g.observe(position(0.5))
    exit_ = mk('sell', 1.0, exec_mode='dark')
    assert place(g, exit_) is None
    g.set_state('reduce_only')
    whole = g.check_trigger(exit_.oid)
    assert whole is not None and 'sell 1 exceeds what is left to reduce' in whole.reason
    assert g.check_trigger(exit_.oid, 0.5) is None
    assert g.check_release(exit_.copy({'size': 0.5, 'exec_mode': 'live'})) is None
    assert g.check_trigger(exit_.oid, 0.75) is not None


# ---- bookkeeping ----------------------------------------------------------------

def test_the_gate_reads_working_orders_from_the_dialog_table():
    """One owner per fact: what works, and what is left of it, is the
    table's; the dialog carries its own reservation (`Dialog.risk`)."""
    g = gate(max_open_orders=5, state='reduce_only')
    g.observe(position(10))
    order = mk('sell', 4)
    assert place(g, order) is None
    venue(g, order, 'open')
    fill(g, order, 1.0)
    dialog = g.dialogs[order.oid]
    assert dialog.remaining == 3.0 and dialog.risk.counted == 1.0
    assert g.position('sim', 'paper', FQME) == (10.0, 9.0)
    # what the reduce-only room counts is the table's remaining size
    assert g.check(mk('sell', 6.0)) is None
    assert g.check(mk('sell', 6.5)).limit == 'reduce_only'
    # statuses without a request, or for alerts, are ignored
    g.observe(Status(oid='x', resp='error', time_ns=1, reason='bad'))
    assert place(g, mk('alert', size=0)) is None
    assert g.working() == 1 and g.report().open_by_fqme == {FQME: 1}
    # restored dialogs (a restarted emsd): their fills so far are in the
    # venue's position report, only later ones move the estimate
    g2 = RiskGate(RiskConf(), dialogs=g.dialogs)
    g2.observe(position(9))
    g2.sync(d.snapshot() for d in g.dialogs.active())
    assert g2.working() == 1
    fill(g2, order, 1.0)
    assert g2.position('sim', 'paper', FQME) == (9.0, 8.0)
    venue(g2, order, 'canceled', filled=2.0)
    assert g2.working() == 0 and g2.report().open_by_fqme == {}
    # the table's index of working dialogs is what a scan of it says
    assert g.dialogs.active() == [d for d in g.dialogs if not d.terminal]
    assert [d.req.action for d in g.dialogs.active()] == ['alert']


def test_report():
    g = gate(max_order_size=5, fqmes={'btcusdt.sim': {'max_notional': 100}})
    g.observe(position(3))
    place(g, mk(size=9))
    place(g, mk(size=1, price=10))
    g.set_state('reduce_only', 'calm down')
    rep = g.report()
    assert rep.state == 'reduce_only' and rep.reason == 'calm down' and rep.since > 0
    assert rep.limits['max_order_size'] == 5
    assert rep.limits['fqmes'] == {'btcusdt.sim': {
        'max_order_size': None, 'max_notional': 100.0, 'max_open_orders': None,
        'price_band': None, 'dark_price_band': None}}
    assert (rep.limits['price_band'], rep.limits['dark_price_band']) == (0.5, 9.0)
    assert rep.open_by_account == {'sim.paper': 1}
    assert rep.positions == {'sim.paper:btcusdt.sim': 3.0}
    assert rep.refused == {'max_order_size': 1}
    assert rep.to_builtins()['state'] == 'reduce_only'


# ---- the persisted switch --------------------------------------------------------

def test_state_survives_restart_and_config_edit_wins(piker_env):
    confdir, _ = piker_env
    conf = RiskConf()
    g = open_risk_gate(conf)
    assert g.state is TradingState.ACTIVE and not (confdir / STATE_FILE).exists()
    assert switch_state(g, 'halted', 'kill') is TradingState.ACTIVE
    saved = load_saved_state()
    assert saved.state is TradingState.HALTED and saved.conf_state is TradingState.ACTIVE
    assert saved.reason == 'kill'
    # a restarted emsd comes back halted
    g2 = open_risk_gate(conf)
    assert g2.state is TradingState.HALTED and g2.reason == 'kill'
    assert g2.since == pytest.approx(saved.since)
    # the config's state edited since: the config wins
    g3 = open_risk_gate(RiskConf(state='reduce_only'))
    assert g3.state is TradingState.REDUCE_ONLY
    # a switch back to the configured state is recorded too
    switch_state(g2, 'active')
    assert open_risk_gate(conf).state is TradingState.ACTIVE


def test_unreadable_state_file_fails_closed(piker_env):
    confdir, _ = piker_env
    (confdir / STATE_FILE).write_text('state = "sideways"\n')
    with pytest.raises(ValueError, match='invalid .*ems_state.toml'):
        load_saved_state()
    g = open_risk_gate(RiskConf())
    assert g.state is TradingState.HALTED
    assert g.reason.startswith('state file unreadable: invalid')
    (confdir / STATE_FILE).write_text('not toml [')
    assert open_risk_gate(RiskConf()).state is TradingState.HALTED


def test_bad_switch_is_not_recorded(piker_env):
    g = open_risk_gate(RiskConf())
    with pytest.raises(ValueError, match='unknown trading state'):
        switch_state(g, 'paused')
    assert load_saved_state() is None and g.state is TradingState.ACTIVE
    save_state(SavedState(state=TradingState.REDUCE_ONLY, conf_state=TradingState.ACTIVE,
                          since=1.0))
    assert open_risk_gate(RiskConf()).state is TradingState.REDUCE_ONLY


# ---- the CLI without pikerd -------------------------------------------------

def test_cli_without_pikerd_records_the_switch(piker_env):
    from typer.testing import CliRunner

    from piker.cli import app

    confdir, _ = piker_env
    runner = CliRunner()
    res = runner.invoke(app, ['ems', 'halt', '-r', 'offline'])
    assert res.exit_code == 0, res.output
    assert 'no pikerd running: recorded halted' in res.output
    assert load_saved_state().state is TradingState.HALTED
    res = runner.invoke(app, ['ems', 'halt', '--cancel-all'])
    assert res.exit_code == 1 and '--cancel-all needs a running emsd' in res.output
    res = runner.invoke(app, ['ems', 'status'])
    assert res.exit_code == 0, res.output
    assert 'showing what emsd would start with' in res.output
    assert 'halted' in res.output and 'offline' in res.output
    (confdir / 'conf.toml').write_text('[ems.risk]\nmax_order_sise = 1\n')
    res = runner.invoke(app, ['ems', 'status'])
    assert res.exit_code == 1 and "unknown key 'ems.risk.max_order_sise'" in res.output


def test_render_status():
    from rich.console import Console

    from piker.cli._ems import render_status

    g = gate(max_order_size=5, max_orders_per_sec=2,
             fqmes={'btcusdt.sim': {'max_notional': float('inf')}},
             accounts={'sim.paper': {'max_open_orders': 3}})
    g.check(mk(size=1))
    g.check(mk(size=9))
    g.set_state('halted', 'why [not]')
    report = g.report().to_builtins()
    report['working'] = g.working()
    console = Console(width=200, record=True, file=open('/dev/null', 'w'))
    for part in render_status(report):
        console.print(part)
    text = console.export_text()
    for want in ('halted', 'why [not]', '2/s per session, burst 2', 'default',
                 'account sim.paper', 'btcusdt.sim', 'no limit', 'max_order_size'):
        assert want in text, want


# ---- price sanity (issue #9, item 5) ------------------------------------------

def test_a_non_finite_notional_is_refused_even_with_no_limits_and_no_market():
    g = gate()
    refusal = g.check(mk(size=10.0, price=1e308), session=1)
    assert refusal is not None and refusal.limit == 'max_notional'
    assert refusal.reason == 'order notional 1e+308 * 10 is not a finite number'
    # an alert too: 1e308 is a typo, not a level
    refusal = g.check(mk('alert', size=1e10, price=1e300), session=1)
    assert refusal is not None and refusal.limit == 'max_notional'
    assert g.working() == 0 and g.refused['max_notional'] == 2


def test_the_live_price_band_is_on_by_default():
    g = gate()
    assert g.check(mk(price=149.0), session=1, mark=100.0) is None
    assert g.check(mk('sell', price=51.0), session=1, mark=100.0) is None
    refusal = g.check(mk(price=1e6), session=1, mark=100.0)
    assert refusal is not None and refusal.limit == 'price_band'
    assert refusal.reason == (
        'price_band (default) is 0.5: order price 1000000 is 999900% away from '
        'the market 100 (allowed 50 to 150)'
    )
    refusal = g.check(mk('sell', price=49.0), session=1, mark=100.0)
    assert refusal is not None and '51% away' in refusal.reason
    # no market price known: the band cannot be checked, the notional is
    assert g.check(mk(price=1e6), session=1) is None
    assert g.check(mk(price=1e6), session=1, mark=math.nan) is None


def test_dark_orders_and_alerts_have_the_wider_dark_band():
    g = gate()
    assert g.check(mk(price=900.0, exec_mode='dark'), session=1, mark=100.0) is None
    assert g.check(mk('alert', price=1000.0), session=1, mark=100.0) is None
    for order in (mk(price=1001.0, exec_mode='dark'), mk('alert', price=1e5)):
        refusal = g.check(order, session=1, mark=100.0)
        assert refusal is not None and refusal.limit == 'dark_price_band', order
        assert 'allowed 0 to 1000' in refusal.reason


def test_price_bands_are_scoped_and_inf_lifts_them():
    g = gate(price_band=0.1, fqmes={'ethusdt.sim': {'price_band': math.inf}},
             accounts={'sim.wide': {'price_band': 0.3}})
    assert g.check(mk(price=111.0), session=1, mark=100.0).limit == 'price_band'
    assert g.check(mk(price=1e4, symbol='ethusdt.sim'), session=1, mark=100.0) is None
    # the most specific setting wins: the market's, then the account's
    assert g.check(mk(price=1e4, symbol='ethusdt.sim', account='wide'),
                   session=1, mark=100.0) is None
    refusal = g.check(mk(price=140.0, account='wide'), session=1, mark=100.0)
    assert refusal.reason.startswith('price_band for account sim.wide is 0.3')
    assert g.check(mk(price=129.0, account='wide'), session=1, mark=100.0) is None
    # modifies are checked too
    order = mk(price=100.0)
    assert g.check(order, session=1, mark=100.0) is None
    moved = order.copy({'price': 200.0})
    assert 'modify price 200' in g.check(moved, existing=order, session=1, mark=100.0).reason


def test_price_bands_in_the_config():
    risk = Conf().ems.risk
    assert (risk.price_band, risk.dark_price_band) == (0.5, 9.0)
    with pytest.raises(Exception, match='price_band'):
        RiskConf.model_validate({'price_band': -1})
    text = _DEFAULTS['conf.toml']
    assert 'price_band = 0.5' in text and 'dark_price_band = 9.0' in text


def test_quote_mark_prefers_the_touch():
    assert quote_mark({'bid': 99.0, 'ask': 100.0, 'last': 65000.0}) == 99.5
    assert quote_mark({'last': 101.0, 'bid': math.nan, 'ask': 100.0}) == 101.0
    assert quote_mark({'ticks': []}, prev=7.0) == 7.0
    assert math.isnan(quote_mark({'bid': 0.0, 'last': None}))
