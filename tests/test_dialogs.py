"""The order dialog state machine: every transition of the table, the
races of DESIGN.md section 5 (flows 2, 3 and 8), the table's routing, and a
hypothesis state machine against a simulated, disorderly venue."""
from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from piker.clearing import (
    TRANSITIONS,
    Arm,
    BrokerdCancel,
    BrokerdError,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    Cancel,
    Dialog,
    DialogTable,
    Disarm,
    Event,
    MessageError,
    Order,
    Phase,
    Status,
    ToVenue,
    Triggered,
    decode_broker_msg,
    decode_client_msg,
)
from piker.clearing._dialogs import TERMINAL_PHASES, Expire
from piker.clearing._trailing import TrailMove

FQME = 'btcusdt.sim'
BROKER = 'sim'


def mk_order(oid: str = 'o1', **kw: Any) -> Order:
    fields = dict(oid=oid, symbol=FQME, action='buy', exec_mode='live',
                  price=100.0, size=2.0, account='paper')
    fields.update(kw)
    return Order(**fields)


def statuses(effects: list) -> list[Status]:
    return [e for e in effects if isinstance(e, Status)]


def resps(effects: list) -> list[str]:
    return [s.resp for s in statuses(effects)]


def venue(effects: list) -> list[BrokerdOrder | BrokerdCancel]:
    return [e.msg for e in effects if isinstance(e, ToVenue)]


class Harness:
    """A DialogTable with shorthand for venue events and a fake clock."""

    def __init__(self, **kw: Any) -> None:
        self.now = itertools.count(1)
        self.table = DialogTable(clock=lambda: next(self.now), **kw)
        self._tids = itertools.count()
        self.log: list = []

    def _run(self, effects: list) -> list:
        self.log.extend(effects)
        return effects

    def order(self, oid: str = 'o1', **kw: Any) -> list:
        return self._run(self.table.on_order(mk_order(oid, **kw)))

    def cancel(self, oid: str = 'o1') -> list:
        return self._run(self.table.on_cancel(Cancel(oid=oid, symbol=FQME)))

    def trigger(self, oid: str = 'o1', price: float = 100.0, submit: float | None = None) -> list:
        d = self.table[oid]
        return self._run(self.table.on_trigger(Triggered(
            oid=oid, fqme=d.fqme, action=d.req.action, level=d.req.price,
            direction='down', price=price, tick_type='ask', size=d.req.size,
            submit_price=price if submit is None else submit,
        )))

    def broker(self, msg: Any) -> list:
        return self._run(self.table.on_broker_msg(msg, BROKER))

    def ack(self, oid: str = 'o1', reqid: Any = 'r1') -> list:
        return self.broker(BrokerdOrderAck(oid=oid, reqid=reqid, account='paper'))

    def status(self, status: str, reqid: Any = 'r1', filled: float = 0.0, **kw: Any) -> list:
        return self.broker(BrokerdStatus(reqid=reqid, status=status, account='paper',
                                         time_ns=1, filled=filled, **kw))

    def fill(self, size: float, reqid: Any = 'r1', tid: str | None = None, **kw: Any) -> list:
        tid = tid or f't{next(self._tids)}'
        return self.broker(BrokerdFill(reqid=reqid, tid=tid, action='buy', size=size,
                                       price=100.0, broker_time=1.0, time_ns=1, **kw))

    def error(self, oid: str = 'o1', reason: str = 'nope', reqid: Any = None) -> list:
        return self.broker(BrokerdError(oid=oid, reqid=reqid, reason=reason))

    def d(self, oid: str = 'o1') -> Dialog:
        return self.table[oid]

    def terminals(self, oid: str = 'o1') -> list[str]:
        return [s.resp for s in self.d(oid).history if s.terminal]


# ---- flow 1, 4, 5: the happy paths ------------------------------------------

def test_live_order_flow():
    h = Harness()
    eff = h.order()
    (cmd,) = venue(eff)
    assert cmd.reqid is None and cmd.symbol == 'btcusdt' and cmd.size == 2.0
    assert resps(eff) == ['pending']
    assert h.ack() == []
    assert resps(h.status('open')) == ['open']
    eff = h.fill(0.5)
    assert resps(eff) == ['fill']
    st_ = statuses(eff)[0]
    assert (st_.filled, st_.remaining, st_.reqid) == (0.5, 1.5, 'r1')
    assert st_.brokerd_msg['price'] == 100.0 and st_.brokerd_msg['size'] == 0.5
    assert resps(h.status('open', filled=0.5)) == []  # nothing new
    assert resps(h.fill(1.5)) == ['fill', 'closed']
    assert resps(h.status('closed', filled=2.0)) == []  # already closed
    d = h.d()
    assert d.phase is Phase.CLOSED and d.filled == 2.0 and d.remaining == 0.0
    assert [s.resp for s in d.history] == ['pending', 'open', 'fill', 'fill', 'closed']
    assert h.table.active() == []


def test_dark_order_flow():
    h = Harness()
    eff = h.order(exec_mode='dark', price=99.0)
    assert eff[0] == Arm(oid='o1', fqme=FQME, action='buy', level=99.0, size=2.0)
    assert resps(eff) == ['dark_open'] and venue(eff) == []
    eff = h.trigger(price=98.9, submit=99.4)
    (cmd,) = venue(eff)
    assert cmd.price == 99.4 and cmd.reqid is None
    (st_,) = statuses(eff)
    assert st_.resp == 'dark_triggered' and st_.src == 'dark'
    assert st_.brokerd_msg['submit_price'] == 99.4
    h.ack()
    assert resps(h.status('open')) == ['open']
    assert resps(h.fill(2.0)) == ['fill', 'closed']


