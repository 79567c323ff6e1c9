"""Bytes that are not a tractor peer cost that connection only (issue #9, 1-3).

Regression tests for `piker.service._wire` and the deaf-daemon supervision
in `piker.service._mngr`, each pinned to the failure measured before:

1. an HTTP request to the registry port killed pikerd and the tree
   (`ValueError: unclean EOF (read only 75/542393671 bytes)`);
2. the same on a daemon's port left it alive but deaf (listener closed),
   and pikerd neither noticed nor respawned it;
3. one frame nested 5,000 deep, or invalid UTF-8, killed the daemon, then
   pikerd (the daemon's crash report re-raised in pikerd), whose respawn
   then failed with `OSError(9, 'Bad file descriptor')`.

A daemon (`testd`, tests/_daemon_fixtures.py) stands in for emsd and
paperboi: the wire is the same for every actor. tests/test_fuzz_wire.py
throws random bytes at the real tree.
"""
from __future__ import annotations

import msgspec
import pytest
import tractor
import trio

from piker.service import (
    ServiceError,
    _wire,
    find_service,
    list_services,
    maybe_spawn_daemon,
    open_pikerd,
    open_watched_context,
)
from piker.service._registry import listener_gone
from tests import _daemon_fixtures as fx
from tests._raw_peer import (
    HEADER,
    HTTP_GET,
    INVALID_UTF8,
    deep,
    encode,
    exchange,
    frame,
)

pytestmark = pytest.mark.timeout(60)

FIXTURES = ['tests._daemon_fixtures']
UID = ['hostile', 'x' * 8]
RESPAWN_WITHIN = 15.0


async def _still_serving(services, portal, stream, pid: int) -> None:
    """The daemon and pikerd serve as before: same pid, nothing restarted,
    a live context still works, and the daemon's listener takes a new one."""
    await stream.send('still there?')
    assert await stream.receive() == 'still there?'
    assert await portal.run(fx.getpid) == pid
    async with find_service('testd') as fresh:  # a new connection
        assert await fresh.run(fx.getpid) == pid
    assert (await list_services())['testd'].pid == pid
    assert services.exits == []


def _with_testd(check) -> None:
    """Run `check(services, portal, stream, addr, pid)` in pikerd with `testd`
    and a watched echo context open to it (a connection that must live)."""

    async def main() -> None:
        async with open_pikerd() as services:
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                pid = await portal.run(fx.getpid)
                addr = services._daemons['testd'].addr
                async with open_watched_context(portal, fx.echo) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        await check(services, portal, stream, addr, pid)
                        await _still_serving(services, portal, stream, pid)

    trio.run(main)


# ---- 1. an HTTP request / a huge length prefix --------------------------------

def test_http_request_or_huge_length_drops_only_that_connection(piker_env):
    _, registry = piker_env

    async def check(services, portal, stream, addr, pid):
        for target in (registry, addr):
            for data in (HTTP_GET, HEADER.pack(2**32 - 1) + b'x' * 1000):
                # dropped at once: nobody waits for (or allocates) 4 GiB
                reply = await exchange(target, data)
                assert reply.closed, (target, data[:8])
            # a frame at the limit is not refused for its length
            reply = await exchange(target, HEADER.pack(_wire.MAX_FRAME) + b'x', wait=0.5)
            assert not reply.closed
            assert not await listener_gone(target)

    _with_testd(check)


def test_a_peer_that_never_handshakes_is_dropped(piker_env, monkeypatch):
    """tractor waited for ever: a scanner holding connections open held
    a socket and a task each."""
    _, registry = piker_env
    monkeypatch.setattr(_wire, 'HANDSHAKE_TIMEOUT', 0.3)  # pikerd is this process

    async def main() -> None:
        async with open_pikerd():
            reply = await exchange(registry, b'', wait=3)
            assert reply.closed and reply.msgs()[0][0] == 'pikerd'
            # the limit is on the handshake only: a quiet peer after it stays
            reply = await exchange(registry, b'', handshake=True, wait=0.8)
            assert not reply.closed

    trio.run(main)


