"""Hostile bytes on a daemon's port cost that connection only (tractor 0.1.0a5).

Every actor listens on TCP and tractor trusts whatever connects. Measured
before these fixes, with `piker pikerd` running:

- `curl http://127.0.0.1:<registry port>/` killed pikerd and every daemon:
  tractor read "GET " as a frame length (542393671), `receive_exactly()`
  raised `ValueError: unclean EOF` out of the connection handler, and an
  error escaping a handler cancels the actor's whole service nursery.
- the same on emsd's port left emsd alive but deaf: the service nursery
  (listener included) was torn down while the shielded message loop with
  pikerd kept the process running (pikerd never noticed, issue #9).
- one frame nested 5,000 deep (`RecursionError` in msgspec) or five frames
  of invalid UTF-8 (tractor skips four decode errors, raises the fifth)
  crashed emsd; emsd shipped the error to its parent as a crash report,
  which pikerd re-raised in *its* handler for emsd's connection: pikerd
  died too, and its respawn of emsd failed with `OSError(9, 'Bad file
  descriptor')` (tractor's `start_actor` reads pikerd's own listener
  address, and the dying pikerd had closed that listener).

The fixes, at four depths (each turns a bad peer into `BadPeer`, a
`TransportClosed`, which tractor already handles as "this connection
ended", or confines what is left):

1. framing (`MsgpackTCPStream._iter_packets`): a frame is a 4-byte
   little-endian unsigned length then that many msgpack bytes. A length
   above `MAX_FRAME` (64 MiB; piker's biggest messages are a few MB, the
   fuzz sends 2 MB), an EOF inside a frame, or a frame that does not decode
   (`DecodeError`, `UnicodeDecodeError`, `RecursionError`, ...) drops the
   peer. Nothing is skipped: after one bad frame the byte stream cannot be
   trusted to be in sync. Sending a frame above the limit fails in the
   sender with a clear error instead of at the receiver.
2. handshake (`Actor._do_handshake`): the first message must be a uid, two
   short strings (tractor accepted any indexable: `'ab'` became a uid and
   an int raised out of the handler), and an inbound peer must send it
   within `HANDSHAKE_TIMEOUT` (tractor waited for ever: a scanner that
   connects and says nothing held a socket and a task).
3. message loop (`Channel._aiter_recv`): every message must have the shape
   `_process_messages` assumes (None, a response with a string `cid`, a
   `cmd` of five well-typed fields and a fresh cid, a well-formed
   `error`). An RPC into an actor method that is not one of tractor's own
   remote calls (`SELF_RPC`: a peer could call `cancel_server`), or with
   arguments that do not bind to the function, is answered with an error
   in one log line. A peer's cid-less `error` (a child's crash report to
   its parent) is logged and ends that connection: pikerd's supervisor,
   not the report, decides what happens next (respawn).
4. confinement (`Actor._stream_handler`): any other error from an inbound
   connection (whatever still trips tractor's loop on a message that
   passed the checks) ends that connection with one log line, is not
   shipped to the parent, and never reaches the listener or the other
   connections.
"""
from __future__ import annotations

import inspect
import logging
import math
import struct
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from typing import Any, NamedTuple

import trio
from tractor import _actor, _state
from tractor._exceptions import ModuleNotExposed, TransportClosed, pack_error
from tractor._ipc import Channel, MsgpackTCPStream

from ..log import get_logger
from ._outbox import Outbox

log = get_logger('service')

MAX_FRAME = 64 * 2**20
MAX_NAME = 256  # a uid's name / uuid, a cid
HANDSHAKE_TIMEOUT = 10.0  # an inbound peer's uid, after the connect
_HEADER = struct.Struct('<I')
# tractor's own RPCs into the runtime (`ns == 'self'`): nothing else is
# callable on the actor object by a peer (e.g. `cancel_server` would close
# the listener)
SELF_RPC = frozenset({
    'cancel', '_cancel_task', 'register_actor', 'unregister_actor',
    'find_actor', 'wait_for_actor', 'get_registry',
})
# tractor's `RemoteActorError(message, suberror_type=..., **error)`
_ERROR_RESERVED = frozenset({'message', 'suberror_type'})
_TRANSPORT = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class BadPeer(TransportClosed):
    """What a connection sent is not a tractor peer: it is dropped."""


class PeerCrashed(BadPeer):
    """A peer reported its own crash (a child to its parent): connection ends."""


def _drop(where: Any, reason: str, level: int = logging.WARNING) -> BadPeer:
    log.log(level, f'dropped connection from {where}: {reason}')
    return BadPeer(reason)


# --- 1. framing ---------------------------------------------------------------

