"""Crash recovery end to end: SIGKILL a daemon (or a client) in the middle
of trading and check that nothing is lost, nothing is duplicated, and
everything that should work again does.

Each test runs a private service tree (`paper_sim`) and drives the sim
market by hand (`sim.push`), so fills and triggers are deterministic; the
only race left in is the one under test (where exactly the kill lands).
Recovery times are printed (`-s`) as `RECOVERY <what>: <seconds>`.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import trio

from piker.brokers import FeedError
from piker.clearing import Status
from piker.clearing._journal import Journal
from piker.clearing._reconcile import NOT_AT_VENUE
from piker.data import open_feed
from piker.service import PeerLost, list_services
from piker.testing import EMSSession, PaperSim
from tests._ems_helpers import check_dialog

FQME = 'btcusdt.sim'
BASE = dict(bid=99.0, ask=100.0, last=99.5, bsize=5.0, asize=5.0)


def report(what: str, seconds: float) -> None:
    print(f'RECOVERY {what}: {seconds:.2f}s')


def seen_fills(sess: EMSSession) -> dict[str, Status]:
    """tid -> the fill Status a client saw; asserts no tid was seen twice."""
    fills = [m for m in sess.msgs if isinstance(m, Status) and m.resp == 'fill']
    tids = Counter(st.brokerd_msg['tid'] for st in fills)
    assert not [t for t, n in tids.items() if n > 1], f'fills seen twice: {tids}'
    return {st.brokerd_msg['tid']: st for st in fills}


async def check_books(sim: PaperSim, sess: EMSSession, fqme: str = FQME) -> None:
    """The ledger, the positions file and the client agree on every fill."""
    fills = seen_fills(sess)
    ledger = sim.ledger()
    assert set(ledger) == set(fills), (
        f'ledger has {len(ledger)} fills, the client saw {len(fills)}: '
        f'only in ledger {set(ledger) - set(fills)}, only seen {set(fills) - set(ledger)}'
    )
    for tid, st in fills.items():
        txn = ledger[tid]
        assert math.isclose(abs(txn.size), st.brokerd_msg['size'])
        assert math.isclose(txn.price, st.brokerd_msg['price'])
    net = sum(
        st.brokerd_msg['size'] * (1 if st.req.action == 'buy' else -1)
        for st in fills.values()
    )
    assert math.isclose(sim.ledger_size(fqme), net, abs_tol=1e-9)
    assert math.isclose(sim.position_size(fqme), net, abs_tol=1e-9)
    # the position update follows the fill's statuses
    await sess.until(lambda: math.isclose(sess.position(fqme), net, abs_tol=1e-9))


async def venue_up(sim: PaperSim, venue: str = 'paperboi.sim') -> dict:
    return await sim.until_ems(lambda st: st['venues'].get(venue) == 'up', timeout=20)


@pytest.mark.timeout(90)
def test_paperboi_sigkill_mid_stream_loses_no_fill(paper_sim):
    """Kill the paper venue while fills stream in: every fill it recorded
    reaches the client exactly once, ledger/positions/client agree, and the
    resting orders work again after the respawn, each still one order."""

    async def main(sim: PaperSim):
        await sim.push(FQME, **BASE)
        ems = await sim.open_ems(FQME)
        rest = [await ems.place('buy', price, 1.0) for price in (80.0, 81.0, 82.0)]
        # filled 0.5 per quote at 95: a stream of fills across the kill
        big = await ems.place('buy', 95.0, 40.0)
        for oid in (*rest, big):
            await ems.wait(oid, 'open')

        stop = trio.Event()

        async def stream_fills() -> None:
            while not stop.is_set():
                await sim.push(FQME, bid=94.0, ask=95.0, last=94.5, bsize=5.0, asize=0.5)
                await trio.sleep(0.01)

        async with trio.open_nursery() as n:
            n.start_soon(stream_fills)
            await ems.until(lambda: ems.resps(big).count('fill') >= 10, timeout=20)
            t0 = time.monotonic()
            await sim.kill('paperboi.sim')
            report('paperboi respawned (kill -> new process running)', time.monotonic() - t0)
            # sent before emsd knows the venue died: it cannot proceed (not
            # sent, or never reached the venue): an error, never stuck
            doomed = await ems.place('buy', 70.0, 1.0)
            # the client hears the venue is down: a notice, not an error
            down = await ems.wait_for(lambda m: (
                isinstance(m, Status) and m.oid == rest[0] and 'is down' in m.reason
            ), timeout=10)
            assert down.resp == 'open'
            await venue_up(sim)
            report('paperboi back in service (kill -> reconciled relay)', time.monotonic() - t0)
            await ems.wait(big, 'closed', timeout=30)
            stop.set()
        failed = await ems.wait(doomed, 'error', timeout=10)
        assert 'not sent' in failed.reason or 'never reached' in failed.reason, failed.reason
        check_dialog(ems, doomed)

        # the resting orders still work, once each
        await sim.push(FQME, bid=79.0, ask=80.0, last=79.5, bsize=10.0, asize=10.0)
        for oid in rest:
            await ems.wait(oid, 'closed')
        for oid in (*rest, big):
            sts = check_dialog(ems, oid)
            assert [s.resp for s in sts].count('closed') == 1
            assert math.isclose(sts[-1].filled, sts[-1].req.size)
        # no dialog appeared that the client did not place (no duplicate)
        assert {m.oid for m in ems.msgs if isinstance(m, Status)} == {*rest, big, doomed}
        venue = await sim.venue_orders()
        assert {oid: len(r) for oid, r in venue.items()} == {oid: 1 for oid in (*rest, big)}
        await check_books(sim, ems)
        assert math.isclose(sim.position_size(FQME), 43.0)

    paper_sim(main, timeout=80)


@pytest.mark.timeout(90)
def test_emsd_sigkill_venue_news_and_dark_book_come_back_once(paper_sim):
    """Kill emsd with dark orders, alerts and live orders working, one of
    them still waiting for its ack: the respawned emsd restores and re-arms
    with no client connected, learns from the venue's report what happened
    meanwhile (a fill, the lost ack), and every order ends exactly once."""

    async def main(sim: PaperSim):
        await sim.push(FQME, **BASE)
        ems = await sim.open_ems(FQME)
        fills_away = await ems.place('buy', 90.0, 1.0)    # fills while emsd is down
        stays = await ems.place('buy', 80.0, 1.0)         # rests throughout
        dark = await ems.place('buy', 85.0, 1.0, exec_mode='dark')
        alert = await ems.place('alert', 110.0, 0.0)
        for oid in (fills_away, stays):
            await ems.wait(oid, 'open')
        for oid in (dark, alert):
            await ems.wait(oid, 'dark_open')
        # paperboi holds each command 1.5 s (latency model): this order's
        # ack comes back only after emsd is gone
        unacked = await ems.place('buy', 70.0, 2.0)
        await ems.wait(unacked, 'pending')
        await ems.close()
        # a client still connected when emsd dies: its session ends, clearly
        watcher = await sim.open_ems(FQME)
        ended: list[float] = []

        async def note_end() -> None:
            await watcher._closed.wait()  # open_ems() has exited
            ended.append(time.monotonic())

        sim._n.start_soon(note_end)

        t0 = time.monotonic()
        await sim.kill('emsd')
        state = await sim.until_ems(
            lambda st: st['restored'] and st['venues'].get('paperboi.sim') == 'up',
            timeout=20,
        )
        report('emsd restored and re-armed, no client (kill -> restored)',
               time.monotonic() - t0)
        with trio.fail_after(10):
            await watcher._closed.wait()
        await trio.sleep(0)  # let note_end() run
        report('client session of a killed emsd ended (PeerLost)', ended[0] - t0)
        assert isinstance(watcher.lost, PeerLost), repr(watcher.lost)
        assert set(state['armed']) == {dark, alert} and state['clients'] == []
        # the restored dark book fires with nobody connected; its order fills
        await sim.push(FQME, bid=108.0, ask=108.5, last=110.5, **dict(bsize=5.0, asize=5.0))
        await sim.until_ems(lambda st: alert not in st['armed'])

        # a fill at the venue while emsd's dialogue was gone is not lost:
        # fills_away is bought at 90 (the ask), stays at 80 is not reached
        await sim.push(FQME, bid=89.0, ask=89.5, last=89.2, bsize=5.0, asize=5.0)

        ems = await sim.open_ems(FQME)
        # the handshake: the unacked order was found working at the venue
        await ems.until(lambda: ems.dialogs.get(unacked) is not None
                        and ems.dialogs[unacked].resp == 'open', timeout=10)
        assert ems.dialogs[unacked].reqid is not None
        await ems.until(lambda: fills_away not in ems.dialogs, timeout=10)
        assert set(ems.dialogs) == {stays, dark, unacked}
        # the dark buy triggers and fills, once
        await sim.push(FQME, bid=84.0, ask=84.5, last=84.2, bsize=5.0, asize=5.0)
        await ems.wait(dark, 'closed', timeout=10)
        await ems.client.cancel(stays)
        await ems.wait(stays, 'canceled', timeout=10)
        await ems.client.cancel(unacked)
        await ems.wait(unacked, 'canceled', timeout=10)

        venue = await sim.venue_orders()
        assert {oid: len(r) for oid, r in venue.items()} == {
            fills_away: 1, stays: 1, dark: 1, unacked: 1}
        assert math.isclose(sim.position_size(FQME), 2.0)  # fills_away + dark
        await sim.flush_journal()
        with Journal.open(readonly=True) as journal:
            assert journal.active_dialogs() == []
            for oid, end in ((fills_away, 'closed'), (alert, 'alert_triggered'),
                             (dark, 'closed'), (stays, 'canceled'), (unacked, 'canceled')):
                timeline = [st.resp for st in journal.dialog(oid).events]
                assert timeline[-1] == end, (oid, timeline)
                assert sum(r in ('closed', 'canceled', 'error', 'alert_triggered')
                           for r in timeline) == 1, (oid, timeline)
            timeline = [st.resp for st in journal.dialog(fills_away).events]
            assert timeline.count('fill') == 1, timeline
            timeline = [st.resp for st in journal.dialog(unacked).events]
            assert timeline[:2] == ['pending', 'open'], timeline

    paper_sim(main, brokers={'sim': {'paper': {'latency_ms': 1500}}}, timeout=80)


CLIENT_SCRIPT = Path(__file__).with_name('_recovery_client.py')


@pytest.mark.timeout(90)
def test_sigkilled_client_is_dropped_and_its_orders_work_on(paper_sim):
    """A client process SIGKILLed mid-session: emsd notices within a bounded
    time and frees its session; the other clients carry on undisturbed and
    the dead client's orders keep working (they fill and trigger)."""

    async def main(sim: PaperSim):
        await sim.push(FQME, **BASE)
        other = await sim.open_ems(FQME)
        proc = await trio.lowlevel.open_process(
            [sys.executable, str(CLIENT_SCRIPT), FQME],
            stdout=subprocess.PIPE, cwd=str(CLIENT_SCRIPT.parent.parent),
        )
        try:
            assert proc.stdout is not None
            line = b''
            with trio.fail_after(30):
                while not line.endswith(b'\n'):
                    chunk = await proc.stdout.receive_some(4096)
                    assert chunk, 'the client script died before placing its orders'
                    line += chunk
            oids = json.loads(line)
            await sim.until_ems(lambda st: len(st['clients']) == 2)
            # the other client sees the dead one's orders (same market)
            await other.wait(oids['live'], 'open')
            await other.wait(oids['dark'], 'dark_open')

            t0 = time.monotonic()
            os.kill(proc.pid, signal.SIGKILL)
            await sim.until_ems(lambda st: len(st['clients']) == 1, timeout=5)
            report('SIGKILLed client dropped by emsd', time.monotonic() - t0)
            # and pikerd forgets its registry entry
            with trio.fail_after(10):
                while any(n.startswith('piker-client') for n in await list_services()):
                    await trio.sleep(0.05)
            report('SIGKILLed client gone from the registry', time.monotonic() - t0)
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()

        # the survivor trades on; the dead client's orders work on
        mine = await other.place('buy', 95.0, 1.0)
        await other.wait(mine, 'open')
        await sim.push(FQME, bid=89.0, ask=89.5, last=89.2, bsize=5.0, asize=5.0)
        await other.wait(oids['live'], 'closed')
        await other.wait(mine, 'closed')
        await sim.push(FQME, bid=84.0, ask=84.5, last=84.2, bsize=5.0, asize=5.0)
        await other.wait(oids['dark'], 'closed')
        for oid in (mine, oids['live'], oids['dark']):
            check_dialog(other, oid)
        await check_books(sim, other)

    paper_sim(main, timeout=80)


