"""The paper venue's pure order checks (issue #9, items 5 and 6): what it
accepts as a broker-native key, and the bounds a price and a notional
must keep before an order rests in a book."""
from __future__ import annotations

import math
from contextlib import asynccontextmanager

import pytest
import trio

from piker.accounting import Account, TransactionLedger, ledger_path
from piker.brokers.sim._markets import get_spec
from piker.clearing import (
    BrokerdError,
    BrokerdFill,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    _paper_fills,
)
from piker.clearing._matching import PaperBook
from piker.clearing._paper_engine import PaperVenue, native_fqme, price_problem
from piker.config import PaperConf


@pytest.mark.parametrize('symbol, fqme', [
    ('btcusdt', 'btcusdt.sim'),
    ('mnq.cme', 'mnq.cme.sim'),  # a venue part is fine: the feed resolves it
])
def test_native_keys(symbol, fqme):
    assert native_fqme(symbol, 'sim') == (fqme, '')


@pytest.mark.parametrize('symbol, why', [
    ('BTCUSDT', "keys are lower case ('btcusdt')"),
    ('BTCUSDT.SIM', 'lower case'),
    ('a.b.c.d', 'at most 4'),
    ('a..b', 'not a broker-native key of sim'),
])
def test_bad_native_keys_say_why(symbol, why):
    fqme, problem = native_fqme(symbol, 'sim')
    assert fqme == '' and why in problem and repr(symbol) in problem


# ---- price sanity at the venue (item 5) ---------------------------------------

def test_price_problem():
    conf = PaperConf()
    assert price_problem(conf, 100.0, 1.0, 99.0, 100.0) == ''
    assert price_problem(conf, 995.0, 1.0, 99.0, 100.0) == ''   # within 10x
    assert 'band' in price_problem(conf, 996.0, 1.0, 99.0, 100.0)
    assert 'band' in price_problem(conf, 9.9, 1.0, 99.0, 100.0)
    assert 'not a finite number' in price_problem(conf, 1e308, 10.0, 99.0, 100.0)
    # no touch known yet: no band, but the notional must stay finite
    assert price_problem(conf, 1e300, 1.0, math.nan, math.nan) == ''
    assert 'not a finite' in price_problem(conf, 1e300, 1e10, math.nan, math.nan)
    # a sell below the touch fills at the touch: its notional counts there
    assert 'not a finite' in price_problem(conf, 1.0, 1e307, math.nan, 100.0)
    # a fee schedule that overflows is refused before anything fills
    assert 'fee' in price_problem(PaperConf(fee_per_unit=1e300), 1.0, 1e10, 1.0, 1.0)


# ---- the venue in-process: a book with a known touch, no feed --------------------

FQME = 'btcusdt.sim'


class Sub:
    """An emsd dialogue as the venue sees it: records what is sent."""

    def __init__(self) -> None:
        self.msgs: list = []
        self.frames: list = []  # as sent: messages emitted together are a list

    async def send(self, frame) -> None:
        self.frames.append(frame)
        self.msgs.extend(frame if isinstance(frame, list) else [frame])

    def of(self, kind: type, oid: str | None = None) -> list:
        return [m for m in self.msgs if isinstance(m, kind)
                and (oid is None or getattr(m, 'oid', None) == oid)]


@asynccontextmanager
async def open_venue(bid: float = 99.0, ask: float = 100.0, size: float = 5.0):
    async with trio.open_nursery() as n:
        venue = await PaperVenue.load('sim', n)
        sub = Sub()
        venue.dialogues.subscribe(sub)
        # as if the feed were up: its market and touch are known
        venue.mkts[FQME] = get_spec(FQME).mkt
        venue.books[FQME] = book = PaperBook(FQME)
        book.on_quote({'ticks': [{'type': 'bid', 'price': bid, 'size': size},
                                 {'type': 'ask', 'price': ask, 'size': size}]})
        venue.feeds._feeds[FQME] = ready = trio.Event()
        ready.set()
        yield venue, sub
        n.cancel_scope.cancel()


def order(oid: str, price: float, size: float = 1.0, action: str = 'buy', **kw) -> dict:
    return {'name': 'brokerd_order', 'oid': oid, 'symbol': 'btcusdt', 'action': action,
            'price': price, 'size': size, 'account': 'paper', 'time_ns': 1, **kw}


