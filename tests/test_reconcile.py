"""`VenueSync`: emsd's dialogs reconciled with a venue's order report after
a reconnect (pure: a `DialogTable` and hand-written reports)."""
from __future__ import annotations

import itertools
from typing import Any

from piker.clearing import (
    BrokerdCancel,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdOrdersSynced,
    BrokerdStatus,
    DialogTable,
    Order,
    Phase,
    Status,
    ToVenue,
)
from piker.clearing._reconcile import NOT_AT_VENUE, VenueSync

FQME = 'btcusdt.sim'
BROKER = 'sim'
VENUE = 'paperboi.sim'
_tids = itertools.count()


def mk_order(oid: str, **kw: Any) -> Order:
    fields = dict(oid=oid, symbol=FQME, action='buy', exec_mode='live',
                  price=100.0, size=2.0, account='paper')
    fields.update(kw)
    return Order(**fields)


def announce(reqid: str, oid: str = '', price: float = 100.0, size: float = 2.0,
             filled: float = 0.0, req_oid: str = '') -> BrokerdStatus:
    return BrokerdStatus(
        reqid=reqid, oid=oid, status='open', account='paper', time_ns=1,
        filled=filled, remaining=size - filled,
        req=BrokerdOrder(oid=req_oid or oid or 'venue-side', reqid=reqid, symbol='btcusdt',
                         action='buy', price=price, size=size, account='paper',
                         time_ns=1),
    )


def fill(reqid: str, oid: str = '', size: float = 1.0, tid: str | None = None) -> BrokerdFill:
    return BrokerdFill(reqid=reqid, oid=oid, tid=tid or f't{next(_tids)}', action='buy',
                       size=size, price=100.0, broker_time=1.0, time_ns=1)


def statuses(effects: list) -> list[Status]:
    return [e for e in effects if isinstance(e, Status)]


class World:
    """A table with dialogs in chosen phases, all routed to the venue."""

    def __init__(self) -> None:
        self.table = DialogTable()
        self.others: set[str] = set()  # dialogs routed elsewhere

    def sync(self) -> VenueSync:
        return VenueSync(self.table, BROKER, VENUE, route='paper')

    def pending(self, oid: str, **kw: Any) -> None:
        route = 'live' if oid in self.others else 'paper'
        self.table.on_order(mk_order(oid, **kw), route=route)  # type: ignore[arg-type]

    def open(self, oid: str, reqid: str, **kw: Any) -> None:
        self.pending(oid, **kw)
        self.table.on_broker_msg(BrokerdOrderAck(oid=oid, reqid=reqid, account='paper'), BROKER)
        self.table.on_broker_msg(BrokerdStatus(
            reqid=reqid, oid=oid, status='open', account='paper', time_ns=1,
            remaining=kw.get('size', 2.0)), BROKER)
        assert self.table[oid].phase is Phase.OPEN

    def phase(self, oid: str) -> Phase:
        return self.table[oid].phase


def test_a_known_working_order_is_confirmed_without_news():
    w = World()
    w.open('a', 'r-a')
    sync = w.sync()
    assert statuses(sync.on_msg(announce('r-a', 'a'))) == []
    assert sync.finish(BrokerdOrdersSynced(reqids=['r-a'])) == []
    assert w.phase('a') is Phase.OPEN


def test_missed_fills_are_applied_once_and_close_the_dialog():
    w = World()
    w.open('a', 'r-a')
    f1, f2 = fill('r-a', 'a'), fill('r-a', 'a')
    w.table.on_broker_msg(f1, BROKER)  # emsd saw the first one already
    sync = w.sync()
    effects = sync.on_msg(f1) + sync.on_msg(f2)
    assert [s.resp for s in statuses(effects)] == ['fill', 'closed']
    closed = BrokerdStatus(reqid='r-a', oid='a', status='closed', account='paper',
                           time_ns=1, filled=2.0)
    assert statuses(sync.on_msg(closed)) == []  # a second end is dropped
    assert sync.finish(BrokerdOrdersSynced()) == []
    assert w.phase('a') is Phase.CLOSED


