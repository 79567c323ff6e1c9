"""Binance spot REST: one `httpx.AsyncClient` (it runs on trio via anyio),
request signing, request weight and rate limits, and Binance's errors.

- Signed endpoints (`signed=True`): `timestamp` and `recvWindow` are added
  and the query string is signed with HMAC-SHA256 of the API secret
  (`signature`, last parameter); the key travels in `X-MBX-APIKEY`.
  Keys are `SecretStr`s and are unwrapped only here, so they never reach
  a log line, a repr or a traceback.
- Rate limits: `X-MBX-USED-WEIGHT-1M` is tracked (`used_weight`); a 429 is
  retried after its `Retry-After` (a few times, then raised); a 418 means
  the IP is banned: nothing is retried and `IPBanned` says until when.
- Errors: Binance answers `{"code": -2010, "msg": "..."}`; that becomes a
  `BinanceError` whose text is Binance's own message, which the trades
  dialogue forwards as a `BrokerdError` reason, so the trader sees why.
"""
from __future__ import annotations

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
from .._errors import BrokerError

log = get_logger('brokers.binance')

# retries of a 429 before giving up (each waits Retry-After)
MAX_429_RETRIES = 3
# Retry-After missing or silly: wait this long
DEFAULT_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 60.0
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_WEIGHT_LIMIT = 6000
# warn once the minute's used weight passes this fraction of the limit
WEIGHT_WARN = 0.8


