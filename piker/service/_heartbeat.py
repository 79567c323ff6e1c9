"""Heartbeats for long-lived contexts (TRACTOR.md rules 2, 3 and 4).

In tractor 0.1.0a5 a task blocked in `stream.receive()` is never woken when
the peer process is SIGKILLed: the daemon-side task leaks and the client
hangs forever. Both sides therefore watch the peer themselves:

- daemon side, `watch_peer(ctx)`: polls `ctx.chan.connected()` and cancels
  the enclosed block when the client's connection is gone (~50 ms).
- client side, `watchdog(portal)` / `open_watched_context(portal, fn)`:
  pings the daemon every `interval` with `trio.fail_after(timeout)`. A
  closed connection (a SIGKILLed peer) is lost at once; a ping that times
  out counts only if nothing at all was heard from the peer meanwhile (a
  busy peer's reply queues behind its own messages: it is alive), and two
  such in a row declare a wedged peer lost (~`interval + 2 * timeout`).
  The watched block is then cancelled **from outside** `open_context`
  (an error raised inside it on a dead channel hangs teardown, rule 3) and
  `PeerLost` is raised in its place.

This module is in every piker daemon's `enable_modules`, so `ping` exists in
every actor a client may watch.
"""
from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager as acm
from typing import Any

import tractor
import trio

from ..log import get_logger
from ._lifetime import end_endpoint_cancelled
from ._registry import ServiceError
from ._tractor_fixes import last_heard

log = get_logger('service')

PING_INTERVAL = 0.25
PING_TIMEOUT = 0.6
# consecutive silent ping timeouts before a peer is declared lost
STRIKES = 2


class _ExpectedCancelFilter(logging.Filter):
    """Hide tractor's ERROR traceback for a context-cancelled reply.

    Rule 4 makes every caller `await ctx.cancel()` before leaving a context;
    tractor 0.1.0a5 then logs the callee's expected `ContextCancelled` reply
    as an error with a traceback. A cancel the caller did not ask for is
    still raised to it as an exception, so the log line adds nothing.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not (
            msg.startswith('Remote context error') and 'ContextCancelled' in msg
        )


logging.getLogger('tractor._streaming').addFilter(_ExpectedCancelFilter())


class PeerLost(ServiceError):
    """The actor at the other end of a watched block stopped answering."""

    def __init__(self, peer: str, reason: str) -> None:
        super().__init__(f'lost {peer}: {reason}')
        self.peer = peer
        self.reason = reason


async def ping() -> int:
    """RPC: answer a heartbeat with this actor's pid."""
    return os.getpid()


