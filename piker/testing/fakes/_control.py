"""The control API over HTTP of any fake venue (venue-neutral).

`POST /_fake/<name>` with a JSON object of keyword arguments calls the
fake's same-named control method (`fake.faults.<x>` for
`/_fake/fault/<x>`) and answers `{"result": ...}`, or 400 `{"error":
...}` for bad arguments; `GET` works for the read-only ones. The fake
Binance's `ControlClient` is the matching client for every fake.
"""
from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PREFIX = '/_fake'


def control_routes(read: tuple[str, ...], write: tuple[str, ...],
                   faults: tuple[str, ...],
                   errors: tuple[type[Exception], ...] = ()) -> list[Route]:
    """The route of the control API, for `request.app.state.fake`."""

    def target(fake: Any, name: str) -> Any:
        if name.startswith('fault/'):
            sub = name[len('fault/'):]
            return getattr(fake.faults, sub) if sub in faults else None
        return getattr(fake, name) if name in read + write else None

    async def call(request: Request) -> JSONResponse:
        name = request.path_params['name']
        fn = target(request.app.state.fake, name)
        if fn is None:
            return JSONResponse({'error': f'no control {name!r}'}, status_code=404)
        if request.method == 'GET' and name not in read and name != 'fault/state':
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
        except (TypeError, ValueError, *errors) as e:
            return JSONResponse({'error': f'{type(e).__name__}: {e}'}, status_code=400)
        return JSONResponse({'result': result})

    return [Route(PREFIX + '/{name:path}', call, methods=['GET', 'POST'])]


__all__ = ['PREFIX', 'control_routes']
