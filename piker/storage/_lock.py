"""One writer at a time per market: an advisory lock file per (kind, fqme).

Every change to a market's files is a read-merge-rewrite of partitions
(`BarStore.write`/`delete`, `TickStore.append`/`compact`/`delete`), and
the writers live in different processes: brokerd appends live bars and
backfills, `piker store delete` / `import` run in the user's shell. Two of
them interleaved can undo each other: a delete between a writer's read of
a month and its rewrite lets the rewrite bring the deleted bars back, a
compaction racing a delete re-creates a day. So each such change holds an
exclusive `flock()` on `<store>/locks/<kind>.<fqme>.lock` for its whole
read-modify-write; readers take no lock (every file is replaced by an
atomic rename, so a reader sees the old or the new partition).

The lock files live apart from the data so deleting a market never
removes the lock another process is waiting on. `flock()` is released by
the kernel when its holder dies, so a crashed writer never wedges the
store. POSIX only (piker runs on Linux and macOS).
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ._errors import storage_error


def lock_path(root: Path, kind: str, fqme: str) -> Path:
    return root / 'locks' / f'{kind}.{fqme}.lock'


@contextmanager
def market_lock(root: Path, kind: str, fqme: str) -> Iterator[None]:
    """Hold the (`kind`, `fqme`) write lock of the store at `root`
    (blocking: the other writer's change is a partition rewrite, ms long).

    A store where the lock cannot be made (read-only, full) raises
    `StorageError` naming the lock file: the write could not happen either.
    """
    path = lock_path(root, kind, fqme)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise storage_error('lock', path, err) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


__all__ = ['lock_path', 'market_lock']
