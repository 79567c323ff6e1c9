"""Brackets through the real service tree: on the sim paper venue and on
the fake Binance (live mode), and across an emsd SIGKILL."""
from __future__ import annotations

import inspect
import math
from typing import Any

import pytest
import trio

from piker.clearing import Status
from piker.clearing._journal import Journal

VENUES = {
    # fqme, account, the market the tests start from
    'sim': ('btcusdt.sim', 'paper'),
    'binance': ('btcusdt.binance', 'spot'),
}


async def push(sim: Any, fqme: str, **quote: float) -> None:
    out = sim.push(fqme, **quote)  # the sim's is async, the fake's is not
    if inspect.isawaitable(out):
        await out


async def start(sim: Any, fqme: str) -> Any:
    """The market the tests start from (bid 99 / ask 100), and a session."""
    await push(sim, fqme, bid=99, ask=100, last=99.5, bsize=5, asize=5)
    return await sim.open_ems(fqme)


def run(request: pytest.FixtureRequest, venue: str, main: Any) -> None:
    if venue == 'sim':
        request.getfixturevalue('paper_sim')(main, timeout=60)
    else:
        request.getfixturevalue('binance_sim')(main, fake={'balances': {'USDT': 10_000}})


@pytest.mark.timeout(90)
@pytest.mark.parametrize('venue', sorted(VENUES))
def test_bracket_arms_with_partial_fills_tp_closes_and_cancels_sl(venue, request):
    fqme, account = VENUES[venue]

    async def main(sim):
        ems = await start(sim, fqme)
        # rests below the market; children held
        entry = ems.client.mk_order('buy', 98.0, 1.0, account=account)
        b = await ems.client.bracket(entry, tp=110.0, sl=90.0)
        for oid in (b.tp, b.sl):
            st = await ems.wait(oid, 'held', timeout=10)
            assert st.armed == 0.0 and st.req.parent == b.entry and st.req.reduce_only
        assert ems.dialogs[b.tp].req.oco == ems.dialogs[b.sl].req.oco
        await ems.wait(b.entry, 'open', timeout=10)
        # a partial entry fill arms partial children, the rest grows them
        await push(sim, fqme, bid=97, ask=98, last=97.5, bsize=5, asize=0.4)
        for oid in (b.tp, b.sl):
            st = await ems.wait_for(lambda m, o=oid: isinstance(m, Status) and m.oid == o
                                    and m.resp == 'dark_open', timeout=10)
            # armed for exactly what the entry had filled by then (a part)
            at = ems.msgs.index(st)
            fills = [m.filled for m in ems.msgs[:at]
                     if isinstance(m, Status) and m.oid == b.entry and m.resp == 'fill']
            assert 0 < st.armed < 1.0 and st.armed == pytest.approx(fills[-1])
        await push(sim, fqme, bid=97, ask=98, last=97.5, bsize=5, asize=5)
        await ems.wait(b.entry, 'closed', timeout=10)
        await ems.until(lambda: all(
            ems.dialogs[o].armed == pytest.approx(1.0) for o in (b.tp, b.sl)), timeout=10)
        # the take-profit trades: the position closes, the stop-loss is cancelled
        await push(sim, fqme, bid=110, ask=111, last=110.5, bsize=5, asize=5)
        await ems.wait(b.tp, 'closed', timeout=10)
        end = await ems.wait(b.sl, 'canceled', timeout=10)
        assert 'OCO' in end.reason and b.tp[:8] in end.reason
        fills = [s for s in ems.statuses(b.tp) if s.resp == 'fill']
        assert math.isclose(sum(f.brokerd_msg['size'] for f in fills), 1.0)
        assert ems.resps(b.sl).count('fill') == 0
        await ems.wait_position(fqme, 0.0, account=account, timeout=10)

    run(request, venue, main)


