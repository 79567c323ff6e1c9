"""The fake Kraken's control API: the fakes' shared one
(`piker.testing.fakes._control`) over these methods and faults."""
from __future__ import annotations

from starlette.routing import Route

from .._control import control_routes
from ._errors import KrakenError

READ = ('orders', 'trades', 'balances', 'request_log', 'info')
WRITE = ('push', 'resume', 'pause', 'step', 'deposit', 'fill', 'fill_while_away')
FAULTS = ('disconnect_streams', 'rate_limit', 'server_errors', 'delay_acks',
          'duplicate_reports', 'reject_tokens', 'state')


def routes() -> list[Route]:
    return control_routes(READ, WRITE, FAULTS, (KrakenError,))
