"""Bounded, never-stalling buffers between a producer and a slow consumer.

Why one module, on a low floor: brokerd's subscriber sessions, the feed
client (`piker.data`) and every drained tractor stream (`piker.service`)
all need the same thing, a buffer whose overflow policy is chosen
explicitly so a slow consumer never stalls its producer or its siblings
(TRACTOR.md rule 9). It imports nothing of piker's but the logger, so
`brokers`, `data` and `service` all sit on top of it.

- `Conflator`: the one conflation implementation. At most one pending
  message per key; a newer one replaces (or is folded into) the pending
  one, keeping its place in line. Optionally bounded in keys (`maxlen`):
  a new key in a full buffer evicts the oldest key.
- `QuoteBuffer`: a `Conflator` keyed by fqme that folds quotes the quote
  way (below) and hands out `{fqme: quote}` batches.
- `DrainBuffer`: the consumer side of `service.open_drained_stream()`,
  with the policies `drop_oldest`, `conflate` (a `Conflator`) and
  `never_drop`.

Quote conflation: the buffer holds at most one pending quote per fqme, so
its size is bounded by the number of subscribed markets, never by how far
behind the consumer is.

- A new quote for an fqme that is already pending replaces it: the
  consumer sees the *latest* L1 fields (`last`, `bid`, `ask`, sizes,
  `volume`, `time_ns`).
- Its `ticks` are *merged*: the pending quote's ticks followed by the new
  ones, so trades and book updates are not lost and stay in order.
- The merged tick list of one fqme is capped at `max_ticks` (default
  1000); beyond that the *oldest* ticks are dropped and counted in
  `dropped_ticks`.

Quotes are shared, read-only objects (one quote dict is fanned out to many
buffers): the buffer never mutates a quote it was given; a merge builds a
new dict when the batch is drained.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Literal

import trio

from .log import get_logger

log = get_logger('service')

Quote = dict[str, Any]
Batch = dict[str, Quote]

DEFAULT_MAX_TICKS = 1000

Policy = Literal['drop_oldest', 'conflate', 'never_drop']
POLICIES: tuple[str, ...] = ('drop_oldest', 'conflate', 'never_drop')

def with_queued(first: Any, recv: trio.MemoryReceiveChannel, most: int) -> list[Any]:
    """`first` and what else `recv` holds right now, `most` at the most:
    what a sender ships as one frame instead of one each."""
    batch = [first]
    while len(batch) < most:
        try:
            batch.append(recv.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            # nothing more now, or the senders closed while `first` was
            # taken: ship what there is (the sender's loop then ends)
            break
    return batch


class BufferClosed(Exception):
    """Raised by `QuoteBuffer.receive()` once the buffer is closed and empty."""


class Conflator:
    """At most one pending message per key (see module docstring).

    `put()` is synchronous and never blocks. `conflated` counts messages
    folded into a pending one, `dropped` keys evicted by `maxlen`. Waiting
    consumers park on `wait()`; `close()` wakes them for good.
    """

    __slots__ = (
        '_pending', '_lot', '_closed', 'maxlen', 'merge', 'conflated', 'dropped',
    )

    def __init__(
        self,
        maxlen: int | None = None,
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        # key -> pending message, oldest key first (dicts keep insertion
        # order and a replaced value keeps its key's place)
        self._pending: dict[Hashable, Any] = {}
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self.maxlen = maxlen
        self.merge = merge
        self.conflated = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, key: Hashable, msg: Any) -> None:
        """Queue `msg` under `key`, folding it into a pending one."""
        if self._closed:
            return
        pending = self._pending
        if key in pending:
            self.conflated += 1
            pending[key] = self._fold(key, pending[key], msg)
            return
        if self.maxlen is not None and len(pending) >= self.maxlen:
            del pending[next(iter(pending))]
            self.dropped += 1
        pending[key] = msg
        if self._lot:
            self._lot.unpark_all()

    def _fold(self, key: Hashable, prev: Any, msg: Any) -> Any:
        """The message that replaces `prev` (subclasses fold their own way)."""
        return self.merge(prev, msg) if self.merge is not None else msg

    def pop_oldest(self) -> Any:
        """Remove and return the oldest pending message (one must be)."""
        pending = self._pending
        return pending.pop(next(iter(pending)))

    async def wait(self, timeout: float = math.inf) -> bool:
        """Park until something is pending or the buffer closes, at most
        `timeout` seconds; return whether something is pending."""
        if timeout == math.inf:  # the common case: no cancel scope
            await self._park()
        else:
            with trio.move_on_after(timeout):
                await self._park()
        return bool(self._pending)

    async def _park(self) -> None:
        while not self._pending and not self._closed:
            await self._lot.park()

    def close(self) -> None:
        """Stop accepting messages and wake every waiting consumer."""
        self._closed = True
        self._lot.unpark_all()


class QuoteBuffer(Conflator):
    """Per-consumer conflating quote buffer (see module docstring).

    `put()`/`put_batch()` are synchronous and never block; `receive()`
    waits until at least one quote is pending and returns all of them.
    `close(error)` wakes the consumer: pending quotes are still delivered,
    then `receive()` raises `error` (or `BufferClosed`).
    """

    __slots__ = ('_extra', '_error', 'max_ticks', 'fqmes', 'dropped_ticks', 'delivered')

    def __init__(
        self,
        fqmes: set[str] | None = None,
        max_ticks: int = DEFAULT_MAX_TICKS,
    ) -> None:
        super().__init__()
        # fqme -> merged tick list, only for conflated fqmes (built lazily:
        # the pending quote stays the shared object until the drain)
        self._extra: dict[str, list[dict]] = {}
        self._error: BaseException | None = None
        self.max_ticks = max_ticks
        # the fqmes this consumer wants (`put_batch()` filters on it);
        # None means every fqme
        self.fqmes = fqmes
        # stats: ticks dropped, batches out (`conflated`: quotes merged)
        self.dropped_ticks = 0
        self.delivered = 0

    def _fold(self, key: Hashable, prev: Any, msg: Any) -> Any:
        # latest L1 fields win, ticks accumulate
        ticks = self._extra.get(key)  # type: ignore[call-overload]
        if ticks is None:
            ticks = self._extra[key] = list(prev.get('ticks') or ())  # type: ignore[index]
        ticks.extend(msg.get('ticks') or ())
        over = len(ticks) - self.max_ticks
        if over > 0:
            del ticks[:over]
            self.dropped_ticks += over
        return msg

    def put_batch(self, batch: Batch) -> None:
        """Queue every quote of `batch` this consumer subscribed to."""
        if self._closed:
            return
        wanted = self.fqmes
        if not self._pending and not self._extra and (
            wanted is None or wanted.issuperset(batch)
        ):
            # fast path: nothing pending, take the batch as is (copied: the
            # batch object is shared with other consumers)
            if batch:
                self._pending = dict(batch)
                if self._lot:
                    self._lot.unpark_all()
            return
        for fqme, quote in batch.items():
            if wanted is None or fqme in wanted:
                self.put(fqme, quote)

    def drain(self) -> Batch:
        """Return (and clear) everything pending; `{}` if nothing is."""
        out = self._pending
        if not out:
            return out  # type: ignore[return-value]
        self._pending = {}
        if self._extra:
            for fqme, ticks in self._extra.items():
                out[fqme] = {**out[fqme], 'ticks': ticks}
            self._extra = {}
        self.delivered += 1
        return out  # type: ignore[return-value]

    async def receive(self, timeout: float = math.inf) -> Batch:
        """Wait for at least one pending quote and return the whole batch.

        Returns `{}` if `timeout` seconds pass with nothing pending. Raises
        the close error (or `BufferClosed`) once closed and drained.
        """
        if not self._pending:
            if self._closed:
                raise self._closed_error()
            if not await self.wait(timeout):
                if self._closed:
                    raise self._closed_error()
                return {}
        else:
            await trio.lowlevel.checkpoint()
        return self.drain()

    def close(self, error: BaseException | None = None) -> None:
        """Stop accepting quotes; wake the consumer (see class docstring)."""
        if self._closed:
            return
        self._error = error
        super().close()

    def _closed_error(self) -> BaseException:
        return self._error if self._error is not None else BufferClosed(
            'quote buffer closed'
        )

    def __aiter__(self) -> QuoteBuffer:
        return self

    async def __anext__(self) -> Batch:
        try:
            return await self.receive()
        except BufferClosed:
            raise StopAsyncIteration from None


class DrainBuffer:
    """The consumer side of a drained stream: an async iterator of messages.

    Overflow policies:

    - `drop_oldest`: keep the newest `maxlen` messages (history-free ticks).
    - `conflate`: a `Conflator` on `key(msg)` (e.g. per fqme) holding at
      most `maxlen` keys; with `merge` a newer message is merged into the
      pending one, so the consumer always sees the latest state.
    - `never_drop`: order messages. Nothing is dropped; when `maxlen`
      messages are pending `put()` waits (backpressure onto the peer) and
      logs a warning once, so size it for bursts.

    `dropped` counts messages discarded by `drop_oldest` (or evicted keys
    under `conflate`); `conflated` counts messages folded into a pending one.
    """

    def __init__(
        self,
        maxlen: int,
        policy: Policy,
        key: Callable[[Any], Hashable] | None = None,
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f'unknown overflow policy {policy!r}: use one of {POLICIES}')
        if maxlen < 1:
            raise ValueError(f'maxlen must be >= 1, got {maxlen}')
        if policy == 'conflate' and key is None:
            raise ValueError("policy 'conflate' needs a key function")
        self.maxlen = maxlen
        self.policy = policy
        self._key = key
        self._conf: Conflator | None = (
            Conflator(maxlen, merge) if policy == 'conflate' else None
        )
        self._q: deque[Any] = deque()
        self._readers = trio.lowlevel.ParkingLot()
        self._writers = trio.lowlevel.ParkingLot()
        self._closed = False
        self._warned = False
        self._dropped = 0
        self.received = 0

    @property
    def dropped(self) -> int:
        return self._conf.dropped if self._conf is not None else self._dropped

    @property
    def conflated(self) -> int:
        return self._conf.conflated if self._conf is not None else 0

    def __len__(self) -> int:
        return len(self._conf) if self._conf is not None else len(self._q)

    async def put(self, msg: Any) -> None:
        """Add one message, applying the overflow policy (drain task only)."""
        self.received += 1
        q = self._q
        if self._conf is not None:
            assert self._key is not None
            self._conf.put(self._key(msg), msg)
        elif self.policy == 'never_drop':
            while len(q) >= self.maxlen:
                if not self._warned:
                    self._warned = True
                    log.warning(
                        f'drain buffer full ({self.maxlen} pending): applying '
                        'backpressure; the consumer is too slow'
                    )
                await self._writers.park()
            q.append(msg)
        else:
            if len(q) >= self.maxlen:
                q.popleft()
                self._dropped += 1
            q.append(msg)
        self._readers.unpark_all()

    def close(self) -> None:
        """No more messages will come: readers get the rest, then the end."""
        self._closed = True
        self._readers.unpark_all()

    def _pop(self) -> Any:
        msg = self._conf.pop_oldest() if self._conf is not None else self._q.popleft()
        self._writers.unpark_all()
        return msg

    async def receive(self) -> Any:
        """Return the next message; `trio.EndOfChannel` after the stream ended."""
        await trio.lowlevel.checkpoint()
        while not len(self):
            if self._closed:
                raise trio.EndOfChannel
            await self._readers.park()
        return self._pop()

    async def receive_batch(self) -> list[Any]:
        """Wait for at least one message and return every pending one."""
        first = await self.receive()
        batch = [first]
        while len(self):
            batch.append(self._pop())
        return batch

    def __aiter__(self) -> DrainBuffer:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None
