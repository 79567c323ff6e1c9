"""The paper venue never tells a trader something false about an order
(issue #9, items 4-7 and 9), end to end through the real service tree.

- 4: an unwritable ledger dir: a fill is still reported as a fill, an
  alarm names the path and errno, new orders are refused meanwhile, and
  the fill is recorded exactly once when the disk is back;
- 5: absurd prices are refused before they reach a venue, and a venue's
  internal error on an order ends that order truthfully;
- 6: a backend order whose symbol is not the broker-native key is refused;
- 7: a damaged venue state file is quarantined and nothing is revived;
- 9: a corrupt positions file is set aside and rebuilt from the ledger.
"""
from __future__ import annotations

import math
import shutil

import pytest
import trio

from piker.accounting import account_path, ledger_path
from piker.clearing import Status
from piker.clearing._journal import Journal
from piker.clearing._paper_store import store_path
from piker.testing import PaperSim
from tests._ems_helpers import BASE, FQME, check_dialog, raw_venue_dialogue, start

pytestmark = pytest.mark.timeout(90)


async def last_status(sim: PaperSim, oid: str, resp: str, timeout: float = 10.0) -> Status:
    """The dialog's last Status once its resp is `resp`, from emsd's journal
    (it may have ended before any client connected)."""
    with trio.fail_after(timeout):
        while True:
            await sim.flush_journal()
            journal = Journal.open(readonly=True)
            try:
                rec = journal.dialog(oid)
            finally:
                journal.close()
            if rec is not None and rec.events and rec.events[-1].resp == resp:
                return rec.events[-1]
            await trio.sleep(0.05)


# ---- 7: a damaged venue state file ------------------------------------------

def test_a_damaged_state_file_revives_no_cancelled_order(paper_sim):
    oids: dict[str, str] = {}

    async def trade(sim: PaperSim) -> None:
        ems = await start(sim)
        for name, price in (('a', 95.0), ('b', 94.0)):
            oids[name] = await ems.place('buy', price, 1.0)
            await ems.wait(oids[name], 'open')
        await ems.client.cancel(oids['a'])
        await ems.wait(oids['a'], 'canceled')
        oids['c'] = await ems.place('buy', 93.0, 1.0)
        await ems.wait(oids['c'], 'open')

    paper_sim(trade)
    # the record that ended `a` gets damaged (a bad block, a stray edit)
    path = store_path('sim')
    lines = path.read_bytes().splitlines(keepends=True)
    (gone,) = [i for i, ln in enumerate(lines) if b'"op":"gone"' in ln]
    lines[gone] = b'{"op":"go\x00\x00\x00\n'
    damaged = b''.join(lines)
    path.write_bytes(damaged)

    async def reboot(sim: PaperSim) -> None:
        ems = await sim.open_ems(FQME)
        # b's last record predates the damage: it may have ended, so it
        # ends now, saying why (maybe before this client connected: ask
        # the journal); c was placed after it and works on
        st = await last_status(sim, oids['b'], 'canceled')
        assert 'damaged' in st.reason
        made = await sim.venue_orders()
        assert set(made) == {oids['c']}  # only c is back in a book
        # a touch that would fill a revived `a` (95) fills only c (93)
        await sim.push(FQME, bid=92.0, ask=92.5, bsize=5.0, asize=5.0)
        await ems.wait(oids['c'], 'closed')
        check_dialog(ems, oids['c'])
        assert sim.ledger_size(FQME) == 1.0

    paper_sim(reboot)
    (aside,) = path.parent.glob(f'{path.name}.corrupt-*')
    assert aside.read_bytes() == damaged


# ---- 9: a corrupt positions file ----------------------------------------------

def test_a_corrupt_positions_file_is_rebuilt_from_the_ledger(paper_sim):
    async def trade(sim: PaperSim) -> None:
        ems = await start(sim)
        await ems.wait(await ems.place('buy', 101.0, 2.0), 'closed')
        await ems.wait_position(FQME, 2.0)

    paper_sim(trade)
    path = account_path('sim', 'paper')
    path.write_bytes(b'["btcusdt.sim"]\nsize = \x00\x00')  # a torn, bad file

    async def reboot(sim: PaperSim) -> None:
        ems = await sim.open_ems(FQME)
        (pos,) = ems.initial_positions[('sim', 'paper')]
        assert (pos.symbol, pos.size, pos.avg_price) == (FQME, 2.0, 100.0)
        assert sim.position_size(FQME) == 2.0  # rewritten on disk
        await sim.push(FQME, **BASE)
        oid = await ems.place('sell', 98.0, 2.0)
        await ems.wait(oid, 'closed')
        await ems.wait_position(FQME, 0.0)

    paper_sim(reboot)
    (aside,) = path.parent.glob(f'{path.name}.corrupt-*')
    assert aside.read_bytes().startswith(b'["btcusdt.sim"]\nsize = ')