# ---- 2. a deaf daemon (listener gone, process alive) ------------------------------

@pytest.mark.parametrize('how', ['close_listener', 'crash_runtime'])
def test_a_daemon_that_stops_listening_is_killed_and_respawned(piker_env, how):
    """Deaf: its listener is gone, its process (and its loop with pikerd)
    lives on. `crash_runtime` is how a bad connection made emsd deaf."""

    async def main() -> None:
        async with open_pikerd(prune_interval=0.2) as services:
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                pid = await portal.run(fx.getpid)
                addr = services._daemons['testd'].addr
                await portal.run(getattr(fx, how))
                with trio.fail_after(5):
                    while not await listener_gone(addr):
                        await trio.sleep(0.05)
                assert services._daemons['testd'].proc.poll() is None  # half alive
            with trio.fail_after(RESPAWN_WITHIN):
                while services.daemon_pid('testd') in (None, pid) or (
                    services._daemons['testd'].state != 'running'
                ):
                    await trio.sleep(0.05)
            assert services.exits == [('testd', -9, True)]
            async with find_service('testd') as fresh:
                assert await fresh.run(fx.getpid) == services.daemon_pid('testd') != pid

    trio.run(main)


def test_pikerd_exits_when_its_own_listener_closes(piker_env):
    async def main() -> None:
        async with open_pikerd():
            tractor.current_actor().cancel_server()  # as a crash cascade did
            with trio.fail_after(5):
                await trio.sleep_forever()

    caught: list[BaseException] = []

    async def outer() -> None:
        try:
            await main()
        except* ServiceError as group:
            caught.extend(group.exceptions)

    trio.run(outer)
    assert len(caught) == 1 and 'listener closed' in str(caught[0])


# ---- 3. malformed frames and messages ------------------------------------------

DROPPED = {
    'deep before the handshake': (False, frame(deep(5000))),
    'deep as the handshake': (True, frame(deep(5000))),
    'invalid UTF-8 (x5: tractor skipped four)': (True, frame(INVALID_UTF8) * 5),
    'invalid UTF-8 handshake': (False, frame(INVALID_UTF8)),
    'empty frame': (True, frame(b'')),
    'truncated msgpack': (True, frame(b'\x92\x01')),
    'a string as uid': (False, encode('ab')),
    'an int as uid': (False, encode(7)),
    'a list message': (True, encode([1, 2])),
    'neither cmd nor response': (True, encode({'foo': 1})),
    'a short cmd': (True, encode({'cmd': [1, 2]})),
    'a cmd without a cid': (True, encode({'cmd': ['a', 'b', {}, UID, 5]})),
    'a non-string cid': (True, encode({'cid': [1], 'yield': 1})),
    'a malformed error': (True, encode({'cid': 'x', 'error': {'x': 1}})),
    'an error with reserved fields': (
        True, encode({'cid': 'x', 'error': {'type_str': 'X', 'message': 1}})),
    'a crash report from a stranger': (True, encode({'error': {'type_str': 'X'}})),
}
# the peer hangs up (we do) inside a frame: tractor raised ValueError then
HANG_UP = [HEADER.pack(100) + b'\x91', HEADER.pack(10), b'\x01\x00']


def test_malformed_frames_drop_only_that_connection(piker_env):
    _, registry = piker_env

    async def check(services, portal, stream, addr, pid):
        for target in (registry, addr):
            for name, (handshake, data) in DROPPED.items():
                reply = await exchange(target, data, handshake=handshake)
                assert reply.closed, (target, name)
            for data in HANG_UP:
                for handshake in (False, True):
                    await exchange(target, data, handshake=handshake, wait=0.1)

    _with_testd(check)


