"""The account and its matching engine: balances, orders, fills, reports.

Orders match against the scripted L1 book of their market:

- a new order that is marketable (a buy at or above the ask, a sell at or
  below the bid) takes from the touch at the touch's price, at most the
  quoted size (which our fill then takes off the book): partial fills;
- a resting order fills at its own limit price when the opposite touch
  crosses it (at most the quoted size) or a public trade prints at or
  through it (at most the trade's size); best price first, then time;
- GTC rests, IOC expires its remainder, FOK fills whole or expires;
  LIMIT_MAKER is rejected if it would take; MARKET takes and expires the
  rest.

Commission is `rate` (taker; `maker_rate` for resting fills) of the fill,
charged in the quote asset (`commission_asset='quote'`, the default), in
the asset received (`'received'`, Binance's own rule) or in BNB at 25% off
(`'BNB'`, converted at the BNB market's mid; the quote asset when BNB
runs short). A buy locks its notional plus the commission it may owe.

Every change is reported on the user data stream as Binance does: an
`executionReport` per state change or fill (through the fault switches),
then an `outboundAccountPosition` of the assets it touched. Our fills are
also printed as public trades with the market's next trade id.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from . import _errors as err
from ._auth import new_key
from ._errors import BinanceError
from ._fmt import ZERO, d8, parse_decimal
from ._market import SymbolMarket

if TYPE_CHECKING:
    from ._fake import FakeBinance

DEFAULT_BALANCES = {'USDT': '10000', 'BTC': '1', 'ETH': '10', 'SOL': '100', 'BNB': '10'}
BNB_DISCOUNT = Decimal('0.75')
_P8 = Decimal('0.00000001')
OPEN = ('NEW', 'PARTIALLY_FILLED')
SIDES = ('BUY', 'SELL')
TYPES = ('LIMIT', 'LIMIT_MAKER', 'MARKET')
TIFS = ('GTC', 'IOC', 'FOK')


def q8(x: Decimal) -> Decimal:
    return x.quantize(_P8, ROUND_HALF_UP)


class Order:
    """One order's whole state."""

    def __init__(self, mkt: SymbolMarket, order_id: int, client_id: str, side: str, type: str,
                 tif: str, price: Decimal, qty: Decimal, now: int) -> None:
        self.mkt = mkt
        self.symbol = mkt.symbol
        self.order_id = order_id
        self.client_id = client_id
        self.side = side
        self.type = type
        self.tif = tif
        self.price = price
        self.qty = qty
        self.executed = ZERO
        self.cum_quote = ZERO
        self.status = 'NEW'
        self.time = now
        self.update_time = now
        self.locked = ZERO         # what is still locked for it (in lock_asset)
        self.lock_asset = mkt.spec.quote if side == 'BUY' else mkt.spec.base
        self.fills: list[dict] = []

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    def query(self) -> dict:
        """GET /api/v3/order shape."""
        return {
            'symbol': self.symbol, 'orderId': self.order_id, 'orderListId': -1,
            'clientOrderId': self.client_id, 'price': d8(self.price), 'origQty': d8(self.qty),
            'executedQty': d8(self.executed), 'cummulativeQuoteQty': d8(self.cum_quote),
            'status': self.status, 'timeInForce': self.tif, 'type': self.type, 'side': self.side,
            'stopPrice': d8(0), 'icebergQty': d8(0), 'time': self.time,
            'updateTime': self.update_time, 'isWorking': True, 'workingTime': self.time,
            'origQuoteOrderQty': d8(0), 'selfTradePreventionMode': 'EXPIRE_MAKER',
        }

    def result(self, resp_type: str) -> dict:
        """POST /api/v3/order reply for `newOrderRespType`."""
        body = {'symbol': self.symbol, 'orderId': self.order_id, 'orderListId': -1,
                'clientOrderId': self.client_id, 'transactTime': self.time}
        if resp_type == 'ACK':
            return body
        body.update({
            'price': d8(self.price), 'origQty': d8(self.qty), 'executedQty': d8(self.executed),
            'origQuoteOrderQty': d8(0), 'cummulativeQuoteQty': d8(self.cum_quote),
            'status': self.status, 'timeInForce': self.tif, 'type': self.type,
            'side': self.side, 'workingTime': self.time,
            'selfTradePreventionMode': 'EXPIRE_MAKER',
        })
        if resp_type == 'FULL':
            body['fills'] = list(self.fills)
        return body