def test_alert_flow():
    h = Harness()
    eff = h.order(action='alert', price=105.0, size=0.0)
    assert resps(eff) == ['dark_open'] and isinstance(eff[0], Arm)
    eff = h.trigger(price=105.5)
    assert venue(eff) == []
    assert resps(eff) == ['alert_triggered']
    assert h.d().terminal and h.terminals() == ['alert_triggered']


# ---- flow 2: cancels ---------------------------------------------------------

def test_cancel_before_ack_is_stashed_then_sent_on_ack():
    h = Harness()
    h.order()
    assert h.cancel() == []  # nothing can be sent without a reqid
    assert h.d().phase is Phase.CANCEL_STASHED
    assert h.d().snapshot().resp == 'pending'
    (cmd,) = venue(h.ack())
    assert isinstance(cmd, BrokerdCancel) and cmd.reqid == 'r1'
    assert resps(h.status('canceled')) == ['canceled']
    assert h.terminals() == ['canceled']


def test_cancel_between_ack_and_open():
    h = Harness()
    h.order()
    h.ack()
    (cmd,) = venue(h.cancel())
    assert isinstance(cmd, BrokerdCancel)
    assert resps(h.status('open')) == []  # late 'open' is not news any more
    assert resps(h.status('canceled')) == ['canceled']
    assert h.d().phase is Phase.CANCELED


def test_cancel_open_order_and_duplicates():
    h = Harness()
    h.order()
    h.ack()
    h.status('open')
    assert len(venue(h.cancel())) == 1
    assert h.cancel() == []  # a second cancel sends nothing more
    assert h.d().snapshot().resp == 'open'
    h.status('canceled')
    assert h.cancel() == []  # and after the end, nothing at all
    assert h.terminals() == ['canceled']


def test_cancel_during_dark_triggered_is_honoured():
    h = Harness()
    h.order(exec_mode='dark')
    h.trigger()
    assert h.cancel() == []
    assert h.d().snapshot().resp == 'dark_triggered'
    (cmd,) = venue(h.ack())
    assert isinstance(cmd, BrokerdCancel)
    assert resps(h.status('canceled')) == ['canceled']


def test_cancel_dark_order_disarms():
    h = Harness()
    h.order(exec_mode='dark')
    eff = h.cancel()
    assert eff[0] == Disarm(oid='o1')
    assert resps(eff) == ['canceled']
    # a trigger racing the cancel (book fired first is emsd's order) is moot
    assert h.trigger() == []


def test_cancel_rejected_then_retried():
    h = Harness()
    h.order()
    h.ack()
    h.status('open')
    h.cancel()
    eff = h.error(reason='busy')
    (st_,) = statuses(eff)
    assert st_.resp == 'open' and st_.reason == 'cancel rejected: busy'
    assert h.d().phase is Phase.OPEN
    assert len(venue(h.cancel())) == 1
    assert resps(h.status('canceled')) == ['canceled']


def test_cancel_rejected_before_open_returns_to_acked():
    h = Harness()
    h.order()
    h.cancel()
    h.ack()
    eff = h.error(reason='busy')
    assert resps(eff) == ['pending'] and h.d().phase is Phase.ACKED


def test_cancel_unknown_oid_replies_error():
    h = Harness()
    (st_,) = h.cancel('ghost')
    assert st_.resp == 'error' and 'unknown oid' in st_.reason and st_.oid == 'ghost'


# ---- flow 3: modifies -----------------------------------------------------------

def test_modify_live_order_uses_reqid():
    h = Harness()
    h.order()
    h.ack()
    h.status('open')
    eff = h.order(price=101.0, size=3.0)
    (cmd,) = venue(eff)
    assert isinstance(cmd, BrokerdOrder)
    assert (cmd.reqid, cmd.price, cmd.size) == ('r1', 101.0, 3.0)
    assert h.d().venue_orders == 1
    # a venue (paperboi) acks the modify too: harmless
    assert h.ack() == []
    (st_,) = statuses(h.status('open'))
    assert st_.resp == 'open' and st_.req.price == 101.0 and st_.remaining == 3.0


def test_modify_before_ack_is_stashed_latest_wins():
    h = Harness()
    h.order()
    assert h.order(price=101.0) == []
    assert h.order(price=102.0) == []
    (cmd,) = venue(h.ack())
    assert cmd.reqid == 'r1' and cmd.price == 102.0
    assert h.d().venue_orders == 1


def test_modify_then_cancel_before_ack_only_cancels():
    h = Harness()
    h.order()
    h.order(price=101.0)
    h.cancel()
    (cmd,) = venue(h.ack())
    assert isinstance(cmd, BrokerdCancel)


def test_modify_dark_order_rearms():
    h = Harness()
    h.order(exec_mode='dark', price=99.0)
    eff = h.order(exec_mode='dark', price=98.0, size=1.0)
    assert eff[0] == Arm(oid='o1', fqme=FQME, action='buy', level=98.0, size=1.0)
    assert venue(eff) == []
    (st_,) = statuses(eff)
    assert st_.resp == 'dark_open' and st_.req.price == 98.0


