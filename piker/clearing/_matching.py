"""The paper venue's matching engine: one limit book per fqme.

Rules (DESIGN.md section 7):
- a *marketable* order (buy at or above the ask, sell at or below the bid)
  fills at the touch, at most the quoted size there; the rest rests;
- a *resting* limit fills at its own limit price when the opposite touch
  (ask for buys, bid for sells) or a trade print reaches it, at most the
  size quoted at that touch / printed in that trade;
- the size quoted at a touch is a shared pool within one tick: orders are
  served in price-time priority until it is used up;
- time in force: an `ioc` order takes what the touch has and never rests;
  a `fok` order fills whole at the touch or not at all (never rests).

Pure and synchronous so it can be tested exhaustively; `paperboi` wraps it
with IPC, fees, latency and the ledger.
"""
from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from sortedcontainers import SortedKeyList

from ..types import Struct

_seq = itertools.count()


class RestingOrder(Struct):
    """A venue-side order; `reqid` is the venue's id for it."""

    reqid: str
    oid: str
    fqme: str
    action: Literal['buy', 'sell']
    price: float
    size: float
    account: str
    filled: float = 0.0
    time_ns: int = 0
    seq: int = 0

    @property
    def remaining(self) -> float:
        return max(self.size - self.filled, 0.0)


class Fill(Struct):
    """One execution against the paper book."""

    reqid: str
    oid: str
    tid: str
    fqme: str
    account: str
    action: Literal['buy', 'sell']
    price: float
    size: float
    filled: float      # the order's cumulative fill, this one included
    remaining: float


def _eps(x: float) -> float:
    return max(abs(x), 1.0) * 1e-9


class PaperBook:
    """Resting orders and the last top-of-book for one fqme."""

    def __init__(self, fqme: str) -> None:
        self.fqme = fqme
        # best first: highest buy, lowest sell; ties by arrival
        self.buys: SortedKeyList = SortedKeyList(key=lambda o: (-o.price, o.seq))
        self.sells: SortedKeyList = SortedKeyList(key=lambda o: (o.price, o.seq))
        self.orders: dict[str, RestingOrder] = {}
        self.bid = math.nan
        self.ask = math.nan
        self.bsize = math.inf
        self.asize = math.inf

    # -- order entry ------------------------------------------------------

    def submit(self, order: RestingOrder, tif: str = 'gtc') -> list[Fill]:
        """Add a new order; fill what is marketable now, rest the remainder
        (`gtc`; an `ioc`/`fok` remainder is not rested: the caller cancels it)."""
        if order.reqid in self.orders:
            raise ValueError(f'duplicate reqid {order.reqid!r}')
        order = order.copy({'seq': next(_seq)})
        if tif == 'fok' and self.available(order) < order.remaining - _eps(order.size):
            return []
        fills = self._take(order)
        if tif == 'gtc' and order.remaining > _eps(order.size):
            self._rest(order)
        return fills

    def available(self, order: RestingOrder) -> float:
        """What the touch offers `order` now (0: not marketable)."""
        if order.action == 'buy':
            touch, avail = self.ask, self.asize
            ok = math.isfinite(touch) and order.price >= touch - _eps(touch)
        else:
            touch, avail = self.bid, self.bsize
            ok = math.isfinite(touch) and order.price <= touch + _eps(touch)
        return avail if ok else 0.0

    def modify(self, reqid: str, price: float, size: float) -> list[Fill]:
        """Re-price / re-size a resting order (loses time priority)."""
        old = self.orders.get(reqid)
        if old is None:
            raise KeyError(f'no resting order with reqid {reqid!r}')
        if size <= old.filled + _eps(size):
            raise ValueError(
                f'new size {size} is not above the {old.filled} already filled'
            )
        self._unrest(old)
        new = old.copy({'price': price, 'size': size, 'seq': next(_seq)})
        fills = self._take(new)
        if new.remaining > _eps(new.size):
            self._rest(new)
        return fills

    def cancel(self, reqid: str) -> RestingOrder | None:
        """Remove a resting order; `None` if it is not (or no longer) resting."""
        order = self.orders.get(reqid)
        if order is not None:
            self._unrest(order)
        return order

    # -- market data ------------------------------------------------------

    def on_quote(self, quote: dict[str, Any]) -> list[Fill]:
        """Apply one quote's ticks in order; return the fills they cause."""
        fills: list[Fill] = []
        ticks: Iterable[dict] = quote.get('ticks') or ()
        for tick in ticks:
            ttype = tick.get('type')
            price = tick.get('price')
            if price is None or not math.isfinite(price):
                continue
            size = tick.get('size')
            size = math.inf if size is None or size <= 0 else float(size)
            # what resting orders take from a touch is gone for later takers
            if ttype == 'ask':
                hit = self._match(self.buys, lambda o, p=price: o.price >= p - _eps(p), size)
                self.ask, self.asize = price, max(size - sum(f.size for f in hit), 0.0)
                fills += hit
            elif ttype == 'bid':
                hit = self._match(self.sells, lambda o, p=price: o.price <= p + _eps(p), size)
                self.bid, self.bsize = price, max(size - sum(f.size for f in hit), 0.0)
                fills += hit
            elif ttype == 'trade':
                # a print at `price` reaches buys at or above it and sells at
                # or below it; each side may take up to the printed size
                fills += self._match(self.buys, lambda o, p=price: o.price >= p - _eps(p), size)
                fills += self._match(self.sells, lambda o, p=price: o.price <= p + _eps(p), size)
        # a quote without ticks but with a touch still updates the book
        if not ticks:
            for key in ('bid', 'ask'):
                if quote.get(key) is not None:
                    fills += self.on_quote({'ticks': [{
                        'type': key, 'price': quote[key],
                        'size': quote.get(f'{key[0]}size'),
                    }]})
        return fills

    # -- internals --------------------------------------------------------

    def _rest(self, order: RestingOrder) -> None:
        self.orders[order.reqid] = order
        (self.buys if order.action == 'buy' else self.sells).add(order)

    def _unrest(self, order: RestingOrder) -> None:
        del self.orders[order.reqid]
        (self.buys if order.action == 'buy' else self.sells).remove(order)

    def _take(self, order: RestingOrder) -> list[Fill]:
        """Fill the marketable part of an incoming order at the touch."""
        avail = self.available(order)
        touch = self.ask if order.action == 'buy' else self.bid
        if avail <= 0:
            return []
        qty = min(order.remaining, avail)
        if order.action == 'buy':
            self.asize = avail - qty
        else:
            self.bsize = avail - qty
        return [self._exec(order, touch, qty)]

    def _match(self, side: SortedKeyList, reaches, avail: float) -> list[Fill]:
        """Fill resting orders on `side` (best first) that the tick reaches."""
        fills = []
        done = []
        for order in side:
            if avail <= 0 or not reaches(order):
                break
            qty = min(order.remaining, avail)
            avail -= qty
            fills.append(self._exec(order, order.price, qty))
            if order.remaining <= _eps(order.size):
                done.append(order)
        for order in done:
            self._unrest(order)
        return fills

    def _exec(self, order: RestingOrder, price: float, qty: float) -> Fill:
        order.filled += qty
        return Fill(
            reqid=order.reqid, oid=order.oid, tid=uuid.uuid4().hex,
            fqme=order.fqme, account=order.account, action=order.action,
            price=price, size=qty, filled=order.filled,
            remaining=order.remaining,
        )
