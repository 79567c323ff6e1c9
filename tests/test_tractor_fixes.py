"""piker's fixes to tractor 0.1.0a5 failure paths (`piker.service._tractor_fixes`)."""
from __future__ import annotations

import pytest
import trio
from tractor._actor import Actor

from piker.service import _tractor_fixes

pytestmark = pytest.mark.timeout(30)


class _Ctx:
    """The parts of a `tractor.Context` that `_push_result` touches."""

    def __init__(self) -> None:
        self._send_chan, self.recv = trio.open_memory_channel(0)
        self._backpressure = True
        self._stream_opened = True

    async def _maybe_raise_from_remote_msg(self, msg: dict) -> None:
        return None


class _Chan:
    uid = ('peer', 'uid')


class _Actor:
    uid = ('me', 'uid')

    def __init__(self, ctx: _Ctx) -> None:
        self._contexts = {(_Chan.uid, 'cid'): ctx}


def _push_to_a_reader_that_leaves(push) -> None:
    async def main() -> None:
        ctx = _Ctx()
        async with trio.open_nursery() as n:
            # the queue is full (no buffer): the push waits for the reader...
            n.start_soon(push, _Actor(ctx), _Chan(), 'cid', {'cid': 'cid', 'yield': 1})
            await trio.testing.wait_all_tasks_blocked()
            # ...which goes away (its task cancelled, its channel closed)
            await ctx.recv.aclose()
    trio.run(main)


def test_unpatched_push_result_kills_the_message_loop():
    """The failure the fix is for: tractor's own code raises out of the
    connection's message loop (measured: emsd and pikerd died of it)."""
    with pytest.raises(trio.BrokenResourceError):
        _push_to_a_reader_that_leaves(_tractor_fixes._orig_push_result)


def test_push_result_drops_a_message_whose_reader_is_gone(caplog):
    assert Actor._push_result is _tractor_fixes._push_result  # installed on import
    _push_to_a_reader_that_leaves(Actor._push_result)
    assert 'its reader is gone' in caplog.text


# --- heartbeat liveness: a busy peer is alive, a silent one is lost ------------

class _Stream:
    def __init__(self) -> None:
        import time
        self.last_rx = time.monotonic()


class _SlowChan:
    uid = ('busy', 'uid')

    def __init__(self) -> None:
        self.msgstream = _Stream()

    def connected(self) -> bool:
        return True


class _SlowPortal:
    """A peer whose ping replies never come (they wait behind its traffic)."""

    def __init__(self) -> None:
        self.channel = _SlowChan()

    async def run(self, func, **kw):
        await trio.sleep_forever()


def test_watchdog_keeps_a_talking_peer_and_loses_a_silent_one():
    import time

    from piker.service import PeerLost, watchdog

    async def main() -> tuple[float, float]:
        portal = _SlowPortal()
        talking = True

        async def _talk() -> None:
            while talking:
                portal.channel.msgstream.last_rx = time.monotonic()
                await trio.sleep(0.02)

        t0 = time.monotonic()
        silent_at = 0.0
        async with trio.open_nursery() as n:
            n.start_soon(_talk)
            with pytest.raises(PeerLost) as err:
                async with watchdog(portal, interval=0.05, timeout=0.2):
                    # pings time out all along, but the peer talks: kept
                    await trio.sleep(1.5)
                    talking = False
                    silent_at = time.monotonic()
                    await trio.sleep(5)
            assert 'nothing heard' in str(err.value)
        return silent_at - t0, time.monotonic() - silent_at

    kept, lost_after = trio.run(main)
    assert kept >= 1.5
    # two silent timeouts (+ the one in flight when it fell silent)
    assert lost_after < 1.5


def test_a_gone_caller_is_not_logged_as_a_crash():
    import logging

    from piker.service._tractor_fixes import _CallerGoneFilter

    f = _CallerGoneFilter()

    def record(msg: str, err: BaseException | None) -> logging.LogRecord:
        exc_info = (type(err), err, None) if err is not None else None
        return logging.LogRecord('tractor', logging.ERROR, __file__, 1, msg, (), exc_info)

    gone = trio.BrokenResourceError('socket connection broken')
    gone.__cause__ = BrokenPipeError(32, 'Broken pipe')
    assert not f.filter(record('Actor crashed:', gone))
    assert not f.filter(record("Failed to ship error to caller @ ('x', 'y') !?", None))
    # a real crash still shows
    assert f.filter(record('Actor crashed:', ValueError('bug')))
    assert f.filter(record('something else', None))


