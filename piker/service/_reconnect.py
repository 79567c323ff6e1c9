"""`Backoff`: the retry delays of a reconnect loop; `leave_if_cancelled`.

Every long-lived client of a daemon (emsd's venue relays and dark-book
feeds, the paper engine's feeds, the chart's EMS session and quote feed)
runs the same loop: connect, use the connection until it breaks, wait,
try again, waiting longer after each failure and starting over once a
connection was good. The waiting lives here so those loops share one
policy, and so a UI can tell the trader when the next attempt is due.

```python
backoff = Backoff()
while True:
    try:
        async with open_thing() as thing:
            backoff.reset()          # connected: the next loss starts over
            await use(thing)
    except ThingLost as err:
        log.warning('lost the thing (%s): retrying in %.1fs', err, backoff.delay)
    await backoff.sleep()
```

`reconnecting(connect, what)` is that loop, for every such client: a
venue's websocket, emsd's venue relays and dark-book feeds, the paper
venue's feeds (those give up if the very first connection fails: their
`on_down` says so).

A failure that is really the tree shutting down must not be retried:
such loops call `leave_if_cancelled()` before logging one.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ..log import get_logger

log = get_logger(__name__)

FIRST = 0.1     # s: the first retry comes quickly (a respawn takes ~0.5 s)
CAP = 5.0       # s: a long outage is retried at least this often


class Backoff:
    """Exponential retry delays: `first`, `first * factor`, ..., capped at `cap`.

    `delay` is the wait before the next attempt; `sleep()` waits it and
    grows it; `reset()` (after a good connection) starts over. `attempts`
    counts the waits since the last reset, for "reconnecting (attempt 3)".
    """

    def __init__(self, first: float = FIRST, cap: float = CAP, factor: float = 2.0) -> None:
        if not (0 < first <= cap):
            raise ValueError(f'backoff needs 0 < first <= cap, got first={first} cap={cap}')
        if factor < 1:
            raise ValueError(f'backoff factor must be >= 1, got {factor}')
        self.first = float(first)
        self.cap = float(cap)
        self.factor = float(factor)
        self.delay = self.first
        self.attempts = 0

    def reset(self) -> None:
        """A connection worked: the next failure is retried after `first` again."""
        self.delay = self.first
        self.attempts = 0

    def step(self) -> float:
        """Count one attempt and grow the delay; returns the delay to wait now."""
        delay = self.delay
        self.attempts += 1
        self.delay = min(self.delay * self.factor, self.cap)
        return delay

    async def sleep(self) -> float:
        """Wait the current delay (then grow it); returns how long it waited."""
        delay = self.step()
        await trio.sleep(delay)
        return delay

    def __repr__(self) -> str:
        return f'Backoff(delay={self.delay:g}, attempts={self.attempts})'


async def reconnecting(
    connect: Callable[[], Awaitable[None]],
    what: str,
    *,
    backoff: Backoff | None = None,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    healthy_after: float = 10.0,
    on_down: Callable[[BaseException | None], bool | None] | None = None,
) -> None:
    """Run `await connect()` forever, reconnecting after it ends or fails.

    The loop above for a connection that heals itself (a venue's
    websocket: Binance drops every connection after 24 h): `connect()`
    returning counts as a disconnect, an exception outside `retry_on`
    propagates (a permanent failure: a ban, a bad key), and a connection
    that stayed up `healthy_after` seconds resets the backoff (`connect()`
    may also reset it, once connected). `on_down(err)` is called on each
    disconnect (err None: it just ended), before the wait; if it returns
    False, this returns instead of reconnecting (a first connection that
    failed, say). A failure that is really this task's cancellation is
    never retried (`leave_if_cancelled`).
    """
    backoff = backoff or Backoff()
    while True:
        started = trio.current_time()
        err: BaseException | None = None
        try:
            await connect()
        except retry_on as exc:
            await leave_if_cancelled()
            err = exc
        except BaseException:
            await leave_if_cancelled()
            raise
        if on_down is not None and on_down(err) is False:
            return
        if trio.current_time() - started >= healthy_after:
            backoff.reset()
        if err is None:
            log.warning('%s: disconnected; reconnecting in %.1fs', what, backoff.delay)
        else:
            log.warning('%s: connection failed (%s: %s); reconnecting in %.1fs',
                        what, type(err).__name__, err, backoff.delay)
        await backoff.sleep()


async def leave_if_cancelled() -> None:
    """Raise `Cancelled` (only) if this task is being cancelled.

    When the tree shuts down, an upstream daemon often goes first and our
    feed/dialogue fails with its ContextCancelled just as our own cancel
    arrives, the two mixed in one exception group: that is a shutdown, not
    a failure to log, retry or (escaping a service task) crash the actor on.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
