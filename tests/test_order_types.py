"""Order types, time in force and reduce-only in emsd's pure core.

The dialog table, the dark book (with its trailing index) and the feeds'
arm/quote logic (`DarkFeeds.arm`, `DarkFeeds.on_quote`) run in-process
with an injected clock; no actors. The e2e twin is test_order_types_e2e.py.
"""
from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from piker.accounting import Asset, MktPair
from piker.clearing import (
    Arm,
    BrokerdCancel,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    Disarm,
    Order,
    Status,
    ToVenue,
    Trail,
)
from piker.clearing._dark_feeds import DarkFeed, DarkFeeds
from piker.clearing._dialogs import Dialog, DialogState, DialogTable, Expire
from piker.clearing._expiry import Timers
from piker.clearing._groups import GroupBook
from piker.clearing._matching import PaperBook, RestingOrder
from piker.clearing._order_types import reduce_only_fit
from piker.clearing._risk import RiskGate
from piker.clearing._trailing import TriggerBook, trail_trigger
from piker.config import RiskConf

FQME = 'btcusdt.sim'
PAD = 2  # dark pad ticks of these tests (tick 0.01)


def mk_mkt() -> MktPair:
    return MktPair(
        dst=Asset(name='btc', atype='crypto', tx_tick=Decimal('1e-8')),
        src=Asset(name='usdt', atype='crypto', tx_tick=Decimal('0.01')),
        price_tick=Decimal('0.01'), size_tick=Decimal('0.001'), broker='sim',
    )


class _Fx:
    """What `DarkFeeds` asks of `Effects` here: the group book."""

    def __init__(self, groups: GroupBook) -> None:
        self.groups = groups


class Core:
    """emsd's core for one market at `last`, its effects carried out in
    `Effects`' order (group verdicts, then the dark book first), with a
    settable clock."""

    def __init__(self, last: float = 100.0, risk: RiskGate | None = None) -> None:
        self.now = 1_000
        self.table = DialogTable(clock=lambda: self.now, track_changes=True)
        self.risk = risk or RiskGate()
        self.groups = GroupBook(self.table)
        self.dark = DarkFeeds(None, self.table, _Fx(self.groups), self.risk, PAD)  # type: ignore[arg-type]
        feed = DarkFeed()
        feed.mkt, feed.last = mk_mkt(), last
        feed.ready.set()
        self.dark.feeds[FQME] = feed
        self.venue: list[BrokerdOrder | BrokerdCancel] = []
        self.statuses: list[Status] = []
        self.timers = Timers()
        self._oids = itertools.count()

    def run(self, effects: list) -> list:
        effects = list(effects)
        effects += self.groups.react(effects)
        i = 0
        while i < len(effects):
            eff = effects[i]
            i += 1
            if isinstance(eff, Arm):
                self.dark.arm(eff)
                effects += self.dark.news()
            elif isinstance(eff, Disarm):
                self.dark.disarm(eff.oid)
            elif isinstance(eff, Expire):
                self.timers.add(eff)
            elif isinstance(eff, Status):
                self.statuses.append(eff)
            elif isinstance(eff, ToVenue):
                self.venue.append(eff.msg)
        for eff in effects:
            if isinstance(eff, Status):
                self.risk.observe(eff)
        return effects

    def order(self, action: str, price: float, size: float = 1.0, **kw: Any) -> str:
        oid = kw.pop('oid', None) or f'o{next(self._oids)}'
        self.run(self.table.on_order(Order(
            oid=oid, symbol=FQME, action=action, exec_mode=kw.pop('exec_mode', 'dark'),
            price=price, size=size, account='paper', **kw,
        )))
        return oid

    def tick(self, kind: str, *prices: float) -> list:
        """One quote of `prices` ticks of `kind` (ask/bid/trade)."""
        return self.run(self.dark.on_quote(FQME, {
            'ticks': [{'type': kind, 'price': p, 'size': 1.0} for p in prices],
        }))

    def phase(self, oid: str) -> str:
        return self.table[oid].phase.value

    def sent(self, oid: str) -> list[BrokerdOrder]:
        return [m for m in self.venue if isinstance(m, BrokerdOrder) and m.oid == oid]

    def resps(self, oid: str) -> list[str]:
        return [s.resp for s in self.statuses if s.oid == oid]

    def triggers(self, oid: str) -> list[float | None]:
        return [s.trigger for s in self.statuses if s.oid == oid and s.resp == 'dark_open']

    def venue_event(self, msg: Any) -> None:
        self.run(self.table.on_broker_msg(msg, 'sim'))

    def position(self, size: float) -> None:
        self.risk.observe(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                          size=size, avg_price=100.0))


