"""The EMS journal: every order dialog, persisted in an embedded SQLite db.

emsd keeps its dialogs in memory; this journal is what survives it. Two
jobs (DESIGN.md section 8):

- **resume**: a restarted emsd (crashed, SIGKILLed, upgraded) asks
  `active_dialogs()` for every dialog that had not ended - with its full
  resumable `DialogState`, route and dark-trigger direction - and
  `restore_dialogs()` rebuilds them into its `DialogTable`, which returns
  the `Arm` effects that re-arm the dark book;
- **history**: "what happened to my order" - `history()` and `dialog()`
  return past dialogs with their event timelines (every `Status` emsd
  emitted), for `piker order history` / `piker order show`.

Layout: `<PIKER_CONFIG_DIR>/ems/journal.sqlite`, two tables (schema
version in `PRAGMA user_version`). `dialogs` holds one row per oid:
searchable columns plus the latest `DialogState` as JSON (msgspec).
`events` holds every Status of every dialog as JSON, in emission order
(its integer primary key). A refused request (e.g. an unknown account)
gets a `dialogs` row of its own, phase `error`, with no state.

Speed: emsd records on the hot order path, so each *batch* of effects
(one client command, one venue message, one quote's triggers) is one
transaction, and the db runs in WAL mode with `synchronous=NORMAL`: a
commit appends to the WAL with a plain `write()` and no fsync (fsyncs
happen only at checkpoints, which a background thread runs, see
`_Checkpointer`). A batch costs ~30-60 us (`bench/journal.py`); the
fill ids of a dialog are not rewritten with each batch (its fill events
carry them). The durability trade-off:
a committed batch survives any *process* crash - SIGKILL of emsd included,
since the data is in the OS page cache - and a torn write is rolled back
on the next open, never half-applied; only an OS crash or power loss can
lose the last few transactions (never corrupt the file). `FULL` would
fsync every commit (~1-10 ms on ordinary disks) for power-loss durability
of orders that a powered-off emsd could not manage anyway.

Robustness: a db that is unreadable, corrupt or of an unknown schema
version is renamed aside (`journal.sqlite.corrupt-<time>`) with a loud
log line and a fresh one started; a failing write is logged, never
raised. emsd must keep trading with a broken disk, just without memory.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import trio

from ..atomicfile import quarantine
from ..config import get_config_dir
from ..log import get_logger
from ..types import Struct
from ._dark import Direction
from ._dialogs import (
    Dialog,
    DialogChange,
    DialogState,
    DialogTable,
    Effect,
    Mode,
    Phase,
)
from ._messages import Order, Status

__all__ = [
    'SCHEMA_VERSION',
    'DialogRecord',
    'Journal',
    'JournalEntry',
    'JournalError',
    'entries_from_changes',
    'journal_path',
    'open_journal_writer',
    'restore_dialogs',
]

log = get_logger(__name__)

ReqId = int | str

SCHEMA_VERSION = 1
JOURNAL_DIR = 'ems'
JOURNAL_FILE = 'journal.sqlite'
# SQLite's default host-parameter limit is 32766; stay well below it
_IN_CHUNK = 500

# schema_version -> the SQL that brings a db of that version to the next
_MIGRATIONS: dict[int, str] = {
    # Every batch rewrites one `dialogs` row and appends its events, so the
    # schema keeps the pages a batch touches few (each one is a 4 KiB WAL
    # frame): `dialogs` is clustered on its key (no separate pk index) and
    # has no index on times; history queries walk `events` newest first.
    0: """
    CREATE TABLE dialogs (
        oid        TEXT PRIMARY KEY,
        fqme       TEXT NOT NULL,
        broker     TEXT NOT NULL,
        account    TEXT NOT NULL,
        action     TEXT NOT NULL,
        route      TEXT,              -- 'live' | 'paper' (NULL: never routed)
        phase      TEXT NOT NULL,     -- piker.clearing.Phase
        active     INTEGER NOT NULL,  -- 1 until the dialog ends
        reqid      TEXT,              -- JSON: the venue's id (int or str)
        filled     REAL NOT NULL,
        direction  TEXT,              -- 'up' | 'down' while in the dark book
        req        TEXT NOT NULL,     -- JSON Order: the order as it stands
        state      TEXT,              -- JSON DialogState (NULL: a refused request)
        created_ns INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX dialogs_active ON dialogs(active) WHERE active = 1;
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY,  -- emission order, across dialogs
        oid     TEXT NOT NULL,
        fqme    TEXT NOT NULL,
        time_ns INTEGER NOT NULL,
        resp    TEXT NOT NULL,
        status  TEXT NOT NULL         -- JSON Status
    );
    CREATE INDEX events_oid ON events(oid, id);
    """,
}

_PRAGMAS = (
    'PRAGMA journal_mode=WAL',
    'PRAGMA synchronous=NORMAL',
    # the WAL is truncated back to this size (bytes) after a checkpoint
    'PRAGMA journal_size_limit=8388608',
)
# seconds between background checkpoints, and the WAL size (4 KiB frames)
# past which one is forced even if it holds the writer (see `_Checkpointer`)
CHECKPOINT_INTERVAL = 1.0
MAX_WAL_FRAMES = 16_384  # 64 MiB
# a commit of at most this many entries runs in the event loop (one entry
# costs ~10-20 us, a worker thread's round trip more); a bigger one, or
# any while a checkpoint runs, in a worker thread
INLINE_ENTRIES = 32
# a lot nobody waits on (news already published: open, fills, ends) waits
# this long at most for company, so that under load many batches share a
# transaction; a lot someone waits on (`want`, `flush`) is written at once
LINGER = 0.002

_COLS = (
    'oid, fqme, broker, account, action, route, phase, active, reqid, '
    'filled, direction, req, state, created_ns, updated_ns'
)
_UPSERT = f"""
INSERT INTO dialogs ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(oid) DO UPDATE SET
    fqme = excluded.fqme, broker = excluded.broker, account = excluded.account,
    action = excluded.action, route = COALESCE(excluded.route, dialogs.route),
    phase = excluded.phase, active = excluded.active, reqid = excluded.reqid,
    filled = excluded.filled, direction = excluded.direction, req = excluded.req,
    state = excluded.state,
    updated_ns = MAX(dialogs.updated_ns, excluded.updated_ns)
