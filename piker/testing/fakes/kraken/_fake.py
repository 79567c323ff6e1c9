"""`FakeKraken`: the fake venue's state and its Python control API.

One object owns every fact of a run: the markets (the fake Binance's
`SymbolMarket`s: walk, book, klines), the account (`_engine`), the
websocket hub (the fake Binance's `Hub`), issued websocket tokens, the
API and trading counters (`_auth`) and the fault switches. REST and
websocket handlers and Python callers act on it inside one trio loop:
when `fake.push(...)` returns, its frames are in every client's outbox.
"""
from __future__ import annotations

import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager as acm
from decimal import Decimal, InvalidOperation
from typing import Any

import trio

from .._base import FakeVenue
from .._harness import serve_asgi
from ..binance._market import SymbolMarket
from ..binance._streams import Hub
from ._auth import ApiCounter, Auth, TradeCounter
from ._engine import Engine, rfc3339
from ._errors import KrakenError
from ._faults import Faults
from ._pairs import PAIRS, PairSpec, find_pair

REQUEST_LOG = 10_000
TOKEN_TTL = 900.0
HEARTBEAT_S = 1.0


def parse_num(raw: Any, name: str) -> Decimal:
    try:
        val = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise KrakenError(f'EGeneral:Invalid arguments:{name}') from None
    if not val.is_finite() or val <= 0:
        raise KrakenError(f'EGeneral:Invalid arguments:{name}')
    return val


