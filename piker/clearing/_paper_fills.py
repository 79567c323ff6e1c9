"""The paper venue's fills: recorded, booked, written, then reported.

One fill path for every fill, whether an order crossed the touch when it
arrived (`PaperVenue.order`) or a quote reached a resting one
(`_paper_feeds`): the venue's state file first, then the ledger and the
positions on disk (off the event loop), then the reports; a disk that
refuses the write does not unmake the fill (`DiskAlarm`, retried with
backoff). The venue's books, markets and accounts are the venue's: this
object owns only its retry task's flag.
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import trio

from ..accounting import Position, Transaction
from ..log import get_logger
from ._matching import Fill, RestingOrder
from ._messages import BrokerdFill, BrokerdPosition, BrokerdStatus
from ._paper_accounts import DiskAlarm
from ._paper_rules import canceled_status, fee_for
from ._paper_store import StoredEvent

if TYPE_CHECKING:
    from ._paper_engine import PaperVenue

log = get_logger(__name__)

# backoff of the writes of fills the disk refused (see _paper_accounts)
RETRY_MIN = 0.1
RETRY_MAX = 5.0


class PaperFills:
    """Records, persists and reports the fills of one `PaperVenue`."""

    def __init__(self, venue: PaperVenue) -> None:
        self.venue = venue
        self._retrying = False

    def _persist(
        self, by_acct: dict[str, list[Transaction]],
    ) -> tuple[dict[str, dict[str, Position]], DiskAlarm | None]:
        """Book fills in memory and write them (in a worker thread)."""
        touched = self.venue.accounting.book(by_acct, self.venue.mkts)
        return touched, self.venue.accounting.flush()

    def _keep_retrying(self) -> None:
        if not self._retrying:
            self._retrying = True
            self.venue.nursery.start_soon(self._retry_writes)

    async def _retry_writes(self) -> None:
        """Write the unrecorded fills until the disk takes them (backoff
        `RETRY_MIN`..`RETRY_MAX` s); a fill meanwhile writes them too."""
        delay = RETRY_MIN
        try:
            while self.venue.accounting.alarm is not None:
                await trio.sleep(delay)
                async with self.venue.lock:
                    if self.venue.accounting.alarm is None:
                        break
                    alarm = await trio.to_thread.run_sync(self.venue.accounting.flush)
                if alarm is not None:
                    log.error('%s (still failing, retrying in %.1fs)', alarm.reason,
                              min(delay * 2, RETRY_MAX))
                delay = min(delay * 2, RETRY_MAX)
        finally:
            self._retrying = False

    def record(
        self,
        touched: Iterable[tuple[str, str]],
        events: list[StoredEvent],
    ) -> None:
        """Record the state of the `(fqme, reqid)` orders, and `events`."""
        resting: list[RestingOrder] = []
        gone: list[str] = []
        for fqme, reqid in dict.fromkeys(touched):
            book = self.venue.books.get(fqme)
            order = book.orders.get(reqid) if book is not None else None
            if order is not None:
                resting.append(order)
            elif reqid in self.venue.store.orders:
                gone.append(reqid)
        self.venue.store.record(resting=resting, gone=gone, events=events)

    async def compact_if_due(self) -> None:
        """Compact the state file in a worker thread (it fsyncs); the
        caller holds the lock, so no change is recorded meanwhile."""
        if self.venue.store.compaction_due:
            await trio.to_thread.run_sync(self.venue.store.compact)

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
            mkt = self.venue.mkts.get(f.fqme)
            bs_mktid = mkt.bs_mktid if mkt else ''
            try:
                cost = fee_for(self.venue.conf, f.price, f.size)
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
                failed[f.reqid] = self.fail_fill(f, err)
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
        self.record([*touched, *((f.fqme, f.reqid) for f in fills)], events)
        if first:
            await self.venue.emit(*first)
        await self.compact_if_due()
        if by_acct:
            # disk first (off the event loop: fsync takes milliseconds), then
            # the reports: a fill is never reported that a crash could lose
            # - unless the disk refuses it: then it is reported regardless.
            # What a batch of commands emitted so far leaves first.
            await self.venue.flush()
            touched_pps, alarm = await trio.to_thread.run_sync(self._persist, by_acct)
            if alarm is not None:
                self._keep_retrying()
                for i, msg in enumerate(out):
                    if isinstance(msg, BrokerdStatus):
                        out[i] = msg.copy({'reason': alarm.reason})
            for acct, pps in touched_pps.items():
                for fqme, pos in pps.items():
                    out.append(BrokerdPosition(
                        broker=self.venue.broker, account=acct, symbol=fqme,
                        size=pos.size, avg_price=pos.ppu,
                    ))
        await self.venue.emit(*out, *failed.values())

    def fail_fill(self, f: Fill, err: Exception) -> BrokerdStatus:
        """A fill the venue cannot book: its order ends (out of its book),
        cancelled with what it filled before this one."""
        log.error('paper venue cannot book fill %s of order %s (%s): cancelling the order',
                  f.tid, f.oid, err)
        book = self.venue.books.get(f.fqme)
        if book is not None:
            book.cancel(f.reqid)
        order = RestingOrder(reqid=f.reqid, oid=f.oid, fqme=f.fqme, action=f.action,
                             price=f.price, size=f.filled + f.remaining, account=f.account)
        return canceled_status(order, (
            f'paper venue internal error: a fill of {f.size} @ {f.price} could not be '
            f'booked ({err}); the order was cancelled'
        ), filled=f.filled - f.size)


    async def report_or_end(self, fills: list[Fill]) -> None:
        """`report_fills`, under the lock; should it fail all the same (a
        bug), the orders concerned end instead of vanishing from their
        book unseen while emsd and the state file say they work."""
        try:
            await self.report_fills(fills)
        except Exception as err:
            log.exception('internal error reporting fills %r', fills)
            ended = {f.reqid: self.fail_fill(f, err) for f in reversed(fills)}
            self.venue.store.record(gone=[r for r in ended if r in self.venue.store.orders],
                              events=[StoredEvent(msg=st) for st in ended.values()])
            await self.venue.emit(*ended.values())

    # -- order entry --------------------------------------------------------
