"""`TickRecorder`: every L1 quote of a market into the `TickStore`, batched.

brokerd's feed bus hands each quote to `put()` as it fans it out (before
any conflation): `put()` only appends the dict to a bounded deque, so
recording never blocks or slows the live feed. A writer task flushes the
deque every `flush_s` seconds (or at `batch` quotes) in a worker thread.
If the store cannot be written (full disk, read-only dir), the error is
logged once, the recorder's status says so, the oldest unwritten quotes
are dropped past `max_pending` (counted), and it retries every
`retry_s` seconds: the feed goes on either way. Every `COMPACT_EVERY`
batch files are folded into one, and a day into one file once the
recording has moved past it (`TickStore.compact()`).

Status: each recorder rewrites `<config dir>/record-status/<fqme>.json`
(state, error, quotes written and dropped, `updated`) at
most every `STATUS_EVERY` seconds; `piker store ls` shows it, and calls
an entry not refreshed for `STALE_AFTER` seconds stale (no recorder
running), so what it shows is never an old truth.
"""
from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

import trio

from ..atomicfile import write_atomic
from ..log import get_logger
from ._errors import StorageError
from ._layout import day_name
from ._ticks import TickStore, quotes_to_rows

log = get_logger('storage.record')

STATUS_EVERY = 2.0
# batch files of a day folded into one by the recorder
COMPACT_EVERY = 60
STALE_AFTER = 10.0

Quote = dict[str, Any]


def status_dir():
    """`<config dir>/record-status/`: one `<fqme>.json` per recorded market,
    so recorders in different brokerds never overwrite each other."""
    from ..config import get_config_dir
    return get_config_dir() / 'record-status'


def read_status() -> dict[str, dict]:
    """fqme -> status entry; an entry older than `STALE_AFTER` is `stale`."""
    out: dict[str, dict] = {}
    now = time.time()
    try:
        paths = sorted(status_dir().glob('*.json'))
    except OSError:
        return out
    for path in paths:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if now - entry.get('updated', 0) > STALE_AFTER and entry.get('state') != 'stopped':
            entry['state'] = 'stale (no recorder running)'
        out[path.stem] = entry
    return out


def _publish(fqme: str, entry: dict) -> None:
    try:
        write_atomic(status_dir() / f'{fqme}.json', json.dumps(entry, indent=1))
    except OSError as err:
        log.debug(f'cannot write the record status: {err}')


class TickRecorder:
    """Records one fqme (see module doc)."""

    def __init__(self, fqme: str, store: TickStore | None = None, *,
                 batch: int = 1000, flush_s: float = 1.0,
                 max_pending: int = 200_000, retry_s: float = 5.0,
                 mkt: dict | None = None) -> None:
        self.fqme = fqme
        # the market's `MktPair` builtins, kept beside the ticks (`mkt.json`)
        # so a replay knows the market without its backend
        self.mkt = mkt
        self.store = store or TickStore()
        self.batch = batch
        self.flush_s = flush_s
        self.retry_s = retry_s
        self._q: deque[Quote] = deque(maxlen=max_pending)
        self._wake = trio.Event()
        self.seq = 0
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        self.state = 'recording'
        self._published = 0.0
        self.cancel_scope = trio.CancelScope()
        self._day: str | None = None

    def stop(self) -> None:
        """End `run()` (after a last flush)."""
        self.cancel_scope.cancel()

    def put(self, quote: Quote) -> None:
        """Queue `quote` (never blocks; the oldest one goes when full)."""
        q = self._q
        if len(q) == q.maxlen:
            self.dropped += 1
        q.append(quote)
        if len(q) >= self.batch:
            self._wake.set()

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush until cancelled; a last flush on the way out."""
        task_status.started()
        try:
            with self.cancel_scope:
                while True:
                    with trio.move_on_after(self.retry_s if self.error else self.flush_s):
                        await self._wake.wait()
                    self._wake = trio.Event()
                    await self.flush()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(5):
                    await self.flush()
                self.state = 'stopped'
                self._status(force=True)

    async def flush(self) -> None:
        if not self._q:
            self._status()
            return
        quotes = list(self._q)
        self._q.clear()
        seq0 = self.seq
        self.seq += len(quotes)
        def write() -> None:
            if self.mkt is not None:
                self.store.write_mkt(self.fqme, self.mkt)
                self.mkt = None
            self.store.append(self.fqme, quotes_to_rows(quotes, seq0))
            # keep the file count down: fold batches as they pile up, and a
            # whole day into one file once the recording has left it
            day = day_name(int(quotes[-1]['time_ns']))
            if self._day is not None and day != self._day:
                self.store.compact(self.fqme, self._day)
            self._day = day
            if self.store.pending_batches(self.fqme, day) >= COMPACT_EVERY:
                self.store.compact(self.fqme, day, full=False)

        try:
            await trio.to_thread.run_sync(write)
        except StorageError as err:
            # keep what fits; the newest quotes win
            room = self._q.maxlen - len(self._q)
            keep = quotes[-room:] if room > 0 else []
            self.dropped += len(quotes) - len(keep)
            self._q.extendleft(reversed(keep))
            self.seq = seq0
            if self.error != str(err):
                log.error(f'recording {self.fqme}: {err} (the feed goes on; retrying '
                          f'every {self.retry_s:.0f}s)')
            self.error = str(err)
            self.state = 'error'
            self._status(force=True)
            return
        self.written += len(quotes)
        if self.error:
            log.warning(f'recording {self.fqme}: writing again')
        self.error = None
        self.state = 'recording'
        self._status()

    def _status(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._published < STATUS_EVERY:
            return
        self._published = now
        _publish(self.fqme, {
            'state': self.state, 'error': self.error, 'written': self.written,
            'dropped': self.dropped, 'pending': len(self._q), 'updated': time.time(),
        })