class FakeKraken(FakeVenue):
    """A fake Kraken spot venue (docs/fake_kraken.md)."""

    BROKER = 'kraken'
    URL_KEYS = ('rest_url', 'ws_url', 'ws_auth_url')

    def __init__(
        self,
        seed: int = 0,
        quote_rate: float = 10.0,
        clock: Callable[[], float] = time.time,
        pairs: list[str] | None = None,
        balances: dict[str, Any] | None = None,
        taker_fee: str | float = '0.0026',
        maker_fee: str | float = '0.0016',
        api_limit: float = 15.0,
        api_decay: float = 0.33,
        trade_limit: float = 60.0,
        trade_decay: float = 1.0,
    ) -> None:
        if quote_rate < 0:
            raise ValueError(f'quote_rate must be >= 0, got {quote_rate!r}')
        self.seed = seed
        self.quote_rate = float(quote_rate)
        self.clock = clock
        self.auth = Auth()
        self.host = '127.0.0.1'
        self.port = 0
        names = pairs or list(PAIRS)
        specs = [find_pair(n) for n in names]
        if None in specs:
            raise ValueError(f'no fake pair in {names}; pairs: {", ".join(PAIRS)}')
        t0 = int(clock())
        self.t0 = t0
        self.pairs: dict[str, PairSpec] = {p.symbol: p for p in specs if p}
        self.markets: dict[str, SymbolMarket] = {
            s: SymbolMarket(p.market, seed, t0) for s, p in self.pairs.items()}
        self.live_trades: dict[str, list[tuple[float, Decimal, Decimal, str, int]]] = {
            s: [] for s in self.pairs}
        self.volume: dict[str, Decimal] = {s: Decimal(0) for s in self.pairs}
        self.hub = Hub()
        self.api_counter = ApiCounter(api_limit, api_decay)
        self.trade_counter = TradeCounter(trade_limit, trade_decay)
        self.faults = Faults(self)
        self.tokens: dict[str, float] = {}
        self.requests: deque[dict] = deque(maxlen=REQUEST_LOG)
        self.sequence = 0
        self.engine = Engine(self, balances, Decimal(str(taker_fee)), Decimal(str(maker_fee)))

    def __repr__(self) -> str:  # never the secret
        return f'<FakeKraken {self.rest_url} seed={self.seed}>'

    # -- addresses ---------------------------------------------------------

    @property
    def api_key(self) -> str:
        return self.auth.api_key

    @property
    def api_secret(self) -> str:
        return self.auth.api_secret

    @property
    def ws_url(self) -> str:
        return f'ws://{self.host}:{self.port}/v2'

    @property
    def ws_auth_url(self) -> str:
        return f'ws://{self.host}:{self.port}/auth/v2'

    # -- lookups, log --------------------------------------------------------

    def pair(self, name: Any) -> PairSpec:
        p = find_pair(str(name)) if name else None
        if p is None or p.symbol not in self.pairs:
            raise KrakenError('EQuery:Unknown asset pair')
        return p

    def market(self, name: str) -> SymbolMarket:
        return self.markets[self.pair(name).symbol]

    def log_request(self, method: str, path: str, params: dict, error: list[str]) -> None:
        self.requests.append({'time': self.clock(), 'method': method, 'path': path,
                              'params': {k: v for k, v in params.items() if k != 'nonce'},
                              'error': error})

    # -- tokens ----------------------------------------------------------------

    def new_token(self) -> str:
        token = secrets.token_urlsafe(24)
        self.tokens[token] = self.clock() + TOKEN_TTL
        return token

    def check_token(self, token: Any) -> None:
        if self.faults.bad_tokens > 0:
            self.faults.bad_tokens -= 1
            raise KrakenError('ESession:Invalid session')
        if not isinstance(token, str) or self.tokens.get(token, 0) < self.clock():
            raise KrakenError('ESession:Invalid session')

    # -- market control ----------------------------------------------------

    def push(self, symbol: str, bid: float | None = None, ask: float | None = None,
             bsize: float | None = None, asize: float | None = None,
             last: float | None = None, size: float | None = None) -> dict:
        """Emit exactly this book and/or trade for `symbol` (any Kraken
        name: `BTC/USD`, `XBTUSD`, ...) and pause its walk. Crossed
        resting orders fill at once."""
        p = self.pair(symbol)
        mkt = self.markets[p.symbol]
        book, trades = mkt.push(bid=bid, ask=ask, bsize=bsize, asize=asize, last=last, size=size)
        return self._emit(p, mkt, book, trades)

    def pause(self, symbol: str | None = None) -> None:
        for s in [self.pair(symbol).symbol] if symbol else list(self.markets):
            self.markets[s].paused = True

    def resume(self, symbol: str | None = None) -> None:
        for s in [self.pair(symbol).symbol] if symbol else list(self.markets):
            self.markets[s].resume()

    def step(self, symbol: str | None = None, n: int = 1) -> None:
        for _ in range(int(n)):
            for s in [self.pair(symbol).symbol] if symbol else list(self.markets):
                mkt = self.markets[s]
                self._emit(self.pairs[s], mkt, True, mkt.step())

    def _emit(self, p: PairSpec, mkt: SymbolMarket, book: bool, trades: list) -> dict:
        printed = []
        for side, price, qty in trades:
            printed.append(self.public_trade(p.symbol, price, qty, side))
            self.engine.on_trade(p.symbol, side, price, qty)
        if book:
            self.engine.on_book(p.symbol, mkt)
            self._publish_ticker(p, 'bbo')
        return {'book': self.ticker(p.symbol) if book else None, 'trades': printed}

    def public_trade(self, symbol: str, price: Decimal, qty: Decimal, side: str) -> dict:
        """Print one public trade (the walk's, a push's or our own fill)."""
        p = self.pairs[symbol]
        mkt = self.markets[symbol]
        now = self.clock()
        t = mkt.print_trade(price, qty, int(now * 1000), buyer_maker=(side == 'sell'))
        tid = self.t0 + t.id
        self.live_trades[symbol].append((now, price, qty, side, tid))
        self.volume[symbol] += qty
        entry = {'symbol': symbol, 'side': side, 'price': float(price), 'qty': float(qty),
                 'ord_type': 'limit', 'trade_id': tid, 'timestamp': rfc3339(now)}
        self.hub.publish(f'trade:{symbol}', {'channel': 'trade', 'type': 'update',
                                             'data': [entry]})
        self._publish_ticker(p, 'trades')
        return entry

    def ticker(self, symbol: str) -> dict:
        """The v2 `ticker` entry of `symbol` now."""
        p = self.pair(symbol)
        mkt = self.markets[p.symbol]
        trades = self.live_trades[p.symbol]
        last = trades[-1][1] if trades else mkt.bid
        prices = [t[1] for t in trades] or [last]
        vol = self.volume[p.symbol]
        vwap = (sum(t[1] * t[2] for t in trades) / vol) if vol else last
        first = prices[0]
        return {'symbol': p.symbol, 'bid': float(mkt.bid), 'bid_qty': float(mkt.bsize),
                'ask': float(mkt.ask), 'ask_qty': float(mkt.asize), 'last': float(last),
                'volume': float(vol), 'vwap': float(vwap), 'low': float(min(prices)),
                'high': float(max(prices)), 'change': float(last - first),
                'change_pct': float((last - first) / first * 100) if first else 0.0}

    def _publish_ticker(self, p: PairSpec, trigger: str) -> None:
        self.hub.publish(f'ticker:{trigger}:{p.symbol}', {
            'channel': 'ticker', 'type': 'update', 'data': [self.ticker(p.symbol)]})

    # -- account ----------------------------------------------------------------

    def publish_execution(self, ev: dict) -> None:
        self.sequence += 1
        text = json.dumps({'channel': 'executions', 'type': 'update', 'data': [ev],
                           'sequence': self.sequence}, separators=(',', ':'))
        for conn in list(self.hub.user):
            conn.put(text)
            if self.faults.dups > 0:
                conn.put(text)
        if self.faults.dups > 0 and self.hub.user:
            self.faults.dups -= 1

    def orders(self, open_only: bool = False) -> list[dict]:
        """Every order (an `executions` entry each), oldest first."""
        return self.engine.order_list(open_only)

    def trades(self) -> list[dict]:
        """Every fill of ours (`executions` 'trade' entries), oldest first."""
        return list(self.engine.fills)

    def balances(self) -> dict[str, str]:
        return self.engine.balance_map()

    def deposit(self, asset: str, amount: float | str) -> None:
        """Credit (negative: debit) an asset code such as `ZUSD`, `XXBT`."""
        self.engine.deposit(asset, Decimal(str(amount)))

    def fill(self, order_id: str, qty: float | str | None = None,
             price: float | str | None = None) -> dict:
        """Fill resting order `order_id` now (all or `qty`) at its limit or `price`."""
        return self.engine.force_fill(order_id, qty, price)

    def fill_while_away(self, order_id: str | None = None) -> list[dict]:
        """Close every private connection, then fill `order_id` (default:
        every open order): nobody hears it live."""
        self.hub.disconnect('user')
        ids = [order_id] if order_id else [
            o['order_id'] for o in self.engine.order_list(open_only=True)]
        return [self.engine.force_fill(i) for i in ids]

    def info(self) -> dict:
        return {'rest_url': self.rest_url, 'ws_url': self.ws_url,
                'ws_auth_url': self.ws_auth_url, 'seed': self.seed,
                'quote_rate': self.quote_rate, 'pairs': list(self.pairs)}

    # -- the run -----------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
        """Drive the walks at `quote_rate`; heartbeats every second."""
        task_status.started()
        async with trio.open_nursery() as n:
            n.start_soon(self._heartbeats)
            if self.quote_rate > 0:
                period = 1.0 / self.quote_rate
                while True:
                    await trio.sleep(period)
                    for s, mkt in self.markets.items():
                        if not mkt.paused:
                            self._emit(self.pairs[s], mkt, True, mkt.step())

    async def _heartbeats(self) -> None:
        beat = json.dumps({'channel': 'heartbeat'})
        while True:
            await trio.sleep(HEARTBEAT_S)
            for conn in list(self.hub.market) + list(self.hub.user):
                if conn.subs or conn.listen_key:
                    conn.put(beat)


@acm
async def open_fake_kraken(port: int = 0, host: str = '127.0.0.1',
                           **kwargs: Any) -> AsyncIterator[FakeKraken]:
    """Serve a `FakeKraken(**kwargs)` on `host:port` in this trio loop.

    ```python
    async with open_fake_kraken(quote_rate=0) as fake:
        fake.push('BTC/USD', bid=64000, ask=64000.1, bsize=1, asize=1)
    ```
    """
    from ._app import build_app
    fake = FakeKraken(**kwargs)
    async with serve_asgi(build_app(fake), host, port, None) as (bound_host, bound_port):
        fake.host, fake.port = bound_host, bound_port
        async with trio.open_nursery() as n:
            await n.start(fake.run)
            try:
                yield fake
            finally:
                fake.hub.disconnect('all')
                n.cancel_scope.cancel()