"""
# a refused request: a row of its own if the oid is new, else only news
_UPSERT_REFUSAL = f"""
INSERT INTO dialogs ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(oid) DO UPDATE SET
    updated_ns = MAX(dialogs.updated_ns, excluded.updated_ns)
"""
_INSERT_EVENT = 'INSERT INTO events (oid, fqme, time_ns, resp, status) VALUES (?, ?, ?, ?, ?)'

_enc = msgspec.json.Encoder()
# phases whose trigger direction a restart must keep (a held bracket child
# re-armed after a restart fires the way it was first armed)
_ARMABLE = frozenset({Phase.DARK_OPEN, Phase.HELD})
_status_dec = msgspec.json.Decoder(Status)
_order_dec = msgspec.json.Decoder(Order)
_state_dec = msgspec.json.Decoder(DialogState)
_reqid_dec = msgspec.json.Decoder(ReqId)


class JournalError(Exception):
    """The journal cannot be opened or read (message says why and where)."""


class JournalEntry(Struct):
    """What one batch changed about one dialog: the unit `record()` takes.

    `events` are the Statuses it emitted in the batch, in order. `state`
    is its state after the batch; None marks a request emsd refused
    before any dialog existed (its events are kept, there is nothing to
    resume). `direction` is that of its resting dark trigger, if any.
    """

    oid: str
    events: list[Status] = []
    state: DialogState | None = None
    route: Mode | None = None
    direction: Direction | None = None


class DialogRecord(Struct):
    """One dialog as the journal knows it.

    `events` is its Status timeline, oldest first (left empty by queries
    asked not to load it). `state` is None for a refused request.
    """

    oid: str
    fqme: str
    broker: str
    account: str
    action: str
    route: Mode | None
    phase: str
    active: bool
    reqid: ReqId | None
    filled: float
    direction: Direction | None
    req: Order
    state: DialogState | None
    created_ns: int
    updated_ns: int
    events: list[Status] = []


def journal_path(config_dir: Path | None = None) -> Path:
    """Where the journal of `config_dir` (default: piker's) lives."""
    base = config_dir if config_dir is not None else get_config_dir()
    return base / JOURNAL_DIR / JOURNAL_FILE


def _to_ns(since: int | float | datetime | None) -> int | None:
    if since is None:
        return None
    if isinstance(since, datetime):
        return int(since.timestamp() * 1e9)  # naive: local time
    return int(since)


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


class _Checkpointer(threading.Thread):
    """Checkpoints the WAL into the db from a thread of its own.

    In WAL mode with `synchronous=NORMAL` a commit does no fsync; the
    checkpoint that copies the WAL into the db file does (twice). SQLite
    runs it inside whichever commit crosses the WAL size threshold, which
    put 15-100 ms stalls on emsd's order path. Here the writer's automatic
    checkpoints are off and this thread runs PASSIVE checkpoints (they
    never block the writer) every `interval` seconds on its own
    connection; sqlite releases the GIL while it fsyncs.

    The WAL restarts from its beginning only once a checkpoint has caught
    up with every frame, so after each pass the thread retries at once (a
    few times) while the writer keeps adding frames. Should a writer
    outrun it for long (the WAL passing `max_wal_frames`), a TRUNCATE
    checkpoint resets the WAL, holding the writer for that one checkpoint:
    a bounded file is worth a rare stall.
    """

    def __init__(self, path: Path, interval: float, max_wal_frames: int) -> None:
        super().__init__(name='ems-journal-checkpoint', daemon=True)
        self._path = path
        self._interval = interval
        self._max_wal_frames = max_wal_frames
        self._stopping = threading.Event()
        # set while a checkpoint runs: its fsyncs can hold a WAL append
        # (and a TRUNCATE holds every writer); see `Journal.holds_writes`
        self.busy = threading.Event()
        self.runs = 0
        self.truncations = 0

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=10.0)
        except sqlite3.Error as err:
            log.error('EMS journal checkpointer cannot open %s: %s', self._path, err)
            return
        try:
            while not self._stopping.wait(self._interval):
                try:
                    self._checkpoint(conn)
                except sqlite3.Error as err:
                    log.warning('EMS journal checkpoint failed: %s', err)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        self.busy.set()
        try:
            self._passes(conn)
        finally:
            self.busy.clear()

    def _passes(self, conn: sqlite3.Connection) -> None:
        last = -1
        for _ in range(3):
            # (busy, frames in the WAL, frames copied): each pass copies the
            # frames that were there when it began
            ((_, frames, _),) = conn.execute('PRAGMA wal_checkpoint(PASSIVE)').fetchall()
            self.runs += 1
            if frames == last or self._stopping.is_set():
                break  # nothing new meanwhile: the writer restarts the WAL
            last = frames
        if frames > self._max_wal_frames:
            log.info('EMS journal WAL at %d frames: truncating it (holds writes '
                        'for one checkpoint)', frames)
            conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()
            self.truncations += 1

    def stop(self) -> None:
        self._stopping.set()
        self.join()


