"""Fixes for tractor 0.1.0a5 failure paths that would kill a whole actor.

Applied once, on import of `piker.service` (every piker actor imports it:
daemons through their `enable_modules`, clients through `open_ems`/
`open_feed`), so every process of the tree runs with them.

`Actor._push_result` delivers a message to its local context's queue. When
the queue is full and the context uses backpressure it awaits
`send_chan.send(msg)`; if the context's reader goes away meanwhile (its
task was cancelled: a watchdog gave up on the peer, a client left) that
send raises `trio.BrokenResourceError`, which tractor only catches around
the non-blocking send. The error escapes `_process_messages`, which takes
the *connection's* whole message loop down and with it the actor ("Actor
errored"), then the parent (measured: emsd and pikerd died under the load
bench). A message for a reader that is gone has nobody to go to: drop it,
with a log line, exactly as tractor does for the non-blocking case.

`Channel.__repr__` formats the socket object (~15 us); tractor's message
loop puts it in an eagerly formatted log line for *every* message. A
channel's repr is now its two addresses, formatted once.

A caller that goes away while its RPC runs (a client SIGKILLed during a
heartbeat ping) makes tractor log "Actor crashed:" with a broken-pipe
traceback and "Failed to ship error to caller" at ERROR: nothing crashed,
the caller is gone, and piker notices that on its own. Those two records
are dropped when the error is a transport error.

Contexts of one-shot RPCs: tractor keeps a `Context` (with its memory
channel) in `Actor._contexts` for every RPC, on both sides, and removes it
only for `@tractor.context` endpoints. Every `portal.run()` therefore
leaked one per side for good (measured: 1000 pings, 1000 contexts left in
the caller), and a heartbeat pings 4 times a second per watched peer. A
one-shot RPC's context is dropped once its reply is in (caller) and once
the function is done (callee).

Per-message log lines: tractor formats every message it receives into
two f-strings (`log.transport(f"Received msg {msg} ...")` in its message
loop, `log.runtime(f"Delivering {msg} ...")` in `_push_result`) and every
message it sends into a third (`Channel.send`), whatever the log level.
Measured: the repr of one order `Status` costs ~27 us, of a batch of 100
~2 ms (an echo of a 50-map batch: 530-730 us of CPU in the echo actor
and p50 1.2-4.0 ms, after the fix 270-300 us and 0.6 ms). A received message
is now a `_Msg` (a dict whose repr names its cid and keys, not its
payload; an error message keeps its full repr), and `Channel.send` formats
only when the TRANSPORT level is on.

Liveness: every message a channel receives stamps
`MsgpackTCPStream.last_rx` (a monotonic time), so a heartbeat can tell a
dead peer from one whose ping reply waits behind its own traffic
(`last_heard()`, used by `_heartbeat`).
"""
from __future__ import annotations

import logging
import math
import time
from typing import Any

import trio
from tractor import _actor, _ipc
from tractor._actor import Actor
from tractor._ipc import Channel, MsgpackTCPStream
from tractor._portal import Portal

from ..log import get_logger

log = get_logger('service')

_orig_push_result = Actor._push_result


async def _push_result(self: Actor, chan: Any, cid: str, msg: dict[str, Any]) -> None:
    try:
        await _orig_push_result(self, chan, cid, msg)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        log.warning('dropped a message from %s for context %s: its reader is gone',
                    getattr(chan, 'uid', None), cid)


_orig_return_once = Portal._return_once


async def _return_once(self: Portal, ctx: Any) -> dict[str, Any]:
    try:
        return await _orig_return_once(self, ctx)
    finally:
        self.actor._contexts.pop((self.channel.uid, ctx.cid), None)


_orig_invoke = _actor._invoke


async def _invoke(actor: Actor, cid: str, chan: Channel, func: Any, kwargs: dict[str, Any],
                  *args: Any, **kw: Any) -> None:
    try:
        await _orig_invoke(actor, cid, chan, func, kwargs, *args, **kw)
    finally:
        # tractor pops the context of a `@tractor.context` endpoint itself
        if not getattr(func, '_tractor_context_function', False):
            actor._contexts.pop((chan.uid, cid), None)


def _chan_repr(self: Channel) -> str:
    text = self.__dict__.get('_piker_repr')
    if text is None:
        stream = self.msgstream
        if stream is None:
            return object.__repr__(self)
        text = self.__dict__['_piker_repr'] = f'<Channel {stream.laddr} -> {stream.raddr}>'
    return text


_orig_stream_init = MsgpackTCPStream.__init__


class _Msg(dict):
    """A received tractor message: a plain dict but for its repr, which
    tractor's eager log lines format for every message (see the module
    doc); the payload is left out, except in an error's."""

    __slots__ = ()

    def __repr__(self) -> str:
        if 'error' in self:
            return dict.__repr__(self)
        return f'<msg cid={self.get("cid")!r} {"/".join(map(str, self))}>'

    __str__ = __repr__


def _stream_init(self: MsgpackTCPStream, *args: Any, **kwargs: Any) -> None:
    _orig_stream_init(self, *args, **kwargs)
    decode = self.decode
    self.last_rx = time.monotonic()

    def _stamped(data: bytes) -> Any:
        self.last_rx = time.monotonic()
        msg = decode(data)
        return _Msg(msg) if type(msg) is dict else msg

    self.decode = _stamped


_TRANSPORT_LEVEL = 5  # tractor.log.LEVELS['TRANSPORT']


async def _chan_send(self: Channel, item: Any) -> None:
    # tractor's, without formatting `item` for a log line nobody sees
    if _ipc.log.isEnabledFor(_TRANSPORT_LEVEL):
        _ipc.log.transport(f'send `{item}`')  # type: ignore[attr-defined]
    assert self.msgstream
    await self.msgstream.send(item)


def last_heard(chan: Channel) -> float:
    """Seconds since `chan` last received a message (inf: never / no stream)."""
    stream = chan.msgstream
    last = getattr(stream, 'last_rx', None)
    return math.inf if last is None else time.monotonic() - last


_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, BrokenPipeError,
         ConnectionResetError)


class _CallerGoneFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        if msg.startswith('Failed to ship error to caller'):
            return False
        if msg.startswith('Actor crashed') and record.exc_info:
            err = record.exc_info[1]
            return not (isinstance(err, _GONE) or isinstance(err.__cause__, _GONE))
        return True


def apply() -> None:
    """Install the fixes (idempotent)."""
    if Actor._push_result is not _push_result:
        Actor._push_result = _push_result  # type: ignore[method-assign]
        Channel.__repr__ = _chan_repr  # type: ignore[method-assign]
        Channel.send = _chan_send  # type: ignore[method-assign]
        MsgpackTCPStream.__init__ = _stream_init  # type: ignore[method-assign]
        Portal._return_once = _return_once  # type: ignore[method-assign]
        _actor._invoke = _invoke
        # a logger's filters see only records logged on it, not those
        # propagated from children: `tractor._actor` logs on the package
        # logger ('tractor'), other modules on their own child loggers
        gone = _CallerGoneFilter()
        for name in ('tractor', 'tractor._actor'):
            logging.getLogger(name).addFilter(gone)


apply()