@pytest.mark.timeout(90)
@pytest.mark.parametrize('venue', sorted(VENUES))
def test_cancel_entry_cascades_cancel_child_leaves_the_rest(venue, request):
    fqme, account = VENUES[venue]

    async def main(sim):
        ems = await start(sim, fqme)
        b = await ems.client.bracket(ems.client.mk_order('buy', 90.0, 1.0, account=account),
                                     tp=110.0, sl=80.0)
        await ems.wait(b.entry, 'open', timeout=10)
        await ems.client.cancel(b.entry)
        for oid in (b.tp, b.sl):
            end = await ems.wait(oid, 'canceled', timeout=10)
            assert 'nothing filled' in end.reason
        # a filled entry: cancelling its TP leaves the SL armed
        b = await ems.client.bracket(ems.client.mk_order('buy', 100.0, 0.5, account=account),
                                     tp=110.0, sl=80.0)
        await ems.wait(b.entry, 'closed', timeout=10)
        await ems.until(lambda: ems.dialogs.get(b.sl) is not None
                        and ems.dialogs[b.sl].armed == pytest.approx(0.5), timeout=10)
        await ems.client.cancel(b.tp)
        await ems.wait(b.tp, 'canceled', timeout=10)
        # modify re-arms the stop (armed size kept); then it fires
        mark = ems.mark()
        await ems.client.update(b.sl, price=95.0)
        st = await ems.wait(b.sl, 'dark_open', since=mark, timeout=10)
        assert st.req.price == 95.0 and st.armed == pytest.approx(0.5)
        await push(sim, fqme, bid=94, ask=95, last=94.5, bsize=5, asize=5)
        await ems.wait(b.sl, 'closed', timeout=10)
        await ems.wait_position(fqme, 0.0, account=account, timeout=10)

    run(request, venue, main)


@pytest.mark.timeout(120)
def test_bracket_survives_emsd_sigkill_entry_and_tp_filled_while_down(paper_sim):
    fqme = 'btcusdt.sim'

    async def main(sim):
        await sim.push(fqme, bid=99, ask=100, last=99.5, bsize=5, asize=5)
        ems = await sim.open_ems(fqme)
        b = await ems.client.bracket(ems.client.mk_order('buy', 95.0, 1.0), tp=110.0, sl=90.0)
        await ems.wait(b.entry, 'open', timeout=10)
        await ems.wait(b.sl, 'held', timeout=10)
        await ems.close()
        await sim.flush_journal()
        await sim.kill('emsd')
        # the entry fills at the venue while emsd is down
        await sim.push(fqme, bid=94, ask=95, last=94.5, bsize=5, asize=5)
        await sim.until_ems(lambda st: st['restored']
                            and st['venues'].get('paperboi.sim') == 'up', timeout=30)
        ems = await sim.open_ems(fqme)
        await ems.until(lambda: all(
            o in ems.dialogs and ems.dialogs[o].resp == 'dark_open'
            and ems.dialogs[o].armed == pytest.approx(1.0) for o in (b.tp, b.sl)), timeout=15)
        assert b.entry not in ems.dialogs  # closed while emsd was down
        # a print at the TP fires it; the bid is too low to fill it yet
        await sim.push(fqme, bid=99, ask=100, last=110.0, bsize=5, asize=5)
        await ems.wait(b.tp, 'open', timeout=10)
        await ems.until(lambda: ems.dialogs[b.sl].resp == 'held', timeout=10)
        await ems.close()
        await sim.flush_journal()
        await sim.kill('emsd')
        # the TP fills while emsd is down: the restarted emsd cancels the SL
        await sim.push(fqme, bid=110, ask=111, last=110.5, bsize=5, asize=5)
        await sim.until_ems(lambda st: st['restored']
                            and st['venues'].get('paperboi.sim') == 'up', timeout=30)
        ems = await sim.open_ems(fqme)
        await ems.until(lambda: b.sl not in ems.dialogs and b.tp not in ems.dialogs,
                        timeout=15)
        await sim.flush_journal()
        with Journal.open(readonly=True) as journal:
            sl, tp = journal.dialog(b.sl), journal.dialog(b.tp)
        assert tp.phase == 'closed' and math.isclose(tp.filled, 1.0)
        assert sl.phase == 'canceled' and sl.filled == 0.0
        assert 'OCO' in sl.events[-1].reason, sl.events[-1]
        assert math.isclose(sim.position_size(fqme), 0.0, abs_tol=1e-9)

    paper_sim(main, timeout=110)


