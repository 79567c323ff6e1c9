"""`FakeBinance`: the fake venue's state and its Python control API.

One object owns every fact of a run: the markets (book, walk, klines),
the account (balances, orders, trades: `_engine`), the websocket hub, the
listen keys, the rate limiter and the fault switches. REST handlers, the
`/_fake/` control routes and Python callers all act on it inside one trio
loop, so every control call is synchronous and takes effect at once: when
`fake.push(...)` returns, its frames are in every client's outbox.

`open_fake_binance()` serves it on loopback in the caller's trio loop;
`FakeBinanceThread` in a thread of its own (`_thread`).
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager as acm
from decimal import Decimal
from typing import Any

import trio

from .._base import FakeVenue
from .._harness import serve_asgi
from . import _auth
from ._engine import Engine
from ._errors import invalid_symbol
from ._faults import Faults
from ._limits import Limiter
from ._market import SymbolMarket
from ._streams import Hub
from ._symbols import SYMBOLS
from ._userstream import DEFAULT_TTL, UserStreams

REQUEST_LOG = 10_000


class FakeBinance(FakeVenue):
    """A fake Binance spot venue (see module docstring and docs/fake_binance.md)."""

    BROKER = 'binance'

    def __init__(
        self,
        seed: int = 0,
        quote_rate: float = 10.0,
        clock: Callable[[], float] = time.time,
        symbols: list[str] | None = None,
        balances: dict[str, str | float | Decimal] | None = None,
        commission: float | str = '0.001',
        commission_asset: str = 'quote',
        weight_limit: int = 6000,
        orders_10s: int = 50,
        ban_after: int = 3,
        ban_seconds: float = 120.0,
        listen_key_ttl: float = DEFAULT_TTL,
        gaps: dict[str, list[tuple[int, int]]] | None = None,
        ping_interval: float | None = 20.0,
    ) -> None:
        if quote_rate < 0:
            raise ValueError(f'quote_rate must be >= 0, got {quote_rate!r}')
        self.seed = seed
        self.quote_rate = float(quote_rate)
        self.clock = clock
        self.ping_interval = ping_interval
        self.api_key = _auth.new_key()
        self.api_secret = _auth.new_key()
        self.host = '127.0.0.1'
        self.port = 0
        t0 = int(clock())
        names = [s.upper() for s in symbols] if symbols else list(SYMBOLS)
        unknown = [s for s in names if s not in SYMBOLS]
        if unknown:
            raise ValueError(f'no fake market {unknown}; markets: {", ".join(SYMBOLS)}')
        self.markets: dict[str, SymbolMarket] = {
            s: SymbolMarket(SYMBOLS[s], seed, t0) for s in names}
        for sym, spans in (gaps or {}).items():
            self.market(sym).klines.set_gaps(spans)
        self.hub = Hub()
        self.limiter = Limiter(weight_limit=weight_limit, orders_10s=orders_10s,
                               ban_after=ban_after, ban_seconds=ban_seconds)
        self.faults = Faults(self)
        self.user_stream = UserStreams(self.hub, clock, listen_key_ttl)
        self.requests: deque[dict] = deque(maxlen=REQUEST_LOG)
        self.engine = Engine(self, balances, Decimal(str(commission)), commission_asset)

    def __repr__(self) -> str:  # never the secret
        return f'<FakeBinance {self.rest_url} seed={self.seed}>'

    # -- addresses ---------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f'ws://{self.host}:{self.port}'

    # -- time, lookups, log ------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def market(self, symbol: str) -> SymbolMarket:
        """The market of `symbol` (any case) or Binance's -1121."""
        mkt = self.markets.get(str(symbol).upper())
        if mkt is None:
            raise invalid_symbol()
        return mkt

    def log_request(self, method: str, path: str, params: dict[str, str], status: int) -> None:
        self.requests.append({
            'time_ms': self.now_ms(), 'method': method, 'path': path, 'status': status,
            'params': {k: v for k, v in params.items() if k != 'signature'},
        })

    # -- market control ----------------------------------------------------

    def push(self, symbol: str, bid: float | None = None, ask: float | None = None,
             bsize: float | None = None, asize: float | None = None,
             last: float | None = None, size: float | None = None) -> dict:
        """Emit exactly this book and/or trade for `symbol` and pause its walk.

        A book change is one bookTicker frame; `last` prints one trade of
        `size` (default the market's lot), a buy if at or above the ask.
        Resting orders the new book or trade crosses fill at once. Returns
        `{'book': <bookTicker payload or None>, 'trades': [<trade payloads>]}`.
        """
        mkt = self.market(symbol)
        book, trades = mkt.push(bid=bid, ask=ask, bsize=bsize, asize=asize, last=last, size=size)
        return self._emit(mkt, book, trades)

    def resume(self, symbol: str | None = None) -> None:
        """Restart the walk of `symbol` (default: every market)."""
        for mkt in ([self.market(symbol)] if symbol else self.markets.values()):
            mkt.resume()

    def pause(self, symbol: str | None = None) -> None:
        """Stop the walk of `symbol` (default: every market)."""
        for mkt in ([self.market(symbol)] if symbol else self.markets.values()):
            mkt.paused = True

    def step(self, symbol: str | None = None, n: int = 1) -> list[dict]:
        """Advance the walk of `symbol` (default: every market, in name
        order) `n` steps now, paused or not; returns the emitted payloads."""
        out: list[dict] = []
        mkts = [self.market(symbol)] if symbol else list(self.markets.values())
        for _ in range(int(n)):
            for mkt in mkts:
                emitted = self._emit(mkt, True, mkt.step())
                out += [emitted['book'], *emitted['trades']]
        return out

    def _emit(self, mkt: SymbolMarket, book: bool, trades: list) -> dict:
        now = self.now_ms()
        sym = mkt.symbol.lower()
        frame = None
        if book:
            frame = mkt.book_frame()
            self.hub.publish(f'{sym}@bookTicker', frame)
        printed = []
        for side, price, qty in trades:
            trade = mkt.print_trade(price, qty, now, buyer_maker=(side == 'sell'))
            payload = trade.frame(mkt.symbol)
            self.hub.publish(f'{sym}@trade', payload)
            printed.append(payload)
            self.engine.on_trade(mkt, side, price, qty)
        if book:
            self.engine.on_book(mkt)
        return {'book': frame, 'trades': printed}

    def publish_trade(self, mkt: SymbolMarket, price: Decimal, qty: Decimal,
                      buyer_maker: bool) -> int:
        """Print one of our own fills as a public trade; returns its id."""
        trade = mkt.print_trade(price, qty, self.now_ms(), buyer_maker)
        self.hub.publish(f'{mkt.symbol.lower()}@trade', trade.frame(mkt.symbol))
        return trade.id

    def set_gaps(self, symbol: str, gaps: list[tuple[int, int]]) -> None:
        """Kline open-time spans `[start_ms, end_ms)` with no bars (every interval)."""
        self.market(symbol).klines.set_gaps([tuple(g) for g in gaps])  # type: ignore[misc]

    # -- account inspection (see `_engine`) --------------------------------

    def orders(self, symbol: str | None = None, open_only: bool = False) -> list[dict]:
        """Every order (GET /api/v3/order shape), oldest first."""
        return self.engine.order_list(symbol, open_only)

    def trades(self, symbol: str | None = None) -> list[dict]:
        """Every fill of ours (GET /api/v3/myTrades shape), oldest first."""
        return self.engine.trade_list(symbol)

    def balances(self) -> dict[str, dict[str, str]]:
        """`{asset: {'free': '...', 'locked': '...'}}`."""
        return self.engine.balance_map()

    def deposit(self, asset: str, amount: float | str) -> None:
        """Credit (or, negative, debit) `asset`: a `balanceUpdate` event."""
        self.engine.deposit(asset, Decimal(str(amount)))

    def fill(self, order_id: int, qty: float | str | None = None,
             price: float | str | None = None) -> list[dict]:
        """Fill resting order `order_id` now (all, or `qty`), at its limit
        price or `price`, as if the market traded through it."""
        return self.engine.force_fill(order_id, qty, price)

    def fill_while_away(self, order_id: int | None = None,
                        qty: float | str | None = None) -> list[dict]:
        """Close every user data stream, then fill `order_id` (default:
        every open order): its reports reach no one, the client must
        find out over REST."""
        self.hub.disconnect('user')
        ids = [order_id] if order_id is not None else [
            o['orderId'] for o in self.engine.order_list(None, open_only=True)]
        out: list[dict] = []
        for oid in ids:
            out += self.engine.force_fill(oid, qty, None)
        return out

    def set_weight_limit(self, limit: int) -> None:
        """Set the REQUEST_WEIGHT limit per minute (exchangeInfo shows it)."""
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f'weight limit must be an int >= 1, got {limit!r}')
        self.limiter.weight_limit = limit

    def info(self) -> dict:
        """Addresses and settings of this run (no secrets)."""
        return {'rest_url': self.rest_url, 'ws_url': self.ws_url, 'seed': self.seed,
                'quote_rate': self.quote_rate, 'symbols': list(self.markets),
                'commission': str(self.engine.rate),
                'commission_asset': self.engine.commission_asset}

    def expire_listen_keys(self) -> list[str]:
        """Expire every listen key now (`listenKeyExpired`, sockets closed)."""
        return [k for key in list(self.user_stream.keys) for k in self.user_stream.expire(key)]

    # -- the run -----------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Drive the walks at `quote_rate` and expire listen keys."""
        task_status.started()
        async with trio.open_nursery() as n:
            n.start_soon(self._expiry_loop)
            if self.quote_rate > 0:
                period = 1.0 / self.quote_rate
                while True:
                    await trio.sleep(period)
                    for mkt in self.markets.values():
                        if not mkt.paused:
                            self._emit(mkt, True, mkt.step())

    async def _expiry_loop(self) -> None:
        while True:
            await trio.sleep(1.0)
            self.user_stream.expire()


@acm
async def open_fake_binance(port: int = 0, host: str = '127.0.0.1',
                            **kwargs: Any) -> AsyncIterator[FakeBinance]:
    """Serve a `FakeBinance(**kwargs)` on `host:port` in this trio loop.

    ```python
    async with open_fake_binance(seed=1, quote_rate=0) as fake:
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
        ...  # point a client at fake.rest_url / fake.ws_url
    ```
    """
    from ._app import build_app
    fake = FakeBinance(**kwargs)
    app = build_app(fake)
    async with serve_asgi(app, host, port, fake.ping_interval) as (bound_host, bound_port):
        fake.host, fake.port = bound_host, bound_port
        async with trio.open_nursery() as n:
            await n.start(fake.run)
            try:
                yield fake
            finally:
                fake.hub.disconnect('all')
                n.cancel_scope.cancel()
