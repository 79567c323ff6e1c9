"""`BarStore`: OHLC bars per (fqme, timeframe), one Parquet file a month
(a UTC day for bars shorter than a minute).

A write merges bars into the partitions they fall in, so appending a
closed bar rewrites one partition (at most 44,640 60 s or 86,400 1 s
bars), never the whole history; a read of a time range opens only the
partitions in it.

Gaps: a missing run of bar times inside the stored span. `gaps()` lists
them; the ones a venue really has (a closed market: the backend was
asked and had nothing) are recorded with `mark_closed()` in
`closed.json` and left out, so a backfill does not ask for them again.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from ..atomicfile import write_atomic
from ..types import Struct
from ._errors import StorageError, storage_error
from ._files import list_dir, read_parquet, remove, write_parquet
from ._layout import check_fqme, part_bounds, part_key, part_name, store_root
from ._lock import market_lock

# the bar dtype is piker.data's OHLC_DTYPE; spelled here as columns because
# storage sits below data (a test checks they agree)
BAR_COLUMNS: tuple[str, ...] = ('time', 'open', 'high', 'low', 'close', 'volume')
_PL_SCHEMA = {'time': pl.Int64, **{c: pl.Float64 for c in BAR_COLUMNS[1:]}}
BAR_DTYPE = np.dtype([('time', 'i8')] + [(c, 'f8') for c in BAR_COLUMNS[1:]])


class Gap(Struct, frozen=True):
    """Missing bar times `[start, end)` (epoch s); `closed`: the venue has none."""

    start: int
    end: int
    closed: bool = False

    def bars(self, timeframe: int) -> int:
        return (self.end - self.start) // timeframe


class Span(Struct, frozen=True):
    """What the store holds of one (fqme, timeframe)."""

    fqme: str
    timeframe: int
    first: int
    last: int
    bars: int
    bytes: int
    partitions: int
    gaps: int


def to_frame(bars: np.ndarray) -> pl.DataFrame:
    return pl.DataFrame({c: bars[c] for c in BAR_COLUMNS}, schema=_PL_SCHEMA)


def to_array(df: pl.DataFrame) -> np.ndarray:
    out = np.empty(df.height, dtype=BAR_DTYPE)
    for c in BAR_COLUMNS:
        out[c] = df.get_column(c).to_numpy()
    return out


def check_bars(bars: np.ndarray, timeframe: int) -> np.ndarray:
    """`bars` as a `BAR_DTYPE` array; `ValueError` saying what is wrong."""
    names = bars.dtype.names or ()
    missing = [c for c in BAR_COLUMNS if c not in names]
    if missing:
        raise ValueError(f'bars lack the column(s) {", ".join(missing)}')
    arr = np.empty(len(bars), dtype=BAR_DTYPE)
    for c in BAR_COLUMNS:
        arr[c] = bars[c]
    if timeframe < 1:
        raise ValueError(f'timeframe must be a positive number of seconds, not {timeframe}')
    off = arr['time'] % timeframe != 0
    if off.any():
        raise ValueError(
            f'bar time {int(arr["time"][off][0])} is not a multiple of the '
            f'{timeframe}s timeframe (bar times are bar opens in epoch seconds)'
        )
    bad = ~np.isfinite(arr['close']) | (arr['low'] > arr['high'])
    if bad.any():
        raise ValueError(f'bar at {int(arr["time"][bad][0])} has a non-finite close '
                         'or low > high')
    return arr


def merge(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Sorted union by time; where both have a time, `new`'s bar wins."""
    both = np.concatenate([old, new])
    order = np.argsort(both['time'], kind='stable')  # old before new per time
    both = both[order]
    keep = np.ones(len(both), dtype=bool)
    keep[:-1] = both['time'][1:] != both['time'][:-1]  # last of each run
    return both[keep]


