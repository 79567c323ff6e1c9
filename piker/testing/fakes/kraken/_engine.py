"""The fake Kraken's account: balances, limit orders, matching, executions.

Orders are limit orders, `time_in_force` gtc or ioc (what piker sends;
Kraken spot has no fok: refused as Kraken refuses an unknown value). A
marketable order takes the touch at once (taker fee), the rest rests (gtc)
or is cancelled (ioc, reason 'Unfilled IOC'); a resting order fills at
its limit when the book or a public trade crosses it (maker fee). Fees
are charged in the quote asset. Every change is one `executions` event
in Kraken's websocket v2 shape, published to every subscribed private
connection through the fault router (`_faults`), and kept for the
snapshot (`snap_orders`: open orders; `snap_trades`: the last 50 fills).
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._errors import KrakenError
from ._pairs import PairSpec

if TYPE_CHECKING:
    from ..binance._market import SymbolMarket
    from ._fake import FakeKraken

ZERO = Decimal(0)
SNAP_TRADES = 50


def rfc3339(t: float) -> str:
    return time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t)) + f'.{int(t % 1 * 1e6):06d}Z'


class Order:
    def __init__(self, order_id: str, cl_ord_id: str | None, pair: PairSpec, side: str,
                 qty: Decimal, price: Decimal, now: float) -> None:
        self.order_id = order_id
        self.cl_ord_id = cl_ord_id
        self.pair = pair
        self.side = side
        self.qty = qty
        self.price = price
        self.cum_qty = ZERO
        self.cum_cost = ZERO
        self.fee = ZERO
        self.status = 'new'
        self.opened = now
        self.closed: float | None = None
        self.tif = 'gtc'

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.cum_qty

    @property
    def is_open(self) -> bool:
        return self.status in ('new', 'partially_filled')

    def view(self, exec_type: str, now: float, exec_id: str) -> dict:
        """One `executions` entry describing this order now."""
        out: dict[str, Any] = {
            'order_id': self.order_id, 'symbol': self.pair.symbol, 'side': self.side,
            'order_type': 'limit', 'time_in_force': self.tif,
            'order_qty': float(self.qty), 'limit_price': float(self.price),
            'order_status': self.status, 'exec_type': exec_type, 'exec_id': exec_id,
            'cum_qty': float(self.cum_qty), 'cum_cost': float(self.cum_cost),
            'avg_price': float(self.cum_cost / self.cum_qty) if self.cum_qty else 0.0,
            'fee_usd_equiv': float(self.fee), 'timestamp': rfc3339(now),
        }
        if self.cl_ord_id:
            out['cl_ord_id'] = self.cl_ord_id
        return out


class Engine:
    def __init__(self, fake: FakeKraken, balances: dict[str, Any] | None,
                 taker: Decimal, maker: Decimal) -> None:
        self.fake = fake
        self.taker = taker
        self.maker = maker
        self.balances: dict[str, Decimal] = {
            k.upper(): Decimal(str(v)) for k, v in (balances or {}).items()}
        self.orders: dict[str, Order] = {}
        self.fills: list[dict] = []  # executions 'trade' entries, oldest first
        self._rng = random.Random(fake.seed)
        self._exec = 0
        self.trade_ids: dict[str, int] = {}

    # -- ids and events -------------------------------------------------------

    def _id(self, head: str) -> str:
        a = ''.join(self._rng.choices('ABCDEFGHIJKLMNOPQRSTUVWXYZ234567', k=16))
        return f'{head}{a[:5]}-{a[5:10]}-{a[10:16]}'

    def _emit(self, o: Order, exec_type: str, **extra: Any) -> dict:
        self._exec += 1
        ev = o.view(exec_type, self.fake.clock(), self._id('T'))
        ev.update(extra)
        self.fake.publish_execution(ev)
        return ev

    # -- balances -------------------------------------------------------------

    def _locked(self, asset: str) -> Decimal:
        out = ZERO
        for o in self.orders.values():
            if not o.is_open:
                continue
            if o.side == 'buy' and o.pair.quote == asset:
                out += o.remaining * o.price * (1 + self.taker)
            elif o.side == 'sell' and o.pair.base == asset:
                out += o.remaining
        return out

    def balance_map(self) -> dict[str, str]:
        return {k: f'{v:.10f}' for k, v in sorted(self.balances.items())}

    def deposit(self, asset: str, amount: Decimal) -> None:
        asset = asset.upper()
        self.balances[asset] = self.balances.get(asset, ZERO) + amount

    # -- requests ---------------------------------------------------------------

    def find(self, order_id: str | None = None, cl_ord_id: str | None = None) -> Order:
        if order_id:
            o = self.orders.get(order_id)
        else:
            o = next((o for o in self.orders.values()
                      if cl_ord_id and o.cl_ord_id == cl_ord_id and o.is_open), None)
        if o is None:
            raise KrakenError('EOrder:Unknown order')
        return o

    def add(self, params: dict[str, Any]) -> dict:
        from ._fake import parse_num
        pair = self.fake.pair(params.get('symbol'))
        side = params.get('side')
        if side not in ('buy', 'sell'):
            raise KrakenError('EGeneral:Invalid arguments:side')
        if params.get('order_type', 'limit') != 'limit':
            raise KrakenError('EGeneral:Invalid arguments:order_type')
        tif = params.get('time_in_force', 'gtc')
        if tif not in ('gtc', 'ioc'):  # (real Kraken also has gtd; piker sends none)
            raise KrakenError('EGeneral:Invalid arguments:time_in_force')
        qty = parse_num(params.get('order_qty'), 'order_qty')
        price = parse_num(params.get('limit_price'), 'limit_price')
        cl = params.get('cl_ord_id')
        if cl is not None and (not isinstance(cl, str) or not 0 < len(cl) <= 36):
            raise KrakenError('EGeneral:Invalid arguments:cl_ord_id')
        if cl and any(o.cl_ord_id == cl and o.is_open for o in self.orders.values()):
            raise KrakenError('EOrder:Duplicate cl_ord_id')
        self._check(pair, qty, price)
        avail = (self.balances.get(pair.quote if side == 'buy' else pair.base, ZERO)
                 - self._locked(pair.quote if side == 'buy' else pair.base))
        need = qty * price * (1 + self.taker) if side == 'buy' else qty
        if need > avail:
            raise KrakenError('EOrder:Insufficient funds')
        now = self.fake.clock()
        self.fake.trade_counter.charge(pair.symbol, 'add', 0.0, now)
        o = Order(self._id('O'), cl, pair, side, qty, price, now)
        o.tif = tif
        self.orders[o.order_id] = o
        o.status = 'pending_new'
        self._emit(o, 'pending_new')
        o.status = 'new'
        self._emit(o, 'new')
        self._take(o)
        if tif == 'ioc' and o.is_open:
            o.status = 'canceled'
            o.closed = now
            self._emit(o, 'canceled', reason='Unfilled IOC')
        out = {'order_id': o.order_id}
        if cl:
            out['cl_ord_id'] = cl
        return out

    def _check(self, pair: PairSpec, qty: Decimal, price: Decimal) -> None:
        if price <= 0 or price != price.quantize(pair.tick_size):
            raise KrakenError('EOrder:Invalid price:'
                              f'{pair.symbol} price can only be specified up to '
                              f'{pair.pair_decimals} decimals.')
        if qty != qty.quantize(Decimal(1).scaleb(-pair.lot_decimals)):
            raise KrakenError('EGeneral:Invalid arguments:order_qty')
        if qty < pair.ordermin:
            raise KrakenError('EOrder:Order minimum not met')
        if qty * price < pair.costmin:
            raise KrakenError('EOrder:Cost minimum not met')

    def amend(self, params: dict[str, Any]) -> dict:
        from ._fake import parse_num
        o = self.find(params.get('order_id'), params.get('cl_ord_id'))
        if not o.is_open:
            raise KrakenError('EOrder:Unknown order')
        qty = parse_num(params['order_qty'], 'order_qty') if 'order_qty' in params else o.qty
        price = (parse_num(params['limit_price'], 'limit_price')
                 if 'limit_price' in params else o.price)
        if qty <= o.cum_qty:
            raise KrakenError('EOrder:Invalid order_qty')
        self._check(o.pair, qty - o.cum_qty if qty > o.cum_qty else qty, price)
        now = self.fake.clock()
        self.fake.trade_counter.charge(o.pair.symbol, 'amend', now - o.opened, now)
        o.qty, o.price = qty, price
        amend_id = self._id('T')
        self._emit(o, 'amended', amended=True, reason='User requested')
        self._take(o)
        out = {'amend_id': amend_id, 'order_id': o.order_id}
        if o.cl_ord_id:
            out['cl_ord_id'] = o.cl_ord_id
        return out

    def cancel(self, params: dict[str, Any]) -> dict:
        ids = params.get('order_id') or []
        cls = params.get('cl_ord_id') or []
        if not isinstance(ids, list) or not isinstance(cls, list) or not (ids or cls):
            raise KrakenError('EGeneral:Invalid arguments:order_id')
        orders = [self.find(i) for i in ids] + [self.find(None, c) for c in cls]
        now = self.fake.clock()
        for o in orders:
            if not o.is_open:
                raise KrakenError('EOrder:Unknown order')
            self.fake.trade_counter.charge(o.pair.symbol, 'cancel', now - o.opened, now)
        for o in orders:
            o.status = 'canceled'
            o.closed = now
            self._emit(o, 'canceled', reason='User requested')
        first = orders[0]
        out = {'order_id': first.order_id}
        if first.cl_ord_id:
            out['cl_ord_id'] = first.cl_ord_id
        return out

    # -- matching ----------------------------------------------------------------

    def _take(self, o: Order) -> None:
        mkt = self.fake.market(o.pair.symbol)
        if o.side == 'buy' and o.price >= mkt.ask and mkt.asize > 0:
            self._fill(o, min(o.remaining, mkt.asize), mkt.ask, maker=False, mkt=mkt)
        elif o.side == 'sell' and o.price <= mkt.bid and mkt.bsize > 0:
            self._fill(o, min(o.remaining, mkt.bsize), mkt.bid, maker=False, mkt=mkt)

    def _fill(self, o: Order, qty: Decimal, px: Decimal, maker: bool,
              mkt: SymbolMarket | None = None, public: bool = True) -> dict | None:
        qty = qty.quantize(Decimal(1).scaleb(-o.pair.lot_decimals))
        if qty <= 0:
            return None
        cost = qty * px
        fee = (cost * (self.maker if maker else self.taker)).quantize(Decimal('0.00000001'))
        base, quote = o.pair.base, o.pair.quote
        sign = 1 if o.side == 'buy' else -1
        self.balances[base] = self.balances.get(base, ZERO) + sign * qty
        self.balances[quote] = self.balances.get(quote, ZERO) - sign * cost - fee
        o.cum_qty += qty
        o.cum_cost += cost
        o.fee += fee
        o.status = 'filled' if o.remaining <= 0 else 'partially_filled'
        if mkt is not None and not maker:
            mkt.consume(o.side, qty)
        tid = self.trade_ids[o.pair.symbol] = self.trade_ids.get(o.pair.symbol, 0) + 1
        if public:
            self.fake.public_trade(o.pair.symbol, px, qty, o.side if not maker else
                                   ('sell' if o.side == 'buy' else 'buy'))
        ev = self._emit(
            o, 'trade', last_qty=float(qty), last_price=float(px), cost=float(cost),
            trade_id=tid, liquidity_ind='m' if maker else 't',
            fees=[{'asset': o.pair.symbol.split('/')[1], 'qty': float(fee)}],
            # as Kraken documents: a trade says partially_filled even when it
            # completes the order; a separate 'filled' event follows
            order_status='partially_filled',
        )
        self.fills.append(ev)
        if o.remaining <= 0:
            o.closed = self.fake.clock()
            self._emit(o, 'filled')
        return ev

    def _resting(self, symbol: str, side: str) -> list[Order]:
        out = [o for o in self.orders.values()
               if o.is_open and o.pair.symbol == symbol and o.side == side]
        return sorted(out, key=lambda o: (-o.price if side == 'buy' else o.price, o.opened))

    def on_book(self, symbol: str, mkt: SymbolMarket) -> None:
        for o in self._resting(symbol, 'buy'):
            if mkt.asize > 0 and o.price >= mkt.ask:
                q = min(o.remaining, mkt.asize)
                mkt.asize -= q
                self._fill(o, q, o.price, maker=True)
        for o in self._resting(symbol, 'sell'):
            if mkt.bsize > 0 and o.price <= mkt.bid:
                q = min(o.remaining, mkt.bsize)
                mkt.bsize -= q
                self._fill(o, q, o.price, maker=True)

    def on_trade(self, symbol: str, side: str, price: Decimal, qty: Decimal) -> None:
        left = qty
        rest = 'buy' if side == 'sell' else 'sell'
        for o in self._resting(symbol, rest):
            if left <= 0:
                break
            if (rest == 'buy' and price <= o.price) or (rest == 'sell' and price >= o.price):
                q = min(o.remaining, left)
                left -= q
                self._fill(o, q, o.price, maker=True, public=False)

    def force_fill(self, order_id: str, qty: Any = None, price: Any = None) -> dict:
        o = self.find(order_id)
        if not o.is_open:
            raise ValueError(f'order {order_id} is {o.status}')
        q = Decimal(str(qty)) if qty is not None else o.remaining
        px = Decimal(str(price)) if price is not None else o.price
        ev = self._fill(o, min(q, o.remaining), px, maker=True)
        return ev or {}

    # -- views -------------------------------------------------------------------

    def snapshot(self, orders: bool, trades: bool) -> list[dict]:
        now = self.fake.clock()
        out: list[dict] = []
        if trades:
            out += self.fills[-SNAP_TRADES:]
        if orders:
            out += [o.view('new' if not o.cum_qty else 'trade', now, '')
                    | {'exec_type': 'new'} for o in self.orders.values() if o.is_open]
        return out

    def order_list(self, open_only: bool = False) -> list[dict]:
        now = self.fake.clock()
        return [o.view('status', now, '') for o in self.orders.values()
                if o.is_open or not open_only]


Publish = Callable[[dict], None]
