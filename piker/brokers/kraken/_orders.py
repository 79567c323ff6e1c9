"""Kraken orders as piker sees them: ids, tracking and the translation of
`executions` events into emsd's messages. Pure (no IO).

Ids. Kraken's `order_id` (`OABCDE-FGHIJ-KLMNOP`) is the order's id for
life, amends included, so it is the dialog's `reqid`: a modify
(`amend_order`) keeps one venue order and one reqid. `cl_ord_id` carries
emsd's oid (a uuid, which Kraken accepts as is), so a restarted brokerd
or emsd recognises its own orders in the `executions` snapshot. A fill's
`tid` is Kraken's `exec_id` of the trade (unique across pairs, the same
in the live event and in a later snapshot), else `<symbol>:<trade_id>`.

Events (`exec_type`): `pending_new` (nothing yet), `new` (ack, open),
`trade` (a fill: `last_qty` at `last_price`; its `order_status` may say
`partially_filled` even for the last one, as Kraken documents, so
completion is `cum_qty >= order_qty` or the separate `filled` event),
`filled`, `canceled`/`expired`, `amended`, and `restated`/`status`
(ignored). Events of orders piker did not place become external dialogs.
Idempotent: a repeated event yields nothing new.
"""
from __future__ import annotations

import math
import time
import uuid
from typing import Any

import msgspec

from ...clearing._messages import (
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdStatus,
)

ABS_TOL = 1e-12


class Fee(msgspec.Struct):
    asset: str = ''
    qty: float = 0.0


class Exec(msgspec.Struct):
    """One `executions` entry (the fields piker uses)."""

    exec_type: str
    order_id: str
    symbol: str = ''
    side: str = 'buy'
    order_qty: float = 0.0
    limit_price: float = 0.0
    order_status: str = ''
    cl_ord_id: str | None = None
    cum_qty: float = 0.0
    last_qty: float = 0.0
    last_price: float = 0.0
    exec_id: str = ''
    trade_id: int | None = None
    fees: list[Fee] = []
    fee_usd_equiv: float = 0.0
    timestamp: str = ''
    reason: str = ''


def oid_of(cl_ord_id: str | None) -> str | None:
    """emsd's oid if `cl_ord_id` is one (a uuid), else None."""
    if not cl_ord_id:
        return None
    try:
        return str(uuid.UUID(cl_ord_id))
    except ValueError:
        return None


def tid_of(ev: Exec) -> str:
    return ev.exec_id or f'{ev.symbol}:{ev.trade_id}'


def epoch_of(stamp: str) -> float:
    """RFC 3339 `2026-12-01T19:54:19.683630Z` as epoch seconds (now if bad)."""
    import datetime as dt
    try:
        return dt.datetime.fromisoformat(stamp.replace('Z', '+00:00')).timestamp()
    except ValueError:
        return time.time()


