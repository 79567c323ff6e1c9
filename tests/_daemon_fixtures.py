"""Test-only daemon endpoints for tests/test_service*.py.

Sub-actors import this as `tests._daemon_fixtures` (the repo root is on
sys.path through the editable install), so it must stay importable and
side-effect free.
"""
from __future__ import annotations

import os

import tractor
import trio

from piker.service import start_actor_task, watch_peer

# daemon-side record of how watched contexts ended (queried over RPC)
_events: list[str] = []


async def getpid() -> int:
    """RPC: this actor's pid."""
    return os.getpid()


async def getenv(name: str) -> str | None:
    """RPC: an environment variable as this actor sees it."""
    return os.environ.get(name)


async def events() -> list[str]:
    """RPC: what happened to watched contexts in this daemon."""
    return list(_events)


async def spawn_sibling(name: str) -> int:
    """RPC: from inside a daemon, ask for daemon `name`; return its pid."""
    from piker.service import maybe_spawn_daemon

    async with maybe_spawn_daemon(name, enable_modules=['tests._daemon_fixtures']) as p:
        return await p.run(getpid)


@tractor.context
async def echo(ctx: tractor.Context) -> None:
    """Echo every message back, under a daemon-side peer watch."""
    await ctx.started(os.getpid())
    async with watch_peer(ctx) as watch:
        async with ctx.open_stream() as stream:
            async for msg in stream:
                await stream.send(msg)
    # synchronous clean-up: runs even when the endpoint is being cancelled
    _events.append('peer-lost' if watch.lost else 'stream-ended')


@tractor.context
async def die_on_goodbye(ctx: tractor.Context) -> None:
    """Start, then die (SIGKILL) when the caller cancels: the link breaks
    while a finished session is being closed."""
    import signal

    await ctx.started(os.getpid())
    try:
        await trio.sleep_forever()
    finally:
        os.kill(os.getpid(), signal.SIGKILL)


async def nap(seconds: float) -> None:
    """RPC: take `seconds` to answer."""
    await trio.sleep(seconds)


async def context_count() -> int:
    """RPC: how many contexts this actor's runtime holds (a leak check)."""
    return len(tractor.current_actor()._contexts)


async def close_listener() -> None:
    """RPC: close this actor's listener, leaving the process (and its
    connection to pikerd) alive: a deaf daemon (tests/test_wire.py)."""
    tractor.current_actor().cancel_server()


async def crash_runtime() -> None:
    """RPC: crash this actor's runtime (not just this RPC task): an error in
    its service nursery, soon after this RPC returned. tractor then tears
    the service nursery (listener included) down, while the shielded
    message loop with the parent keeps the process: a deaf daemon."""

    async def _boom() -> None:
        await trio.sleep(0.2)
        raise RuntimeError('testd runtime crash')

    start_actor_task(_boom)


async def report_crash() -> None:
    """RPC: what a daemon does when its runtime crashes in a way tractor
    reports at once: ship the error to its parent (tractor's
    `try_ship_error_to_parent`), then exit 1. The reply never comes."""
    from tractor import _actor

    actor = tractor.current_actor()
    await _actor.try_ship_error_to_parent(actor._parent_chan, RuntimeError('testd crashed'))
    await trio.sleep(0.2)
    os._exit(1)


@tractor.context
async def counter(ctx: tractor.Context, n: int, delay: float = 0.0) -> None:
    """Stream the integers 0..n-1 (as fast as possible when delay is 0)."""
    await ctx.started(n)
    async with ctx.open_stream() as stream:
        for i in range(n):
            await stream.send(i)
            if delay:
                await trio.sleep(delay)


@tractor.context
async def nested(ctx: tractor.Context) -> None:
    """Spawn a grandchild actor of this daemon and report both pids."""
    from piker.service import DAEMON_MODULES

    async with tractor.open_nursery() as an:
        portal = await an.start_actor(
            'testd.grandchild',
            enable_modules=DAEMON_MODULES + ['tests._daemon_fixtures'],
        )
        child_pid = await portal.run(getpid)
        await ctx.started([os.getpid(), child_pid])
        try:
            await trio.sleep_forever()
        finally:
            await an.cancel()


def client_main(mode: str) -> None:
    """A separate client process for cross-process tests (`python -c`).

    - `spawn`: ask for daemon `testd`, print its pid, exit.
    - `watch`: open a watched `echo` context to `testd`, print `ready <pid>`
      and wait forever (the test SIGKILLs this process).
    """
    import sys

    from piker.service import (
        maybe_open_pikerd,
        maybe_spawn_daemon,
        open_watched_context,
    )

    async def main() -> None:
        async with maybe_open_pikerd() as services:
            assert services is None, 'client must not become pikerd'
            async with maybe_spawn_daemon(
                'testd', enable_modules=['tests._daemon_fixtures'],
            ) as portal:
                pid = await portal.run(getpid)
                if mode == 'spawn':
                    print(f'pid {pid}', flush=True)
                    return
                async with open_watched_context(portal, echo) as (ctx, _):
                    async with ctx.open_stream() as stream:
                        await stream.send('hi')
                        assert await stream.receive() == 'hi'
                        print(f'ready {pid}', flush=True)
                        await trio.sleep_forever()

    trio.run(main)
    sys.exit(0)
