"""One socket write for the frames several tasks send on a connection at once.

Why: tractor 0.1.0a5 writes every message with its own `send_all`, one
at a time under a lock. On loopback TCP a write costs the sender the
receiver's half of the stack too, and wakes the receiver: ~25 us a
frame. Under `bench/load.py` emsd's fan-out (a sender task per client,
several clients per process, all on that process's one connection) spent
a fifth of emsd's CPU in those writes (docs/perf.md, fourth round).

How: the first task to send on an idle connection becomes its writer.
It lets the tasks woken in the same scheduler pass queue their frames
(one cancel-shielded checkpoint), then writes everything queued as one
buffer, and again until the queue is empty. A task that finds a writer
queues its frame and waits for the write that carries it. Frames leave
in the order they were sent; a failed write fails every sender whose
frame it carried, and every later send.

Cancellation keeps the stream's framing whole:

- a sender cancelled while its frame is still queued takes it back;
- a writer cancelled before its write put any byte on the socket puts
  the other senders' frames back (one of them writes them);
- a write cancelled half way (a peer that stopped reading) leaves a torn
  frame on the wire, so the connection is broken for every later send
  (tractor's own send let the next one follow the torn frame).
"""
from __future__ import annotations

import errno
from typing import Any

import trio

__all__ = ['Outbox']

# OSErrors that mean the socket was closed here, not by the peer
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})


class _Unsent(Exception):
    """A write was cancelled before any of it reached the socket."""

    def __init__(self, cancelled: trio.Cancelled) -> None:
        self.cancelled = cancelled


class Outbox:
    """The frames queued for one connection's stream, and who writes them."""

    __slots__ = ('_stream', '_frames', '_seq', '_sent', '_writing', '_broken', '_progress')

    def __init__(self, stream: Any) -> None:
        # a trio.SocketStream, or a trio.SSLStream over one (TLS)
        self._stream = stream
        self._frames: list[tuple[int, bytes]] = []  # (seq, frame), in seq order
        self._seq = 0  # the last frame queued ...
        self._sent = 0  # ... and the last written (or taken back) in order
        self._writing = False
        self._broken: BaseException | None = None
        # set (and replaced) whenever a write ends or the writer leaves
        self._progress = trio.Event()

    @property
    def queued(self) -> int:
        """Frames waiting for the socket (for tests and benches)."""
        return len(self._frames)

    async def send(self, frame: bytes) -> None:
        """Write `frame` (a whole frame: header and body) after the frames
        sent before it; returns once it is on the socket."""
        self._raise_if_broken()
        self._seq = seq = self._seq + 1
        self._frames.append((seq, frame))
        while True:
            if self._sent >= seq:
                return
            self._raise_if_broken()
            if not self._writing:
                await self._write_queued(seq)
                return
            progress = self._progress
            try:
                await progress.wait()
            except trio.Cancelled:
                self._take_back(seq)
                raise

    def _take_back(self, seq: int) -> None:
        for i, (s, _) in enumerate(self._frames):
            if s == seq:
                del self._frames[i]
                return

    def _raise_if_broken(self) -> None:
        err = self._broken
        if err is None:
            return
        if isinstance(err, trio.ClosedResourceError):
            raise trio.ClosedResourceError('this connection was closed') from err
        raise trio.BrokenResourceError(
            f'an earlier write on this connection failed: {type(err).__name__}: {err}'
        ) from err

    def _wake(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def _write_queued(self, own: int) -> None:
        """Be the writer until the queue is empty (`own`: our frame's seq)."""
        self._writing = True
        try:
            # the senders woken in this scheduler pass join this write
            await trio.lowlevel.cancel_shielded_checkpoint()
            while self._frames:
                batch, self._frames = self._frames, []
                try:
                    await self._write(b''.join([frame for _, frame in batch]))
                except _Unsent as unsent:
                    # nothing went out: the others' frames wait for a new
                    # writer; ours is withdrawn with our cancellation
                    self._frames[:0] = [(s, f) for s, f in batch if s != own]
                    raise unsent.cancelled from None
                except BaseException as err:
                    self._broken = err
                    raise
                self._sent = batch[-1][0]
                self._wake()
        finally:
            self._writing = False
            # waiters look again: written, broken, or theirs to write
            self._wake()

    async def _write(self, data: bytes) -> None:
        stream = self._stream
        if not isinstance(stream, trio.SocketStream):
            # TLS: a cancelled SSLStream write breaks the stream itself
            await stream.send_all(data)
            return
        sock = stream.socket
        # trio's SocketStream.send_all, counting what went out: a socket
        # send either writes some bytes or is cancelled having written none
        total = 0
        with memoryview(data) as view:
            try:
                while total < len(view):
                    with view[total:] as rest:
                        total += await sock.send(rest)
            except trio.Cancelled as cancelled:
                if total == 0:
                    raise _Unsent(cancelled) from None
                raise
            except OSError as err:
                if err.errno in _CLOSED_ERRNOS:
                    raise trio.ClosedResourceError('this socket was already closed') from None
                raise trio.BrokenResourceError(f'socket connection broken: {err}') from err