# ---- trigger semantics, per type and side ----------------------------------------

# (type, action, trigger, kind of tick watched, a price that must not fire,
#  the price that fires, the expected release price)
SEMANTICS = [
    # stop: buy fires on a rise to the trigger, sell on a fall; padded, marketable
    ('stop', 'buy', 105.0, 'ask', 104.99, 105.0, 105.02),
    ('stop', 'sell', 95.0, 'bid', 95.01, 95.0, 94.98),
    # stop_limit: same direction, released at its limit
    ('stop_limit', 'buy', 105.0, 'ask', 104.99, 105.1, 106.0),
    ('stop_limit', 'sell', 95.0, 'bid', 95.01, 94.9, 94.0),
    # take_profit (limit-if-touched): buy on a fall, sell on a rise, at the trigger
    ('take_profit', 'buy', 95.0, 'ask', 95.01, 94.9, 95.0),
    ('take_profit', 'sell', 105.0, 'bid', 104.99, 105.2, 105.0),
]


@pytest.mark.parametrize('kind,action,trigger,src,quiet,fire,release', SEMANTICS,
                         ids=[f'{s[0]}-{s[1]}' for s in SEMANTICS])
def test_trigger_semantics(kind, action, trigger, src, quiet, fire, release):
    core = Core(last=100.0)
    limit = {'limit': 106.0 if action == 'buy' else 94.0} if kind == 'stop_limit' else {}
    oid = core.order(action, trigger, type=kind, **limit)
    assert core.resps(oid) == ['dark_open'] and core.triggers(oid) == [trigger]
    # the other side's ticks never fire it; a price short of the trigger neither
    other = 'bid' if src == 'ask' else 'ask'
    core.tick(other, fire)
    core.tick(src, quiet)
    assert core.phase(oid) == 'dark_open' and not core.sent(oid)
    core.tick(src, fire)
    assert core.phase(oid) == 'dark_triggered'
    (cmd,) = core.sent(oid)
    assert cmd.price == release and cmd.action == action and cmd.size == 1.0


@pytest.mark.parametrize('kind,action,trigger', [
    ('stop', 'buy', 95.0),        # a stop buy below the market: fires on the next ask
    ('take_profit', 'sell', 95.0),  # a take-profit sell below the market: likewise
])
def test_trigger_direction_is_the_types_not_the_markets(kind, action, trigger):
    core = Core(last=100.0)
    oid = core.order(action, trigger, type=kind)
    core.tick('ask' if action == 'buy' else 'bid', 100.0)
    assert core.phase(oid) == 'dark_triggered'


def test_dark_limit_keeps_its_market_direction():
    """A dark limit buy above the market fires on a rise (today's rule); a
    take-profit buy at the same level fires on a fall."""
    core = Core(last=100.0)
    lim = core.order('buy', 105.0)
    tp = core.order('buy', 105.0, type='take_profit')
    assert core.table[lim].direction == 'up' and core.table[tp].direction == 'down'
    core.tick('ask', 104.0)
    assert core.phase(lim) == 'dark_open' and core.phase(tp) == 'dark_triggered'
    core.tick('ask', 105.0)
    assert core.phase(lim) == 'dark_triggered'
    assert core.sent(lim)[0].price == 105.02  # padded from the tick, as before


def test_modify_rearms_with_new_type_and_trigger():
    core = Core(last=100.0)
    oid = core.order('sell', 95.0, type='stop')
    core.run(core.table.on_order(Order(
        oid=oid, symbol=FQME, action='sell', exec_mode='dark', price=105.0, size=1.0,
        account='paper', type='take_profit',
    )))
    assert core.triggers(oid) == [95.0, 105.0]
    core.tick('bid', 95.0)  # the old stop would have fired
    assert core.phase(oid) == 'dark_open'
    core.tick('bid', 105.0)
    assert core.sent(oid)[0].price == 105.0


# ---- trailing stops ---------------------------------------------------------------

