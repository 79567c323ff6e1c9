"""Venue-neutral pieces of a live `trades_dialogue`.

Every reporting backend writes to emsd from one task, in order, each
message shielded (a send cut half-way would corrupt the connection's
framing) and stops quietly when emsd is gone: what it missed is in the
next dialogue's order report (`sender`). A command that cannot be read
is answered by its oid if it has one (`reply_oid`).
"""
from __future__ import annotations

from typing import Any

import tractor
import trio

from ..log import get_logger

log = get_logger(__name__)


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


def reply_oid(raw: Any) -> str:
    """The oid to answer an unreadable command with."""
    oid = raw.get('oid') if isinstance(raw, dict) else None
    return oid if isinstance(oid, str) and oid.strip() else '<unknown>'


__all__ = ['reply_oid', 'sender']
