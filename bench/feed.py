"""Quote feed throughput and latency, sim backend -> open_feed() consumers.

Runs a private service tree (its own PIKER_CONFIG_DIR with
`[sim] quote_rate = 0`, i.e. unthrottled, and a free PIKER_REGISTRY_ADDR),
subscribes every sim market and measures, at the consumer:

- quotes/s delivered: walk quotes whose updates reached the consumer.
  When the producer outruns the pipeline (always, unthrottled) quotes of
  one fqme are conflated into one batch entry: latest L1 fields, every
  quote's ticks kept in order. Each walk quote has exactly one `bid` tick,
  so counting `bid` ticks counts delivered quotes, conflated or not;
- L1 snapshots/s: batch entries (at most one per fqme per batch);
- batches/s, entries per batch, quotes per entry;
- quote age p50/p99: `time.time_ns()` at receipt minus the quote's
  `time_ns` (set when the sim created it).

Scenarios: 1 consumer and 10 consumers (one process; they share one IPC
stream), unthrottled; then 1 consumer at the default 20 quotes/s/market
to show latency when nothing is saturated.

    uv run python bench/feed.py [--seconds 3]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import trio


class Stats:
    def __init__(self) -> None:
        self.quotes = 0
        self.covered = 0
        self.batches = 0
        self.ages: list[float] = []

    def add(self, batch: dict, now_ns: int) -> None:
        self.batches += 1
        self.quotes += len(batch)
        for q in batch.values():
            self.ages.append(now_ns - q['time_ns'])
            self.covered += sum(1 for t in q['ticks'] if t['type'] == 'bid')


async def _consume(feed, stats: Stats, warmup_until: float, end: float) -> None:
    while True:
        batch = await feed.stream.receive()
        now = time.monotonic()
        if now >= end:
            return
        if now >= warmup_until:
            stats.add(batch, time.time_ns())


async def _scenario(consumers: int, seconds: float, warmup: float) -> tuple[list[Stats], float]:
    from piker.brokers.sim import MARKETS
    from piker.data import open_feed
    from piker.service import maybe_open_pikerd

    fqmes = [f'{key}.sim' for key in MARKETS]
    stats = [Stats() for _ in range(consumers)]
    async with maybe_open_pikerd():
        async with trio.open_nursery() as n:
            ready = trio.Event()
            go: list[float] = []

            async def consumer(st: Stats, ready_evt: trio.Event) -> None:
                async with open_feed(fqmes) as feed:
                    ready_evt.set()
                    await ready.wait()
                    await _consume(feed, st, go[0] + warmup, go[0] + warmup + seconds)

            evts = []
            for st in stats:
                evt = trio.Event()
                evts.append(evt)
                n.start_soon(consumer, st, evt)
            for evt in evts:
                await evt.wait()
            go.append(time.monotonic())
            ready.set()
    return stats, seconds


def _report(title: str, stats: list[Stats], seconds: float) -> None:
    entries = sum(s.quotes for s in stats)
    covered = sum(s.covered for s in stats)
    batches = sum(s.batches for s in stats)
    ages = np.array([a for s in stats for a in s.ages], dtype=float) / 1e6
    per = [s.covered / seconds for s in stats]
    print(f'\n{title}')
    print(f'  quotes/s delivered (all consumers):  {covered / seconds:>12,.0f}')
    if len(stats) > 1:
        print(f'  quotes/s per consumer min/max:       {min(per):>12,.0f} / {max(per):,.0f}')
    print(f'  L1 snapshots/s (batch entries):      {entries / seconds:>12,.0f}')
    print(f'  batches/s: {batches / seconds:,.0f}, entries/batch: {entries / max(batches, 1):.2f}, '
          f'quotes/entry: {covered / max(entries, 1):.1f}')
    if len(ages):
        print(
            f'  quote age ms p50/p99/max: {np.percentile(ages, 50):.3f} / '
            f'{np.percentile(ages, 99):.3f} / {ages.max():.3f}'
        )


def _run(rate: float, consumers: int, seconds: float, warmup: float) -> tuple[list[Stats], float]:
    conf = Path(tempfile.mkdtemp(prefix='piker-bench-'))
    (conf / 'brokers.toml').write_text(f'[sim]\nseed = 1\nquote_rate = {rate}\n')
    os.environ['PIKER_CONFIG_DIR'] = str(conf)
    from piker.testing import free_port
    os.environ['PIKER_REGISTRY_ADDR'] = f'127.0.0.1:{free_port()}'
    return trio.run(_scenario, consumers, seconds, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--warmup', type=float, default=0.5)
    args = parser.parse_args()
    from piker.brokers.sim import MARKETS
    print(f'piker feed bench: {len(MARKETS)} sim markets, {args.seconds:.1f}s per scenario')
    for title, rate, n in (
        ('unthrottled sim -> 1 consumer', 0.0, 1),
        ('unthrottled sim -> 10 consumers (one process)', 0.0, 10),
        ('sim at 20 quotes/s/market -> 1 consumer', 20.0, 1),
    ):
        stats, secs = _run(rate, n, args.seconds, args.warmup)
        _report(title, stats, secs)


if __name__ == '__main__':
    main()
