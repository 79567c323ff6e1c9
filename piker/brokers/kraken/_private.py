"""Kraken's authenticated websocket v2: the `executions` channel and the
order methods on one connection.

Each connection takes a fresh token (`GetWebSocketsToken`, REST, valid
15 minutes to connect), subscribes `executions` with `snap_orders` and
`snap_trades` (the open orders and the last 50 fills: the order report)
and then carries `add_order`/`amend_order`/`cancel_order` requests,
matched to their responses by `req_id`. Kraken sends a `heartbeat` a
second; `SILENCE_S` without a message means the connection is dead.

`PrivateWs.run()` keeps it up (`piker.service.reconnecting`); the owner
gets `on_snapshot(events, first)` after every (re)subscription and
`on_event(event)` for every update. A request whose connection drops
before its response raises `ConnectionLost` (the order may or may not
be at Kraken: the next snapshot says). Key problems (`AuthError`,
`NoKeys`) are not retried; a refused subscription is, after the first
connection (a token that expired in between: the next one is fresh).
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ...log import get_logger
from ...service import Backoff, reconnecting
from .._ws import receive_within
from ._orders import Exec
from ._rest import AuthError, Client, KrakenError, NoKeys

log = get_logger('brokers.kraken.private')

SILENCE_S = 10.0
REQUEST_TIMEOUT = 15.0
CONNECT_WAIT = 10.0


class ConnectionLost(KrakenError):
    """The private websocket dropped before Kraken answered."""


class SessionRefused(KrakenError):
    """Kraken refused the `executions` subscription (its token): fatal on
    the first connection, retried with a fresh token after that."""


class _Msg(msgspec.Struct):
    channel: str = ''
    type: str = ''
    data: msgspec.Raw = msgspec.Raw(b'[]')
    method: str = ''
    req_id: int | None = None
    success: bool = True
    error: str = ''
    result: Any = None


_decoder = msgspec.json.Decoder(_Msg)


def _events(msg: _Msg) -> list[Exec]:
    """The `executions` entries of a frame (a malformed one is skipped)."""
    raw = msgspec.json.decode(msg.data)
    out = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(msgspec.convert(item, Exec))
        except msgspec.ValidationError as err:
            log.warning('kraken: bad executions entry ignored (%s): %.300r', err, item)
    return out


class PrivateWs:
    def __init__(
        self, client: Client, url: str,
        on_snapshot: Callable[[list[Exec], bool], Awaitable[None]],
        on_event: Callable[[Exec], Awaitable[None]],
    ) -> None:
        self.client = client
        self.url = url
        self.on_snapshot = on_snapshot
        self.on_event = on_event
        self._ws: Any = None
        self._token = ''
        self._up = trio.Event()
        self._ids = itertools.count(10)
        self._waiting: dict[int, list[Any]] = {}
        self._first = True

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Send one order method; its `result`, or Kraken's error as a
        `KrakenError`."""
        with trio.move_on_after(CONNECT_WAIT):
            await self._up.wait()
        ws = self._ws
        if ws is None:
            raise ConnectionLost('the Kraken private websocket is down (reconnecting)')
        req_id = next(self._ids)
        slot: list[Any] = [trio.Event(), None]
        self._waiting[req_id] = slot
        try:
            await ws.send_message(json.dumps({
                'method': method, 'req_id': req_id,
                'params': {**params, 'token': self._token}}))
            with trio.move_on_after(REQUEST_TIMEOUT):
                await slot[0].wait()
        except ConnectionClosed:
            pass
        finally:
            self._waiting.pop(req_id, None)
        msg: _Msg | None = slot[1]
        if msg is None:
            raise ConnectionLost(f'no answer from Kraken to {method} (connection lost)')
        if not msg.success:
            raise KrakenError(msg.error or f'{method} failed')
        return msg.result

    def _fail_waiters(self) -> None:
        for slot in self._waiting.values():
            slot[0].set()  # slot[1] stays None: ConnectionLost

    async def _connect_once(self, task_status: Any) -> None:
        token = await self.client.ws_token()
        async with open_websocket_url(self.url) as ws:
            await ws.send_message(json.dumps({'method': 'subscribe', 'req_id': 1, 'params': {
                'channel': 'executions', 'token': token, 'snap_orders': True,
                'snap_trades': True}}))
            with trio.fail_after(CONNECT_WAIT):
                while True:
                    msg = _decoder.decode(await ws.get_message())
                    if msg.method == 'subscribe' and not msg.success:
                        raise SessionRefused(f'Kraken refused the executions '
                                             f'subscription: {msg.error}')
                    if msg.channel == 'executions' and msg.type == 'snapshot':
                        break
            first, self._first = self._first, False
            await self.on_snapshot(_events(msg), first)
            self._ws, self._token = ws, token
            self._up.set()
            if first:
                task_status.started()
            try:
                await self._read(ws)
            finally:
                self._ws = None
                self._up = trio.Event()
                self._fail_waiters()

    async def _read(self, ws: Any) -> None:
        while True:
            try:
                raw = await receive_within(ws, SILENCE_S)
            except ConnectionClosed:
                return
            if raw is None:
                log.warning('kraken private ws: silent for %ss: reconnecting', SILENCE_S)
                return
            try:
                msg = _decoder.decode(raw)
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                log.warning('kraken private ws: bad frame ignored (%s): %.300r', err, raw)
                continue
            if msg.req_id is not None and msg.req_id in self._waiting:
                slot = self._waiting[msg.req_id]
                slot[1] = msg
                slot[0].set()
            elif msg.channel == 'executions':
                try:
                    if msg.type == 'update':
                        for ev in _events(msg):
                            await self.on_event(ev)
                    elif msg.type == 'snapshot':
                        await self.on_snapshot(_events(msg), False)
                except (ValueError, TypeError, KeyError, msgspec.DecodeError):
                    # never die on one bad event: it is logged and dropped
                    log.exception('kraken: executions frame not applied: %.300r', raw)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the connection up until cancelled; `started()` once the
        first snapshot was handled. A first connection that fails raises."""
        async def once() -> None:
            try:
                await self._connect_once(task_status)
            except (AuthError, NoKeys):
                raise
            except (KrakenError, OSError, HandshakeError, ConnectionClosed,
                    trio.TooSlowError, msgspec.DecodeError) as err:
                if self._first:
                    raise KrakenError(f'cannot open the Kraken private websocket: '
                                      f'{type(err).__name__}: {err}') from None
                raise ConnectionError(str(err)) from None

        await reconnecting(once, 'kraken private ws', backoff=Backoff(first=0.1, cap=5.0),
                           retry_on=(ConnectionError, OSError))


__all__ = ['ConnectionLost', 'PrivateWs']
