"""A raw TCP peer for hostile-bytes tests: write bytes to an actor's port,
collect what comes back and whether the actor hung up.

tractor's frame: a 4-byte little-endian length, then that many msgpack
bytes (`piker.service._wire`). The first frame each side sends is its uid.
"""
from __future__ import annotations

import struct
import uuid
from typing import Any

import msgspec
import trio

HEADER = struct.Struct('<I')
HTTP_GET = b'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n'
INVALID_UTF8 = b'\xa2\xff\xfe'  # a 2-byte msgpack str that is not UTF-8


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


def encode(msg: Any) -> bytes:
    return frame(msgspec.msgpack.encode(msg))


def uid_frame(name: str = 'hostile') -> bytes:
    return encode([name, str(uuid.uuid4())])


def deep(depth: int, leaf: bytes = b'\xc0') -> bytes:
    """msgpack of a list nested `depth` deep around `leaf` (nil)."""
    return b'\x91' * depth + leaf


def frames(data: bytes) -> list[Any]:
    """Decode the complete frames in `data` (what an actor sent us)."""
    out, pos = [], 0
    while pos + HEADER.size <= len(data):
        size, = HEADER.unpack_from(data, pos)
        if pos + HEADER.size + size > len(data):
            break
        out.append(msgspec.msgpack.decode(data[pos + HEADER.size:pos + HEADER.size + size]))
        pos += HEADER.size + size
    return out


class Reply(msgspec.Struct):
    data: bytes
    closed: bool  # the actor hung up within the wait

    def msgs(self) -> list[Any]:
        return frames(self.data)


async def exchange(
    addr: tuple[str, int],
    data: bytes,
    *,
    handshake: bool = False,
    wait: float = 3.0,
    want: int | None = None,
) -> Reply:
    """Connect to `addr`, optionally handshake, write `data`; read until the
    actor closes the connection, `want` frames (its uid included) came, or
    `wait` passes (then hang up ourselves)."""
    got = bytearray()
    closed = False
    stream = await trio.open_tcp_stream(*addr)
    async with stream:
        try:
            await stream.send_all((uid_frame() if handshake else b'') + data)
        except trio.BrokenResourceError:
            return Reply(bytes(got), True)
        with trio.move_on_after(wait):
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:  # reset by the actor
                    chunk = b''
                if not chunk:
                    closed = True
                    break
                got += chunk
                if want is not None and len(frames(bytes(got))) >= want:
                    break
    return Reply(bytes(got), closed)
