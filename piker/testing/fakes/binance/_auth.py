"""API keys, HMAC-SHA256 signatures and the timestamp window.

A signed request's `signature` is the hex HMAC-SHA256, keyed with the API
secret, of its *total params*: the query string exactly as sent followed by
the body exactly as sent (without the `signature` parameter itself), so a
client that signs bytes other than the ones it sends gets -1022, as it
would from Binance. The timestamp must lie within `recvWindow` ms (default
5000, at most 60000) before the server time and at most 1 s after it.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string

from . import _errors as err
from ._errors import BinanceError

ALNUM = string.ascii_letters + string.digits
DEFAULT_RECV_WINDOW = 5000
MAX_RECV_WINDOW = 60000


def new_key(n: int = 64) -> str:
    """A random key of Binance's form (64 alphanumerics)."""
    return ''.join(secrets.choice(ALNUM) for _ in range(n))


def sign(secret: str, payload: str) -> str:
    """Binance's signature of `payload` (what a client computes)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _strip_signature(raw: str) -> tuple[str, list[str]]:
    parts = raw.split('&') if raw else []
    sigs = [p.split('=', 1)[1] if '=' in p else '' for p in parts if p.startswith('signature=')]
    return '&'.join(p for p in parts if not p.startswith('signature=')), sigs


def check_key(api_key: str, header: str | None) -> None:
    if not header:
        raise err.bad_key_format()
    if not hmac.compare_digest(header.encode(), api_key.encode()):
        raise err.bad_key()


def check_signed(api_secret: str, query: str, body: str, params: dict[str, str],
                 now_ms: int) -> None:
    """Raise Binance's error if the request's timestamp or signature is bad."""
    ts_raw = params.get('timestamp')
    if not ts_raw:
        raise err.mandatory('timestamp')
    if not ts_raw.isdigit():
        raise err.bad_param('timestamp')
    window_raw = params.get('recvWindow')
    window = DEFAULT_RECV_WINDOW
    if window_raw:
        try:
            window = int(float(window_raw))
        except ValueError:
            raise err.bad_param('recvWindow') from None
        if window > MAX_RECV_WINDOW:
            raise BinanceError(-1131, 'recvWindow must be less than 60000')
    q, qs = _strip_signature(query)
    b, bs = _strip_signature(body)
    given = qs + bs
    if not given or not given[0]:
        raise err.mandatory('signature')
    expect = sign(api_secret, q + b)
    if len(given) > 1 or not hmac.compare_digest(given[0].lower().encode(), expect.encode()):
        raise err.bad_signature()
    ts = int(ts_raw)
    if ts > now_ms + 1000:
        raise err.timestamp_ahead()
    if now_ms - ts > window:
        raise err.timestamp_outside()