@pytest.mark.parametrize('trail,start,up,expect', [
    (Trail(5), 99.95, 101.0, 100.95),                 # 5 ticks of 0.01
    (Trail(1.0, 'pct'), 99.0, 110.0, 108.9),           # 1 % of the best
])
def test_trailing_sell_follows_and_never_retreats(trail, start, up, expect):
    core = Core(last=100.0)
    oid = core.order('sell', 0.0, type='trailing_stop', trail=trail)
    # price 0: the trail starts from the market
    assert core.triggers(oid)[-1] == start
    core.tick('bid', up)
    assert core.triggers(oid)[-1] == expect
    n = len(core.triggers(oid))
    core.tick('bid', (up + expect) / 2)  # a dip short of the trigger: it stays
    core.tick('trade', expect + 0.01)
    assert core.triggers(oid)[-1] == expect and len(core.triggers(oid)) == n
    assert core.phase(oid) == 'dark_open'
    core.tick('bid', expect)
    assert core.phase(oid) == 'dark_triggered'
    assert core.sent(oid)[0].price == round(expect - PAD * 0.01, 2)


def test_trailing_buy_follows_down_and_fires_on_the_rise():
    core = Core(last=100.0)
    oid = core.order('buy', 100.5, type='trailing_stop', trail=Trail(10))
    assert core.triggers(oid) == [100.5]  # a given trigger is where it starts
    core.tick('ask', 99.0, 98.0)  # the best is 98: trigger 98.10
    assert core.triggers(oid)[-1] == 98.1
    core.tick('ask', 98.05)
    assert core.phase(oid) == 'dark_open' and core.triggers(oid)[-1] == 98.1
    core.tick('ask', 98.1)
    assert core.sent(oid)[0].price == 98.12


def test_trail_moves_are_conflated_per_quote():
    """A quote of many new highs moves the trigger once (its last), and a
    move below one tick is no news."""
    core = Core(last=100.0)
    core.order('sell', 0.0, type='trailing_stop', trail=Trail(5))
    before = len(core.statuses)
    core.tick('bid', *[100.0 + i * 0.01 for i in range(1, 50)])
    moved = core.statuses[before:]
    assert [s.trigger for s in moved] == [100.44] and moved[0].resp == 'dark_open'
    assert moved[0].brokerd_msg == {'trigger': 100.44, 'anchor': 100.49}
    core.tick('bid', 100.495)  # a sub-tick new best: the trigger cannot move
    assert len(core.statuses) == before + 1


def test_trailing_index_is_not_scanned(monkeypatch):
    """A quote moves only the trails whose move price it reaches: the
    others are not even looked at."""
    from piker.clearing import _trailing

    core = Core(last=100.0)
    near = core.order('sell', 0.0, type='trailing_stop', trail=Trail(1))
    far = [core.order('sell', 0.0, type='trailing_stop', trail=Trail(1, 'pct'))
           for _ in range(200)]
    calls = []
    real = _trailing.trail_trigger
    monkeypatch.setattr(_trailing, 'trail_trigger', lambda *a: calls.append(a) or real(*a))
    core.tick('bid', 100.01)  # moves the 1-tick trail, not a 1 % one
    assert core.triggers(near)[-1] == 100.0 and len(calls) == 1
    # each said only its start: placed (no trigger yet), armed at the market's
    assert all(core.triggers(o) == [None, 99.0] for o in far)
    assert core.dark.book.trailing(far[0]) == (99.0, 100.0)


def test_trailing_state_survives_a_journal_round_trip():
    core = Core(last=100.0)
    oid = core.order('sell', 0.0, type='trailing_stop', trail=Trail(5))
    core.tick('bid', 102.0)
    dialog = core.table[oid]
    raw = msgspec.msgpack.encode(dialog.state())
    state = msgspec.msgpack.decode(raw, type=DialogState)
    assert (state.trail_trigger, state.trail_anchor) == (101.95, 102.0)
    # a restarted emsd re-arms it there, in its direction, and it trails on
    fresh = Core(last=90.0)  # the market fell meanwhile, through the trigger
    arms = fresh.table.restore([Dialog.from_state(state, dialog.history)])
    (arm,) = [a for a in arms if isinstance(a, Arm)]
    assert (arm.level, arm.anchor, arm.direction) == (101.95, 102.0, 'down')
    fresh.run(arms)
    fresh.tick('bid', 90.0)
    assert fresh.phase(oid) == 'dark_triggered'