def test_modify_dark_to_live_leaves_the_book():
    h = Harness()
    h.order(exec_mode='dark', price=99.0)
    eff = h.order(exec_mode='live', price=99.0)
    assert eff[0] == Disarm(oid='o1')
    (cmd,) = venue(eff)
    assert cmd.reqid is None
    assert resps(eff) == ['pending'] and h.d().venue_orders == 1


def test_modify_of_triggered_dark_order_is_a_venue_modify():
    h = Harness()
    h.order(exec_mode='dark')
    h.trigger()
    assert h.order(exec_mode='dark', price=101.0) == []
    (cmd,) = venue(h.ack())
    assert cmd.reqid == 'r1' and cmd.price == 101.0
    assert h.d().venue_orders == 1


@pytest.mark.parametrize('change,needle', [
    (dict(action='sell'), 'cannot change action'),
    (dict(symbol='ethusdt.sim'), 'cannot change symbol'),
    (dict(account='other'), 'cannot change account'),
    (dict(exec_mode='dark'), 'cannot be moved into the dark'),
])
def test_modify_refused(change, needle):
    h = Harness()
    h.order()
    h.ack()
    h.status('open')
    eff = h.order(**change)
    assert venue(eff) == []
    (st_,) = statuses(eff)
    assert st_.resp == 'open' and needle in st_.reason
    assert h.d().req == mk_order() and h.d().phase is Phase.OPEN


def test_modify_below_filled_refused():
    h = Harness()
    h.order(size=3.0)
    h.ack()
    h.fill(2.0)
    eff = h.order(size=1.0, price=100.0)
    assert venue(eff) == [] and 'below the filled size' in statuses(eff)[0].reason


def test_modify_rejected_by_venue_rolls_back():
    h = Harness()
    h.order()
    h.ack()
    h.status('open')
    h.order(price=105.0)
    eff = h.error(reason='price band')
    (st_,) = statuses(eff)
    assert st_.resp == 'open' and st_.reason == 'modify rejected: price band'
    assert st_.req.price == 100.0 and not h.d().terminal
    # a later error with nothing outstanding kills the order
    assert resps(h.error(reason='halted')) == ['error']


def test_stale_open_does_not_confirm_a_modify():
    h = Harness()
    h.order(size=3.0)
    h.order(size=1.0)                 # stashed
    h.status('open')                  # the original's 'open', before the ack
    (cmd,) = venue(h.ack())           # modify sent; the buffered 'open' replays
    assert cmd.reqid == 'r1' and cmd.size == 1.0
    h.status('open')                  # still about the original (no ack yet)
    h.fill(2.0)                       # more than the new size: old order lives
    assert h.d().req.size == 3.0 and not h.d().terminal
    eff = h.error(reason='size below filled')
    assert statuses(eff)[0].reason == 'modify rejected: size below filled'
    assert h.d().phase is Phase.OPEN and h.d().remaining == 1.0


def test_open_after_the_modify_ack_confirms_it():
    h = Harness()
    h.order(size=3.0)
    h.ack()
    h.order(size=1.0)
    h.fill(1.0)                       # == new size, but the old may still work
    assert not h.d().terminal
    h.ack()                           # the modify's ack
    (st_,) = statuses(h.status('closed', filled=1.0))
    assert st_.resp == 'closed' and st_.req.size == 1.0


def test_fill_of_old_size_does_not_close_a_pending_bigger_modify():
    h = Harness()
    h.order(size=1.0)
    h.ack()
    h.status('open')
    h.order(size=3.0)                 # in flight
    assert resps(h.fill(1.0)) == ['fill']  # the venue may be working 3 already
    assert not h.d().terminal and h.d().remaining == 2.0
    h.ack()
    assert resps(h.status('open', filled=1.0)) == ['open']
    assert resps(h.fill(2.0)) == ['fill', 'closed']


def test_modifies_in_flight_resolve_in_order():
    h = Harness()
    h.order(price=100.0)
    h.ack()
    h.status('open')
    h.order(price=101.0)              # A
    h.order(price=102.0)              # B
    assert h.d().req.price == 102.0
    eff = h.error(reason='price band')  # the verdict on A
    assert statuses(eff)[0].req.price == 102.0  # B still pending
    h.ack()                           # B's ack
    (st_,) = statuses(h.status('open'))
    assert st_.req.price == 102.0 and h.d().outstanding == []
    h.order(price=103.0)              # C
    h.ack()                           # paperboi: ack, then the refusal
    eff = h.error(reason='off tick')
    assert statuses(eff)[0].req.price == 102.0  # back to B


def test_a_burst_of_modifies_is_coalesced_behind_the_one_in_flight():
    h = Harness()
    h.order(price=100.0)
    h.ack()
    h.status('open')
    (first,) = venue(h.order(price=80.0))         # in flight
    for i in range(1, 50):                          # wait; the newest wins
        assert venue(h.order(price=80.0 + i)) == []
    assert h.d().req.price == 129.0 and h.d().stashed_modify.price == 129.0
    (nxt,) = venue(h.ack())                         # the answer: the newest goes
    assert (first.price, nxt.price, nxt.reqid) == (80.0, 129.0, 'r1')
    assert h.d().stashed_modify is None
    assert resps(h.status('open')) == ['open']      # confirms 80 (acked) only
    assert h.d().req.price == 129.0                 # 129 still pending
    assert venue(h.order(price=130.0)) == []        # 129 in flight: waits
    assert [m.price for m in venue(h.ack())] == [130.0]
    h.status('open')
    h.ack()
    h.status('open')
    assert h.d().req.price == 130.0 and h.d().outstanding == []
    sent = [m.price for m in venue(h.log) if isinstance(m, BrokerdOrder)]
    assert sent == [100.0, 80.0, 129.0, 130.0]


