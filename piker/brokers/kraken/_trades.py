"""Live trading on Kraken spot: the `trades_dialogue` (DESIGN.md section 5).

Orders are limit orders (`add_order`, `cl_ord_id` = emsd's oid), GTC or
IOC (`time_in_force`, from `BrokerdOrder.tif`; Kraken spot has no FOK, so
a fok order is refused before anything is sent: `TIME_IN_FORCE`),
cancels `cancel_order`, modifies `amend_order` (in place: the same
Kraken order, the same reqid, queue priority kept where Kraken keeps
it), all over the authenticated websocket (`_private`). What happens to
them is the `executions` channel, translated by `_orders.Tracker`.

The order report is the `executions` snapshot (open orders + the last 50
fills): positions (the `Balance` of the base asset of every market this
account trades through piker), the fills, one announcement per open
order, `BrokerdOrdersSynced`. After a reconnect the new snapshot is
reported again (emsd drops repeated fills by tid) and orders no longer
open are resolved. Fills older than the last 50 are not in a snapshot:
a dialog that missed more than 50 fills while disconnected gets its
final status but not every fill (stated in the README).

Kraken's trading rate counter (`EOrder:Rate limit exceeded`, and the
"too fast" amend/cancel penalties that feed it) is waited out with
backoff a few times before the error reaches the trader; every other
refusal becomes a `BrokerdError` with Kraken's own text.
"""
from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

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
    MessageError,
    decode_backend_cmd,
    reply_oid,
)
from ...log import get_console_log, get_logger
from ...service import Backoff
from .._dialogue import serve_commands
from .._ledger import LedgerSink
from .._traded import TradedSymbols, average_price
from ._markets import BROKER, Market
from ._orders import Exec, LiveOrder, Tracker, oid_of
from ._private import ConnectionLost, PrivateWs
from ._rest import KrakenError, NoKeys
from ._session import Session, get_session

log = get_logger('brokers.kraken.trades')

REPORTS_ORDERS = True
# what `BrokerdOrder.tif` may be here (emsd refuses others up front)
TIME_IN_FORCE = ('gtc', 'ioc')
RATE_RETRIES = 3
traded = TradedSymbols(BROKER)


def live_accounts(sess: Session) -> list[str]:
    """The names live orders may use: `[kraken] accounts` minus 'paper'."""
    return [a for a in sess.conf.accounts if a != 'paper'] or ['spot']


def _too_fast(err: KrakenError) -> bool:
    text = str(err).lower()
    return 'rate limit exceeded' in text or 'too fast' in text or 'too many' in text


def _on_grid(value: float, tick: Decimal) -> float:
    return float(to_decimal(value).quantize(tick))


