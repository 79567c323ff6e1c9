"""The order flows of DESIGN.md section 5, end to end through a private
service tree: client -> emsd -> paperboi.sim, quotes from the sim market
under test control (every step is driven by a pushed quote or a received
status, never by sleeping)."""
from __future__ import annotations

import math

import pytest

from piker.clearing import OrderFinishedError
from piker.testing import PaperSim
from tests._ems_helpers import BASE, FQME, check_dialog, fill_prices, start

pytestmark = pytest.mark.timeout(40)

# the paper venue answers every request 200 ms late: long enough that a
# cancel sent right after an order reaches emsd well before the ack
LATENCY = {'sim': {'paper': {'latency_ms': 200}}}


# -- flow 1: live order ---------------------------------------------------------

def test_live_order_pending_open_fills_closed(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', 98.0, 2.0)
        opened = await ems.wait(oid, 'open')
        assert opened.reqid is not None and opened.remaining == 2.0
        # the touch reaches the limit with only 0.5 on offer: a partial fill
        await sim.push(FQME, ask=98.0, asize=0.5)
        part = await ems.wait(oid, 'fill')
        assert (part.filled, part.remaining) == (0.5, 1.5)
        # then a deeper book fills the rest, still at the limit price
        await sim.push(FQME, ask=97.5, asize=5.0)
        closed = await ems.wait(oid, 'closed')
        assert closed.filled == 2.0 and closed.remaining == 0.0
        assert ems.resps(oid) == ['pending', 'open', 'fill', 'fill', 'closed']
        assert fill_prices(ems, oid) == [98.0, 98.0]
        check_dialog(ems, oid)
        await ems.wait_position(FQME, 2.0)
        assert oid not in ems.dialogs
        assert sim.ledger_size(FQME) == 2.0 and sim.position_size(FQME) == 2.0
        assert await sim.venue_orders() == {oid: [opened.reqid]}

    paper_sim(main)


# -- flow 2: cancel ------------------------------------------------------------------

def test_cancel_live_order(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', 95.0, 1.0)
        await ems.wait(oid, 'open')
        await ems.client.cancel(oid)
        st = await ems.wait(oid, 'canceled')
        assert st.filled == 0.0
        assert ems.resps(oid) == ['pending', 'open', 'canceled']
        check_dialog(ems, oid)
        assert oid not in ems.dialogs
        assert len(sim.ledger()) == 0

    paper_sim(main)


def test_cancel_before_the_venue_ack_is_sent_on_the_ack(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', 95.0, 1.0)
        await ems.client.cancel(oid)  # the venue has not even seen the order yet
        st = await ems.wait(oid, 'canceled')
        # never reported open: the stashed cancel went out with the ack
        assert ems.resps(oid) == ['pending', 'canceled']
        check_dialog(ems, oid)
        venue = await sim.venue_orders()
        assert venue == {oid: [st.reqid]}  # acked once, then cancelled
        assert st.reason == 'cancelled by request'

    paper_sim(main, brokers=LATENCY)


def test_cancel_during_dark_triggered(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', 95.0, 1.0, exec_mode='dark')
        await ems.wait(oid, 'dark_open')
        # a print below the level fires the trigger; the ask stays far away
        # so the live order (at 94 + 5 ticks) rests at the venue
        await sim.push(FQME, last=94.0)
        trig = await ems.wait(oid, 'dark_triggered')
        assert trig.brokerd_msg['submit_price'] == 94.5
        await ems.client.cancel(oid)
        await ems.wait(oid, 'canceled')
        assert ems.resps(oid) == ['dark_open', 'dark_triggered', 'canceled']
        check_dialog(ems, oid)
        assert len((await sim.venue_orders())[oid]) == 1
        assert len(sim.ledger()) == 0

    paper_sim(main, brokers=LATENCY)


# -- flow 3: modify ----------------------------------------------------------------

def test_modify_live_order_in_place(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', 95.0, 1.0)
        first = await ems.wait(oid, 'open')
        mark = ems.mark()
        await ems.client.update(oid, price=96.0, size=1.5)
        moved = await ems.wait(oid, 'open', since=mark)
        assert (moved.req.price, moved.req.size) == (96.0, 1.5)
        assert moved.reqid == first.reqid
        await sim.push(FQME, ask=96.0, asize=5.0)
        closed = await ems.wait(oid, 'closed')
        assert closed.filled == 1.5
        assert fill_prices(ems, oid) == [96.0]
        check_dialog(ems, oid)
        # one venue order for the whole dialog, modified by its reqid
        assert await sim.venue_orders() == {oid: [first.reqid]}
        assert {st.reqid for st in ems.statuses(oid)[1:]} == {first.reqid}

    paper_sim(main)


def test_modify_dark_order_rearms_its_trigger(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', 95.0, 1.0, exec_mode='dark')
        await ems.wait(oid, 'dark_open')
        mark = ems.mark()
        await ems.client.update(oid, price=90.0)
        moved = await ems.wait(oid, 'dark_open', since=mark)
        assert moved.req.price == 90.0
        # a quote through the old level only; an alert on the same quote
        # proves emsd has processed it (one quote fires all its triggers)
        alert = await ems.place('alert', 94.0, 0.0)
        await ems.wait(alert, 'dark_open')
        await sim.push(FQME, ask=94.5, last=94.0)
        await ems.wait(alert, 'alert_triggered')
        assert 'dark_triggered' not in ems.resps(oid)
        # the new level fires: submitted 5 ticks above the crossing ask
        await sim.push(FQME, ask=89.5, asize=5.0)
        trig = await ems.wait(oid, 'dark_triggered')
        assert trig.brokerd_msg['submit_price'] == 90.0
        await ems.wait(oid, 'closed')
        check_dialog(ems, oid)
        assert all(p <= 90.0 for p in fill_prices(ems, oid))
        assert len((await sim.venue_orders())[oid]) == 1

    paper_sim(main)


# -- flow 4: dark order ------------------------------------------------------------

def test_dark_order_triggers_padded_and_quantized(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('sell', 101.0, 1.0, exec_mode='dark')
        await ems.wait(oid, 'dark_open')
        assert len(sim.ledger()) == 0 and await sim.venue_orders() == {}
        # an off-grid bid crosses the (up) level: 101.23 - 3 ticks, floored
        await sim.push(FQME, bid=101.23, ask=101.5, bsize=5.0)
        trig = await ems.wait(oid, 'dark_triggered')
        assert trig.brokerd_msg['price'] == 101.23
        assert trig.brokerd_msg['submit_price'] == 100.9
        assert trig.brokerd_msg['direction'] == 'up'
        await ems.wait(oid, 'closed')
        resps = ems.resps(oid)
        assert resps[:2] == ['dark_open', 'dark_triggered']
        assert resps[-2:] == ['fill', 'closed']
        check_dialog(ems, oid)
        # sold at the bid or (if the order beat the quote) at its limit
        assert all(p >= 100.9 for p in fill_prices(ems, oid))
        await ems.wait_position(FQME, -1.0)

    paper_sim(main, conf={'ems': {'dark_pad_ticks': 3}})


# -- flow 5: alert ----------------------------------------------------------------

def test_alert_triggers_without_a_venue_order(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('alert', 101.0, 0.0)
        st = await ems.wait(oid, 'dark_open')
        assert oid in ems.dialogs and st.req.exec_mode == 'dark'
        await sim.push(FQME, ask=102.0)  # alerts watch prints only
        await sim.push(FQME, last=101.5)
        fired = await ems.wait(oid, 'alert_triggered')
        assert fired.brokerd_msg['price'] == 101.5
        assert ems.resps(oid) == ['dark_open', 'alert_triggered']
        assert all(s.reqid is None for s in ems.statuses(oid))
        assert oid not in ems.dialogs
        assert oid not in await sim.venue_orders()
        assert len(sim.ledger()) == 0

    paper_sim(main)


# -- flows 6 and 7: handshake, several clients, disconnects ---------------------------

def test_handshake_returns_active_dialogs_and_positions(paper_sim):
    async def main(sim: PaperSim):
        a = await start(sim)
        bought = await a.place('buy', 100.0, 1.0)
        await a.wait(bought, 'closed')
        await a.wait_position(FQME, 1.0)
        live = await a.place('buy', 95.0, 0.5)
        await a.wait(live, 'open')
        dark = await a.place('sell', 105.0, 0.25, exec_mode='dark')
        await a.wait(dark, 'dark_open')

        b = await sim.open_ems(FQME)
        assert {oid: st.resp for oid, st in b.initial_dialogs.items()} == {
            live: 'open', dark: 'dark_open',
        }
        assert b.initial_dialogs[live].req.price == 95.0
        assert b.initial_dialogs[dark].req.size == 0.25
        (pos,) = b.initial_positions[('sim', 'paper')]
        assert (pos.symbol, pos.size, pos.avg_price) == (FQME, 1.0, 100.0)
        assert 'paper' in b.accounts

    paper_sim(main)


def test_clients_see_and_cancel_each_others_orders(paper_sim):
    async def main(sim: PaperSim):
        a = await start(sim)
        b = await sim.open_ems(FQME)
        oid = await a.place('buy', 95.0, 1.0)
        await b.wait(oid, 'open')
        assert oid in b.dialogs
        await b.client.cancel(oid)  # b never placed it: known from the stream
        await a.wait(oid, 'canceled')
        await b.wait(oid, 'canceled')
        dark = await b.place('sell', 105.0, 1.0, exec_mode='dark')
        await a.wait(dark, 'dark_open')
        await sim.push(FQME, bid=105.0, bsize=5.0)
        for sess in (a, b):
            await sess.wait(dark, 'closed')
            assert sess.resps(oid) == ['pending', 'open', 'canceled']
            check_dialog(sess, dark)

    paper_sim(main)


def test_disconnected_clients_orders_keep_working(paper_sim):
    async def main(sim: PaperSim):
        a = await start(sim)
        live = await a.place('buy', 95.0, 1.0)
        await a.wait(live, 'open')
        dark = await a.place('sell', 105.0, 1.0, exec_mode='dark')
        await a.wait(dark, 'dark_open')
        # a cancel sent just before disconnecting still gets out
        gone = await a.place('buy', 95.5, 1.0)
        await a.wait(gone, 'open')
        a.client.cancel_nowait(gone)
        await a.close()

        b = await sim.open_ems(FQME)
        if gone in b.initial_dialogs:  # the venue has not answered yet
            await b.wait(gone, 'canceled')
        assert set(b.initial_dialogs) - {gone} == {live, dark}
        await sim.push(FQME, bid=105.0, ask=95.0, bsize=5.0, asize=5.0)
        await b.wait(live, 'closed')
        await b.wait(dark, 'closed')
        assert sim.ledger_size(FQME) == 0.0 and len(sim.ledger()) == 2
        # b can manage what a left behind
        again = await b.place('buy', 90.0, 1.0)
        await b.wait(again, 'open')
        await b.client.cancel(again)
        await b.wait(again, 'canceled')

    paper_sim(main)


# -- flow 8: repeated / late requests -------------------------------------------

def test_repeated_and_late_requests_end_each_dialog_once(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', 95.0, 1.0)
        await ems.wait(oid, 'open')
        # a double cancel: one cancel goes to the venue, one terminal status
        ems.client.cancel_nowait(oid)
        ems.client.cancel_nowait(oid)
        await ems.wait(oid, 'canceled')
        # a re-used oid of a finished dialog is not re-opened, and gets no
        # second end: the client refuses it, emsd drops it from this client
        # (which heard the end); a client that did not gets an error
        order = ems.client.mk_order('buy', 95.0, 1.0, oid=oid)
        with pytest.raises(OrderFinishedError, match='already canceled'):
            await ems.client.send(order)
        other = await sim.open_ems('ethusdt.sim')
        mark = ems.mark()
        ems.send_raw(order)
        other.send_raw(order)
        refused = await other.wait(oid, 'error')
        assert 'already canceled: a new order needs a new oid' in refused.reason
        # an order placed afterwards completes: emsd handled both in order
        after = await ems.place('buy', 100.0, 1.0)
        await ems.wait(after, 'closed', since=mark)
        assert ems.resps(oid) == ['pending', 'open', 'canceled']
        check_dialog(ems, after)
        assert len((await sim.venue_orders())[oid]) == 1
        assert math.isclose(sim.ledger_size(FQME), 1.0)

    paper_sim(main)


def test_base_quote_is_what_the_venue_sees(paper_sim):
    """Sanity check of the test kit itself: a marketable order fills at
    the pushed touch, so every other test can rely on `BASE`."""
    async def main(sim: PaperSim):
        ems = await start(sim)
        buy = await ems.place('buy', 101.0, 1.0)
        await ems.wait(buy, 'closed')
        sell = await ems.place('sell', 98.0, 1.0)
        await ems.wait(sell, 'closed')
        assert fill_prices(ems, buy) == [BASE['ask']]
        assert fill_prices(ems, sell) == [BASE['bid']]

    paper_sim(main)