def test_a_dialog_the_venue_does_not_list_is_resolved():
    w = World()
    w.open('gone', 'r-g')
    w.open('filled', 'r-f')
    w.table.on_broker_msg(fill('r-f', 'filled', size=2.0), BROKER)
    w.open('kept', 'r-k')
    w.others.add('elsewhere')
    w.open('elsewhere', 'r-e')
    w.pending('never')        # sent, never acked, unknown to the venue
    w.table.on_order(mk_order('dark', exec_mode='dark'))
    sync = w.sync()
    sync.on_msg(announce('r-k', 'kept'))
    effects = sync.finish(BrokerdOrdersSynced(reqids=['r-k']))
    by_oid = {s.oid: s for s in statuses(effects)}
    assert set(by_oid) == {'gone', 'never'}
    assert by_oid['gone'].resp == 'canceled' and by_oid['gone'].reason == NOT_AT_VENUE
    assert by_oid['never'].resp == 'error' and NOT_AT_VENUE in by_oid['never'].reason
    assert w.phase('kept') is Phase.OPEN and w.phase('elsewhere') is Phase.OPEN
    assert w.phase('dark') is Phase.DARK_OPEN
    assert sorted(sync.resolved) == ['gone', 'never']


def test_a_filled_dialog_not_listed_ends_closed():
    w = World()
    w.open('a', 'r-a')
    # the venue reported it all filled; its fills and 'closed' were lost
    w.table.on_broker_msg(BrokerdStatus(reqid='r-a', oid='a', status='open',
                                        account='paper', time_ns=1, filled=2.0), BROKER)
    assert w.phase('a') is Phase.OPEN and w.table['a'].fully_filled
    effects = w.sync().finish(BrokerdOrdersSynced())
    (st,) = statuses(effects)
    assert st.oid == 'a' and st.resp == 'closed' and st.reason == NOT_AT_VENUE
    assert st.filled == 2.0 and st.remaining == 0.0


def test_a_lost_ack_is_made_from_the_report():
    w = World()
    w.pending('a')
    sync = w.sync()
    effects = sync.on_msg(announce('r-a', 'a'))
    assert [s.resp for s in statuses(effects)] == ['open']
    assert w.table['a'].reqid == 'r-a'
    assert w.table.by_reqid(BROKER, 'r-a') is w.table['a']
    assert sync.finish(BrokerdOrdersSynced(reqids=['r-a'])) == []


def test_a_lost_ack_of_an_order_filled_meanwhile():
    w = World()
    w.pending('a')
    sync = w.sync()
    effects = sync.on_msg(fill('r-a', 'a', size=2.0))
    assert [s.resp for s in statuses(effects)] == ['fill', 'closed']
    assert sync.finish(BrokerdOrdersSynced()) == []


def test_a_cancel_stashed_before_the_lost_ack_goes_out():
    w = World()
    w.pending('a')
    w.table.on_cancel('a')
    assert w.phase('a') is Phase.CANCEL_STASHED
    effects = w.sync().on_msg(announce('r-a', 'a'))
    cmds = [e.msg for e in effects if isinstance(e, ToVenue)]
    assert len(cmds) == 1 and isinstance(cmds[0], BrokerdCancel) and cmds[0].reqid == 'r-a'
    assert w.phase('a') is Phase.CANCELING


