"""Shared bits of the EMS end-to-end tests (tests/test_ems_*.py)."""
from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from piker.clearing import TERMINAL_RESPS, Status
from piker.testing import EMSSession, PaperSim

FQME = 'btcusdt.sim'  # price tick 0.1, size tick 0.00001
TICK = 0.1
# the market every test starts from: a 1.0 wide book with room to trade
BASE = dict(bid=99.0, ask=100.0, last=99.5, bsize=5.0, asize=5.0)


async def start(sim: PaperSim, fqme: str = FQME, **quote: float) -> EMSSession:
    """Push the base quote (before any daemon subscribes), open a session."""
    await sim.push(fqme, **(quote or BASE))
    return await sim.open_ems(fqme)


def check_dialog(sess: EMSSession, oid: str) -> list[Status]:
    """Invariants of one dialog as a client saw it; returns its statuses.

    Every status keeps `filled + remaining == size`, fills add up to the
    final `filled`, and exactly one terminal status ends the dialog (only
    a late fill may follow it).
    """
    sts = sess.statuses(oid)
    assert sts, f'no status for {oid}'
    for st in sts:
        if st.req is not None:
            assert math.isclose(st.filled + st.remaining, st.req.size, abs_tol=1e-9), st
    terminal = [i for i, st in enumerate(sts) if st.resp in TERMINAL_RESPS]
    assert len(terminal) == 1, [s.resp for s in sts]
    assert all(st.resp == 'fill' for st in sts[terminal[0] + 1:]), [s.resp for s in sts]
    fills = sum(st.brokerd_msg['size'] for st in sts if st.resp == 'fill')
    assert math.isclose(fills, sts[-1].filled, abs_tol=1e-9), (fills, sts[-1])
    return sts


def fill_prices(sess: EMSSession, oid: str) -> list[float]:
    return [st.brokerd_msg['price'] for st in sess.statuses(oid) if st.resp == 'fill']


class RawDialogue:
    """A second trades dialogue with paperboi, recording what it gets
    (plain dicts: what is on the wire)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.msgs: list[dict] = []
        self.frames: list[Any] = []  # as received: messages emitted together are a list
        self.changed = trio.Event()

    async def record(self) -> None:
        async for frame in self.stream:
            self.frames.append(frame)
            self.msgs.extend(frame if isinstance(frame, list) else [frame])
            self.changed.set()
            self.changed = trio.Event()

    async def until(self, cond: Callable[[], bool], timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not cond():
                await self.changed.wait()

    async def reply(self, pred: Callable[[dict], bool], since: int = 0,
                    timeout: float = 10.0) -> dict:
        """The first message from `since` on that satisfies `pred`."""
        found: list[dict] = []

        def seen() -> bool:
            found[:] = [m for m in self.msgs[since:] if pred(m)][:1]
            return bool(found)

        await self.until(seen, timeout)
        return found[0]


@asynccontextmanager
async def raw_venue_dialogue(broker: str = 'sim') -> AsyncIterator[RawDialogue]:
    """Open a trades dialogue of our own with `paperboi.<broker>` (beside
    emsd's), speaking the backend protocol directly."""
    from piker.clearing._daemons import PAPERBOI
    from piker.clearing._paper_engine import open_trade_dialog
    from piker.service import open_daemon, open_watched_context
    async with (
        open_daemon(PAPERBOI.spec(broker)) as portal,
        open_watched_context(portal, open_trade_dialog, broker=broker, timeout=2.0) as (
            ctx, _,
        ),
        ctx.open_stream() as stream,
        trio.open_nursery() as n,
    ):
        dlg = RawDialogue(stream)
        n.start_soon(dlg.record)
        yield dlg
        n.cancel_scope.cancel()