class LiveOrder:
    """One dialog's Kraken order."""

    def __init__(self, oid: str, key: str, symbol: str, action: str, price: float,
                 size: float, account: str, time_ns: int, reqid: str | None = None) -> None:
        self.oid = oid
        self.key = key            # broker-native key: btcusd
        self.symbol = symbol      # v2 symbol: BTC/USD
        self.action = action
        self.price = price
        self.size = size
        self.account = account
        self.time_ns = time_ns
        self.reqid = reqid        # Kraken order_id, once known
        self.cum = 0.0
        self.acked = False
        self.opened = False
        self.done = False
        self.cancel_wanted = False

    @property
    def remaining(self) -> float:
        rem = self.size - self.cum
        return 0.0 if rem < 0 or math.isclose(rem, 0.0, abs_tol=ABS_TOL) else rem

    def status(self, status: str, reason: str = '') -> BrokerdStatus:
        return BrokerdStatus(
            reqid=self.reqid or self.oid, oid=self.oid, status=status,  # type: ignore[arg-type]
            account=self.account, time_ns=time.time_ns(), filled=self.cum,
            remaining=self.remaining, reason=reason,
            broker_details={'order_id': self.reqid, 'symbol': self.symbol},
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
        if self.acked or self.reqid is None:
            return []
        self.acked = True
        return [BrokerdOrderAck(oid=self.oid, reqid=self.reqid, account=self.account)]


class Tracker:
    """The orders of one trades dialogue and the fills already reported."""

    def __init__(self, account: str, key_of: Any) -> None:
        self.account = account
        self.key_of = key_of          # v2 symbol -> broker-native key (or None)
        self.by_reqid: dict[str, LiveOrder] = {}
        self.by_oid: dict[str, LiveOrder] = {}
        self.tids: set[str] = set()
        self.finished: set[str] = set()  # reqids whose final status was sent

    def add(self, order: LiveOrder) -> None:
        self.by_oid[order.oid] = order
        if order.reqid:
            self.by_reqid[order.reqid] = order

    def set_reqid(self, order: LiveOrder, reqid: str) -> None:
        order.reqid = reqid
        self.by_reqid[reqid] = order

    def drop(self, order: LiveOrder) -> None:
        if order.reqid:
            self.by_reqid.pop(order.reqid, None)
        if self.by_oid.get(order.oid) is order:
            self.by_oid.pop(order.oid, None)

    def find(self, reqid: Any = None, oid: str = '') -> LiveOrder | None:
        order = self.by_reqid.get(str(reqid)) if reqid is not None else None
        return order or (self.by_oid.get(oid) if oid else None)

    def for_event(self, ev: Exec) -> LiveOrder | None:
        order = self.by_reqid.get(ev.order_id)
        if order is None:
            oid = oid_of(ev.cl_ord_id)
            order = self.by_oid.get(oid) if oid else None
            if order is not None and order.reqid is None:
                self.set_reqid(order, ev.order_id)
        return order

    def external(self, ev: Exec) -> LiveOrder | None:
        key = self.key_of(ev.symbol)
        if key is None:
            return None
        order = LiveOrder(
            oid=oid_of(ev.cl_ord_id) or ev.order_id, key=key, symbol=ev.symbol,
            action='buy' if ev.side == 'buy' else 'sell', price=ev.limit_price,
            size=ev.order_qty, account=self.account,
            time_ns=int(epoch_of(ev.timestamp) * 1e9), reqid=ev.order_id,
        )
        order.acked = True
        self.add(order)
        return order

    def finish(self, order: LiveOrder, status: str, reason: str = '') -> list[Any]:
        if order.done:
            return []
        order.done = True
        self.drop(order)
        if order.reqid:
            self.finished.add(order.reqid)
        return [order.status(status, reason)]

    def fill(self, order: LiveOrder, ev: Exec) -> list[Any]:
        tid = tid_of(ev)
        if tid in self.tids or ev.last_qty <= 0:
            return []
        quote = ev.symbol.rpartition('/')[2]
        cost = sum(f.qty for f in ev.fees if f.asset.upper() == quote.upper())
        # built (validated) before anything changes: a bad event leaves no trace
        fill = BrokerdFill(
            reqid=order.reqid or order.oid, oid=order.oid, tid=tid,
            action=order.action,  # type: ignore[arg-type]
            size=ev.last_qty, price=ev.last_price, broker_time=epoch_of(ev.timestamp),
            time_ns=time.time_ns(), cost=cost,
        )
        self.tids.add(tid)
        order.cum = max(order.cum + ev.last_qty if ev.cum_qty <= 0 else ev.cum_qty,
                        order.cum)
        return [fill]

    def on_exec(self, ev: Exec) -> list[Any]:
        """The piker messages of one live `executions` event."""
        order = self.for_event(ev)
        out: list[Any] = []
        if order is None and ev.order_id in self.finished:
            return out  # a late or repeated event of an order that ended
        if order is None:
            if ev.exec_type not in ('new', 'trade') or ev.order_status in (
                    'canceled', 'expired'):
                return out
            order = self.external(ev)
            if order is None:
                return out
            order.cum = ev.cum_qty - (ev.last_qty if ev.exec_type == 'trade' else 0.0)
            order.opened = True
            out.append(order.announce())
        if order.done:
            return out
        out += order.ack()
        kind = ev.exec_type
        if kind == 'new':
            if not order.opened:
                order.opened = True
                out.append(order.status('open'))
        elif kind == 'trade':
            fills = self.fill(order, ev)
            if fills:
                out += fills
                if ev.order_qty and ev.cum_qty >= ev.order_qty - ABS_TOL:
                    out += self.finish(order, 'closed')
                else:
                    out.append(order.status('open'))
        elif kind == 'filled':
            order.cum = max(order.cum, ev.cum_qty)
            out += self.finish(order, 'closed')
        elif kind in ('canceled', 'expired'):
            order.cum = max(order.cum, ev.cum_qty)
            reason = f'{kind} at Kraken' + (f': {ev.reason}' if ev.reason else '')
            out += self.finish(order, 'canceled', reason)
        elif kind == 'amended':
            order.price = ev.limit_price or order.price
            order.size = ev.order_qty or order.size
        return out

    def report(self, snapshot: list[Exec]) -> tuple[list[Any], list[str]]:
        """The order report of one `executions` snapshot: fills (and the
        final status of orders they complete), then one announcement per
        open order; and the reqids working. Tracked orders that are no
        longer open ended while nobody listened: their final status too."""
        trades = [e for e in snapshot if e.exec_type == 'trade']
        opens = [e for e in snapshot if e.exec_type != 'trade'
                 and e.order_status in ('new', 'partially_filled', 'pending_new', '')]
        open_ids = {e.order_id for e in opens}
        msgs: list[Any] = []
        for ev in sorted(trades, key=lambda e: e.timestamp):
            order = self.for_event(ev)
            if order is None and ev.order_id in self.finished:
                continue  # reported already
            if order is None:
                oid = oid_of(ev.cl_ord_id)
                if oid is None and ev.order_id not in open_ids:
                    continue  # a finished order piker never knew
                order = self.external(ev)
                if order is None:
                    continue
                order.opened = True
            msgs += self.fill(order, ev)
            if (ev.order_id not in open_ids and ev.order_qty
                    and order.cum >= ev.order_qty - ABS_TOL):
                msgs += self.finish(order, 'closed', 'filled at Kraken')
        working: list[str] = []
        for ev in opens:
            order = self.for_event(ev) or self.external(ev)
            if order is None:
                continue
            order.cum = max(order.cum, ev.cum_qty)
            order.price, order.size = ev.limit_price, ev.order_qty
            order.acked = order.opened = True
            working.append(ev.order_id)
            msgs.append(order.announce())
        for order in list(self.by_reqid.values()):
            if order.reqid not in open_ids and not order.done:
                msgs += self.finish(order, 'closed' if order.remaining <= 0 else 'canceled',
                                    'not open at Kraken after reconnect')
        return msgs, working


__all__ = ['Exec', 'LiveOrder', 'Tracker', 'epoch_of', 'oid_of', 'tid_of']
