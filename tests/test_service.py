"""The service tree: pikerd, daemons, supervision (TRACTOR.md rules).

Every actor test has a tight timeout and asserts that the processes it
started are gone afterwards (via /proc, no psutil).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tractor
import trio

from piker.service import (
    PeerLost,
    PikerdNotRunning,
    RegistryBusy,
    ServiceError,
    _child_init,
    cancel_service,
    connect_pikerd,
    current_services,
    find_service,
    list_services,
    maybe_open_pikerd,
    maybe_spawn_daemon,
    open_drained_stream,
    open_pikerd,
    open_watched_context,
)
from piker.testing._proc import alive, children_of
from tests import _daemon_fixtures as fx

FIXTURES = ['tests._daemon_fixtures']
PIKER = str(Path(sys.executable).parent / 'piker')

# Hang guards sized for a loaded 2-core CI box, where a daemon spawn takes
# seconds (0.4 s idle) and a `piker` CLI process ~6 s to import (1 s idle).
# They only catch hangs; the behaviour bounds (how fast a lost peer is
# noticed, graceful exit vs the 3 s hard kill) stay tight in the tests.
GUARD = 30  # one or two spawns
GUARD_LONG = 60  # several spawns, or `piker` CLI subprocesses
RESPAWN_WITHIN = 15.0  # one (re)spawn: pikerd's own default spawn_timeout
# tractor's reaper SIGKILLs a child this long after asking it to exit
# (`tractor._spawn.do_hard_kill`): a graceful shutdown finishes before it
HARD_KILL_AFTER = 3.0


def wait_dead(pids: list[int], timeout: float = 5.0) -> list[int]:
    """Return the pids still alive after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return []
        time.sleep(0.02)
    return [p for p in pids if alive(p)]