def test_a_cancel_overtakes_waiting_modifies():
    h = Harness()
    h.order(price=100.0)
    h.ack()
    h.status('open')
    h.order(price=101.0)                            # in flight
    for i in range(2, 50):
        h.order(price=100.0 + i)                    # waiting
    (cmd,) = venue(h.cancel())                      # sent at once
    assert isinstance(cmd, BrokerdCancel)
    assert h.d().stashed_modify is None and h.d().req.price == 101.0
    assert venue(h.ack()) == []                     # the modify's ack sends nothing
    assert resps(h.status('canceled')) == ['canceled']
    sent = venue(h.log)
    assert [type(m).__name__ for m in sent] == ['BrokerdOrder', 'BrokerdOrder', 'BrokerdCancel']


def test_a_refused_modify_in_flight_sends_the_waiting_one():
    h = Harness()
    h.order(price=100.0, size=3.0)
    h.ack()
    h.status('open')
    h.order(price=100.05, size=3.0)                 # off tick, in flight
    h.order(price=101.0, size=3.0)                  # waits
    eff = h.error(reason='off tick')
    assert statuses(eff)[0].reason == 'modify rejected: off tick'
    assert [m.price for m in venue(eff)] == [101.0]
    # a waiting modify the fills made impossible is refused when its turn comes
    h.order(price=102.0, size=1.0)                  # 101 in flight: waits
    h.fill(2.0)
    eff = h.ack()
    assert venue(eff) == [] and 'below the filled size' in statuses(eff)[0].reason
    assert h.d().req.price == 101.0 and h.d().stashed_modify is None


def test_modify_during_cancel_refused():
    h = Harness()
    h.order()
    h.ack()
    h.cancel()
    eff = h.order(price=101.0)
    assert venue(eff) == [] and 'cancel is in progress' in statuses(eff)[0].reason


def test_order_for_finished_dialog_dropped():
    h = Harness()
    h.order(exec_mode='dark')
    h.cancel()
    assert h.order(exec_mode='dark', price=1.0) == []
    assert h.terminals() == ['canceled']


# ---- flow 8: disorderly venues -------------------------------------------------

def test_status_before_ack_buffered_by_reqid():
    h = Harness()
    h.order()
    assert h.status('open') == []  # unknown reqid: held
    assert h.table.orphans() == 1
    eff = h.ack()
    assert resps(eff) == ['open'] and h.table.orphans() == 0


def test_events_before_ack_replayed_in_arrival_order():
    h = Harness()
    h.order()
    h.fill(0.5, oid='o1')         # routed by oid: buffered in the dialog
    h.status('open')              # by reqid only: an orphan
    h.fill(1.5)                   # orphan
    h.status('closed', filled=2.0, oid='o1')
    eff = h.ack()
    # the venue's 'open' (after the first fill) is the first news that the
    # rest of the order works: clients hear it once
    assert resps(eff) == ['fill', 'open', 'fill', 'closed']
    assert statuses(eff)[0].filled == 0.5
    assert h.d().filled == 2.0 and h.terminals() == ['closed']


def test_duplicate_fills_dropped():
    h = Harness()
    h.order()
    h.ack()
    assert resps(h.fill(0.5, tid='x')) == ['fill']
    assert h.fill(0.5, tid='x') == []
    assert h.d().filled == 0.5
    # and a duplicate buffered before the ack is dropped too
    h2 = Harness()
    h2.order()
    h2.fill(0.5, tid='y')
    h2.fill(0.5, tid='y')
    assert resps(h2.ack()) == ['fill']


def test_fill_after_cancel_request_counts_and_closes():
    h = Harness()
    h.order()
    h.ack()
    h.status('open')
    h.cancel()
    assert resps(h.fill(2.0)) == ['fill', 'closed']
    assert resps(h.status('canceled', filled=2.0)) == []
    assert h.error(reason='too late') == []
    assert h.terminals() == ['closed']


def test_partial_fill_then_cancel():
    h = Harness()
    h.order()
    h.ack()
    h.cancel()
    h.fill(0.5)
    (st_,) = statuses(h.status('canceled', filled=0.5))
    assert st_.resp == 'canceled' and (st_.filled, st_.remaining) == (0.5, 1.5)


def test_canceled_status_reporting_full_fill_means_closed():
    h = Harness()
    h.order()
    h.ack()
    h.cancel()
    assert resps(h.status('canceled', filled=2.0)) == ['closed']
    # its fills, arriving late, are still reported (not terminal again)
    eff = h.fill(2.0)
    assert resps(eff) == ['fill'] and 'after closed' in statuses(eff)[0].reason
    assert h.d().filled == 2.0 and h.terminals() == ['closed']


def test_fill_after_terminal_cancel_is_counted():
    h = Harness()
    h.order()
    h.ack()
    h.cancel()
    h.status('canceled')
    assert resps(h.fill(0.5)) == ['fill']
    assert h.d().filled == 0.5 and h.d().remaining == 1.5
    assert h.terminals() == ['canceled']


def test_error_before_ack_rejects():
    h = Harness()
    h.order()
    eff = h.error(reason='unknown account')
    assert resps(eff) == ['error'] and statuses(eff)[0].reason == 'unknown account'
    assert h.ack() == [] and h.terminals() == ['error']


