"""EMS latency and throughput through the real actor tree (paper mode).

    uv run python bench/ems.py [--orders 2000] [--fills 2000] [--window 100]
                               [--seed-trades 100000] [--profile DIR]
                               [--dark-orders 100000]

A private service tree (its own PIKER_CONFIG_DIR and a free
PIKER_REGISTRY_ADDR; `[sim.paper] latency_ms = 0`): this process runs
pikerd and the order client, `emsd` and `paperboi.sim` are daemons under
it, `brokerd.sim` feeds the paper engine. The sim market is paused with
`open_market_control()` on a fixed book (bid 64,999 / ask 65,001, deep),
so resting orders never fill and marketable ones always do. Measured:

- echo floor: a raw tractor stream round trip to a spawned actor with a
  trivial `@tractor.context` echo (`_ems_rpc.echo`), same run, same IPC;
  sampled alone, and again between the orders of the order -> open phase
  (same load as the orders);
- order -> pending (client -> emsd -> client) and order -> open
  (client -> emsd -> paperboi -> emsd -> client), one order at a time,
  with a per-hop breakdown from the timestamps emsd and paperboi stamp
  (one host, one clock);
- cancel -> canceled, one at a time;
- marketable order -> fill and -> closed (paperboi appends the fill to
  the ledger, fsync'd, and replaces the positions file before it reports
  it), in pairs (buy, sell) alternating between two paper accounts: one
  whose ledger starts empty, one pre-seeded with `--seed-trades` trades
  (same run, same load, interleaved); the fsync latency of the storage
  (an fsync'd append, what a fill costs at least) is sampled meanwhile;
- pipelined: N resting orders sent with `send_nowait()` in bursts (at
  most `--window` in flight; half a window goes out back to back each
  time half has come back) until every one is `open` (orders/s), then
  cancelled the same way;
- the paper engine's per-fill persistence alone, in-process, with an
  empty ledger and with `--seed-trades` trades in it;
- the dark book's cost per quote with `--dark-orders` resting orders on
  one fqme against a naive scan, in-process (`bench/dark.py`).

Targets: issue 12's, as ratios to the floor of the same run (printed
last: open <= 1.5 x two echo round trips, pending <= 1.5 x one, >= 5,000
orders/s and cancels/s pipelined); p50 order -> open <= 1.5 ms; p50 marketable order -> fill with
the seeded ledger <= order -> open p50 + one fsync'd append (p50), and
within 20 % of the fill p50 with the empty one; dark book with 100k resting and
no fire <= 20 us per quote and >= 500x faster than the naive scan. `--profile DIR` then re-runs the
order -> open and pipelined phases under cProfile (inside emsd and
paperboi, via RPC into daemons this script pre-spawns with `_ems_rpc`
enabled; the client too for order -> open), prints the hot spots and
leaves the `.prof` files in DIR; those runs are not the table's figures.

The figures depend on the machine's load: every hop wakes another
process, so on a busy 2-core box each hop waits for a CPU. The header
prints the load average; compare runs at similar load.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager as acm
from pathlib import Path

import trio

FQME = 'btcusdt.sim'
BID, ASK = 64_999.0, 65_001.0
DEPTH = 1e9          # quoted size at the touch: fills never run out
REST = 60_000.0      # buy limit far below the bid: rests, never fills
SIZE = 0.01
TARGET_OPEN_P50_MS = 1.5
TARGET_FILL_GROWTH = 1.2  # fill p50, seeded ledger / empty ledger
# issue 12: open <= this x the 4-hop floor (2 echoes), pending <= this x 1
TARGET_FLOOR_RATIO = 1.5
TARGET_PIPELINED = 5_000  # orders/s and cancels/s from one client
SEEDED = 'seeded'         # the paper account whose ledger is pre-seeded
WARMUP = 200


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[k]


class Results:
    """Latency samples (ms) and throughput figures, in insertion order."""

    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = {}
        self.rate: dict[str, tuple[int, float]] = {}  # name -> (n, seconds)
        self.notes: list[str] = []
        # phase -> process -> CPU microseconds per order (or cancel)
        self.cpu: dict[str, dict[str, float]] = {}

    def add(self, name: str, ms: float) -> None:
        self.lat.setdefault(name, []).append(ms)

    def table(self) -> str:
        rows = [f'{"latency (ms)":<46}{"n":>6}{"p50":>9}{"p90":>9}{"p99":>9}{"max":>9}']
        for name, xs in self.lat.items():
            rows.append(
                f'{name:<46}{len(xs):>6}{pct(xs, 50):>9.3f}{pct(xs, 90):>9.3f}'
                f'{pct(xs, 99):>9.3f}{max(xs):>9.3f}'
            )
        rows.append('')
        rows.append(f'{"throughput":<46}{"n":>6}{"seconds":>9}{"per s":>12}')
        for name, (n, secs) in self.rate.items():
            rows.append(f'{name:<46}{n:>6}{secs:>9.3f}{n / secs:>12,.0f}')
        if self.cpu:
            names = list(next(iter(self.cpu.values())))
            rows.append('')
            rows.append(f'{"CPU us per order (user+sys)":<46}'
                        + ''.join(f'{n[:12]:>13}' for n in names))
            for phase, per in self.cpu.items():
                rows.append(f'{phase:<46}' + ''.join(f'{per.get(n, 0):>13.0f}' for n in names))
        return '\n'.join(rows)


class CPUMeter:
    """CPU time per order of each process of the tree over a phase (from
    /proc: this process is pikerd and the client)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def sample(self) -> dict[str, float]:
        from piker.testing._proc import cpu_s
        return {name: cpu_s(pid) for name, pid in self.pids.items()}

    @acm
    async def phase(self, res: Results, name: str, n: int):
        t0 = self.sample()
        yield
        t1 = self.sample()
        res.cpu[name] = {k: (t1[k] - t0[k]) / n * 1e6 for k in t0}