@pytest.mark.timeout(90)
def test_brokerd_sigkill_feeds_resume_and_dark_book_triggers(paper_sim):
    """Kill the market's brokerd: a script's quote stream ends with a clear
    `FeedError` (it must re-open the feed); emsd's dark feed and the paper
    venue's feed reconnect on their own, so the dark book still triggers
    and resting orders still fill, once each."""

    async def main(sim: PaperSim):
        await sim.push(FQME, **BASE)
        ems = await sim.open_ems(FQME)
        dark = await ems.place('buy', 85.0, 1.0, exec_mode='dark')
        resting = await ems.place('buy', 90.0, 1.0)
        await ems.wait(dark, 'dark_open')
        await ems.wait(resting, 'open')

        async with open_feed([FQME]) as feed:
            t0 = time.monotonic()
            await sim.kill('brokerd.sim')
            report('brokerd respawned (kill -> new process running)', time.monotonic() - t0)
            with trio.fail_after(10), pytest.raises(FeedError, match='brokerd.sim'):
                async for _ in feed.stream:
                    pass
            report('quote consumer told (kill -> FeedError)', time.monotonic() - t0)

        # emsd says the trigger waits for data, then that it is back
        await ems.wait_for(lambda m: (
            isinstance(m, Status) and m.oid == dark and 'lost' in m.reason), timeout=10)
        await ems.wait_for(lambda m: (
            isinstance(m, Status) and m.oid == dark and 'is back' in m.reason), timeout=20)
        report("emsd's dark feed back (kill -> notice)", time.monotonic() - t0)
        # a fresh walk (the sim restarted at its start price): take the wheel
        # again, the new brokerd's market is a new one
        await sim.push(FQME, bid=84.0, ask=84.5, last=84.2, bsize=5.0, asize=5.0)
        await ems.wait(dark, 'closed', timeout=20)
        await ems.wait(resting, 'closed', timeout=20)
        report('dark order triggered and filled after brokerd respawn', time.monotonic() - t0)
        for oid in (dark, resting):
            sts = check_dialog(ems, oid)
            assert [s.resp for s in sts].count('closed') == 1
        assert ems.resps(dark).count('dark_triggered') == 1
        venue = await sim.venue_orders()
        assert {oid: len(r) for oid, r in venue.items()} == {dark: 1, resting: 1}
        await check_books(sim, ems)
        assert math.isclose(sim.position_size(FQME), 2.0)

    paper_sim(main, timeout=80)


