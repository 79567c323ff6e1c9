"""Binance orders as piker sees them: ids, tracking and event translation.

Pure (no IO): the trades dialogue (`_trades`) feeds it Binance's answers
and user data stream events and sends what it returns.

Ids. A piker dialog (oid) is one *chain* of Binance orders: the first
order and the ones each modify (`order/cancelReplace`) puts in its place.
The client order id carries the oid, so a restarted brokerd or emsd
recognises its own orders: `pk` + the oid's 32 hex digits + a 2-digit hex
generation (36 characters, Binance's limit and alphabet), the generation
counting modifies (new client ids must differ from the replaced one's).
The chain's `reqid` - what emsd knows the order by - is the client id
without the generation (`pk<hex32>`), so it stays the same across
modifies and restarts; Binance's `orderId` of the current generation is
kept here and shown in `broker_details`. Orders not placed by piker (the
web UI, another bot) keep their own client id and are known by
`str(orderId)`.

Trade ids: Binance numbers trades per symbol, so a fill's `tid` is
`<SYMBOL>:<tradeId>` (unique across markets, as emsd and the ledger need).

Fees: `cost` is the commission in the market's quote asset. Binance
charges the quote asset (as is), the base asset (converted at the fill
price) or a third asset such as BNB (converted at that asset's mid price
in the quote asset - the `<asset><quote>` bookTicker when the fill is
reported - given by the caller; 0 and a note in `broker_details` if
Binance lists no such market).
"""
from __future__ import annotations

import math
import time
import uuid
from typing import Any

import msgspec

from ...clearing._messages import (
    BrokerdError,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdStatus,
)

PREFIX = 'pk'
GENS = 256
# finished orders remembered for late reports
MAX_FINISHED = 10_000


def client_id(oid: str, gen: int = 0) -> str | None:
    """The Binance client order id of generation `gen` of dialog `oid`;
    None if `oid` is not a uuid (it cannot be carried)."""
    try:
        hex32 = uuid.UUID(oid).hex
    except (ValueError, AttributeError, TypeError):
        return None
    return f'{PREFIX}{hex32}{gen % GENS:02x}'


def parse_client_id(cid: str) -> tuple[str, str, int] | None:
    """`(oid, reqid, gen)` of a piker client order id, else None."""
    if len(cid) != 36 or not cid.startswith(PREFIX):
        return None
    body = cid[len(PREFIX):]
    try:
        oid = str(uuid.UUID(body[:32]))
        gen = int(body[32:], 16)
    except ValueError:
        return None
    return oid, cid[:-2], gen


class ExecReport(msgspec.Struct):
    """Binance's `executionReport` user data event (the fields piker uses)."""

    s: str                 # symbol
    c: str                 # client order id (of the cancel request for CANCELED)
    S: str                 # side BUY|SELL
    q: str                 # order quantity
    p: str                 # limit price
    x: str                 # execution type: NEW, CANCELED, REPLACED, REJECTED, TRADE, EXPIRED
    X: str                 # order status
    i: int                 # order id
    z: str = '0'           # cumulative filled
    l: str = '0'           # noqa: E741  last filled qty
    L: str = '0'           # last filled price
    n: str = '0'           # commission
    N: str | None = None   # commission asset
    T: int = 0             # transaction time ms
    t: int = -1            # trade id
    r: str = 'NONE'        # reject reason
    C: str = ''            # original client order id (CANCELED)
    O: int = 0             # noqa: E741  order creation time ms
    e: str = 'executionReport'


class OrderRow(msgspec.Struct):
    """An order as REST returns it (`order`, `openOrders`, `allOrders`)."""

    symbol: str
    orderId: int
    clientOrderId: str
    price: str
    origQty: str
    executedQty: str = '0'
    status: str = 'NEW'
    side: str = 'BUY'
    time: int = 0
    updateTime: int = 0
    type: str = 'LIMIT'


class TradeRow(msgspec.Struct):
    """A fill as `myTrades` returns it."""

    symbol: str
    id: int
    orderId: int
    price: str
    qty: str
    commission: str = '0'
    commissionAsset: str = ''
    time: int = 0
    isBuyer: bool = True


WORKING = ('NEW', 'PARTIALLY_FILLED', 'PENDING_NEW')
DONE_CANCELED = ('CANCELED', 'EXPIRED', 'EXPIRED_IN_MATCH', 'REJECTED', 'PENDING_CANCEL')


def tid_of(symbol: str, trade_id: int) -> str:
    return f'{symbol.upper()}:{trade_id}'


def action_of(side: str) -> str:
    return 'buy' if side.upper() == 'BUY' else 'sell'


