"""A paper venue's start-up from disk: what a crash left half-done is
finished, and the working orders rest in their books again.

Run once, by `PaperVenue.load()` in a worker thread, before anything else
can see the venue.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..accounting import Transaction
from ..log import get_logger
from ._daemons import PAPERBOI
from ._matching import PaperBook
from ._messages import BrokerdFill

if TYPE_CHECKING:
    from ._paper_engine import PaperVenue

log = get_logger(__name__)


def repair_ledgers(venue: PaperVenue) -> None:
    """Put the fills a crash kept out of the ledger into it.

    The store records each fill before the ledger does (its write-ahead
    log): a venue that died in between has it there only.
    """
    missing: dict[str, list[Transaction]] = defaultdict(list)
    for ev in venue.store.fills():
        fill = ev.msg
        assert isinstance(fill, BrokerdFill)
        if ev.account not in venue.ledgers:
            venue.accounting.load(ev.account)
        if fill.tid in venue.ledgers[ev.account]:
            continue
        missing[ev.account].append(Transaction(
            fqme=ev.fqme, tid=fill.tid,
            size=fill.size if fill.action == 'buy' else -fill.size,
            price=fill.price, cost=fill.cost,
            dt=datetime.fromtimestamp(fill.broker_time, UTC), bs_mktid=ev.bs_mktid,
        ))
    for acct, txns in missing.items():
        ledger = venue.ledgers[acct]
        ledger.update_from_txns(txns)
        ledger.write()
        venue.pps[acct].rebuild_from_ledger(ledger)
        venue.pps[acct].write()
        log.warning('%s/%s: %d fill(s) recorded but missing from the ledger '
                    '(a crash before it was written) put into it: %s',
                    venue.broker, acct, len(txns), [t.tid for t in txns])


def restore_orders(venue: PaperVenue) -> None:
    """Rest the recorded working orders in their books again.

    Books have no touch yet (NaN), so nothing matches before the feeds
    are back (`start()`); resting orders keep their time priority.
    """
    restored = sorted(venue.store.orders.values(), key=lambda o: (o.time_ns, o.seq))
    for order in restored:
        book = venue.books.setdefault(order.fqme, PaperBook(order.fqme))
        book.submit(order)
        venue.created[order.oid].append(order.reqid)
    if restored:
        # record the new priorities (seq) of this run
        venue.store.record(resting=[
            o for book in venue.books.values() for o in book.orders.values()
        ])
        log.warning('%s: restored %d working order(s) in %s', PAPERBOI.name(venue.broker),
                    len(restored), sorted(venue.books))