async def _iter_packets(self: MsgpackTCPStream) -> AsyncGenerator[Any, None]:
    peer = f'{self.raddr[0]}:{self.raddr[1]}'
    while True:
        try:
            header = await self.recv_stream.receive_exactly(_HEADER.size)
        except (ValueError, ConnectionResetError, trio.BrokenResourceError):
            raise TransportClosed(f'transport {peer} was already closed prior to read') from None
        size, = _HEADER.unpack(header)
        if size > MAX_FRAME:
            raise _drop(peer, f'frame length {size} exceeds {MAX_FRAME} '
                              f'(header {bytes(header)!r}: not a tractor peer?)')
        try:
            frame = await self.recv_stream.receive_exactly(size) if size else b''
        except (ValueError, ConnectionResetError, trio.BrokenResourceError) as err:
            raise _drop(peer, f'connection ended inside a frame ({err})', logging.INFO) from None
        try:
            msg = self.decode(frame)
        except Exception as err:  # DecodeError, UnicodeDecodeError, RecursionError...
            raise _drop(peer, f'undecodable frame of {size} bytes: '
                              f'{type(err).__name__}: {str(err)[:200]}') from None
        yield msg


async def _send(self: MsgpackTCPStream, msg: Any) -> None:
    # tractor's send, plus the limit: a message too big for the receiver
    # fails here, in the sender's task, instead of costing the connection;
    # the frames of tasks sending at once share one write (`_outbox`)
    data = self.encode(msg)
    if len(data) > MAX_FRAME:
        raise ValueError(
            f'message of {len(data)} bytes exceeds the {MAX_FRAME}-byte '
            'frame limit (piker.service._wire.MAX_FRAME): send it in parts'
        )
    outbox = self.__dict__.get('_outbox')
    if outbox is None:
        outbox = self._outbox = Outbox(self.stream)
    await outbox.send(_HEADER.pack(len(data)) + data)


# --- 2. handshake -------------------------------------------------------------