# ---- time in force ------------------------------------------------------------------

def test_tif_goes_to_the_venue():
    core = Core()
    for tif in ('ioc', 'fok', 'gtc'):
        oid = core.order('buy', 99.0, exec_mode='live', tif=tif)
        assert core.sent(oid)[0].tif == tif
    gtd = core.order('buy', 99.0, exec_mode='live', tif='gtd', expires_ns=5_000)
    assert core.sent(gtd)[0].tif == 'gtc'  # emsd enforces gtd itself
    stop = core.order('buy', 101.0, type='stop', tif='ioc')
    core.tick('ask', 101.0)
    assert core.sent(stop)[0].tif == 'ioc'


def test_gtd_dark_order_expires_on_the_clock():
    core = Core()
    oid = core.order('sell', 95.0, type='stop', tif='gtd', expires_ns=5_000)
    assert core.timers.next_at() == 5_000
    core.now = 4_999
    assert core.timers.due(core.now) == []
    assert core.table.on_expire(oid, 5_000) == []  # early: nothing
    core.now = 5_000
    (eff,) = core.timers.due(core.now)
    core.run(core.table.on_expire(eff.oid, eff.at_ns))
    assert core.resps(oid)[-1] == 'expired' and core.phase(oid) == 'expired'
    assert 'gtd: expired' in core.statuses[-1].reason
    core.tick('bid', 90.0)  # out of the book
    assert not core.sent(oid)


def test_gtd_live_order_is_cancelled_and_ends_expired_with_its_fills():
    core = Core()
    oid = core.order('buy', 99.0, size=2.0, exec_mode='live', tif='gtd', expires_ns=5_000)
    core.venue_event(BrokerdOrderAck(oid=oid, reqid='r1', account='paper'))
    core.venue_event(BrokerdStatus(reqid='r1', status='open', account='paper', time_ns=1,
                                   remaining=2.0))
    core.venue_event(BrokerdFill(reqid='r1', tid='t1', action='buy', size=0.5, price=99.0,
                                 broker_time=1.0, time_ns=1))
    core.now = 6_000
    core.run(core.table.on_expire(oid, 5_000))
    cancel = core.venue[-1]
    assert isinstance(cancel, BrokerdCancel) and cancel.reqid == 'r1'
    core.venue_event(BrokerdStatus(reqid='r1', status='canceled', account='paper',
                                   time_ns=1, filled=0.5, remaining=1.5))
    end = core.statuses[-1]
    assert (end.resp, end.filled, end.remaining) == ('expired', 0.5, 1.5)
    # a fill after all is the truth: a venue that filled it all closes it
    core2 = Core()
    o2 = core2.order('buy', 99.0, exec_mode='live', tif='gtd', expires_ns=5_000)
    core2.venue_event(BrokerdOrderAck(oid=o2, reqid='r2', account='paper'))
    core2.now = 6_000
    core2.run(core2.table.on_expire(o2, 5_000))
    core2.venue_event(BrokerdStatus(reqid='r2', status='closed', account='paper',
                                    time_ns=1, filled=1.0))
    assert core2.resps(o2)[-1] == 'closed'


def test_gtd_cancel_refused_is_retried_and_still_ends_expired():
    """The venue was unreachable when the expiry cancel went out: it is
    sent again later, and the order still ends 'expired'."""
    from piker.clearing import BrokerdError
    from piker.clearing._dialogs import EXPIRE_RETRY_NS

    core = Core()
    oid = core.order('buy', 99.0, exec_mode='live', tif='gtd', expires_ns=5_000)
    core.venue_event(BrokerdOrderAck(oid=oid, reqid='r1', account='paper'))
    core.now = 6_000
    (due,) = core.timers.due(core.now)
    core.run(core.table.on_expire(due.oid, due.at_ns))
    core.venue_event(BrokerdError(oid=oid, reqid='r1', reason='venue sim is not connected'))
    assert core.phase(oid) == 'acked' and 'cancel rejected' in core.statuses[-1].reason
    assert core.timers.next_at() == 6_000 + EXPIRE_RETRY_NS
    core.now += EXPIRE_RETRY_NS
    (retry,) = core.timers.due(core.now)
    core.run(core.table.on_expire(retry.oid, retry.at_ns))
    assert [type(m).__name__ for m in core.venue] == ['BrokerdOrder', 'BrokerdCancel',
                                                      'BrokerdCancel']
    core.venue_event(BrokerdStatus(reqid='r1', status='canceled', account='paper', time_ns=1))
    assert core.resps(oid)[-1] == 'expired'