# ---- 6: a backend order whose symbol is not the broker-native key ---------------

def venue_order(oid: str, symbol: str, price: float = 101.0, size: float = 1.0,
                action: str = 'buy') -> dict:
    return {'name': 'brokerd_order', 'oid': oid, 'symbol': symbol, 'action': action,
            'price': price, 'size': size, 'account': 'paper', 'time_ns': 1}


def test_a_venue_order_must_carry_the_broker_native_key(paper_sim):
    async def main(sim: PaperSim):
        await sim.push('simco.sim', bid=99.0, ask=100.0, bsize=50.0, asize=50.0)
        await sim.push(FQME, **BASE)
        async with raw_venue_dialogue() as dlg:
            for oid, symbol in (('fq', 'simco.sim'), ('up', 'BTCUSDT.SIM'), ('case', 'BTCUSDT')):
                mark = len(dlg.msgs)
                await dlg.stream.send(venue_order(oid, symbol))
                err = await dlg.reply(lambda m, o=oid: m.get('oid') == o, since=mark)
                assert err['name'] == 'error', err
                assert 'not a broker-native key' in err['reason'] and symbol in err['reason']
            # the right key still trades
            mark = len(dlg.msgs)
            await dlg.stream.send(venue_order('ok', 'simco'))
            done = await dlg.reply(lambda m: m.get('oid') == 'ok' and m.get('status') == 'closed',
                                   since=mark)
            assert done['filled'] == 1.0
            assert not [m for m in dlg.msgs if m.get('oid') in ('fq', 'up', 'case')
                        and m['name'] != 'error']
        assert set(await sim.venue_orders()) == {'ok'}
        assert [t.fqme for t in sim.ledger().values()] == ['simco.sim']
        assert sim.position_size('simco.sim') == 1.0

    paper_sim(main)


# ---- 5: absurd prices never reach a venue; a venue's band backs emsd's up ----------

ETH = 'ethusdt.sim'
ETH_BASE = dict(bid=2999.0, ask=3000.0, last=2999.5, bsize=5.0, asize=5.0)


def test_an_absurd_price_is_refused_before_the_venue(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim, ETH, **ETH_BASE)
        # the order: its notional is not a number
        oid = await ems.place('buy', 1e308, 10.0, symbol=ETH)
        err = await ems.wait(oid, 'error')
        assert 'not a finite number' in err.reason
        # far from the market: the live price band (default 0.5)
        oid = await ems.place('buy', 30000.0, 1.0, symbol=ETH)
        err = await ems.wait(oid, 'error')
        assert err.reason.startswith('price_band (default) is 0.5: order price 30000')
        # dark orders and alerts: the wider dark band, still finite
        oid = await ems.place('buy', 1e9, 1.0, exec_mode='dark', symbol=ETH)
        assert 'dark_price_band' in (await ems.wait(oid, 'error')).reason
        oid = await ems.place('alert', 1e300, 1.0, symbol=ETH)
        assert 'dark_price_band' in (await ems.wait(oid, 'error')).reason
        # none of them reached the venue, and a sane order still trades
        assert await sim.venue_orders() == {}
        oid = await ems.place('buy', 3001.0, 1.0, symbol=ETH)
        await ems.wait(oid, 'closed')
        check_dialog(ems, oid)
        # a modify far away is refused and the order works on as it was
        rest = await ems.place('buy', 2900.0, 1.0, symbol=ETH)
        await ems.wait(rest, 'open')
        mark = ems.mark()
        await ems.client.update(rest, price=29000.0)
        st = await ems.wait_for(lambda m: isinstance(m, Status) and m.oid == rest
                                and 'modify refused' in m.reason, since=mark)
        assert st.resp == 'open' and st.req.price == 2900.0
        await ems.client.cancel(rest)
        await ems.wait(rest, 'canceled')

    paper_sim(main)


