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

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import tractor
import trio

from ..accounting import MktPair
from ..config import PaperConf, load_brokers_conf
from ..log import get_console_log, get_logger
from ..service import actor_nursery
from ._daemons import PAPERBOI
from ._matching import Fill, PaperBook, RestingOrder
from ._messages import (
    BrokerdCancel,
    BrokerdError,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    MessageError,
    decode_backend_cmd,
    reply_oid,
)
from ._paper_accounts import PaperAccounts
from ._paper_dialogues import Dialogues
from ._paper_feeds import PaperFeeds
from ._paper_fills import PaperFills
from ._paper_restore import repair_ledgers, restore_orders
from ._paper_rules import (
    canceled_status,
    fee_for,
    native_fqme,
    new_reqid,
    off_tick,
    price_problem,
)
from ._paper_store import StoredEvent, VenueStore

log = get_logger(__name__)

class PaperVenue:
    """Books, accounts and feeds of one broker's paper venue.

    One instance per paperboi process (`open_venue()`), built by `load()`;
    each emsd dialogue is one `serve(ctx)` that subscribes to its events
    (normally there is exactly one emsd).
    """

    def __init__(self, broker: str, nursery: trio.Nursery) -> None:
        # memory only: the disk is read by `load()`, off the event loop
        self.broker = broker
        # the venue outlives its dialogues: its feed and retry tasks run here
        self.nursery = nursery
        self.conf = PaperConf()
        self.accounts: list[str] = ['paper']
        self.books: dict[str, PaperBook] = {}
        self.mkts: dict[str, MktPair] = {}
        # ledgers and positions, and the alarm when the disk refuses them
        self.accounting = PaperAccounts(broker)
        self.ledgers = self.accounting.ledgers
        self.pps = self.accounting.pps
        # oid -> reqids of every venue order created for it (an audit trail:
        # a modify must never show up here as a second order)
        self.created: dict[str, list[str]] = defaultdict(list)
        self.lock = trio.Lock()  # serialises order entry with quote matching
        # the venue's own memory (working orders, replay log): see _paper_store
        self.store: VenueStore
        # its three edges: quotes in, fills out, emsd dialogues
        self.feeds = PaperFeeds(self)
        self.fills = PaperFills(self)
        self.dialogues = Dialogues(self)

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
        repair_ledgers(self)
        restore_orders(self)

    def start(self) -> None:
        """Restart the feeds of the restored books: their orders work again
        as soon as quotes flow, whether or not emsd is connected."""
        for fqme in list(self.books):
            self.nursery.start_soon(self.feeds.start_feed, fqme)

    def working(self) -> list[RestingOrder]:
        """Every working order, in time priority per book."""
        return sorted(
            (o for book in self.books.values() for o in book.orders.values()),
            key=lambda o: o.seq,
        )

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

    # -- the edges, as the order entry below uses them ------------------------

    async def serve(self, ctx: tractor.Context) -> None:
        """Run one trades dialogue on `ctx` (see `Dialogues.serve`)."""
        await self.dialogues.serve(ctx)

    async def emit(self, *msgs: Any) -> None:
        """Send `msgs` to every emsd dialogue, in order."""
        await self.dialogues.emit(*msgs)

    async def flush(self) -> None:
        """Send what a batch of commands emitted so far (`Dialogues.flush`)."""
        await self.dialogues.flush()

    async def reply(self, origin: tractor.MsgStream | None, msg: Any) -> None:
        """Send `msg` to the dialogue `origin` only (to all if None)."""
        await self.dialogues.reply(origin, msg)

    async def ensure_feed(self, fqme: str) -> str | None:
        """Start (once) the quote feed of `fqme`; return an error or None."""
        return await self.feeds.ensure_feed(fqme)

    async def report_fills(self, fills: list[Fill], first: Any = (),
                           touched: Any = ()) -> None:
        """Record, persist and report `fills` (see `PaperFills.report_fills`)."""
        await self.fills.report_fills(fills, first=first, touched=touched)

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
        async with self.lock:
            ended = []
            for book in self.books.values():
                for order in list(book.orders.values()):
                    if order.oid == cmd.oid:
                        book.cancel(order.reqid)
                        ended.append(order)
            statuses = [canceled_status(o, f'{reason}: the order was cancelled') for o in ended]
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
        if off_tick(cmd.size, mkt.size_tick):
            await self.emit(self._reject(
                cmd, f'size {cmd.size} is not a multiple of the size tick '
                f'{mkt.size_tick} of {fqme}',
            ))
            return
        if off_tick(cmd.price, mkt.price_tick):
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
        async with self.lock:
            if cmd.reqid is None:
                order = RestingOrder(
                    reqid=new_reqid(), oid=cmd.oid, fqme=fqme,
                    action=cmd.action, price=cmd.price, size=cmd.size,
                    account=cmd.account, time_ns=cmd.time_ns,
                )
                self.created[cmd.oid].append(order.reqid)
                fills = book.submit(order, cmd.tif)
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
                # (or an unrested ioc/fok's cancel) leave together: what
                # report_fills would do, in one frame
                self.fills.record([(fqme, reqid)], [])
                resting = book.orders.get(reqid)
                if resting is not None:
                    await self.emit(ack, self._open(cmd, resting))
                elif cmd.reqid is None and cmd.tif != 'gtc':
                    await self._end_unrested(cmd, reqid, fills, first=[ack])
                else:
                    await self.emit(ack)
                await self.fills.compact_if_due()
                return
            # recorded (order and fills) before the ack leaves: see report_fills
            await self.report_fills(fills, first=[ack], touched=[(fqme, reqid)])
            resting = book.orders.get(reqid)
            if resting is not None:
                await self.emit(self._open(cmd, resting))
            elif cmd.reqid is None and cmd.tif != 'gtc':
                await self._end_unrested(cmd, reqid, fills)

    @staticmethod
    def _open(cmd: BrokerdOrder, resting: RestingOrder) -> BrokerdStatus:
        return BrokerdStatus(
            reqid=resting.reqid, oid=cmd.oid, status='open',
            account=cmd.account, time_ns=time.time_ns(),
            filled=resting.filled, remaining=resting.remaining,
        )

    async def _end_unrested(
        self, cmd: BrokerdOrder, reqid: str, fills: list[Fill], first: Sequence[Any] = (),
    ) -> None:
        """An ioc/fok order does not rest: cancel what the touch did not fill
        (`first`, its ack when nothing filled, leaves in the same frame)."""
        filled = sum(f.size for f in fills)
        if filled >= cmd.size - 1e-9 * max(cmd.size, 1.0):
            if first:
                await self.emit(*first)
            return  # filled whole: its fills said 'closed'
        if cmd.tif == 'ioc':
            why = (f'ioc: {filled:g} of {cmd.size:g} filled at the touch, '
                   'the rest cancelled')
        else:
            why = f'fok: the touch cannot fill all {cmd.size:g}: nothing filled, cancelled'
        order = RestingOrder(reqid=reqid, oid=cmd.oid, fqme='', action=cmd.action,
                             price=cmd.price, size=cmd.size, account=cmd.account,
                             filled=filled)
        status = canceled_status(order, why)
        self.store.record(events=[StoredEvent(msg=status)])
        await self.emit(*first, status)

    async def cancel(self, cmd: BrokerdCancel) -> None:
        reqid = str(cmd.reqid)
        async with self.lock:
            for book in self.books.values():
                order = book.cancel(reqid)
                if order is not None:
                    status = canceled_status(order, 'cancelled by request')
                    self.store.record(gone=[reqid], events=[StoredEvent(msg=status)])
                    await self.emit(status)
                    await self.fills.compact_if_due()
                    return
        await self.emit(BrokerdError(
            oid=cmd.oid, reqid=cmd.reqid,
            reason=f'no working order {reqid!r} to cancel (already filled or cancelled?)',
        ))

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
            # the venue lives as long as the actor does
            venue = await PaperVenue.load(broker, actor_nursery())
            _venues[broker] = venue
            venue.start()
        finally:
            del _loading[broker]
            loading.set()
    return venue


async def startup() -> None:
    """paperboi's start-up hook (`_daemons.PAPERBOI`), run by pikerd right
    after every (re)spawn: reload the venue's working orders and restart
    their feeds now, so they fill while no emsd is connected."""
    name = tractor.current_actor().name
    broker = PAPERBOI.key_of(name)
    if not broker:
        raise RuntimeError(f'{name!r} is not a paper venue ({PAPERBOI.name("<broker>")})')
    await open_venue(broker)


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


__all__ = [
    'PaperVenue', 'fee_for', 'native_fqme', 'open_trade_dialog', 'open_venue',
    'paper_alarm', 'paper_audit', 'price_problem', 'startup',
]
