"""What the EMS journal costs emsd per recorded batch (in-process, real disk).

    uv run python bench/journal.py [--n 5000] [--dir DIR]

emsd journals every batch of dialog changes on its hot order path, so the
figure that matters is the wall time of one `record()` call, including
building the entries (`entries_from_changes`: `Dialog.state()` + JSON).
Measured for the batches emsd really produces:

- `submit`: one new dark order (1 dialog, 1 Status);
- `fill`: one fill of a working order with 20 fills behind it (its state
  carries every fill tid);
- `trigger x10`: one quote firing 10 dark orders (10 dialogs, 10 Statuses);
- `ack`: a state-only change (no Status);

plus the read side: `active_dialogs()` with 1000 active dialogs (what a
restarting emsd does once) and `history(limit=100)`.

The db lives in a temp dir (`--dir` to pick the file system); WAL +
synchronous=NORMAL means no fsync per commit. The checkpoints that do
fsync run in a background thread, but a commit that appends to the WAL
while that thread fsyncs it can wait for the disk: that is the max
column. This loop writes without pause, far above emsd's real rate, so
the WAL never gets a quiet moment to restart and the checkpointer's
size cap (64 MiB) has to reset it now and then.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from piker.clearing import (
    BrokerdFill,
    BrokerdOrderAck,
    BrokerdStatus,
    DialogTable,
    Order,
    Triggered,
)
from piker.clearing._journal import Journal, entries_from_changes


def _order(oid: str, mode: str = 'dark', price: float = 100.0) -> Order:
    return Order(oid=oid, symbol='btcusdt.sim', action='buy', exec_mode=mode,  # type: ignore[arg-type]
                 price=price, size=1e6, account='paper')


class Emsd:
    def __init__(self, journal: Journal) -> None:
        self.table = DialogTable(track_changes=True)
        self.journal = journal

    def commit(self) -> None:
        self.journal.record(entries_from_changes(self.table.drain_changes()))


def _timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        fn(i)
        out.append((time.perf_counter_ns() - t0) / 1e3)
    return out


def _row(name: str, us: list[float]) -> None:
    us = sorted(us)
    p = lambda q: us[min(int(q * len(us)), len(us) - 1)]  # noqa: E731
    print(f'{name:<24} {statistics.median(us):8.1f} {p(0.99):8.1f} {us[-1]:9.1f}   (n={len(us)})')


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('--n', type=int, default=5000)
    ap.add_argument('--dir', type=Path, default=None)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(dir=args.dir, prefix='piker-journal-bench-'))
    journal = Journal.open(base / 'journal.sqlite')
    ems = Emsd(journal)
    n = args.n
    print(f'db: {journal.path}')
    print(f'{"batch":<24} {"p50 µs":>8} {"p99 µs":>8} {"max µs":>9}')

    def submit(i: int) -> None:
        ems.table.on_order(_order(f'd{i}', price=50.0 + i * 1e-3), route='paper')
        ems.commit()
    _row('submit (dark order)', _timed(submit, n))

    ems.table.on_order(_order('live', mode='live'), route='paper')
    ems.table.on_broker_msg(BrokerdOrderAck(oid='live', reqid='r', account='paper'), 'sim')
    ems.table.on_broker_msg(BrokerdStatus(reqid='r', status='open', account='paper',
                                          time_ns=1), 'sim')
    for i in range(20):
        ems.table.on_broker_msg(BrokerdFill(reqid='r', tid=f'pre{i}', action='buy', size=1.0,
                                            price=100.0, broker_time=0, time_ns=1), 'sim')
    ems.commit()

    def fill(i: int) -> None:
        ems.table.on_broker_msg(BrokerdFill(reqid='r', tid=f't{i}', action='buy', size=1.0,
                                            price=100.0, broker_time=0, time_ns=1), 'sim')
        ems.commit()
    _row('fill (20+ fills deep)', _timed(fill, n))

    trig_n = min(n, 1000)

    def trigger(i: int) -> None:
        for k in range(10):
            oid = f'd{(i * 10 + k) % n}'
            d = ems.table.get(oid)
            if d is None:
                continue
            ems.table.on_trigger(Triggered(
                oid=oid, fqme=d.fqme, action='buy', level=d.req.price, direction='down',
                price=d.req.price, tick_type='ask', size=d.req.size, submit_price=d.req.price,
            ))
        ems.commit()
    _row('trigger x10', _timed(trigger, trig_n // 10))

    def ack(i: int) -> None:
        oid = f'd{i % n}'
        ems.table.on_broker_msg(BrokerdOrderAck(oid=oid, reqid=f'a{i}', account='paper'), 'sim')
        ems.commit()
    _row('ack (state only)', _timed(ack, trig_n))

    active = len(journal.active_dialogs())
    _row(f'active_dialogs() [{active}]', _timed(lambda _: journal.active_dialogs(), 5))
    _row('history(limit=100)', _timed(lambda _: journal.history(limit=100), 20))
    size = sum(p.stat().st_size for p in base.iterdir())
    print(f'db + wal size: {size / 1e6:.1f} MB for {journal.counts()} (dialogs, events)')
    journal.close()


if __name__ == '__main__':
    main()
