"""The paper-trading test kit itself (`piker.testing`): isolation guard,
process-leak detection and session bookkeeping."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from piker.service._mngr import teardown_order
from piker.testing import LeakedProcesses, PaperSim, _proc, run_sim
from piker.testing._sim import check_gone, descendants


def test_run_sim_refuses_a_shared_environment(monkeypatch):
    monkeypatch.delenv('PIKER_CONFIG_DIR')
    with pytest.raises(RuntimeError, match='isolated piker environment'):
        run_sim(lambda sim: None)


def test_leaked_children_are_reported_and_killed():
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        assert proc.pid in descendants(os.getpid())
        with pytest.raises(LeakedProcesses, match=str(proc.pid)):
            check_gone({proc.pid}, timeout=0.2)
        assert proc.wait(timeout=5) != 0  # killed
        check_gone({proc.pid}, timeout=0.2)  # gone: fine
    finally:
        proc.kill()
        proc.wait()


def test_proc_helpers_see_a_child_and_its_end():
    """`_proc` (the one copy of the /proc bookkeeping): a child is seen by
    parent, by environment, with its memory; a reaped one is gone."""
    env = dict(os.environ, PIKER_PROC_TEST=f'{os.getpid()}')
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], env=env)
    try:
        assert proc.pid in _proc.children_of(os.getpid())
        assert proc.pid in _proc.descendants(os.getpid())
        assert _proc.with_env('PIKER_PROC_TEST', f'{os.getpid()}') == [proc.pid]
        assert _proc.alive(proc.pid) and _proc.rss_kb(proc.pid) > 0
        assert _proc.cpu_s(os.getpid()) > 0
        assert _proc.proc_table()[proc.pid][0] == os.getpid()
    finally:
        proc.kill()
        proc.wait()
    assert not _proc.alive(proc.pid) and proc.pid not in _proc.children_of(os.getpid())
    assert _proc.rss_kb(proc.pid) == 0 and _proc.with_env('PIKER_PROC_TEST', f'{os.getpid()}') == []


def test_teardown_order_puts_consumers_first():
    """Each daemon's stop order is its kind's (`DaemonKind.stop_order`),
    not guessed from its name: a daemon of no kind stops in between."""
    from piker.brokers import brokerd_spec
    from piker.clearing._daemons import EMSD, PAPERBOI
    from piker.service import DaemonSpec

    specs = [brokerd_spec('sim'), PAPERBOI.spec('sim'),
             DaemonSpec(name='samplerd', enable_modules=[]), EMSD.spec(),
             brokerd_spec('binance'), DaemonSpec(name='emsd_like', enable_modules=[])]
    assert teardown_order(specs) == [
        'emsd', 'paperboi.sim', 'emsd_like', 'samplerd', 'brokerd.binance', 'brokerd.sim',
    ]


@pytest.mark.timeout(40)
def test_sessions_close_in_any_order_and_the_tree_goes_away(paper_sim):
    async def main(sim: PaperSim):
        assert sim.config_dir == paper_sim.config_dir
        a = await sim.open_ems('btcusdt.sim')
        b = await sim.open_ems('btcusdt.sim', record=False)
        client, trades, positions, accounts, dialogs = b  # unpacks like open_ems()
        await sim.push('btcusdt.sim', bid=99.0, ask=100.0, bsize=5.0, asize=5.0)
        oid = await a.place('buy', 100.0, 1.0)
        # b reads its raw channel itself
        st = await sim.wait(trades, oid, 'closed')
        assert st.filled == 1.0
        # a's recorder sees the same status; closing keeps what it recorded
        await sim.wait(a, oid, 'closed')
        await a.close()  # the first one opened closes first
        assert 'closed' in a.resps(oid)
        assert len(sim.child_pids()) >= 3  # pikerd's daemons
        return sorted(await sim.venue_orders())

    assert len(paper_sim(main, brokers={'sim': {'quote_rate': 5}})) == 1


def test_a_runtime_left_by_an_interrupted_test_is_reset():
    """pytest-timeout can stop a test inside `trio.run`: the next test must
    not inherit its tractor runtime (nor its processes)."""
    import tractor._state as state

    from piker.testing._plugin import _reset_interrupted_runtime

    orphan = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    state._current_actor = object()
    try:
        with pytest.warns(UserWarning, match='left an actor runtime behind'):
            _reset_interrupted_runtime()
        assert state._current_actor is None
        assert orphan.wait(timeout=5) == -9
    finally:
        state._current_actor = None
        if orphan.poll() is None:
            orphan.kill()
    # nothing left over: a no-op
    _reset_interrupted_runtime()


def test_free_port_is_below_the_ephemeral_range():
    """A registry port the kernel never hands out on its own: no outgoing
    connection can take it between the check and pikerd's bind."""
    import socket

    from piker.testing import free_port
    from piker.testing._plugin import _ephemeral_low

    for _ in range(20):
        port = free_port()
        assert 1024 <= port < _ephemeral_low()
        with socket.socket() as s:
            s.bind(('127.0.0.1', port))  # and it is free
