"""The scripted L1 market of one symbol: `piker.brokers.sim`'s seeded walk.

Every change of the book is one bookTicker update (`u` increases by one
per update, from a fixed start, so the same seed and the same control
script give the same frames); every public trade gets the next trade id
and is booked into the live klines. The walk itself (`Walk`) is the sim
backend's: deterministic for a seed, pushed/paused/resumed the same way.
"""
from __future__ import annotations

from decimal import Decimal

from ....brokers.sim import Walk
from ._fmt import d8, dec, digits
from ._klines import KlineSource
from ._symbols import SymbolSpec

FIRST_UPDATE_ID = 1_000_000
FIRST_TRADE_ID = 1


class Trade:
    """One public trade (ours or the walk's)."""

    __slots__ = ('id', 'price', 'qty', 'time_ms', 'buyer_maker')

    def __init__(self, id: int, price: Decimal, qty: Decimal, time_ms: int,
                 buyer_maker: bool) -> None:
        self.id = id
        self.price = price
        self.qty = qty
        self.time_ms = time_ms
        self.buyer_maker = buyer_maker

    def frame(self, symbol: str) -> dict:
        """The `<symbol>@trade` payload."""
        return {'e': 'trade', 'E': self.time_ms, 's': symbol, 't': self.id,
                'p': d8(self.price), 'q': d8(self.qty), 'T': self.time_ms,
                'm': self.buyer_maker, 'M': True}


class SymbolMarket:
    """Book state, walk, ids and klines of one symbol."""

    def __init__(self, spec: SymbolSpec, seed: int, t0: int) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.klines = KlineSource(spec, seed, t0)
        self.walk = Walk(spec.walk_spec(self.klines.start_price), seed)
        self.pdigits = digits(spec.tick_size)
        self.sdigits = digits(spec.step_size)
        self.paused = False
        self.update_id = FIRST_UPDATE_ID
        self.trade_id = FIRST_TRADE_ID - 1
        self._sync_book()

    def _sync_book(self) -> None:
        w = self.walk
        self.bid = dec(w.bid, max(self.pdigits, 8))
        self.ask = dec(w.ask, max(self.pdigits, 8))
        self.bsize = dec(w.bsize, max(self.sdigits, 8))
        self.asize = dec(w.asize, max(self.sdigits, 8))

    def book_frame(self) -> dict:
        """The `<symbol>@bookTicker` payload of the current book."""
        return {'u': self.update_id, 's': self.symbol, 'b': d8(self.bid), 'B': d8(self.bsize),
                'a': d8(self.ask), 'A': d8(self.asize)}

    def book_ticker(self) -> dict:
        """`GET /api/v3/ticker/bookTicker` entry."""
        return {'symbol': self.symbol, 'bidPrice': d8(self.bid), 'bidQty': d8(self.bsize),
                'askPrice': d8(self.ask), 'askQty': d8(self.asize)}

    def step(self) -> list[tuple[str, Decimal, Decimal]]:
        """Advance the walk one event; returns its trades as
        `(side of the aggressor 'buy'|'sell', price, qty)`."""
        quote = self.walk.step()
        self._sync_book()
        self.update_id += 1
        out = []
        for tick in quote['ticks']:
            if tick['type'] == 'trade':
                price = dec(tick['price'], max(self.pdigits, 8))
                side = 'buy' if price >= self.ask else 'sell'
                out.append((side, price, dec(tick['size'], max(self.sdigits, 8))))
        return out

    def push(self, bid: float | None = None, ask: float | None = None,
             bsize: float | None = None, asize: float | None = None,
             last: float | None = None, size: float | None = None
             ) -> tuple[bool, list[tuple[str, Decimal, Decimal]]]:
        """Set exactly these fields and pause the walk (see `Walk.push`).

        Returns `(book changed, trades)`; a trade at or above the ask
        counts as a buy, else a sell.
        """
        quote = self.walk.push(last=last, bid=bid, ask=ask, size=size, bsize=bsize, asize=asize)
        self.paused = True
        book = any(v is not None for v in (bid, ask, bsize, asize))
        if book:
            self._sync_book()
            self.update_id += 1
        trades = []
        for tick in quote['ticks']:
            if tick['type'] == 'trade':
                price = Decimal(repr(float(tick['price'])))
                side = 'buy' if price >= self.ask else 'sell'
                trades.append((side, price, Decimal(repr(float(tick['size'])))))
        return book, trades

    def resume(self) -> None:
        self.walk.recentre()
        self.paused = False

    def consume(self, side: str, qty: Decimal) -> None:
        """Our own fill took `qty` off the touch (`side` is the aggressor's:
        a buy takes from the ask). An emptied touch shows the next level:
        one tick further, with the market's typical size."""
        tick = self.spec.tick_size
        fresh = dec(self.spec.book_size, max(self.sdigits, 8))
        if side == 'buy':
            self.asize -= min(qty, self.asize)
            if self.asize <= 0:
                self.ask, self.asize = self.ask + tick, fresh
        else:
            self.bsize -= min(qty, self.bsize)
            if self.bsize <= 0:
                self.bid, self.bsize = max(self.bid - tick, tick), fresh
        self.update_id += 1

    def print_trade(self, price: Decimal, qty: Decimal, time_ms: int, buyer_maker: bool) -> Trade:
        """Book a public trade: next trade id, live klines."""
        self.trade_id += 1
        self.klines.live.trade(time_ms // 1000, float(price), float(qty), not buyer_maker)
        return Trade(self.trade_id, price, qty, time_ms, buyer_maker)
