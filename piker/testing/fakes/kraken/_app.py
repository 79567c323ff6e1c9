"""The fake's HTTP and websocket surface (a Starlette app).

REST: every reply is Kraken's envelope `{"error": [...], "result": {...}}`
(HTTP 200, 503 for an injected server fault). Private endpoints are
POSTs with a form body carrying `nonce`, checked as `_auth` describes,
and charge the API counter. Websockets: `/v2` is the public endpoint
(`ticker`, `trade`), `/auth/v2` the private one (`executions`,
`add_order`, `amend_order`, `cancel_order`); both answer `ping` and send
`status` on connect and `heartbeat`s once subscribed. `/_fake/` is the
control API (`_control`).
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .._base import texts
from ..binance._streams import Conn
from ._errors import KrakenError

if TYPE_CHECKING:
    from ._fake import FakeKraken


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(',', ':')), status_code=status,
                    media_type='application/json')


def endpoint(fn: Any, private: bool, cost: int) -> Any:
    async def handler(request: Request) -> Response:
        fake: FakeKraken = request.app.state.fake
        body = (await request.body()).decode('utf-8', 'replace')
        params: dict[str, str] = dict(parse_qsl(request.url.query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        errors: list[str] = []
        try:
            fake.faults.before_request()
            if private:
                if request.method != 'POST':
                    raise KrakenError('EGeneral:Invalid arguments')
                fake.auth.check(request.url.path, request.headers.get('api-key'),
                                request.headers.get('api-sign'), body, params.get('nonce'))
                fake.api_counter.charge(cost, fake.clock())
            return _json({'error': [], 'result': fn(fake, params)})
        except KrakenError as e:
            errors = [e.text]
            return _json({'error': errors}, e.status)
        finally:
            fake.log_request(request.method, request.url.path, params, errors)

    return handler


def _stamp() -> str:
    from ._engine import rfc3339
    return rfc3339(time.time())


def _reply(method: str, req_id: Any, result: Any = None, error: str | None = None,
           **extra: Any) -> str:
    msg: dict[str, Any] = {'method': method}
    if error is None:
        msg['result'] = result
        msg['success'] = True
    else:
        msg['error'] = error
        msg['success'] = False
    msg.update(extra)
    msg['time_in'] = msg['time_out'] = _stamp()
    if req_id is not None:
        msg['req_id'] = req_id
    return json.dumps(msg, separators=(',', ':'))


async def _ws(websocket: WebSocket, private: bool) -> None:
    fake: FakeKraken = websocket.app.state.fake
    conn = Conn(False, None)
    fake.hub.add(conn)  # public until an executions subscription makes it 'user'
    try:
        await websocket.accept()
        conn.put(json.dumps({'channel': 'status', 'type': 'update', 'data': [{
            'version': '2.0.9', 'system': 'online', 'api_version': 'v2',
            'connection_id': id(conn) & 0xFFFFFFFF}]}))
        async with trio.open_nursery() as n:
            n.start_soon(_read, websocket, conn, fake, private, n)
            async for kind, obj in conn.recv:
                if kind == 'text':
                    await websocket.send_text(obj)  # type: ignore[arg-type]
                else:
                    code, reason = obj  # type: ignore[misc]
                    await websocket.close(code=code, reason=reason)
                    break
            else:
                await websocket.close(code=1008, reason='too slow')
            n.cancel_scope.cancel()
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass
    finally:
        fake.hub.remove(conn)


async def _read(websocket: WebSocket, conn: Conn, fake: FakeKraken, private: bool,
                n: trio.Nursery) -> None:
    try:
        async for text in texts(websocket):
            await _handle(fake, conn, text, private, n)
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass
    finally:
        conn.closed = True
        n.cancel_scope.cancel()


async def _handle(fake: FakeKraken, conn: Conn, text: str, private: bool,
                  n: trio.Nursery) -> None:
    try:
        msg = json.loads(text)
    except ValueError:
        conn.put(_reply('', None, error='EGeneral:Invalid arguments'))
        return
    if not isinstance(msg, dict):
        conn.put(_reply('', None, error='EGeneral:Invalid arguments'))
        return
    method, req_id = msg.get('method'), msg.get('req_id')
    params = msg.get('params') or {}
    if not isinstance(method, str) or not isinstance(params, dict):
        conn.put(_reply(str(method), req_id, error='EGeneral:Invalid arguments'))
        return
    if method == 'ping':
        conn.put(json.dumps({'method': 'pong', 'req_id': req_id, 'time_in': _stamp(),
                             'time_out': _stamp()}))
        return
    logged = {k: v for k, v in params.items() if k != 'token'}
    try:
        if method in ('subscribe', 'unsubscribe'):
            _subscribe(fake, conn, method, req_id, params, private)
            return
        if method not in ('add_order', 'amend_order', 'cancel_order'):
            raise KrakenError(f'EGeneral:Unknown method {method}')
        if not private:
            raise KrakenError('EGeneral:Permission denied')
        fake.check_token(params.get('token'))
        fn = getattr(fake.engine, method.split('_')[0])
        result = fn(params)
    except KrakenError as e:
        fake.log_request('WS', method, logged, [e.text])
        conn.put(_reply(method, req_id, error=e.text))
        return
    except (KeyError, TypeError):
        fake.log_request('WS', method, logged, ['EGeneral:Invalid arguments'])
        conn.put(_reply(method, req_id, error='EGeneral:Invalid arguments'))
        return
    fake.log_request('WS', method, logged, [])
    text = _reply(method, req_id, result)
    delay = fake.faults.ack_delay
    if delay > 0:
        async def later() -> None:
            await trio.sleep(delay)
            conn.put(text)
        n.start_soon(later)
    else:
        conn.put(text)


PUBLIC = ('ticker', 'trade')


def _subscribe(fake: FakeKraken, conn: Conn, method: str, req_id: Any,
               params: dict, private: bool) -> None:
    channel = params.get('channel')
    if channel == 'executions':
        if not private:
            raise KrakenError('EGeneral:Permission denied')
        fake.check_token(params.get('token'))
        if method == 'unsubscribe':
            fake.hub.user.discard(conn)
            conn.listen_key = None
            conn.put(_reply(method, req_id, {'channel': 'executions'}))
            return
        conn.put(_reply(method, req_id, {'channel': 'executions', 'maxratecount': 60,
                                         'snapshot': True}))
        data = fake.engine.snapshot(params.get('snap_orders', True) is not False,
                                    params.get('snap_trades', False) is True)
        fake.sequence += 1
        conn.put(json.dumps({'channel': 'executions', 'type': 'snapshot', 'data': data,
                             'sequence': fake.sequence}, separators=(',', ':')))
        conn.listen_key = 'executions'
        fake.hub.market.discard(conn)
        fake.hub.user.add(conn)
        return
    if channel not in PUBLIC:
        raise KrakenError(f'EGeneral:Invalid arguments:channel {channel}')
    symbols = params.get('symbol')
    if not isinstance(symbols, list) or not symbols:
        raise KrakenError('EGeneral:Invalid arguments:symbol')
    trigger = params.get('event_trigger', 'trades')
    if trigger not in ('bbo', 'trades'):
        raise KrakenError('EGeneral:Invalid arguments:event_trigger')
    snapshot = params.get('snapshot', channel == 'ticker') is not False
    for sym in symbols:
        p = fake.pairs.get(str(sym))
        if p is None:
            conn.put(_reply(method, req_id, error=f'Currency pair not supported {sym}',
                            symbol=sym))
            continue
        key = f'ticker:{trigger}:{sym}' if channel == 'ticker' else f'trade:{sym}'
        result = {'channel': channel, 'symbol': sym, 'snapshot': snapshot}
        if channel == 'ticker':
            result['event_trigger'] = trigger
        if method == 'unsubscribe':
            conn.subs.discard(key)
            conn.put(_reply(method, req_id, result))
            continue
        conn.subs.add(key)
        conn.put(_reply(method, req_id, result))
        if snapshot and channel == 'ticker':
            conn.put(json.dumps({'channel': 'ticker', 'type': 'snapshot',
                                 'data': [fake.ticker(sym)]}))
        elif snapshot:
            recent = fake.live_trades[sym][-50:]
            conn.put(json.dumps({'channel': 'trade', 'type': 'snapshot', 'data': [
                {'symbol': sym, 'side': s, 'price': float(px), 'qty': float(q),
                 'ord_type': 'limit', 'trade_id': tid, 'timestamp': _stamp()}
                for _, px, q, s, tid in recent]}))


async def _public(websocket: WebSocket) -> None:
    await _ws(websocket, private=False)


async def _private(websocket: WebSocket) -> None:
    await _ws(websocket, private=True)


def build_app(fake: FakeKraken) -> Starlette:
    from . import _control, _rest
    routes = [Route(path, endpoint(fn, private, cost), methods=['GET', 'POST'])
              for path, fn, private, cost in _rest.ROUTES]
    routes += _control.routes()
    routes += [WebSocketRoute('/v2', _public), WebSocketRoute('/auth/v2', _private)]
    app = Starlette(routes=routes)
    app.state.fake = fake
    return app
