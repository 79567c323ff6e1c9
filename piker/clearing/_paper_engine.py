"""paperboi: the paper venue, one actor per broker (`paperboi.<broker>`).

It speaks exactly the brokerd trades-dialogue API (DESIGN.md section 5), so
emsd cannot tell it from a live backend: `ctx.started((positions,
accounts))`, then one bidirectional stream of `BrokerdOrder`/`BrokerdCancel`
in and `BrokerdOrderAck`/`BrokerdStatus`/`BrokerdFill`/`BrokerdError`/
`BrokerdPosition` out.

Fills come from the broker's live quote feed through `PaperBook` (see
`_matching.py`); every fill is appended to the trade ledger and the
positions table on disk (atomic writes) *before* it is reported, and a
restarted paperboi rebuilds its positions from the ledger.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import tractor
import trio

from ..accounting import (
    Account,
    MktPair,
    Transaction,
    TransactionLedger,
    strip_broker,
)
from ..config import PaperConf, load_brokers_conf
from ..data import open_feed  # up front: no blocking import in a handler
from ..log import get_console_log, get_logger
from ..service import open_drained_stream
from ._matching import Fill, PaperBook, RestingOrder
from ._messages import (
    BrokerdCancel,
    BrokerdError,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    MessageError,
    decode_backend_cmd,
)

log = get_logger(__name__)

# commands a dialogue may have queued before its sender feels backpressure
COMMAND_BUFFER = 100_000


def paperboi_name(broker: str) -> str:
    """The registry name of the paper venue of `broker`."""
    return f'paperboi.{broker}'


def fee_for(conf: PaperConf, price: float, size: float) -> float:
    """The fee schedule: rate of notional + per unit, at least `fee_min`."""
    fee = conf.fee_rate * abs(price * size) + conf.fee_per_unit * abs(size)
    if fee == 0 and conf.fee_min == 0:
        return 0.0
    return max(fee, conf.fee_min)


def _off_tick(value: float, tick: Decimal) -> bool:
    if not tick:
        return False
    steps = Decimal(repr(value)) / tick
    return steps != steps.to_integral_value()


class PaperVenue:
    """Books, accounts and feeds of one broker's paper venue.

    One instance per paperboi process; each emsd dialogue subscribes to its
    events (normally there is exactly one emsd).
    """

    def __init__(self, broker: str, nursery: trio.Nursery) -> None:
        self.broker = broker
        self._nursery = nursery
        conf = load_brokers_conf().backend(broker)
        self.conf: PaperConf = conf.paper
        self.accounts: list[str] = list(dict.fromkeys(['paper', *conf.accounts]))
        self.books: dict[str, PaperBook] = {}
        self.mkts: dict[str, MktPair] = {}
        self._feeds: dict[str, trio.Event] = {}
        self._feed_errors: dict[str, str] = {}
        self.ledgers: dict[str, TransactionLedger] = {}
        self.pps: dict[str, Account] = {}
        self._subs: list[tractor.MsgStream] = []
        # oid -> reqids of every venue order created for it (an audit trail:
        # a modify must never show up here as a second order)
        self.created: dict[str, list[str]] = defaultdict(list)
        self._lock = trio.Lock()  # serialises order entry with quote matching
        for acct in self.accounts:
            # the ledger is the source of truth: positions are rebuilt from
            # it at start-up, so a positions file a crash left behind can
            # never disagree with the recorded fills
            ledger = TransactionLedger.load(broker, acct)
            self.ledgers[acct] = ledger
            account = Account.load(broker, acct)
            if ledger:
                account.rebuild_from_ledger(ledger)
                account.write()
            self.pps[acct] = account

    # -- state for the handshake ------------------------------------------

    def positions(self) -> list[BrokerdPosition]:
        return [
            BrokerdPosition(
                broker=self.broker, account=acct, symbol=pos.fqme,
                size=pos.size, avg_price=pos.ppu,
            )
            for acct, account in self.pps.items()
            for pos in account
        ]

    # -- events out -------------------------------------------------------

    async def emit(self, *msgs: Any) -> None:
        """Send `msgs` to every emsd dialogue, in order.

        Shielded: a send cut half-way (the dialogue task being cancelled)
        would corrupt the connection's framing, and a fill persisted on
        disk must not go unreported because the reporting task was
        cancelled between two messages.
        """
        with trio.CancelScope(shield=True):
            await self._emit(msgs)

    async def _emit(self, msgs: tuple[Any, ...]) -> None:
        for stream in list(self._subs):
            try:
                for msg in msgs:
                    await stream.send(msg)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log.warning('emsd dialogue went away; dropping it')
                self._subs.remove(stream)

    async def reply(self, origin: tractor.MsgStream | None, msg: Any) -> None:
        """Send `msg` to the dialogue `origin` only (to all if None)."""
        if origin is None:
            await self.emit(msg)
            return
        with trio.CancelScope(shield=True):
            try:
                await origin.send(msg)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log.warning('dialogue went away before its reply: %r', msg)

    # -- market data ------------------------------------------------------

    async def ensure_feed(self, fqme: str) -> str | None:
        """Start (once) the quote feed of `fqme`; return an error or None."""
        ready = self._feeds.get(fqme)
        if ready is None:
            ready = self._feeds[fqme] = trio.Event()
            self._feed_errors.pop(fqme, None)
            self._nursery.start_soon(self._run_feed, fqme, ready)
        await ready.wait()
        return self._feed_errors.get(fqme)

    async def _run_feed(self, fqme: str, ready: trio.Event) -> None:
        """Feed `fqme`'s quotes into its book, reconnecting if the feed dies.

        The book outlives feed restarts: resting orders must survive a
        brokerd respawn.
        """
        backoff = 0.1
        while True:
            try:
                async with open_feed([fqme]) as feed:
                    book = self.books.get(fqme) or PaperBook(fqme)
                    first = feed.first_quotes.get(fqme)
                    if first:
                        async with self._lock:
                            fills = book.on_quote(_as_touch_quote(first))
                            if fills:
                                await self.report_fills(fills)
                    self.mkts[fqme] = feed.mkts[fqme]
                    self.books[fqme] = book
                    ready.set()
                    backoff = 0.1
                    async for batch in feed.stream:
                        quote = batch.get(fqme)
                        if quote is None:
                            continue
                        async with self._lock:
                            fills = book.on_quote(quote)
                            if fills:
                                await self.report_fills(fills)
                log.warning('quote feed of %s ended; reconnecting', fqme)
            except Exception as err:  # unknown symbol, dead backend, ...
                if not ready.is_set():
                    reason = f'no market data for {fqme!r}: {err}'
                    log.error(reason)
                    self._feed_errors[fqme] = reason
                    self._feeds.pop(fqme, None)
                    ready.set()
                    return
                await leave_if_cancelled()
                log.error('quote feed of %s failed (%s); retrying in %.1fs',
                          fqme, err, backoff)
            except BaseException:
                await leave_if_cancelled()
                raise
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    # -- order entry --------------------------------------------------------

    async def handle(self, raw: Any, origin: tractor.MsgStream | None = None) -> None:
        """Apply one command from emsd; never raises on a bad message.

        A command that does not decode is answered on `origin` (the
        dialogue it came from) only: no other dialogue can match it to an
        order, while a decoded command's events concern the venue's orders
        and go to every dialogue (a restarted emsd must hear them).
        """
        try:
            cmd = decode_backend_cmd(raw)
        except MessageError as err:
            log.warning('bad command: %s', err.reason)
            await self.reply(origin, BrokerdError(oid=reply_oid(raw), reason=err.reason))
            return
        if self.conf.latency_ms:
            await trio.sleep(self.conf.latency_ms / 1000)
        if isinstance(cmd, BrokerdCancel):
            await self.cancel(cmd)
        else:
            await self.order(cmd)

    def _reject(self, cmd: BrokerdOrder, reason: str) -> BrokerdError:
        return BrokerdError(
            oid=cmd.oid, reqid=cmd.reqid, symbol=cmd.symbol, reason=reason,
        )

    async def order(self, cmd: BrokerdOrder) -> None:
        fqme = f'{cmd.symbol}.{self.broker}'.lower()
        if cmd.account not in self.accounts:
            await self.emit(self._reject(
                cmd, f'unknown account {cmd.account!r} for {self.broker}: '
                f'use one of {self.accounts}',
            ))
            return
        err = await self.ensure_feed(fqme)
        if err:
            await self.emit(self._reject(cmd, err))
            return
        mkt = self.mkts[fqme]
        if _off_tick(cmd.size, mkt.size_tick):
            await self.emit(self._reject(
                cmd, f'size {cmd.size} is not a multiple of the size tick '
                f'{mkt.size_tick} of {fqme}',
            ))
            return
        if _off_tick(cmd.price, mkt.price_tick):
            await self.emit(self._reject(
                cmd, f'price {cmd.price} is not a multiple of the price tick '
                f'{mkt.price_tick} of {fqme}',
            ))
            return
        book = self.books[fqme]
        async with self._lock:
            if cmd.reqid is None:
                order = RestingOrder(
                    reqid=_new_reqid(), oid=cmd.oid, fqme=fqme,
                    action=cmd.action, price=cmd.price, size=cmd.size,
                    account=cmd.account, time_ns=cmd.time_ns,
                )
                self.created[cmd.oid].append(order.reqid)
                await self.emit(BrokerdOrderAck(
                    oid=cmd.oid, reqid=order.reqid, account=cmd.account,
                ))
                fills = book.submit(order)
                reqid = order.reqid
            else:
                reqid = str(cmd.reqid)
                resting = book.orders.get(reqid)
                if resting is None or resting.oid != cmd.oid:
                    await self.emit(self._reject(
                        cmd, f'no working order {reqid!r} to modify '
                        '(already filled or cancelled?)',
                    ))
                    return
                await self.emit(BrokerdOrderAck(
                    oid=cmd.oid, reqid=reqid, account=cmd.account,
                ))
                try:
                    fills = book.modify(reqid, cmd.price, cmd.size)
                except ValueError as verr:
                    await self.emit(self._reject(cmd, str(verr)))
                    return
            if fills:
                await self.report_fills(fills)
            resting = book.orders.get(reqid)
            if resting is not None:
                await self.emit(BrokerdStatus(
                    reqid=reqid, oid=cmd.oid, status='open',
                    account=cmd.account, time_ns=time.time_ns(),
                    filled=resting.filled, remaining=resting.remaining,
                ))

    async def cancel(self, cmd: BrokerdCancel) -> None:
        reqid = str(cmd.reqid)
        async with self._lock:
            for book in self.books.values():
                order = book.cancel(reqid)
                if order is not None:
                    await self.emit(BrokerdStatus(
                        reqid=reqid, oid=order.oid, status='canceled',
                        account=order.account, time_ns=time.time_ns(),
                        filled=order.filled, remaining=order.remaining,
                        reason='cancelled by request',
                    ))
                    return
        await self.emit(BrokerdError(
            oid=cmd.oid, reqid=cmd.reqid,
            reason=f'no working order {reqid!r} to cancel (already filled or cancelled?)',
        ))

    # -- fills --------------------------------------------------------------

    def _persist(self, by_acct: dict[str, list[Transaction]]) -> dict[str, dict]:
        touched = {}
        for acct, txns in by_acct.items():
            self.ledgers[acct].update_from_txns(txns)
            self.ledgers[acct].write()
            account = self.pps[acct]
            touched[acct] = account.update_from_txns(txns, self.mkts)
            account.write()
        return touched

    async def report_fills(self, fills: list[Fill]) -> None:
        """Persist `fills` (ledger, then positions), then report them."""
        now = datetime.now(UTC)
        by_acct: dict[str, list[Transaction]] = defaultdict(list)
        costs: dict[str, float] = {}
        for f in fills:
            cost = fee_for(self.conf, f.price, f.size)
            costs[f.tid] = cost
            mkt = self.mkts.get(f.fqme)
            by_acct[f.account].append(Transaction(
                fqme=f.fqme, tid=f.tid,
                size=f.size if f.action == 'buy' else -f.size,
                price=f.price, cost=cost, dt=now,
                bs_mktid=mkt.bs_mktid if mkt else '',
            ))
        # disk first (off the event loop: fsync takes milliseconds), then
        # the reports: a fill is never reported that a crash could lose
        touched = await trio.to_thread.run_sync(self._persist, by_acct)

        out: list[Any] = []
        now_ns = time.time_ns()
        for f in fills:
            out.append(BrokerdFill(
                reqid=f.reqid, oid=f.oid, tid=f.tid, action=f.action,
                size=f.size, price=f.price, broker_time=now.timestamp(),
                time_ns=now_ns, cost=costs[f.tid],
            ))
            order_done = f.remaining <= 0 or math.isclose(f.remaining, 0, abs_tol=1e-12)
            out.append(BrokerdStatus(
                reqid=f.reqid, oid=f.oid,
                status='closed' if order_done else 'open',
                account=f.account, time_ns=now_ns,
                filled=f.filled, remaining=max(f.remaining, 0.0),
            ))
        for acct, pps in touched.items():
            for fqme, pos in pps.items():
                out.append(BrokerdPosition(
                    broker=self.broker, account=acct, symbol=fqme,
                    size=pos.size, avg_price=pos.ppu,
                ))
        await self.emit(*out)


async def leave_if_cancelled() -> None:
    """Raise `Cancelled` (only) if this task is being cancelled.

    When the tree shuts down, an upstream daemon often goes first and our
    feed/dialogue fails with its ContextCancelled just as our own cancel
    arrives, the two mixed in one exception group: that is a shutdown, not
    a failure to log, retry or (escaping a service task) crash the actor on.
    """
    await trio.lowlevel.checkpoint_if_cancelled()


def _as_touch_quote(quote: dict[str, Any]) -> dict[str, Any]:
    """Turn a snapshot quote (bid/ask fields) into touch ticks."""
    ticks = []
    for key, size_key in (('bid', 'bsize'), ('ask', 'asize')):
        price = quote.get(key)
        if price is not None and math.isfinite(price):
            ticks.append({'type': key, 'price': price, 'size': quote.get(size_key)})
    return {'ticks': ticks}


def reply_oid(raw: Any) -> str:
    """The oid to answer a command with: its own if usable, else a marker."""
    oid = raw.get('oid') if isinstance(raw, dict) else None
    return oid if isinstance(oid, str) and oid.strip() else '<unknown>'


def _new_reqid() -> str:
    import uuid
    return uuid.uuid4().hex


_venues: dict[str, PaperVenue] = {}


async def paper_audit(broker: str) -> dict[str, list[str]]:
    """RPC: oid -> reqids of every order the paper venue of `broker` created.

    Lets tests (and the curious) check from outside that modifies and
    triggers never create a second venue order for one dialog.
    """
    venue = _venues.get(broker)
    return {oid: list(reqids) for oid, reqids in venue.created.items()} if venue else {}


@tractor.context
async def open_trade_dialog(
    ctx: tractor.Context,
    broker: str,
    loglevel: str | None = None,
) -> None:
    """The trades dialogue endpoint, identical to a live backend's.

    The venue (books, feeds, accounts) outlives any one dialogue: a venue
    keeps its orders when emsd disconnects or restarts, so its feed tasks
    run in the actor's service nursery, not in this context.
    """
    get_console_log(loglevel)
    venue = _venues.get(broker)
    if venue is None:
        # tractor 0.1.0a5 has no public per-actor nursery; its service
        # nursery lives as long as the actor does.
        svc_n = tractor.current_actor()._service_n
        venue = _venues[broker] = PaperVenue(broker, svc_n)
    await ctx.started((
        [p.to_builtins() for p in venue.positions()],
        venue.accounts,
    ))
    async with (
        ctx.open_stream() as stream,
        # a dedicated task keeps the stream empty (TRACTOR.md rule 9): while
        # a fill is being persisted, order entry waits, and a stream left
        # full would block the whole connection - emsd's heartbeats to us
        # included, so emsd would declare us lost under load
        open_drained_stream(stream, policy='never_drop', maxlen=COMMAND_BUFFER) as commands,
    ):
        venue._subs.append(stream)
        try:
            async for raw in commands:
                try:
                    await venue.handle(raw, origin=stream)
                except Exception:
                    # a bug, not a bad message: answer it, keep serving
                    log.exception('failed to handle command %r', raw)
                    await venue.reply(stream, BrokerdError(
                        oid=reply_oid(raw), reason='internal error handling this command',
                    ))
        finally:
            if stream in venue._subs:
                venue._subs.remove(stream)


__all__ = [
    'PaperVenue', 'fee_for', 'open_trade_dialog', 'paper_audit', 'paperboi_name',
    'strip_broker',
]
