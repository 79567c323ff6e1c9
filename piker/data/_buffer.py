"""A bounded, never-blocking quote buffer with a conflating overflow policy.

Why: every consumer of a quote feed (a brokerd subscriber session, a task
in a client process) reads at its own pace, and a slow one must never
stall the producer or its siblings (TRACTOR.md rule 9). So producers
`put()` without ever waiting and consumers `receive()` whatever has
accumulated as one batch `{fqme: quote}`.

Overflow policy (**conflation**): the buffer holds at most one pending
quote per fqme, so its size is bounded by the number of subscribed
markets, never by how far behind the consumer is.

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
from typing import Any

import trio

Quote = dict[str, Any]
Batch = dict[str, Quote]

DEFAULT_MAX_TICKS = 1000


class BufferClosed(Exception):
    """Raised by `QuoteBuffer.receive()` once the buffer is closed and empty."""


class QuoteBuffer:
    """Per-consumer conflating quote buffer (see module docstring).

    `put()`/`put_batch()` are synchronous and never block; `receive()`
    waits until at least one quote is pending and returns all of them.
    `close(error)` wakes the consumer: pending quotes are still delivered,
    then `receive()` raises `error` (or `BufferClosed`).
    """

    __slots__ = (
        '_pending', '_extra', '_lot', '_closed', '_error', 'max_ticks',
        'fqmes', 'conflated', 'dropped_ticks', 'delivered',
    )

    def __init__(
        self,
        fqmes: set[str] | None = None,
        max_ticks: int = DEFAULT_MAX_TICKS,
    ) -> None:
        # fqme -> latest quote not yet handed to the consumer
        self._pending: Batch = {}
        # fqme -> merged tick list, only for conflated fqmes
        self._extra: dict[str, list[dict]] = {}
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self._error: BaseException | None = None
        self.max_ticks = max_ticks
        # the fqmes this consumer wants (`put_batch()` filters on it);
        # None means every fqme
        self.fqmes = fqmes
        # stats: quotes merged into a pending one, ticks dropped, batches out
        self.conflated = 0
        self.dropped_ticks = 0
        self.delivered = 0

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, fqme: str, quote: Quote) -> None:
        """Queue `quote` for `fqme`, conflating with a pending one."""
        if self._closed:
            return
        pending = self._pending
        prev = pending.get(fqme)
        if prev is None:
            pending[fqme] = quote
            if self._lot:
                self._lot.unpark_all()
            return
        # conflate: latest L1 fields win, ticks accumulate
        self.conflated += 1
        ticks = self._extra.get(fqme)
        if ticks is None:
            ticks = self._extra[fqme] = list(prev.get('ticks') or ())
        ticks.extend(quote.get('ticks') or ())
        over = len(ticks) - self.max_ticks
        if over > 0:
            del ticks[:over]
            self.dropped_ticks += over
        pending[fqme] = quote

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
            return out
        self._pending = {}
        if self._extra:
            for fqme, ticks in self._extra.items():
                out[fqme] = {**out[fqme], 'ticks': ticks}
            self._extra = {}
        self.delivered += 1
        return out

    async def receive(self, timeout: float = math.inf) -> Batch:
        """Wait for at least one pending quote and return the whole batch.

        Returns `{}` if `timeout` seconds pass with nothing pending. Raises
        the close error (or `BufferClosed`) once closed and drained.
        """
        if not self._pending:
            if self._closed:
                raise self._closed_error()
            with trio.move_on_after(timeout):
                while not self._pending and not self._closed:
                    await self._lot.park()
            if not self._pending:
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
        self._closed = True
        self._error = error
        self._lot.unpark_all()

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
