"""emsd's timers: gtd orders expire on time, restarts included.

A dialog with `tif='gtd'` emits an `Expire(oid, at_ns)` effect when it is
placed, modified or restored; `Effects` hands it here. One task sleeps
until the earliest timer and then asks the dialog table (`on_expire`),
which decides on its own injected clock: a dark order leaves the book, a
live one is cancelled at its venue, and the dialog ends `expired` (with
whatever the venue filled before). A timer whose expiry passed while emsd
was down rings at once on restart. A modify that moved the expiry leaves
the old timer to ring harmlessly (the table ignores a stale one).

`Timers` is the pure part (a heap, tested with any clock); `Expiries`
runs it with trio.
"""
from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from ..log import get_logger
from ._dialogs import DialogTable, Expire
from ._effects import Effects

__all__ = ['Expiries', 'Timers', 'open_expiries']

log = get_logger(__name__)


class Timers:
    """Pending expiries, earliest first; each (oid, at_ns) held once."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._held: set[tuple[int, str]] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, eff: Expire) -> bool:
        """Hold `eff`; True if it is now the earliest."""
        item = (eff.at_ns, eff.oid)
        if item in self._held:
            return False
        self._held.add(item)
        heapq.heappush(self._heap, item)
        return self._heap[0] == item

    def next_at(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now_ns: int) -> list[Expire]:
        """Pop every timer at or before `now_ns`, earliest first."""
        out: list[Expire] = []
        while self._heap and self._heap[0][0] <= now_ns:
            item = heapq.heappop(self._heap)
            self._held.discard(item)
            out.append(Expire(oid=item[1], at_ns=item[0]))
        return out


class Expiries:
    """Rings `Timers` on `clock` (epoch ns) and applies what the table says."""

    def __init__(
        self, dialogs: DialogTable, fx: Effects, clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.dialogs = dialogs
        self.fx = fx
        self.clock = clock
        self.timers = Timers()
        self._wake = trio.Event()

    def schedule(self, eff: Expire) -> None:
        if self.timers.add(eff):
            self._wake.set()

    async def run(self) -> None:
        while True:
            at = self.timers.next_at()
            if at is None:
                await self._wake.wait()
            else:
                with trio.move_on_after(max(at - self.clock(), 0) / 1e9):
                    await self._wake.wait()
            self._wake = trio.Event()
            for eff in self.timers.due(self.clock()):
                try:
                    await self.fx.execute(self.dialogs.on_expire(eff.oid, eff.at_ns))
                except Exception:
                    log.exception('expiry of %s failed', eff.oid)


@asynccontextmanager
async def open_expiries(dialogs: DialogTable, fx: Effects) -> AsyncIterator[Expiries]:
    """emsd's gtd timers, for its lifetime."""
    async with trio.open_nursery() as n:
        exp = Expiries(dialogs, fx)
        n.start_soon(exp.run)
        yield exp
        n.cancel_scope.cancel()
