"""Parquet files written atomically and read with clear errors."""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ..atomicfile import write_atomic
from ._errors import storage_error


def write_parquet(path: Path, df: pl.DataFrame) -> int:
    """Replace `path` with `df` atomically (temp file + fsync + rename).

    Returns the file's size. An `OSError` (full disk, read-only dir)
    becomes a `StorageError`; the previous file is left as it was.
    """
    buf = io.BytesIO()
    df.write_parquet(buf, compression='zstd', statistics=True)
    data = buf.getvalue()
    try:
        write_atomic(path, data)
    except OSError as err:
        raise storage_error('write', path, err) from None
    return len(data)


def read_parquet(paths: Sequence[Path], columns: list[str] | None = None) -> pl.DataFrame:
    """Read and concatenate `paths` (in order); `StorageError` if unreadable."""
    try:
        return pl.read_parquet([os.fspath(p) for p in paths], columns=columns)
    except OSError as err:
        raise storage_error('read', paths[0], err) from None
    except pl.exceptions.PolarsError as err:
        # a damaged file: say which one (read one by one to find it)
        for p in paths:
            try:
                pl.read_parquet_schema(p)
            except Exception:
                raise storage_error(
                    'read', p, OSError(0, f'not a valid parquet file ({err})'),
                ) from None
        raise


def remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as err:
        raise storage_error('delete', path, err) from None


def list_dir(d: Path, dirs_only: bool = False) -> list[str]:
    """Sorted entry names of `d` (`[]` if it does not exist)."""
    try:
        return sorted(p.name for p in d.iterdir() if not dirs_only or p.is_dir())
    except FileNotFoundError:
        return []
    except OSError as err:
        raise storage_error('list', d, err) from None