def test_a_fill_that_cannot_be_booked_ends_its_order(monkeypatch):
    """The issue's 1e308 order, had it got in: half fills, the rest rests,
    then fills with a NaN cost. The venue must end the order truthfully
    (out of the book and the state file, `canceled` with what it really
    filled), not drop it from its book unseen (item 5)."""
    async def main():
        async with open_venue() as (venue, sub):
            await venue.handle(order('big', 101.0, 10.0))
            assert {m.status for m in sub.of(BrokerdStatus, 'big')} == {'open'}
            (reqid,) = venue.books[FQME].orders
            # from here on every fee is NaN: no fill can be booked
            monkeypatch.setattr(_paper_fills, 'fee_for', lambda *a: math.nan)
            async with venue.lock:
                fills = venue.books[FQME].on_quote(
                    {'ticks': [{'type': 'ask', 'price': 100.0, 'size': 50.0}]})
                assert fills
                await venue.report_fills(fills)
            end = sub.of(BrokerdStatus, 'big')[-1]
            assert (end.status, end.filled, end.remaining) == ('canceled', 5.0, 5.0)
            assert 'could not be booked' in end.reason
            assert reqid not in venue.books[FQME].orders
            assert reqid not in venue.store.orders  # the state file agrees
            assert len(sub.of(BrokerdFill, 'big')) == 1  # only the good one
            assert len(venue.ledgers['paper']) == 1

    trio.run(main)


def test_an_internal_error_on_an_order_ends_it(monkeypatch):
    """A bug while handling an order (here: after it rested, before it
    was recorded and acked - a resting order's ack and open skip
    report_fills) ends that order: acked, then `canceled` saying why."""
    async def main():
        async with open_venue() as (venue, sub):
            def broken(*a, **kw):
                raise RuntimeError('boom')
            monkeypatch.setattr(venue.fills, 'record', broken)
            await venue.handle(order('x', 95.0))
            assert [type(m).__name__ for m in sub.msgs] == ['BrokerdOrderAck', 'BrokerdStatus']
            end = sub.msgs[-1]
            assert end.status == 'canceled' and 'internal error' in end.reason
            assert 'boom' in end.reason
            assert not venue.books[FQME].orders and not venue.store.orders

    trio.run(main)


def test_what_an_order_emits_together_is_one_frame():
    """A resting order's ack and open leave as one list frame; so do an
    unrested ioc/fok's ack and cancel when the touch filled nothing (and
    the cancel is a fact: the order rests nowhere)."""
    async def main():
        async with open_venue() as (venue, sub):
            await venue.handle(order('r', 95.0))
            assert [[type(m).__name__, getattr(m, 'status', '')] for m in sub.frames[-1]] == [
                ['BrokerdOrderAck', ''], ['BrokerdStatus', 'open']]
            for tif in ('ioc', 'fok'):
                await venue.handle(order(tif, 95.0, tif=tif))
                ack, end = sub.frames[-1]
                assert isinstance(ack, BrokerdOrderAck) and ack.oid == tif
                assert (end.status, end.filled) == ('canceled', 0.0) and tif in end.reason
                assert end.reqid not in venue.books[FQME].orders
                assert end.reqid not in venue.store.orders

    trio.run(main)


# ---- an unwritable accounting dir (item 4) -------------------------------------

def test_a_fill_the_disk_refuses_is_reported_alarmed_and_recorded_once():
    async def main():
        async with open_venue() as (venue, sub):
            await venue.handle(order('r', 95.0))  # resting
            (ack,) = sub.of(BrokerdOrderAck, 'r')
            ledgers = ledger_path('sim', 'paper').parent
            ledgers.parent.mkdir(parents=True, exist_ok=True)
            ledgers.write_text('not a directory')  # works as root too
            await venue.handle(order('a', 101.0))
            # the fill is a fact: reported as one, then closed, saying why
            (fill,) = sub.of(BrokerdFill, 'a')
            done = sub.of(BrokerdStatus, 'a')[-1]
            assert done.status == 'closed' and 'cannot record fills' in done.reason
            assert str(ledgers) in done.reason and 'Errno' in done.reason
            assert [p.size for p in sub.of(BrokerdPosition)] == [1.0]
            alarm = venue.accounting.alarm
            assert alarm is not None and alarm.errno is not None and alarm.unrecorded == 1
            # new orders are refused, naming the path and errno
            await venue.handle(order('b', 101.0))
            (err,) = sub.of(BrokerdError, 'b')
            assert str(ledgers) in err.reason and f'Errno {alarm.errno}' in err.reason
            assert 'new orders and modifies are refused' in err.reason
            # a resting order can still be cancelled
            await venue.handle({'name': 'brokerd_cancel', 'oid': 'r', 'reqid': ack.reqid,
                                'account': 'paper', 'time_ns': 1})
            assert sub.of(BrokerdStatus, 'r')[-1].status == 'canceled'
            # the disk comes back: the retry records the fill, once
            ledgers.unlink()
            with trio.fail_after(10):
                while venue.accounting.alarm is not None:
                    await trio.sleep(0.05)
            on_disk = TransactionLedger.load('sim', 'paper')
            assert list(on_disk) == [fill.tid]
            assert Account.load('sim', 'paper').get(FQME).size == 1.0
            await venue.handle(order('c', 101.0))
            assert sub.of(BrokerdStatus, 'c')[-1].status == 'closed'
            assert sorted(TransactionLedger.load('sim', 'paper')) == sorted(
                [fill.tid, sub.of(BrokerdFill, 'c')[0].tid])

    trio.run(main)
