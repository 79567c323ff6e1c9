"""emsd's journal end to end: SIGKILL emsd with dark orders, alerts and live
orders working; pikerd respawns it; the next client's handshake shows every
one of them, once, and they go on to trigger, fill and cancel correctly.

Each test runs a private service tree (`paper_sim`); the sim market is
driven by hand (`sim.push`), so every trigger is deterministic.
"""
from __future__ import annotations

import os
import signal

import pytest
import trio

from piker.clearing._journal import Journal
from piker.service import list_services

FQME = 'btcusdt.sim'
BOOK = dict(bsize=10.0, asize=10.0)


async def kill_emsd() -> int:
    """SIGKILL emsd; return once pikerd has respawned it (new pid)."""
    old = (await list_services())['emsd'].pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    with trio.fail_after(15):
        while True:
            info = (await list_services()).get('emsd')
            if info is not None and info.pid not in (None, old) and info.state == 'running':
                return info.pid
            await trio.sleep(0.05)


@pytest.mark.timeout(60)
def test_dark_orders_and_alerts_survive_sigkill(paper_sim):
    async def main(sim):
        await sim.push(FQME, bid=99.5, ask=100.5, last=100.0, **BOOK)
        ems = await sim.open_ems(FQME)
        buy = await ems.place('buy', 95.0, 1.0, exec_mode='dark')      # fires on a fall
        sell = await ems.place('sell', 110.0, 1.0, exec_mode='dark')   # fires on a rise
        up = await ems.place('alert', 105.0, 0.0)                      # rise
        down = await ems.place('alert', 90.0, 0.0)                     # fall
        doomed = await ems.place('alert', 80.0, 0.0)                   # to be cancelled
        oids = {buy, sell, up, down, doomed}
        for oid in oids:
            await ems.wait(oid, 'dark_open')
        # a dark order is reported `dark_open` only once the journal has it
        # (no flush here: emsd held the Status back until its commit)
        with Journal.open(readonly=True) as journal:
            assert {r.oid for r in journal.active_dialogs()} == oids
        # a client that leaves, leaves its orders working
        await ems.close()

        await kill_emsd()
        # the respawned emsd restores and re-arms on its own (its start-up
        # hook), with no client connected
        state = await sim.until_ems(lambda st: st['restored'])
        assert set(state['armed']) == oids and state['clients'] == []
        # the market rises through the `up` alert's level: it fires with
        # nobody watching, its direction ("fires on a rise") kept
        await sim.push(FQME, bid=106.0, ask=107.0, last=106.5, **BOOK)
        await sim.until_ems(lambda st: up not in st['armed'])

        ems = await sim.open_ems(FQME)
        # the handshake: every other dialog, exactly once, still resting
        assert set(ems.initial_dialogs) == oids - {up}
        assert {st.resp for st in ems.initial_dialogs.values()} == {'dark_open'}
        assert ems.initial_dialogs[buy].req.price == 95.0
        # cancel one restored alert: nothing fires it afterwards
        await ems.client.cancel(doomed)
        await ems.wait(doomed, 'canceled')
        # the dark buy triggers on the ask and fills at the paper venue
        await sim.push(FQME, bid=94.0, ask=94.5, last=94.2, **BOOK)
        await ems.wait(buy, 'closed')
        # the dark sell triggers on the bid
        await sim.push(FQME, bid=111.0, ask=111.5, last=111.2, **BOOK)
        await ems.wait(sell, 'closed')
        await sim.push(FQME, bid=79.0, ask=79.5, last=79.2, **BOOK)
        await ems.wait(down, 'alert_triggered')

        # every restored dialog told its story once, and nothing repeated
        assert ems.resps(up) == []  # it ended before this client came
        for oid in oids - {up}:
            resps = ems.resps(oid)
            assert 'dark_open' not in resps, (oid, resps)
            assert sum(r in ('alert_triggered', 'closed', 'canceled') for r in resps) == 1
        assert ems.resps(buy)[0] == 'dark_triggered' and ems.resps(buy)[-1] == 'closed'
        assert ems.resps(doomed) == ['canceled']
        # one venue order per triggered dark order, none for alerts
        venue = await sim.venue_orders()
        assert {oid: len(r) for oid, r in venue.items()} == {buy: 1, sell: 1}
        assert sim.position_size(FQME) == 0.0  # bought 1, sold 1

        # the journal tells each whole story, across the restart
        await sim.flush_journal()
        with Journal.open(readonly=True) as journal:
            assert journal.active_dialogs() == []
            rec = journal.dialog(buy)
            timeline = [st.resp for st in rec.events]
            assert timeline[0] == 'dark_open' and timeline[1] == 'dark_triggered'
            assert timeline[-1] == 'closed' and rec.route == 'paper'
            assert [st.resp for st in journal.dialog(up).events] == [
                'dark_open', 'alert_triggered']

    paper_sim(main)


