"""The paper venue's memory: its working orders and recent events, on disk.

A venue keeps its orders across restarts, so the paper venue does too.
One file per broker, `<config dir>/accounting/paper_orders.<broker>.jsonl`,
JSON lines (one record per line, human-readable):

- `{"op": "rest", "order": {...}}`: an order now works at the venue with
  this state (new, modified, or partly filled: `filled` is cumulative);
- `{"op": "gone", "reqid": ...}`: it stopped working (filled or cancelled);
- `{"op": "event", "msg": {...}, "fqme", "account", "bs_mktid"}`: a
  `BrokerdFill` or final `BrokerdStatus` the venue reported, kept (the
  last `replay_max` of them) to be replayed to every new emsd dialogue:
  emsd may have missed them (it was down, or the venue died between
  recording and reporting them); duplicates are harmless (fills are
  deduplicated by tid).

Ordering: the venue records a change *before* it reports it (an ack, a
status, a fill), and a fill before it goes into the trade ledger: the
`event` records of fills are the ledger's write-ahead log. A venue that
died between the two puts the missing fills into the ledger when it
starts again (`PaperVenue`), so the ledger, the positions and what
clients were told always agree.

Cost and durability: a change is one `write()` appended to the file (tens
of microseconds, no fsync), so it survives any *process* crash - SIGKILL
included: the data is in the OS page cache - and the order path stays
fast. The file is compacted (rewritten with only the current orders and
the replay log, atomically and fsync'd) at start-up and whenever the
appended records outnumber the live ones by `compact_ratio`: O(1) per
change, and a compaction is bounded by the live records (the working
orders and at most `replay_max` events), never by the history. An OS
crash or power loss can lose the last changes or leave a torn last line,
which is skipped on load (logged). The same trade-off as emsd's journal.
An append that fails (disk full, I/O error) is cut back off the file, so
the next one never glues onto a half-written line (which would read as
damage, below).

Damage (an unreadable record anywhere but a torn end) is treated as
emsd's journal treats a corrupt db: the file is renamed aside with its
bytes intact (`paper_orders.<broker>.jsonl.corrupt-<time>`), loudly, and
rebuilt from only what its readable records prove (see `load()`).
"""
from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from ..accounting._files import accounting_dir, check_name
from ..atomicfile import quarantine, write_atomic
from ..log import get_logger
from ..types import Struct
from ._matching import RestingOrder
from ._messages import BrokerdFill, BrokerdStatus

__all__ = ['REPLAY_MAX', 'StoredEvent', 'VenueStore', 'store_path']

log = get_logger(__name__)

# events kept for replay: enough for every fill of a busy session's last
# minutes; a dialog emsd still tracks whose events fell out is resolved
# from the venue's report of its working orders (see `_reconcile`)
REPLAY_MAX = 2_000
# compact once appended records exceed this many times the live records
COMPACT_RATIO = 4
COMPACT_MIN = 1_000


class _Rest(Struct, tag='rest', tag_field='op'):
    order: RestingOrder


class _Gone(Struct, tag='gone', tag_field='op'):
    reqid: str


class StoredEvent(Struct, tag='event', tag_field='op'):
    """A reported fill or final status; fills carry what the ledger needs."""

    msg: BrokerdFill | BrokerdStatus
    fqme: str = ''
    account: str = ''
    bs_mktid: str = ''


_Record = _Rest | _Gone | StoredEvent
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(_Record)


def store_path(broker: str) -> Path:
    """`<config dir>/accounting/paper_orders.<broker>.jsonl`."""
    check_name(broker, 'broker')
    return accounting_dir() / f'paper_orders.{broker}.jsonl'


