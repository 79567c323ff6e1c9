"""The control API over HTTP, for a fake Kraken in another process.

Same wire as the fake Binance's (`POST /_fake/<name>` with JSON keyword
arguments, `/_fake/fault/<name>` for faults, `{"result": ...}`), so the
fake Binance's `ControlClient` drives this fake too.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._errors import KrakenError

if TYPE_CHECKING:
    from ._fake import FakeKraken

PREFIX = '/_fake'
READ = ('orders', 'trades', 'balances', 'request_log', 'info')
WRITE = ('push', 'resume', 'pause', 'step', 'deposit', 'fill', 'fill_while_away')
FAULTS = ('disconnect_streams', 'rate_limit', 'server_errors', 'delay_acks',
          'duplicate_reports', 'reject_tokens', 'state')


def _target(fake: FakeKraken, name: str) -> Any:
    if name.startswith('fault/'):
        sub = name[len('fault/'):]
        return getattr(fake.faults, sub) if sub in FAULTS else None
    return getattr(fake, name) if name in READ + WRITE else None


async def _call(request: Request) -> JSONResponse:
    fake: FakeKraken = request.app.state.fake
    name = request.path_params['name']
    fn = _target(fake, name)
    if fn is None:
        return JSONResponse({'error': f'no control {name!r}'}, status_code=404)
    if request.method == 'GET' and name not in READ and name != 'fault/state':
        return JSONResponse({'error': f'{name} changes state: POST it'}, status_code=405)
    kwargs: Any = dict(request.query_params)
    if request.method == 'POST':
        raw = await request.body()
        try:
            kwargs = json.loads(raw) if raw.strip() else {}
        except ValueError as e:
            return JSONResponse({'error': f'body is not JSON: {e}'}, status_code=400)
    if not isinstance(kwargs, dict):
        return JSONResponse({'error': 'arguments must be a JSON object'}, status_code=400)
    try:
        result = fn(**kwargs)
    except (TypeError, ValueError, KrakenError) as e:
        return JSONResponse({'error': f'{type(e).__name__}: {e}'}, status_code=400)
    return JSONResponse({'result': result})


def routes() -> list[Route]:
    return [Route(PREFIX + '/{name:path}', _call, methods=['GET', 'POST'])]