def test_error_routed_by_reqid():
    h = Harness()
    h.order()
    h.ack()
    eff = h.broker(BrokerdError(oid='not-mine', reqid='r1', reason='halted'))
    assert resps(eff) == ['error']


def test_invalid_transitions_are_ignored(caplog):
    h = Harness()
    h.order()
    assert h.trigger() == []  # a live order has no trigger
    assert 'ignoring trigger' in caplog.text
    d = h.d()
    assert d.handle(Event.SUBMIT, mk_order()) == []
    assert d.phase is Phase.PENDING


# ---- the table -------------------------------------------------------------------

def test_reqid_index_and_active():
    h = Harness()
    h.order('a')
    h.order('b', exec_mode='dark')
    h.ack('a', reqid=7)
    assert h.table.by_reqid(BROKER, 7) is h.d('a')
    assert h.table.by_reqid('other', 7) is None
    assert [d.oid for d in h.table.active()] == ['a', 'b']
    assert h.table.active('ethusdt.sim') == []
    assert 'a' in h.table and len(h.table) == 2 and h.table.get('zz') is None


def test_ack_reusing_a_reqid_is_refused(caplog):
    h = Harness()
    h.order('a')
    h.order('b')
    h.ack('a', reqid=1)
    assert h.ack('b', reqid=1) == []
    assert h.d('b').reqid is None
    assert h.ack('ghost', reqid=9) == []


def test_external_order_gets_a_dialog():
    h = Harness()
    h.order('taken')
    vreq = BrokerdOrder(oid='taken', symbol='btcusdt', action='sell', price=110.0,
                        size=1.0, account='paper', time_ns=1)
    eff = h.broker(BrokerdStatus(reqid='x1', status='open', account='paper', time_ns=1, req=vreq))
    (st_,) = statuses(eff)
    assert st_.resp == 'open' and st_.oid != 'taken'  # collision -> fresh oid
    d = h.d(st_.oid)
    assert d.external and d.req.symbol == FQME and d.req.action == 'sell'
    assert h.table.by_reqid(BROKER, 'x1') is d
    # later events route by reqid; it can be cancelled like any order
    assert venue(h.cancel(st_.oid))[0].reqid == 'x1'
    assert resps(h.status('canceled', reqid='x1')) == ['canceled']
    # a free venue oid is kept as is
    free = BrokerdOrder(oid='ext-2', symbol='btcusdt', action='buy', price=90.0,
                        size=1.0, account='paper', time_ns=1)
    eff = h.broker(BrokerdStatus(reqid='x2', status='pending', account='paper', time_ns=1, req=free))
    assert resps(eff) == ['pending'] and statuses(eff)[0].oid == 'ext-2'
    # a finished unknown order is not worth a dialog
    done = h.broker(BrokerdStatus(reqid='x3', status='closed', account='paper', time_ns=1,
                                  req=free.copy({'oid': 'ext-3'})))
    assert done == [] and 'ext-3' not in h.table


def test_on_client_msg_takes_typed_commands_and_keeps_their_owner():
    h = Harness()
    eff = h.table.on_client_msg(mk_order(), owner=7, route='paper')
    assert resps(eff) == ['pending']
    assert h.d().owner == 7 and h.d().route == 'paper'
    eff = h.table.on_client_msg(Cancel(oid='o1'), owner=8)
    assert eff == [] and h.d().phase is Phase.CANCEL_STASHED
    assert h.d().owner == 7  # a canceller does not take over an owned dialog
    # the wire is decoded once, at emsd's boundary: garbage never gets here
    with pytest.raises(MessageError, match='size'):
        decode_client_msg(dict(mk_order('o2').to_builtins(), size=-1))


def test_restored_dialog_is_claimed_by_its_first_canceller():
    h = Harness()
    h.order()
    back = Dialog.from_state(h.d().state(), h.d().history)
    table = DialogTable()
    table.restore([back])
    assert back.owner is None
    table.on_cancel(Cancel(oid='o1'), owner=3)
    assert back.owner == 3


def test_on_broker_msg_takes_typed_messages():
    h = Harness()
    h.order()
    assert h.broker(decode_broker_msg(
        BrokerdOrderAck(oid='o1', reqid='r1', account='paper').to_builtins())) == []
    assert h.d().reqid == 'r1'
    with pytest.raises(MessageError):
        decode_broker_msg({'name': 'fill', 'reqid': 'r1'})
    pos = BrokerdPosition(broker=BROKER, account='paper', symbol=FQME, size=1.0, avg_price=1.0)
    assert h.broker(pos) == []


def test_finished_dialogs_are_kept_then_evicted():
    h = Harness(keep_finished=2)
    for i in range(4):
        h.order(f'o{i}')
        h.ack(f'o{i}', reqid=i)
        h.fill(2.0, reqid=i)
    assert [d.oid for d in h.table] == ['o2', 'o3']
    assert h.table.by_reqid(BROKER, 0) is None and h.table.by_reqid(BROKER, 3) is not None


def test_orphans_are_bounded():
    h = Harness(max_orphans=3)
    for i in range(5):
        h.status('open', reqid=i)
    assert h.table.orphans() == 3


def test_filled_plus_remaining_is_size_on_every_status():
    h = Harness()
    h.order(size=1.0)
    h.ack()
    for _ in range(10):
        h.fill(0.1)
    d = h.d()
    assert d.phase is Phase.CLOSED  # 10 x 0.1 is "fully filled" despite rounding
    for st_ in d.history:
        assert math.isclose(st_.filled + st_.remaining, st_.req.size)


