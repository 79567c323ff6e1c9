"""`TickStore`: recorded L1 quotes and trades per fqme, by UTC day.

Each recorded batch is its own file `ticks/<fqme>/<day>/<n>.parquet`
(`n` counting up per day): an append writes one new small file and
rewrites nothing. `compact()` folds batches `lo..hi` into one
`c-<lo>-<hi>.parquet` (the recorder does so as batches pile up, and for
a whole day once it is over). The new file is written before the ones it
replaces are removed, and readers skip any file whose range lies inside
another's, so a crash in between never shows a row twice through
`read()`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from ..atomicfile import write_atomic
from ._errors import storage_error
from ._files import list_dir, read_parquet, remove, write_parquet
from ._layout import check_fqme, day_bounds_ns, day_name, store_root
from ._lock import market_lock

TICK_SCHEMA: dict[str, Any] = {
    'time_ns': pl.Int64, 'seq': pl.Int64, 'type': pl.String,
    'price': pl.Float64, 'size': pl.Float64,
    'bid': pl.Float64, 'ask': pl.Float64, 'bsize': pl.Float64,
    'asize': pl.Float64, 'last': pl.Float64, 'volume': pl.Float64,
}
_L1 = ('bid', 'ask', 'bsize', 'asize', 'last', 'volume')
_CHUNK = re.compile(r'^(?:c-(\d+)-)?(\d+)\.parquet$')
_NAN = float('nan')
_DAY_NS = 86_400 * 10**9

Quote = dict[str, Any]


def _f(q: Quote, key: str) -> float:
    v = q.get(key)
    return _NAN if v is None else float(v)


def quotes_to_rows(quotes: Iterable[Quote], seq0: int = 0) -> pl.DataFrame:
    """Quotes (the backend contract's dicts) as tick rows (`TICK_SCHEMA`)."""
    cols: dict[str, list] = {k: [] for k in TICK_SCHEMA}
    for seq, q in enumerate(quotes, seq0):
        l1 = [_f(q, k) for k in _L1]
        ticks = q.get('ticks') or [{'type': 'quote', 'price': _NAN, 'size': _NAN}]
        t = int(q['time_ns'])
        for tick in ticks:
            cols['time_ns'].append(t)
            cols['seq'].append(seq)
            cols['type'].append(str(tick.get('type', 'quote')))
            cols['price'].append(_f(tick, 'price'))
            cols['size'].append(_f(tick, 'size'))
            for k, v in zip(_L1, l1, strict=True):
                cols[k].append(v)
    return pl.DataFrame(cols, schema=TICK_SCHEMA)


def rows_to_quotes(df: pl.DataFrame, symbol: str = '') -> list[Quote]:
    """Inverse of `quotes_to_rows()`: one quote dict per `seq` run."""
    out: list[Quote] = []
    cur: Quote | None = None
    cur_seq = None
    for row in df.iter_rows(named=True):
        seq = (row['seq'], row['time_ns'])
        if seq != cur_seq:
            cur_seq = seq
            cur = {'symbol': symbol, 'time_ns': row['time_ns'], 'ticks': []}
            cur.update({k: row[k] for k in _L1})
            out.append(cur)
        if row['type'] != 'quote':
            cur['ticks'].append(
                {'type': row['type'], 'price': row['price'], 'size': row['size']})
    return out


class TickStore:
    """Recorded ticks under `root` (default `store_root()`)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else store_root()
        # (fqme, day) -> next batch number, learnt from the dir once
        self._next: dict[tuple[str, str], int] = {}

    def dir(self, fqme: str) -> Path:
        return self.root / 'ticks' / check_fqme(fqme)

    def write_mkt(self, fqme: str, mkt: dict) -> None:
        """Keep the market's `MktPair` builtins beside its ticks (`mkt.json`)."""
        path = self.dir(fqme) / 'mkt.json'
        try:
            write_atomic(path, json.dumps(mkt, indent=1))
        except OSError as err:
            raise storage_error('write', path, err) from None

    def read_mkt(self, fqme: str) -> dict | None:
        try:
            return json.loads((self.dir(fqme) / 'mkt.json').read_text())
        except (OSError, ValueError):
            return None

    def markets(self) -> list[str]:
        return list_dir(self.root / 'ticks', dirs_only=True)

    def days(self, fqme: str) -> list[str]:
        return [n for n in list_dir(self.dir(fqme)) if day_bounds_ns(n)]

    def _chunks(self, day_dir: Path) -> list[tuple[int, int, Path]]:
        """`(lo, hi, path)` of every batch (`n`: `n, n`) and compacted
        (`c-lo-hi`) file of a day dir."""
        out = []
        for name in list_dir(day_dir):
            m = _CHUNK.match(name)
            if m:
                lo = int(m[1]) if m[1] is not None else int(m[2])
                out.append((lo, int(m[2]), day_dir / name))
        return out

    def _cover(self, day_dir: Path) -> list[tuple[int, int, Path]]:
        """The files that hold each batch once, in batch order: a file whose
        range lies inside a wider one (left by a crash mid-compaction) is
        skipped."""
        out, covered = [], -1
        for lo, hi, p in sorted(self._chunks(day_dir), key=lambda c: (c[0], -c[1])):
            if hi > covered:
                out.append((lo, hi, p))
                covered = hi
        return out

    def files(self, fqme: str, day: str) -> list[Path]:
        """The files `read()` takes for one day, in order."""
        return [p for _, _, p in self._cover(self.dir(fqme) / day)]

    def _replace(self, d: Path, lo: int, hi: int, df: pl.DataFrame) -> int:
        """Write `df` as `c-lo-hi`, then remove the files inside that range."""
        new = d / f'c-{lo}-{hi}.parquet'
        write_parquet(new, df)
        removed = 0
        for clo, chi, p in self._chunks(d):
            if lo <= clo and chi <= hi and p != new:
                remove(p)
                removed += 1
        return removed

    def append(self, fqme: str, rows: pl.DataFrame) -> int:
        """Write `rows` (`TICK_SCHEMA`) as new batch file(s), one per day.

        Returns the bytes written. Raises `StorageError` (full disk,
        read-only dir); nothing stored before is touched.
        """
        fqme = check_fqme(fqme)
        if not rows.height:
            return 0
        rows = rows.select(list(TICK_SCHEMA)).cast(TICK_SCHEMA)
        day_no = rows.get_column('time_ns') // _DAY_NS
        if day_no.n_unique() == 1:
            groups = [(day_name(int(rows['time_ns'][0])), rows)]
        else:
            groups = [(day_name(int(d) * _DAY_NS), rows.filter(day_no == d))
                      for d in day_no.unique(maintain_order=True)]
        with self.lock(fqme):
            return self._append(fqme, groups)

    def lock(self, fqme: str):
        """The market's tick write lock (held by every change, see `_lock`)."""
        return market_lock(self.root, 'ticks', check_fqme(fqme))

    def _append(self, fqme: str, groups: list[tuple[str, pl.DataFrame]]) -> int:
        written = 0
        for day, part in groups:
            key = (fqme, day)
            n = self._next.get(key)
            if n is None:
                n = 1 + max((hi for _, hi, _ in self._chunks(self.dir(fqme) / day)),
                            default=-1)
            written += write_parquet(self.dir(fqme) / day / f'{n}.parquet', part)
            self._next[key] = n + 1
        return written

    def read(self, fqme: str, start_ns: int | None = None,
             end_ns: int | None = None) -> pl.DataFrame:
        """Rows with `start_ns <= time_ns < end_ns`, in recording order."""
        paths: list[Path] = []
        for day in self.days(fqme):
            lo, hi = day_bounds_ns(day)
            if (end_ns is not None and lo >= end_ns) or (
                    start_ns is not None and hi <= start_ns):
                continue
            paths += self.files(fqme, day)
        if not paths:
            return pl.DataFrame(schema=TICK_SCHEMA)
        df = read_parquet(paths)
        if start_ns is not None:
            df = df.filter(pl.col('time_ns') >= start_ns)
        if end_ns is not None:
            df = df.filter(pl.col('time_ns') < end_ns)
        return df

    def compact(self, fqme: str, day: str, full: bool = True) -> int:
        """Fold a day's files into one (`full`), or only its batch files
        since the last compacted one (cheap, for a day still recording);
        returns the files removed."""
        with self.lock(fqme):
            return self._compact(fqme, day, full)

    def _compact(self, fqme: str, day: str, full: bool) -> int:
        d = self.dir(fqme) / day
        cover = self._cover(d)
        # files a crash left inside a wider one's range: already replaced
        kept = {p for _, _, p in cover}
        swept = 0
        for _, _, p in self._chunks(d):
            if p not in kept:
                remove(p)
                swept += 1
        if not full:
            tail = []
            for lo, hi, p in reversed(cover):
                if lo != hi or p.name.startswith('c-'):
                    break
                tail.append((lo, hi, p))
            cover = tail[::-1]
        if len(cover) < 2:
            return swept
        df = read_parquet([p for _, _, p in cover])
        return swept + self._replace(d, cover[0][0], cover[-1][1], df)

    def pending_batches(self, fqme: str, day: str) -> int:
        """Batch files of a day not compacted yet."""
        return sum(1 for lo, hi, p in self._cover(self.dir(fqme) / day)
                   if not p.name.startswith('c-'))

    def delete(self, fqme: str, start_ns: int | None = None,
               end_ns: int | None = None) -> int:
        """Remove whole recorded days overlapping nothing outside the range
        (a partial day is rewritten); returns rows removed."""
        with self.lock(fqme):
            return self._delete(fqme, start_ns, end_ns)

    def _delete(self, fqme: str, start_ns: int | None, end_ns: int | None) -> int:
        gone = 0
        for day in self.days(fqme):
            lo, hi = day_bounds_ns(day)
            if (end_ns is not None and lo >= end_ns) or (
                    start_ns is not None and hi <= start_ns):
                continue
            d = self.dir(fqme) / day
            whole = (start_ns is None or start_ns <= lo) and (end_ns is None or end_ns >= hi)
            df = read_parquet(self.files(fqme, day)) if self.files(fqme, day) else None
            if df is None:
                continue
            if whole:
                gone += df.height
                for _, _, p in self._chunks(d):
                    remove(p)
                _rmdir(d)
                self._next.pop((check_fqme(fqme), day), None)
                continue
            t = pl.col('time_ns')
            keep = pl.lit(False)
            if start_ns is not None:
                keep |= t < start_ns
            if end_ns is not None:
                keep |= t >= end_ns
            kept = df.filter(keep)
            gone += df.height - kept.height
            cover = self._cover(d)
            self._replace(d, cover[0][0], cover[-1][1], kept)
        if start_ns is None and end_ns is None:
            _rmdir(self.dir(fqme))
        return gone

    def size(self, fqme: str) -> int:
        return sum(p.stat().st_size for day in self.days(fqme)
                   for p in self.files(fqme, day))


def _rmdir(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:
        pass