@pytest.mark.timeout(120)
def test_typed_bracket_rearmed_after_sigkill_closes_at_tp(paper_sim):
    """`client.bracket()`'s children are a reduce-only take_profit and stop:
    held (not refused: no position yet), armed by the entry's fill, re-armed
    by an emsd restarted between the fill and the TP touch (with their
    types' directions), then the TP fires on the bid at its trigger, is
    sent at the trigger for the whole position (no reduce-only note) and
    closes it, and the SL is cancelled."""
    fqme = 'btcusdt.sim'

    async def main(sim):
        await sim.push(fqme, bid=99, ask=100, last=99.5, bsize=5, asize=5)
        ems = await sim.open_ems(fqme)
        b = await ems.client.bracket(ems.client.mk_order('buy', 100.0, 1.0), tp=110.0, sl=90.0)
        for oid, kind in ((b.tp, 'take_profit'), (b.sl, 'stop')):
            st = await ems.wait(oid, 'held', timeout=10)
            assert st.req.type == kind and st.req.reduce_only and st.req.parent == b.entry
        await ems.wait(b.entry, 'closed', timeout=10)  # marketable: filled at once
        await ems.until(lambda: all(
            ems.dialogs[o].resp == 'dark_open' and ems.dialogs[o].armed == pytest.approx(1.0)
            for o in (b.tp, b.sl)), timeout=10)
        await ems.wait_position(fqme, 1.0, timeout=10)
        await ems.close()
        await sim.flush_journal()
        await sim.kill('emsd')
        await sim.until_ems(lambda st: st['restored']
                            and st['venues'].get('paperboi.sim') == 'up', timeout=30)
        ems = await sim.open_ems(fqme)
        await ems.until(lambda: all(
            o in ems.dialogs and ems.dialogs[o].resp == 'dark_open'
            and ems.dialogs[o].armed == pytest.approx(1.0) for o in (b.tp, b.sl)), timeout=15)
        # the TP touch: a take_profit sell fires on a bid at or above it
        await sim.push(fqme, bid=110, ask=111, last=110.5, bsize=5, asize=5)
        end = await ems.wait(b.tp, 'closed', timeout=10)
        assert math.isclose(end.filled, 1.0)
        (fired,) = [s for s in ems.statuses(b.tp) if s.resp == 'dark_triggered']
        assert fired.reason == '' and fired.req.size == 1.0
        assert fired.brokerd_msg['direction'] == 'up'
        assert fired.brokerd_msg['submit_price'] == 110.0  # a take_profit: at its trigger
        end = await ems.wait(b.sl, 'canceled', timeout=10)
        assert 'OCO' in end.reason and b.tp[:8] in end.reason
        assert 'dark_triggered' not in ems.resps(b.sl)
        await ems.wait_position(fqme, 0.0, timeout=10)
        await sim.flush_journal()
        with Journal.open(readonly=True) as journal:
            tp, sl = journal.dialog(b.tp), journal.dialog(b.sl)
        assert tp.phase == 'closed' and sl.phase == 'canceled' and sl.filled == 0.0

    paper_sim(main, timeout=110)


@pytest.mark.timeout(120)
def test_client_oco_shrinks_live_orders_and_is_reconciled_after_sigkill(paper_sim):
    """Two live buys as one OCO group: a partial fill of one shrinks the
    other at the venue; the rest fills while emsd is down, and the
    restarted emsd cancels the other as soon as the venue's report says so."""
    fqme = 'btcusdt.sim'

    async def main(sim):
        await sim.push(fqme, bid=99, ask=100, last=99.5, bsize=5, asize=5)
        ems = await sim.open_ems(fqme)
        a, b = await ems.client.oco(ems.client.mk_order('buy', 95.0, 1.0),
                                    ems.client.mk_order('buy', 94.0, 1.0))
        for oid in (a, b):
            await ems.wait(oid, 'open', timeout=10)
        await sim.push(fqme, bid=94, ask=95, last=94.5, bsize=5, asize=0.4)
        await ems.wait(a, 'fill', timeout=10)
        # shrunk by what `a` filled (the fills at the touch and the print)
        await ems.until(lambda: ems.dialogs[a].filled > 0 and ems.dialogs[b].req.size
                        == pytest.approx(1.0 - ems.dialogs[a].filled), timeout=10)
        assert ems.dialogs[b].resp == 'open'
        await ems.close()
        await sim.flush_journal()
        await sim.kill('emsd')
        # the rest of `a` fills while emsd is down (`b` at 94 is not reached)
        await sim.push(fqme, bid=94.5, ask=95, last=94.8, bsize=5, asize=5)
        with trio.fail_after(8):  # no stall behind the venue's order report
            await sim.until_ems(lambda st: st['restored']
                                and st['venues'].get('paperboi.sim') == 'up', timeout=8)
        ems = await sim.open_ems(fqme)
        await ems.until(lambda: b not in ems.dialogs, timeout=10)
        await sim.flush_journal()
        with Journal.open(readonly=True) as journal:
            rec = journal.dialog(b)
        assert rec.phase == 'canceled' and rec.filled == 0.0, rec.events[-1]
        venue = await sim.venue_orders()
        assert len(venue[b]) == 1  # shrunk in place: one venue order
        assert math.isclose(sim.position_size(fqme), 1.0)

    paper_sim(main, timeout=110)
