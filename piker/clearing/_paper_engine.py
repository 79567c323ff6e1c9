"""paperboi: the paper venue, one actor per broker (`paperboi.<broker>`).

It speaks exactly the brokerd trades-dialogue API (DESIGN.md section 5), so
emsd cannot tell it from a live backend: `ctx.started((positions,
accounts))`, then one bidirectional stream of `BrokerdOrder`/`BrokerdCancel`
in and `BrokerdOrderAck`/`BrokerdStatus`/`BrokerdFill`/`BrokerdError`/
`BrokerdPosition` out.

Fills come from the broker's live quote feed through `PaperBook` (see
`_matching.py`); every fill is appended to the trade ledger and the
positions table on disk (atomic writes) *before* it is reported, and a
restarted paperboi rebuilds its positions from the ledger. A disk that
refuses the write does not unmake the fill: it is reported regardless,
under an alarm that refuses new orders until the fill is on disk
(`_paper_accounts`).

Orders are checked before they rest: a broker-native key (`native_fqme`),
ticks, and a finite notional within the venue's own price band
(`price_problem`). An internal error on an order ends it truthfully
(`canceled`, saying why) rather than leaving it orphaned.

A venue keeps its orders across restarts: every change to its working
orders, and every fill and final status, is recorded (`_paper_store`)
before it is reported. A restarted paperboi reloads its resting orders
into their books and restarts their feeds at once (`startup`, pikerd's
start-up hook), and puts into the ledger any fill a crash kept out of it.
Each new trades dialogue (a reconnecting or restarted emsd) opens with
the venue's order report: the recent fills and final statuses, one
`BrokerdStatus(status='open', req=...)` per working order, then
`BrokerdOrdersSynced` (see `_reconcile` for what emsd makes of it).
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import tractor
import trio

from ..accounting import (
    MktPair,
    Position,
    Transaction,
    strip_broker,
    unpack_fqme,
)
from ..config import PaperConf, load_brokers_conf
from ..data import open_feed  # up front: no blocking import in a handler
from ..log import get_console_log, get_logger
from ..service import Backoff, leave_if_cancelled, open_drained_stream
from ._matching import Fill, PaperBook, RestingOrder
from ._messages import (
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
from ._paper_accounts import DiskAlarm, PaperAccounts
from ._paper_store import StoredEvent, VenueStore

log = get_logger(__name__)

# commands a dialogue may have queued before its sender feels backpressure
COMMAND_BUFFER = 100_000
# messages emitted together leave as one list frame of at most this many
# (emsd's relay unpacks it)
EMIT_BATCH = 256
# a new dialogue's report waits at most this long for commands in flight
REPORT_SETTLE = 10.0
# the venue's own price band: an order's price within this factor of the
# market either way (like an exchange's percent-price filter)
VENUE_PRICE_FACTOR = 10.0
# backoff of the writes of fills the disk refused (see _paper_accounts)
RETRY_MIN = 0.1
RETRY_MAX = 5.0
# pikerd runs this in every (re)spawned paperboi (`DaemonSpec.startup`)
PAPERBOI_STARTUP = 'piker.clearing._paper_engine:startup'


def paperboi_name(broker: str) -> str:
    """The registry name of the paper venue of `broker`."""
    return f'paperboi.{broker}'


def fee_for(conf: PaperConf, price: float, size: float) -> float:
    """The fee schedule: rate of notional + per unit, at least `fee_min`."""
    fee = conf.fee_rate * abs(price * size) + conf.fee_per_unit * abs(size)
    if fee == 0 and conf.fee_min == 0:
        return 0.0
    return max(fee, conf.fee_min)


def price_problem(conf: PaperConf, price: float, size: float, bid: float, ask: float) -> str:
    """Why the venue refuses to rest `size` @ `price`, or '' (emsd checks
    its own, narrower band first: this is the venue's backstop).

    The notional (at the worst of the order's price and the touch, where
    it may fill) and its fee must be finite numbers, and the price within
    `VENUE_PRICE_FACTOR` times the market (the mid of the touch, when
    one is known) either way.
    """
    touch = [p for p in (bid, ask) if math.isfinite(p) and p > 0]
    notional = max([price, *touch]) * size
    fee = fee_for(conf, max([price, *touch]), size)
    if not math.isfinite(notional) or not math.isfinite(fee):
        return f'notional {price!r} * {size!r} (fee {fee!r}) is not a finite number'
    if touch:
        mid = sum(touch) / len(touch)
        low, high = mid / VENUE_PRICE_FACTOR, mid * VENUE_PRICE_FACTOR
        if not low <= price <= high:
            return (f'price {price!r} is outside the paper venue\'s band around the '
                    f'market {mid!r}: {low!r} to {high!r}')
    return ''


def _off_tick(value: float, tick: Decimal) -> bool:
    if not tick:
        return False
    steps = Decimal(repr(value)) / tick
    return steps != steps.to_integral_value()


class PaperVenue:
    """Books, accounts and feeds of one broker's paper venue.

    One instance per paperboi process (`open_venue()`), built by `load()`;
    each emsd dialogue is one `serve(ctx)` that subscribes to its events
    (normally there is exactly one emsd).
    """

    def __init__(self, broker: str, nursery: trio.Nursery) -> None:
        # memory only: the disk is read by `load()`, off the event loop
        self.broker = broker
        self._nursery = nursery
        self.conf = PaperConf()
        self.accounts: list[str] = ['paper']
        self.books: dict[str, PaperBook] = {}
        self.mkts: dict[str, MktPair] = {}
        self._feeds: dict[str, trio.Event] = {}
        self._feed_errors: dict[str, str] = {}
        # ledgers and positions, and the alarm when the disk refuses them
        self.accounting = PaperAccounts(broker)
        self.ledgers = self.accounting.ledgers
        self.pps = self.accounting.pps
        self._retrying = False
        self._subs: list[tractor.MsgStream] = []
        # oid -> reqids of every venue order created for it (an audit trail:
        # a modify must never show up here as a second order)
        self.created: dict[str, list[str]] = defaultdict(list)
        self._lock = trio.Lock()  # serialises order entry with quote matching
        # the command buffers of the open dialogues, and commands being
        # handled: a new dialogue's report waits for them (see report_orders)
        self._inboxes: set[Any] = set()
        self._handling = 0
        # set (and replaced) whenever a command is handled or a dialogue
        # ends: what `settle()` waits for
        self._progress = trio.Event()
        # the venue's own memory (working orders, replay log): see _paper_store
        self.store: VenueStore

    @classmethod
    async def load(cls, broker: str, nursery: trio.Nursery) -> PaperVenue:
        """A venue with its config, ledgers, positions and working orders
        loaded, in a worker thread: a start-up that fsyncs repairs (or
        reads a long ledger) must not stall the actor's event loop, its
        heartbeats to pikerd and emsd included."""
        venue = cls(broker, nursery)
        await trio.to_thread.run_sync(venue._load_from_disk)
        return venue

    def _load_from_disk(self) -> None:
        # not on the event loop: nothing else can see this venue yet
        conf = load_brokers_conf().backend(self.broker)
        self.conf = conf.paper
        self.accounts = list(dict.fromkeys(['paper', *conf.accounts]))
        for acct in self.accounts:
            self.accounting.load(acct)
        self.store = VenueStore(self.broker)
        self._repair_ledgers()
        self._restore_orders()

    def _repair_ledgers(self) -> None:
        """Put the fills a crash kept out of the ledger into it.

        The store records each fill before the ledger does (its write-ahead
        log): a venue that died in between has it there only.
        """
        missing: dict[str, list[Transaction]] = defaultdict(list)
        for ev in self.store.fills():
            fill = ev.msg
            assert isinstance(fill, BrokerdFill)
            if ev.account not in self.ledgers:
                self.accounting.load(ev.account)
            if fill.tid in self.ledgers[ev.account]:
                continue
            missing[ev.account].append(Transaction(
                fqme=ev.fqme, tid=fill.tid,
                size=fill.size if fill.action == 'buy' else -fill.size,
                price=fill.price, cost=fill.cost,
                dt=datetime.fromtimestamp(fill.broker_time, UTC), bs_mktid=ev.bs_mktid,
            ))
        for acct, txns in missing.items():
            ledger = self.ledgers[acct]
            ledger.update_from_txns(txns)
            ledger.write()
            self.pps[acct].rebuild_from_ledger(ledger)
            self.pps[acct].write()
            log.warning('%s/%s: %d fill(s) recorded but missing from the ledger '
                        '(a crash before it was written) put into it: %s',
                        self.broker, acct, len(txns), [t.tid for t in txns])

    def _restore_orders(self) -> None:
        """Rest the recorded working orders in their books again.

        Books have no touch yet (NaN), so nothing matches before the feeds
        are back (`start()`); resting orders keep their time priority.
        """
        restored = sorted(self.store.orders.values(), key=lambda o: (o.time_ns, o.seq))
        for order in restored:
            book = self.books.setdefault(order.fqme, PaperBook(order.fqme))
            book.submit(order)
            self.created[order.oid].append(order.reqid)
        if restored:
            # record the new priorities (seq) of this run
            self.store.record(resting=[
                o for book in self.books.values() for o in book.orders.values()
            ])
            log.warning('%s: restored %d working order(s) in %s', paperboi_name(self.broker),
                        len(restored), sorted(self.books))

    def start(self) -> None:
        """Restart the feeds of the restored books: their orders work again
        as soon as quotes flow, whether or not emsd is connected."""
        for fqme in list(self.books):
            self._nursery.start_soon(self._start_feed, fqme)

    async def _start_feed(self, fqme: str) -> None:
        err = await self.ensure_feed(fqme)
        if err:
            log.error('restored orders of %s cannot work: %s', fqme, err)

    def working(self) -> list[RestingOrder]:
        """Every working order, in time priority per book."""
        return sorted(
            (o for book in self.books.values() for o in book.orders.values()),
            key=lambda o: o.seq,
        )

    async def settle(self, inbox: Any, timeout: float = REPORT_SETTLE) -> None:
        """Wait (bounded) until every command received on other dialogues
        is handled: an order a dead emsd sent just before it died is still
        placed (a venue handles what it received), and a report made before
        that would tell the new emsd it never arrived."""
        with trio.move_on_after(timeout) as cs:
            while True:
                # taken before the check: a change after it sets this event
                progress = self._progress
                if not (self._handling or any(len(b) for b in self._inboxes if b is not inbox)):
                    break
                await progress.wait()
        if cs.cancelled_caught:
            log.warning('order report made with commands still in flight after %ss', timeout)

    def _progressed(self) -> None:
        """A command was handled or a dialogue ended: wake `settle()`."""
        self._progress.set()
        self._progress = trio.Event()

    async def report_orders(self, stream: tractor.MsgStream) -> None:
        """Open a new dialogue with the venue's order report.

        Recent fills and final statuses (emsd may have missed them), one
        `BrokerdStatus('open', req=...)` per working order, then
        `BrokerdOrdersSynced`. Call after `settle()`, with the venue lock
        held, and add the stream to the subscribers before releasing it: no
        event can fall between the report and the live stream.
        """
        now = time.time_ns()
        # positions first: a fill since the handshake's may have moved them
        msgs: list[Any] = [*self.positions(), *self.store.replay()]
        working = self.working()
        for o in working:
            msgs.append(BrokerdStatus(
                reqid=o.reqid, oid=o.oid, status='open', account=o.account,
                time_ns=now, filled=o.filled, remaining=o.remaining,
                req=BrokerdOrder(
                    oid=o.oid, reqid=o.reqid, symbol=strip_broker(o.fqme),
                    action=o.action, price=o.price, size=o.size,
                    account=o.account, time_ns=o.time_ns,
                ),
            ))
        msgs.append(BrokerdOrdersSynced(reqids=[o.reqid for o in working], time_ns=now))
        with trio.CancelScope(shield=True):
            for msg in msgs:
                await stream.send(msg)

    # -- one emsd dialogue ---------------------------------------------------

    async def serve(self, ctx: tractor.Context) -> None:
        """Run one trades dialogue (DESIGN.md section 5) on `ctx`.

        The handshake (positions, accounts), then the order report, then
        every command handled in arrival order until emsd ends the
        dialogue or vanishes; the venue's events meanwhile go to it too.
        """
        await ctx.started((
            [p.to_builtins() for p in self.positions()],
            self.accounts,
        ))
        async with (
            ctx.open_stream() as stream,
            # a dedicated task keeps the stream empty (TRACTOR.md rule 9):
            # while a fill is being persisted, order entry waits, and a
            # stream left full would block the whole connection - emsd's
            # heartbeats to us included, so emsd would declare us lost
            open_drained_stream(stream, policy='never_drop', maxlen=COMMAND_BUFFER) as commands,
        ):
            await self.settle(commands)
            async with self._lock:
                # nothing happens at the venue between its report and the
                # live events: both hold the lock
                await self.report_orders(stream)
                self._subs.append(stream)
            self._inboxes.add(commands)
            try:
                async with trio.open_nursery() as n:
                    n.start_soon(_close_when_gone, ctx, commands)
                    async for raw in commands:
                        await self._serve_one(raw, stream)
                    n.cancel_scope.cancel()
                if not ctx.chan.connected() and ctx._scope_nursery is not None:
                    # emsd is gone: closing the stream or returning would
                    # fail on the dead connection; end as cancelled (see
                    # `watch_peer`)
                    ctx._scope_nursery.cancel_scope.cancel()
            finally:
                self._inboxes.discard(commands)
                if stream in self._subs:
                    self._subs.remove(stream)
                self._progressed()

    async def _serve_one(self, raw: Any, origin: tractor.MsgStream) -> None:
        self._handling += 1
        try:
            await self.handle(raw, origin=origin)
        except Exception:
            # a bug, not a bad message: answer it, keep serving
            log.exception('failed to handle command %r', raw)
            await self.reply(origin, BrokerdError(
                oid=reply_oid(raw), reason='internal error handling this command',
            ))
        finally:
            self._handling -= 1
            self._progressed()

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
        # several messages leave as one list frame (`EMIT_BATCH` at most):
        # one encode, one socket write and one wake-up of emsd for an
        # order's ack and open, or a fill with its status and position
        frames = [msgs[i:i + EMIT_BATCH] for i in range(0, len(msgs), EMIT_BATCH)]
        for stream in list(self._subs):
            try:
                for frame in frames:
                    await stream.send(list(frame) if len(frame) > 1 else frame[0])
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
        backoff = Backoff()
        while True:
            try:
                async with open_feed([fqme]) as feed:
                    if feed.mkts[fqme].fqme != fqme:
                        raise NotAMarketKey(fqme, feed.mkts[fqme].fqme)
                    book = self.books.get(fqme) or PaperBook(fqme)
                    first = feed.first_quotes.get(fqme)
                    if first:
                        async with self._lock:
                            fills = book.on_quote(_as_touch_quote(first))
                            if fills:
                                await self._report_or_end(fills)
                    self.mkts[fqme] = feed.mkts[fqme]
                    self.books[fqme] = book
                    ready.set()
                    backoff.reset()
                    async for batch in feed.stream:
                        quote = batch.get(fqme)
                        if quote is None:
                            continue
                        async with self._lock:
                            fills = book.on_quote(quote)
                            if fills:
                                await self._report_or_end(fills)
                log.warning('quote feed of %s ended; reconnecting', fqme)
            except Exception as err:  # unknown symbol, dead backend, ...
                if not ready.is_set():
                    reason = (str(err) if isinstance(err, NotAMarketKey)
                              else f'no market data for {fqme!r}: {err}')
                    log.error(reason)
                    self._feed_errors[fqme] = reason
                    self._feeds.pop(fqme, None)
                    ready.set()
                    return
                await leave_if_cancelled()
                log.error('quote feed of %s failed (%s); retrying in %.1fs',
                          fqme, err, backoff.delay)
            except BaseException:
                await leave_if_cancelled()
                raise
            await backoff.sleep()

    async def _report_or_end(self, fills: list[Fill]) -> None:
        """`report_fills`, under the lock; should it fail all the same (a
        bug), the orders concerned end instead of vanishing from their
        book unseen while emsd and the state file say they work."""
        try:
            await self.report_fills(fills)
        except Exception as err:
            log.exception('internal error reporting fills %r', fills)
            ended = {f.reqid: self._fail_fill(f, err) for f in reversed(fills)}
            self.store.record(gone=[r for r in ended if r in self.store.orders],
                              events=[StoredEvent(msg=st) for st in ended.values()])
            await self.emit(*ended.values())

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
        try:
            if isinstance(cmd, BrokerdCancel):
                await self.cancel(cmd)
            else:
                await self.order(cmd)
        except Exception as err:
            # a bug, not a bad command: the order it concerns must not be
            # left working unseen (or seen working but gone): it ends here
            log.exception('internal error handling %r', cmd)
            await self._end_after_error(cmd, err)

    async def _end_after_error(self, cmd: BrokerdOrder | BrokerdCancel, err: Exception) -> None:
        """End the venue order(s) of `cmd`'s dialog after an internal error:
        out of their book, recorded, reported `canceled` saying why; if it
        has none working, the command is answered with an error."""
        reason = f'paper venue internal error handling this command ({err!r})'
        async with self._lock:
            ended = []
            for book in self.books.values():
                for order in list(book.orders.values()):
                    if order.oid == cmd.oid:
                        book.cancel(order.reqid)
                        ended.append(order)
            statuses = [self._canceled(o, f'{reason}: the order was cancelled') for o in ended]
            self.store.record(gone=[o.reqid for o in ended],
                              events=[StoredEvent(msg=st) for st in statuses])
            if not ended:
                await self.emit(BrokerdError(
                    oid=cmd.oid, reqid=cmd.reqid, reason=reason,
                    symbol=cmd.symbol if isinstance(cmd, BrokerdOrder) else '',
                ))
                return
            # a new order may have failed before its ack left: emsd hears
            # nothing else of an order before its ack (a repeated one is moot)
            acks = [BrokerdOrderAck(oid=o.oid, reqid=o.reqid, account=o.account)
                    for o in ended if isinstance(cmd, BrokerdOrder) and cmd.reqid is None]
            await self.emit(*acks, *statuses)

    @staticmethod
    def _canceled(order: RestingOrder, reason: str, filled: float | None = None) -> BrokerdStatus:
        done = order.filled if filled is None else filled
        return BrokerdStatus(
            reqid=order.reqid, oid=order.oid, status='canceled', account=order.account,
            time_ns=time.time_ns(), filled=done, remaining=max(order.size - done, 0.0),
            reason=reason,
        )

    def _reject(self, cmd: BrokerdOrder, reason: str) -> BrokerdError:
        return BrokerdError(
            oid=cmd.oid, reqid=cmd.reqid, symbol=cmd.symbol, reason=reason,
        )

    async def order(self, cmd: BrokerdOrder) -> None:
        fqme, problem = native_fqme(cmd.symbol, self.broker)
        if problem:
            await self.emit(self._reject(cmd, problem))
            return
        if self.accounting.alarm is not None:
            await self.emit(self._reject(cmd, (
                f'{self.accounting.alarm.reason}: new orders and modifies are refused '
                'until then (cancels work)'
            )))
            return
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
        problem = price_problem(self.conf, cmd.price, cmd.size, book.bid, book.ask)
        if problem:
            await self.emit(self._reject(cmd, f'{problem} ({fqme})'))
            return
        async with self._lock:
            if cmd.reqid is None:
                order = RestingOrder(
                    reqid=_new_reqid(), oid=cmd.oid, fqme=fqme,
                    action=cmd.action, price=cmd.price, size=cmd.size,
                    account=cmd.account, time_ns=cmd.time_ns,
                )
                self.created[cmd.oid].append(order.reqid)
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
                try:
                    fills = book.modify(reqid, cmd.price, cmd.size)
                except ValueError as verr:
                    await self.emit(
                        BrokerdOrderAck(oid=cmd.oid, reqid=reqid, account=cmd.account),
                        self._reject(cmd, str(verr)),
                    )
                    return
            ack = BrokerdOrderAck(oid=cmd.oid, reqid=reqid, account=cmd.account)
            if not fills:
                # nothing to persist: recorded, then the ack and the open
                # leave together (what report_fills would do, in one frame)
                self._record([(fqme, reqid)], [])
                resting = book.orders.get(reqid)
                await self.emit(ack, *([self._open(cmd, resting)] if resting else []))
                await self._compact_if_due()
                return
            # recorded (order and fills) before the ack leaves: see report_fills
            await self.report_fills(fills, first=[ack], touched=[(fqme, reqid)])
            resting = book.orders.get(reqid)
            if resting is not None:
                await self.emit(self._open(cmd, resting))

    @staticmethod
    def _open(cmd: BrokerdOrder, resting: RestingOrder) -> BrokerdStatus:
        return BrokerdStatus(
            reqid=resting.reqid, oid=cmd.oid, status='open',
            account=cmd.account, time_ns=time.time_ns(),
            filled=resting.filled, remaining=resting.remaining,
        )

    async def cancel(self, cmd: BrokerdCancel) -> None:
        reqid = str(cmd.reqid)
        async with self._lock:
            for book in self.books.values():
                order = book.cancel(reqid)
                if order is not None:
                    status = self._canceled(order, 'cancelled by request')
                    self.store.record(gone=[reqid], events=[StoredEvent(msg=status)])
                    await self.emit(status)
                    await self._compact_if_due()
                    return
        await self.emit(BrokerdError(
            oid=cmd.oid, reqid=cmd.reqid,
            reason=f'no working order {reqid!r} to cancel (already filled or cancelled?)',
        ))

    # -- fills --------------------------------------------------------------

    def _persist(
        self, by_acct: dict[str, list[Transaction]],
    ) -> tuple[dict[str, dict[str, Position]], DiskAlarm | None]:
        """Book fills in memory and write them (in a worker thread)."""
        touched = self.accounting.book(by_acct, self.mkts)
        return touched, self.accounting.flush()

    def _keep_retrying(self) -> None:
        if not self._retrying:
            self._retrying = True
            self._nursery.start_soon(self._retry_writes)

    async def _retry_writes(self) -> None:
        """Write the unrecorded fills until the disk takes them (backoff
        `RETRY_MIN`..`RETRY_MAX` s); a fill meanwhile writes them too."""
        delay = RETRY_MIN
        try:
            while self.accounting.alarm is not None:
                await trio.sleep(delay)
                async with self._lock:
                    if self.accounting.alarm is None:
                        break
                    alarm = await trio.to_thread.run_sync(self.accounting.flush)
                if alarm is not None:
                    log.error('%s (still failing, retrying in %.1fs)', alarm.reason,
                              min(delay * 2, RETRY_MAX))
                delay = min(delay * 2, RETRY_MAX)
        finally:
            self._retrying = False

    def _record(
        self,
        touched: Iterable[tuple[str, str]],
        events: list[StoredEvent],
    ) -> None:
        """Record the state of the `(fqme, reqid)` orders, and `events`."""
        resting: list[RestingOrder] = []
        gone: list[str] = []
        for fqme, reqid in dict.fromkeys(touched):
            book = self.books.get(fqme)
            order = book.orders.get(reqid) if book is not None else None
            if order is not None:
                resting.append(order)
            elif reqid in self.store.orders:
                gone.append(reqid)
        self.store.record(resting=resting, gone=gone, events=events)

    async def _compact_if_due(self) -> None:
        """Compact the state file in a worker thread (it fsyncs); the
        caller holds the lock, so no change is recorded meanwhile."""
        if self.store.compaction_due:
            await trio.to_thread.run_sync(self.store.compact)

    async def report_fills(
        self,
        fills: list[Fill],
        first: Sequence[Any] = (),
        touched: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Record, persist and report `fills` (and the order changes).

        In this order, so that a crash at any point loses nothing: the
        venue state (`touched` orders and the filled ones, the fills as
        replay events) is recorded; `first` (an order's ack) is reported;
        the fills go into the ledger, then the positions (fsync'd, off the
        event loop); then they are reported. A fill recorded but not in
        the ledger is put there on restart; one not reported is replayed
        to the next emsd dialogue.

        Never raises for a fill: one that cannot be booked (a non-finite
        cost...) is a venue internal error that ends its order, cancelled
        with only its good fills; one the disk refuses is reported all
        the same, under the venue's `DiskAlarm` (see `_paper_accounts`).
        """
        now = datetime.now(UTC)
        now_ns = time.time_ns()
        by_acct: dict[str, list[Transaction]] = defaultdict(list)
        out: list[Any] = []
        events: list[StoredEvent] = []
        failed: dict[str, BrokerdStatus] = {}
        for f in fills:
            if f.reqid in failed:
                continue  # its order ended at its first bad fill
            mkt = self.mkts.get(f.fqme)
            bs_mktid = mkt.bs_mktid if mkt else ''
            try:
                cost = fee_for(self.conf, f.price, f.size)
                txn = Transaction(
                    fqme=f.fqme, tid=f.tid,
                    size=f.size if f.action == 'buy' else -f.size,
                    price=f.price, cost=cost, dt=now, bs_mktid=bs_mktid,
                )
                fill = BrokerdFill(
                    reqid=f.reqid, oid=f.oid, tid=f.tid, action=f.action,
                    size=f.size, price=f.price, broker_time=now.timestamp(),
                    time_ns=now_ns, cost=cost,
                )
            except ValueError as err:
                failed[f.reqid] = self._fail_fill(f, err)
                continue
            by_acct[f.account].append(txn)
            order_done = f.remaining <= 0 or math.isclose(f.remaining, 0, abs_tol=1e-12)
            status = BrokerdStatus(
                reqid=f.reqid, oid=f.oid,
                status='closed' if order_done else 'open',
                account=f.account, time_ns=now_ns,
                filled=f.filled, remaining=max(f.remaining, 0.0),
            )
            out += [fill, status]
            events.append(StoredEvent(msg=fill, fqme=f.fqme, account=f.account,
                                      bs_mktid=bs_mktid))
            if order_done:
                events.append(StoredEvent(msg=status))
        events += [StoredEvent(msg=st) for st in failed.values()]
        self._record([*touched, *((f.fqme, f.reqid) for f in fills)], events)
        if first:
            await self.emit(*first)
        await self._compact_if_due()
        if by_acct:
            # disk first (off the event loop: fsync takes milliseconds), then
            # the reports: a fill is never reported that a crash could lose
            # - unless the disk refuses it: then it is reported regardless
            touched_pps, alarm = await trio.to_thread.run_sync(self._persist, by_acct)
            if alarm is not None:
                self._keep_retrying()
                for i, msg in enumerate(out):
                    if isinstance(msg, BrokerdStatus):
                        out[i] = msg.copy({'reason': alarm.reason})
            for acct, pps in touched_pps.items():
                for fqme, pos in pps.items():
                    out.append(BrokerdPosition(
                        broker=self.broker, account=acct, symbol=fqme,
                        size=pos.size, avg_price=pos.ppu,
                    ))
        await self.emit(*out, *failed.values())

    def _fail_fill(self, f: Fill, err: Exception) -> BrokerdStatus:
        """A fill the venue cannot book: its order ends (out of its book),
        cancelled with what it filled before this one."""
        log.error('paper venue cannot book fill %s of order %s (%s): cancelling the order',
                  f.tid, f.oid, err)
        book = self.books.get(f.fqme)
        if book is not None:
            book.cancel(f.reqid)
        order = RestingOrder(reqid=f.reqid, oid=f.oid, fqme=f.fqme, action=f.action,
                             price=f.price, size=f.filled + f.remaining, account=f.account)
        return self._canceled(order, (
            f'paper venue internal error: a fill of {f.size} @ {f.price} could not be '
            f'booked ({err}); the order was cancelled'
        ), filled=f.filled - f.size)


def _as_touch_quote(quote: dict[str, Any]) -> dict[str, Any]:
    """Turn a snapshot quote (bid/ask fields) into touch ticks."""
    ticks = []
    for key, size_key in (('bid', 'bsize'), ('ask', 'asize')):
        price = quote.get(key)
        if price is not None and math.isfinite(price):
            ticks.append({'type': key, 'price': price, 'size': quote.get(size_key)})
    return {'ticks': ticks}


class NotAMarketKey(ValueError):
    """An order's symbol resolved to a market of another name: it was not
    that market's broker-native key (an fqme, or a case variant)."""

    def __init__(self, fqme: str, market: str) -> None:
        super().__init__(
            f'symbol {strip_broker(fqme)!r} is not a broker-native key: it names '
            f'the market {market!r}, whose key is {strip_broker(market)!r}'
        )


def native_fqme(symbol: str, broker: str) -> tuple[str, str]:
    """`(fqme, '')` for a well-formed broker-native key, else `('', why)`.

    A venue order carries the fqme without its `.<broker>` suffix, lower
    case (`btcusdt`), never an fqme (`btcusdt.sim`: it would be booked
    under `btcusdt.sim.sim`) nor another spelling. Whether the key names
    a market is the feed's to say (`NotAMarketKey`).
    """
    if symbol != symbol.lower():
        return '', (f'symbol {symbol!r} is not a broker-native key: keys are '
                    f'lower case ({symbol.lower()!r})')
    fqme = f'{symbol}.{broker}'
    try:
        unpack_fqme(fqme)
    except ValueError as err:
        return '', f'symbol {symbol!r} is not a broker-native key of {broker}: {err}'
    return fqme, ''


def _new_reqid() -> str:
    import uuid
    return uuid.uuid4().hex


_venues: dict[str, PaperVenue] = {}
# broker -> set once its first `open_venue()` finished loading (or failed)
_loading: dict[str, trio.Event] = {}


async def open_venue(broker: str) -> PaperVenue:
    """This actor's paper venue of `broker`, loaded (and started) once.

    Concurrent callers (pikerd's start-up hook and a first dialogue) wait
    for the one load; a load that fails raises here and is tried again by
    the next caller.
    """
    while (venue := _venues.get(broker)) is None:
        loading = _loading.get(broker)
        if loading is not None:
            await loading.wait()
            continue
        loading = _loading[broker] = trio.Event()
        try:
            # tractor 0.1.0a5 has no public per-actor nursery; its service
            # nursery lives as long as the actor does.
            svc_n = tractor.current_actor()._service_n
            venue = await PaperVenue.load(broker, svc_n)
            _venues[broker] = venue
            venue.start()
        finally:
            del _loading[broker]
            loading.set()
    return venue


async def startup() -> None:
    """paperboi's start-up hook (`DaemonSpec.startup`), run by pikerd right
    after every (re)spawn: reload the venue's working orders and restart
    their feeds now, so they fill while no emsd is connected."""
    name = tractor.current_actor().name
    prefix = paperboi_name('')
    if not name.startswith(prefix):
        raise RuntimeError(f'{name!r} is not a paper venue ({prefix}<broker>)')
    await open_venue(name[len(prefix):])


async def paper_audit(broker: str) -> dict[str, list[str]]:
    """RPC: oid -> reqids of every order the paper venue of `broker` created.

    Lets tests (and the curious) check from outside that modifies and
    triggers never create a second venue order for one dialog.
    """
    venue = _venues.get(broker)
    return {oid: list(reqids) for oid, reqids in venue.created.items()} if venue else {}


async def paper_alarm(broker: str) -> dict[str, Any] | None:
    """RPC: the paper venue's `DiskAlarm` (it cannot record fills), or None."""
    venue = _venues.get(broker)
    alarm = venue.accounting.alarm if venue is not None else None
    return alarm.to_builtins() if alarm is not None else None


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
    venue = await open_venue(broker)
    await venue.serve(ctx)


async def _close_when_gone(ctx: tractor.Context, commands: Any, poll: float = 0.05) -> None:
    """End a dialogue whose emsd vanished (SIGKILL included: TRACTOR.md
    rule 2) once the commands it sent are handled: a venue handles what
    it received; then its task and subscription go."""
    while ctx.chan.connected():
        await trio.sleep(poll)
    log.warning('emsd dialogue lost: handling its last %d command(s), then closing it',
                len(commands))
    commands.close()


__all__ = [
    'PAPERBOI_STARTUP', 'PaperVenue', 'fee_for', 'leave_if_cancelled', 'native_fqme', 'open_venue',
    'open_trade_dialog', 'paper_alarm', 'paper_audit', 'paperboi_name', 'price_problem',
    'reply_oid',
    'startup',
    'strip_broker',
]
