"""Venue-neutral pieces of a live `trades_dialogue`.

Every reporting backend writes to emsd from one task, in order, each
message shielded (a send cut half-way would corrupt the connection's
framing) and stops quietly when emsd is gone: what it missed is in the
next dialogue's order report (`sender`). A command that cannot be read
is answered by its oid if it has one (`_messages.reply_oid`).
`serve_commands` is the rest of a dialogue once its handshake is done:
emsd's commands, in order (a batch frame holds several), to the venue,
until emsd ends the dialogue or vanishes.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import tractor
import trio

from ..clearing._messages import BrokerdError, commands_of, reply_oid
from ..log import get_logger
from ..service import open_drained_stream, watch_peer

log = get_logger(__name__)

# commands emsd may have queued before its sends feel backpressure
COMMAND_BUFFER = 100_000


class Venue(Protocol):
    """What `serve_commands` needs of a live venue."""

    out_recv: trio.abc.ReceiveChannel[Any]

    async def handle(self, raw: Any) -> None: ...

    def emit(self, *msgs: Any) -> None: ...


async def sender(out: trio.abc.ReceiveChannel[Any], stream: tractor.MsgStream) -> None:
    """Send everything from `out` to emsd until emsd goes away."""
    async for msg in out:
        try:
            with trio.CancelScope(shield=True):
                await stream.send(msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.warning('emsd went away: %r and what follows go to the next '
                        "dialogue's order report", type(msg).__name__)
            return


async def serve_commands(
    ctx: tractor.Context,
    n: trio.Nursery,
    venue: Venue,
    *tasks: Callable[[], Awaitable[Any]],
    on_open: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve emsd's commands to `venue` (after `ctx.started()`), with its
    events going out through `sender` and `tasks` (its ledger...) running
    in `n` meanwhile; `on_open()` runs first, once the stream is open.

    The commands are drained by a task of their own (TRACTOR.md rule 9);
    a dead emsd (SIGKILL included, rule 2) ends the dialogue: what it sent
    last is in the next dialogue's order report. A command that fails is
    answered, and serving goes on.
    """
    async with (
        watch_peer(ctx),
        ctx.open_stream() as stream,
        open_drained_stream(stream, policy='never_drop', maxlen=COMMAND_BUFFER) as commands,
    ):
        if on_open is not None:
            await on_open()
        n.start_soon(sender, venue.out_recv, stream)
        for task in tasks:
            n.start_soon(task)
        async for frame in commands:
            for raw in commands_of(frame):  # a batch frame: several, in order
                try:
                    await venue.handle(raw)
                except Exception:
                    log.exception('failed to handle command %r', raw)
                    venue.emit(BrokerdError(oid=reply_oid(raw),
                                            reason='internal error handling this command'))


__all__ = ['COMMAND_BUFFER', 'sender', 'serve_commands']
