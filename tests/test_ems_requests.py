"""Bursts and stragglers of client requests, end to end on the paper venue.

- a burst of modifies does not queue up at the venue: while one is in
  flight the newer ones wait in emsd, the newest replacing the others, and
  a cancel overtakes them (it queues behind the one in flight at most);
- a modify or cancel of an order that has ended is answered without a
  second terminal status.
"""
from __future__ import annotations

import json

import pytest

from piker.clearing import OrderFinishedError, Status
from piker.clearing._journal import Journal
from piker.testing import EMSSession, PaperSim
from tests._ems_helpers import check_dialog, start

pytestmark = pytest.mark.timeout(60)

# the paper venue handles commands one after the other, each this late:
# the burst reaches emsd long before the first modify's answer comes back
LATENCY = {'sim': {'paper': {'latency_ms': 400}}}
BURST = [round(80.0 + i * 0.1, 1) for i in range(50)]


def venue_versions(sim: PaperSim, oid: str) -> list[float]:
    """The prices `oid` worked at on the paper venue, in order: the venue
    records each new or modified version of an order before acking it
    (`piker.clearing._paper_store`)."""
    path = sim.config_dir / 'accounting' / 'paper_orders.sim.jsonl'
    records = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [r['order']['price'] for r in records
            if r['op'] == 'rest' and r['order']['oid'] == oid]


async def burst(sim: PaperSim) -> tuple[EMSSession, str, int]:
    """A resting buy at 90, then the `BURST` of modifies back to back;
    returns the session, the oid and the mark before the burst."""
    ems = await start(sim)
    oid = await ems.place('buy', 90.0, 1.0)
    await ems.wait(oid, 'open')
    mark = ems.mark()
    for price in BURST:
        await ems.client.update(oid, price=price)
    return ems, oid, mark


def since(ems: EMSSession, oid: str, mark: int) -> list[Status]:
    return [m for m in ems.msgs[mark:] if isinstance(m, Status) and m.oid == oid]


def test_cancel_overtakes_a_burst_of_modifies(paper_sim):
    async def main(sim: PaperSim):
        ems, oid, mark = await burst(sim)
        await ems.client.cancel(oid)
        await ems.wait(oid, 'canceled', since=mark)
        # the venue worked the first modify (in flight when the others
        # came) and then took the cancel: the 49 others were superseded
        # and dropped (a loaded machine may let one more through)
        versions = venue_versions(sim, oid)
        assert versions[:2] == [90.0, 80.0] and len(versions) <= 3, versions
        assert [s.resp for s in since(ems, oid, mark)] == ['canceled']
        check_dialog(ems, oid)

    paper_sim(main, brokers=LATENCY)


def test_a_burst_of_modifies_ends_at_the_newest(paper_sim):
    async def main(sim: PaperSim):
        ems, oid, mark = await burst(sim)
        # (each 'open' shows the newest price asked: a client sees the
        # order as it will be; the venue's record says what it worked)
        await ems.until(lambda: venue_versions(sim, oid)[-1] == BURST[-1])
        versions = venue_versions(sim, oid)
        assert versions[:2] == [90.0, 80.0] and versions[-1] == BURST[-1], versions
        assert len(versions) <= 4, versions
        assert {(s.resp, s.req.price) for s in since(ems, oid, mark)} == {('open', BURST[-1])}
        await ems.client.cancel(oid)
        await ems.wait(oid, 'canceled')
        check_dialog(ems, oid)

    paper_sim(main, brokers=LATENCY)


def test_requests_for_an_ended_order_get_no_second_end(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', 90.0, 1.0)
        await ems.wait(oid, 'open')
        await ems.client.cancel(oid)
        await ems.wait(oid, 'canceled')
        # the client API says so at once
        with pytest.raises(OrderFinishedError, match='already canceled: nothing to modify'):
            await ems.client.update(oid, price=91.0)
        assert await ems.client.cancel(oid) is False  # nothing works: nothing sent
        assert oid not in ems.dialogs
        # a request that raced the end (sent before the client heard it)
        # reaches emsd: the end it is about to hear answers it
        mark = ems.mark()
        order = ems.client.mk_order('buy', 91.0, 1.0, oid=oid)
        ems.send_raw(order)
        ems.send_raw({'name': 'cancel', 'oid': oid, 'symbol': order.symbol})
        later = await ems.place('buy', 100.0, 1.0)  # emsd handled them all
        await ems.wait(later, 'closed', since=mark)
        assert ems.resps(oid) == ['pending', 'open', 'canceled']
        check_dialog(ems, oid)
        # and its history (emsd's journal) ends once too
        with Journal.open(readonly=True) as journal:
            events = journal.dialog(oid).events
        assert [st.resp for st in events] == ['pending', 'open', 'canceled']
        assert len((await sim.venue_orders())[oid]) == 1  # not re-opened

    paper_sim(main)
