"""Paper trading end to end: fills land in the trade ledger and the
positions table on disk, and positions survive a fresh session and a
restart of the whole service tree."""
from __future__ import annotations

import math

import pytest

from piker.testing import PaperSim
from tests._ems_helpers import BASE, FQME, check_dialog, fill_prices, start

pytestmark = pytest.mark.timeout(60)

# a deep book, so a ladder of marketable orders never runs out of size
DEEP = dict(BASE, bsize=100.0, asize=100.0)


def test_marketable_buy_and_sell_fill_into_ledger_and_positions(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        buy = await ems.place('buy', 101.0, 1.0)  # through the ask
        closed = await ems.wait(buy, 'closed')
        assert closed.filled == 1.0
        assert fill_prices(ems, buy) == [100.0]  # at the touch, not the limit
        pos = await ems.wait_position(FQME, 1.0)
        assert pos.avg_price == 100.0

        sell = await ems.place('sell', 98.0, 0.4)
        await ems.wait(sell, 'closed')
        assert fill_prices(ems, sell) == [99.0]
        await ems.wait_position(FQME, 0.6)
        for oid in (buy, sell):
            check_dialog(ems, oid)

        # the ledger has exactly these fills, with the fill's trade ids
        ledger = sim.ledger()
        got = sorted((t.size, t.price) for t in ledger.values())
        assert got == [(-0.4, 99.0), (1.0, 100.0)]
        tids = {
            st.brokerd_msg['tid'] for oid in (buy, sell)
            for st in ems.statuses(oid) if st.resp == 'fill'
        }
        assert set(ledger) == tids
        # and the positions file agrees with the ledger and the stream
        pos = sim.account().get(FQME)
        assert math.isclose(pos.size, 0.6) and math.isclose(pos.ppu, 100.0)
        assert math.isclose(ems.position(FQME), 0.6)

    paper_sim(main)


def test_fills_are_limited_by_the_quoted_size(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim, **dict(BASE, asize=0.3))
        oid = await ems.place('buy', 100.0, 1.0)
        part = await ems.wait(oid, 'fill')
        assert (part.filled, part.remaining) == (0.3, 0.7)
        await ems.wait(oid, 'open')  # the rest rests at its limit
        await sim.push(FQME, ask=100.0, asize=10.0)
        await ems.wait(oid, 'closed')
        assert ems.resps(oid) == ['pending', 'fill', 'open', 'fill', 'closed']
        assert fill_prices(ems, oid) == [100.0, 100.0]
        check_dialog(ems, oid)
        assert sim.ledger_size(FQME) == 1.0

    paper_sim(main)


# (action, size, position after): long, part out, through flat to short,
# back through flat to long, flat, short again
LADDER = [
    ('buy', 2.0, 2.0),
    ('sell', 1.0, 1.0),
    ('sell', 2.0, -1.0),
    ('buy', 3.0, 2.0),
    ('sell', 2.0, 0.0),
    ('sell', 0.5, -0.5),
]


def test_ladder_through_flat_and_back_persists(paper_sim):
    async def trade(sim: PaperSim) -> tuple[float, float]:
        ems = await start(sim, **DEEP)
        for action, size, after in LADDER:
            # marketable against the (constant) deep book
            price = 101.0 if action == 'buy' else 98.0
            mark = ems.mark()
            oid = await ems.place(action, price, size)
            await ems.wait(oid, 'closed')
            check_dialog(ems, oid)
            await ems.wait_position(FQME, after, since=mark)
            assert math.isclose(sim.ledger_size(FQME), after, abs_tol=1e-9)
            assert math.isclose(sim.position_size(FQME), after, abs_tol=1e-9)
        last = ems.positions[('sim', 'paper')]
        (pos,) = last
        # a fresh session in the same tree: the handshake has the position
        await ems.close()
        again = await sim.open_ems(FQME)
        (hs,) = again.initial_positions[('sim', 'paper')]
        assert (hs.size, hs.avg_price) == (pos.size, pos.avg_price)
        return pos.size, pos.avg_price

    size, ppu = paper_sim(trade)
    assert (size, ppu) == (-0.5, 99.0)  # a fresh short, sold at the bid
    assert len(LADDER) == len(set(_tids_in_ledger()))  # nothing lost / doubled

    async def reboot(sim: PaperSim) -> None:
        # a new tree on the same config dir: paperboi rebuilds from the ledger
        ems = await sim.open_ems(FQME)
        (hs,) = ems.initial_positions[('sim', 'paper')]
        assert (hs.symbol, hs.size, hs.avg_price) == (FQME, size, ppu)
        # and trading on from there keeps adding up
        await sim.push(FQME, **DEEP)
        oid = await ems.place('buy', 101.0, 0.5)
        await ems.wait(oid, 'closed')
        await ems.wait_position(FQME, 0.0)
        assert sim.ledger_size(FQME) == 0.0 and sim.position_size(FQME) == 0.0

    paper_sim(reboot)


def _tids_in_ledger() -> list[str]:
    from piker.accounting import TransactionLedger
    return list(TransactionLedger.load('sim', 'paper'))
