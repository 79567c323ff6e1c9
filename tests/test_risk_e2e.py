"""Risk limits and the kill switch end to end: the real service tree in
paper mode (emsd, paperboi.sim, brokerd.sim), sim market control, and the
admin RPC `piker ems ...` uses; then the CLI against a real `piker pikerd`."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from piker.clearing import _ems_admin
from piker.testing import PaperSim
from tests._ems_helpers import FQME, start
from tests._pikerd_proc import PIKER, running_pikerd

pytestmark = pytest.mark.timeout(60)

# a resting buy far below the market, a resting sell far above it
LOW, HIGH = 90.0, 110.0


async def admin(rpc: str, **kw: Any) -> Any:
    """Call an emsd admin RPC, as `piker ems ...` does."""
    from piker.clearing._daemons import EMSD
    from piker.service import find_service

    async with find_service(EMSD.name()) as portal:
        assert portal is not None, 'emsd is not running'
        return await portal.run(getattr(_ems_admin, rpc), **kw)


def test_order_limits(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        big = await ems.place('buy', LOW, 7.0)
        err = await ems.wait(big, 'error')
        assert err.reason == 'max_order_size for btcusdt.sim is 5, order size 7'
        rich = await ems.place('buy', LOW, 4.0)
        err = await ems.wait(rich, 'error')
        assert err.reason == 'max_notional (default) is 300, order notional 360'
        # max_open_orders for the account: dark and live orders count
        a = await ems.place('buy', LOW, 1.0)
        b = await ems.place('sell', HIGH, 1.0, exec_mode='dark')
        await ems.wait(a, 'open')
        await ems.wait(b, 'dark_open')
        c = await ems.place('buy', LOW, 1.0)
        err = await ems.wait(c, 'error')
        assert err.reason == ('max_open_orders for account sim.paper is 2, '
                              '2 working already')
        # alerts are not limited and do not count
        alert = await ems.place('alert', 120.0, 0.0)
        await ems.wait(alert, 'dark_open')
        # a modify over a limit is refused; the order works on as it was
        mark = ems.mark()
        await ems.client.update(a, size=6.0)
        st = await ems.wait(a, 'open', since=mark)
        assert st.reason == 'modify refused: max_order_size for btcusdt.sim is 5, modify size 6'
        assert st.req.size == 1.0 and a in ems.dialogs
        # a cancel frees a slot
        await ems.client.cancel(b)
        await ems.wait(b, 'canceled')
        d = await ems.place('buy', LOW, 1.0)
        await ems.wait(d, 'open')
        assert set(await sim.venue_orders()) == {a, d}
        report = await admin('risk_status')
        assert report['open_by_account'] == {'sim.paper': 2}
        assert report['refused'] == {'max_order_size': 2, 'max_notional': 1,
                                     'max_open_orders': 1}

    paper_sim(main, conf={'ems': {'risk': {
        'max_notional': 300.0,
        'fqmes': {FQME: {'max_order_size': 5.0}},
        'accounts': {'paper': {'max_open_orders': 2}},
    }}})


def test_order_rate_throttle(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        oids = [await ems.place('buy', LOW, 1.0) for _ in range(3)]
        for oid in oids[:2]:
            await ems.wait(oid, 'open')
        err = await ems.wait(oids[2], 'error')
        assert err.reason.startswith(
            'max_orders_per_sec is 0.1 (burst 2) per session: order refused, retry in')
        # another session has its own bucket; cancels are never throttled
        other = await sim.open_ems(FQME)
        oid = await other.place('buy', LOW, 1.0)
        await other.wait(oid, 'open')
        await ems.client.cancel(oids[0])
        await ems.wait(oids[0], 'canceled')

    paper_sim(main, conf={'ems': {'risk': {'max_orders_per_sec': 0.1, 'order_burst': 2}}})


def test_halt_refuses_new_work_but_cancels_and_alerts_go_on(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        live = await ems.place('buy', LOW, 1.0)
        dark = await ems.place('buy', 95.0, 1.0, exec_mode='dark')
        alert = await ems.place('alert', 94.0, 0.0)
        await ems.wait(live, 'open')
        await ems.wait(dark, 'dark_open')
        await ems.wait(alert, 'dark_open')

        res = await admin('set_trading_state', state='halted', reason='test')
        assert res == {'state': 'halted', 'previous': 'active', 'canceled': []}
        halted = ('trading is halted (test): no new orders or modifies (cancels '
                  'work; `piker ems resume` to trade again)')
        new = await ems.place('buy', LOW, 1.0)
        assert (await ems.wait(new, 'error')).reason == halted
        new_alert = await ems.place('alert', 80.0, 0.0)
        assert (await ems.wait(new_alert, 'error')).reason == halted
        mark = ems.mark()
        await ems.client.update(live, price=91.0)
        st = await ems.wait(live, 'open', since=mark)
        assert st.reason == f'modify refused: {halted}' and st.req.price == LOW
        # the dark order triggers but is cancelled, not sent; the alert fires
        await sim.push(FQME, ask=93.5, last=93.5, asize=5.0)
        st = await ems.wait(dark, 'canceled')
        assert st.reason == ('trading is halted (test): the triggered dark order was '
                             'cancelled, not sent')
        await ems.wait(alert, 'alert_triggered')
        assert set(await sim.venue_orders()) == {live}
        # a cancel always works
        await ems.client.cancel(live)
        await ems.wait(live, 'canceled')

        res = await admin('set_trading_state', state='active')
        assert res['previous'] == 'halted'
        again = await ems.place('buy', LOW, 1.0)
        await ems.wait(again, 'open')
        with pytest.raises(Exception, match='unknown trading state'):
            await admin('set_trading_state', state='paused')

    paper_sim(main)


def test_halt_with_cancel_all_keeps_alerts(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        eth = await sim.open_ems('ethusdt.sim')
        a = await ems.place('buy', LOW, 1.0)
        b = await ems.place('sell', HIGH, 1.0, exec_mode='dark')
        alert = await ems.place('alert', 120.0, 0.0)
        # an order on another market (far below the sim's walk, ~3200, yet
        # within the default price band of 50%)
        c = await eth.place('buy', 2000.0, 1.0)
        for sess, oid, resp in ((ems, a, 'open'), (ems, b, 'dark_open'),
                                (ems, alert, 'dark_open'), (eth, c, 'open')):
            await sess.wait(oid, resp)
        res = await admin('set_trading_state', state='halted', cancel_all=True)
        assert sorted(res['canceled']) == sorted([a, b, c])
        for sess, oid in ((ems, a), (ems, b), (eth, c)):
            await sess.wait(oid, 'canceled')
        assert alert in ems.dialogs
        report = await admin('risk_status')
        assert report['state'] == 'halted' and report['working'] == 0

    paper_sim(main)


def test_reduce_only(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        buy = await ems.place('buy', 101.0, 2.0)  # marketable: long 2
        await ems.wait(buy, 'closed')
        await ems.wait_position(FQME, 2.0)
        grow = await ems.place('buy', LOW, 1.0, exec_mode='dark')
        await ems.wait(grow, 'dark_open')

        await admin('set_trading_state', state='reduce_only')
        more = await ems.place('buy', LOW, 1.0)
        assert (await ems.wait(more, 'error')).reason == (
            'reduce_only: a buy would not reduce the position in btcusdt.sim '
            '[sim.paper] (2)')
        flip = await ems.place('sell', HIGH, 3.0)
        assert (await ems.wait(flip, 'error')).reason == (
            'reduce_only: sell 3 exceeds what is left to reduce in btcusdt.sim '
            '[sim.paper]: 2 (position 2; working sells 0)')
        s1 = await ems.place('sell', HIGH, 1.5)
        await ems.wait(s1, 'open')
        s2 = await ems.place('sell', HIGH, 1.0)
        assert (await ems.wait(s2, 'error')).reason.endswith(
            ': 0.5 (position 2; working sells 1.5)')
        # a marketable reducing sell fills; the room shrinks with the position
        s3 = await ems.place('sell', 98.0, 0.5)
        await ems.wait(s3, 'closed')
        await ems.wait_position(FQME, 1.5)
        s4 = await ems.place('sell', HIGH, 0.1)
        assert (await ems.wait(s4, 'error')).reason.endswith(
            ': 0 (position 1.5; working sells 1.5)')
        # the resting dark buy triggers: it would grow the position
        await sim.push(FQME, ask=LOW - 1, asize=5.0)
        st = await ems.wait(grow, 'canceled')
        assert st.reason.startswith('reduce_only: a buy would not reduce')
        assert grow not in await sim.venue_orders()

    paper_sim(main)


def test_halt_survives_an_emsd_restart(paper_sim):
    async def halt(sim: PaperSim):
        await start(sim)
        await admin('set_trading_state', state='halted', reason='persist me')

    paper_sim(halt)

    async def reboot(sim: PaperSim):
        ems = await start(sim)
        oid = await ems.place('buy', LOW, 1.0)
        err = await ems.wait(oid, 'error')
        assert err.reason.startswith('trading is halted (persist me)')
        await admin('set_trading_state', state='active')
        oid = await ems.place('buy', LOW, 1.0)
        await ems.wait(oid, 'open')

    paper_sim(reboot)


# ---- the CLI against a running pikerd ----------------------------------

def piker(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, 'COLUMNS': '200'}
    return subprocess.run([PIKER, *args], capture_output=True, text=True, env=env,
                           timeout=timeout)


@pytest.mark.timeout(90)
def test_cli_kill_switch(piker_env, tmp_path):
    _, addr = piker_env
    with running_pikerd(addr, tmp_path / 'pikerd.log') as proc:
        res = piker('order', 'buy', FQME, '0.01', '60000')
        assert res.returncode == 0, res.stderr
        resting = res.stdout.strip()

        res = piker('ems', 'halt', '--reason', 'cli test')
        assert res.returncode == 0, res.stderr
        assert 'trading state: active -> halted' in res.stderr
        res = piker('order', 'buy', FQME, '0.01', '60000')
        assert res.returncode == 1
        assert 'trading is halted (cli test)' in res.stderr

        res = piker('ems', 'status')
        assert res.returncode == 0, res.stderr
        assert 'halted' in res.stdout and 'cli test' in res.stdout
        report = json.loads(piker('ems', 'status', '--json').stdout)
        assert report['state'] == 'halted' and report['working'] == 1
        assert report['refused'] == {'halted': 1}

        # cancels work while halted
        res = piker('order', 'cancel', '--all')
        assert res.returncode == 0, res.stderr
        assert 'cancelled 1 of 1' in res.stderr and resting[:8] in res.stderr

        res = piker('ems', 'reduce-only')
        assert 'halted -> reduce_only' in res.stderr
        res = piker('order', 'sell', FQME, '0.01', '70000')
        assert res.returncode == 1 and 'reduce_only: no position' in res.stderr
        res = piker('ems', 'resume')
        assert res.returncode == 0 and 'reduce_only -> active' in res.stderr
        res = piker('order', 'buy', FQME, '0.01', '60000')
        assert res.returncode == 0, res.stderr
        res = piker('ems', 'halt', '--cancel-all')
        assert 'cancel requested for 1 working order(s)' in res.stderr
        assert piker('ems', 'status', '--json').returncode == 0

        code = proc.stop()
        assert code == 0, proc.log.read_text()
        assert not proc.leftovers()

    # no pikerd: the switch is recorded, and emsd would start with it
    res = piker('ems', 'resume')
    assert res.returncode == 0 and 'recorded active' in res.stderr
    res = piker('ems', 'status', '--json')
    assert res.returncode == 0 and json.loads(res.stdout)['state'] == 'active'
    assert 'no pikerd answers' in res.stderr
