"""Live trading on Binance spot: the `trades_dialogue` (DESIGN.md section 5).

Orders are limit orders (`POST /api/v3/order`), `timeInForce` GTC, IOC
or FOK from `BrokerdOrder.tif` (an IOC/FOK remainder Binance expires is
reported cancelled), cancels
`DELETE /api/v3/order`, modifies `POST /api/v3/order/cancelReplace`
(STOP_ON_FAILURE: a failed cancel leaves the order as it was). What
happens to them comes from the user data stream (`_userstream`) and is
turned into emsd's messages by `_orders.Tracker`: one dialog per chain of
Binance orders, whatever the modifies (see `_orders` for the ids, trade
ids and fee conversion).

Each dialogue opens with the order report of the backend contract:
positions; the fills of the last 23 h (`myTrades`) of every market this
account trades through piker (`_state`) or has working orders in, each
order that has some with its final status (`GET /api/v3/order`); one
announcement per working order (`openOrders`); `BrokerdOrdersSynced`.
An order cancelled while nobody listened, without fills, is not listed:
emsd resolves it as cancelled (not at the venue after reconnect). The user data
stream is connected before the report is read, and its events wait
until the report is sent, so nothing falls in between. After a user data
stream reconnect the same report (minus what was sent) is sent again:
events are lost while it is down.

Binance's refusals become `BrokerdError`s carrying Binance's own message
("Account has insufficient balance for requested action.", "Filter
failure: PRICE_FILTER", ...).
"""
from __future__ import annotations

import math
import time
from typing import Any

import msgspec
import tractor
import trio

from ...accounting import to_decimal
from ...clearing._messages import (
    BrokerdCancel,
    BrokerdError,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdOrdersSynced,
    BrokerdPosition,
    BrokerdStatus,
    MessageError,
    decode_backend_cmd,
    reply_oid,
)
from ...log import get_console_log, get_logger
from .._dialogue import serve_commands
from .._ledger import LedgerSink
from ._markets import BROKER, Market
from ._orders import (
    WORKING,
    ExecReport,
    LiveOrder,
    OrderRow,
    Tracker,
    TradeRow,
    action_of,
    client_id,
    fee_in_quote,
    parse_client_id,
    tid_of,
)
from ._positions import Positions
from ._rest import BinanceError
from ._session import Session, get_session
from ._state import add_symbol, load_symbols
from ._userstream import run_user_stream

log = get_logger('brokers.binance.trades')

REPORTS_ORDERS = True
# what `BrokerdOrder.tif` may be here: Binance's timeInForce GTC/IOC/FOK
TIME_IN_FORCE = ('gtc', 'ioc', 'fok')
# how far back an order report looks (myTrades allows a 24 h span)
REPORT_SPAN_MS = 23 * 3600 * 1000
# a third-asset commission price (e.g. BNBUSDT) is reused this long
FEE_PRICE_TTL = 60.0


def live_accounts(sess: Session) -> list[str]:
    """The names live orders may use: `[binance] accounts` minus 'paper'."""
    return [a for a in sess.conf.accounts if a != 'paper'] or ['spot']


def _num(value: float) -> str:
    """A float as the exact decimal its repr shows (`0.1`, not `0.1000..5`)."""
    dec = to_decimal(value).normalize()
    return format(dec, 'f')


