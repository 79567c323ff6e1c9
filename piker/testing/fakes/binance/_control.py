"""The control API over HTTP, for a fake running in another process.

`POST /_fake/<name>` with a JSON object of keyword arguments calls the
same-named control method of `FakeBinance` (`fake.faults.<x>` for
`/_fake/fault/<x>`) and answers `{"result": ...}`, or 400
`{"error": "..."}` for bad arguments; `GET` works for the read-only ones.
They cost no request weight and need no API key (the fake listens on
loopback only). `ControlClient` is the matching client.
"""
from __future__ import annotations

from typing import Any

from starlette.routing import Route

from .._control import PREFIX, control_routes
from ._errors import BinanceError

READ = ('orders', 'trades', 'balances', 'request_log', 'info')
WRITE = ('push', 'resume', 'pause', 'step', 'set_gaps', 'deposit', 'fill',
         'fill_while_away', 'expire_listen_keys', 'set_weight_limit')
FAULTS = ('disconnect_streams', 'rate_limit', 'server_errors', 'delay_acks',
          'duplicate_reports', 'reorder_reports', 'state')


def routes() -> list[Route]:
    """The control API of `FakeBinance` (see `piker.testing.fakes._control`)."""
    return control_routes(READ, WRITE, FAULTS, errors=(BinanceError,))


class ControlClient:
    """Drive a fake over its control API (another process's fake).

    `ControlClient('http://127.0.0.1:P').push('BTCUSDT', bid=..., ask=...)`;
    `.fault('delay_acks', seconds=0.5)`; `.get('orders')`.
    """

    def __init__(self, rest_url: str, timeout: float = 10.0) -> None:
        import httpx
        self._http = httpx.Client(base_url=rest_url.rstrip('/') + PREFIX, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, name: str, **kwargs: Any) -> Any:
        resp = self._http.post(f'/{name}', json=kwargs)
        body = resp.json()
        if resp.status_code != 200:
            raise ValueError(body.get('error', resp.text))
        return body['result']

    def get(self, name: str, **params: Any) -> Any:
        resp = self._http.get(f'/{name}', params=params)
        body = resp.json()
        if resp.status_code != 200:
            raise ValueError(body.get('error', resp.text))
        return body['result']

    def push(self, symbol: str, **fields: float) -> dict:
        return self.call('push', symbol=symbol, **fields)

    def fault(self, name: str, **kwargs: Any) -> Any:
        return self.call(f'fault/{name}', **kwargs)