@pytest.mark.timeout(120)
def test_whole_tree_restart_keeps_venue_orders_and_resolves_lost_ones(paper_sim, piker_env):
    """The paper venue keeps its working orders across a full restart (its
    state file); an order the venue no longer has when emsd reconnects
    (here: struck from that file, like a broker expiring it) ends
    `canceled`, "not found at venue after reconnect" - never orphaned."""
    confdir, _ = piker_env

    async def place(sim: PaperSim) -> tuple[str, str]:
        await sim.push(FQME, **BASE)
        ems = await sim.open_ems(FQME)
        keep = await ems.place('buy', 90.0, 1.0)
        lose = await ems.place('buy', 80.0, 1.0)
        for oid in (keep, lose):
            await ems.wait(oid, 'open')
        return keep, lose

    keep, lose = paper_sim(place)

    async def restarted(sim: PaperSim) -> dict[str, str]:
        await sim.push(FQME, **BASE)
        ems = await sim.open_ems(FQME)
        assert set(ems.initial_dialogs) == {keep, lose}
        assert {st.resp for st in ems.initial_dialogs.values()} == {'open'}
        return {oid: st.reqid for oid, st in ems.initial_dialogs.items()}

    reqids = paper_sim(restarted)
    # the venue loses one order while everything is down
    store = confdir / 'accounting' / 'paper_orders.sim.jsonl'
    with store.open('a') as f:
        f.write(json.dumps({'op': 'gone', 'reqid': reqids[lose]}) + '\n')

    async def reconciled(sim: PaperSim) -> None:
        await sim.push(FQME, **BASE)
        ems = await sim.open_ems(FQME)
        assert set(ems.initial_dialogs) == {keep}
        await sim.flush_journal()
        with Journal.open(readonly=True) as journal:
            (last,) = journal.dialog(lose).events[-1:]
        assert last.resp == 'canceled' and last.reason == NOT_AT_VENUE
        await sim.push(FQME, bid=89.0, ask=89.5, last=89.2, bsize=5.0, asize=5.0)
        await ems.wait(keep, 'closed')
        check_dialog(ems, keep)
        venue = await sim.venue_orders()
        assert venue == {keep: [reqids[keep]]}

    paper_sim(reconciled)