def port_free(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        return s.connect_ex(addr) != 0


def client_cmd(mode: str) -> list[str]:
    return [sys.executable, '-c',
            f'from tests._daemon_fixtures import client_main; client_main({mode!r})']


async def read_until(proc: trio.Process, prefix: str, timeout: float = 10) -> str:
    """Read `proc`'s stdout until a complete line starting with `prefix`.

    Only newline-terminated lines count: with PYTHONUNBUFFERED=1 (common in
    CI) `print()` writes the text and its newline in two syscalls, so a
    partial read can end right before the newline. Taking that as the
    line, and then closing the pipe, fails the child's next write with
    EPIPE (the child exits 1 with a BrokenPipeError on its own print).
    """
    buf = b''
    with trio.fail_after(timeout):
        while True:
            chunk = await proc.stdout.receive_some()
            if not chunk:
                raise AssertionError(f'process exited before {prefix!r}: {buf!r}')
            buf += chunk
            *lines, _partial = buf.decode().split('\n')
            for line in lines:
                if line.startswith(prefix):
                    return line


def start_pikerd_proc(addr: tuple[str, int], *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [PIKER, 'pikerd', *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + GUARD
    while port_free(addr):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, 'pikerd did not come up'
        time.sleep(0.02)
    return proc


@pytest.mark.timeout(GUARD)
def test_pikerd_up_down_no_leak(piker_env):
    confdir, addr = piker_env

    async def main():
        async with open_pikerd() as services:
            assert tractor.current_actor().is_arbiter
            assert current_services() is services
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                pid = await portal.run(fx.getpid)
                status = await portal.run(_child_init.status)
                env = {
                    name: await portal.run(fx.getenv, name=name)
                    for name in ('PIKER_CONFIG_DIR', 'PIKER_REGISTRY_ADDR', 'PYTHONWARNINGS')
                }
            assert services.daemon_pid('testd') == pid
            listed = await list_services()
            assert set(listed) == {'testd'} and listed['testd'].pid == pid
        assert current_services() is None
        return pid, status, env

    pid, status, env = trio.run(main)
    assert status['armed'] and status['expected_ppid'] == os.getpid()
    assert env['PIKER_CONFIG_DIR'] == str(confdir)
    assert env['PIKER_REGISTRY_ADDR'] == f'{addr[0]}:{addr[1]}'
    assert 'MultiError' in env['PYTHONWARNINGS']
    assert wait_dead([pid]) == []
    assert port_free(addr)
    assert children_of(os.getpid()) == []


@pytest.mark.timeout(GUARD_LONG)
def test_concurrent_spawns_yield_one_daemon(piker_env, tmp_path):
    """In-process tasks and two client processes race: one daemon."""
    errs: list[Path] = []

    async def main():
        pids = []
        async with open_pikerd() as services:

            async def local():
                async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                    pids.append(await p.run(fx.getpid))

            async def remote():
                # stderr to a file: the client's traceback is the diagnosis
                err = tmp_path / f'client-{len(errs)}.err'
                errs.append(err)
                with err.open('wb') as errf:
                    proc = await trio.lowlevel.open_process(
                        client_cmd('spawn'), stdout=subprocess.PIPE, stderr=errf,
                    )
                    async with proc:
                        line = await read_until(proc, 'pid ', timeout=GUARD)
                        pids.append(int(line.split()[1]))
                        # the client exits on its own: wait for that before
                        # `async with` closes its stdout under it
                        with trio.fail_after(GUARD):
                            await proc.wait()
                assert proc.returncode == 0, err.read_text()

            async with trio.open_nursery() as n:
                for task in (local, local, remote, remote):
                    n.start_soon(task)
            testd = [u for u in services.registry() if u[0] == 'testd']
            assert len(testd) == 1
            assert services.exits == []
        return pids

    pids = trio.run(main)
    assert len(pids) == 4 and len(set(pids)) == 1, pids
    assert wait_dead(pids[:1]) == []


@pytest.mark.timeout(GUARD)
def test_caller_giving_up_does_not_abort_the_spawn(piker_env):

    async def main():
        async with open_pikerd() as services:
            with trio.move_on_after(0.05) as cs:
                async with maybe_spawn_daemon('testd', enable_modules=FIXTURES):
                    pass
            assert cs.cancelled_caught
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                pid = await p.run(fx.getpid)
            assert services.exits == []  # the first spawn was not killed
        return pid

    assert wait_dead([trio.run(main)]) == []


@pytest.mark.timeout(GUARD)
def test_daemon_spawned_from_a_daemon_lives_under_pikerd(piker_env):
    """A sub-actor's maybe_spawn_daemon goes through pikerd (RPC)."""

    async def main():
        async with open_pikerd() as services:
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                pid = await portal.run(fx.spawn_sibling, name='testd2')
                assert await portal.run(fx.spawn_sibling, name='testd2') == pid
                assert services.daemon_pid('testd2') == pid
                assert sorted(children_of(os.getpid())) == sorted(
                    [pid, services.daemon_pid('testd')]
                )
        return pid

    assert wait_dead([trio.run(main)]) == []


@pytest.mark.timeout(GUARD_LONG)
def test_rule2_sigkilled_client_noticed_by_daemon(piker_env):
    """A daemon serving a SIGKILLed client notices within ~1 s (watch_peer)."""

    async def main():
        async with open_pikerd():
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                proc = await trio.lowlevel.open_process(
                    client_cmd('watch'), stdout=subprocess.PIPE,
                )
                async with proc:
                    await read_until(proc, 'ready', timeout=GUARD)
                    assert await portal.run(fx.events) == []
                    proc.kill()
                    t0 = time.monotonic()
                    with trio.fail_after(1.0):
                        while await portal.run(fx.events) != ['peer-lost']:
                            await trio.sleep(0.01)
                    noticed = time.monotonic() - t0
                # the daemon still serves others
                assert await portal.run(fx.getpid)
        return noticed

    noticed = trio.run(main)
    assert noticed < 1.0
    assert children_of(os.getpid()) == []


@pytest.mark.timeout(GUARD_LONG)
def test_rule2_rule7_sigkilled_daemon_noticed_and_respawned(piker_env):
    """Client sees PeerLost in ~1 s; pikerd drops the stale entry, respawns."""

    async def main():
        async with open_pikerd() as services:
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                pid = await portal.run(fx.getpid)
                old_uid = portal.channel.uid
                with pytest.raises(PeerLost) as exc:
                    async with open_watched_context(portal, fx.echo) as (ctx, first):
                        assert first == pid
                        async with ctx.open_stream() as stream:
                            await stream.send(1)
                            assert await stream.receive() == 1
                            os.kill(pid, signal.SIGKILL)
                            t0 = time.monotonic()
                            # rule 2: this receive alone would hang forever
                            await stream.receive()
                lost_after = time.monotonic() - t0
                assert 'testd' in str(exc.value)

            # pikerd: stale entry dropped, a new testd registered
            with trio.fail_after(RESPAWN_WITHIN):
                while True:
                    new_pid = services.daemon_pid('testd')
                    if new_pid not in (None, pid) and tuple(old_uid) not in services.registry():
                        if services._daemons['testd'].state == 'running':
                            break
                    await trio.sleep(0.02)
            assert services.exits[0][0] == 'testd' and services.exits[0][2] is True
            names = [u[0] for u in services.registry()]
            assert names.count('testd') == 1
            async with find_service('testd') as p2:
                assert await p2.run(fx.getpid) == new_pid
        return pid, new_pid, lost_after

    pid, new_pid, lost_after = trio.run(main)
    assert lost_after < 1.2, lost_after
    assert wait_dead([pid, new_pid]) == []


@pytest.mark.timeout(GUARD)
def test_a_peer_lost_while_closing_a_finished_block_is_not_an_error(piker_env):
    """The caller's block ended normally; the daemon dies during the goodbye
    (cancel, then the remote result): nothing pending is lost, so the block
    exits cleanly instead of raising PeerLost (seen across hosts)."""

    async def main():
        async with open_pikerd(max_restarts=0):
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                with trio.fail_after(5):
                    async with open_watched_context(portal, fx.die_on_goodbye) as (_, pid):
                        pass
                return pid

    assert wait_dead([trio.run(main)]) == []


async def wait_all_dead(pids: list[int], timeout: float) -> None:
    with trio.fail_after(timeout):
        while any(alive(p) for p in pids):
            await trio.sleep(0.02)


@pytest.mark.timeout(GUARD)
def test_rule2_sending_to_a_dead_daemon_raises_peer_lost(piker_env):
    """The send side notices first (BrokenResourceError): still PeerLost."""

    async def main():
        async with open_pikerd(max_restarts=0):
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                with pytest.raises(PeerLost):
                    async with open_watched_context(portal, fx.echo) as (ctx, pid):
                        async with ctx.open_stream() as stream:
                            os.kill(pid, signal.SIGKILL)
                            with trio.fail_after(1.2):
                                for i in range(10**6):
                                    await stream.send(i)
                                    await trio.sleep(0.005)
        return pid

    assert wait_dead([trio.run(main)]) == []


@pytest.mark.timeout(GUARD_LONG)
def test_rule6_sigkilled_pikerd_takes_children_down(piker_env):
    """SIGKILL pikerd: its daemons and their children exit (death signal)."""
    _, addr = piker_env
    pikerd = start_pikerd_proc(addr)
    try:
        async def main():
            async with maybe_open_pikerd() as services:
                assert services is None
                assert not tractor.current_actor().is_arbiter
                async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                    pid = await portal.run(fx.getpid)
                    # a worker thread of the parent exiting re-sends the death
                    # signal (trio runs Popen in a thread): not a parent death
                    os.kill(pid, _child_init.DEATH_SIGNAL)
                    await trio.sleep(0.1)
                    assert await portal.run(fx.getpid) == pid
                    # the orphaned daemon cancels itself gracefully, so the
                    # client sees either that or the lost heartbeat
                    with pytest.raises((PeerLost, tractor.ContextCancelled)):
                        async with open_watched_context(portal, fx.nested) as (ctx, pids):
                            assert pids[0] == pid and alive(pids[1])
                            pikerd.kill()
                            await trio.sleep_forever()
                    await wait_all_dead(pids, timeout=3)
                return pids

        pids = trio.run(main)
        assert wait_dead(pids, timeout=0) == []
    finally:
        pikerd.kill()
        pikerd.communicate()


@pytest.mark.timeout(GUARD)
def test_rule6_grandchildren_die_with_their_parent(piker_env):
    """The chain holds one level down: SIGKILL a daemon -> its child exits."""

    async def main():
        async with open_pikerd(max_restarts=0):
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                with pytest.raises(PeerLost):
                    async with open_watched_context(portal, fx.nested) as (ctx, pids):
                        os.kill(pids[0], signal.SIGKILL)
                        await trio.sleep_forever()
        return pids

    pids = trio.run(main)
    # PeerLost (~1 s) can come before the orphaned grandchild has finished
    # its graceful exit, which may take up to HARD_EXIT_AFTER; it must be
    # gone by then (plus scheduling slack), not linger as an orphan.
    assert wait_dead(pids, timeout=_child_init.HARD_EXIT_AFTER + 3) == []
    assert children_of(os.getpid()) == []


@pytest.mark.timeout(GUARD_LONG)
@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_rule5_cli_pikerd_signal_clean_exit(piker_env, sig):
    """`piker pikerd` + SIGINT/SIGTERM: exit 0, daemons gone, port free."""
    _, addr = piker_env
    pikerd = start_pikerd_proc(addr)
    try:
        async def main():
            async with maybe_open_pikerd():
                async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                    return await p.run(fx.getpid)

        daemon_pid = trio.run(main)
        assert children_of(pikerd.pid) == [daemon_pid]
        t0 = time.monotonic()
        pikerd.send_signal(sig)
        # graceful: the daemon exits when cancelled, well before tractor's
        # hard-kill path would SIGKILL it (timed on the daemon, not on
        # pikerd's own interpreter shutdown, which is slow on a busy box)
        assert wait_dead([daemon_pid], timeout=HARD_KILL_AFTER - 0.5) == [], (
            time.monotonic() - t0
        )
        _, err = pikerd.communicate(timeout=GUARD)
        assert pikerd.returncode == 0, err.decode()
        assert port_free(addr)
    finally:
        if pikerd.poll() is None:
            pikerd.kill()
            pikerd.communicate()


@pytest.mark.timeout(GUARD)
def test_rule5_outer_cancel_is_graceful(piker_env):
    """Cancelling a scope around open_pikerd tears daemons down quickly."""

    async def main():
        with trio.CancelScope() as cs:
            async with open_pikerd():
                async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                    pid = await p.run(fx.getpid)
                    t0 = time.monotonic()
                    cs.cancel()
                    await trio.sleep_forever()
        return pid, time.monotonic() - t0

    pid, took = trio.run(main)
    assert took < HARD_KILL_AFTER - 0.5, took  # ~60 ms idle; no hard kill
    assert wait_dead([pid], timeout=0.5) == []


@pytest.mark.timeout(GUARD_LONG)
def test_rule8_second_root_on_registry_fails(piker_env):
    """A second pikerd (or a stray listener) on the registry port fails clearly."""
    _, addr = piker_env

    async def main():
        async with open_pikerd():
            res = await trio.run_process(
                [PIKER, 'pikerd'], capture_stdout=True, capture_stderr=True, check=False,
            )
            assert res.returncode == 1
            assert b'already in use' in res.stderr
            # still the one registry, still working
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                return await p.run(fx.getpid)

    pid = trio.run(main)
    assert wait_dead([pid]) == []

    # not a tractor actor at all: refuse instead of joining
    with socket.socket() as lsock:
        lsock.bind(addr)
        lsock.listen()
        with pytest.raises(RegistryBusy, match='already in use'):
            trio.run(open_pikerd().__aenter__)

        async def maybe():
            async with maybe_open_pikerd():
                pass

        # tractor alone would hang registering with it
        t0 = time.monotonic()
        with pytest.raises(RegistryBusy, match='not a tractor actor'):
            trio.run(maybe)
        assert time.monotonic() - t0 < 5
        res = subprocess.run([PIKER, 'services'], capture_output=True, timeout=GUARD)
        assert res.returncode == 1 and b'not a tractor actor' in res.stderr
    assert tractor.current_actor(err_on_no_runtime=False) is None


@pytest.mark.timeout(GUARD_LONG)
def test_rule8_pikerd_that_joined_another_registry_fails(piker_env, monkeypatch):
    """If the bind pre-check races, the post-start ownership check catches it."""
    from piker.service import _pikerd

    _, addr = piker_env
    other = start_pikerd_proc(addr)
    try:
        monkeypatch.setattr(_pikerd, 'port_in_use', lambda addr: False)

        async def main():
            async with open_pikerd():
                pass

        with pytest.raises(RegistryBusy, match='already in use'):
            trio.run(main)
        assert other.poll() is None  # the real pikerd is unharmed

        async def still_works():
            async with connect_pikerd():
                return await list_services()

        assert trio.run(still_works) == {}
    finally:
        other.send_signal(signal.SIGINT)
        other.communicate(timeout=5)
    assert other.returncode == 0


@pytest.mark.timeout(GUARD)
def test_rule8_client_never_becomes_registry(piker_env):
    _, addr = piker_env

    async def connect():
        async with connect_pikerd():
            pass

    with pytest.raises(PikerdNotRunning, match='no pikerd answers'):
        trio.run(connect)

    async def no_runtime():
        async with maybe_spawn_daemon('testd', enable_modules=FIXTURES):
            pass

    with pytest.raises(ServiceError, match='maybe_open_pikerd'):
        trio.run(no_runtime)

    from piker.service._pikerd import _open_client

    async def raced():  # pikerd vanished between probe and connect
        async with _open_client(addr, None, None, False):
            pass

    with pytest.raises(PikerdNotRunning, match='refusing to become the registry'):
        trio.run(raced)
    assert port_free(addr)


@pytest.mark.timeout(GUARD)
def test_rule9_slow_consumer_does_not_stall_fast_one(piker_env):
    """Two streams over one connection: a slow reader never blocks a fast one."""

    async def main():
        async with open_pikerd():
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                async with (
                    portal.open_context(fx.counter, n=10**7) as (slow_ctx, _),
                    slow_ctx.open_stream() as slow_stream,
                    open_drained_stream(slow_stream, policy='drop_oldest', maxlen=8) as slow,
                ):
                    slow_seen = []

                    async def slow_reader():
                        async for i in slow:
                            slow_seen.append(i)
                            await trio.sleep(0.05)

                    async with trio.open_nursery() as n:
                        n.start_soon(slow_reader)
                        await trio.sleep(0.2)  # let the slow side fall behind
                        t0 = time.monotonic()
                        async with (
                            portal.open_context(fx.counter, n=3000) as (ctx, _),
                            ctx.open_stream() as stream,
                        ):
                            got = [i async for i in stream]
                        fast_took = time.monotonic() - t0
                        n.cancel_scope.cancel()
                    await slow_ctx.cancel()
                assert got == list(range(3000))
                return fast_took, slow.dropped, slow_seen

    fast_took, dropped, slow_seen = trio.run(main)
    assert fast_took < 2.0, fast_took
    assert dropped > 1000
    assert slow_seen == sorted(slow_seen) and len(slow_seen) < 50


@pytest.mark.timeout(GUARD)
def test_unregistering_an_already_dropped_entry_is_clean(piker_env):
    """An actor whose entry pikerd already dropped still exits cleanly.

    A gracefully exiting actor closes its listener before it unregisters,
    so the pruner can drop its entry first; tractor's own unregister then
    raised KeyError back into the exiting actor (client roots exited 1).
    """

    async def main():
        async with open_pikerd() as services:
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                pid = await p.run(fx.getpid)
                uid = p.channel.uid
            assert services.drop_entry(uid)
            assert await cancel_service('testd') is True
            # and over RPC, for a uid the registry never had
            async with tractor.get_arbiter(*services.registry_addr) as arb:
                await arb.run_from_ns('self', 'unregister_actor', uid=('nobody', 'x'))
            return pid, services.exits

    pid, exits = trio.run(main)
    assert exits == [('testd', 0, False)]
    assert wait_dead([pid]) == []


@pytest.mark.timeout(10)
def test_slow_listener_is_not_pruned(piker_env, monkeypatch):
    """Only a refused connect prunes an entry; a slow accept (load) does not."""
    from piker.service import _registry

    async def main():
        with socket.socket() as lsock:
            lsock.bind(('127.0.0.1', 0))
            addr = lsock.getsockname()
        assert await _registry.listener_gone(addr) is True  # refused

        async def hang(*args, **kw):
            await trio.sleep_forever()

        monkeypatch.setattr(trio, 'open_tcp_stream', hang)
        t0 = trio.current_time()
        assert await _registry.listener_gone(addr, timeout=0.1) is False
        assert trio.current_time() - t0 >= 0.1

    trio.run(main)


@pytest.mark.timeout(GUARD_LONG)
def test_clean_cancel_is_not_a_crash_and_restart_limit(piker_env):

    async def main():
        async with open_pikerd(max_restarts=1) as services:
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                pid1 = await p.run(fx.getpid)
            assert await cancel_service('testd') is True
            await trio.sleep(0.3)
            assert services.daemon_pid('testd') is None
            assert services.exits == [('testd', 0, False)]
            assert 'testd' not in await list_services()
            assert await cancel_service('testd') is False

            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                pid2 = await p.run(fx.getpid)
            os.kill(pid2, signal.SIGKILL)  # crash 1: respawned
            with trio.fail_after(RESPAWN_WITHIN):
                while services.daemon_pid('testd') in (None, pid2) or (
                    services._daemons['testd'].state != 'running'
                ):
                    await trio.sleep(0.02)
            pid3 = services.daemon_pid('testd')
            os.kill(pid3, signal.SIGKILL)  # crash 2: over the limit
            with trio.fail_after(3):
                while services._daemons['testd'].state != 'failed':
                    await trio.sleep(0.02)
            await trio.sleep(0.3)
            assert services.daemon_pid('testd') == pid3 and not alive(pid3)
            assert (await list_services())['testd'].state == 'failed'
            assert [e[2] for e in services.exits] == [False, True, True]
            # an explicit request starts it again
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                pid4 = await p.run(fx.getpid)
        return [pid1, pid2, pid3, pid4]

    pids = trio.run(main)
    assert len(set(pids)) == 4
    assert wait_dead(pids) == []


@pytest.mark.timeout(GUARD)
def test_bad_daemon_module_fails_clearly(piker_env):

    async def main():
        async with open_pikerd() as services:
            with pytest.raises(ModuleNotFoundError):
                async with maybe_spawn_daemon('bad', enable_modules=['no_such_module_xyz']):
                    pass
            assert services.daemon_pid('bad') is None
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                return await p.run(fx.getpid)

    assert wait_dead([trio.run(main)]) == []


@pytest.mark.timeout(GUARD)
def test_exposure_needs_explicit_opt_in(piker_env):
    _, addr = piker_env

    async def main():
        async with open_pikerd(('0.0.0.0', addr[1])):
            pass

    with pytest.raises(ServiceError, match='not loopback'):
        trio.run(main)

    async def daemon():
        async with open_pikerd():
            with pytest.raises(ServiceError, match='not loopback'):
                async with maybe_spawn_daemon(
                    'testd', enable_modules=FIXTURES, bind_host='0.0.0.0',
                ):
                    pass

    trio.run(daemon)


@pytest.mark.timeout(GUARD_LONG)
def test_cli_services(piker_env):
    _, addr = piker_env
    res = subprocess.run([PIKER, 'services'], capture_output=True, timeout=GUARD)
    assert res.returncode == 1
    assert b'no pikerd answers' in res.stderr

    async def main():
        async with open_pikerd():
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as p:
                pid = await p.run(fx.getpid)
                res = await trio.run_process(
                    [PIKER, 'services'], capture_stdout=True, capture_stderr=True,
                )
                return pid, res.stdout.decode()

    pid, out = trio.run(main)
    assert 'testd' in out and str(pid) in out and 'running' in out
    assert 'piker-client' not in out
    assert f'{addr[0]}:' in out
