"""Bounded drain buffers: a slow consumer never stalls its connection.

All contexts to one peer share one connection and one message loop
(TRACTOR.md rule 9). With `backpressure=True` a consumer that does not keep
up blocks that loop and stalls every other context to the same peer; with
`backpressure=False` it dies with `StreamOverrun`. So a consumer never reads
its tractor stream directly: `open_drained_stream()` runs a dedicated task
that always keeps the stream empty, moving messages into a bounded buffer
whose overflow behaviour is chosen explicitly:

- `drop_oldest`: keep the newest `maxlen` messages (history-free ticks).
- `conflate`: one pending message per `key(msg)` (e.g. per fqme); a newer one
  replaces (or, with `merge`, is merged into) the pending one in place, so
  the consumer always sees the latest state. A new key in a full buffer
  drops the oldest key.
- `never_drop`: order messages. Nothing is dropped; when `maxlen` messages
  are pending the drain task waits (backpressure onto the peer) and logs a
  warning once, so size it for bursts.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager as acm
from typing import Any, Literal

import trio

from ..log import get_logger

log = get_logger('service')

Policy = Literal['drop_oldest', 'conflate', 'never_drop']
POLICIES: tuple[str, ...] = ('drop_oldest', 'conflate', 'never_drop')


class DrainBuffer:
    """The consumer side of a drained stream: an async iterator of messages.

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
        self._merge = merge
        self._q: deque[Any] | OrderedDict[Hashable, Any] = (
            OrderedDict() if policy == 'conflate' else deque()
        )
        self._readers = trio.lowlevel.ParkingLot()
        self._writers = trio.lowlevel.ParkingLot()
        self._closed = False
        self._warned = False
        self.dropped = 0
        self.conflated = 0
        self.received = 0

    def __len__(self) -> int:
        return len(self._q)

    async def put(self, msg: Any) -> None:
        """Add one message, applying the overflow policy (drain task only)."""
        self.received += 1
        q = self._q
        if self.policy == 'never_drop':
            while len(q) >= self.maxlen:
                if not self._warned:
                    self._warned = True
                    log.warning(
                        f'drain buffer full ({self.maxlen} pending): applying '
                        'backpressure; the consumer is too slow'
                    )
                await self._writers.park()
            q.append(msg)  # type: ignore[union-attr]
        elif self.policy == 'drop_oldest':
            if len(q) >= self.maxlen:
                q.popleft()  # type: ignore[union-attr]
                self.dropped += 1
            q.append(msg)  # type: ignore[union-attr]
        else:
            assert isinstance(q, OrderedDict) and self._key is not None
            k = self._key(msg)
            if k in q:
                q[k] = self._merge(q[k], msg) if self._merge else msg
                self.conflated += 1
            else:
                if len(q) >= self.maxlen:
                    q.popitem(last=False)
                    self.dropped += 1
                q[k] = msg
        self._readers.unpark_all()

    def close(self) -> None:
        """No more messages will come: readers get the rest, then the end."""
        self._closed = True
        self._readers.unpark_all()

    def _pop(self) -> Any:
        q = self._q
        msg = q.popitem(last=False)[1] if isinstance(q, OrderedDict) else q.popleft()
        self._writers.unpark_all()
        return msg

    async def receive(self) -> Any:
        """Return the next message; `trio.EndOfChannel` after the stream ended."""
        await trio.lowlevel.checkpoint()
        while not self._q:
            if self._closed:
                raise trio.EndOfChannel
            await self._readers.park()
        return self._pop()

    async def receive_batch(self) -> list[Any]:
        """Wait for at least one message and return every pending one."""
        first = await self.receive()
        batch = [first]
        while self._q:
            batch.append(self._pop())
        return batch

    def __aiter__(self) -> DrainBuffer:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


@acm
async def open_drained_stream(
    stream: Any,
    *,
    policy: Policy,
    maxlen: int = 1024,
    key: Callable[[Any], Hashable] | None = None,
    merge: Callable[[Any, Any], Any] | None = None,
) -> AsyncIterator[DrainBuffer]:
    """Drain `stream` (a tractor `MsgStream` or any async iterable) in a task.

    Yields a `DrainBuffer` to read from instead of the stream. The drain task
    ends when the stream ends (the buffer then reports end-of-stream after
    its pending messages) and is cancelled when the block exits; an error
    from the stream propagates into the block.
    """
    buf = DrainBuffer(maxlen, policy, key=key, merge=merge)

    async def _drain() -> None:
        try:
            async for msg in stream:
                await buf.put(msg)
        finally:
            buf.close()

    async with trio.open_nursery() as n:
        n.start_soon(_drain)
        try:
            yield buf
        finally:
            n.cancel_scope.cancel()
