"""Kraken's REST authentication and counters, checked as Kraken does.

- `API-Key` must be the account's key (`EAPI:Invalid key`).
- `API-Sign` = base64(HMAC-SHA512(base64decode(secret), uri_path +
  SHA256(nonce + postdata))) (`EAPI:Invalid signature`).
- `nonce` must grow with every request of a key (`EAPI:Invalid nonce`).
- The API counter: each private call adds its cost (1; history calls
  2), the counter decays by `decay` per second, and a call that would
  pass `limit` is refused with `EAPI:Rate limit exceeded` (Kraken's
  starter tier: 15, 0.33/s).
- The trading counter per pair (`TradeCounter`): an order adds 1, an
  amend or cancel adds more the younger the order is (Kraken's penalty
  table); over `limit` the request is refused with
  `EOrder:Rate limit exceeded` (starter tier: 60, 1/s).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from ._errors import KrakenError


def new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode()


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(42)).decode()


def sign(secret: str, uri_path: str, nonce: str, postdata: str) -> str:
    """Kraken's `API-Sign` of one request."""
    digest = hashlib.sha256((nonce + postdata).encode()).digest()
    mac = hmac.new(base64.b64decode(secret), uri_path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class ApiCounter:
    """Kraken's per-key REST call counter (see module docstring)."""

    def __init__(self, limit: float = 15.0, decay: float = 0.33) -> None:
        self.limit = limit
        self.decay = decay
        self.value = 0.0
        self._at = 0.0
        self.forced = 0  # fault: refuse the next n calls

    def charge(self, cost: float, now: float) -> None:
        self.value = max(0.0, self.value - (now - self._at) * self.decay)
        self._at = now
        if self.forced > 0:
            self.forced -= 1
            raise KrakenError('EAPI:Rate limit exceeded')
        if self.value + cost > self.limit:
            raise KrakenError('EAPI:Rate limit exceeded')
        self.value += cost


# seconds of order age -> extra counter points (Kraken's penalty tables)
AMEND_PENALTY = ((5, 3), (10, 2), (15, 1))
CANCEL_PENALTY = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))


class TradeCounter:
    """Kraken's per-pair trading rate counter (see module docstring)."""

    def __init__(self, limit: float = 60.0, decay: float = 1.0) -> None:
        self.limit = limit
        self.decay = decay
        self.values: dict[str, float] = {}
        self._at: dict[str, float] = {}

    def _now_value(self, pair: str, now: float) -> float:
        v = self.values.get(pair, 0.0) - (now - self._at.get(pair, now)) * self.decay
        return max(0.0, v)

    def charge(self, pair: str, kind: str, age: float, now: float) -> None:
        cost = 1.0 if kind == 'add' else 0.0
        table = AMEND_PENALTY if kind == 'amend' else CANCEL_PENALTY if kind == 'cancel' else ()
        for below, points in table:
            if age < below:
                cost += points
                break
        value = self._now_value(pair, now)
        self._at[pair] = now
        if value + cost > self.limit:
            self.values[pair] = value
            raise KrakenError('EOrder:Rate limit exceeded')
        self.values[pair] = value + cost

    def value(self, pair: str, now: float) -> float:
        return self._now_value(pair, now)


class Auth:
    """One account's key, secret and nonce (see module docstring)."""

    def __init__(self) -> None:
        self.api_key = new_key()
        self.api_secret = new_secret()
        self.last_nonce = 0

    def check(self, uri_path: str, key: str | None, signature: str | None,
              body: str, nonce: str | None) -> None:
        if not key or not hmac.compare_digest(key, self.api_key):
            raise KrakenError('EAPI:Invalid key')
        if not nonce or not nonce.isdigit():
            raise KrakenError('EAPI:Invalid nonce')
        want = sign(self.api_secret, uri_path, nonce, body)
        if not signature or not hmac.compare_digest(signature, want):
            raise KrakenError('EAPI:Invalid signature')
        if int(nonce) <= self.last_nonce:
            raise KrakenError('EAPI:Invalid nonce')
        self.last_nonce = int(nonce)