class BinanceVenue:
    """One trades dialogue's view of the Binance account."""

    def __init__(self, sess: Session, account: str) -> None:
        self.sess = sess
        self.client = sess.client
        self.account = account
        self.tracker = Tracker(account)
        self.out_send, self.out_recv = trio.open_memory_channel[Any](math.inf)
        self._fee_prices: dict[str, tuple[float, float]] = {}
        self._reported = False
        self._held: list[str | bytes] = []  # user events before the report
        self._lock = trio.Lock()  # one REST exchange + its events at a time
        self.ledger = LedgerSink(BROKER, account)
        # the markets this account trades through piker (see `_state`)
        self.symbols: set[str] = load_symbols()
        self.pos = Positions(self.client, account, self.symbols)

    def emit(self, *msgs: Any) -> None:
        for msg in msgs:
            self.out_send.send_nowait(msg)

    async def market(self, key_or_symbol: str) -> Market:
        return await self.sess.markets.get(self.client, key_or_symbol)

    # -- fees -------------------------------------------------------------------

    async def _asset_price(self, asset: str, quote: str) -> float | None:
        """`asset`'s mid price in `quote` (bookTicker of `<asset><quote>`),
        cached `FEE_PRICE_TTL`; None if Binance lists no such market."""
        key = f'{asset}{quote}'.upper()
        hit = self._fee_prices.get(key)
        if hit is not None and time.monotonic() - hit[1] < FEE_PRICE_TTL:
            return hit[0]
        try:
            book = await self.client.book_ticker(key)
            price = (float(book['bidPrice']) + float(book['askPrice'])) / 2
        except (BinanceError, KeyError, ValueError, TypeError):
            return None
        self._fee_prices[key] = (price, time.monotonic())
        return price

    async def _fee(self, market: Market, commission: str, asset: str | None,
                   price: float) -> float | None:
        base, quote = market.mkt.dst.name, market.mkt.src.name
        third = None
        if asset and asset.lower() not in (base, quote) and float(commission or 0):
            third = await self._asset_price(asset, quote)
        return fee_in_quote(float(commission or 0), asset, base, quote, price, third)

    # -- positions ----------------------------------------------------------------

    async def positions(self) -> list[BrokerdPosition]:
        """Every traded market's position (see `_positions`)."""
        balances = await self.pos.balances()
        markets = []
        for symbol in sorted(self.symbols):
            try:
                markets.append(await self.market(symbol))
            except LookupError:
                continue
        return self.pos.of_balances(markets, balances)

    # -- the order report ---------------------------------------------------------

    async def report(self) -> list[Any]:
        """The order report (see module doc); also (re)builds the tracker."""
        since = int(time.time() * 1000) - REPORT_SPAN_MS
        open_rows = [msgspec.convert(r, OrderRow) for r in await self.client.open_orders()]
        symbols = self.symbols | {r.symbol for r in open_rows}
        msgs: list[Any] = []
        working: list[str] = []
        for symbol in sorted(symbols):
            market = await self.market(symbol)
            trades = [msgspec.convert(t, TradeRow)
                      for t in await self.client.my_trades(symbol, since)]
            self.pos.from_trades(symbol, trades)
            rows = {r.orderId: r for r in open_rows if r.symbol == symbol}
            # a finished order is only seen through its fills: ask for it
            # (its client id names the dialog, its status how it ended)
            for order_id in sorted({t.orderId for t in trades} - set(rows)):
                rows[order_id] = msgspec.convert(
                    await self.client.query_order(symbol, order_id), OrderRow)
            msgs += await self._report_market(market, list(rows.values()), trades, working)
        return [*await self.positions(), *msgs,
                BrokerdOrdersSynced(reqids=working, time_ns=time.time_ns())]

    async def _report_market(
        self, market: Market, rows: list[OrderRow], trades: list[TradeRow],
        working: list[str],
    ) -> list[Any]:
        chains: dict[str, list[OrderRow]] = {}
        for row in sorted(rows, key=lambda r: (r.time, r.orderId)):
            parsed = parse_client_id(row.clientOrderId)
            reqid = parsed[1] if parsed else str(row.orderId)
            chains.setdefault(reqid, []).append(row)
        by_order: dict[int, list[TradeRow]] = {}
        for t in sorted(trades, key=lambda t: (t.time, t.id)):
            by_order.setdefault(t.orderId, []).append(t)
        msgs: list[Any] = []
        for reqid, chain in chains.items():
            last = chain[-1]
            parsed = parse_client_id(last.clientOrderId)
            is_open = last.status in WORKING
            if parsed is None and not is_open:
                continue  # a finished order piker never knew
            prior = sum(float(r.executedQty) for r in chain[:-1])
            order = LiveOrder(
                reqid=reqid, oid=parsed[0] if parsed else last.clientOrderId or reqid,
                symbol=last.symbol,
                key=market.mkt.bs_fqme, action=action_of(last.side),
                price=float(last.price), size=float(last.origQty) + prior,
                account=self.account, time_ns=chain[0].time * 1_000_000,
                gen=parsed[2] if parsed else 0,
            )
            order.order_id = last.orderId
            order.replaced = {r.orderId for r in chain[:-1]}
            order.filled_before = prior
            order.cum = float(last.executedQty)
            order.acked = order.opened = True
            for row in chain:
                for t in by_order.get(row.orderId, []):
                    tid = tid_of(t.symbol, t.id)
                    self.tracker.tids.add(tid)
                    cost = await self._fee(market, t.commission, t.commissionAsset,
                                           float(t.price))
                    fill = _fill_msg(order, t, tid, cost)
                    self.ledger.add(fill, market)
                    msgs.append(fill)
            if is_open:
                self.tracker.add(order)
                working.append(reqid)
                msgs.append(order.announce())
            else:
                status = 'closed' if last.status == 'FILLED' else 'canceled'
                order.done = True
                msgs.append(order.status(status, f'{last.status.lower()} at Binance'))
        return msgs

    async def resync(self) -> None:
        """After a user data stream reconnect: report what it missed."""
        async with self._lock:
            before = dict(self.tracker.by_reqid)
            seen = set(self.tracker.tids)
            msgs = await self.report()
            synced = msgs[-1]
            assert isinstance(synced, BrokerdOrdersSynced)
            working = {str(r) for r in synced.reqids}
            ended = {m.reqid for m in msgs if isinstance(m, BrokerdStatus)
                     and m.status in ('closed', 'canceled')}
            # news only: fills not reported yet, final statuses of orders
            # this dialogue still tracked
            out = [m for m in msgs[:-1] if not (
                (isinstance(m, BrokerdFill) and m.tid in seen)
                or (isinstance(m, BrokerdStatus) and m.reqid in ended
                    and m.reqid not in before))]
            # a tracked order no longer working ended while nobody listened
            for reqid, order in before.items():
                if reqid in working:
                    continue
                if reqid in ended:
                    self.tracker.drop(order)
                else:  # cancelled without fills (none in the report)
                    out += self.tracker.finish(
                        order, 'closed' if not order.remaining else 'canceled',
                        'not working at Binance after the user data stream came back')
            self.emit(*out)

    # -- user data stream ---------------------------------------------------------

    async def on_user_event(self, raw: str | bytes) -> None:
        async with self._lock:
            if not self._reported:
                self._held.append(raw)  # after the report, in order
                return
            await self._apply(raw)

    async def release_held(self) -> None:
        """The report is out: apply the events that waited for it, then
        every event as it comes."""
        async with self._lock:
            for raw in self._held:
                await self._apply(raw)
            self._held.clear()
            self._reported = True

    async def _apply(self, raw: str | bytes) -> None:
        """One user data event; a bad one is logged, never fatal."""
        try:
            await self._apply_event(raw)
        except BinanceError as err:  # a REST call it needed (fee price...)
            log.warning('user data event not applied (%s): %.200r', err, raw)
        except Exception:
            log.exception('failed to apply user data event %.200r', raw)

    async def _apply_event(self, raw: str | bytes) -> None:
        try:
            head = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            log.warning('bad user data frame ignored: %.200r', raw)
            return
        kind = head.get('e') if isinstance(head, dict) else None
        if kind == 'executionReport':
            try:
                ev = msgspec.convert(head, ExecReport)
            except msgspec.ValidationError as err:
                log.warning('bad executionReport ignored (%s): %.200r', err, raw)
                return
            await self._on_exec(ev)
        elif kind == 'outboundAccountPosition':
            self.emit(*self.pos.of_event(head, self.sess.markets.by_symbol))

    async def _on_exec(self, ev: ExecReport) -> None:
        try:
            market = await self.market(ev.s)
        except LookupError:
            log.warning('executionReport for unknown market %s ignored', ev.s)
            return
        cost: float | None = 0.0
        if ev.x == 'TRADE':
            cost = await self._fee(market, ev.n, ev.N, float(ev.L))
        msgs = self.tracker.on_exec(ev, market.mkt.bs_fqme, lambda _: cost)
        self.emit(*msgs)
        for msg in msgs:
            if isinstance(msg, BrokerdFill):
                self.pos.on_fill(market.symbol, msg.action, msg.price, msg.size)
                self.ledger.add(msg, market)

    # -- commands -----------------------------------------------------------------

    async def handle(self, raw: Any) -> None:
        try:
            cmd = decode_backend_cmd(raw)
        except MessageError as err:
            self.emit(BrokerdError(oid=reply_oid(raw), reason=err.reason))
            return
        async with self._lock:
            if isinstance(cmd, BrokerdCancel):
                await self.cancel(cmd)
            elif cmd.reqid is None:
                await self.order(cmd)
            else:
                await self.modify(cmd)

    def _error(self, cmd: BrokerdOrder | BrokerdCancel, reason: str,
               reqid: Any = None) -> BrokerdError:
        return BrokerdError(
            oid=cmd.oid, reqid=reqid, reason=reason,
            symbol=getattr(cmd, 'symbol', ''),
        )

    async def order(self, cmd: BrokerdOrder) -> None:
        if cmd.account != self.account:
            self.emit(self._error(cmd, f'unknown account {cmd.account!r} for binance '
                                  f'(live): use {self.account!r}'))
            return
        try:
            market = await self.market(cmd.symbol)
        except (LookupError, BinanceError) as err:
            self.emit(self._error(cmd, str(err)))
            return
        cid = client_id(cmd.oid)
        if cid is None:
            self.emit(self._error(cmd, f'oid {cmd.oid!r} is not a uuid: Binance client '
                                  'order ids carry the oid, so piker needs uuid oids'))
            return
        order = LiveOrder(
            reqid=cid[:-2], oid=cmd.oid, symbol=market.symbol, key=market.mkt.bs_fqme,
            action=cmd.action, price=cmd.price, size=cmd.size, account=cmd.account,
            time_ns=cmd.time_ns,
        )
        self.tracker.add(order)
        first_order = market.symbol not in self.symbols
        if first_order:
            self.symbols.add(market.symbol)
            await trio.to_thread.run_sync(add_symbol, market.symbol)
        try:
            resp = await self.client.new_order(
                symbol=market.symbol, side=cmd.action.upper(), type='LIMIT',
                timeInForce=cmd.tif.upper(), quantity=_num(cmd.size), price=_num(cmd.price),
                newClientOrderId=cid, newOrderRespType='RESULT',
            )
        except BinanceError as err:
            resp = await self._placed_anyway(market, cid, err)
            if resp is None:
                self.tracker.drop(order)
                self.emit(self._error(cmd, str(err)))
                return
        self._answered(order, resp)
        if first_order:
            # a market new to this account: its position (what it holds
            # already) was not in the handshake
            await self._emit_position(market)

    async def _emit_position(self, market: Market) -> None:
        try:
            balances = await self.pos.balances()
        except BinanceError as err:
            log.warning('no balances for %s: %s', market.symbol, err)
            return
        self.emit(*self.pos.of_balances([market], balances))

    async def _placed_anyway(
        self, market: Market, cid: str, err: BinanceError,
    ) -> dict[str, Any] | None:
        """After a 5XX (or a lost answer) Binance says the order's fate is
        unknown: look it up by its client id; None if it does not exist."""
        if err.code is not None and err.status < 500:
            return None  # a definite refusal
        try:
            return await self.client.query_order(market.symbol, client_id=cid)
        except BinanceError as lookup:
            log.warning('order %s not placed (%s; lookup: %s)', cid, err, lookup)
            return None

    def _answered(self, order: LiveOrder, resp: dict[str, Any]) -> None:
        """A new order's REST answer: ack, and 'open' if the stream has not
        said it yet (the stream may be slower than the answer)."""
        try:
            row = msgspec.convert(resp, OrderRow)
        except msgspec.ValidationError:
            log.warning('unexpected order answer: %.300r', resp)
            return
        if order.order_id is None:
            self.tracker.set_order_id(order, row.orderId)
        self.emit(*order.ack())
        if row.status in WORKING and not order.opened:
            order.opened = True
            self.emit(order.status('open'))

    async def cancel(self, cmd: BrokerdCancel) -> None:
        order = self.tracker.find(cmd.reqid, cmd.oid)
        if order is None or order.order_id is None:
            self.emit(self._error(cmd, f'no working order {cmd.reqid!r} to cancel '
                                  '(already filled or cancelled?)', reqid=cmd.reqid))
            return
        try:
            resp = await self.client.cancel_order(order.symbol, order.order_id)
        except BinanceError as err:
            self.emit(self._error(cmd, f'cancel refused by Binance: {err}', reqid=order.reqid))
            return
        if str(resp.get('status', '')) == 'CANCELED':
            order.cum = max(order.cum, float(resp.get('executedQty', 0) or 0))
            self.emit(*self.tracker.finish(order, 'canceled', 'cancelled by request'))

    async def modify(self, cmd: BrokerdOrder) -> None:
        order = self.tracker.find(cmd.reqid, cmd.oid)
        if order is None or order.order_id is None:
            self.emit(self._error(cmd, f'no working order {cmd.reqid!r} to modify '
                                  '(already filled or cancelled?)', reqid=cmd.reqid))
            return
        new_qty = to_decimal(cmd.size) - to_decimal(order.filled)
        if new_qty <= 0:
            self.emit(self._error(cmd, f'modify to size {cmd.size} is not above the '
                                  f'{order.filled} already filled', reqid=order.reqid))
            return
        old_id = order.order_id
        order.replacing = old_id
        new_cid = order.next_client_id()
        try:
            resp = await self.client.cancel_replace(
                symbol=order.symbol, side=order.action.upper(), type='LIMIT',
                cancelReplaceMode='STOP_ON_FAILURE', cancelOrderId=old_id,
                timeInForce='GTC', quantity=_num(float(new_qty)), price=_num(cmd.price),
                newClientOrderId=new_cid, newOrderRespType='RESULT',
            )
        except BinanceError as err:
            order.replacing = None
            self._modify_failed(order, cmd, err)
            return
        order.replacing = None
        new = resp.get('newOrderResponse') or {}
        order.price, order.size = cmd.price, cmd.size
        if 'orderId' in new and int(new['orderId']) != order.order_id:
            self.tracker._new_generation(order, int(new['orderId']))
        self.emit(_re_ack(order), order.status('open'))

    def _modify_failed(self, order: LiveOrder, cmd: BrokerdOrder, err: BinanceError) -> None:
        data = err.data or {}
        cancel_ok = data.get('cancelResult') == 'SUCCESS'
        new_resp = data.get('newOrderResponse') or {}
        if cancel_ok:
            # the old order is gone, its replacement was refused: the
            # dialog ends cancelled, saying why
            if old := data.get('cancelResponse'):
                order.cum = max(order.cum, float(old.get('executedQty', 0) or 0))
            reason = new_resp.get('msg') or str(err)
            self.emit(_re_ack(order), *self.tracker.finish(
                order, 'canceled', f'modify failed after the cancel: {reason}'))
            return
        cancel_resp = data.get('cancelResponse') or {}
        reason = cancel_resp.get('msg') or str(err)
        self.emit(_re_ack(order), self._error(cmd, f'modify refused by Binance: {reason}',
                                              reqid=order.reqid))