class KrakenVenue:
    """One trades dialogue's view of the Kraken account."""

    def __init__(self, sess: Session, account: str) -> None:
        self.sess = sess
        self.account = account
        self.tracker = Tracker(account, self._key_of)
        self.out_send, self.out_recv = trio.open_memory_channel[Any](math.inf)
        self.ws = PrivateWs(sess.client, sess.conf.ws_auth_url, self.on_snapshot,
                            self.on_event)
        self.sizes: dict[str, float] = {}
        self.fills: dict[str, list[tuple[bool, float, float]]] = {}
        self.ledger = LedgerSink(BROKER, account)

    def _key_of(self, symbol: str) -> str | None:
        m = self.sess.markets.by_symbol(symbol)
        return m.mkt.bs_fqme if m else None

    def emit(self, *msgs: Any) -> None:
        for msg in msgs:
            self.out_send.send_nowait(msg)

    async def market(self, key: str) -> Market:
        return await self.sess.markets.get(self.sess.client, key)

    # -- positions ----------------------------------------------------------------

    async def positions(self) -> list[BrokerdPosition]:
        balances = await self.sess.client.balance()
        out = []
        for key in sorted(traded.load()):
            try:
                m = await self.market(key)
            except LookupError:
                continue
            try:
                size = float(balances.get(m.base_code, 0) or 0)
            except (TypeError, ValueError):
                size = 0.0
            self.sizes[m.symbol] = size
            out.append(self._position(m))
        return out

    def _position(self, m: Market) -> BrokerdPosition:
        return BrokerdPosition(
            broker=BROKER, account=self.account, symbol=m.mkt.fqme,
            size=self.sizes.get(m.symbol, 0.0),
            avg_price=average_price(self.fills.get(m.symbol, [])),
            currency=m.mkt.src.name,
        )

    def _moved(self, msgs: list[Any], order: LiveOrder | None = None) -> list[Any]:
        """`msgs` plus the new position of every market they fill."""
        out = list(msgs)
        for msg in msgs:
            if getattr(msg, 'tid', None) and order is not None:
                m = self.sess.markets.by_symbol(order.symbol)
                if m is None:
                    continue
                self.ledger.add(msg, m)
                buy = msg.action == 'buy'
                self.sizes[m.symbol] = self.sizes.get(m.symbol, 0.0) + (
                    msg.size if buy else -msg.size)
                self.fills.setdefault(m.symbol, []).append((buy, msg.size, msg.price))
                out.append(self._position(m))
        return out

    # -- executions ------------------------------------------------------------------

    async def on_snapshot(self, events: list[Exec], first: bool) -> None:
        await self.sess.markets.load(self.sess.client)
        for ev in sorted((e for e in events if e.exec_type == 'trade'),
                         key=lambda e: e.timestamp):
            self.fills.setdefault(ev.symbol, [])
            if first:
                self.fills[ev.symbol].append((ev.side == 'buy', ev.last_qty, ev.last_price))
        msgs, working = self.tracker.report(events)
        symbol_of = {e.order_id: e.symbol for e in events}
        for msg in msgs:  # the report's fills in the ledger too (repeats dropped)
            if isinstance(msg, BrokerdFill):
                m = self.sess.markets.by_symbol(symbol_of.get(str(msg.reqid), ''))
                if m is not None:
                    self.ledger.add(msg, m)
        # orders whose add_order answer was lost with the connection: the
        # snapshot names them by cl_ord_id if Kraken has them
        for order in list(self.tracker.by_oid.values()):
            if order.reqid is None and not order.done:
                self.tracker.drop(order)
                msgs.append(BrokerdError(
                    oid=order.oid, symbol=order.key,
                    reason='the connection to Kraken dropped before it answered, and '
                           'the order is not open at Kraken: not placed'))
        self.emit(*msgs)
        if first:
            self.emit(BrokerdOrdersSynced(reqids=working, time_ns=time.time_ns()))
        else:  # fills while we were away moved the balances
            try:
                self.emit(*await self.positions())
            except KrakenError as err:
                log.warning('kraken: positions not refreshed after reconnect: %s', err)

    async def on_event(self, ev: Exec) -> None:
        order = self.tracker.for_event(ev)
        msgs = self.tracker.on_exec(ev)
        self.emit(*self._moved(msgs, order or self.tracker.find(ev.order_id)))

    # -- commands -------------------------------------------------------------------

    async def handle(self, raw: Any) -> None:
        try:
            cmd = decode_backend_cmd(raw)
        except MessageError as err:
            self.emit(BrokerdError(oid=reply_oid(raw), reason=err.reason))
            return
        if isinstance(cmd, BrokerdCancel):
            await self.cancel(cmd)
        elif cmd.reqid is None:
            await self.order(cmd)
        else:
            await self.modify(cmd)

    def _error(self, cmd: BrokerdOrder | BrokerdCancel, reason: str,
               reqid: Any = None) -> BrokerdError:
        return BrokerdError(oid=cmd.oid, reqid=reqid, reason=reason,
                            symbol=getattr(cmd, 'symbol', ''))

    async def _request(self, method: str, params: dict[str, Any]) -> Any:
        """One order method, waiting out Kraken's trading rate counter."""
        backoff = Backoff(first=0.5, cap=4.0)
        for attempt in range(RATE_RETRIES + 1):
            try:
                return await self.ws.request(method, params)
            except KrakenError as err:
                if not _too_fast(err) or attempt == RATE_RETRIES or \
                        isinstance(err, ConnectionLost):
                    raise
                wait = backoff.step()
                log.warning('kraken %s: %s: retrying in %.1fs', method, err, wait)
                await trio.sleep(wait)
        raise AssertionError('unreachable')

    async def order(self, cmd: BrokerdOrder) -> None:
        if cmd.account != self.account:
            self.emit(self._error(cmd, f'unknown account {cmd.account!r} for kraken '
                                  f'(live): use {self.account!r}'))
            return
        try:
            m = await self.market(cmd.symbol)
        except (LookupError, KrakenError) as err:
            self.emit(self._error(cmd, str(err)))
            return
        if oid_of(cmd.oid) is None:
            self.emit(self._error(cmd, f'oid {cmd.oid!r} is not a uuid: Kraken client '
                                  'order ids carry the oid, so piker needs uuid oids'))
            return
        if cmd.tif not in TIME_IN_FORCE:
            self.emit(self._error(cmd, f'Kraken spot has no {cmd.tif} time in force '
                                  f'(it has {", ".join(TIME_IN_FORCE)}): not sent'))
            return
        order = LiveOrder(oid=cmd.oid, key=m.mkt.bs_fqme, symbol=m.symbol,
                          action=cmd.action, price=cmd.price, size=cmd.size,
                          account=cmd.account, time_ns=cmd.time_ns)
        self.tracker.add(order)
        await trio.to_thread.run_sync(traded.add, m.mkt.bs_fqme)
        try:
            res = await self._request('add_order', {
                'order_type': 'limit', 'side': cmd.action, 'symbol': m.symbol,
                'order_qty': _on_grid(cmd.size, m.mkt.size_tick),
                'limit_price': _on_grid(cmd.price, m.mkt.price_tick),
                'time_in_force': cmd.tif, 'cl_ord_id': cmd.oid,
            })
        except ConnectionLost:
            return  # the next snapshot says whether Kraken has it
        except KrakenError as err:
            self.tracker.drop(order)
            self.emit(self._error(cmd, f'Kraken refused the order: {err}'))
            return
        reqid = (res or {}).get('order_id') if isinstance(res, dict) else None
        if reqid and order.reqid is None:
            self.tracker.set_reqid(order, str(reqid))
        self.emit(*order.ack())
        if not order.opened and not order.done:
            order.opened = True
            self.emit(order.status('open'))

    async def cancel(self, cmd: BrokerdCancel) -> None:
        order = self.tracker.find(cmd.reqid, cmd.oid)
        if order is None or order.reqid is None:
            self.emit(self._error(cmd, f'no working order {cmd.reqid!r} to cancel '
                                  '(already filled or cancelled?)', reqid=cmd.reqid))
            return
        try:
            await self._request('cancel_order', {'order_id': [order.reqid]})
        except KrakenError as err:
            self.emit(self._error(cmd, f'cancel refused by Kraken: {err}', reqid=order.reqid))

    async def modify(self, cmd: BrokerdOrder) -> None:
        order = self.tracker.find(cmd.reqid, cmd.oid)
        if order is None or order.reqid is None:
            self.emit(self._error(cmd, f'no working order {cmd.reqid!r} to modify '
                                  '(already filled or cancelled?)', reqid=cmd.reqid))
            return
        m = await self.market(order.key)
        if cmd.size <= order.cum:
            self.emit(self._error(cmd, f'modify to size {cmd.size} is not above the '
                                  f'{order.cum} already filled', reqid=order.reqid))
            return
        try:
            await self._request('amend_order', {
                'order_id': order.reqid,
                'order_qty': _on_grid(cmd.size, m.mkt.size_tick),
                'limit_price': _on_grid(cmd.price, m.mkt.price_tick),
            })
        except KrakenError as err:
            self.emit(_re_ack(order), self._error(
                cmd, f'modify refused by Kraken: {err}', reqid=order.reqid))
            return
        if order.done:
            return  # it filled on the amend (the events said so)
        order.price, order.size = cmd.price, cmd.size
        self.emit(_re_ack(order), order.status('open'))