class PeerWatch:
    """State of one watch: `lost` turns True when the peer went away."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.lost = False
        self.reason = ''


def _peer_name(chan: tractor.Channel) -> str:
    uid = getattr(chan, 'uid', None)
    return uid[0] if uid else str(getattr(chan, 'raddr', 'peer'))


@acm
async def watch_peer(
    ctx: tractor.Context,
    *,
    poll: float = 0.05,
    cancel_endpoint: bool = True,
) -> AsyncIterator[PeerWatch]:
    """Daemon side: cancel the block when the context's client disconnects.

    Use inside a `@tractor.context` endpoint, around `ctx.open_stream()` (so
    the stream's teardown on a dead connection is covered too). On a lost
    client the block is cancelled and the `with` exits normally with
    `watch.lost == True`. With `cancel_endpoint` (default) the endpoint's
    own scope is then cancelled too, since no one is left to take its
    result: code after the block runs only up to its first checkpoint, so
    keep clean-up synchronous (or shielded)::

        @tractor.context
        async def serve(ctx):
            await ctx.started()
            async with watch_peer(ctx) as watch:
                async with ctx.open_stream() as stream:
                    async for msg in stream:
                        ...
            if watch.lost:
                ...  # drop the client's subscriptions
    """
    chan = ctx.chan
    watch = PeerWatch(_peer_name(chan))
    with trio.CancelScope() as body_cs:
        async with trio.open_nursery() as n:

            async def _poll() -> None:
                while chan.connected():
                    await trio.sleep(poll)
                watch.lost = True
                watch.reason = 'connection closed'
                body_cs.cancel()

            n.start_soon(_poll)
            try:
                yield watch
            except (trio.ClosedResourceError, trio.BrokenResourceError) as err:
                # a send/close on the dead connection raced the poller
                if chan.connected():
                    raise
                watch.lost = True
                watch.reason = f'connection broken ({type(err).__name__})'
            finally:
                n.cancel_scope.cancel()
    if watch.lost:
        log.info(f'client {watch.peer} went away: stopped serving it')
        if cancel_endpoint:
            end_endpoint_cancelled(ctx)


_TRANSPORT_ERRORS = (trio.ClosedResourceError, trio.BrokenResourceError, OSError)


def _is_transport_error(err: BaseException) -> bool:
    if isinstance(err, _TRANSPORT_ERRORS):
        return True
    subs = getattr(err, 'exceptions', None)
    return bool(subs) and all(_is_transport_error(e) for e in subs)


async def _ping_forever(
    portal: tractor.Portal,
    watch: PeerWatch,
    on_lost: Callable[[], Any],
    interval: float,
    timeout: float,
) -> None:
    chan = portal.channel
    strikes = 0
    while True:
        try:
            if not chan.connected():
                raise trio.ClosedResourceError('channel closed')
            with trio.fail_after(timeout):
                await portal.run(ping)
            strikes = 0
        except tractor.ModuleNotExposed as err:  # pragma: no cover
            raise ServiceError(
                f'{watch.peer} does not expose piker.service._heartbeat; '
                'spawn it with maybe_spawn_daemon()'
            ) from err
        except trio.TooSlowError:
            quiet = last_heard(chan)
            if quiet < timeout:
                # the reply waits behind the peer's own traffic (or our
                # backlog of it): a peer that talks is alive
                continue
            # a peer that said nothing through two whole timeouts is wedged
            # (one may be our own loop starved of CPU)
            strikes += 1
            if strikes < STRIKES:
                continue
            watch.reason = (f'no heartbeat reply within {timeout:.2f}s, and nothing '
                            f'heard for {min(quiet, 999):.1f}s')
            break
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.EndOfChannel) as err:
            watch.reason = f'connection broken ({type(err).__name__})'
            break
        except tractor.RemoteActorError as err:
            if err.type is tractor.ModuleNotExposed:  # pragma: no cover
                raise ServiceError(
                    f'{watch.peer} does not expose piker.service._heartbeat'
                ) from err
            watch.reason = f'heartbeat failed: {err}'
            break
        await trio.sleep(interval)
    watch.lost = True
    on_lost()


@acm
async def watchdog(
    portal: tractor.Portal,
    *,
    interval: float = PING_INTERVAL,
    timeout: float = PING_TIMEOUT,
) -> AsyncIterator[PeerWatch]:
    """Client side: run the block while `portal`'s actor answers pings.

    If a ping fails or times out the block is cancelled and `PeerLost` is
    raised from the `async with`; a transport error (broken/closed
    connection) escaping the block becomes `PeerLost` too. Open contexts to
    that peer **inside** the block so they are torn down from outside
    (rule 3). Pings share the connection with every context to that peer:
    read busy streams through `open_drained_stream()` or a stalled message
    loop will look like a dead peer.
    """
    watch = PeerWatch(_peer_name(portal.channel))
    async with trio.open_nursery() as n:
        with trio.CancelScope() as body_cs:
            n.start_soon(
                _ping_forever, portal, watch, body_cs.cancel, interval, timeout,
            )
            try:
                yield watch
            except Exception as err:
                # a transport error to the peer, or any teardown error of a
                # context to a peer known to be gone (e.g. its last
                # "cancelled" message), means one thing: the peer is lost
                if not watch.lost and _is_transport_error(err):
                    watch.lost = True
                    watch.reason = f'connection broken ({type(err).__name__})'
                if watch.lost:
                    raise PeerLost(watch.peer, watch.reason) from err
                raise
            finally:
                n.cancel_scope.cancel()
    if watch.lost:
        raise PeerLost(watch.peer, watch.reason)


@acm
async def open_watched_context(
    portal: tractor.Portal,
    func: Callable[..., Any],
    *,
    interval: float = PING_INTERVAL,
    timeout: float = PING_TIMEOUT,
    cancel_on_exit: bool = True,
    **kwargs: Any,
) -> AsyncIterator[tuple[tractor.Context, Any]]:
    """`portal.open_context(func, **kwargs)` guarded by a `watchdog`.

    Yields `(ctx, first)` like `open_context`. Raises `PeerLost` if the
    daemon dies (SIGKILL included) instead of hanging. On a normal exit the
    remote task is cancelled first when `cancel_on_exit` (rule 4: leaving
    while the callee still streams would hang).
    """
    finished = False
    try:
        async with watchdog(portal, interval=interval, timeout=timeout):
            async with portal.open_context(func, **kwargs) as (ctx, first):
                yield ctx, first
                finished = True
                if cancel_on_exit:
                    await ctx.cancel()
    except PeerLost as err:
        # the caller's block ended normally: losing the peer while saying
        # goodbye (cancel, then wait for the remote task's result) loses
        # nothing the caller was waiting for, so it is not the caller's error
        # (seen across hosts: the link broke during a finished session's close)
        if not finished:
            raise
        log.info('%s lost while closing a finished context: %s', err.peer, err.reason)