def _cmd(ns: str, func: str, kwargs: dict, cid: str) -> bytes:
    return encode({'cmd': [ns, func, kwargs, UID, cid]})


def _deep_kwargs_cmd(ns: str, func: str, depth: int, cid: str) -> bytes:
    pack = msgspec.msgpack.encode
    return frame(b'\x81' + pack('cmd') + b'\x95' + pack(ns) + pack(func)
                 + b'\x81' + pack('k') + deep(depth) + pack(UID) + pack(cid))


def test_bad_rpcs_are_answered_and_the_connection_lives(piker_env):
    """A well-framed RPC the actor cannot run gets an error on its cid."""
    hb = 'piker.service._heartbeat'

    async def check(services, portal, stream, addr, pid):
        cases = {
            _cmd('self', 'cancel_server', {}, 'c1'): 'ModuleNotExposed',
            _cmd('self', 'no_such_method', {}, 'c2'): 'ModuleNotExposed',
            _cmd(hb, 'ping', {'zz': 1}, 'c3'): 'TypeError',
            _cmd(hb, 'ping', {1: 2}, 'c4'): 'TypeError',
            _cmd('tests._daemon_fixtures', 'echo', {'x': 1}, 'c5'): 'TypeError',
            _cmd('os', 'system', {}, 'c6'): 'ModuleNotExposed',  # tractor's own check
        }
        for data, err in cases.items():
            reply = await exchange(addr, data, handshake=True, want=2)
            *_, last = reply.msgs()
            assert not reply.closed and last['error']['type_str'] == err, last
        # a good RPC on the same kind of connection still runs
        reply = await exchange(addr, _cmd(hb, 'ping', {}, 'ok'), handshake=True, want=3)
        assert reply.msgs()[-1] == {'return': pid, 'cid': 'ok'}
        # deep, yet decodable: whatever breaks downstream stays in the connection
        for depth in (600, 900, 950, 980):
            for data in (
                frame(b'\x82\xa3cid\xa1q\xa5yield' + deep(depth)),  # unknown context
                frame(deep(depth)),
                _deep_kwargs_cmd(hb, 'ping', depth, f'deep-{depth}'),
                _deep_kwargs_cmd('tests._daemon_fixtures', 'echo', depth, f'ctx-{depth}'),
            ):
                await exchange(addr, data, handshake=True, wait=0.05)

    _with_testd(check)


def test_sending_a_frame_above_the_limit_fails_in_the_sender(piker_env, monkeypatch):
    monkeypatch.setattr(_wire, 'MAX_FRAME', 1_000)

    async def check(services, portal, stream, addr, pid):
        with pytest.raises(ValueError, match='frame limit'):
            await stream.send('x' * 2_000)
        # nothing was written: the connection is in sync
        monkeypatch.setattr(_wire, 'MAX_FRAME', 64 * 2**20)

    _with_testd(check)


# ---- 3b. a child's crash report is not fatal to pikerd ------------------------

def test_a_crash_report_is_respawned_and_pikerd_lives(piker_env):
    """A crashing daemon ships its error to pikerd: pikerd used to re-raise
    it in its handler for that connection (and die, closing its own
    listener, so that its respawn failed with EBADF)."""

    async def main() -> None:
        async with open_pikerd() as services:
            async with maybe_spawn_daemon('testd', enable_modules=FIXTURES) as portal:
                pid = await portal.run(fx.getpid)
                with trio.move_on_after(2):  # no reply: it exits
                    await portal.run(fx.report_crash)
            with trio.fail_after(RESPAWN_WITHIN):
                while services.daemon_pid('testd') in (None, pid) or (
                    services._daemons['testd'].state != 'running'
                ):
                    await trio.sleep(0.05)
            assert services.exits == [('testd', 1, True)]
            async with find_service('testd') as fresh:
                assert await fresh.run(fx.getpid) == services.daemon_pid('testd')

    trio.run(main)