def test_an_unknown_working_order_becomes_one_external_dialog():
    w = World()
    w.open('taken', 'r-1')
    sync = w.sync()
    # a venue's own id for it is an oid emsd already uses: a fresh one
    ann = announce('r-x', price=90.0, req_oid='taken')
    effects = sync.on_msg(ann)
    (st,) = statuses(effects)
    assert st.oid != 'taken' and st.resp == 'open' and st.req.price == 90.0
    ext = w.table.by_reqid(BROKER, 'r-x')
    assert ext is not None and ext.external and ext.oid == st.oid
    # announced again on the next reconnect: the same dialog, no news
    assert statuses(w.sync().on_msg(ann)) == []
    assert len(w.table.active()) == 2
    assert sync.finish(BrokerdOrdersSynced(reqids=['r-1', 'r-x'])) == []


def test_past_events_of_untracked_orders_are_dropped():
    w = World()
    sync = w.sync()
    assert sync.on_msg(fill('r-old', 'forgotten')) == []
    assert sync.on_msg(BrokerdStatus(reqid='r-old', status='closed', account='paper',
                                     time_ns=1)) == []
    assert sync.dropped == 2 and w.table.orphans() == 0


def test_an_applied_modify_is_confirmed_a_lost_one_refused():
    w = World()
    w.open('applied', 'r-a')
    w.table.on_order(mk_order('applied', price=101.0))
    w.open('lost', 'r-l')
    w.table.on_order(mk_order('lost', price=99.0))
    sync = w.sync()
    (st,) = statuses(sync.on_msg(announce('r-a', 'applied', price=101.0)))
    assert st.resp == 'open' and st.req.price == 101.0
    assert w.table['applied'].outstanding == []
    (st,) = statuses(sync.on_msg(announce('r-l', 'lost', price=100.0)))
    assert st.resp == 'open' and st.req.price == 100.0 and 'modify rejected' in st.reason
    assert w.table['lost'].outstanding == []


def test_a_lost_cancel_is_sent_again():
    w = World()
    w.open('a', 'r-a')
    w.table.on_cancel('a')
    assert w.phase('a') is Phase.CANCELING
    effects = w.sync().on_msg(announce('r-a', 'a'))
    assert 'cancel rejected' in statuses(effects)[0].reason
    cmds = [e.msg for e in effects if isinstance(e, ToVenue)]
    assert len(cmds) == 1 and isinstance(cmds[0], BrokerdCancel)
    assert w.phase('a') is Phase.CANCELING
    done = BrokerdStatus(reqid='r-a', oid='a', status='canceled', account='paper', time_ns=1)
    assert [s.resp for s in statuses(w.table.on_broker_msg(done, BROKER))] == ['canceled']


def test_a_cancel_the_venue_did_apply_is_confirmed_by_its_replay():
    w = World()
    w.open('a', 'r-a')
    w.table.on_cancel('a')
    sync = w.sync()
    done = BrokerdStatus(reqid='r-a', oid='a', status='canceled', account='paper', time_ns=1)
    assert [s.resp for s in statuses(sync.on_msg(done))] == ['canceled']
    assert sync.finish(BrokerdOrdersSynced()) == []


def test_a_modify_waiting_behind_one_in_flight_goes_out_after_the_report():
    """The modify in flight when the connection dropped is settled by the
    report (applied or lost); the one waiting behind it is sent then."""
    for venue_price, in_flight_ok in ((101.0, True), (100.0, False)):
        w = World()
        w.open('a', 'r-a')
        w.table.on_order(mk_order('a', price=101.0))      # in flight
        assert [e for e in w.table.on_order(mk_order('a', price=102.0))
                if isinstance(e, ToVenue)] == []           # waits behind it
        effects = w.sync().on_msg(announce('r-a', 'a', price=venue_price))
        cmds = [e.msg for e in effects if isinstance(e, ToVenue)]
        assert [(c.reqid, c.price) for c in cmds] == [('r-a', 102.0)], in_flight_ok
        if not in_flight_ok:
            assert any('modify rejected' in s.reason for s in statuses(effects))
        dialog = w.table['a']
        assert dialog.stashed_modify is None and dialog.req.price == 102.0
        assert [r.order.price for r in dialog.outstanding] == [102.0]
