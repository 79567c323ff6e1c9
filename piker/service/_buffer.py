"""Bounded drain buffers: a slow consumer never stalls its connection.

All contexts to one peer share one connection and one message loop
(TRACTOR.md rule 9). With `backpressure=True` a consumer that does not keep
up blocks that loop and stalls every other context to the same peer; with
`backpressure=False` it dies with `StreamOverrun`. So a consumer never reads
its tractor stream directly: `open_drained_stream()` runs a dedicated task
that always keeps the stream empty, moving messages into a bounded buffer
whose overflow behaviour is chosen explicitly (`drop_oldest`, `conflate`,
`never_drop`: see `piker.buffers.DrainBuffer`, which lives below `service`
so the quote buffers and these share one conflation implementation).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager as acm
from typing import Any

import trio

from ..buffers import DrainBuffer, Policy

__all__ = ['DrainBuffer', 'Policy', 'open_drained_stream']


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