def test_gtd_modify_moves_the_expiry():
    core = Core()
    oid = core.order('sell', 95.0, type='stop', tif='gtd', expires_ns=5_000)
    core.order('sell', 95.0, type='stop', tif='gtd', expires_ns=9_000, oid=oid)
    core.now = 6_000
    assert core.table.on_expire(oid, 5_000) == []  # the old timer is stale
    core.now = 9_000
    core.run(core.table.on_expire(oid, 9_000))
    assert core.phase(oid) == 'expired'


def test_gtd_expired_while_down_expires_on_restore():
    core = Core()
    oid = core.order('sell', 95.0, type='stop', tif='gtd', expires_ns=5_000)
    state, history = core.table[oid].state(), core.table[oid].history
    fresh = Core()
    fresh.now = 10_000
    effects = fresh.table.restore([Dialog.from_state(state, history)])
    fresh.run(effects)
    (due,) = fresh.timers.due(fresh.now)
    fresh.run(fresh.table.on_expire(due.oid, due.at_ns))
    assert fresh.phase(oid) == 'expired'


def test_timers_ring_in_order_once():
    t = Timers()
    assert t.add(Expire(oid='b', at_ns=20))
    assert t.add(Expire(oid='a', at_ns=10))
    assert not t.add(Expire(oid='a', at_ns=10))  # once
    assert not t.add(Expire(oid='c', at_ns=30))
    assert [e.oid for e in t.due(25)] == ['a', 'b'] and len(t) == 1


@pytest.mark.parametrize('tif,avail,fills,rests', [
    ('gtc', 0.4, [0.4], True),
    ('ioc', 0.4, [0.4], False),
    ('ioc', 0.0, [], False),
    ('fok', 0.4, [], False),
    ('fok', 1.0, [1.0], False),
])
def test_paper_book_ioc_fok(tif, avail, fills, rests):
    book = PaperBook(FQME)
    book.on_quote({'ticks': [{'type': 'ask', 'price': 100.0, 'size': avail or 1.0}]})
    if not avail:
        book.on_quote({'ticks': [{'type': 'ask', 'price': 101.0, 'size': 1.0}]})
    order = RestingOrder(reqid='r', oid='o', fqme=FQME, action='buy', price=100.0,
                         size=1.0, account='paper')
    got = book.submit(order, tif)
    assert [f.size for f in got] == fills
    assert ('r' in book.orders) is rests


# ---- reduce-only --------------------------------------------------------------------

def _ro(action: str, size: float) -> Order:
    return Order(oid='x', symbol=FQME, action=action, exec_mode='live', price=100.0,
                 size=size, account='paper', reduce_only=True)


def test_reduce_only_fit():
    assert reduce_only_fit(_ro('sell', 1.0), 2.0, 2.0) == (1.0, '')
    size, note = reduce_only_fit(_ro('sell', 3.0), 2.0, 2.0)
    assert size == 2.0 and 'sized down from 3 to 2' in note
    size, note = reduce_only_fit(_ro('buy', 1.0), 2.0, 2.0)  # would grow a long
    assert size == 0 and 'increase or flip' in note
    size, note = reduce_only_fit(_ro('sell', 1.0), 0.0, 0.0)
    assert size == 0 and 'no position' in note
    # the views disagree (a fill since the report flipped it): refused
    size, note = reduce_only_fit(_ro('sell', 1.0), 1.0, -0.5)
    assert size == 0


def test_reduce_only_stop_refuses_a_flip_at_release():
    """Placed against a long; by its trigger the position is short: the
    sell would grow it, so it is cancelled, not sent."""
    core = Core()
    core.position(2.0)
    oid = core.order('sell', 95.0, type='stop', reduce_only=True, size=1.0)
    core.position(-1.0)
    core.tick('bid', 95.0)
    assert not core.sent(oid) and core.phase(oid) == 'canceled'
    assert 'would increase or flip' in core.statuses[-1].reason