def _re_ack(order: LiveOrder) -> BrokerdOrderAck:
    """A modify's answer: the same reqid (the dialog keeps one venue order)."""
    return BrokerdOrderAck(oid=order.oid, reqid=order.reqid, account=order.account)


def _fill_msg(order: LiveOrder, t: TradeRow, tid: str, cost: float | None) -> BrokerdFill:
    return BrokerdFill(
        reqid=order.reqid, oid=order.oid, tid=tid, action=order.action,  # type: ignore[arg-type]
        size=float(t.qty), price=float(t.price), broker_time=t.time / 1000,
        time_ns=time.time_ns(), cost=cost or 0.0,
    )


@tractor.context
async def trades_dialogue(
    ctx: tractor.Context,
    broker: str = BROKER,
    loglevel: str | None = None,
) -> None:
    """The live trades dialogue (DESIGN.md section 5) for Binance spot."""
    get_console_log(loglevel)
    sess = get_session()
    if not sess.conf.has_keys:
        raise BinanceError(
            'binance has no API keys configured, so no live trading: set api_key/'
            'api_secret (or api_key_file/api_secret_file, or PIKER_BINANCE_API_KEY/'
            'PIKER_BINANCE_API_SECRET) in brokers.toml [binance], or use --mode paper'
        )
    account = live_accounts(sess)[0]
    venue = BinanceVenue(sess, account)
    async with trio.open_nursery() as n:
        # connected before the report is read: no event falls in between
        await n.start(run_user_stream, sess.client, sess.conf.ws_url,
                      venue.on_user_event, venue.resync)
        report = await venue.report()
        positions = [m for m in report if isinstance(m, BrokerdPosition)]
        await ctx.started(([p.to_builtins() for p in positions], [account]))

        async def on_open() -> None:
            venue.emit(*(m for m in report if not isinstance(m, BrokerdPosition)))
            await venue.release_held()

        await serve_commands(ctx, n, venue, venue.ledger.run, on_open=on_open)
        n.cancel_scope.cancel()


__all__ = ['REPORTS_ORDERS', 'TIME_IN_FORCE', 'BinanceVenue', 'live_accounts', 'trades_dialogue']
