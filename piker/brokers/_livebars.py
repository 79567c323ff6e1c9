"""Live bars: 1 s and 60 s OHLC bars built from a quote stream's trades.

brokerd builds them once per market (`piker.brokers._feedbus`), for every
client, from the `trade` ticks of the quotes it fans out, and writes each
bar to the store (`piker.storage`) once it has closed: the store stays
complete up to the last closed bar while the market streams. A bar with
no trade is not made (the store shows that span as a gap, which the next
`history()` fills from the backend, or records as the venue's own when
the backend has no bar there either).

Clients are shown the same bars, not bars of their own: every quote
brokerd fans out carries `bars`, this market's bars as they stand after
that quote (`LiveBarWriter.snapshot()`):

    'bars': {'1': [[time, open, high, low, close, volume], ...],
             '60': [...]}     # per timeframe: the last closed bar (if
                              # any), then the one in progress

so the chart's live last bar is brokerd's, bar for bar the one it
stores (a consumer that gets quotes conflated still sees the bar that
closed in between; see `piker.ui._bars.BarsModel.set_live`).

Writes are batched every `flush_s` seconds in a worker thread; a store
that cannot be written is logged (once per error) and the bars of that
flush are dropped: the feed never waits for a disk. A backend that
serves the store itself (`replay`, `local`) gets bars for its clients
but none written (`write=False`): its bars are the store's already.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import trio

from ..log import get_logger
from ..ohlc import OHLC_DTYPE, TIMEFRAMES

log = get_logger('data.livebars')

GRACE = 1.0


class BarBuilder:
    """The bar in progress per timeframe; `trade()` returns the bars it closed."""

    def __init__(self, timeframes: tuple[int, ...] = TIMEFRAMES) -> None:
        self.timeframes = timeframes
        # timeframe -> [time, open, high, low, close, volume]
        self._cur: dict[int, list] = {}
        # timeframe -> the last closed bar (a trade for it or older is late)
        self._last: dict[int, tuple] = {}
        # bumped by every change: a snapshot of an unchanged builder is reused
        self.version = 0

    def trade(self, price: float, size: float, epoch_s: float) -> list[tuple[int, tuple]]:
        self.version += 1
        closed = []
        for tf in self.timeframes:
            t = int(epoch_s // tf) * tf
            cur = self._cur.get(tf)
            last = self._last.get(tf)
            if (cur is not None and t < cur[0]) or (last is not None and t <= last[0]):
                continue  # a late trade for a closed bar: dropped
            if cur is None or t > cur[0]:
                if cur is not None:
                    self._last[tf] = bar = tuple(cur)
                    closed.append((tf, bar))
                self._cur[tf] = [t, price, price, price, price, size]
                continue
            if price > cur[2]:
                cur[2] = price
            if price < cur[3]:
                cur[3] = price
            cur[4] = price
            cur[5] += size
        return closed

    def close_due(self, epoch_s: float) -> list[tuple[int, tuple]]:
        """Bars whose period has ended by `epoch_s` (no trade needed)."""
        closed = []
        for tf, cur in list(self._cur.items()):
            if cur[0] + tf <= epoch_s:
                self.version += 1
                self._last[tf] = bar = tuple(cur)
                closed.append((tf, bar))
                del self._cur[tf]
        return closed

    def snapshot(self) -> dict[str, list[list]]:
        """`{str(timeframe): [last closed bar, bar in progress]}` (either
        may be missing), fresh lists: safe to ship while trades go on."""
        out = {}
        for tf in self.timeframes:
            bars = [list(b) for b in (self._last.get(tf), self._cur.get(tf)) if b is not None]
            if bars:
                out[str(tf)] = bars
        return out


class LiveBarWriter:
    """Builds one fqme's live bars and writes the closed ones (module doc)."""

    def __init__(self, fqme: str, store: Any = None, flush_s: float = 2.0,
                 write: bool = True) -> None:
        from ..storage import BarStore

        self.fqme = fqme
        self.write = write
        self.store = (store or BarStore()) if write else None
        self.flush_s = flush_s
        self.builder = BarBuilder()
        self._snap: dict[str, list[list]] = {}
        self._snap_v = 0
        self._closed: dict[int, list[tuple]] = {}
        self.written = 0
        self.error: str | None = None

    def quote(self, quote: dict) -> None:
        """Take a quote's trades and stamp it with the bars after them
        (`quote['bars']`, see module doc); never blocks."""
        ticks = quote.get('ticks')
        if ticks:
            t = quote.get('time_ns', 0) / 1e9
            for tick in ticks:
                if tick.get('type') == 'trade':
                    for tf, bar in self.builder.trade(tick['price'],
                                                      tick.get('size') or 0.0, t):
                        if self.write:
                            self._closed.setdefault(tf, []).append(bar)
        b = self.builder
        if b.version != self._snap_v:
            # rebuilt only after a change; shared (never mutated) otherwise
            self._snap, self._snap_v = b.snapshot(), b.version
        if self._snap:
            quote['bars'] = self._snap

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        import time
        task_status.started()
        try:
            while True:
                await trio.sleep(self.flush_s)
                # a quiet bar closes GRACE s after its end: a trade that
                # reaches brokerd late still lands in it
                for tf, bar in self.builder.close_due(time.time() - GRACE):
                    self._closed.setdefault(tf, []).append(bar)
                await self.flush()
        finally:
            # the bars closed so far (not the one in progress) on the way out
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.flush()

    async def flush(self) -> None:
        from ..storage import StorageError

        todo, self._closed = self._closed, {}
        for tf, rows in todo.items():
            arr = np.array(rows, dtype=OHLC_DTYPE)
            try:
                await trio.to_thread.run_sync(self.store.write, self.fqme, tf, arr)
            except StorageError as err:
                if self.error != str(err):
                    log.error(f'live bars of {self.fqme} not stored: {err}')
                self.error = str(err)
                continue
            self.written += len(arr)
            self.error = None