class LiveOrder:
    """One dialog's chain of Binance orders (see module doc)."""

    def __init__(
        self,
        reqid: str,
        oid: str,
        symbol: str,
        key: str,
        action: str,
        price: float,
        size: float,
        account: str,
        time_ns: int,
        gen: int = 0,
    ) -> None:
        self.reqid = reqid
        self.oid = oid
        self.symbol = symbol        # BTCUSDT
        self.key = key              # btcusdt (broker-native key)
        self.action = action
        self.price = price
        self.size = size            # the dialog's total size, fills included
        self.account = account
        self.time_ns = time_ns
        self.gen = gen
        self.order_id: int | None = None   # Binance id of the current generation
        self.replaced: set[int] = set()    # Binance ids retired by a modify
        self.replacing: int | None = None  # the id a modify in flight cancels
        self.filled_before = 0.0           # filled by retired generations
        self.cum = 0.0                     # filled by the current generation
        self.acked = False
        self.opened = False
        self.done = False

    @property
    def filled(self) -> float:
        return self.filled_before + self.cum

    @property
    def remaining(self) -> float:
        rem = self.size - self.filled
        return 0.0 if math.isclose(rem, 0.0, abs_tol=1e-12) or rem < 0 else rem

    def next_client_id(self) -> str:
        """The client id of the next generation (a modify)."""
        return f'{self.reqid}{(self.gen + 1) % GENS:02x}'

    def details(self) -> dict[str, Any]:
        return {'orderId': self.order_id, 'symbol': self.symbol, 'gen': self.gen}

    def status(self, status: str, reason: str = '') -> BrokerdStatus:
        return BrokerdStatus(
            reqid=self.reqid, oid=self.oid, status=status,  # type: ignore[arg-type]
            account=self.account, time_ns=time.time_ns(), filled=self.filled,
            remaining=self.remaining, reason=reason, broker_details=self.details(),
        )

    def announce(self) -> BrokerdStatus:
        """'open' with the request: how a report names a working order."""
        st = self.status('open')
        st.req = BrokerdOrder(
            oid=self.oid, reqid=self.reqid, symbol=self.key,
            action=self.action,  # type: ignore[arg-type]
            price=self.price, size=self.size, account=self.account, time_ns=self.time_ns,
        )
        return st

    def ack(self) -> list[Any]:
        if self.acked:
            return []
        self.acked = True
        return [BrokerdOrderAck(oid=self.oid, reqid=self.reqid, account=self.account)]


def fee_in_quote(
    commission: float, asset: str | None, base: str, quote: str, price: float,
    asset_price: float | None,
) -> float | None:
    """The commission in the quote asset (see module doc); None if unknown."""
    if not commission:
        return 0.0
    asset = (asset or '').upper()
    if asset == quote.upper():
        return commission
    if asset == base.upper():
        return commission * price
    if asset_price is not None and math.isfinite(asset_price):
        return commission * asset_price
    return None