def test_reduce_only_stop_sized_down_at_release():
    core = Core()
    core.position(3.0)
    oid = core.order('sell', 95.0, type='stop', reduce_only=True, size=3.0)
    core.position(1.0)  # partly closed meanwhile
    core.tick('bid', 95.0)
    (cmd,) = core.sent(oid)
    assert cmd.size == 1.0
    st = core.statuses[-1]
    assert st.resp == 'dark_triggered' and st.req.size == 1.0 and 'sized down' in st.reason


# ---- risk at release -------------------------------------------------------------------

def test_trigger_order_is_risk_checked_at_release():
    """A stop_limit whose limit breaks max_notional is cancelled when it
    fires (placed, its trigger passed); a reduce-only one is not exposure."""
    risk = RiskGate(RiskConf(max_notional=10_000.0))
    core = Core(risk=risk)
    assert risk.check(Order(oid='p', symbol=FQME, action='buy', exec_mode='dark',
                            price=90.0, size=100.0, account='paper', type='stop_limit',
                            limit=120.0)) is None
    core.order('buy', 90.0, size=100.0, type='stop_limit', limit=120.0, oid='p')
    core.tick('ask', 90.0)
    assert not core.sent('p') and core.phase('p') == 'canceled'
    assert 'max_notional' in core.statuses[-1].reason
    core.position(-200.0)
    ro = Order(oid='q', symbol=FQME, action='buy', exec_mode='dark', price=90.0,
               size=150.0, account='paper', type='stop', reduce_only=True)
    assert risk.check(ro) is None  # 13500 notional, but it only reduces
    core.order('buy', 90.0, size=150.0, type='stop', reduce_only=True, oid='q')
    core.tick('ask', 90.0)
    assert core.sent('q')[0].size == 150.0


def _place(risk: RiskGate, order: Order) -> None:
    """Check `order` and, accepted, hand it to the gate's dialog table (the
    gate counts the table's working orders)."""
    assert risk.check(order) is None
    for eff in risk.dialogs.on_client_msg(order, owner=1, route='paper'):
        if isinstance(eff, Status):
            risk.observe(eff)


def test_bracket_children_and_reduce_only_orders_add_no_exposure():
    """A reduce-only order and a bracket child are neither checked against
    nor counted toward max_open_orders (issue 15: reduce-only children
    never count as new exposure); a plain order still is."""
    risk = RiskGate(RiskConf(max_open_orders=1, max_order_size=1.0))

    def mk(oid: str, **kw: Any) -> Order:
        return Order(oid=oid, symbol=FQME, action=kw.pop('action', 'sell'), exec_mode='dark',
                     price=105.0, size=kw.pop('size', 2.0), account='paper', **kw)

    _place(risk, mk('ro', reduce_only=True))
    _place(risk, mk('kid', type='take_profit', parent='e', oco='g'))
    _place(risk, mk('a', size=1.0))  # nothing counted before it
    refusal = risk.check(mk('b', size=1.0))
    assert refusal is not None and refusal.reason.endswith('1 working already')
    assert risk.report().open_by_account == {'sim.paper': 1}
    # and they come off as they went on
    for oid in ('ro', 'kid', 'a'):
        for eff in risk.dialogs.on_cancel(oid, owner=1):
            if isinstance(eff, Status):
                risk.observe(eff)
    assert risk.report().open_by_account == {}


def test_reduce_only_state_releases_a_bracket_child_despite_its_held_sibling():
    """Trading state reduce_only: a stop-loss child that fires may close the
    position even though its take-profit sibling is held for all of it
    (the group book keeps the two from closing more than the entry)."""
    risk = RiskGate()
    risk.observe(BrokerdPosition(broker='sim', account='paper', symbol=FQME, size=1.0,
                                 avg_price=100.0))
    for oid, kind, price in (('tp', 'take_profit', 110.0), ('sl', 'stop', 90.0)):
        _place(risk, Order(oid=oid, symbol=FQME, action='sell', exec_mode='dark',
                           price=price, size=1.0, account='paper', type=kind,
                           reduce_only=True, parent='e', oco='g'))
    risk.set_state('reduce_only')
    assert risk.check_trigger('sl') is None


# ---- bracket children of trigger types (groups) ------------------------------------