class Engine:
    def __init__(self, fake: FakeBinance, balances: dict | None, rate: Decimal,
                 commission_asset: str, maker_rate: Decimal | None = None) -> None:
        if commission_asset not in ('quote', 'received', 'BNB'):
            raise ValueError(f"commission_asset is 'quote', 'received' or 'BNB', not {commission_asset!r}")
        if not 0 <= rate < 1:
            raise ValueError(f'commission must be in [0, 1), got {rate}')
        self.fake = fake
        self.rate = rate
        self.maker_rate = rate if maker_rate is None else maker_rate
        self.commission_asset = commission_asset
        self.free: dict[str, Decimal] = {}
        self.locked: dict[str, Decimal] = {}
        for asset, amount in (DEFAULT_BALANCES if balances is None else balances).items():
            self.free[asset.upper()] = Decimal(str(amount))
            self.locked[asset.upper()] = ZERO
        self.orders: dict[int, Order] = {}
        self.my_trades: list[dict] = []
        self._next_id = 1
        self._seq = 0
        self.update_time = 0

    # -- balances ----------------------------------------------------------

    def _add(self, asset: str, free: Decimal = ZERO, locked: Decimal = ZERO) -> None:
        self.free[asset] = self.free.get(asset, ZERO) + free
        self.locked[asset] = self.locked.get(asset, ZERO) + locked

    def balance_map(self) -> dict[str, dict[str, str]]:
        return {a: {'free': d8(self.free[a]), 'locked': d8(self.locked.get(a, ZERO))}
                for a in sorted(self.free)}

    def account(self, omit_zero: bool = False) -> dict:
        bps = int(self.rate * 10_000)
        mbps = int(self.maker_rate * 10_000)
        return {
            'makerCommission': mbps, 'takerCommission': bps, 'buyerCommission': 0,
            'sellerCommission': 0,
            'commissionRates': {'maker': d8(self.maker_rate), 'taker': d8(self.rate),
                                'buyer': d8(0), 'seller': d8(0)},
            'canTrade': True, 'canWithdraw': True, 'canDeposit': True, 'brokered': False,
            'requireSelfTradePrevention': False, 'preventSor': False,
            'updateTime': self.update_time, 'accountType': 'SPOT',
            'balances': [
                {'asset': a, 'free': d8(self.free[a]), 'locked': d8(self.locked.get(a, ZERO))}
                for a in sorted(self.free)
                if not omit_zero or self.free[a] or self.locked.get(a, ZERO)
            ],
            'permissions': ['SPOT'], 'uid': 354937868,
        }

    def deposit(self, asset: str, amount: Decimal) -> None:
        asset = asset.upper()
        if self.free.get(asset, ZERO) + amount < 0:
            raise ValueError(f'cannot debit {-amount} {asset}: only {self.free.get(asset, ZERO)} free')
        self._add(asset, free=amount)
        now = self.fake.now_ms()
        self.fake.hub.publish_user({'e': 'balanceUpdate', 'E': now, 'a': asset,
                                    'd': d8(amount), 'T': now})
        self._position([asset], now)

    def _position(self, assets: list[str], now: int) -> None:
        self.update_time = now
        self.fake.hub.publish_user({
            'e': 'outboundAccountPosition', 'E': now, 'u': now,
            'B': [{'a': a, 'f': d8(self.free.get(a, ZERO)), 'l': d8(self.locked.get(a, ZERO))}
                  for a in dict.fromkeys(assets)],
        })

    # -- reports -----------------------------------------------------------

    def _report(self, o: Order, x: str, now: int, fill: dict | None = None,
                cancel_id: str | None = None, maker: bool = False) -> None:
        self._seq += 1
        lq = Decimal(fill['qty']) if fill else ZERO
        lp = Decimal(fill['price']) if fill else ZERO
        event = {
            'e': 'executionReport', 'E': now, 's': o.symbol,
            'c': cancel_id if cancel_id is not None else o.client_id,
            'S': o.side, 'o': o.type, 'f': o.tif, 'q': d8(o.qty), 'p': d8(o.price),
            'P': d8(0), 'F': d8(0), 'g': -1,
            'C': o.client_id if cancel_id is not None else '',
            'x': x, 'X': o.status, 'r': 'NONE', 'i': o.order_id,
            'l': d8(lq), 'z': d8(o.executed), 'L': d8(lp),
            'n': fill['commission'] if fill else '0',
            'N': fill['commissionAsset'] if fill else None,
            'T': now, 't': fill['tradeId'] if fill else -1, 'I': self._seq,
            'w': o.is_open, 'm': maker, 'M': False, 'O': o.time,
            'Z': d8(o.cum_quote), 'Y': d8(q8(lq * lp)), 'Q': d8(0), 'W': o.time,
            'V': 'EXPIRE_MAKER',
        }
        self.fake.faults.route_report(event, self.fake.hub.publish_user)

    # -- lookups -----------------------------------------------------------

    def find(self, params: dict[str, str], id_key: str = 'orderId',
             client_key: str = 'origClientOrderId') -> Order | None:
        mkt = self.fake.market(params.get('symbol') or '')
        raw_id, client = params.get(id_key), params.get(client_key)
        if not raw_id and not client:
            raise BinanceError(-1102, f"Param '{client_key}' or '{id_key}' must be sent, "
                                      'but both were empty/null!')
        if raw_id:
            if not raw_id.isdigit():
                raise err.bad_param(id_key)
            o = self.orders.get(int(raw_id))
            if o is None or o.symbol != mkt.symbol or (client and o.client_id != client):
                return None
            return o
        # newest order with that client id
        for o in reversed(self.orders.values()):
            if o.symbol == mkt.symbol and o.client_id == client:
                return o
        return None

    def order_list(self, symbol: str | None, open_only: bool) -> list[dict]:
        sym = self.fake.market(symbol).symbol if symbol else None
        return [o.query() for o in self.orders.values()
                if (sym is None or o.symbol == sym) and (not open_only or o.is_open)]

    def trade_list(self, symbol: str | None) -> list[dict]:
        sym = self.fake.market(symbol).symbol if symbol else None
        return [t for t in self.my_trades if sym is None or t['symbol'] == sym]

    # -- new orders --------------------------------------------------------

    def _validate(self, mkt: SymbolMarket, params: dict[str, str]) -> tuple:
        side = params.get('side') or ''
        if not side:
            raise err.mandatory('side')
        if side not in SIDES:
            raise BinanceError(-1117, 'Invalid side.')
        otype = params.get('type') or ''
        if not otype:
            raise err.mandatory('type')
        if otype not in TYPES:
            raise BinanceError(-1116, 'Invalid orderType.')
        tif = params.get('timeInForce') or ''
        if otype == 'LIMIT':
            if not tif:
                raise err.mandatory('timeInForce')
            if tif not in TIFS:
                raise BinanceError(-1115, 'Invalid timeInForce.')
        elif tif:
            raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
        else:
            tif = 'GTC'
        qty = parse_decimal('quantity', params.get('quantity'))
        spec = mkt.spec
        if otype == 'MARKET':
            if params.get('price'):
                raise BinanceError(-1106, "Parameter 'price' sent when not required.")
            price = mkt.ask if side == 'BUY' else mkt.bid
        else:
            price = parse_decimal('price', params.get('price'))
            if price < spec.tick_size or price > Decimal(1_000_000) or (price % spec.tick_size) != 0:
                raise err.filter_failure('PRICE_FILTER')
        if qty < spec.min_qty or qty > spec.max_qty or ((qty - spec.min_qty) % spec.step_size) != 0:
            raise err.filter_failure('LOT_SIZE')
        if price * qty < spec.min_notional:
            raise err.filter_failure('NOTIONAL')
        resp = params.get('newOrderRespType') or 'FULL'
        if resp not in ('ACK', 'RESULT', 'FULL'):
            raise BinanceError(-1100, "Illegal characters found in parameter 'newOrderRespType'; legal range is 'ACK, RESULT, FULL'.")
        client = params.get('newClientOrderId') or new_key(22)
        if len(client) > 36:
            raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
        return side, otype, tif, price, qty, resp, client

    def _lock_rate(self) -> Decimal:
        return ZERO if self.commission_asset == 'received' else max(self.rate, self.maker_rate)

    def place(self, params: dict[str, str]) -> dict:
        """POST /api/v3/order."""
        if not params.get('symbol'):
            raise err.mandatory('symbol')
        mkt = self.fake.market(params['symbol'])
        side, otype, tif, price, qty, resp, client = self._validate(mkt, params)
        if any(o.is_open and o.client_id == client and o.symbol == mkt.symbol
               for o in self.orders.values()):
            raise err.duplicate_order()
        would_take = (mkt.ask <= price) if side == 'BUY' else (mkt.bid >= price)
        if otype == 'LIMIT_MAKER' and would_take:
            raise BinanceError(-2010, 'Order would immediately match and take.')
        spec = mkt.spec
        need = q8(price * qty * (1 + self._lock_rate())) if side == 'BUY' else qty
        asset = spec.quote if side == 'BUY' else spec.base
        if self.free.get(asset, ZERO) < need:
            raise err.insufficient_balance()
        now = self.fake.now_ms()
        o = Order(mkt, self._next_id, client, side, otype, tif, price, qty, now)
        self._next_id += 1
        self.orders[o.order_id] = o
        self._add(asset, free=-need, locked=need)
        o.locked = need
        touched = [asset]
        if tif == 'FOK' and (not would_take or (mkt.asize if side == 'BUY' else mkt.bsize) < qty):
            o.status = 'EXPIRED'
            self._release(o)
            self._report(o, 'NEW', now)
            self._report(o, 'EXPIRED', now)
            self._position(touched, now)
            return o.result(resp)
        self._report(o, 'NEW', now)
        if would_take:
            touched += self._take(o, now)
        if o.is_open and (tif in ('IOC', 'FOK') or otype == 'MARKET'):
            o.status = 'EXPIRED'
            o.update_time = now
            self._release(o)
            self._report(o, 'EXPIRED', now)
        self._position(touched, now)
        return o.result(resp)

    # -- fills -------------------------------------------------------------

    def _take(self, o: Order, now: int) -> list[str]:
        """A marketable order takes from the touch."""
        mkt = o.mkt
        avail = mkt.asize if o.side == 'BUY' else mkt.bsize
        px = mkt.ask if o.side == 'BUY' else mkt.bid
        qty = min(o.remaining, avail)
        if qty <= 0:
            return []
        mkt.consume('buy' if o.side == 'BUY' else 'sell', qty)
        self.fake.hub.publish(f'{mkt.symbol.lower()}@bookTicker', mkt.book_frame())
        return self._fill(o, qty, px, now, maker=False)

    def _fill(self, o: Order, qty: Decimal, px: Decimal, now: int, maker: bool) -> list[str]:
        """Book one fill of `o`: balances, public trade, report; returns
        the assets it touched."""
        spec = o.mkt.spec
        base, quote = spec.base, spec.quote
        rate = self.maker_rate if maker else self.rate
        notional = q8(qty * px)
        buy = o.side == 'BUY'
        comm, comm_asset = self._commission(o, qty, notional, rate)
        o.executed += qty
        o.cum_quote += notional
        o.status = 'FILLED' if o.remaining <= 0 else 'PARTIALLY_FILLED'
        o.update_time = now
        if buy:
            release = o.locked if o.remaining <= 0 else min(o.locked, q8(qty * o.price * (1 + self._lock_rate())))
            o.locked -= release
            self._add(quote, free=release - notional, locked=-release)
            self._add(base, free=qty)
        else:
            o.locked -= qty
            self._add(base, locked=-qty)
            self._add(quote, free=notional)
        self._add(comm_asset, free=-comm)
        tid = self.fake.publish_trade(o.mkt, px, qty, buyer_maker=(buy == maker))
        fill = {'price': d8(px), 'qty': d8(qty), 'commission': d8(comm),
                'commissionAsset': comm_asset, 'tradeId': tid}
        o.fills.append(fill)
        self.my_trades.append({
            'symbol': o.symbol, 'id': tid, 'orderId': o.order_id, 'orderListId': -1,
            'price': d8(px), 'qty': d8(qty), 'quoteQty': d8(notional), 'commission': d8(comm),
            'commissionAsset': comm_asset, 'time': now, 'isBuyer': buy, 'isMaker': maker,
            'isBestMatch': True,
        })
        self._report(o, 'TRADE', now, fill=fill, maker=maker)
        return [base, quote, comm_asset]

    def _commission(self, o: Order, qty: Decimal, notional: Decimal, rate: Decimal) -> tuple[Decimal, str]:
        spec = o.mkt.spec
        if self.commission_asset == 'received':
            return (q8(qty * rate), spec.base) if o.side == 'BUY' else (q8(notional * rate), spec.quote)
        if self.commission_asset == 'BNB':
            bnb_px = self._bnb_price(spec.quote)
            if bnb_px:
                comm = q8(notional * rate * BNB_DISCOUNT / bnb_px)
                if self.free.get('BNB', ZERO) >= comm:
                    return comm, 'BNB'
        return q8(notional * rate), spec.quote

    def _bnb_price(self, quote: str) -> Decimal | None:
        """BNB's mid price in `quote`, through USDT markets if needed."""
        markets = self.fake.markets

        def mid(sym: str) -> Decimal | None:
            m = markets.get(sym)
            return (m.bid + m.ask) / 2 if m is not None else None

        if quote == 'BNB':
            return Decimal(1)
        direct = mid(f'BNB{quote}')
        if direct:
            return direct
        bnb_usdt, quote_usdt = mid('BNBUSDT'), mid(f'{quote}USDT')
        if bnb_usdt and quote_usdt:
            return bnb_usdt / quote_usdt
        return None

    def _release(self, o: Order) -> None:
        if o.locked:
            self._add(o.lock_asset, free=o.locked, locked=-o.locked)
            o.locked = ZERO

    def _resting(self, mkt: SymbolMarket, side: str) -> list[Order]:
        orders = [o for o in self.orders.values()
                  if o.is_open and o.symbol == mkt.symbol and o.side == side]
        orders.sort(key=lambda o: (-o.price if side == 'BUY' else o.price, o.order_id))
        return orders

    def on_book(self, mkt: SymbolMarket) -> None:
        """The book moved: resting orders it crosses fill at their limit."""
        now = self.fake.now_ms()
        touched: list[str] = []
        for o in self._resting(mkt, 'BUY'):
            if mkt.ask > o.price or mkt.asize <= 0:
                break
            qty = min(o.remaining, mkt.asize)
            mkt.consume('buy', qty)
            touched += self._fill(o, qty, o.price, now, maker=True)
        for o in self._resting(mkt, 'SELL'):
            if mkt.bid < o.price or mkt.bsize <= 0:
                break
            qty = min(o.remaining, mkt.bsize)
            mkt.consume('sell', qty)
            touched += self._fill(o, qty, o.price, now, maker=True)
        if touched:
            self.fake.hub.publish(f'{mkt.symbol.lower()}@bookTicker', mkt.book_frame())
            self._position(touched, now)

    def on_trade(self, mkt: SymbolMarket, side: str, price: Decimal, qty: Decimal) -> None:
        """A public trade printed: resting orders at or through its price
        fill at their limit, up to its size."""
        now = self.fake.now_ms()
        touched: list[str] = []
        left = qty
        for o in self._resting(mkt, 'BUY'):
            if price > o.price or left <= 0:
                break
            q = min(o.remaining, left)
            left -= q
            touched += self._fill(o, q, o.price, now, maker=True)
        left = qty
        for o in self._resting(mkt, 'SELL'):
            if price < o.price or left <= 0:
                break
            q = min(o.remaining, left)
            left -= q
            touched += self._fill(o, q, o.price, now, maker=True)
        if touched:
            self._position(touched, now)

    def force_fill(self, order_id: int, qty: float | str | None, price: float | str | None) -> list[dict]:
        """Fill an open order now (see `FakeBinance.fill`)."""
        o = self.orders.get(int(order_id))
        if o is None or not o.is_open:
            raise ValueError(f'order {order_id} is not open')
        q = o.remaining if qty is None else Decimal(str(qty))
        if not 0 < q <= o.remaining:
            raise ValueError(f'fill qty must be in (0, {o.remaining}], got {qty!r}')
        px = o.price if price is None else Decimal(str(price))
        now = self.fake.now_ms()
        before = len(o.fills)
        self._position(self._fill(o, q, px, now, maker=True), now)
        return o.fills[before:]

    # -- cancels -----------------------------------------------------------

    def cancel(self, params: dict[str, str]) -> dict:
        """DELETE /api/v3/order."""
        if not params.get('symbol'):
            raise err.mandatory('symbol')
        o = self.find(params)
        if o is None or not o.is_open:
            raise err.unknown_order()
        now = self.fake.now_ms()
        cancel_id = params.get('newClientOrderId') or new_key(22)
        o.status = 'CANCELED'
        o.update_time = now
        self._release(o)
        self._report(o, 'CANCELED', now, cancel_id=cancel_id)
        self._position([o.lock_asset], now)
        return {
            'symbol': o.symbol, 'origClientOrderId': o.client_id, 'orderId': o.order_id,
            'orderListId': -1, 'clientOrderId': cancel_id, 'transactTime': now,
            'price': d8(o.price), 'origQty': d8(o.qty), 'executedQty': d8(o.executed),
            'origQuoteOrderQty': d8(0), 'cummulativeQuoteQty': d8(o.cum_quote),
            'status': o.status, 'timeInForce': o.tif, 'type': o.type, 'side': o.side,
            'selfTradePreventionMode': 'EXPIRE_MAKER',
        }

    def cancel_replace(self, params: dict[str, str]) -> dict:
        """POST /api/v3/order/cancelReplace (STOP_ON_FAILURE, ALLOW_FAILURE)."""
        mode = params.get('cancelReplaceMode') or ''
        if not mode:
            raise err.mandatory('cancelReplaceMode')
        if mode not in ('STOP_ON_FAILURE', 'ALLOW_FAILURE'):
            raise BinanceError(-1100, "Illegal characters found in parameter 'cancelReplaceMode'; legal range is 'STOP_ON_FAILURE, ALLOW_FAILURE'.")
        if not params.get('symbol'):
            raise err.mandatory('symbol')
        self.fake.market(params['symbol'])
        cancel_params = {'symbol': params['symbol']}
        for src, dst in (('cancelOrderId', 'orderId'), ('cancelOrigClientOrderId', 'origClientOrderId'),
                         ('cancelNewClientOrderId', 'newClientOrderId')):
            if params.get(src):
                cancel_params[dst] = params[src]
        if not params.get('cancelOrderId') and not params.get('cancelOrigClientOrderId'):
            raise BinanceError(-1102, "Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be "
                                      'sent, but both were empty/null!')
        new_params = {k: v for k, v in params.items() if not k.startswith('cancel')}
        cancel_resp: dict | None = None
        cancel_err: BinanceError | None = None
        try:
            cancel_resp = self.cancel(cancel_params)
        except BinanceError as e:
            cancel_err = e
        if cancel_err is not None and mode == 'STOP_ON_FAILURE':
            raise BinanceError(-2022, 'Order cancel-replace failed.', data={
                'cancelResult': 'FAILURE', 'newOrderResult': 'NOT_ATTEMPTED',
                'cancelResponse': cancel_err.body(), 'newOrderResponse': None})
        try:
            new_resp = self.place(new_params)
        except BinanceError as e:
            cancel_part = cancel_resp if cancel_resp is not None else cancel_err.body()  # type: ignore[union-attr]
            code, msg = ((-2021, 'Order cancel-replace partially failed.') if cancel_resp is not None
                         else (-2022, 'Order cancel-replace failed.'))
            raise BinanceError(code, msg, data={
                'cancelResult': 'SUCCESS' if cancel_resp is not None else 'FAILURE',
                'newOrderResult': 'FAILURE', 'cancelResponse': cancel_part,
                'newOrderResponse': e.body()}) from None
        if cancel_err is not None:  # ALLOW_FAILURE: the new order went in anyway
            raise BinanceError(-2021, 'Order cancel-replace partially failed.', data={
                'cancelResult': 'FAILURE', 'newOrderResult': 'SUCCESS',
                'cancelResponse': cancel_err.body(), 'newOrderResponse': new_resp})
        return {'cancelResult': 'SUCCESS', 'newOrderResult': 'SUCCESS',
                'cancelResponse': cancel_resp, 'newOrderResponse': new_resp}
