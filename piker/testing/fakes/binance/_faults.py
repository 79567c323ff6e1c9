"""What real venues do to clients, on demand (`fake.faults`).

Each switch is one-shot or counted, so a test states exactly which
replies or frames misbehave:

- `disconnect_streams(which)`: close websocket connections now (code 1001,
  'going away'): `'market'`, `'user'` or `'all'`.
- `rate_limit(n, retry_after)`: the next n REST requests get 429 with
  `Retry-After` (see `_limits` for the real weight limit and the 418 ban).
- `server_errors(n)`: the next n REST requests get 503 / -1001.
- `delay_acks(seconds)`: order replies (new, cancel, cancel-replace) wait
  this long after the order was processed, so its `executionReport` can
  reach the user stream before the REST reply (0: off).
- `duplicate_reports(n)`: the next n `executionReport`s are sent twice.
- `reorder_reports(n)`: the next n pairs of `executionReport`s go out in
  swapped order (the first of a pair is held back until the second).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .._base import ack_delay, count
from . import _errors as err

if TYPE_CHECKING:
    from ._fake import FakeBinance


class Faults:
    def __init__(self, fake: FakeBinance) -> None:
        self._fake = fake
        self.ack_delay = 0.0
        self._errors = 0
        self._errors_path: str | None = None
        self._dups = 0
        self._reorders = 0
        self._held: dict | None = None

    # -- REST --------------------------------------------------------------

    def rate_limit(self, n: int = 1, retry_after: int = 1, path: str | None = None) -> None:
        """The next `n` REST requests (to `path` only, if given) get a 429."""
        lim = self._fake.limiter
        lim.forced = count('rate_limit', n)
        lim.forced_retry_after = count('retry_after', retry_after)
        lim.forced_path = path

    def server_errors(self, n: int = 1, path: str | None = None) -> None:
        """The next `n` REST requests (to `path` only, if given) get a 503."""
        self._errors = count('server_errors', n)
        self._errors_path = path

    def delay_acks(self, seconds: float) -> None:
        self.ack_delay = ack_delay(seconds)

    def before_request(self, path: str = '') -> None:
        if self._errors > 0 and self._errors_path in (None, path):
            self._errors -= 1
            raise err.internal_error()

    # -- streams -----------------------------------------------------------

    def disconnect_streams(self, which: str = 'all') -> int:
        """Close websocket connections now; returns how many were closed."""
        return self._fake.hub.disconnect(which)

    def duplicate_reports(self, n: int = 1) -> None:
        self._dups = count('duplicate_reports', n)

    def reorder_reports(self, n: int = 1) -> None:
        self._reorders = count('reorder_reports', n)

    def route_report(self, event: dict, send: Callable[[dict], None]) -> None:
        """Send one `executionReport` through the armed faults."""
        if self._held is not None:
            held, self._held = self._held, None
            self._send(event, send)
            self._send(held, send)
            return
        if self._reorders > 0:
            self._reorders -= 1
            self._held = event
            return
        self._send(event, send)

    def flush(self, send: Callable[[dict], None]) -> None:
        """Send a report held back for reordering (nothing came after it)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._send(held, send)

    def _send(self, event: dict, send: Callable[[dict], None]) -> None:
        send(event)
        if self._dups > 0:
            self._dups -= 1
            send(event)

    def state(self) -> dict:
        lim = self._fake.limiter
        return {'rate_limit': lim.forced, 'server_errors': self._errors,
                'ack_delay': self.ack_delay, 'duplicate_reports': self._dups,
                'reorder_reports': self._reorders, 'holding_report': self._held is not None}
