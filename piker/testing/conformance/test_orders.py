"""Tree-level checks: DESIGN.md section 5 through emsd, in the harness's
mode (live at its venue; paper for the sim), each in a fresh tree.

Prices are around 100 with sizes that every built-in market takes; the
harness moves the market (`venue.quote`), so every fill is scripted.
"""
from __future__ import annotations

import math
from decimal import Decimal

import pytest
import trio

from piker.accounting import quantize_to_tick
from piker.clearing import Status

from ._harness import Harness, Venue

BOOK = dict(bid=100.0, ask=101.0, bsize=5.0, asize=5.0)
PAD_TICKS = 5  # emsd's default dark order padding (DESIGN.md flow 4)
TERMINAL = {'closed', 'canceled', 'error', 'alert_triggered'}


def check_story(resps: list[str]) -> None:
    """One terminal status, last; nothing after it."""
    ends = [r for r in resps if r in TERMINAL]
    assert len(ends) == 1 and resps[-1] == ends[0], resps


def fill_tids(ems, oid: str) -> list[str]:
    return [s.brokerd_msg['tid'] for s in ems.statuses(oid) if s.resp == 'fill']


async def price_tick(fqme: str) -> Decimal:
    from piker.data import open_feed
    async with open_feed([fqme], start_stream=False) as feed:
        return feed.mkts[fqme].price_tick


def test_live_order_flow_and_clients(world: Harness) -> None:
    """Flows 1, 2, 6, 7: pending -> open -> fill* -> closed with partial
    fills; a second client's handshake holds the working dialog and the
    position; it sees the first client's orders; a client that leaves
    leaves its order working; a cancel ends it."""
    h = world

    async def main(v: Venue) -> None:
        a = await v.sim.open_ems(h.fqme, mode=h.mode)
        assert h.account in a.accounts, a.accounts
        await v.quote(**BOOK)
        oid = await a.place('buy', 99.0, 0.5, account=h.account)
        opened = await a.wait(oid, 'open', timeout=10)
        assert opened.reqid is not None
        await v.quote(bid=98.0, ask=99.0, bsize=5.0, asize=0.3)  # a partial fill
        part = await a.wait(oid, 'fill', timeout=10)
        assert part.brokerd_msg['size'] == pytest.approx(0.3)
        assert part.filled == pytest.approx(0.3) and part.remaining == pytest.approx(0.2)
        await v.quote(bid=98.0, ask=99.0, bsize=5.0, asize=5.0)
        closed = await a.wait(oid, 'closed', timeout=10)
        assert closed.filled == pytest.approx(0.5) and closed.remaining == pytest.approx(0.0)
        resps = a.resps(oid)
        assert resps[:2] == ['pending', 'open'] and resps.count('fill') == 2, resps
        check_story(resps)
        assert all(p <= 99.0 for p in (s.brokerd_msg['price'] for s in a.statuses(oid)
                                        if s.resp == 'fill')), 'a buy fills at its limit or better'
        await a.wait_position(h.fqme, 0.5, account=h.account, timeout=10)

        await v.quote(**BOOK)
        rest = await a.place('buy', 90.0, 0.1, account=h.account)
        await a.wait(rest, 'open', timeout=10)
        b = await v.sim.open_ems(h.fqme, mode=h.mode)
        assert b.initial_dialogs[rest].resp == 'open'
        assert oid not in b.initial_dialogs  # only active dialogs
        assert b.position(h.fqme, h.broker, h.account) == pytest.approx(0.5)
        other = await a.place('buy', 91.0, 0.1, account=h.account)
        await b.wait(other, 'open', timeout=10)  # b sees a's new dialog
        await a.close()
        await trio.sleep(0.3)
        assert [o.working for o in await v.orders(rest)] in ([True], [None])
        for order in (rest, other):
            await b.client.cancel(order)
            await b.wait(order, 'canceled', timeout=10)
            check_story(b.resps(order))

    h.run(main)


def test_cancel_before_ack_and_modify_keeps_one_venue_order(world: Harness) -> None:
    """Flows 2, 3, 8: the venue answers late (its events may beat its
    acks); a cancel sent before the ack is honoured; a modify keeps the
    dialog's reqid and one working venue order, which fills at its new
    price and only there."""
    h = world

    async def main(v: Venue) -> None:
        await v.quote(**BOOK)
        ems = await v.sim.open_ems(h.fqme, mode=h.mode)
        late = await ems.place('buy', 80.0, 0.1, account=h.account)
        await ems.client.cancel(late)
        await ems.wait(late, 'canceled', timeout=10)
        assert 'error' not in ems.resps(late)
        check_story(ems.resps(late))
        assert not [o for o in await v.orders(late) if o.working]

        oid = await ems.place('buy', 90.0, 0.2, account=h.account)
        opened = await ems.wait(oid, 'open', timeout=10)
        mark = ems.mark()
        await ems.client.update(oid, price=95.0)
        st = await ems.wait_for(lambda m: isinstance(m, Status) and m.oid == oid
                                and m.resp == 'open' and m.req.price == 95.0,
                                since=mark, timeout=10)
        assert st.reqid == opened.reqid, 'one dialog, one venue order id'
        working = [o for o in await v.orders(oid) if o.working is not False]
        assert len(working) == 1, working
        assert working[0].price in (None, 95.0)
        # 94.5 would not cross the old 90, crosses the new 95
        await v.quote(bid=94.0, ask=94.5, bsize=5.0, asize=5.0)
        await ems.wait(oid, 'closed', timeout=10)
        check_story(ems.resps(oid))
        assert len(await v.orders(oid)) <= 2  # at most the replaced one besides
        assert not [o for o in await v.orders(oid) if o.working]

    h.run(main, ack_delay=0.3)