# ---- phases (inside the service tree) -----------------------------------

class Echo:
    """The floor: a raw tractor stream round trip to a trivial echo actor."""

    MSG = {'name': 'order', 'oid': str(uuid.uuid4()), 'symbol': FQME,
           'action': 'buy', 'exec_mode': 'live', 'price': REST, 'size': SIZE,
           'account': 'paper', 'brokers': ['sim']}

    def __init__(self, stream) -> None:
        self.stream = stream

    async def round_trip(self) -> float:
        t0 = time.perf_counter()
        await self.stream.send(self.MSG)
        await self.stream.receive()
        return (time.perf_counter() - t0) * 1e3


@acm
async def open_echo() -> AsyncIterator[Echo]:
    from piker.service import maybe_spawn_daemon
    from piker.testing import _ems_rpc

    async with maybe_spawn_daemon('bench_echo', enable_modules=[_ems_rpc.__name__]) as portal:
        async with portal.open_context(_ems_rpc.echo) as (ctx, _):
            async with ctx.open_stream() as stream:
                yield Echo(stream)


async def _until(trades, oid: str, resps: set[str]):
    """Next Status of `oid` with a resp in `resps` (an error raises)."""
    from piker.clearing import Status
    while True:
        msg = await trades.receive()
        if not isinstance(msg, Status) or msg.oid != oid:
            continue
        if msg.resp == 'error':
            raise RuntimeError(f'order {oid} failed: {msg.reason}')
        if msg.resp in resps:
            return msg


