"""Kraken spot REST: one `httpx.AsyncClient`, signing, nonces, the API
rate counter and Kraken's errors.

- Every reply is an envelope `{"error": [...], "result": {...}}`; a
  non-empty `error` becomes a `KrakenError` whose text is Kraken's own
  (`EOrder:Insufficient funds`), which reaches the trader as is.
- Private calls are POSTs to `/0/private/<Name>` with a form body that
  starts with `nonce` (microseconds, strictly growing per client), the
  key in `API-Key` and `API-Sign` = base64(HMAC-SHA512(base64decode(
  secret), uri_path + SHA256(nonce + postdata))). Keys are `SecretStr`s,
  unwrapped only in `_send`, so no log line, repr or traceback shows one.
- `EAPI:Invalid nonce` (a concurrent request's later nonce got in
  first) is retried with a fresh nonce a moment later (twice; a key
  shared with another program needs its own nonce window at Kraken); `EAPI:Rate limit exceeded` (Kraken's API
  counter), `EGeneral:Too many requests` (public calls), and
  `EService:Unavailable`/`Busy`/HTTP 5xx are retried with
  backoff, then raised; key and signature errors are `AuthError`s,
  never retried.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec
import trio
from pydantic import SecretStr

from ...log import get_logger
from ...service import Backoff
from .._errors import BrokerError

log = get_logger('brokers.kraken')

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_RETRIES = 4
NONCE_RETRY_WAIT = 0.1


class KrakenError(BrokerError):
    """Kraken refused a request; the text is Kraken's error string(s)."""

    def __init__(self, msg: str, errors: list[str] | None = None) -> None:
        super().__init__(msg)
        self.errors = errors or [msg]


class AuthError(KrakenError):
    """The API key, its signature or its permissions were refused."""


class RateLimited(KrakenError):
    """Still over Kraken's API counter after `MAX_RETRIES` waits."""


class NoKeys(KrakenError):
    """A private endpoint was called without keys configured."""


NO_KEYS = ('no Kraken API keys configured: set api_key/api_secret (or their _file '
           'forms, or PIKER_KRAKEN_API_KEY/PIKER_KRAKEN_API_SECRET) in brokers.toml '
           '[kraken]; without keys only market data and paper trading work')
AUTH_ERRORS = ('EAPI:Invalid key', 'EAPI:Invalid signature', 'EGeneral:Permission denied',
               'EAPI:Feature disabled', 'EAccount:Invalid permissions')
RETRY_ERRORS = ('EAPI:Rate limit exceeded', 'EGeneral:Too many requests',
                'EService:Unavailable', 'EService:Busy')


class _Envelope(msgspec.Struct):
    error: list[str] = []
    result: Any = None


_decoder = msgspec.json.Decoder(_Envelope)


def sign(secret: str, uri_path: str, nonce: str, postdata: str) -> str:
    """Kraken's `API-Sign` of one request (see module docstring)."""
    try:
        key = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise AuthError('the Kraken api_secret is not base64 (copy it exactly as '
                        'Kraken shows it)') from None
    digest = hashlib.sha256((nonce + postdata).encode()).digest()
    return base64.b64encode(hmac.new(key, uri_path.encode() + digest,
                                     hashlib.sha512).digest()).decode()


class Client:
    """A Kraken spot REST session."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | None = None,
        api_secret: SecretStr | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip('/')
        self._key = api_key
        self._secret = api_secret
        self._nonce = 0
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=TIMEOUT,
                                       transport=transport)

    def __repr__(self) -> str:  # never the keys
        return f'<kraken.Client {self.base_url} keys={"yes" if self.has_keys else "no"}>'

    @property
    def has_keys(self) -> bool:
        return self._key is not None and self._secret is not None

    async def aclose(self) -> None:
        await self._http.aclose()

    def next_nonce(self) -> str:
        self._nonce = max(self._nonce + 1, time.time_ns() // 1000)
        return str(self._nonce)

    async def request(self, path: str, params: dict[str, Any] | None = None,
                      private: bool = False) -> Any:
        """One call; the envelope's `result`, or a `KrakenError`."""
        if private and not self.has_keys:
            raise NoKeys(NO_KEYS)
        backoff = Backoff(first=1.0, cap=8.0)
        nonce_retries = 2
        for attempt in range(MAX_RETRIES + 1):
            resp = await self._send(path, dict(params or {}), private)
            errors, result = _unpack(resp)
            if not errors:
                return result
            text = '; '.join(errors)
            if any(e.startswith('EAPI:Invalid nonce') for e in errors) and nonce_retries:
                # a request with a later nonce got in first: a fresh nonce,
                # a moment later, is later than it
                nonce_retries -= 1
                await trio.sleep(NONCE_RETRY_WAIT)
                continue
            if any(e.startswith(AUTH_ERRORS) for e in errors):
                raise AuthError(f'Kraken refused the API key: {text}', errors)
            if any(e.startswith(RETRY_ERRORS) for e in errors) and attempt < MAX_RETRIES:
                wait = backoff.step()
                log.warning('kraken: %s on %s: retrying in %.1fs', text, path, wait)
                await trio.sleep(wait)
                continue
            if any(e.startswith('EAPI:Rate limit exceeded') for e in errors):
                raise RateLimited(f'Kraken rate limit exceeded: {text}', errors)
            raise KrakenError(text, errors)
        raise KrakenError(f'{path}: no answer after {MAX_RETRIES} retries')

    async def _send(self, path: str, params: dict[str, Any], private: bool) -> httpx.Response:
        try:
            if not private:
                return await self._http.get(path, params=params)
            assert self._key is not None and self._secret is not None
            nonce = self.next_nonce()
            body = urlencode([('nonce', nonce), *params.items()])
            headers = {
                'API-Key': self._key.get_secret_value(),
                'API-Sign': sign(self._secret.get_secret_value(), path, nonce, body),
                'Content-Type': 'application/x-www-form-urlencoded',
            }
            return await self._http.post(path, content=body, headers=headers)
        except httpx.HTTPError as err:
            raise KrakenError(f'{path}: {type(err).__name__}: {err}') from None

    # -- endpoints ------------------------------------------------------------

    async def asset_pairs(self) -> dict[str, Any]:
        return await self.request('/0/public/AssetPairs')

    async def ohlc(self, pair: str, interval: int, since: int | None = None) -> dict[str, Any]:
        return await self.request('/0/public/OHLC', {
            'pair': pair, 'interval': interval, **({'since': since} if since else {})})

    async def trades(self, pair: str, since_ns: int, count: int = 1000) -> dict[str, Any]:
        return await self.request('/0/public/Trades', {
            'pair': pair, 'since': since_ns, 'count': count})

    async def balance(self) -> dict[str, str]:
        return await self.request('/0/private/Balance', private=True)

    async def ws_token(self) -> str:
        data = await self.request('/0/private/GetWebSocketsToken', private=True)
        return str(data['token'])


def _unpack(resp: httpx.Response) -> tuple[list[str], Any]:
    """`(errors, result)` of one reply (a 5xx counts as `EService:Unavailable`)."""
    try:
        env = _decoder.decode(resp.content)
    except msgspec.DecodeError:
        if resp.status_code >= 500:
            return ['EService:Unavailable'], None
        return [f'EGeneral:Internal error (HTTP {resp.status_code}, not JSON)'], None
    if env.error:
        return [str(e) for e in env.error], None
    if resp.status_code >= 500:
        return ['EService:Unavailable'], None
    return [], env.result


__all__ = ['AuthError', 'Client', 'KrakenError', 'NoKeys', 'RateLimited', 'sign']