def test_dark_order_and_alert(world: Harness) -> None:
    """Flows 3, 4, 5: a dark order re-armed by a modify triggers at its new
    level, padded by 5 price ticks and quantized, then runs the live flow;
    an alert triggers and sends nothing to the venue."""
    h = world

    async def main(v: Venue) -> None:
        tick = await price_tick(h.fqme)
        await v.quote(**BOOK, last=100.5, size=0.01)
        ems = await v.sim.open_ems(h.fqme, mode=h.mode)
        dark = await ems.place('buy', 95.0, 0.1, exec_mode='dark', account=h.account)
        await ems.wait(dark, 'dark_open', timeout=10)
        alert = await ems.place('alert', 110.0, 1.0, exec_mode='dark', account=h.account)
        await ems.wait(alert, 'dark_open', timeout=10)
        mark = ems.mark()
        await ems.client.update(dark, price=96.0)
        await ems.wait_for(lambda m: isinstance(m, Status) and m.oid == dark
                           and m.resp == 'dark_open' and m.req.price == 96.0, since=mark)
        await v.quote(bid=95.5, ask=96.0, bsize=5.0, asize=5.0)  # not at the old 95
        trig = await ems.wait(dark, 'dark_triggered', timeout=10)
        want = float(quantize_to_tick(Decimal('96') + PAD_TICKS * tick, tick))
        assert trig.brokerd_msg['submit_price'] == pytest.approx(want)
        closed = await ems.wait(dark, 'closed', timeout=10)
        assert closed.filled == pytest.approx(0.1)
        resps = ems.resps(dark)
        assert resps[:3] == ['dark_open', 'dark_open', 'dark_triggered'], resps
        assert 'fill' in resps, resps  # then the live flow
        check_story(resps)
        (order,) = await v.orders(dark)
        assert order.price in (None, pytest.approx(want))
        await v.quote(last=110.0, size=0.01)
        await ems.wait(alert, 'alert_triggered', timeout=10)
        check_story(ems.resps(alert))
        assert await v.orders(alert) == []

    h.run(main)


def test_order_report_after_reconnect(world: Harness) -> None:
    """The trading daemon is SIGKILLed; an order fills meanwhile: emsd
    learns it from the next dialogue's order report, once; the other order
    stays working, one venue order, and can be cancelled."""
    h = world

    async def main(v: Venue) -> None:
        await v.quote(**BOOK)
        ems = await v.sim.open_ems(h.fqme, mode=h.mode)
        keep = await ems.place('buy', 90.0, 0.1, account=h.account)
        fills = await ems.place('buy', 91.0, 0.2, account=h.account)
        await ems.wait(keep, 'open', timeout=10)
        await ems.wait(fills, 'open', timeout=10)
        await v.sim.kill(h.trading_daemon)
        await v.fill_while_away(fills, 91.0, 'buy')
        closed = await ems.wait(fills, 'closed', timeout=30)
        assert closed.filled == pytest.approx(0.2)
        await trio.sleep(0.3)  # anything repeated would arrive by now
        tids = fill_tids(ems, fills)
        assert len(tids) == len(set(tids)) >= 1, ems.resps(fills)
        check_story(ems.resps(fills))
        assert ems.resps(keep)[-1] == 'open', ems.resps(keep)
        (working,) = [o for o in await v.orders(keep) if o.working is not False]
        assert working.price in (None, 90.0)
        with trio.fail_after(5):  # the fill made while away reaches the ledger
            while not v.sim.ledger(h.broker, h.account):
                await trio.sleep(0.02)
        assert set(v.sim.ledger(h.broker, h.account)) == set(tids)
        await ems.client.cancel(keep)
        await ems.wait(keep, 'canceled', timeout=10)
        check_story(ems.resps(keep))  # canceled once, by the trader only
        await ems.wait_position(h.fqme, 0.2, account=h.account, timeout=10)

    h.run(main)


def test_duplicate_fills_dropped(world: Harness) -> None:
    """Flow 8: the venue's events around a partial fill arrive twice while
    the order still works: each fill is applied once (client, ledger and
    position agree), one `closed`."""
    h = world

    async def main(v: Venue) -> None:
        await v.quote(bid=100.0, ask=101.0, bsize=5.0, asize=0.3)
        ems = await v.sim.open_ems(h.fqme, mode=h.mode)
        async with v.duplicated():
            oid = await ems.place('buy', 101.0, 0.5, account=h.account)
            await ems.wait(oid, 'fill', timeout=10)
            # the book moves away: nothing more fills until the test says
            await v.quote(bid=100.0, ask=105.0, bsize=5.0, asize=5.0)
        await trio.sleep(0.3)  # a repeat would arrive by now
        assert len(set(fill_tids(ems, oid))) == 1, ems.resps(oid)
        with trio.fail_after(20):
            while 'closed' not in ems.resps(oid):  # a venue that restarted
                await v.quote(bid=100.0, ask=101.0, bsize=5.0, asize=5.0)  # may miss one
                with trio.move_on_after(1):
                    await ems.wait(oid, 'closed')
        await trio.sleep(0.3)
        tids = fill_tids(ems, oid)
        assert len(tids) == 2 and len(set(tids)) == 2, (tids, ems.resps(oid))
        check_story(ems.resps(oid))
        assert ems.statuses(oid)[-1].filled == pytest.approx(0.5)
        with trio.fail_after(5):  # the ledger is written just after the report
            while len(v.sim.ledger(h.broker, h.account)) < 2:
                await trio.sleep(0.02)
        ledger = v.sim.ledger(h.broker, h.account)
        assert set(ledger) == set(tids)
        assert math.isclose(sum(t.size for t in ledger.values()), 0.5)
        await ems.wait_position(h.fqme, 0.5, account=h.account, timeout=10)

    h.run(main)
