"""Reconnect with capped exponential backoff, for long-lived connections.

A venue's websocket (market data, user data) must come back by itself
after a disconnect: the venue closing it (Binance drops every connection
after 24 h), a missed pong, a read timeout, a network error. `reconnecting`
runs one connection attempt after another and sleeps between failures,
doubling the delay up to a cap, and resets it once a connection has stayed
up for a while, so a flapping link backs off but a healthy one that drops
once reconnects at once.
"""
from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import trio

from ..log import get_logger

log = get_logger(__name__)


class Backoff:
    """Delays for successive reconnects: `first * 2**n`, capped, jittered."""

    def __init__(
        self,
        first: float = 0.1,
        cap: float = 10.0,
        healthy_after: float = 10.0,
        jitter: float = 0.1,
    ) -> None:
        self.first = first
        self.cap = cap
        self.healthy_after = healthy_after
        self.jitter = jitter
        self.delay = first
        self.attempts = 0

    def next_delay(self, up_for: float) -> float:
        """The delay before the next attempt, given how long the last one
        stayed connected (a long-lived one resets the backoff)."""
        if up_for >= self.healthy_after:
            self.delay = self.first
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        self.attempts += 1
        return delay * (1 + random.uniform(0, self.jitter))


async def reconnecting(
    connect: Callable[[], Awaitable[None]],
    what: str,
    *,
    backoff: Backoff | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    on_down: Callable[[BaseException | None], None] | None = None,
) -> None:
    """Run `await connect()` forever, reconnecting after it ends or fails.

    `connect()` returning counts as a disconnect (the peer closed). An
    exception outside `retry_on` propagates (a permanent failure, e.g.
    a ban or a bad key). `on_down(err)` is called on each disconnect,
    before the delay.
    """
    backoff = backoff or Backoff()
    while True:
        started = trio.current_time()
        err: BaseException | None = None
        try:
            await connect()
            log.warning('%s: disconnected; reconnecting', what)
        except retry_on as exc:
            err = exc
            log.warning('%s: connection failed (%s: %s); reconnecting',
                        what, type(exc).__name__, exc)
        if on_down is not None:
            on_down(err)
        await trio.sleep(backoff.next_delay(trio.current_time() - started))


__all__ = ['Backoff', 'reconnecting']
