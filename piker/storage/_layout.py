"""Where the store keeps what: paths and time partitions (see package doc)."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..accounting import unpack_fqme

_MONTH = re.compile(r'^(\d{4})-(\d{2})\.parquet$')
_DAY = re.compile(r'^\d{4}-\d{2}-\d{2}$')


def store_root() -> Path:
    """`<config dir>/storage` (not created: readers must not write)."""
    from ..config import get_config_dir
    return get_config_dir() / 'storage'


def check_fqme(fqme: str) -> str:
    """A normalized fqme, safe as a dir name; `ValueError` otherwise."""
    fqme = fqme.strip().lower()
    unpack_fqme(fqme)  # ValueError explaining the format
    if '/' in fqme or '\\' in fqme or fqme.startswith('.'):
        raise ValueError(f'{fqme!r} is not a valid fqme')
    return fqme


def month_key(times: np.ndarray) -> np.ndarray:
    """Each epoch-second time's month as `datetime64[M]`."""
    return times.astype('datetime64[s]').astype('datetime64[M]')


def month_name(month: np.datetime64) -> str:
    return f'{np.datetime_as_string(month, unit="M")}.parquet'


def month_bounds(name: str) -> tuple[int, int] | None:
    """`[start, end)` epoch seconds of a `YYYY-MM.parquet` file name."""
    m = _MONTH.match(name)
    if m is None:
        return None
    start = np.datetime64(f'{m[1]}-{m[2]}', 'M')
    return (int(start.astype('datetime64[s]').astype(np.int64)),
            int((start + 1).astype('datetime64[s]').astype(np.int64)))


def day_name(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, UTC).strftime('%Y-%m-%d')


def day_bounds_ns(name: str) -> tuple[int, int] | None:
    """`[start, end)` epoch ns of a `YYYY-MM-DD` day dir name."""
    if not _DAY.match(name):
        return None
    start = np.datetime64(name, 'D')
    ns = start.astype('datetime64[ns]').astype(np.int64)
    return int(ns), int(ns + 86_400 * 10**9)