def _bracket(core: Core, size: float = 2.0, tp: float = 105.0, sl: float = 95.0) -> None:
    """A live buy entry `e` (acked as r1) with a take-profit `tp` and a
    stop `sl`, reduce-only children as `client.bracket()` makes them."""
    core.order('buy', 100.0, size=size, exec_mode='live', oid='e')
    for oid, kind, price in (('tp', 'take_profit', tp), ('sl', 'stop', sl)):
        core.order('sell', price, size=size, type=kind, reduce_only=True,
                   parent='e', oco='g', oid=oid)
    core.venue_event(BrokerdOrderAck(oid='e', reqid='r1', account='paper'))


def _entry_fill(core: Core, size: float, tid: str) -> None:
    core.venue_event(BrokerdFill(reqid='r1', tid=tid, action='buy', size=size, price=100.0,
                                 broker_time=1.0, time_ns=1))


def test_bracket_child_armed_later_fires_the_way_its_type_says():
    """A take-profit sell armed when the market is already above it fires
    on the next bid (its type's direction), not on a fall back to it (what
    the market would make of a limit); released for its armed share, at its
    trigger, with no reduce-only note (nothing was sized down)."""
    core = Core(last=100.0)
    _bracket(core)
    assert core.resps('tp') == ['held'] and core.resps('sl') == ['held']
    core.dark.feeds[FQME].last = 106.0
    _entry_fill(core, 1.0, 't1')
    core.position(1.0)
    assert core.phase('tp') == 'dark_open' and core.statuses[-1].armed == 1.0
    core.tick('bid', 106.0)
    (cmd,) = core.sent('tp')
    assert (cmd.size, cmd.price) == (1.0, 105.0)
    st = next(s for s in core.statuses if s.oid == 'tp' and s.resp == 'dark_triggered')
    assert st.req.size == 1.0 and st.reason == ''
    # the stop guards the rest while the take-profit works at the venue
    assert core.phase('sl') == 'held'


def test_bracket_child_sized_down_to_a_smaller_position_at_release():
    """Armed for the whole entry, but the position was partly closed
    elsewhere: the reduce-only child goes out for the position, saying so."""
    core = Core(last=100.0)
    _bracket(core)
    _entry_fill(core, 2.0, 't1')
    core.position(1.5)
    core.tick('bid', 105.0)
    (cmd,) = core.sent('tp')
    assert cmd.size == 1.5
    st = next(s for s in core.statuses if s.oid == 'tp' and s.resp == 'dark_triggered')
    assert st.req.size == 1.5 and 'reduce_only: sized down from 2 to 1.5' in st.reason


# ---- trailing stops against a brute-force model -------------------------------------

@settings(max_examples=150, deadline=None)
@given(
    action=hs.sampled_from(['buy', 'sell']),
    trail=hs.one_of(
        hs.integers(1, 40).map(lambda n: Trail(n)),
        hs.sampled_from([0.1, 0.5, 1.0, 2.5]).map(lambda p: Trail(p, 'pct')),
    ),
    steps=hs.lists(hs.integers(-30, 30), min_size=1, max_size=60),
)
def test_trailing_matches_the_model_and_never_retreats(action, trail, steps):
    """Over a random path of watched ticks the index agrees with the
    obvious O(n) model: trigger = the best of (start, f(best seen)),
    never worse; it fires on the first tick through it, once."""
    tick = Decimal('0.01')
    book = TriggerBook()
    book.arm_trailing('t', FQME, action, trail, level=0, anchor=None, last_price=100.0,
                      size=1.0, price_tick=tick, pad_ticks=0)
    model = trail_trigger(100.0, action, trail, tick)
    better = (lambda a, b: a > b) if action == 'sell' else (lambda a, b: a < b)
    crossed = (lambda p, t: p <= t) if action == 'sell' else (lambda p, t: p >= t)
    src = 'bid' if action == 'sell' else 'ask'
    price = 100.0
    seen: list[float] = [model]
    for step in steps:
        price = max(round(price + step * 0.01, 2), 1.0)
        fired = book.process_quote(FQME, {'ticks': [{'type': src, 'price': price}]})
        if crossed(price, model):
            assert [f.oid for f in fired] == ['t'] and fired[0].level == model
            assert 't' not in book and book.trailing('t') is None
            break
        assert not fired
        new = trail_trigger(price, action, trail, tick)
        if better(new, model):
            model = new
        (trigger, _anchor) = book.trailing('t')
        assert trigger == model
        assert not better(seen[-1], trigger)  # never moved back
        seen.append(trigger)