class _JournalQueries:
    """The reading half of `Journal`: dialogs and their events, as records.

    Kept apart from opening and writing so each half reads on its own;
    the connection is the journal's (`Journal.__init__`).
    """

    def active_dialogs(self) -> list[DialogRecord]:
        """Every dialog that had not ended, oldest first, with its timeline.

        What a restarted emsd must restore, with the finished dialogs an
        active group counts on (`_linked`). A row that cannot be decoded is
        logged and left out (it cannot be resumed).
        """
        rows = self._conn.execute(
            f'SELECT {_COLS} FROM dialogs WHERE active = 1 ORDER BY created_ns, oid'
        ).fetchall()
        records = self._records(rows, events=True)
        return [r for r in records + self._linked(records) if r.state is not None]

    def _linked(self, records: list[DialogRecord]) -> list[DialogRecord]:
        """The finished dialogs an active group still counts on (`_groups`):
        the entry of an active bracket child, and the members of an active
        dialog's oco group (a filled take-profit sizes its stop-loss)."""
        oids = {r.oid for r in records}
        parents = sorted({r.req.parent for r in records if r.req.parent} - oids)
        ocos = sorted({r.req.oco for r in records if r.req.oco})
        if not parents and not ocos:
            return []
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(parents):
            marks = ','.join('?' * len(chunk))
            rows += self._conn.execute(
                f'SELECT {_COLS} FROM dialogs WHERE active = 0 AND oid IN ({marks})',
                tuple(chunk),
            ).fetchall()
        for chunk in _chunks(ocos):
            marks = ','.join('?' * len(chunk))
            rows += self._conn.execute(
                f"SELECT {_COLS} FROM dialogs WHERE active = 0 "
                f"AND json_extract(req, '$.oco') IN ({marks})", tuple(chunk),
            ).fetchall()
        unique = {row[0]: row for row in rows if row[0] not in oids}
        return self._records(sorted(unique.values(), key=lambda r: (r[13], r[0])),
                             events=True)

    def history(
        self,
        fqme: str | None = None,
        since: int | float | datetime | None = None,
        limit: int | None = 100,
        *,
        events: bool = True,
    ) -> list[DialogRecord]:
        """Dialogs (of `fqme`) with events at or after `since`, latest first.

        Ordered by their latest event; `since` is a datetime or epoch
        nanoseconds; `limit` caps the number of dialogs (None: all). With
        `events` each comes with its timeline. Walks the events newest
        first and stops at the first one older than `since`, so recent
        history is cheap however long the journal.
        """
        since_ns = _to_ns(since)
        sql, args = 'SELECT oid, time_ns FROM events', []
        if fqme:
            sql += ' WHERE fqme = ?'
            args.append(fqme.lower())
        sql += ' ORDER BY id DESC'
        oids: dict[str, None] = {}
        if limit is None or limit > 0:
            for oid, time_ns in self._conn.execute(sql, args):
                if since_ns is not None and time_ns < since_ns:
                    break
                oids[oid] = None
                if limit is not None and len(oids) >= limit:
                    break
        order = {oid: i for i, oid in enumerate(oids)}
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(list(oids)):
            marks = ','.join('?' * len(chunk))
            rows += self._conn.execute(
                f'SELECT {_COLS} FROM dialogs WHERE oid IN ({marks})', tuple(chunk),
            ).fetchall()
        rows.sort(key=lambda row: order[row[0]])
        return self._records(rows, events=events)

    def dialog(self, oid: str) -> DialogRecord | None:
        """One dialog in full (state and timeline), or None if unknown."""
        rows = self._conn.execute(
            f'SELECT {_COLS} FROM dialogs WHERE oid = ?', (oid,)
        ).fetchall()
        records = self._records(rows, events=True)
        return records[0] if records else None

    def match_oids(self, prefix: str, limit: int = 10) -> list[str]:
        """Oids starting with `prefix` (a CLI may show oids shortened)."""
        rows = self._conn.execute(
            'SELECT oid FROM dialogs WHERE oid >= ? AND oid < ? ORDER BY oid LIMIT ?',
            (prefix, prefix + '\U0010ffff', limit),
        ).fetchall()
        return [r[0] for r in rows]

    def counts(self) -> tuple[int, int]:
        """(dialogs, events) stored."""
        d = self._conn.execute('SELECT count(*) FROM dialogs').fetchone()[0]
        e = self._conn.execute('SELECT count(*) FROM events').fetchone()[0]
        return d, e

    def _records(self, rows: list[tuple[Any, ...]], *, events: bool) -> list[DialogRecord]:
        records: list[DialogRecord] = []
        for row in rows:
            try:
                records.append(_record_of(row))
            except (msgspec.MsgspecError, ValueError, TypeError) as err:
                log.error('EMS journal: dialog %s is unreadable, skipped: %s', row[0], err)
        if events and records:
            timelines = self._events([r.oid for r in records])
            for rec in records:
                rec.events = timelines.get(rec.oid, [])
        return records

    def _events(self, oids: Sequence[str]) -> dict[str, list[Status]]:
        out: dict[str, list[Status]] = {}
        for chunk in _chunks(oids):
            marks = ','.join('?' * len(chunk))
            rows = self._conn.execute(
                f'SELECT oid, status FROM events WHERE oid IN ({marks}) ORDER BY id',
                tuple(chunk),
            )
            for oid, raw in rows:
                try:
                    out.setdefault(oid, []).append(_status_dec.decode(raw))
                except (msgspec.MsgspecError, ValueError) as err:
                    log.error('EMS journal: an event of %s is unreadable, skipped: %s',
                              oid, err)
        return out