def test_the_venue_has_its_own_band(paper_sim):
    """With emsd's bands lifted, the venue's own (10x the market either
    way) still refuses what a venue never could fill sanely; straight to
    the venue, the issue's 1e308 order is refused there too."""
    async def main(sim: PaperSim):
        ems = await start(sim, ETH, **ETH_BASE)
        oid = await ems.place('buy', 40000.0, 1.0, symbol=ETH)
        err = await ems.wait(oid, 'error')
        assert "outside the paper venue's band" in err.reason
        async with raw_venue_dialogue() as dlg:
            mark = len(dlg.msgs)
            await dlg.stream.send(venue_order('big', 'ethusdt', price=1e308, size=10.0))
            err = await dlg.reply(lambda m: m.get('oid') == 'big', since=mark)
            assert err['name'] == 'error' and 'not a finite number' in err['reason']
        assert set(await sim.venue_orders()) == set()

    paper_sim(main, conf={'ems': {'risk': {'price_band': math.inf,
                                           'dark_price_band': math.inf}}})


# ---- 4: an unwritable accounting dir ----------------------------------------------

async def venue_status(sim: PaperSim) -> dict | None:
    from piker.clearing._daemons import PAPERBOI
    from piker.clearing._paper_engine import paper_alarm
    from piker.service import find_service
    async with find_service(PAPERBOI.name('sim')) as portal:
        return await portal.run(paper_alarm, broker='sim')


def test_a_fill_is_reported_when_the_disk_refuses_it_and_recorded_once_back(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        first = await ems.place('buy', 101.0, 1.0)
        await ems.wait(first, 'closed')
        # a fresh touch (5 at the ask again: `first` took 1 of the last
        # one), pushed a whole order round trip before the order that
        # takes it: quotes reach the paper venue on their own stream, and an
        # order sent at once could overtake it and find only 4 left
        await sim.push(FQME, **BASE)
        rest = await ems.place('buy', 95.0, 1.0)
        await ems.wait(rest, 'open')
        # the ledgers dir becomes a regular file: every write there fails
        # (with ENOTDIR / EEXIST, whoever we run as)
        ledgers = ledger_path('sim', 'paper').parent
        shutil.rmtree(ledgers)  # the venue's memory holds every fill
        ledgers.write_text('not a directory')

        oid = await ems.place('buy', 100.5, 7.0)  # 5 fill at the ask, 2 rest
        # a fill, told as one (never `error`), and the alarm with it
        opened = await ems.wait(oid, {'open', 'error'})
        assert ems.resps(oid) == ['pending', 'fill', 'open'], ems.statuses(oid)
        assert opened.filled == 5.0
        assert 'cannot record fills' in opened.reason and str(ledgers) in opened.reason
        assert 'Errno' in opened.reason
        await ems.wait_position(FQME, 6.0)
        tid = next(s.brokerd_msg['tid'] for s in ems.statuses(oid) if s.resp == 'fill')
        alarm = await venue_status(sim)
        assert alarm is not None and alarm['path'] == str(ledgers / 'trades_sim_paper.toml')
        assert alarm['errno'] is not None and alarm['unrecorded'] == 1
        # while it stands: new orders refused, naming path and errno;
        # cancels work
        refused = await ems.place('buy', 101.0, 1.0)
        err = await ems.wait(refused, 'error')
        assert str(ledgers) in err.reason and 'Errno' in err.reason
        assert 'new orders and modifies are refused' in err.reason
        for working in (rest, oid):
            await ems.client.cancel(working)
            await ems.wait(working, 'canceled')

        # the disk is back: the fill is recorded, once, and trading resumes
        ledgers.unlink()
        ledgers.mkdir()
        # (the ledger is written first, then the positions, then the alarm
        # clears: wait for the last of them)
        with trio.fail_after(15):
            while tid not in sim.ledger() or await venue_status(sim) is not None:
                await trio.sleep(0.1)
        assert sim.ledger_size(FQME) == 6.0 and sim.position_size(FQME) == 6.0
        again = await ems.place('sell', 98.0, 5.0)
        await ems.wait(again, 'closed', timeout=10)
        await ems.wait_position(FQME, 1.0)
        assert sim.ledger_size(FQME) == 1.0 and len(sim.ledger()) == 3

    paper_sim(main)
