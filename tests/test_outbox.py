"""The write combiner under tractor's sends (`piker.service._outbox`).

Over a real socket pair: frames sent at once share writes and arrive
whole and in each sender's order; cancellation never tears a frame or
loses another sender's; a torn write breaks the connection for good.
"""
from __future__ import annotations

import struct

import pytest
import trio
import trio.testing

from piker.service._outbox import Outbox

pytestmark = pytest.mark.timeout(30)


def trio_test(fn):
    """Run an async test in its own trio run."""
    def run() -> None:
        trio.run(fn)
    run.__name__ = fn.__name__
    return run

_HEADER = struct.Struct('<I')


def frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body)) + body


class CountingSocket:
    """A trio socket that counts its sends."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock
        self.sends = 0

    async def send(self, data: memoryview) -> int:
        self.sends += 1
        return await self._sock.send(data)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def socket_pair() -> tuple[trio.SocketStream, trio.SocketStream, CountingSocket]:
    a, b = trio.socket.socketpair()
    tx, rx = trio.SocketStream(a), trio.SocketStream(b)
    counting = CountingSocket(tx.socket)
    tx.socket = counting  # type: ignore[assignment]
    return tx, rx, counting


async def read_frames(rx: trio.SocketStream, n: int) -> list[bytes]:
    buf = b''
    out: list[bytes] = []
    while len(out) < n:
        while len(buf) >= 4 and len(buf) >= 4 + _HEADER.unpack(buf[:4])[0]:
            size = _HEADER.unpack(buf[:4])[0]
            out.append(buf[4:4 + size])
            buf = buf[4 + size:]
        if len(out) >= n:
            break
        chunk = await rx.receive_some(1 << 16)
        assert chunk, 'the connection ended early'
        buf += chunk
    assert not buf or len(out) == n
    return out


@trio_test
async def test_senders_of_one_pass_share_a_write_and_keep_their_order() -> None:
    tx, rx, counting = socket_pair()
    box = Outbox(tx)

    async def sender(name: int) -> None:
        for i in range(20):
            await box.send(frame(f'{name}:{i}'.encode()))

    async with trio.open_nursery() as n:
        for name in range(8):
            n.start_soon(sender, name)
    got = await read_frames(rx, 160)
    per_sender: dict[str, list[int]] = {}
    for body in got:
        name, i = body.decode().split(':')
        per_sender.setdefault(name, []).append(int(i))
    assert per_sender == {str(name): list(range(20)) for name in range(8)}
    # 160 frames from 8 tasks at once: far fewer writes than frames
    assert counting.sends <= 160 // 2, counting.sends
    assert box.queued == 0


@trio_test
async def test_a_lone_sender_writes_each_frame_at_once() -> None:
    tx, rx, counting = socket_pair()
    box = Outbox(tx)
    for i in range(5):
        await box.send(frame(b'x%d' % i))
        assert counting.sends == i + 1
    assert await read_frames(rx, 5) == [b'x%d' % i for i in range(5)]


@trio_test
async def test_a_cancelled_sender_takes_its_queued_frame_back() -> None:
    tx, rx, _ = socket_pair()
    box = Outbox(tx)
    big = b'x' * (8 << 20)  # more than the socket buffers: the writer waits for the reader
    sent: list[bytes] = []

    async def send(body: bytes, cancelled: bool = False) -> None:
        with trio.CancelScope() as cs:
            if cancelled:
                cs.cancel()
            await box.send(frame(body))
            sent.append(body)

    async with trio.open_nursery() as n:
        n.start_soon(send, big)
        await trio.testing.wait_all_tasks_blocked()
        assert box.queued == 0  # the big frame is being written
        n.start_soon(send, b'gone', True)
        n.start_soon(send, b'kept')
        await trio.testing.wait_all_tasks_blocked()
        assert box.queued == 1  # 'gone' took its frame back
        got = await read_frames(rx, 2)
    assert got == [big, b'kept']
    assert sent == [big, b'kept']


@trio_test
async def test_a_writer_cancelled_before_writing_leaves_the_others_frames_to_them() -> None:
    tx, rx, _ = socket_pair()
    box = Outbox(tx)

    async def other(body: bytes) -> None:
        await box.send(frame(body))

    async with trio.open_nursery() as n:
        with trio.CancelScope() as cs:
            cs.cancel()
            # they run while the writer (this task) lets its pass join in;
            # then its first socket send raises Cancelled having written nothing
            n.start_soon(other, b'one')
            n.start_soon(other, b'two')
            await box.send(frame(b'cancelled'))
        assert cs.cancelled_caught
    got = await read_frames(rx, 2)
    assert sorted(got) == [b'one', b'two']
    await box.send(frame(b'next'))
    assert await read_frames(rx, 1) == [b'next']


@trio_test
async def test_a_write_torn_by_cancellation_breaks_the_connection() -> None:
    tx, rx, _ = socket_pair()
    box = Outbox(tx)
    big = frame(b'x' * (32 << 20))  # far more than a socket buffer: the peer is not reading
    with trio.move_on_after(0.3) as cs:
        await box.send(big)
    assert cs.cancelled_caught
    with pytest.raises(trio.BrokenResourceError, match='earlier write on this connection failed'):
        await box.send(frame(b'after'))


@trio_test
async def test_a_failed_write_fails_every_sender_it_carried() -> None:
    tx, rx, _ = socket_pair()
    box = Outbox(tx)
    await rx.aclose()
    errors: list[type[BaseException]] = []

    async def send(body: bytes) -> None:
        try:
            for _ in range(50):  # the first writes may still reach the buffer
                await box.send(frame(body))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            errors.append(type(err))

    async with trio.open_nursery() as n:
        for i in range(4):
            n.start_soon(send, b'%d' % i)
    assert len(errors) == 4
    with pytest.raises(trio.BrokenResourceError):
        await box.send(frame(b'later'))


@trio_test
async def test_a_stream_closed_here_raises_closed() -> None:
    tx, rx, _ = socket_pair()
    box = Outbox(tx)
    await tx.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await box.send(frame(b'x'))
    with pytest.raises(trio.ClosedResourceError):
        await box.send(frame(b'y'))
