"""Crash-safe file writes: temp file in the same dir + fsync + rename.

A reader (or a process restarted after a crash) only ever sees the old
file or the complete new one, never a torn write. A file found damaged
is `quarantine()`d: renamed aside with its bytes intact, so whatever
replaces it never destroys the evidence.
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from .log import get_logger

log = get_logger(__name__)


_seq = itertools.count()


def _open_temp(path: Path) -> tuple[int, Path]:
    """Create a new temp file next to `path` (its directory made if
    missing): `.<name>.<pid>-<n>.tmp`, unique among live processes."""
    while True:
        tmp = path.with_name(f'.{path.name}.{os.getpid()}-{next(_seq)}.tmp')
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), tmp
        except FileExistsError:
            continue  # left by a dead process with our pid
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)


def write_atomic(
    path: str | os.PathLike, data: str | bytes, *, durable: bool = True,
) -> None:
    """Atomically replace `path` with `data` (str is written as utf-8).

    `durable=False` skips both fsyncs: still all-or-nothing for a process
    crash (the rename only ever shows a complete file), but an OS crash
    may leave the old file or an empty one. Only for files derived from
    a durable source that rebuilds them (the positions file).
    """
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = _open_temp(path)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: str | os.PathLike) -> None:
    """Persist a directory's entries (a rename, a new file) if the OS can."""
    try:
        dfd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def quarantine(path: str | os.PathLike, companions: Iterable[str] = ()) -> Path:
    """Rename a damaged `path` aside, bytes intact; return the new name.

    The new name is `<name>.corrupt-<local time>[-n]`, never an existing
    file. `companions` are suffixes of files that belong with it (a
    SQLite db's `-wal`, `-shm`): each moves along with the same stamp.
    A rename that fails is logged; the caller decides what to do next.
    """
    path = Path(path)
    stamp = datetime.now().strftime('%Y%m%dT%H%M%S')
    aside = path.with_name(f'{path.name}.corrupt-{stamp}')
    n = 1
    while aside.exists():
        aside = path.with_name(f'{path.name}.corrupt-{stamp}-{n}')
        n += 1
    for suffix in ('', *companions):
        src = path.with_name(path.name + suffix)
        if src.exists():
            try:
                src.rename(aside.with_name(aside.name + suffix))
            except OSError as err:
                log.error('cannot move %s aside: %s', src, err)
    return aside