def test_the_gone_caller_filter_sees_tractors_records(caplog):
    """Installed where tractor logs them: `tractor._actor`'s own module
    logger (the package logger 'tractor'), and the child 'tractor._actor'
    (a filter on a parent never sees its children's records)."""
    import logging

    from tractor import _actor
    from tractor.log import get_logger

    gone = trio.BrokenResourceError('socket connection broken')
    for log in (_actor.log, get_logger('tractor._actor')):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger='tractor'):
            log.error("Failed to ship error to caller @ ('x', 'y') !?")
            try:
                raise gone
            except trio.BrokenResourceError:
                log.exception('Actor crashed:')
            log.error('a real one')
        assert [r.getMessage() for r in caplog.records] == ['a real one']


# --- one-shot RPCs leave no context behind ------------------------------------

def test_one_shot_rpcs_leave_no_context_on_either_side(piker_env):
    """tractor kept one `Context` per `portal.run()` in both actors for good
    (a heartbeat runs 4 a second per watched peer)."""
    import tractor

    from piker.service import (
        maybe_spawn_daemon,
        open_pikerd,
        open_watched_context,
        ping,
    )
    from tests import _daemon_fixtures as fx

    async def main() -> tuple[int, int]:
        async with open_pikerd():
            async with maybe_spawn_daemon('testd', enable_modules=['tests._daemon_fixtures']) as p:
                me = tractor.current_actor()
                mine, theirs = len(me._contexts), await p.run(fx.context_count)
                for _ in range(200):
                    await p.run(ping)
                with trio.move_on_after(0.1):  # a caller that gives up waiting
                    await p.run(fx.nap, seconds=0.3)
                # a context endpoint still works (tractor pops those itself)
                async with open_watched_context(p, fx.echo) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        await stream.send(1)
                        assert await stream.receive() == 1
                with trio.move_on_after(3):  # the nap and the echo end over there
                    while await p.run(fx.context_count) > theirs:
                        await trio.sleep(0.05)
                return len(me._contexts) - mine, await p.run(fx.context_count) - theirs

    assert trio.run(main) == (0, 0)


def test_messages_are_not_formatted_for_log_lines_nobody_sees():
    """tractor formats every message it sends or receives into a log
    f-string (~27 us for one Status, ~2 ms for a batch of 100, whatever the
    level): a received message's repr leaves its payload out, and a sent
    one is not formatted at all."""
    import msgspec
    from tractor._ipc import Channel

    reprs: list[int] = []

    class Spy(msgspec.Struct):
        x: int = 1

        def __repr__(self) -> str:
            reprs.append(1)
            return 'Spy()'

    big = {'cid': 'c1', 'yield': {'payload': 'x' * 100_000}}

    async def main() -> None:
        (listener,) = await trio.open_tcp_listeners(0, host='127.0.0.1')
        port = listener.socket.getsockname()[1]
        async with listener, await trio.open_tcp_stream('127.0.0.1', port) as out:
            inbound = await listener.accept()
            tx, rx = Channel.from_stream(out), Channel.from_stream(inbound)
            await tx.send(Spy())
            await tx.send(big)
            assert await rx.recv() == {'x': 1}
            got = await rx.recv()
            assert got == big and got['yield'] == big['yield']
            assert len(repr(got)) < 100 and 'c1' in repr(got) and len(f'{got}') < 100
            # an error keeps its whole repr: what went wrong is worth the cost
            err = {'cid': 'c2', 'error': {'type_str': 'ValueError', 'tb_str': 'boom'}}
            await tx.send(err)
            assert 'boom' in repr(await rx.recv())
            await tx.aclose()
            await rx.aclose()

    trio.run(main)
    assert reprs == []