def _re_ack(order: LiveOrder) -> BrokerdOrderAck:
    """A modify's answer: the same reqid (one Kraken order, amended)."""
    return BrokerdOrderAck(oid=order.oid, reqid=order.reqid, account=order.account)


@tractor.context
async def trades_dialogue(
    ctx: tractor.Context,
    broker: str = BROKER,
    loglevel: str | None = None,
) -> None:
    """The live trades dialogue (DESIGN.md section 5) for Kraken spot."""
    get_console_log(loglevel)
    sess = get_session()
    if not sess.conf.has_keys:
        raise NoKeys('kraken has no API keys configured, so no live trading: set '
                     'api_key/api_secret (or api_key_file/api_secret_file, or '
                     'PIKER_KRAKEN_API_KEY/PIKER_KRAKEN_API_SECRET) in brokers.toml '
                     '[kraken], or use --mode paper')
    account = live_accounts(sess)[0]
    venue = KrakenVenue(sess, account)
    async with trio.open_nursery() as n:
        # the snapshot (the report) is queued before anything it precedes
        await n.start(venue.ws.run)
        positions = await venue.positions()
        await ctx.started(([p.to_builtins() for p in positions], [account]))
        await serve_commands(ctx, n, venue, venue.ledger.run)
        n.cancel_scope.cancel()


__all__ = ['REPORTS_ORDERS', 'TIME_IN_FORCE', 'KrakenVenue', 'live_accounts', 'trades_dialogue']