# ---- every transition of the table ------------------------------------------------

def _reach(phase: Phase) -> tuple[Harness, Dialog]:
    """Drive a fresh dialog into `phase` through the public table API."""
    h = Harness()
    dark = phase in (Phase.DARK_OPEN, Phase.DARK_TRIGGERED)
    if phase is Phase.NEW:
        return h, Dialog(mk_order(), clock=lambda: 1)
    if phase is Phase.ALERT_TRIGGERED:
        h.order(action='alert')
        h.trigger()
        return h, h.d()
    if phase is Phase.EXPIRED:
        h.order(exec_mode='dark', tif='gtd', expires_ns=1)
        h.table.on_expire('o1', 1)
        return h, h.d()
    if phase is Phase.HELD:  # a bracket child (the entry is not needed here)
        h.order(exec_mode='dark', action='sell', parent='entry', oco='g1')
        return h, h.d()
    h.order(exec_mode='dark' if dark else 'live')
    steps = {
        Phase.DARK_OPEN: [],
        Phase.PENDING: [],
        Phase.DARK_TRIGGERED: [h.trigger],
        Phase.CANCEL_STASHED: [h.cancel],
        Phase.ACKED: [h.ack],
        Phase.OPEN: [h.ack, lambda: h.status('open')],
        Phase.CANCELING: [h.ack, lambda: h.status('open'), h.cancel],
        Phase.CLOSED: [h.ack, lambda: h.fill(2.0)],
        Phase.CANCELED: [h.ack, h.cancel, lambda: h.status('canceled')],
        Phase.ERROR: [h.error],
    }[phase]
    for step in steps:
        step()
    assert h.d().phase is phase
    return h, h.d()


def _event_msg(event: Event, d: Dialog) -> Any:
    req = d.req
    return {
        Event.SUBMIT: req,
        Event.MODIFY: req.copy({'price': req.price + 1}),
        Event.CANCEL: Cancel(oid=d.oid),
        Event.TRIGGER: Triggered(oid=d.oid, fqme=d.fqme, action=req.action, level=req.price,
                                 direction='down', price=req.price, tick_type='ask',
                                 size=req.size, submit_price=req.price),
        Event.ACK: BrokerdOrderAck(oid=d.oid, reqid='r1', account='paper'),
        Event.VENUE_PENDING: BrokerdStatus(reqid='r1', status='pending', account='paper', time_ns=1),
        Event.VENUE_OPEN: BrokerdStatus(reqid='r1', status='open', account='paper', time_ns=1),
        Event.VENUE_CANCELED: BrokerdStatus(reqid='r1', status='canceled', account='paper', time_ns=1),
        Event.VENUE_CLOSED: BrokerdStatus(reqid='r1', status='closed', account='paper', time_ns=1,
                                          filled=req.size),
        Event.FILL: BrokerdFill(reqid='r1', tid='tx', action='buy', size=0.5, price=1.0,
                                broker_time=1.0, time_ns=1),
        Event.VENUE_ERROR: BrokerdError(oid=d.oid, reqid='r1', reason='boom'),
        Event.TRAIL: TrailMove(oid=d.oid, anchor=req.price + 2, trigger=req.price + 1),
        Event.EXPIRE: None,
        Event.ARM: (1.0, False),
    }[event]


ALL_PAIRS = [(p, e) for p in Phase for e in Event]


@pytest.mark.parametrize('phase,event', [(p, e) for p, e in ALL_PAIRS if e in TRANSITIONS[p]],
                         ids=lambda v: v.value)
def test_every_transition_lands_where_the_table_says(phase, event, caplog):
    h, d = _reach(phase)
    before = len([s for s in d.history if s.terminal])
    effects = d.handle(event, _event_msg(event, d))
    assert d.phase in TRANSITIONS[phase][event].to
    assert 'went to' not in caplog.text  # the handler agreed with the table
    terminal = [s for s in d.history if s.terminal]
    assert len(terminal) <= 1
    if d.phase in TERMINAL_PHASES and phase not in TERMINAL_PHASES:
        assert len(terminal) == 1 and before == 0
    # only a new (reqid-less) order or a dark trigger makes a venue order
    assert d.venue_orders <= 1
    for eff in effects:
        assert isinstance(eff, Status | ToVenue | Arm | Disarm | Expire)
        if isinstance(eff, Status):
            assert math.isclose(eff.filled + eff.remaining, eff.req.size)


@pytest.mark.parametrize('phase,event', [(p, e) for p, e in ALL_PAIRS if e not in TRANSITIONS[p]],
                         ids=lambda v: v.value)
def test_every_missing_transition_is_ignored(phase, event):
    h, d = _reach(phase)
    history = list(d.history)
    assert d.handle(event, _event_msg(event, d)) == []
    assert d.phase is phase and d.history == history


def test_snapshot_resp_of_every_resting_phase():
    want = {
        Phase.HELD: 'held',
        Phase.DARK_OPEN: 'dark_open', Phase.PENDING: 'pending',
        Phase.DARK_TRIGGERED: 'dark_triggered', Phase.CANCEL_STASHED: 'pending',
        Phase.ACKED: 'pending', Phase.OPEN: 'open', Phase.CANCELING: 'open',
        Phase.CLOSED: 'closed', Phase.CANCELED: 'canceled', Phase.ERROR: 'error',
        Phase.ALERT_TRIGGERED: 'alert_triggered',
    }
    for phase, resp in want.items():
        _, d = _reach(phase)
        assert d.snapshot().resp == resp == d.resp, phase


