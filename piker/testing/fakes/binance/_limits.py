"""Request weights and rate limits, Binance style.

Every REST request costs its weight against a one-minute window (reset at
each clock minute, as Binance's `REQUEST_WEIGHT` / `1 MINUTE` is), reported
in `X-MBX-USED-WEIGHT-1M` on every reply; new orders also count against
`ORDERS` windows of 10 s and a day (`X-MBX-ORDER-COUNT-10S`, `-1D`).
Over the weight limit a request gets 429 with `Retry-After` (seconds to
the window's end); a client that keeps sending while told to wait is
banned: after `ban_after` such requests every request gets 418 with
`Retry-After` for `ban_seconds`. `force(n)` makes the next n requests
429 regardless of weight (a fault), without counting towards a ban.
"""
from __future__ import annotations

import math

from ._errors import BinanceError

WEIGHT_LIMIT = 6000
ORDERS_10S = 50
ORDERS_1D = 160_000


class Limiter:
    def __init__(self, weight_limit: int = WEIGHT_LIMIT, orders_10s: int = ORDERS_10S,
                 orders_1d: int = ORDERS_1D, ban_after: int = 3, ban_seconds: float = 120.0) -> None:
        self.weight_limit = weight_limit
        self.orders_10s = orders_10s
        self.orders_1d = orders_1d
        self.ban_after = ban_after
        self.ban_seconds = ban_seconds
        self.used = 0
        self._window = -1
        self._o10 = [-1, 0]
        self._o1d = [-1, 0]
        self.limited_until = 0.0
        self.banned_until = 0.0
        self.violations = 0
        self.forced = 0
        self.forced_retry_after = 1

    def headers(self) -> dict[str, str]:
        return {'X-MBX-USED-WEIGHT-1M': str(self.used)}

    def _roll(self, now: float) -> None:
        window = int(now // 60)
        if window != self._window:
            self._window = window
            self.used = 0

    def charge(self, weight: int, now: float) -> dict[str, str]:
        """Charge one request; returns the reply headers or raises 429/418."""
        self._roll(now)
        if self.banned_until > now:
            until = int(self.banned_until * 1000)
            raise BinanceError(
                -1003, f'Way too many requests; IP(127.0.0.1) banned until {until}. '
                       'Please use WebSocket Streams for live updates to avoid bans.',
                status=418, headers={**self.headers(),
                                     'Retry-After': str(math.ceil(self.banned_until - now))})
        if self.forced > 0:
            self.forced -= 1
            raise self._too_many(str(self.forced_retry_after))
        self.used += weight
        if self.limited_until > now:
            self.violations += 1
            if self.violations >= self.ban_after:
                self.banned_until = now + self.ban_seconds
                self.limited_until = 0.0
                self.violations = 0
                return self.charge(0, now)
            raise self._too_many(str(math.ceil(self.limited_until - now)))
        if self.used > self.weight_limit:
            self.limited_until = (self._window + 1) * 60.0
            self.violations = 0
            raise self._too_many(str(max(1, math.ceil(self.limited_until - now))))
        return self.headers()

    def _too_many(self, retry_after: str) -> BinanceError:
        return BinanceError(
            -1003, f'Too many requests; current limit of IP(127.0.0.1) request weight is '
                   f'{self.weight_limit} per 1 MINUTE. Please use WebSocket Streams for live '
                   'updates to avoid polling the API.',
            status=429, headers={**self.headers(), 'Retry-After': retry_after})

    def count_order(self, now: float) -> dict[str, str]:
        """Count one new order; returns its headers or raises -1015 (429)."""
        for win, span, limit, name in ((self._o10, 10, self.orders_10s, '10 SECOND'),
                                       (self._o1d, 86400, self.orders_1d, '1 DAY')):
            idx = int(now // span)
            if win[0] != idx:
                win[0], win[1] = idx, 0
            win[1] += 1
            if win[1] > limit:
                raise BinanceError(
                    -1015, f'Too many new orders; current limit is {limit} orders per {name}.',
                    status=429, headers={**self.order_headers(),
                                         'Retry-After': str(math.ceil((idx + 1) * span - now))})
        return self.order_headers()

    def order_headers(self) -> dict[str, str]:
        return {'X-MBX-ORDER-COUNT-10S': str(self._o10[1]), 'X-MBX-ORDER-COUNT-1D': str(self._o1d[1])}
