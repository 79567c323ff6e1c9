"""What Kraken does to clients, on demand (`fake.faults`); each switch is
counted or one-shot, so a test states exactly what misbehaves:

- `disconnect_streams(which)`: close websocket connections now (1001):
  `'market'` (public), `'user'` (private) or `'all'`.
- `rate_limit(n)`: the next n private REST calls get `EAPI:Rate limit exceeded`.
- `server_errors(n)`: the next n REST requests get HTTP 503 and
  `EService:Unavailable`.
- `delay_acks(seconds)`: `add_order`/`amend_order`/`cancel_order`
  responses wait this long after the order was processed, so its
  `executions` events reach the client first (0: off).
- `duplicate_reports(n)`: the next n `executions` updates are sent twice.
- `reject_tokens(n)`: the next n private subscriptions are refused
  (`ESession:Invalid session`), as with an expired token.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._base import ack_delay, count
from ._errors import KrakenError

if TYPE_CHECKING:
    from ._fake import FakeKraken


class Faults:
    def __init__(self, fake: FakeKraken) -> None:
        self._fake = fake
        self.ack_delay = 0.0
        self._errors = 0
        self.dups = 0
        self.bad_tokens = 0

    def rate_limit(self, n: int = 1) -> None:
        self._fake.api_counter.forced = count('rate_limit', n)

    def server_errors(self, n: int = 1) -> None:
        self._errors = count('server_errors', n)

    def delay_acks(self, seconds: float) -> None:
        self.ack_delay = ack_delay(seconds)

    def duplicate_reports(self, n: int = 1) -> None:
        self.dups = count('duplicate_reports', n)

    def reject_tokens(self, n: int = 1) -> None:
        self.bad_tokens = count('reject_tokens', n)

    def disconnect_streams(self, which: str = 'all') -> int:
        return self._fake.hub.disconnect(which)

    def before_request(self) -> None:
        if self._errors > 0:
            self._errors -= 1
            raise KrakenError('EService:Unavailable', status=503)

    def state(self) -> dict:
        return {'rate_limit': self._fake.api_counter.forced, 'server_errors': self._errors,
                'ack_delay': self.ack_delay, 'duplicate_reports': self.dups,
                'reject_tokens': self.bad_tokens}
