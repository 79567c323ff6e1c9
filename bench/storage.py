"""What the market-data store costs (in-process, real disk).

    uv run python bench/storage.py [--bars 1000000] [--n 50] [--dir DIR]

- `append bar`: write one closed 60 s bar onto a market holding `--bars`
  bars (piker.storage rewrites that bar's month only);
- `append 1000 ticks`: one recorder batch of 1,000 L1 quotes (one new
  file, nothing rewritten);
- `load`: all `--bars` 60 s bars of the market into an `OHLC_DTYPE`
  array, what the chart gets;
- `upstream append` / `upstream load`: the same against upstream piker's
  layout, one Parquet file per (market, timeframe) read and rewritten
  whole (atomically, as ours) on every append, in the same run.

Prints p50/p99 (ms) per operation.
"""
from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from piker.atomicfile import write_atomic
from piker.data import OHLC_DTYPE
from piker.storage import BarStore, TickStore, quotes_to_rows
from piker.storage._bars import merge, to_array, to_frame

T0 = 1_704_067_200  # 2024-01-01T00:00Z


def mk_bars(n: int, t0: int = T0) -> np.ndarray:
    rng = np.random.default_rng(1)
    arr = np.zeros(n, dtype=OHLC_DTYPE)
    arr['time'] = t0 + 60 * np.arange(n)
    c = 100 + rng.normal(0, 0.1, n).cumsum()
    arr['open'], arr['close'] = np.roll(c, 1), c
    arr['high'] = np.maximum(arr['open'], c) + 0.05
    arr['low'] = np.minimum(arr['open'], c) - 0.05
    arr['volume'] = rng.integers(1, 100, n)
    return arr


def mk_quotes(n: int, t0_ns: int) -> list[dict]:
    return [{'time_ns': t0_ns + i * 1000, 'last': 100.0 + i % 7, 'bid': 99.5,
             'ask': 100.5, 'bsize': 1.0, 'asize': 2.0, 'volume': float(i),
             'ticks': [{'type': 'trade', 'price': 100.0, 'size': 0.1}]}
            for i in range(n)]


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def row(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    print(f'{name:<28} n={len(ms):<4} p50={statistics.median(ms):9.2f} ms'
          f'  p99={p99:9.2f} ms')


class Upstream:
    """Upstream piker's layout: one file per (fqme, timeframe), rewritten whole."""

    def __init__(self, root: Path) -> None:
        self.path = root / 'btcusdt.sim.ohlcv60s.parquet'

    def write(self, bars: np.ndarray) -> None:
        if self.path.exists():
            bars = merge(self.load(), bars)
        buf = io.BytesIO()
        to_frame(bars).write_parquet(buf, compression='zstd')
        write_atomic(self.path, buf.getvalue())

    def load(self) -> np.ndarray:
        return to_array(pl.read_parquet(self.path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bars', type=int, default=1_000_000)
    ap.add_argument('--n', type=int, default=50)
    ap.add_argument('--dir', type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        bars = mk_bars(args.bars)
        store = BarStore(root / 'storage')
        t = time.perf_counter()
        store.write('btcusdt.sim', 60, bars)
        print(f'seeded {args.bars:,} bars in {time.perf_counter() - t:.2f} s '
              f'({len(list(store.dir("btcusdt.sim", 60).glob("*.parquet")))} months)')
        last = int(bars['time'][-1])
        row('append bar', timed(
            lambda i: store.write('btcusdt.sim', 60, mk_bars(1, last + 60 * (i + 1))),
            args.n))
        ticks = TickStore(root / 'storage')
        t0_ns = last * 10**9
        row('append 1000 ticks', timed(
            lambda i: ticks.append('btcusdt.sim', quotes_to_rows(
                mk_quotes(1000, t0_ns + i * 10**7), seq0=i * 1000)), args.n))
        loads = timed(lambda i: store.read('btcusdt.sim', 60), 5)
        assert len(store.read('btcusdt.sim', 60)) == args.bars + args.n
        row(f'load {args.bars:,} bars', loads)

        up = Upstream(root)
        up.write(bars)
        n_up = max(3, args.n // 5)
        row('upstream append bar', timed(
            lambda i: up.write(mk_bars(1, last + 60 * (i + 1))), n_up))
        row(f'upstream load {args.bars:,}', timed(lambda i: up.load(), 5))


if __name__ == '__main__':
    main()
