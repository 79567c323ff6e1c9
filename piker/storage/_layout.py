"""Where the store keeps what: paths and time partitions (see package doc)."""
from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..fqme import unpack_fqme

_MONTH = re.compile(r'^(\d{4}-\d{2})\.parquet$')
_DAYFILE = re.compile(r'^(\d{4}-\d{2}-\d{2})\.parquet$')
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


# bars shorter than a minute are kept a UTC day a file (86,400 1 s bars),
# longer ones a month a file (44,640 60 s bars)
DAILY_BELOW = 60


def _unit(timeframe: int) -> str:
    return 'D' if timeframe < DAILY_BELOW else 'M'


def part_key(times: np.ndarray, timeframe: int) -> np.ndarray:
    """Each epoch-second bar time's partition as a `datetime64` day/month."""
    return times.astype('datetime64[s]').astype(f'datetime64[{_unit(timeframe)}]')


def part_name(key: np.datetime64, timeframe: int) -> str:
    return f'{np.datetime_as_string(key, unit=_unit(timeframe))}.parquet'


def part_bounds(name: str, timeframe: int) -> tuple[int, int] | None:
    """`[start, end)` epoch seconds of a partition file name (`YYYY-MM` or
    `YYYY-MM-DD`, by timeframe), None for any other file."""
    unit = _unit(timeframe)
    m = (_DAYFILE if unit == 'D' else _MONTH).match(name)
    if m is None:
        return None
    start = np.datetime64(m[1], unit)
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
