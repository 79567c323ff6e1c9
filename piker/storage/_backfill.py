"""Backfill and gap repair: merge what a backend serves into the store.

brokerd runs this (the one writer of a market's bars, see
`piker.brokers._brokerd.history`): every `history()` request fetches the
backend's bars, merges them into `piker.storage` and answers with the
stored series, so the store grows to cover everything any backend ever
served. Backends serve time ranges (`open_history(..., start=, end=)`),
so brokerd also re-asks for the gaps older than the default window when
a market opens, and `piker store backfill --since` pages backwards over
any span (`pages()`), asking only for spans with bars the store lacks
(`wanted()`).

Whatever the backend was asked for and did not serve (a closed market,
a halt, before the listing, past a venue's depth limit) is recorded with
`BarStore.mark_closed()` as the venue's own, and neither reported nor
asked for again.

Store work is blocking file I/O, so the callers run it in a worker thread
(`trio.to_thread`): brokerd's quote fan-out never waits for a disk.
"""
from __future__ import annotations

import numpy as np

from ..types import Struct
from ._bars import BarStore, Gap, covered


class BackfillReport(Struct):
    """What one backfill of (fqme, timeframe) did."""

    fqme: str
    timeframe: int
    fetched: int                 # bars the backend served
    written: int                 # of them merged into the store (>= since)
    bars: int                    # bars stored now
    first: int | None            # stored span, epoch s
    last: int | None
    gaps: list[Gap]              # gaps still open (older than the backend serves)
    closed: list[Gap]            # gaps found to be the venue's own, just recorded
    start: int | None = None     # the span asked for, epoch s (None: the
    end: int | None = None       # backend's default window)
    skipped: bool = False        # the span was all stored or closed: not asked


def changed(store: BarStore, fqme: str, timeframe: int, bars: np.ndarray) -> np.ndarray:
    """The bars of `bars` the store lacks or holds differently: a backend
    re-serving its whole window rewrites only the partitions it changed."""
    if not len(bars):
        return bars
    lo, hi = int(bars['time'][0]), int(bars['time'][-1]) + 1
    held = store.read(fqme, timeframe, lo, hi)
    if not len(held):
        return bars
    idx = np.minimum(np.searchsorted(held['time'], bars['time']), len(held) - 1)
    same = held['time'][idx] == bars['time']
    for name in held.dtype.names:
        same &= held[name][idx] == bars[name]
    return bars[~same]


def asked_span(timeframe: int, fetched: np.ndarray, start: int | None,
               end: int | None, now: float) -> tuple[int, int] | None:
    """`[lo, hi)` bar times the backend was asked for and answered about:
    the asked range (the served bars' own span for a default-window
    fetch), never reaching the last two bars before `now` (the bar in
    progress may not be listed yet: its absence says nothing)."""
    tf = int(timeframe)
    if start is None:
        if not len(fetched):
            return None
        lo, hi = int(fetched['time'][0]), int(fetched['time'][-1]) + tf
    else:
        lo = int(start)
        hi = (int(end) // tf * tf + tf) if end is not None else int(now)
    hi = min(hi, int(now) // tf * tf - tf)
    return (lo, hi) if hi > lo else None


def merge_fetched(
    store: BarStore,
    fqme: str,
    timeframe: int,
    fetched: np.ndarray,
    since: int | None = None,
    until: int | None = None,
    now: float | None = None,
) -> BackfillReport:
    """Merge `fetched` (what the backend served for bars in `[since,
    until]`, its default window when `since` is None) into `store`.

    Whatever of the asked span has still no bar afterwards is a span the
    backend cannot serve (a closed market, before the listing, past a
    venue's depth limit such as Kraken's 720 bars): it is recorded as the
    venue's own (`mark_closed`), so no later backfill asks for it again.
    """
    import time

    now = time.time() if now is None else now
    new = fetched if since is None else fetched[fetched['time'] >= since]
    if until is not None:
        new = new[new['time'] <= until]
    store.write(fqme, timeframe, changed(store, fqme, timeframe, new))
    closed: list[Gap] = []
    span = asked_span(timeframe, fetched, since, until, now)
    if span is not None:
        known = store.closed(fqme, timeframe)
        closed = [g for g in store.missing(fqme, timeframe, *span) if not covered(g, known)]
        if closed:
            store.mark_closed(fqme, timeframe, closed)
    return report(store, fqme, timeframe, since, until, fetched=len(fetched),
                  written=len(new), closed=closed)


def report(store: BarStore, fqme: str, timeframe: int, since: int | None,
           until: int | None, fetched: int = 0, written: int = 0,
           closed: list[Gap] | None = None, skipped: bool = False) -> BackfillReport:
    """A `BackfillReport` of what the store holds now."""
    t = store.times(fqme, timeframe)
    return BackfillReport(
        fqme=fqme, timeframe=int(timeframe), fetched=fetched, written=written,
        bars=len(t), first=int(t[0]) if len(t) else None,
        last=int(t[-1]) if len(t) else None, gaps=store.gaps(fqme, timeframe),
        closed=closed or [], start=since, end=until, skipped=skipped,
    )


def wanted(store: BarStore, fqme: str, timeframe: int, since: int, until: int) -> bool:
    """Whether any bar of `[since, until]` is neither stored nor recorded
    as closed: a deep backfill asks the backend only for such spans."""
    tf = int(timeframe)
    known = store.closed(fqme, tf)
    return any(not covered(g, known)
               for g in store.missing(fqme, tf, since, until // tf * tf + tf))


# a deep backfill asks for this many bars at a time, newest first
PAGE_BARS = 10_000


def pages(since: int, until: int, timeframe: int, page_bars: int = PAGE_BARS):
    """`(start, end)` spans (epoch s, both inclusive) from `until` back to
    `since`, `page_bars` bars each, newest first. Send it `True` after a
    page the backend had nothing for: the next one is 8x wider (a long
    closed span, or the start of the listing, costs a few requests)."""
    tf = int(timeframe)
    floor = int(since) // tf * tf
    hi = int(until) // tf * tf + tf
    width = page_bars
    while hi > floor:
        lo = max(floor, hi - width * tf)
        empty = yield lo, hi - tf
        width = width * 8 if empty else page_bars
        hi = lo


__all__ = ['PAGE_BARS', 'BackfillReport', 'merge_fetched', 'pages', 'report', 'wanted']