async def order_to_open(
    res: Results, client, trades, n: int, tag: str = '', echo: Echo | None = None,
) -> list[str]:
    """Resting orders one at a time; returns their oids (still resting).

    With `echo`, one echo round trip precedes every order: the floor under
    the same load (it also absorbs work the daemons do after an `open`)."""
    oids = []
    for i in range(WARMUP + n):
        if echo is not None:
            rtt = await echo.round_trip()
            if i >= WARMUP:
                res.add('echo round trip, between orders', rtt)
        order = client.mk_order('buy', REST, SIZE)
        t0_ns = time.time_ns()
        t0 = time.perf_counter()
        client.send_nowait(order)
        pending = await _until(trades, order.oid, {'pending'})
        t_pending = time.perf_counter()
        opened = await _until(trades, order.oid, {'open'})
        t_open = time.perf_counter()
        t_open_ns = time.time_ns()
        oids.append(order.oid)
        if i < WARMUP:
            continue
        res.add(f'order -> pending (client-emsd-client){tag}', (t_pending - t0) * 1e3)
        res.add(f'order -> open{tag}', (t_open - t0) * 1e3)
        if tag:
            continue
        venue_ns = (opened.brokerd_msg or {}).get('time_ns')
        if venue_ns:
            res.add('  hop: client -> emsd (pending stamped)', (pending.time_ns - t0_ns) / 1e6)
            res.add('  hop: emsd -> paperboi (open stamped)', (venue_ns - pending.time_ns) / 1e6)
            res.add('  hop: paperboi -> emsd (open Status made)', (opened.time_ns - venue_ns) / 1e6)
            res.add('  hop: emsd -> client (open received)', (t_open_ns - opened.time_ns) / 1e6)
    return oids


async def cancel_each(res: Results, client, trades, oids: list[str], tag: str = '') -> None:
    for oid in oids:
        t0 = time.perf_counter()
        client.cancel_nowait(oid)
        await _until(trades, oid, {'canceled'})
        res.add(f'cancel -> canceled{tag}', (time.perf_counter() - t0) * 1e3)


def fill_label(seeded: int) -> str:
    return f'marketable order -> fill, ledger +{seeded:,}'


class AppendProbe:
    """An fsync'd append of one ledger-sized table to a file of its own:
    the storage floor of a fill (paperboi appends and fsyncs once)."""

    TABLE = b'\n' + 200 * b'x' + b'\n'

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __call__(self) -> None:
        os.write(self.fd, self.TABLE)
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


