"""A user's own bars (CSV or Parquet) as a stored market.

`read_bars_file()` accepts a header row naming `time` (or `timestamp`,
`date`, `datetime`; epoch s/ms/us/ns or ISO date-times, naive = UTC),
`open`, `high`, `low`, `close` and optionally `volume` (0 if absent), in
any order and case. The timeframe is the smallest step between bars
unless given. `infer_tick()` finds the price grid the numbers are on, so
the chart and the paper engine round to it.
"""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl

from ..atomicfile import write_atomic
from ._bars import BAR_COLUMNS, BAR_DTYPE, check_bars
from ._errors import storage_error

_TIME_NAMES = ('time', 'timestamp', 'date', 'datetime', 'ts')


def read_bars_file(path: Path, timeframe: int | None = None) -> tuple[np.ndarray, int]:
    """`(bars, timeframe)` from a CSV/Parquet file; `ValueError` saying what
    is wrong (which column, which row)."""
    path = Path(path)
    try:
        if path.suffix.lower() == '.parquet':
            df = pl.read_parquet(path)
        else:
            df = pl.read_csv(path, try_parse_dates=False, infer_schema_length=10_000)
    except FileNotFoundError:
        raise ValueError(f'no such file: {path}') from None
    except OSError as err:
        raise storage_error('read', path, err) from None
    except pl.exceptions.PolarsError as err:
        raise ValueError(f'cannot read {path} as {"parquet" if path.suffix == ".parquet" else "CSV"}: {err}') from None
    cols = {c.strip().lower(): c for c in df.columns}
    tcol = next((cols[n] for n in _TIME_NAMES if n in cols), None)
    if tcol is None:
        raise ValueError(f'{path.name}: no time column (one of {", ".join(_TIME_NAMES)}); '
                         f'columns: {", ".join(df.columns)}')
    missing = [c for c in BAR_COLUMNS[1:5] if c not in cols]
    if missing:
        raise ValueError(f'{path.name}: missing column(s) {", ".join(missing)}')
    if not df.height:
        raise ValueError(f'{path.name}: no bars')
    times = _epoch_seconds(df.get_column(tcol), path.name)
    arr = np.zeros(df.height, dtype=BAR_DTYPE)
    arr['time'] = times
    for c in BAR_COLUMNS[1:]:
        if c in cols:
            try:
                arr[c] = df.get_column(cols[c]).cast(pl.Float64).to_numpy()
            except pl.exceptions.PolarsError:
                raise ValueError(f'{path.name}: column {c!r} is not numeric') from None
    arr = arr[np.argsort(arr['time'], kind='stable')]
    if timeframe is None:
        steps = np.diff(arr['time'])
        steps = steps[steps > 0]
        if not len(steps):
            raise ValueError(f'{path.name}: cannot tell the timeframe from one bar time; '
                             'give --timeframe')
        timeframe = int(steps.min())
    return check_bars(arr, timeframe), int(timeframe)


def _epoch_seconds(col: pl.Series, name: str) -> np.ndarray:
    if col.dtype.is_integer() or col.dtype.is_float():
        t = col.cast(pl.Float64).to_numpy()
        big = np.nanmax(np.abs(t)) if len(t) else 0
        scale = 1e9 if big > 1e17 else 1e6 if big > 1e14 else 1e3 if big > 1e11 else 1
        return np.round(t / scale).astype(np.int64)
    if col.dtype == pl.String:
        try:
            col = col.str.to_datetime(time_zone='UTC', time_unit='us')
        except pl.exceptions.PolarsError:
            try:
                col = col.str.to_datetime(time_unit='us').dt.replace_time_zone('UTC')
            except pl.exceptions.PolarsError as err:
                raise ValueError(f'{name}: cannot read the times ({err})') from None
    if isinstance(col.dtype, pl.Date):
        col = col.cast(pl.Datetime('us'))
    if isinstance(col.dtype, pl.Datetime):
        if col.dtype.time_zone is None:
            col = col.dt.replace_time_zone('UTC')
        return col.dt.epoch('s').to_numpy().astype(np.int64)
    raise ValueError(f'{name}: the time column has type {col.dtype}, not times')


def infer_tick(values: np.ndarray, max_digits: int = 8) -> Decimal:
    """The coarsest decimal grid (1, 0.1, ... 1e-8) every value lies on."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    for d in range(max_digits + 1):
        scaled = v * 10**d
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6 * np.maximum(1, np.abs(scaled))):
            return Decimal(1).scaleb(-d)
    return Decimal(1).scaleb(-max_digits)


def write_meta(d: Path, meta: dict) -> None:
    """`bars/<fqme>/meta.json`: price/size ticks of an imported market."""
    try:
        write_atomic(d / 'meta.json', json.dumps(meta, indent=1))
    except OSError as err:
        raise storage_error('write', d / 'meta.json', err) from None


def read_meta(d: Path) -> dict:
    try:
        return json.loads((d / 'meta.json').read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}
