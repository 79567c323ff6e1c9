"""Start a paused replay, and know when it is over (scripts, tests).

    async with open_replay_control('btcusdt.sim') as ctl:   # the recorded fqme
        await ctl.play()          # a `[replay] paused = true` replay starts
        await ctl.wait_done()     # every recorded quote has been sent

brokerd.replay serves `replay_control`; the controller speaks to it.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager as acm

import tractor
import trio


class _State:
    def __init__(self) -> None:
        self.play = trio.Event()
        self.done = trio.Event()
        self.sent = 0


_states: dict[str, _State] = {}


def replay_state(src: str) -> _State:
    """This brokerd's replay state of recorded fqme `src` (a new one after
    the previous replay of it has finished)."""
    st = _states.get(src)
    if st is None or st.done.is_set():
        st = _states[src] = _State()
    return st


@tractor.context
async def replay_control(ctx: tractor.Context, src: str) -> None:
    """Requests on the stream: 'play' -> 'ok'; 'wait' -> sent count when done."""
    await ctx.started(True)
    async with ctx.open_stream() as stream:
        async for req in stream:
            st = _states.get(src) or replay_state(src)
            if req == 'play':
                st.play.set()
                await stream.send('ok')
            elif req == 'wait':
                await st.done.wait()
                await stream.send(st.sent)


class ReplayControl:
    def __init__(self, stream: tractor.MsgStream) -> None:
        self._stream = stream

    async def play(self) -> None:
        await self._stream.send('play')
        await self._stream.receive()

    async def wait_done(self) -> int:
        """Wait until every quote is sent; returns how many were."""
        await self._stream.send('wait')
        return await self._stream.receive()


@acm
async def open_replay_control(src: str) -> AsyncIterator[ReplayControl]:
    """Control the replay of recorded fqme `src` (needs a running tree)."""
    from .. import maybe_spawn_brokerd

    async with maybe_spawn_brokerd('replay') as portal:
        async with portal.open_context(replay_control, src=src.lower()) as (ctx, _):
            async with ctx.open_stream() as stream:
                yield ReplayControl(stream)