async def fills(res: Results, client, trades, n: int, seeded: int) -> None:
    """Marketable orders: a buy at the ask then a sell at the bid, each
    pair on the next of the accounts (the empty ledger, the seeded one).

    Every 10th fill is followed by an fsync'd append from this process:
    the storage's fsync latency *while* the fills run.
    """
    accounts = [('paper', 0)] + ([(SEEDED, seeded)] if seeded else [])
    probe = AppendProbe(Path(os.environ['PIKER_CONFIG_DIR']) / 'fsync-probe.log')
    try:
        for i in range(n):
            acct, size = accounts[(i // 2) % len(accounts)]
            action, price = ('buy', ASK) if i % 2 == 0 else ('sell', BID)
            order = client.mk_order(action, price, SIZE, account=acct)
            t0 = time.perf_counter()
            client.send_nowait(order)
            await _until(trades, order.oid, {'fill'})
            t_fill = time.perf_counter()
            await _until(trades, order.oid, {'closed'})
            res.add(fill_label(size), (t_fill - t0) * 1e3)
            res.add(f'marketable order -> closed, ledger +{size:,}',
                    (time.perf_counter() - t0) * 1e3)
            if i % 10 == 0:
                t0 = time.perf_counter()
                await trio.to_thread.run_sync(probe)
                res.add("  fsync'd append meanwhile (floor, this process)",
                        (time.perf_counter() - t0) * 1e3)
    finally:
        probe.close()
    xs = res.lat[fill_label(0)]
    k = min(100, len(xs))
    res.notes.append(
        f'fill p50 (empty ledger) of the first {k} fills: {pct(xs[:k], 50):.3f} ms, of the '
        f'last {k}: {pct(xs[-k:], 50):.3f} ms (the ledger grows by one trade per fill)'
    )


def fill_verdict(res: Results, seeded: int) -> list[str]:
    """The fill targets, against the floors sampled in the same run."""
    opened = res.lat.get('order -> open')
    floor = res.lat.get("  fsync'd append meanwhile (floor, this process)")
    empty = res.lat.get(fill_label(0))
    if not (opened and floor and empty):
        return []
    open50, floor50, empty50 = pct(opened, 50), pct(floor, 50), pct(empty, 50)
    budget = open50 + floor50
    lines = [f'fill p50 - open p50 = {empty50 - open50:.3f} ms (empty ledger): what paperboi '
             f'spends recording a fill; one fsync\'d append p50 {floor50:.3f} ms meanwhile']
    full = res.lat.get(fill_label(seeded)) if seeded else None
    if full:
        full50 = pct(full, 50)
        ratio = full50 / empty50
        lines.append(
            f'fill p50 with {seeded:,} trades seeded {full50:.3f} ms, with none '
            f'{empty50:.3f} ms: ratio {ratio:.2f} (target <= {TARGET_FILL_GROWTH}: '
            f'{"met" if ratio <= TARGET_FILL_GROWTH else "MISSED"})'
        )
    for name, x in (('none', empty50), (f'{seeded:,}', full50 if full else None)):
        if x is not None:
            lines.append(
                f'fill p50 ({name} seeded) {x:.3f} ms vs open p50 + one fsync\'d append = '
                f'{open50:.3f} + {floor50:.3f} = {budget:.3f} ms: '
                f'{"met" if x <= budget else "MISSED"}'
            )
    return lines


def ratio_verdicts(res: Results) -> list[str]:
    """Issue 12's targets, as ratios to the floor of the same run."""
    def met(ok: bool) -> str:
        return 'met' if ok else 'MISSED'

    echo = res.lat.get('echo stream round trip (floor)')
    lines = []
    if echo:
        e50 = pct(echo, 50)
        for name, hops in (('order -> open', 2), ('order -> pending (client-emsd-client)', 1)):
            xs = res.lat.get(name)
            if xs:
                x50, budget = pct(xs, 50), TARGET_FLOOR_RATIO * hops * e50
                lines.append(f'{name} p50 {x50:.3f} ms <= {TARGET_FLOOR_RATIO} x {hops} echo '
                             f'round trip(s) = {budget:.3f} ms: {met(x50 <= budget)}')
    for name, (n, secs) in res.rate.items():
        lines.append(f'{name}: {n / secs:,.0f}/s >= {TARGET_PIPELINED:,}/s: '
                     f'{met(n / secs >= TARGET_PIPELINED)}')
    return lines


async def _burst(client, trades, oids: list[str], send, want: str, window: int) -> float:
    """Send commands for `oids` in bursts, keeping at most `window` in
    flight, until each reported `want`; returns the seconds it took.

    A burst goes out back to back, as a strategy fires one (the client
    sends it as one batch frame): the first fills the window, and each
    time half of it has come back, the next half goes. The window bounds
    the backlog of statuses queued towards this client: heartbeats share
    the connection, and a backlog that takes emsd's watchdog timeout to
    drain would read as a dead client.
    """
    from piker.clearing import Status
    todo = list(reversed(oids))
    waiting: set[str] = set()
    t0 = time.perf_counter()
    while todo or waiting:
        if len(waiting) <= window // 2:
            while todo and len(waiting) < window:
                oid = todo.pop()
                send(oid)
                waiting.add(oid)
        msg = await trades.receive()
        if isinstance(msg, Status) and msg.oid in waiting:
            if msg.resp == 'error':
                raise RuntimeError(f'order {msg.oid} failed: {msg.reason}')
            if msg.resp == want:
                waiting.discard(msg.oid)
    return time.perf_counter() - t0


async def pipelined(res: Results, client, trades, n: int, window: int) -> None:
    orders = {}
    for i in range(n):
        order = client.mk_order('buy', REST - (i % 1000) * 0.1, SIZE)
        orders[order.oid] = order
    oids = list(orders)
    secs = await _burst(client, trades, oids, lambda oid: client.send_nowait(orders[oid]),
                        'open', window)
    res.rate[f'pipelined orders -> open ({window} in flight)'] = (n, secs)
    secs = await _burst(client, trades, oids, client.cancel_nowait, 'canceled', window)
    res.rate[f'pipelined cancels -> canceled ({window} in flight)'] = (n, secs)


async def rerun(
    phase: str, res: Results, client, trades, n: int, window: int, tag: str,
) -> tuple[str, list[str]]:
    """One phase again (for a profiler): its headline figure, and the
    oids of the orders it left resting (order -> open's)."""
    if phase == 'fills':
        await fills(res, client, trades, n // 5, 0)
        return f'fill p50 {pct(res.lat[fill_label(0)], 50):.3f} ms, {n // 5} fills', []
    if phase == 'pipelined':
        await pipelined(res, client, trades, n, window)
        _, (count, secs) = next(iter(res.rate.items()))
        return f'{count / secs:,.0f} orders/s', []
    oids = await order_to_open(res, client, trades, n, tag=tag)
    return f'p50 {pct(res.lat[f"order -> open{tag}"], 50):.3f} ms', oids


async def profiled(
    client, trades, n: int, window: int, outdir: Path, portals: dict,
    report: list[str],
) -> None:
    """Re-run order -> open and the pipelined burst under cProfile.

    Profiles emsd and paperboi (RPC into `_ems_rpc`), and this client for
    order -> open only: slowed down by cProfile in a pipelined burst it
    falls so far behind emsd's statuses that heartbeats queued behind them
    time out. Figures of these runs include cProfile overhead. Sections are
    appended to `report` as they complete.
    """
    import cProfile

    from piker.testing import _ems_rpc

    for phase in ('order -> open', 'pipelined'):
        for portal in portals.values():
            await portal.run(_ems_rpc.profile_start)
        prof = cProfile.Profile()
        if phase != 'pipelined':
            prof.enable()
        scratch = Results()
        figure, oids = await rerun(phase, scratch, client, trades, n, window, ' (profiled)')
        prof.disable()
        report.append(f'\n######## profiled phase: {phase}, {n} orders: {figure} '
                      '(with cProfile overhead)')
        slug = phase.split()[0]
        for name, portal in portals.items():
            text = await portal.run(
                _ems_rpc.profile_stop, path=str(outdir / f'{slug}-{name}.prof'),
            )
            report.append(f'===== {name} =====\n{text}')
        if phase != 'pipelined':
            prof.dump_stats(str(outdir / f'{slug}-client.prof'))
            report.append(f'===== client (this process) =====\n{_ems_rpc.summary(prof, 15)}')
            await cancel_each(scratch, client, trades, oids)


async def sampled(
    client, trades, n: int, window: int, portals: dict, report: list[str],
) -> None:
    """Re-run order -> open, the pipelined burst and marketable fills
    under the sampling profiler (`_ems_rpc.sample_start`: SIGPROF every 0.5 ms of CPU, so
    the cost of a function is its share of samples, without cProfile's
    per-call overhead): emsd, paperboi and this process (client + pikerd).
    """
    from piker.testing import _ems_rpc

    for phase in ('order -> open', 'pipelined', 'fills'):
        for portal in portals.values():
            await portal.run(_ems_rpc.sample_start)
        await _ems_rpc.sample_start()
        scratch = Results()
        figure, oids = await rerun(phase, scratch, client, trades, n, window, ' (sampled)')
        local = await _ems_rpc.sample_stop()
        report.append(f'\n######## sampled phase: {phase}, {WARMUP + n} orders: {figure}')
        for name, portal in portals.items():
            report.append(f'===== {name} =====\n{await portal.run(_ems_rpc.sample_stop)}')
        report.append(f'===== client + pikerd (this process) =====\n{local}')
        if phase == 'order -> open':
            await cancel_each(scratch, client, trades, oids)


async def run_tree(args: argparse.Namespace, res: Results, report: list[str]) -> None:
    from contextlib import AsyncExitStack

    from piker.brokers.sim import open_market_control
    from piker.clearing import open_ems
    from piker.clearing._daemons import EMSD, PAPERBOI
    from piker.service import list_services, maybe_open_pikerd, open_daemon
    from piker.testing import _ems_rpc

    # paperboi loads the seeded ledger at start: seconds, more on a busy box
    async with maybe_open_pikerd(spawn_timeout=120.0), AsyncExitStack() as stack:
        portals = {}
        if args.profile or args.sample:
            # spawned first, so emsd / open_ems find them with _ems_rpc enabled
            for spec in (EMSD.spec(extra_modules=[_ems_rpc.__name__]),
                         PAPERBOI.spec('sim', extra_modules=[_ems_rpc.__name__])):
                portals[spec.name] = await stack.enter_async_context(open_daemon(spec))
        echo = await stack.enter_async_context(open_echo())
        for i in range(WARMUP + args.orders):
            rtt = await echo.round_trip()
            if i >= WARMUP:
                res.add('echo stream round trip (floor)', rtt)
        ctl = await stack.enter_async_context(
            open_market_control(FQME, resume_on_exit=False),
        )
        await ctl.push(bid=BID, ask=ASK, last=(BID + ASK) / 2, bsize=DEPTH, asize=DEPTH)
        client, trades, *_ = await stack.enter_async_context(open_ems(FQME, mode='paper'))

        services = await list_services()
        pids = {name: services[name].pid for name in ('emsd', 'paperboi.sim', 'brokerd.sim', 'bench_echo')
                if name in services and services[name].pid}
        cpu = CPUMeter({**pids, 'client+pikerd': os.getpid()})
        async with cpu.phase(res, 'idle, per second (not per order)', 1):
            await trio.sleep(1.0)
        async with cpu.phase(res, 'echo round trip alone', args.orders):
            for _ in range(args.orders):
                await echo.round_trip()
        async with cpu.phase(res, 'one at a time: order -> open (+ echo)', WARMUP + args.orders):
            oids = await order_to_open(res, client, trades, args.orders, echo=echo)
        async with cpu.phase(res, 'one at a time: cancel -> canceled', args.orders):
            await cancel_each(res, client, trades, oids[WARMUP:])
        await cancel_each(Results(), client, trades, oids[:WARMUP])
        async with cpu.phase(res, 'marketable order -> closed', args.fills):
            await fills(res, client, trades, args.fills, args.seed_trades)
        async with cpu.phase(res, 'pipelined: order -> open, then cancel', args.orders):
            await pipelined(res, client, trades, args.orders, args.window)
        if args.sample:
            await sampled(client, trades, args.profile_orders, args.window, portals, report)
        if args.profile:
            await profiled(client, trades, args.profile_orders, args.window,
                           Path(args.profile), portals, report)


# ---- persistence cost (in-process, no actors) ---------------------------

def mk_txns(start: int, stop: int, account_tag: str = '', held: bool = False):
    """Fills as paperboi books them: buy at the ask / sell at the bid in
    turn (so the position goes flat every two), unique tids; `held`: buys
    only (a position that never goes flat)."""
    from datetime import UTC, datetime, timedelta

    from piker.accounting import Transaction
    from piker.brokers.sim import MARKETS

    mkt = MARKETS['btcusdt'].mkt
    now = datetime.now(UTC) - timedelta(milliseconds=stop - start)
    return [
        Transaction(
            fqme=mkt.fqme, tid=f'{account_tag}{uuid.uuid4().hex}',
            size=SIZE if held or i % 2 == 0 else -SIZE,
            price=ASK if held or i % 2 == 0 else BID,
            cost=0.0, dt=now + timedelta(milliseconds=i - start), bs_mktid=mkt.bs_mktid,
        )
        for i in range(start, stop)
    ]


def seed_ledger(account: str, n: int) -> float:
    """Write `n` trades into `account`'s paper ledger (before the tree
    starts: paperboi loads it); returns the seconds it took."""
    from piker.accounting import TransactionLedger

    t0 = time.perf_counter()
    ledger = TransactionLedger.load('sim', account)
    ledger.update_from_txns(mk_txns(0, n))
    ledger.write()
    return time.perf_counter() - t0


def persistence(res: Results, seeded: int, reps: int = 50) -> None:
    """What paperboi's per-fill persistence costs, in-process: the same
    calls (`PaperAccounts.book()` + `flush()`: the ledger append, fsync'd,
    then the positions file, replaced without fsync) with an empty ledger
    and with `seeded` trades in it, a fill to each in turn, plus the
    storage floors: an fsync'd append and an fsync'd atomic write (temp
    file, fsync, rename, fsync of the directory) of a tiny file; and a
    fill to a position that never went flat, at 100 and at 20,000 open
    fills (its positions file keeps the last fills only: the same cost).
    """
    from piker.atomicfile import write_atomic
    from piker.brokers.sim import MARKETS
    from piker.clearing._paper_accounts import PaperAccounts

    mkt = MARKETS['btcusdt'].mkt
    conf = Path(tempfile.mkdtemp(prefix='piker-bench-persist-'))
    saved = os.environ.get('PIKER_CONFIG_DIR')
    os.environ['PIKER_CONFIG_DIR'] = str(conf)
    probe = AppendProbe(conf / 'probe.log')
    try:
        for i in range(2 * reps):
            t0 = time.perf_counter()
            probe()
            res.add("persist: fsync'd append of a table (floor)", (time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            write_atomic(conf / 'tiny.toml', f'x = {i}\n')
            res.add("persist: tiny fsync'd atomic write", (time.perf_counter() - t0) * 1e3)
        mkts = {mkt.fqme: mkt}
        sizes = {'paper': 0, **({SEEDED: seeded} if seeded else {})}
        accts = PaperAccounts('sim')
        for acct, size in sizes.items():
            if size:
                seed_ledger(acct, size)
            accts.load(acct)
        for i in range(reps):  # the accounts in turn: same disk, same moment
            for acct, size in sizes.items():
                txns = mk_txns(i, i + 1)
                t0 = time.perf_counter()
                accts.book({acct: txns}, mkts)
                if accts.flush() is not None:
                    raise RuntimeError(f'cannot write: {accts.alarm}')
                res.add(f'persist: one fill (ledger + positions) @ {size:>7,} trades',
                        (time.perf_counter() - t0) * 1e3)
        # a position that never goes flat: its file keeps the last fills only
        accts.load('held')
        grown = 0
        for opened in (100, 20_000):
            while grown < opened:
                step = min(1000, opened - grown)
                accts.book({'held': mk_txns(grown, grown + step, held=True)}, mkts)
                grown += step
            accts.flush()
            for _ in range(reps):
                txns = mk_txns(grown, grown + 1, held=True)
                t0 = time.perf_counter()
                accts.book({'held': txns}, mkts)
                if accts.flush() is not None:
                    raise RuntimeError(f'cannot write: {accts.alarm}')
                res.add(f'persist: one fill to a position of {opened:>6,} open fills',
                        (time.perf_counter() - t0) * 1e3)
            grown += reps
        few, many = (pct(res.lat[f'persist: one fill to a position of {k:>6,} open fills'], 50)
                     for k in (100, 20_000))
        res.notes.append(
            f'persist p50 at 20,000 open fills {many:.3f} ms vs at 100 {few:.3f} ms '
            f'(ratio {many / few:.2f}; target <= 1.2): {"met" if many <= 1.2 * few else "MISSED"}'
        )
    finally:
        probe.close()
        shutil.rmtree(conf, ignore_errors=True)
        if saved is None:
            os.environ.pop('PIKER_CONFIG_DIR', None)
        else:
            os.environ['PIKER_CONFIG_DIR'] = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--orders', type=int, default=2000,
                        help='orders per latency phase and per pipelined burst')
    parser.add_argument('--fills', type=int, default=2000, help='marketable orders')
    parser.add_argument('--seed-trades', type=int, default=100_000,
                        help='trades pre-seeded in the second account\'s ledger (0: one account)')
    parser.add_argument('--window', type=int, default=100,
                        help='pipelined orders in flight at once')
    parser.add_argument('--profile', metavar='DIR', default='',
                        help='also profile emsd/paperboi/client; .prof files go here')
    parser.add_argument('--sample', action='store_true',
                        help='also re-run order -> open and pipelined under a sampling '
                             'CPU profiler in emsd/paperboi/client (prints where CPU goes)')
    parser.add_argument('--profile-orders', type=int, default=1000)
    parser.add_argument('--dark-orders', type=int, default=100_000,
                        help='resting orders for the in-process dark-book figures (0: skip)')
    args = parser.parse_args()

    # importing piker also silences tractor's trio warnings (here and in sub-actors)
    from piker.testing import free_port
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    conf = Path(tempfile.mkdtemp(prefix='piker-bench-ems-'))
    (conf / 'brokers.toml').write_text(
        f'[sim]\nseed = 1\nquote_rate = 20.0\naccounts = ["paper", "{SEEDED}"]\n\n'
        '[sim.paper]\nlatency_ms = 0.0\n'
    )
    os.environ['PIKER_CONFIG_DIR'] = str(conf)
    if args.seed_trades:
        secs = seed_ledger(SEEDED, args.seed_trades)
        print(f'seeded the {SEEDED!r} ledger with {args.seed_trades:,} trades in {secs:.1f}s',
              flush=True)
    os.environ['PIKER_REGISTRY_ADDR'] = f'127.0.0.1:{free_port()}'
    print(f'piker EMS bench: {FQME}, paper, {args.orders} orders / {args.fills} fills per '
          f'phase, python {sys.version.split()[0]}, {os.cpu_count()} cpus, '
          f'load avg {os.getloadavg()[0]:.2f}', flush=True)

    res = Results()
    report: list[str] = []
    t0 = time.perf_counter()
    try:
        trio.run(run_tree, args, res, report)
    except BaseException as err:  # print what was measured before the failure
        if not res.lat:
            raise
        done = 'complete' if res.rate else 'PARTIAL'
        print(f'warning: the service tree failed ({type(err).__name__}: {err}); '
              f'the figures below are {done}', file=sys.stderr)
    elapsed = time.perf_counter() - t0
    shutil.rmtree(conf, ignore_errors=True)
    persistence(res, args.seed_trades)

    print()
    print(res.table())
    print()
    for note in [*res.notes, *fill_verdict(res, args.seed_trades)]:
        print(note)
    if 'order -> open' not in res.lat:
        return
    p50 = pct(res.lat['order -> open'], 50)
    floor = pct(res.lat['echo stream round trip (floor)'], 50)
    verdict = 'met' if p50 <= TARGET_OPEN_P50_MS else 'MISSED'
    print(f'order -> open p50 {p50:.3f} ms = {p50 / floor:.1f} x the echo floor '
          f'({floor:.3f} ms); target <= {TARGET_OPEN_P50_MS} ms: {verdict}')
    for line in ratio_verdicts(res):
        print(line)
    print(f'(tree run {elapsed:.1f}s)')
    if report:
        print('\n'.join(report))
    if args.dark_orders:
        import dark  # bench/dark.py: the same measurement, printed here too
        print()
        print('\n'.join(dark.measure(args.dark_orders)))


if __name__ == '__main__':
    main()
