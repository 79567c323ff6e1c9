"""Websocket fan-out: market streams and user data streams.

Every connection has a bounded outbox; publishing is synchronous
(`send_nowait`), so once a control call such as `fake.push()` returns,
every connected client's outbox holds its frames, in order. A client
that lets its outbox fill up is disconnected, as Binance drops slow
consumers. Market connections are raw (`/ws/<stream>`: the payload) or
combined (`/stream?streams=...`: `{"stream": name, "data": payload}`);
user connections (`/ws/<listenKey>`) get the account's events.
"""
from __future__ import annotations

import json
import logging
import re

import trio

log = logging.getLogger('piker.testing.fakes.binance')

OUTBOX = 10_000
STREAM_RE = re.compile(r'^[a-z0-9]+@(bookTicker|trade)$')
# a close code a venue going away sends
GOING_AWAY = 1001


class Conn:
    """One websocket client."""

    def __init__(self, combined: bool, listen_key: str | None = None) -> None:
        self.combined = combined
        self.listen_key = listen_key
        self.subs: set[str] = set()
        self.send, self.recv = trio.open_memory_channel[tuple[str, object]](OUTBOX)
        self.closed = False

    def put(self, text: str) -> None:
        self.offer(('text', text))

    def offer(self, item: tuple[str, object]) -> None:
        if self.closed:
            return
        try:
            self.send.send_nowait(item)
        except trio.WouldBlock:
            log.warning('websocket client too slow (%d frames queued): disconnecting', OUTBOX)
            self.closed = True
            self.send.close()

    def close(self, code: int = GOING_AWAY, reason: str = '') -> None:
        """Close after what is queued (the writer sends the close frame)."""
        if not self.closed:
            self.offer(('close', (code, reason)))
            self.closed = True


class Hub:
    """All websocket connections of one fake."""

    def __init__(self) -> None:
        self.market: set[Conn] = set()
        self.user: set[Conn] = set()
        self.frames_sent = 0

    def add(self, conn: Conn) -> None:
        (self.user if conn.listen_key else self.market).add(conn)

    def remove(self, conn: Conn) -> None:
        self.market.discard(conn)
        self.user.discard(conn)

    def publish(self, stream: str, payload: dict) -> None:
        raw = combined = None
        for conn in self.market:
            if stream not in conn.subs:
                continue
            if conn.combined:
                combined = combined or json.dumps({'stream': stream, 'data': payload},
                                                  separators=(',', ':'))
                conn.put(combined)
            else:
                raw = raw or json.dumps(payload, separators=(',', ':'))
                conn.put(raw)
            self.frames_sent += 1

    def publish_user(self, event: dict, listen_key: str | None = None) -> None:
        text = json.dumps(event, separators=(',', ':'))
        for conn in self.user:
            if listen_key is None or conn.listen_key == listen_key:
                conn.put(text)
                self.frames_sent += 1

    def disconnect(self, which: str = 'all', listen_key: str | None = None) -> int:
        """Close `'market'`, `'user'` or `'all'` connections; returns how many."""
        if which not in ('market', 'user', 'all'):
            raise ValueError(f"disconnect which= 'market', 'user' or 'all', not {which!r}")
        conns: list[Conn] = []
        if which in ('market', 'all'):
            conns += list(self.market)
        if which in ('user', 'all'):
            conns += [c for c in self.user if listen_key is None or c.listen_key == listen_key]
        for conn in conns:
            conn.close()
            self.remove(conn)
        return len(conns)

    def handle_method(self, conn: Conn, text: str) -> None:
        """Answer one client message: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS."""
        try:
            msg = json.loads(text)
        except ValueError:
            conn.put(json.dumps({'error': {'code': 3, 'msg': 'Invalid JSON: expected value at line 1 column 1'}}))
            return
        if not isinstance(msg, dict):
            conn.put(json.dumps({'error': {'code': 2, 'msg': 'Invalid request: request must be an object'}}))
            return
        rid = msg.get('id')
        method = msg.get('method')
        params = msg.get('params', [])

        def error(code: int, text: str) -> None:
            conn.put(json.dumps({'error': {'code': code, 'msg': text}, 'id': rid}))

        if not isinstance(rid, int | str) or isinstance(rid, bool):
            return error(2, "Invalid request: 'id' must be an integer or a string")
        if method in ('SUBSCRIBE', 'UNSUBSCRIBE'):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return error(2, "Invalid request: 'params' must be a list of stream names")
            bad = [p for p in params if not STREAM_RE.match(p)]
            if bad:
                return error(2, f'Invalid request: invalid stream name {bad[0]!r}')
            if method == 'SUBSCRIBE':
                conn.subs.update(params)
            else:
                conn.subs.difference_update(params)
            conn.put(json.dumps({'result': None, 'id': rid}))
        elif method == 'LIST_SUBSCRIPTIONS':
            conn.put(json.dumps({'result': sorted(conn.subs), 'id': rid}))
        else:
            error(2, f'Invalid request: unknown method {method!r}')
