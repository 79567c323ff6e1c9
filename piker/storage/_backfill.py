"""Backfill and gap repair: merge what a backend serves into the store.

brokerd runs this (the one writer of a market's bars, see
`piker.brokers._brokerd.history`): every `history()` request fetches the
backend's bars, merges them into `piker.storage` and answers with the
stored series, so the store grows to cover everything any backend ever
served, and a gap inside it is re-fetched whenever the backend's window
covers it again.

A gap that survives a fetch whose span covers it is one the venue really
has (a closed market, a halted one): it is recorded with
`BarStore.mark_closed()` and not reported (nor re-asked) again. A gap
older than the backend's window stays open: nothing can repair it today.

Store work is blocking file I/O, so the callers run it in a worker thread
(`trio.to_thread`): brokerd's quote fan-out never waits for a disk.
"""
from __future__ import annotations

import numpy as np

from ..types import Struct
from ._bars import BarStore, Gap


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


def merge_fetched(
    store: BarStore,
    fqme: str,
    timeframe: int,
    fetched: np.ndarray,
    since: int | None = None,
) -> BackfillReport:
    """Merge `fetched` (bars >= `since`) into `store`; classify the gaps."""
    new = fetched if since is None else fetched[fetched['time'] >= since]
    store.write(fqme, timeframe, changed(store, fqme, timeframe, new))
    gaps = store.gaps(fqme, timeframe)
    closed: list[Gap] = []
    if len(fetched):
        lo, hi = int(fetched['time'][0]), int(fetched['time'][-1])
        # a gap the backend's window spans but that it served nothing in
        closed = [g for g in gaps if g.start >= lo and g.end <= hi
                  and (since is None or g.start >= since)]
        if closed:
            store.mark_closed(fqme, timeframe, closed)
            gaps = [g for g in gaps if g not in closed]
    t = store.times(fqme, timeframe)
    return BackfillReport(
        fqme=fqme, timeframe=int(timeframe), fetched=len(fetched), written=len(new),
        bars=len(t), first=int(t[0]) if len(t) else None,
        last=int(t[-1]) if len(t) else None, gaps=gaps, closed=closed,
    )


__all__ = ['BackfillReport', 'merge_fetched']
