"""The paper venue's accounting: its trade ledgers and positions, and
what of them the disk does not hold yet.

A venue fill is a fact. When the accounting dir cannot be written (disk
full, read-only remount, I/O error, a path that is not a directory), the
fill still happened and is still reported; what failed is the *record*
of it. So `PaperAccounts` books fills in memory first (`book()`), then
writes every ledger and positions file that changed (`flush()`). A
write that fails raises a `DiskAlarm` - the path, the errno, how many
fills only memory holds - which the venue keeps up (and refuses new
orders under) until a later `flush()` succeeds; that flush writes the
in-memory ledgers, which hold every unrecorded fill once (keyed by tid),
so each fill lands on disk exactly once whenever the disk recovers.

Until then an unrecorded fill also lives in the venue's state file
(`_paper_store`, its write-ahead log) if that one is writable: a venue
restarted meanwhile puts it into the ledger. Only a crash while *both*
are unwritable loses it from disk; the trader was told of it regardless.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

from ..accounting import Account, MktPair, Position, Transaction, TransactionLedger
from ..log import get_logger
from ..types import Struct

__all__ = ['DiskAlarm', 'PaperAccounts']

log = get_logger(__name__)


class DiskAlarm(Struct):
    """The venue cannot record fills: where, why, since when, how many."""

    path: str
    errno: int | None
    error: str          # the OS error as it reads, errno and path included
    since: float        # epoch seconds
    unrecorded: int     # fills held in memory only

    @property
    def reason(self) -> str:
        return (
            f'paper venue cannot record fills: writing {self.path} failed: '
            f'{self.error}; {self.unrecorded} fill(s) reported but kept in memory '
            'only, recorded as soon as the disk accepts them'
        )


class PaperAccounts:
    """The ledgers and positions tables of one broker's paper accounts."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        self.ledgers: dict[str, TransactionLedger] = {}
        self.pps: dict[str, Account] = {}
        self.alarm: DiskAlarm | None = None
        self._unrecorded: set[str] = set()  # tids booked, not yet on disk

    def load(self, acct: str) -> None:
        """Load the ledger and positions of `acct`.

        The ledger is the source of truth: positions are rebuilt from it
        at start-up, so a positions file a crash left behind can never
        disagree with the recorded fills, and one that is unusable is set
        aside and rebuilt (`Account.load_or_set_aside`).
        """
        ledger = self.ledgers[acct] = TransactionLedger.load(self.broker, acct)
        if ledger and not ledger.appendable:
            ledger.write()  # an older piker's ledger: made append-only once, here
        account = self.pps[acct] = Account.load_or_set_aside(self.broker, acct)
        if ledger or account.dirty:
            account.rebuild_from_ledger(ledger)
            account.write()

    def book(
        self,
        by_acct: Mapping[str, list[Transaction]],
        mkts: Mapping[str, MktPair],
    ) -> dict[str, dict[str, Position]]:
        """Apply fills in memory; return the touched positions per account."""
        touched = {}
        for acct, txns in by_acct.items():
            for txn in self.ledgers[acct].update_from_txns(txns):
                self._unrecorded.add(txn.tid)
            touched[acct] = self.pps[acct].update_from_txns(txns, mkts)
        return touched

    def flush(self) -> DiskAlarm | None:
        """Write every changed ledger (its new fills appended, one fsync),
        then positions file (replaced atomically, not fsync'd: derived
        from the ledger, it is rebuilt from it at every start).

        Returns the alarm standing after it: None once everything booked
        is on disk. Blocking (fsyncs): run it in a worker thread.
        """
        try:
            for acct in sorted(self.ledgers):
                ledger, account = self.ledgers[acct], self.pps[acct]
                path = ledger.path
                if ledger.dirty:
                    ledger.write()
                path = account.path
                if account.dirty:
                    account.write(durable=False)
        except OSError as err:
            return self._raise(path, err)
        if self.alarm is not None:
            log.warning('paper venue %s: the disk takes fills again: %d fill(s) held in '
                        'memory since %s are now recorded', self.broker, len(self._unrecorded),
                        time.strftime('%H:%M:%S', time.localtime(self.alarm.since)))
            self.alarm = None
        self._unrecorded.clear()
        return None

    def _raise(self, path: object, err: OSError) -> DiskAlarm:
        first = self.alarm is None
        self.alarm = DiskAlarm(
            path=str(path), errno=err.errno, error=str(err),
            since=time.time() if first else self.alarm.since,  # type: ignore[union-attr]
            unrecorded=len(self._unrecorded),
        )
        if first:
            log.error('PAPER VENUE %s CANNOT RECORD FILLS: %s. Fills are still reported '
                      'and kept in memory; new orders are refused until the disk is back',
                      self.broker, self.alarm.reason)
        return self.alarm