class VenueStore:
    """Working orders and the replay log of one paper venue (see module doc).

    Not thread-safe and not reentrant: the venue calls it under its lock.
    """

    def __init__(
        self,
        broker: str,
        path: Path | None = None,
        *,
        replay_max: int = REPLAY_MAX,
        compact_ratio: int = COMPACT_RATIO,
        compact_min: int = COMPACT_MIN,
    ) -> None:
        self.broker = broker
        self.path = path or store_path(broker)
        self.orders: dict[str, RestingOrder] = {}
        self.events: deque[StoredEvent] = deque(maxlen=replay_max)
        self._compact_ratio = compact_ratio
        self._compact_min = compact_min
        self._appended = 0
        self._fd: int | None = None
        self._size = 0  # the file's length up to its last whole record (fd open)
        self._torn = False  # bytes after `_size` (a failed append): cut them off
        self.load()

    # ---- reading ------------------------------------------------------------

    def load(self) -> None:
        """Read the file (a missing one is empty), then compact it.

        A torn last record (no newline: a crash mid-append, never
        reported) is dropped. Any other unreadable record is damage: what
        it said is unknown - a `gone` lost would bring a cancelled order
        back to life - so the file is quarantined (renamed aside, bytes
        intact), loudly, and only what the readable records prove is
        kept: every event (fills and final statuses are facts), and each
        order whose last record comes after the last damaged one. The
        others are dropped and get a final `canceled` event saying why,
        so every emsd dialogue hears they no longer work.
        """
        self.orders.clear()
        self.events.clear()
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b''
        except OSError as err:
            # unreadable is not empty: keep it aside, start from nothing
            aside = quarantine(self.path)
            log.error('PAPER VENUE STATE %s UNREADABLE (%s): moved it to %s; '
                      'no working order restored', self.path, err, aside)
            data = b''
        lines = data.split(b'\n')
        last_seen: dict[str, int] = {}  # reqid -> line of its last record
        damaged: list[int] = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = _dec.decode(line)
            except (msgspec.DecodeError, msgspec.ValidationError) as err:
                if n == len(lines):  # no newline after it: a torn append
                    log.warning('%s: line %d: torn last record (a crash mid-write?) '
                                'dropped: %s', self.path, n, err)
                else:
                    log.error('%s: line %d: damaged record: %s', self.path, n, err)
                    damaged.append(n)
                continue
            if isinstance(rec, _Rest):
                last_seen[rec.order.reqid] = n
            elif isinstance(rec, _Gone):
                last_seen[rec.reqid] = n
            self._apply(rec)
        if damaged:
            self._recover(damaged, last_seen)
        self.compact()

    def _recover(self, damaged: list[int], last_seen: dict[str, int]) -> None:
        """Quarantine a damaged file; keep only the provable orders."""
        aside = quarantine(self.path)
        unproven = [o for r, o in self.orders.items() if last_seen[r] < damaged[-1]]
        now = time.time_ns()
        for order in unproven:
            del self.orders[order.reqid]
            self.events.append(StoredEvent(msg=BrokerdStatus(
                reqid=order.reqid, oid=order.oid, status='canceled',
                account=order.account, time_ns=now, filled=order.filled,
                remaining=order.remaining,
                reason=f'the paper venue state file was damaged (kept as {aside}): '
                       'this order may have ended already, so it no longer works',
            )))
        log.error(
            'PAPER VENUE STATE %s IS DAMAGED (line(s) %s): moved it to %s and '
            'rebuilt it from the readable records: %d working order(s) kept, '
            '%d dropped as unproven (cancelled: %s), %d event(s) kept',
            self.path, ', '.join(map(str, damaged)), aside, len(self.orders),
            len(unproven), [o.oid for o in unproven], len(self.events),
        )

    def _apply(self, rec: _Record) -> None:
        if isinstance(rec, _Rest):
            self.orders[rec.order.reqid] = rec.order
        elif isinstance(rec, _Gone):
            self.orders.pop(rec.reqid, None)
        else:
            self.events.append(rec)

    def replay(self) -> list[BrokerdFill | BrokerdStatus]:
        """The logged events, oldest first."""
        return [ev.msg for ev in self.events]

    def fills(self) -> Iterator[StoredEvent]:
        """The logged fill events, oldest first."""
        return (ev for ev in self.events if isinstance(ev.msg, BrokerdFill))

    # ---- writing ------------------------------------------------------------

    def record(
        self,
        *,
        resting: Iterable[RestingOrder] = (),
        gone: Iterable[str] = (),
        events: Iterable[StoredEvent] = (),
    ) -> bool:
        """Persist one change (a single append); True if `compact()` is due.

        Compacting is left to the caller: it fsyncs (milliseconds), so the
        venue runs it in a worker thread. A failing disk is logged, not
        raised: the venue keeps trading, without memory of the change
        (like emsd with a broken journal).
        """
        # a snapshot: the book goes on mutating its orders (fills) in place
        recs: list[_Record] = [_Rest(order=msgspec.structs.replace(o)) for o in resting]
        recs += [_Gone(reqid=r) for r in gone]
        recs += list(events)
        if not recs:
            return False
        for rec in recs:
            self._apply(rec)
        data = b''.join(_enc.encode(rec) + b'\n' for rec in recs)
        try:
            self._append(data)
        except OSError as err:
            log.error('PAPER VENUE STATE NOT SAVED (%s): %s', self.path, err)
            return False
        self._appended += len(recs)
        return self.compaction_due

    @property
    def compaction_due(self) -> bool:
        """The appended records outnumber the live ones `compact_ratio` times."""
        live = len(self.orders) + len(self.events)
        return self._appended > max(self._compact_min, self._compact_ratio * live)

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            self._size = end = os.fstat(self._fd).st_size
            # a torn last line (left if the compaction at load failed) is cut off
            tail = os.pread(self._fd, min(end, 1 << 16), max(0, end - (1 << 16)))
            cut = tail.rfind(b'\n') + 1
            self._torn = bool(tail) and not tail.endswith(b'\n') and (cut > 0 or end == len(tail))
            if self._torn:
                self._size = end - len(tail) + cut
        if self._torn:
            os.ftruncate(self._fd, self._size)
            self._torn = False
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            self._torn = True
            try:
                os.ftruncate(self._fd, self._size)
                self._torn = False
            except OSError:
                pass  # cut off before the next append
            raise
        self._size += len(data)

    def compact(self) -> None:
        """Rewrite the file with only the live records (atomic, fsync'd)."""
        t0 = time.perf_counter()
        recs: list[_Record] = [_Rest(order=o) for o in self.orders.values()]
        recs += list(self.events)
        data = b''.join(_enc.encode(rec) + b'\n' for rec in recs)
        self._close_fd()
        try:
            write_atomic(self.path, data)
        except OSError as err:
            log.error('cannot compact the paper venue state %s: %s', self.path, err)
            return
        self._appended = 0
        log.info('compacted %s: %d orders, %d events in %.1f ms', self.path,
                 len(self.orders), len(self.events), (time.perf_counter() - t0) * 1e3)

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        self._close_fd()