class Tracker:
    """The orders of one trades dialogue, and the fills already reported."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.by_reqid: dict[str, LiveOrder] = {}
        self.by_oid: dict[str, LiveOrder] = {}
        self.by_order_id: dict[int, LiveOrder] = {}
        self.tids: set[str] = set()
        # finished orders by Binance id: a late or repeated event of one
        # (reordered reports) must not bring it back as an external order,
        # but a fill overtaken by the final report still counts
        self.finished: dict[int, LiveOrder] = {}

    def add(self, order: LiveOrder) -> None:
        self.by_reqid[order.reqid] = order
        if order.oid:
            self.by_oid[order.oid] = order
        if order.order_id is not None:
            self.by_order_id[order.order_id] = order

    def set_order_id(self, order: LiveOrder, order_id: int) -> None:
        if order.order_id is not None and order.order_id != order_id:
            order.replaced.add(order.order_id)
        order.order_id = order_id
        self.by_order_id[order_id] = order

    def drop(self, order: LiveOrder) -> None:
        for i in (order.order_id, *order.replaced):
            if i is not None:
                self.finished[i] = order
        while len(self.finished) > MAX_FINISHED:
            del self.finished[next(iter(self.finished))]
        self.by_reqid.pop(order.reqid, None)
        if self.by_oid.get(order.oid) is order:
            self.by_oid.pop(order.oid, None)
        for oid_ in (order.order_id, *order.replaced):
            if oid_ is not None and self.by_order_id.get(oid_) is order:
                self.by_order_id.pop(oid_, None)

    def find(self, reqid: Any = None, oid: str = '') -> LiveOrder | None:
        order = self.by_reqid.get(str(reqid)) if reqid is not None else None
        return order or (self.by_oid.get(oid) if oid else None)

    def for_event(self, ev: ExecReport) -> LiveOrder | None:
        order = self.by_order_id.get(ev.i)
        if order is not None:
            return order
        for cid in (ev.C, ev.c):
            parsed = parse_client_id(cid) if cid else None
            if parsed is not None and parsed[1] in self.by_reqid:
                return self.by_reqid[parsed[1]]
        return None

    def external(self, ev: ExecReport, key: str) -> LiveOrder:
        """Track an order piker did not place (or this dialogue never saw)."""
        parsed = parse_client_id(ev.c)
        if parsed is not None:
            oid, reqid, gen = parsed
        else:
            # not ours: its own client id is the best oid emsd can take
            oid, reqid, gen = ev.c or str(ev.i), str(ev.i), 0
        order = LiveOrder(
            reqid=reqid, oid=oid, symbol=ev.s, key=key, action=action_of(ev.S),
            price=float(ev.p), size=float(ev.q), account=self.account,
            time_ns=(ev.O or ev.T) * 1_000_000 or time.time_ns(), gen=gen,
        )
        order.order_id = ev.i
        order.acked = True
        self.add(order)
        return order

    # -- user data stream events ----------------------------------------------

    def on_exec(
        self,
        ev: ExecReport,
        key: str,
        cost_of: Any,
    ) -> list[Any]:
        """The piker messages of one `executionReport`.

        `cost_of(ev)` gives the fill's commission in the quote asset (or
        None if unknown). Idempotent: a repeated event yields nothing new.
        """
        order = self.for_event(ev)
        out: list[Any] = []
        if order is None and ev.i in self.finished:
            if ev.x == 'TRADE':  # overtaken by the order's final report
                return self._fill(self.finished[ev.i], ev, cost_of, retired=True)[:1]
            return out
        if order is None:
            if ev.x in ('NEW', 'TRADE') and ev.X in WORKING + ('FILLED',):
                order = self.external(ev, key)
                if ev.X in WORKING:
                    order.opened = True
                    out.append(order.announce())
                if ev.x != 'TRADE':
                    return out
            else:
                return out
        if ev.i in order.replaced or (ev.i == order.replacing and ev.x == 'CANCELED'):
            # the retired generation of a modify: its cancel is not the
            # dialog's; a trade before the cancel still counts
            if ev.x == 'TRADE':
                return self._fill(order, ev, cost_of, retired=True)
            return out
        if order.order_id is None:
            self.set_order_id(order, ev.i)
        elif ev.i != order.order_id:
            # a new generation we did not hear the REST answer of yet
            self._new_generation(order, ev.i)
        out += order.ack()
        if ev.x == 'NEW':
            if not order.opened:
                order.opened = True
                out.append(order.status('open'))
        elif ev.x == 'TRADE':
            out += self._fill(order, ev, cost_of)
        elif ev.x in ('CANCELED', 'EXPIRED'):
            out += self.finish(order, 'canceled', reason=_reason(ev, 'cancelled at Binance'))
        elif ev.x == 'REJECTED':
            self.drop(order)
            order.done = True
            out.append(BrokerdError(
                oid=order.oid, reqid=order.reqid, symbol=order.key,
                reason=f'Binance rejected the order: {ev.r}', broker_details=order.details(),
            ))
        return out

    def _new_generation(self, order: LiveOrder, order_id: int) -> None:
        order.filled_before += order.cum
        order.cum = 0.0
        order.gen += 1
        self.set_order_id(order, order_id)

    def _fill(self, order: LiveOrder, ev: ExecReport, cost_of: Any,
              retired: bool = False) -> list[Any]:
        tid = tid_of(ev.s, ev.t)
        if tid in self.tids:
            return []
        self.tids.add(tid)
        size = float(ev.l)
        if retired:
            order.filled_before += size
        else:
            order.cum = max(order.cum, float(ev.z))
        cost = cost_of(ev)
        details = order.details()
        if cost is None:
            details['fee_note'] = f'commission {ev.n} {ev.N} not converted (no price)'
            cost = 0.0
        fill = BrokerdFill(
            reqid=order.reqid, oid=order.oid, tid=tid, action=order.action,  # type: ignore[arg-type]
            size=size, price=float(ev.L), broker_time=(ev.T or time.time() * 1000) / 1000,
            time_ns=time.time_ns(), cost=cost,
        )
        if ev.X == 'FILLED' and not retired:
            return [fill, *self.finish(order, 'closed')]
        return [fill, order.status('open')]

    def finish(self, order: LiveOrder, status: str, reason: str = '') -> list[Any]:
        if order.done:
            return []
        order.done = True
        self.drop(order)
        return [order.status(status, reason)]


def _reason(ev: ExecReport, default: str) -> str:
    return default if ev.r in ('', 'NONE') else f'{default}: {ev.r}'


__all__ = [
    'ExecReport', 'LiveOrder', 'OrderRow', 'TradeRow', 'Tracker', 'action_of',
    'client_id', 'fee_in_quote', 'parse_client_id', 'tid_of',
]