@pytest.mark.timeout(60)
def test_live_orders_survive_sigkill(paper_sim):
    async def main(sim):
        await sim.push(FQME, bid=99.5, ask=100.5, last=100.0, **BOOK)
        ems = await sim.open_ems(FQME)
        fills = await ems.place('buy', 90.0, 1.0)     # rests at the paper venue
        cancels = await ems.place('buy', 80.0, 1.0)
        moves = await ems.place('sell', 120.0, 1.0)
        for oid in (fills, cancels, moves):
            await ems.wait(oid, 'open')
        await ems.close()

        await kill_emsd()

        ems = await sim.open_ems(FQME)
        assert set(ems.initial_dialogs) == {fills, cancels, moves}
        assert {st.resp for st in ems.initial_dialogs.values()} == {'open'}
        assert all(st.reqid is not None for st in ems.initial_dialogs.values())

        # a restored live order is cancelled at the venue by its reqid
        await ems.client.cancel(cancels)
        await ems.wait(cancels, 'canceled')
        # and modified there: no second venue order
        await ems.client.update(moves, price=119.0)
        st = await ems.wait(moves, 'open')
        assert st.req.price == 119.0
        # the venue's fill reaches the restored dialog
        await sim.push(FQME, bid=89.0, ask=89.5, last=89.2, **BOOK)
        await ems.wait(fills, 'closed')
        venue = await sim.venue_orders()
        assert {oid: len(r) for oid, r in venue.items()} == {fills: 1, cancels: 1, moves: 1}
        assert sim.position_size(FQME) == 1.0

    paper_sim(main)


@pytest.mark.timeout(60)
def test_a_corrupt_journal_does_not_stop_emsd(paper_sim, piker_env):
    confdir, _ = piker_env
    path = confdir / 'ems' / 'journal.sqlite'
    path.parent.mkdir(parents=True)
    path.write_bytes(b'definitely not sqlite' * 200)

    async def main(sim):
        await sim.push(FQME, bid=99.5, ask=100.5, last=100.0, **BOOK)
        ems = await sim.open_ems(FQME)
        oid = await ems.place('alert', 120.0, 0.0)
        await ems.wait(oid, 'dark_open')
        # a refused order never makes a dialog, but the history keeps it
        bad = await ems.place('buy', 100.0, 1.0, account='nope')
        await ems.wait(bad, 'error')
        return oid, bad

    oid, bad = paper_sim(main)
    asides = [p for p in path.parent.iterdir() if '.corrupt-' in p.name]
    assert len(asides) == 1
    with Journal.open(path, readonly=True) as journal:
        assert [r.oid for r in journal.active_dialogs()] == [oid]
        rec = journal.dialog(bad)
        assert rec.phase == 'error' and rec.state is None and rec.account == 'nope'
        (st,) = rec.events
        assert 'unknown account' in st.reason


@pytest.mark.timeout(60)
def test_a_plain_live_order_needs_no_commit_the_venue_hands_it_back(paper_sim, piker_env):
    """A plain live order's `pending` and `open` are published before the
    journal commits them (their commit lingers 8 s here): SIGKILLed in
    between, emsd has no record of the order, and the paper venue's order
    report hands it back under its oid, working and cancellable. A dark
    order's `dark_open` (only emsd knows it) is committed first."""
    path = piker_env[0] / 'ems' / 'journal.sqlite'

    async def main(sim):
        await sim.push(FQME, bid=99.5, ask=100.5, last=100.0, **BOOK)
        ems = await sim.open_ems(FQME)
        # the dark one first: a commit takes along everything before it
        dark = await ems.place('buy', 95.0, 1.0, exec_mode='dark')
        await ems.wait(dark, 'dark_open')
        live = await ems.place('buy', 90.0, 1.0)
        await ems.wait(live, 'open')
        with Journal.open(path, readonly=True) as journal:
            assert [r.oid for r in journal.active_dialogs()] == [dark]
        await ems.close()

        await kill_emsd()

        ems = await sim.open_ems(FQME)
        assert set(ems.initial_dialogs) == {live, dark}
        assert ems.initial_dialogs[live].resp == 'open'
        await ems.client.cancel(live)
        await ems.wait(live, 'canceled')
        venue = await sim.venue_orders()
        assert {oid: len(r) for oid, r in venue.items()} == {live: 1}

    paper_sim(main, conf={'ems': {'journal_linger_ms': 8000}})
