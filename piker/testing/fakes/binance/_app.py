"""The fake's HTTP and websocket surface (a Starlette app).

REST handlers are plain functions of `(fake, params)` returning the JSON
body; `_endpoint` wraps each with what every Binance reply has: request
weight and its headers, 429/418 once over the limit, API-key and
signature checks for `USER_STREAM`/`SIGNED` endpoints, injected faults,
Binance's error bodies, and the request log. Routes under `/_fake/` are
the control API (see `_control`); they cost no weight and need no key.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .._base import texts
from . import _auth
from ._errors import BinanceError
from ._streams import STREAM_RE, Conn

if TYPE_CHECKING:
    from ._fake import FakeBinance

Handler = Callable[['FakeBinance', dict[str, str]], Any]


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(',', ':')).encode()


def _params(query: str, body: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for raw in (query, body):
        for k, v in parse_qsl(raw, keep_blank_values=True):
            if k in params:
                raise BinanceError(-1101, 'Duplicate values for a parameter detected.')
            params[k] = v
    return params


def endpoint(fn: Handler, weight: int | Callable[[dict[str, str]], int],
             security: str = 'NONE', kind: str = '') -> Callable:
    """An ASGI handler for REST function `fn` (see module docstring).

    `security`: 'NONE', 'USER_STREAM' (API key only) or 'SIGNED';
    `kind`: 'order' (a new order: counts against ORDERS, its reply may be
    delayed), 'cancel' (its reply may be delayed) or ''.
    """

    async def handler(request: Request) -> Response:
        fake: FakeBinance = request.app.state.fake
        query = request.url.query
        body = (await request.body()).decode('utf-8', 'replace')
        headers = fake.limiter.headers()
        params: dict[str, str] = {}
        status = 200
        try:
            params = _params(query, body)
            fake.faults.before_request(request.url.path)
            now = fake.clock()
            w = weight(params) if callable(weight) else weight
            headers = fake.limiter.charge(w, now, request.url.path)
            if security != 'NONE':
                _auth.check_key(fake.api_key, request.headers.get('x-mbx-apikey'))
            if security == 'SIGNED':
                _auth.check_signed(fake.api_secret, query, body, params, fake.now_ms())
            if kind == 'order':
                headers.update(fake.limiter.count_order(now))
            result = fn(fake, params)
            if kind and fake.faults.ack_delay > 0:
                await trio.sleep(fake.faults.ack_delay)
            return _Json(result, headers=headers)
        except BinanceError as e:
            status = e.status
            return _Json(e.body(), status_code=e.status, headers={**headers, **e.headers})
        finally:
            fake.log_request(request.method, request.url.path, params, status)

    return handler


async def _ws(websocket: WebSocket) -> None:
    """`/ws/<stream>`, `/ws/<listenKey>`, `/ws`, `/stream?streams=a/b`."""
    fake: FakeBinance = websocket.app.state.fake
    path = websocket.url.path.rstrip('/')
    listen_key = None
    if path.startswith('/stream'):
        combined = True
        names = [n for n in websocket.query_params.get('streams', '').split('/') if n]
    else:
        combined = False
        name = path[len('/ws'):].lstrip('/')
        if name and fake.user_stream.is_live(name):
            listen_key, names = name, []
        else:
            names = [n for n in name.split('/') if n]
    if any(not STREAM_RE.match(n) for n in names):
        await websocket.close(code=1008)
        return
    conn = Conn(combined, listen_key)
    conn.subs.update(names)
    # subscribed before the handshake completes: a client that sees the
    # socket open misses no frame published after that
    fake.hub.add(conn)
    try:
        await websocket.accept()
        async with trio.open_nursery() as n:
            n.start_soon(_read, websocket, conn, fake, n.cancel_scope)
            async for kind, obj in conn.recv:
                if kind == 'text':
                    await websocket.send_text(obj)  # type: ignore[arg-type]
                else:
                    code, reason = obj  # type: ignore[misc]
                    await websocket.close(code=code, reason=reason)
                    break
            else:  # outbox closed: a too slow consumer
                await websocket.close(code=1008, reason='too slow')
            n.cancel_scope.cancel()
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass  # the client went away while we were sending
    finally:
        fake.hub.remove(conn)


async def _read(websocket: WebSocket, conn: Conn, fake: FakeBinance, scope: trio.CancelScope) -> None:
    try:
        async for text in texts(websocket):
            if conn.listen_key is None:
                fake.hub.handle_method(conn, text)
    except (WebSocketDisconnect, OSError, RuntimeError):
        pass
    finally:
        conn.closed = True
        scope.cancel()


def build_app(fake: FakeBinance) -> Starlette:
    from . import _control, _rest
    routes = [
        Route(path, endpoint(fn, weight, security, kind), methods=[method])
        for method, path, fn, weight, security, kind in _rest.ROUTES
    ]
    routes += _control.routes()
    routes += [
        WebSocketRoute('/ws', _ws),
        WebSocketRoute('/ws/{name:path}', _ws),
        WebSocketRoute('/stream', _ws),
    ]
    app = Starlette(routes=routes)
    app.state.fake = fake
    app.state.started = time.time()
    return app