class BinanceError(BrokerError):
    """Binance refused a request: `code` is Binance's, the text its `msg`."""

    def __init__(
        self, msg: str, code: int | None = None, status: int = 0,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(msg)
        self.code = code
        self.status = status
        self.data = data or {}  # e.g. cancelReplace's per-leg results


class RateLimited(BinanceError):
    """429: still rate limited after `MAX_429_RETRIES` waits."""


class IPBanned(BinanceError):
    """418: Binance banned this IP for hammering it after 429s."""


class AuthError(BinanceError):
    """The API key or signature was refused (bad key, secret or clock)."""


class NoKeys(BinanceError):
    """A signed endpoint was called without keys configured."""


# Binance codes that mean "your credentials", not "your order"
_AUTH_CODES = {-1022, -2014, -2015}


class _ErrorBody(msgspec.Struct):
    code: int = 0
    msg: str = ''
    data: dict[str, Any] | None = None


_err_decoder = msgspec.json.Decoder(_ErrorBody)


def sign(secret: str, payload: str) -> str:
    """Binance's HMAC-SHA256 signature of a query string (hex)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


class Client:
    """A Binance spot REST session (`async with Client(...) as c`)."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | None = None,
        api_secret: SecretStr | None = None,
        *,
        recv_window_ms: int = 5000,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip('/')
        self._key = api_key
        self._secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.used_weight: int = 0
        self.weight_limit: int = DEFAULT_WEIGHT_LIMIT  # Binance's REQUEST_WEIGHT / minute
        self.order_count: dict[str, int] = {}
        self.banned_until: float = 0.0
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=TIMEOUT, transport=transport,
        )

    def __repr__(self) -> str:  # never the keys
        return f'<binance.Client {self.base_url} keys={"yes" if self.has_keys else "no"}>'

    @property
    def has_keys(self) -> bool:
        return self._key is not None and self._secret is not None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- requests -------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        signed: bool = False,
        keyed: bool = False,
        raw: bool = False,
    ) -> Any:
        """One request; returns the decoded JSON or raises `BinanceError`.

        `keyed`: send the API key header (user data stream endpoints);
        `signed`: also sign (implies keyed); `raw`: return the body bytes.
        """
        if self.banned_until > time.time():
            raise IPBanned(self._ban_text(), status=418)
        for attempt in range(MAX_429_RETRIES + 1):
            resp = await self._send(method, path, dict(params or {}), signed, keyed or signed)
            self._track(resp)
            if resp.status_code == 429 and attempt < MAX_429_RETRIES:
                wait = _retry_after(resp)
                log.warning('binance: rate limited (429) on %s %s, used weight %d: '
                            'retrying in %.1fs', method, path, self.used_weight, wait)
                await trio.sleep(wait)
                continue
            break
        if raw and resp.status_code < 300:
            return resp.content
        return self._result(resp)

    async def _send(
        self, method: str, path: str, params: dict[str, Any], signed: bool, keyed: bool,
    ) -> httpx.Response:
        headers = {}
        if keyed:
            if not self.has_keys:
                raise NoKeys(
                    'no Binance API keys configured: set api_key/api_secret (or their '
                    '_file forms, or PIKER_BINANCE_API_KEY/PIKER_BINANCE_API_SECRET) '
                    'in brokers.toml [binance]; without keys only market data and '
                    'paper trading work'
                )
            assert self._key is not None
            headers['X-MBX-APIKEY'] = self._key.get_secret_value()
        query = urlencode([(k, _fmt(v)) for k, v in params.items() if v is not None])
        if signed:
            assert self._secret is not None
            stamp = f'timestamp={int(time.time() * 1000)}&recvWindow={self.recv_window_ms}'
            query = f'{query}&{stamp}' if query else stamp
            query += '&signature=' + sign(self._secret.get_secret_value(), query)
        url = f'{path}?{query}' if query else path
        try:
            return await self._http.request(method, url, headers=headers)
        except httpx.HTTPError as err:
            # the URL has the signature in it, never the key or secret
            raise BinanceError(f'{method} {path}: {type(err).__name__}: {err}') from None

    def _track(self, resp: httpx.Response) -> None:
        for name, value in resp.headers.items():
            lname = name.lower()
            if lname == 'x-mbx-used-weight-1m' and value.isdigit():
                used = int(value)
                warn_at = WEIGHT_WARN * self.weight_limit
                if used >= warn_at > self.used_weight:
                    log.warning('binance: %d of %d request weight used this minute: '
                                'requests will be refused (429) beyond', used,
                                self.weight_limit)
                self.used_weight = used
            elif lname.startswith('x-mbx-order-count-') and value.isdigit():
                self.order_count[lname.removeprefix('x-mbx-order-count-')] = int(value)

    def _ban_text(self) -> str:
        until = time.strftime('%H:%M:%S UTC', time.gmtime(self.banned_until))
        return (f'Binance banned this IP for too many requests (HTTP 418) until {until}: '
                'piker stops calling it until then')

    def _result(self, resp: httpx.Response) -> Any:
        status = resp.status_code
        if status < 300:
            try:
                return resp.json()
            except ValueError:
                raise BinanceError(
                    f'Binance sent a non-JSON answer (HTTP {status})', status=status,
                ) from None
        try:
            body = _err_decoder.decode(resp.content)
            msg, code, data = body.msg, body.code, body.data
        except msgspec.DecodeError:
            msg, code, data = resp.text[:200].strip(), None, None
        if status == 418:
            self.banned_until = time.time() + _retry_after(resp, cap=None)
            raise IPBanned(self._ban_text(), code=code, status=status)
        if status == 429:
            raise RateLimited(
                f'Binance rate limit exceeded (HTTP 429, used weight {self.used_weight}'
                f'/min): {msg}', code=code, status=status)
        text = msg or f'HTTP {status}'
        if code in _AUTH_CODES or status in (401,):
            raise AuthError(f'Binance refused the API key or signature: {text} '
                            f'(code {code})', code=code, status=status)
        raise BinanceError(text, code=code, status=status, data=data)

    # -- endpoints ------------------------------------------------------------

    async def exchange_info(self) -> bytes:
        """`GET /api/v3/exchangeInfo` as raw JSON (parsed by `_markets`)."""
        return await self.request('GET', '/api/v3/exchangeInfo', raw=True)

    async def klines(
        self, symbol: str, interval: str, start_ms: int | None, limit: int = 1000,
        end_ms: int | None = None,
    ) -> list[list[Any]]:
        """Klines from `start_ms` on; `start_ms=None`: the latest `limit`."""
        return await self.request('GET', '/api/v3/klines', {
            'symbol': symbol, 'interval': interval, 'startTime': start_ms,
            'endTime': end_ms, 'limit': limit,
        })

    async def book_ticker(self, symbol: str) -> dict[str, Any]:
        return await self.request('GET', '/api/v3/ticker/bookTicker', {'symbol': symbol})

    async def account(self) -> dict[str, Any]:
        return await self.request('GET', '/api/v3/account', signed=True)

    async def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return await self.request('GET', '/api/v3/openOrders', {'symbol': symbol}, signed=True)

    async def query_order(
        self, symbol: str, order_id: int | None = None, client_id: str | None = None,
    ) -> dict[str, Any]:
        return await self.request('GET', '/api/v3/order', {
            'symbol': symbol, 'orderId': order_id, 'origClientOrderId': client_id,
        }, signed=True)

    async def my_trades(self, symbol: str, start_ms: int) -> list[dict[str, Any]]:
        return await self.request('GET', '/api/v3/myTrades', {
            'symbol': symbol, 'startTime': start_ms, 'limit': 1000,
        }, signed=True)

    async def new_order(self, **params: Any) -> dict[str, Any]:
        return await self.request('POST', '/api/v3/order', params, signed=True)

    async def cancel_order(self, symbol: str, order_id: int) -> dict[str, Any]:
        return await self.request('DELETE', '/api/v3/order', {
            'symbol': symbol, 'orderId': order_id,
        }, signed=True)

    async def cancel_replace(self, **params: Any) -> dict[str, Any]:
        return await self.request('POST', '/api/v3/order/cancelReplace', params, signed=True)

    async def new_listen_key(self) -> str:
        data = await self.request('POST', '/api/v3/userDataStream', keyed=True)
        return str(data['listenKey'])

    async def keepalive_listen_key(self, key: str) -> None:
        await self.request('PUT', '/api/v3/userDataStream', {'listenKey': key}, keyed=True)

    async def close_listen_key(self, key: str) -> None:
        await self.request('DELETE', '/api/v3/userDataStream', {'listenKey': key}, keyed=True)


def _fmt(value: Any) -> str:
    """A parameter as Binance wants it: no float exponents, bools lower."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        text = f'{value:.12f}'.rstrip('0').rstrip('.')
        return text or '0'
    return str(value)


def _retry_after(resp: httpx.Response, cap: float | None = MAX_RETRY_AFTER) -> float:
    raw = resp.headers.get('Retry-After', '')
    try:
        wait = float(raw)
    except ValueError:
        wait = DEFAULT_RETRY_AFTER
    wait = max(wait, 0.0)
    return min(wait, cap) if cap is not None else wait


__all__ = [
    'AuthError', 'BinanceError', 'Client', 'IPBanned', 'NoKeys', 'RateLimited', 'sign',
]