class Journal(_JournalQueries):
    """The journal db: `record()` batches, query dialogs.

    Open with `Journal.open()` (emsd: read-write, repairs what it must) or
    `Journal.open(readonly=True)` (the CLI: never writes, raises
    `JournalError` on a db it cannot read). Not thread-safe: one owner at a
    time (which may hand it from a worker thread to its event loop).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        readonly: bool,
        checkpoint_interval: float | None = None,
    ) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        self.write_errors = 0  # failed record() batches (logged, dropped)
        self._checkpointer: _Checkpointer | None = None
        if checkpoint_interval is not None:
            conn.execute('PRAGMA wal_autocheckpoint=0')
            self._checkpointer = _Checkpointer(path, checkpoint_interval, MAX_WAL_FRAMES)
            self._checkpointer.start()

    # ---- opening ----------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path | None = None,
        *,
        readonly: bool = False,
        checkpoint_interval: float | None = CHECKPOINT_INTERVAL,
    ) -> Journal:
        """Open (creating or repairing unless `readonly`) the journal at `path`.

        A writer checkpoints its WAL from a background thread every
        `checkpoint_interval` seconds (None: inline, SQLite's default).

        Read-write: a corrupt or unknown-version db is renamed aside with a
        loud log line and a fresh one is created; `JournalError` only if
        even that fails (e.g. the directory is not writable).
        Read-only: `JournalError` if the db is missing or unreadable.
        `Path(':memory:')` opens a private in-memory journal (for tests).
        """
        path = path if path is not None else journal_path()
        if str(path) == ':memory:':
            return cls(Journal._open_rw(path), path, readonly=False)
        if readonly:
            return cls(cls._open_readonly(path), path, readonly=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise JournalError(f'cannot create the journal dir {path.parent}: {err}') from err
        try:
            conn = cls._open_rw(path)
        except (sqlite3.Error, JournalError) as err:
            aside = quarantine(path, companions=('-wal', '-shm'))
            log.error(
                'EMS JOURNAL %s IS UNREADABLE (%s): moved it to %s and started '
                'an empty one; dialogs active in it are NOT restored',
                path, err, aside,
            )
            try:
                conn = cls._open_rw(path)
            except (sqlite3.Error, JournalError) as err2:
                raise JournalError(f'cannot create the EMS journal {path}: {err2}') from err2
        return cls(conn, path, readonly=False, checkpoint_interval=checkpoint_interval)

    @staticmethod
    def _open_rw(path: Path) -> sqlite3.Connection:
        # autocommit mode: transactions are explicit, one per batch. One
        # owner at a time, but it may open it in a worker thread (emsd does,
        # so a slow integrity check never blocks its event loop)
        conn = sqlite3.connect(
            # a forced checkpoint (see _Checkpointer) may hold writes this long
            path, isolation_level=None, timeout=10.0, check_same_thread=False,
        )
        try:
            check = conn.execute('PRAGMA quick_check').fetchone()
            if check is None or check[0] != 'ok':
                raise JournalError(f'integrity check failed: {check}')
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _open_readonly(path: Path) -> sqlite3.Connection:
        if not path.exists():
            raise JournalError(
                f'no EMS journal at {path}: emsd has not run with this config dir'
            )
        try:
            conn = sqlite3.connect(f'{path.as_uri()}?mode=ro', uri=True, timeout=2.0)
        except sqlite3.Error as err:
            raise JournalError(f'cannot open the EMS journal {path}: {err}') from err
        try:
            version = conn.execute('PRAGMA user_version').fetchone()[0]
            # probe a table: catches 'file is not a database' and friends
            conn.execute('SELECT count(*) FROM dialogs LIMIT 1').fetchone()
        except sqlite3.Error as err:
            conn.close()
            raise JournalError(f'cannot read the EMS journal {path}: {err}') from err
        if version != SCHEMA_VERSION:
            conn.close()
            raise JournalError(
                f'the EMS journal {path} has schema version {version}, this piker '
                f'reads version {SCHEMA_VERSION}'
            )
        return conn

    @property
    def holds_writes(self) -> bool:
        """Whether a commit may wait for the disk now: a checkpoint is
        running (a WAL append can wait on its fsyncs, and a TRUNCATE holds
        every writer until they are done)."""
        cp = self._checkpointer
        return cp is not None and cp.busy.is_set()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- writing ------------------------------------------------------------

    def record(self, entries: Iterable[JournalEntry], *, now_ns: int | None = None) -> int:
        """Persist one batch of dialog changes in one transaction.

        Returns the number of events written. Never raises on a database
        error: the batch is logged and dropped (`write_errors` counts them)
        so a full or broken disk cannot stop emsd.
        """
        if self.readonly:
            raise JournalError('this journal was opened read-only')
        now = time.time_ns() if now_ns is None else now_ns
        dialogs: list[tuple[Any, ...]] = []
        refusals: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        entries = list(entries)
        filed: dict[tuple[str, bool], str] = {}  # (oid, refused) -> fqme
        for entry in _coalesced(entries):
            row = _dialog_row(entry, now)
            if row is None:
                if entry.events:
                    log.debug('journal: no order to file %d events of %r under',
                              len(entry.events), entry.oid)
                continue
            (dialogs if entry.state is not None else refusals).append(row)
            filed[(entry.oid, entry.state is None)] = row[1]
        for entry in entries:  # the events in emission order, across dialogs
            fqme = filed.get((entry.oid, entry.state is None))
            if fqme is not None:
                events += [(entry.oid, fqme, st.time_ns, st.resp, _enc.encode(st).decode())
                           for st in entry.events]
        if not dialogs and not refusals:
            return 0
        conn = self._conn
        try:
            conn.execute('BEGIN')
            try:
                if dialogs:
                    conn.executemany(_UPSERT, dialogs)
                if refusals:
                    conn.executemany(_UPSERT_REFUSAL, refusals)
                if events:
                    conn.executemany(_INSERT_EVENT, events)
                conn.execute('COMMIT')
            except BaseException:
                if conn.in_transaction:
                    conn.execute('ROLLBACK')
                raise
        except sqlite3.Error as err:
            self.write_errors += 1
            log.error('EMS journal write failed (%s): %d dialog changes not persisted',
                      err, len(dialogs) + len(refusals))
            return 0
        return len(events)

    def prune(self, before_ns: int) -> int:
        """Forget the dialogs that ended before `before_ns` (events and
        all) in one transaction; active dialogs are always kept. Returns
        how many went. emsd runs it at start-up (`[ems] journal_keep_days`)."""
        if self.readonly:
            raise JournalError('this journal was opened read-only')
        old = 'SELECT oid FROM dialogs WHERE active = 0 AND updated_ns < ?'
        conn = self._conn
        conn.execute('BEGIN')
        try:
            conn.execute(f'DELETE FROM events WHERE oid IN ({old})', (before_ns,))
            gone = conn.execute('DELETE FROM dialogs WHERE active = 0 AND updated_ns < ?',
                                (before_ns,)).rowcount
            conn.execute('COMMIT')
        except BaseException:
            if conn.in_transaction:
                conn.execute('ROLLBACK')
            raise
        return gone


class JournalWriter:
    """Group commit: emsd's journal writes, behind its order path.

    `submit()` queues a batch of entries (synchronous, O(1)); one task
    (`run()`) writes everything queued so far in one transaction, then
    the next lot, so the order path never waits on SQLite and under load
    many batches share one commit. A small lot (`INLINE_ENTRIES`) is
    committed right in the event loop: a WAL append with no fsync costs
    tens of microseconds, less than handing it to a worker thread and
    back, which on a busy box also waits for the GIL and a CPU (that hop
    was most of an order's `pending` latency). A big lot, or any while
    the checkpointer runs (a WAL append can wait on its fsyncs: tens of ms
    on a busy disk, `bench/journal.py`'s max column), goes to a worker
    thread so the loop does not wait on the disk. A lot
    nobody waits on lingers up to `LINGER` for more. `flush()` waits
    until what was submitted before it is committed: emsd calls it where
    a promise depends on the journal (a dark order is reported `dark_open`
    only once a restarted emsd would re-arm it). Entries are snapshots
    (`entries_from_changes`), safe to hand to the thread.
    """

    def __init__(
        self, journal: Journal, on_commit: Callable[[int], Any] | None = None,
        linger: float = LINGER,
    ) -> None:
        self.journal = journal
        # called (in the event loop) with the last committed ticket
        self._on_commit = on_commit
        self._pending: list[JournalEntry] = []
        self._submitted = 0  # batches submitted ...
        self._committed = 0  # ... and written (or failed, logged)
        self._wake = trio.Event()
        # set when someone waits on a commit: no linger
        self._urgent = trio.Event()
        self._progress = trio.Event()
        self.linger = linger
        self.batches = 0  # transactions run (for benches and tests)

    @property
    def backlog(self) -> int:
        return len(self._pending)

    @property
    def ticket(self) -> int:
        """The ticket of the last batch submitted (committed once
        everything before it is)."""
        return self._submitted

    @property
    def committed(self) -> int:
        """The ticket of the last batch committed (or failed, logged)."""
        return self._committed

    def want(self, ticket: int) -> None:
        """Make sure a commit covering `ticket` comes (even if `ticket`'s
        own batch was empty: the batches before it are what it waits on)."""
        if self._committed < ticket:
            self._wake.set()
            self._urgent.set()

    def submit(self, entries: Iterable[JournalEntry]) -> int:
        """Queue entries for the next commit; returns a ticket for `flush()`."""
        self._pending.extend(entries)
        self._submitted += 1
        self._wake.set()
        return self._submitted

    async def flush(self, ticket: int | None = None) -> None:
        """Wait until batch `ticket` (default: all submitted) is committed."""
        want = self._submitted if ticket is None else ticket
        while self._committed < want:
            self._urgent.set()
            await self._progress.wait()

    async def run(self) -> None:
        """The writer loop; on cancellation it writes what is queued first."""
        try:
            while True:
                await self._wake.wait()
                if not self._urgent.is_set():
                    with trio.move_on_after(self.linger):
                        await self._urgent.wait()
                self._wake = trio.Event()
                self._urgent = trio.Event()
                await self._write(in_thread=True)
        finally:
            with trio.CancelScope(shield=True):
                await self._write(in_thread=False)

    async def _write(self, *, in_thread: bool) -> None:
        batch, self._pending = self._pending, []
        upto = self._submitted
        if batch:
            try:
                if in_thread and (len(batch) > INLINE_ENTRIES or self.journal.holds_writes):
                    # shielded: a batch half-handed to its thread is finished
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(self.journal.record, batch)
                else:
                    self.journal.record(batch)
            except Exception:
                # (record() logs and counts database errors itself) whatever
                # else went wrong, the batch is lost but emsd trades on, and
                # the Statuses held for it are released below all the same
                self.journal.write_errors += 1
                log.exception('EMS journal: a batch of %d entries was not written',
                              len(batch))
            self.batches += 1
        self._committed = upto
        self._progress.set()
        self._progress = trio.Event()
        if self._on_commit is not None:
            self._on_commit(upto)


# ---- rows <-> structs ---------------------------------------------------------

def _coalesced(entries: Iterable[JournalEntry]) -> list[JournalEntry]:
    """One entry per dialog of a lot, for its `dialogs` row: its events,
    its last state.

    A lot often holds several batches of the same dialogs (an order's
    `pending` and its `open`, 2 ms apart): one row write each, not one per
    batch. A refused request's entry (no state) stays as it is.
    """
    merged: dict[str, JournalEntry] = {}
    out: list[JournalEntry] = []
    for entry in entries:
        if entry.state is None:
            out.append(entry)
            continue
        first = merged.get(entry.oid)
        if first is None:
            first = merged[entry.oid] = msgspec.structs.replace(entry, events=list(entry.events))
            out.append(first)
            continue
        first.events += entry.events
        first.state = entry.state
        first.direction = entry.direction
        if entry.route is not None:
            first.route = entry.route
    return out


def _dialog_row(entry: JournalEntry, now: int) -> tuple[Any, ...] | None:
    """The `dialogs` row of `entry` (None: nothing to file it under)."""
    state = entry.state
    first = entry.events[0].time_ns if entry.events else now
    last = entry.events[-1].time_ns if entry.events else now
    if state is not None:
        req = state.req
        phase = state.phase.value
        active = 0 if state.terminal else 1
        reqid = None if state.reqid is None else _enc.encode(state.reqid).decode()
        filled = state.filled
        state_json: str | None = _enc.encode(state).decode()
        direction = entry.direction if state.phase in _ARMABLE else None
    else:
        found = next((st for st in entry.events if st.req is not None), None)
        if found is None or not entry.oid:
            return None
        assert found.req is not None
        req = found.req
        phase, active, reqid, filled, state_json, direction = (
            Phase.ERROR.value, 0, None, 0.0, None, None,
        )
    return (
        entry.oid, req.symbol, req.broker, req.account, req.action, entry.route,
        phase, active, reqid, filled, direction, _enc.encode(req).decode(),
        state_json, min(first, now), max(last, first),
    )


def _record_of(row: tuple[Any, ...]) -> DialogRecord:
    (oid, fqme, broker, account, action, route, phase, active, reqid, filled,
     direction, req, state, created_ns, updated_ns) = row
    return DialogRecord(
        oid=oid, fqme=fqme, broker=broker, account=account, action=action,
        route=route, phase=phase, active=bool(active),
        reqid=None if reqid is None else _reqid_dec.decode(reqid),
        filled=filled, direction=direction,
        req=_order_dec.decode(req),
        state=None if state is None else _state_dec.decode(state),
        created_ns=created_ns, updated_ns=updated_ns,
    )


# ---- schema -----------------------------------------------------------------

def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the db to `SCHEMA_VERSION`, or raise JournalError if it cannot."""
    version = conn.execute('PRAGMA user_version').fetchone()[0]
    if version > SCHEMA_VERSION:
        raise JournalError(
            f'schema version {version} is newer than this piker knows ({SCHEMA_VERSION})'
        )
    if version == 0:
        tables = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        ).fetchone()[0]
        if tables:
            raise JournalError('not an EMS journal (unversioned tables present)')
    while version < SCHEMA_VERSION:
        conn.execute('BEGIN')
        try:
            for stmt in _statements(_MIGRATIONS[version]):
                conn.execute(stmt)
            version += 1
            conn.execute(f'PRAGMA user_version = {version}')
            conn.execute('COMMIT')
        except BaseException:
            conn.execute('ROLLBACK')
            raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (no ';' inside literals)."""
    lines = [ln.split('--', 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in '\n'.join(lines).split(';') if s.strip()]


# ---- emsd glue ------------------------------------------------------------------

def _open_for_emsd(keep_days: float = 0.0) -> Journal | None:
    """The journal in the config dir, or None (logged) if it cannot be had;
    dialogs that ended more than `keep_days` ago are pruned (0: none)."""
    try:
        journal = Journal.open()
    except JournalError as err:
        log.error('EMS JOURNAL DISABLED, orders will not survive a restart: %s', err)
        return None
    if keep_days:
        try:
            gone = journal.prune(time.time_ns() - int(keep_days * 86_400e9))
        except sqlite3.Error as err:
            log.error('could not prune the EMS journal: %s', err)
        else:
            if gone:
                log.info('EMS journal: forgot %d dialog(s) finished over %g days ago',
                         gone, keep_days)
    return journal


@asynccontextmanager
async def open_journal_writer(
    keep_days: float = 0.0,
    on_commit: Callable[[int], Any] | None = None,
    linger: float = LINGER,
) -> AsyncIterator[tuple[JournalWriter | None, list[DialogRecord]]]:
    """emsd's journal for its lifetime: its writer and the active dialogs
    to restore.

    The db work runs in a worker thread: a big journal's integrity check
    must not stall heartbeats. A journal that cannot be opened leaves emsd
    working, without memory (writer None, logged loudly). At the end the
    writer writes what was queued, then the db closes.
    """
    journal: Journal | None = None
    try:
        try:
            journal = await trio.to_thread.run_sync(_open_for_emsd, keep_days)
            records = await trio.to_thread.run_sync(journal.active_dialogs) if journal else []
        except Exception:
            log.exception('cannot read the EMS journal: nothing restored')
            records = []
        writer = (JournalWriter(journal, on_commit=on_commit, linger=linger)
                  if journal is not None else None)
        async with trio.open_nursery() as n:
            if writer is not None:
                n.start_soon(writer.run)
            yield writer, records
            n.cancel_scope.cancel()
    finally:
        if journal is not None:
            journal.close()


def entries_from_changes(changes: Iterable[DialogChange]) -> list[JournalEntry]:
    """Journal entries for `DialogTable.drain_changes()` output: each
    dialog's data as it stands, and the Statuses it emitted meanwhile."""
    entries: list[JournalEntry] = []
    for dialog, new in changes:
        state = dialog.state(fill_tids=False)  # the fill events name them
        entries.append(JournalEntry(
            oid=dialog.oid, events=new, state=state, route=state.route,
            direction=state.direction if state.phase in _ARMABLE else None,
        ))
    return entries


def restore_dialogs(
    table: DialogTable,
    records: Iterable[DialogRecord],
) -> list[Effect]:
    """Rebuild journal `records` into `table`; return the effects to resume.

    The effects are `Arm`s (with their original trigger directions) for
    every dialog resting in the dark book; emsd carries them out once the
    market's feed is up. A record's route and direction columns are the
    truth (a state journaled before they were part of it lacks them).
    """
    dialogs: list[Dialog] = []
    for rec in records:
        if rec.state is None:
            continue
        state = msgspec.structs.replace(rec.state, route=rec.route, direction=rec.direction)
        dialogs.append(Dialog.from_state(state, rec.events))
    return table.restore(dialogs)
