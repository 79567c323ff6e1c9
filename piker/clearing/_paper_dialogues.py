"""The paper venue's emsd dialogues: handshake, order report, commands in,
events out.

Normally there is exactly one emsd; a restarted emsd opens a second
dialogue while the dead one's last commands are still being handled, so
the report a new dialogue opens with waits (bounded) for them (`settle`)
and every venue event goes to every open dialogue (`emit`).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import tractor
import trio

from ..accounting import strip_broker
from ..log import get_logger
from ..service import end_endpoint_cancelled, open_drained_stream
from ._messages import (
    BrokerdError,
    BrokerdOrder,
    BrokerdOrdersSynced,
    BrokerdStatus,
    commands_of,
    reply_oid,
)

if TYPE_CHECKING:
    from ._paper_engine import PaperVenue

log = get_logger(__name__)

# commands a dialogue may have queued before its sender feels backpressure
COMMAND_BUFFER = 100_000
# a new dialogue's report waits at most this long for commands in flight
REPORT_SETTLE = 10.0
# messages emitted together leave as one list frame of at most this many
# (emsd's relay unpacks it)
EMIT_BATCH = 256


class Dialogues:
    """The open emsd dialogues of one `PaperVenue`."""

    def __init__(self, venue: PaperVenue) -> None:
        self.venue = venue
        self._subs: list[tractor.MsgStream] = []
        # the command buffers of the open dialogues, and commands being
        # handled: a new dialogue's report waits for them (see report_orders)
        self._inboxes: set[Any] = set()
        self._handling = 0
        # set (and replaced) whenever a command is handled or a dialogue
        # ends: what `settle()` waits for
        self._progress = trio.Event()
        # while emsd's batch frames (several commands) are handled, what
        # the venue sends waits here, in order - (dialogue, or None for all
        # of them; message) - and leaves as one frame per dialogue (`flush`)
        self._collecting = 0
        self._collected: list[tuple[Any, Any]] = []
        self._flushing = trio.Lock()

    def subscribe(self, stream: Any) -> None:
        """Send the venue's events to `stream` too (from now on)."""
        self._subs.append(stream)

    async def settle(self, inbox: Any, timeout: float = REPORT_SETTLE) -> None:
        """Wait (bounded) until every command received on other dialogues
        is handled: an order a dead emsd sent just before it died is still
        placed (a venue handles what it received), and a report made before
        that would tell the new emsd it never arrived."""
        with trio.move_on_after(timeout) as cs:
            while True:
                # taken before the check: a change after it sets this event
                progress = self._progress
                if not (self._handling or any(len(b) for b in self._inboxes if b is not inbox)):
                    break
                await progress.wait()
        if cs.cancelled_caught:
            log.warning('order report made with commands still in flight after %ss', timeout)

    def _progressed(self) -> None:
        """A command was handled or a dialogue ended: wake `settle()`."""
        self._progress.set()
        self._progress = trio.Event()

    async def report_orders(self, stream: tractor.MsgStream) -> None:
        """Open a new dialogue with the venue's order report.

        Recent fills and final statuses (emsd may have missed them), one
        `BrokerdStatus('open', req=...)` per working order, then
        `BrokerdOrdersSynced`. Call after `settle()`, with the venue lock
        held, and add the stream to the subscribers before releasing it: no
        event can fall between the report and the live stream.
        """
        now = time.time_ns()
        # positions first: a fill since the handshake's may have moved them
        msgs: list[Any] = [*self.venue.positions(), *self.venue.store.replay()]
        working = self.venue.working()
        for o in working:
            msgs.append(BrokerdStatus(
                reqid=o.reqid, oid=o.oid, status='open', account=o.account,
                time_ns=now, filled=o.filled, remaining=o.remaining,
                req=BrokerdOrder(
                    oid=o.oid, reqid=o.reqid, symbol=strip_broker(o.fqme),
                    action=o.action, price=o.price, size=o.size,
                    account=o.account, time_ns=o.time_ns,
                ),
            ))
        msgs.append(BrokerdOrdersSynced(reqids=[o.reqid for o in working], time_ns=now))
        with trio.CancelScope(shield=True):
            for msg in msgs:
                await stream.send(msg)

    # -- one emsd dialogue ---------------------------------------------------

    async def serve(self, ctx: tractor.Context) -> None:
        """Run one trades dialogue (DESIGN.md section 5) on `ctx`.

        The handshake (positions, accounts), then the order report, then
        every command handled in arrival order until emsd ends the
        dialogue or vanishes; the venue's events meanwhile go to it too.
        """
        await ctx.started((
            [p.to_builtins() for p in self.venue.positions()],
            self.venue.accounts,
        ))
        async with (
            ctx.open_stream() as stream,
            # a dedicated task keeps the stream empty (TRACTOR.md rule 9):
            # while a fill is being persisted, order entry waits, and a
            # stream left full would block the whole connection - emsd's
            # heartbeats to us included, so emsd would declare us lost
            open_drained_stream(stream, policy='never_drop', maxlen=COMMAND_BUFFER) as commands,
        ):
            await self.settle(commands)
            async with self.venue.lock:
                # nothing happens at the venue between its report and the
                # live events: both hold the lock
                await self.report_orders(stream)
                self.subscribe(stream)
            self._inboxes.add(commands)
            try:
                async with trio.open_nursery() as n:
                    n.start_soon(_close_when_gone, ctx, commands)
                    async for raw in commands:
                        await self._serve_one(raw, stream)
                    n.cancel_scope.cancel()
                if not ctx.chan.connected():
                    # emsd is gone: closing the stream or returning would
                    # fail on the dead connection; end as cancelled (see
                    # `watch_peer`)
                    end_endpoint_cancelled(ctx)
            finally:
                self._inboxes.discard(commands)
                if stream in self._subs:
                    self._subs.remove(stream)
                self._progressed()

    async def _serve_one(self, frame: Any, origin: tractor.MsgStream) -> None:
        """One frame from emsd: a command, or a batch frame of them,
        whose events then leave together at its end."""
        raws = commands_of(frame)
        if len(raws) == 1:
            await self._handle(raws[0], origin)
            return
        self._collecting += 1
        try:
            for raw in raws:
                await self._handle(raw, origin)
        finally:
            await self._flush()
            self._collecting -= 1

    async def _handle(self, raw: Any, origin: tractor.MsgStream) -> None:
        self._handling += 1
        try:
            await self.venue.handle(raw, origin=origin)
        except Exception:
            # a bug, not a bad message: answer it, keep serving
            log.exception('failed to handle command %r', raw)
            await self.reply(origin, BrokerdError(
                oid=reply_oid(raw), reason='internal error handling this command',
            ))
        finally:
            self._handling -= 1
            self._progressed()

    async def flush(self) -> None:
        """Send what a batch collected so far (before a wait for the disk:
        a fill's ledger write holds no other order's ack back)."""
        if self._collecting:
            await self._flush()

    async def _flush(self) -> None:
        # still collecting meanwhile: a message emitted during the sends
        # queues behind the ones being sent, never overtakes them
        with trio.CancelScope(shield=True):
            async with self._flushing:
                while self._collected:
                    batch, self._collected = self._collected, []
                    for stream in list(self._subs):
                        await self._send(stream, [m for to, m in batch
                                                  if to is None or to is stream])

    async def emit(self, *msgs: Any) -> None:
        """Send `msgs` to every emsd dialogue, in order.

        Shielded: a send cut half-way (the dialogue task being cancelled)
        would corrupt the connection's framing, and a fill persisted on
        disk must not go unreported because the reporting task was
        cancelled between two messages.
        """
        if self._collecting:  # (a batch's: sent at its end)
            self._collected += [(None, msg) for msg in msgs]
            return
        with trio.CancelScope(shield=True):
            await self._emit(msgs)

    async def _emit(self, msgs: tuple[Any, ...]) -> None:
        for stream in list(self._subs):
            await self._send(stream, list(msgs))

    async def _send(self, stream: tractor.MsgStream, msgs: list[Any]) -> None:
        # several messages leave as one list frame (`EMIT_BATCH` at most):
        # one encode, one socket write and one wake-up of emsd for an
        # order's ack and open, or a fill with its status and position
        try:
            for i in range(0, len(msgs), EMIT_BATCH):
                frame = msgs[i:i + EMIT_BATCH]
                await stream.send(frame if len(frame) > 1 else frame[0])
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning('emsd dialogue went away; dropping it')
            if stream in self._subs:
                self._subs.remove(stream)

    async def reply(self, origin: tractor.MsgStream | None, msg: Any) -> None:
        """Send `msg` to the dialogue `origin` only (to all if None)."""
        if origin is None:
            await self.emit(msg)
            return
        if self._collecting:
            self._collected.append((origin, msg))
            return
        with trio.CancelScope(shield=True):
            try:
                await origin.send(msg)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log.warning('dialogue went away before its reply: %r', msg)


async def _close_when_gone(ctx: tractor.Context, commands: Any, poll: float = 0.05) -> None:
    """End a dialogue whose emsd vanished (SIGKILL included: TRACTOR.md
    rule 2) once the commands it sent are handled: a venue handles what
    it received; then its task and subscription go."""
    while ctx.chan.connected():
        await trio.sleep(poll)
    log.warning('emsd dialogue lost: handling its last %d command(s), then closing it',
                len(commands))
    commands.close()