class BarStore:
    """OHLC bars under `root` (default `store_root()`); see module doc."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else store_root()

    def dir(self, fqme: str, timeframe: int) -> Path:
        return self.root / 'bars' / check_fqme(fqme) / str(int(timeframe))

    def _months(self, fqme: str, timeframe: int,
                start: int | None = None, end: int | None = None) -> list[Path]:
        d = self.dir(fqme, timeframe)
        out = []
        for name in list_dir(d):
            bounds = part_bounds(name, int(timeframe))
            if bounds is None:
                continue
            lo, hi = bounds
            if (end is not None and lo >= end) or (start is not None and hi <= start):
                continue
            out.append(d / name)
        return out

    # -- write ---------------------------------------------------------------

    def write(self, fqme: str, timeframe: int, bars: np.ndarray) -> int:
        """Merge `bars` into the store; returns how many were given.

        Each month touched is rewritten atomically, one after the other: a
        crash leaves every month either as before or as after. The
        market's write lock (`_lock`) is held throughout, so a `delete()`
        in another process never lands between a month's read and rewrite.
        """
        arr = check_bars(bars, timeframe)
        if not len(arr):
            return 0
        d = self.dir(fqme, timeframe)
        keys = part_key(arr['time'], timeframe)
        with self.lock(fqme):
            for key in np.unique(keys):
                part = arr[keys == key]
                path = d / part_name(key, timeframe)
                if path.exists():
                    part = merge(to_array(read_parquet([path])), part)
                else:
                    part = merge(part[:0], part)
                write_parquet(path, to_frame(part))
        return len(arr)

    def lock(self, fqme: str):
        """The market's bar write lock (held by every change, see `_lock`)."""
        return market_lock(self.root, 'bars', check_fqme(fqme))

    def delete(self, fqme: str, timeframe: int | None = None,
               start: int | None = None, end: int | None = None) -> int:
        """Remove bars in `[start, end)` (default all) of one or every
        timeframe; returns how many bars went."""
        fqme = check_fqme(fqme)
        with self.lock(fqme):
            return self._delete(fqme, timeframe, start, end)

    def _delete(self, fqme: str, timeframe: int | None,
                start: int | None, end: int | None) -> int:
        tfs = [timeframe] if timeframe is not None else self.timeframes(fqme)
        gone = 0
        for tf in tfs:
            for path in self._months(fqme, tf, start, end):
                arr = to_array(read_parquet([path]))
                t = arr['time']
                drop = np.ones(len(arr), dtype=bool)
                if start is not None:
                    drop &= t >= start
                if end is not None:
                    drop &= t < end
                gone += int(drop.sum())
                if drop.all():
                    remove(path)
                elif drop.any():
                    write_parquet(path, to_frame(arr[~drop]))
            if start is None and end is None:
                remove(self.dir(fqme, tf) / 'closed.json')
                _rmdir_quiet(self.dir(fqme, tf))
        if timeframe is None and start is None and end is None:
            remove(self.root / 'bars' / fqme / 'meta.json')
            _rmdir_quiet(self.root / 'bars' / fqme)
        return gone

    # -- read ----------------------------------------------------------------

    def read(self, fqme: str, timeframe: int,
             start: int | None = None, end: int | None = None) -> np.ndarray:
        """Bars with `start <= time < end` (epoch s), sorted, as `BAR_DTYPE`."""
        paths = self._months(fqme, timeframe, start, end)
        if not paths:
            return np.empty(0, dtype=BAR_DTYPE)
        df = read_parquet(paths)
        if start is not None or end is not None:
            col = pl.col('time')
            cond = pl.lit(True)
            if start is not None:
                cond &= col >= start
            if end is not None:
                cond &= col < end
            df = df.filter(cond)
        return to_array(df)

    def times(self, fqme: str, timeframe: int,
              start: int | None = None, end: int | None = None) -> np.ndarray:
        paths = self._months(fqme, timeframe, start, end)
        if not paths:
            return np.empty(0, dtype=np.int64)
        t = read_parquet(paths, columns=['time']).get_column('time').to_numpy()
        lo = 0 if start is None else np.searchsorted(t, start)
        hi = len(t) if end is None else np.searchsorted(t, end)
        return t[lo:hi]

    def markets(self) -> list[str]:
        return _subdirs(self.root / 'bars')

    def timeframes(self, fqme: str) -> list[int]:
        tfs = _subdirs(self.root / 'bars' / check_fqme(fqme))
        return sorted(int(t) for t in tfs if t.isdigit())

    # -- gaps ------------------------------------------------------------------

    def closed(self, fqme: str, timeframe: int) -> list[Gap]:
        """Spans recorded as closed at the venue."""
        path = self.dir(fqme, timeframe) / 'closed.json'
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            raise StorageError(f'cannot read {path}: {err}') from None
        return [Gap(int(a), int(b), closed=True) for a, b in raw]

    def mark_closed(self, fqme: str, timeframe: int, gaps: list[Gap]) -> None:
        """Record `gaps` as spans the venue has no bars for (not re-asked)."""
        with self.lock(fqme):
            spans = {(g.start, g.end) for g in self.closed(fqme, timeframe)}
            spans |= {(g.start, g.end) for g in gaps}
            path = self.dir(fqme, timeframe) / 'closed.json'
            try:
                write_atomic(path, json.dumps(sorted(spans)))
            except OSError as err:
                raise storage_error('write', path, err) from None

    def gaps(self, fqme: str, timeframe: int, start: int | None = None,
             end: int | None = None, include_closed: bool = False) -> list[Gap]:
        """Runs of missing bar times between stored bars, oldest first.

        Spans recorded with `mark_closed()` are left out unless
        `include_closed` (then they come with `closed=True`).
        """
        t = self.times(fqme, timeframe, start, end)
        if len(t) < 2:
            return []
        jump = np.flatnonzero(np.diff(t) > timeframe)
        found = [Gap(int(t[i]) + timeframe, int(t[i + 1])) for i in jump]
        closed = self.closed(fqme, timeframe)
        out = []
        for g in found:
            if covered(g, closed):
                if include_closed:
                    out.append(Gap(g.start, g.end, closed=True))
            else:
                out.append(g)
        return out

    def missing(self, fqme: str, timeframe: int, start: int, end: int) -> list[Gap]:
        """Runs of bar times in `[start, end)` with no stored bar (before
        the first stored bar and after the last too), closed ones included."""
        tf = int(timeframe)
        start = -(-int(start) // tf) * tf
        if end <= start:
            return []
        t = self.times(fqme, tf, start, end)
        edges = np.concatenate([[start - tf], t, [-(-int(end) // tf) * tf]])
        jump = np.flatnonzero(np.diff(edges) > tf)
        return [Gap(int(edges[i]) + tf, int(edges[i + 1])) for i in jump]

    def span(self, fqme: str, timeframe: int) -> Span | None:
        """First and last bar, counts and size on disk (None if nothing)."""
        paths = self._months(fqme, timeframe)
        if not paths:
            return None
        t = self.times(fqme, timeframe)
        if not len(t):
            return None
        return Span(
            fqme=check_fqme(fqme), timeframe=int(timeframe),
            first=int(t[0]), last=int(t[-1]), bars=len(t),
            bytes=sum(p.stat().st_size for p in paths), partitions=len(paths),
            gaps=len(self.gaps(fqme, timeframe)),
        )


def covered(gap: Gap, spans: list[Gap]) -> bool:
    """Whether the union of `spans` covers all of `gap`."""
    at = gap.start
    for s in sorted(spans, key=lambda g: g.start):
        if s.start > at:
            break
        at = max(at, s.end)
        if at >= gap.end:
            return True
    return at >= gap.end


def _subdirs(d: Path) -> list[str]:
    return list_dir(d, dirs_only=True)


def _rmdir_quiet(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:
        pass  # not empty or gone: fine