def _is_name(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_NAME


async def _do_handshake(self: _actor.Actor, chan: Channel) -> tuple[str, str]:
    await chan.send(self.uid)
    # an inbound peer that says nothing would hold a socket and a task for
    # ever; a real one sends its uid right after connecting
    with trio.move_on_after(HANDSHAKE_TIMEOUT if in_peer_handler() else math.inf) as cs:
        value = await chan.recv()
    if cs.cancelled_caught:
        raise _drop(chan.raddr, f'no handshake within {HANDSHAKE_TIMEOUT:g}s', logging.INFO)
    if not (isinstance(value, list | tuple) and len(value) == 2
            and all(_is_name(v) for v in value)):
        raise _drop(chan.raddr, f'handshake is not a tractor uid: {_preview(value)}')
    chan.uid = uid = (value[0], value[1])
    return uid


def _preview(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # RecursionError
        text = f'<{type(value).__name__}>'
    return text[:120]


# --- 3. message shapes ----------------------------------------------------------

def _error_problem(error: Any) -> str | None:
    if not isinstance(error, dict) or not isinstance(error.get('type_str'), str):
        return 'an error without a type_str'
    if not isinstance(error.get('tb_str', ''), str):
        return 'an error whose tb_str is not a string'
    if any(not isinstance(k, str) or k in _ERROR_RESERVED for k in error):
        return 'an error with reserved or non-string fields'
    return None


class Refused(NamedTuple):
    """Why a message cannot go to tractor's loop; answered on `cid` if any."""

    reason: str
    cid: str | None = None
    error: type[Exception] = TypeError


def _cmd_problem(cmd: Any) -> Refused | None:
    if not (isinstance(cmd, list) and len(cmd) == 5):
        return Refused('a cmd that is not [ns, func, kwargs, uid, cid]')
    ns, func, kwargs, _uid, cid = cmd
    if not _is_name(cid):
        return Refused('a cmd without a string cid')
    if not (isinstance(ns, str) and isinstance(func, str)):
        return Refused('a cmd whose ns or function is not a string', cid)
    if not (isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)):
        return Refused('a cmd whose kwargs are not a map of names', cid)
    actor = _state.current_actor()
    if ns == 'self':
        if func not in SELF_RPC or not hasattr(actor, func):
            return Refused(f'the actor method {func[:64]!r} is not callable remotely',
                           cid, ModuleNotExposed)
        fn = getattr(actor, func)
    else:
        try:
            fn = actor._get_rpc_func(ns, func)
        except Exception:
            return None  # tractor answers ModuleNotExposed itself
    problem = _bind_problem(fn, kwargs)
    return Refused(f'bad arguments for {ns[:64]}.{func[:64]}(): {problem}', cid) if problem else None


def _bind_problem(fn: Any, kwargs: dict) -> str | None:
    """Arguments that do not fit the function: answered in one line here
    (tractor would log a traceback for the caller's mistake)."""
    if getattr(fn, '_tractor_stream_function', False):
        return None
    kw = dict(kwargs)
    if getattr(fn, '_tractor_context_function', False):
        kw['ctx'] = None  # injected by tractor
    if getattr(fn, '__name__', '') == '_cancel_task':
        kw['chan'] = None  # injected by tractor
    try:
        inspect.signature(fn).bind(**kw)
    except TypeError as err:
        return str(err)
    except ValueError:  # no signature
        return None
    return None


def _problem(chan: Channel, msg: Any) -> Refused | None:
    """Why `_process_messages` would choke on `msg` (None: it would not)."""
    if msg is None:
        return None
    if not isinstance(msg, dict):
        return Refused(f'a {type(msg).__name__} message')
    if 'cid' in msg:
        if not isinstance(msg['cid'], str):
            return Refused('a response whose cid is not a string')
        problem = _error_problem(msg['error']) if 'error' in msg else None
        return Refused(problem) if problem else None
    if 'cmd' in msg:
        refused = _cmd_problem(msg['cmd'])
        if refused is None and (chan.uid, msg['cmd'][4]) in _state.current_actor()._contexts:
            # two tasks on one context: the second one's exit raises
            # KeyError in tractor's RPC task, which kills the actor
            return Refused('a cmd re-using a cid')
        return refused
    return Refused('a message that is neither a cmd nor a response')


async def _aiter_recv(self: Channel) -> AsyncGenerator[Any, None]:
    assert self.msgstream
    async for msg in self.msgstream:
        if isinstance(msg, dict) and 'error' in msg and 'cid' not in msg and 'cmd' not in msg:
            error = msg['error'] if isinstance(msg['error'], dict) else {}
            who = self.uid[0] if self.uid else self.raddr
            tb = str(error.get('tb_str', '')).strip().splitlines()
            last = tb[-1] if tb else str(error.get('type_str'))
            log.error(f'connection from {who} ends: it reported a crash: {last[:300]}')
            raise PeerCrashed(f'{who} crashed')
        refused = _problem(self, msg)
        if refused is None:
            yield msg
        elif refused.cid is not None:
            # answerable: the caller gets an error, the connection lives
            log.warning(f'refused an RPC from {self.uid}: {refused.reason}')
            err = pack_error(refused.error(refused.reason))
            err['cid'] = refused.cid
            await self.send(err)
        else:
            raise _drop(f'{self.uid} at {self.raddr}', f'sent {refused.reason}')
    await self.aclose()


# --- 4. confinement ----------------------------------------------------------------

# the task of each inbound connection's handler (set in that task only)
_handler_task: ContextVar[Any] = ContextVar('piker_wire_handler', default=None)


def in_peer_handler() -> bool:
    """True in the task that handles one inbound connection (not its RPC tasks)."""
    try:
        return _handler_task.get() is trio.lowlevel.current_task()
    except RuntimeError:  # not in trio (a thread)
        return False


_orig_stream_handler = _actor.Actor._stream_handler


async def _stream_handler(self: _actor.Actor, stream: trio.SocketStream) -> None:
    token = _handler_task.set(trio.lowlevel.current_task())
    try:
        peer = stream.socket.getpeername()[:2]
    except OSError:
        peer = '<gone>'
    try:
        await _orig_stream_handler(self, stream)
    except Exception as err:
        if isinstance(err, _TRANSPORT):  # a probe, a peer that hung up mid-handshake
            log.debug(f'connection from {peer} broke: {err!r}')
        else:
            log.warning(f'dropped connection from {peer}: {type(err).__name__}: '
                        f'{_preview(err)[:200]}')
    finally:
        _handler_task.reset(token)


_orig_ship = _actor.try_ship_error_to_parent


async def _try_ship_error_to_parent(chan: Channel, err: BaseException) -> None:
    # an error of one inbound connection is that connection's: not a crash
    # of this actor for its parent to act on
    if not in_peer_handler():
        await _orig_ship(chan, err)


class _ConfinedFilter(logging.Filter):
    """Drop tractor's "Actor errored:" traceback for a confined connection
    (`_stream_handler` logs one line for it instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith('Actor errored') and in_peer_handler())


def apply() -> None:
    """Install the fixes (idempotent)."""
    if MsgpackTCPStream._iter_packets is _iter_packets:
        return
    MsgpackTCPStream._iter_packets = _iter_packets  # type: ignore[method-assign]
    MsgpackTCPStream.send = _send  # type: ignore[method-assign]
    Channel._aiter_recv = _aiter_recv  # type: ignore[method-assign]
    _actor.Actor._do_handshake = _do_handshake  # type: ignore[method-assign]
    _actor.Actor._stream_handler = _stream_handler  # type: ignore[method-assign]
    _actor.try_ship_error_to_parent = _try_ship_error_to_parent
    logging.getLogger('tractor._actor').addFilter(_ConfinedFilter())


apply()