# ---- a hypothesis state machine against a simulated venue -----------------------

class SimVenue:
    """A venue that queues its replies so the test decides when (and how
    disorderly) they arrive. It behaves like paperboi: ack every accepted
    order and modify, 'open' after it, a fill then 'open'/'closed' with the
    cumulative filled size, errors for requests on orders no longer
    working."""

    def __init__(self) -> None:
        self.reqids = itertools.count(1)
        self.tids = itertools.count(1)
        self.orders: dict[int, dict] = {}  # reqid -> {oid, size, filled, alive}
        self.new_orders: dict[str, int] = {}  # oid -> count of new orders
        self.outbox: list = []  # replies not yet delivered
        # acks of modifies: a venue sends them in line with the statuses
        # that follow (only an order's first ack may lag behind)
        self.in_line: set[int] = set()

    def command(self, msg: BrokerdOrder | BrokerdCancel) -> None:
        if isinstance(msg, BrokerdCancel):
            order = self.orders.get(msg.reqid)
            if order is None or not order['alive']:
                self.outbox.append(BrokerdError(oid=msg.oid, reqid=msg.reqid, reason='not working'))
                return
            order['alive'] = False
            self.outbox.append(BrokerdStatus(reqid=msg.reqid, status='canceled', account='paper',
                                             time_ns=1, filled=order['filled']))
            return
        if msg.reqid is None:
            self.new_orders[msg.oid] = self.new_orders.get(msg.oid, 0) + 1
            reqid = next(self.reqids)
            self.orders[reqid] = dict(oid=msg.oid, size=msg.size, filled=0.0, alive=True)
            self.outbox.append(BrokerdOrderAck(oid=msg.oid, reqid=reqid, account='paper'))
            self.outbox.append(BrokerdStatus(reqid=reqid, status='open', account='paper', time_ns=1))
            return
        order = self.orders.get(msg.reqid)
        if order is None or not order['alive'] or msg.size < order['filled']:
            self.outbox.append(BrokerdError(oid=msg.oid, reqid=msg.reqid, reason='cannot modify'))
            return
        order['size'] = msg.size
        done = order['filled'] >= msg.size - 1e-12  # modified down to what is filled
        order['alive'] = not done
        ack = BrokerdOrderAck(oid=msg.oid, reqid=msg.reqid, account='paper')
        self.in_line.add(id(ack))
        self.outbox.append(ack)
        self.outbox.append(BrokerdStatus(reqid=msg.reqid, status='closed' if done else 'open',
                                         account='paper', time_ns=1, filled=order['filled']))

    def fill(self, reqid: int, frac: float) -> None:
        order = self.orders[reqid]
        left = order['size'] - order['filled']
        size = left if frac >= 1 else round(left * frac, 6)
        if not order['alive'] or size <= 0:
            return
        order['filled'] += size
        done = order['filled'] >= order['size'] - 1e-12
        fill = BrokerdFill(reqid=reqid, tid=f't{next(self.tids)}', action='buy', size=size,
                           price=1.0, broker_time=1.0, time_ns=1)
        self.outbox.append(fill)
        self.outbox.append(BrokerdStatus(reqid=reqid, status='closed' if done else 'open',
                                         account='paper', time_ns=1, filled=order['filled']))
        if done:
            order['alive'] = False

    def external(self, oid: str) -> None:
        reqid = next(self.reqids)
        self.orders[reqid] = dict(oid=oid, size=1.0, filled=0.0, alive=True)
        self.outbox.append(BrokerdStatus(
            reqid=reqid, status='open', account='paper', time_ns=1,
            req=BrokerdOrder(oid=oid, symbol='btcusdt', action='buy', price=1.0,
                             size=1.0, account='paper', time_ns=1),
        ))


OIDS = [f'o{i}' for i in range(6)]


class DialogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = DialogTable()
        self.venue = SimVenue()
        self.inbox: list = []  # venue commands not yet processed by the venue
        self.dark: set[str] = set()  # oids armed in the (simulated) dark book
        self.sent: dict[str, list[Status]] = {}
        self.delivered: list = []

    # -- plumbing --

    def run(self, effects: list) -> None:
        for eff in effects:
            if isinstance(eff, Status):
                if eff.req is None:  # a reply to a cancel of an unknown oid
                    assert eff.resp == 'error' and eff.oid not in self.table
                    continue
                self.sent.setdefault(eff.oid, []).append(eff)
            elif isinstance(eff, ToVenue):
                assert eff.broker == BROKER
                self.inbox.append(eff.msg)
            elif isinstance(eff, Arm):
                self.dark.add(eff.oid)
            elif isinstance(eff, Disarm):
                self.dark.discard(eff.oid)

    # -- clients --

    @rule(oid=st.sampled_from(OIDS), dark=st.booleans(),
          price=st.sampled_from([99.0, 100.0, 101.0]), size=st.sampled_from([1.0, 2.0, 3.0]))
    def order(self, oid, dark, price, size):
        self.run(self.table.on_order(mk_order(
            oid, exec_mode='dark' if dark else 'live', price=price, size=size,
        )))

    @rule(oid=st.sampled_from(OIDS))
    def alert(self, oid):
        self.run(self.table.on_order(mk_order(oid, action='alert', price=100.0)))

    @rule(oid=st.sampled_from(OIDS))
    def cancel(self, oid):
        self.run(self.table.on_cancel(oid))

    @precondition(lambda self: self.dark)
    @rule(data=st.data())
    def trigger(self, data):
        oid = data.draw(st.sampled_from(sorted(self.dark)))
        self.dark.discard(oid)  # the book removes what fires
        d = self.table[oid]
        self.run(self.table.on_trigger(Triggered(
            oid=oid, fqme=FQME, action=d.req.action, level=d.req.price, direction='up',
            price=d.req.price, tick_type='ask', size=d.req.size, submit_price=d.req.price,
        )))

    # -- the venue --

    @precondition(lambda self: self.inbox)
    @rule(fill_now=st.sampled_from([None, 0.5, 1.0]))
    def venue_takes_command(self, fill_now):
        """The venue handles the next command; a marketable order fills at
        once (so with a held-back ack, fills and statuses precede it)."""
        cmd = self.inbox.pop(0)
        self.venue.command(cmd)
        if fill_now and isinstance(cmd, BrokerdOrder) and cmd.reqid is None:
            self.venue.fill(max(self.venue.orders), fill_now)

    @precondition(lambda self: any(o['alive'] for o in self.venue.orders.values()))
    @rule(data=st.data(), frac=st.sampled_from([0.25, 0.5, 1.0]))
    def venue_fills(self, data, frac):
        alive = sorted(r for r, o in self.venue.orders.items() if o['alive'])
        self.venue.fill(data.draw(st.sampled_from(alive)), frac)

    @rule(oid=st.sampled_from(OIDS + ['ext']))
    def venue_external_order(self, oid):
        self.venue.external(oid)

    @precondition(lambda self: self.venue.outbox)
    @rule(delay=st.sampled_from([(), (BrokerdOrderAck,), (BrokerdFill,),
                                 (BrokerdOrderAck, BrokerdFill)]))
    def deliver(self, delay):
        """Deliver the venue's next reply, in order, except that an order's
        ack and/or fills may be held back (a status overtaking its ack, a
        fill landing after the cancel or the terminal status)."""
        outbox = self.venue.outbox
        i = next((
            i for i, m in enumerate(outbox)
            if not isinstance(m, delay) or id(m) in self.venue.in_line
        ), 0)
        msg = outbox.pop(i)
        if isinstance(msg, BrokerdFill | BrokerdStatus):
            self.delivered.append(msg)
        self.run(self.table.on_broker_msg(decode_broker_msg(msg.to_builtins()), BROKER))

    @precondition(lambda self: self.delivered)
    @rule(data=st.data())
    def redeliver(self, data):
        """A venue repeating a fill or a status."""
        msg = data.draw(st.sampled_from(self.delivered))
        self.run(self.table.on_broker_msg(msg, BROKER))

    # -- invariants --

    @invariant()
    def one_venue_order_per_oid(self):
        for oid, n in self.venue.new_orders.items():
            assert n <= 1, oid
        for d in self.table:
            assert d.venue_orders <= 1

    @invariant()
    def filled_plus_remaining_is_size(self):
        for d in self.table:
            assert math.isclose(d.filled + d.remaining, d.req.size)
        for sts in self.sent.values():
            for st_ in sts:
                if st_.req is not None:
                    assert math.isclose(st_.filled + st_.remaining, st_.req.size, abs_tol=1e-9)

    @invariant()
    def at_most_one_terminal_and_it_is_last_state(self):
        for d in self.table:
            terms = [s for s in d.history if s.terminal]
            assert len(terms) <= 1
            assert bool(terms) == d.terminal
            if terms:
                # only late fill reports may follow the terminal status
                after = d.history[d.history.index(terms[0]) + 1:]
                assert all(s.resp == 'fill' for s in after)

    def teardown(self) -> None:
        """Cancel everything, let the venue and deliveries run dry: every
        dialog ends with exactly one terminal status and agrees with the
        venue on what was filled."""
        for _ in range(20):
            for d in self.table.active():
                self.run(self.table.on_cancel(d.oid))
            while self.inbox or self.venue.outbox:
                while self.inbox:
                    self.venue.command(self.inbox.pop(0))
                while self.venue.outbox:
                    self.deliver((BrokerdOrderAck,))  # the worst case: acks last
            if not self.table.active():
                break
        assert self.table.active() == []
        for d in self.table:
            assert len([s for s in d.history if s.terminal]) == 1, d
            assert [s for s in self.sent[d.oid] if s.terminal] == [
                s for s in d.history if s.terminal
            ]
            if d.reqid is not None:
                vorder = self.venue.orders[d.reqid]
                assert math.isclose(d.filled, vorder['filled'], abs_tol=1e-9), d
                assert not vorder['alive']
                if not d.external:  # the final Status shows the venue's version
                    assert d.history[-1].req.size == vorder['size'] == d.req.size, d


TestDialogMachine = DialogMachine.TestCase
TestDialogMachine.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, derandomize=True,
)


def test_an_emsd_cancel_of_a_dark_order_says_why():
    h = Harness()
    h.order(exec_mode='dark')
    (disarm, st_) = h.table.on_cancel('o1', reason='trading is halted')
    assert isinstance(disarm, Disarm)
    assert st_.resp == 'canceled' and st_.reason == 'trading is halted'
    assert h.d().history[-1] is st_
