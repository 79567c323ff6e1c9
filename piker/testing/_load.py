"""The EMS load generator: many order clients trading at once against a
busy market (`bench/load.py` is its command line, `tests/test_load_short.py`
runs a short one).

A private service tree (its own PIKER_CONFIG_DIR and a free
PIKER_REGISTRY_ADDR; `[sim] quote_rate` quotes per second per market,
`[sim.paper] latency_ms = 0`): pikerd runs as `piker pikerd`, the clients
in `--procs` client processes (0: in this one), several per process, each
a task with its own `open_ems()` session on one of three sim markets. This
process only orchestrates and checks, so a client process that fails or
wedges is killed and reported, never hangs the bench. Every client paces
`--orders` new orders over `--duration` seconds, each order living its own
life concurrently with the others:

- rest (35%): a limit far from the touch; open; modified once or twice
  (price, sometimes size); cancelled;
- keep (15%): a limit far from the touch left working;
- market (15%): a marketable limit; filled, closed;
- dark (20%): a dark order far away; modified (re-armed); cancelled;
- dark_fill (15%): a dark order at the touch; triggers, goes live, fills
  (cancelled if the market has not come to it within 2 s).

At the end every client cancels every working dialog it sees (its
market's: the cancels of clients sharing a market race each other) and
waits for its own to end. Checked, and printed with the figures:

- each client's own dialogs: exactly one terminal status each, only
  fills after it, `filled + remaining == size`, fills add up;
- zero lost or duplicated dialogs: every oid placed is in emsd's journal
  exactly once, ended, and the journal holds no other; the paper venue
  created at most one venue order per oid (`paper_audit`);
- nothing left working: a fresh session's handshake lists no dialog;
- emsd's RSS (`/proc/<pid>/status` VmRSS) at the start, peak and end.

Also printed, to tell a slow tree from a starved machine: CPU seconds per
process, each daemon's event-loop lag (`_load_rpc`, a monitor loaded into
the daemons) and heartbeat round trips over a connection of their own.
`Config.mix` (`rest=40,dark=60`) changes the order mix; `Config.profile`
(a directory) profiles emsd and paperboi over the load phase (`_ems_rpc`).

`run(cfg)` does the work inside an isolated environment (the caller sets
`PIKER_CONFIG_DIR` and `PIKER_REGISTRY_ADDR`) and returns a `Report`;
client processes run this module (`python -m piker.testing._load
--worker PLANS`). The daemons load the RPC modules `_load_rpc` (and
`_ems_rpc` when profiling) by their dotted names.
"""
from __future__ import annotations

import math
import os
import random
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import trio

from . import _load_rpc
from ._proc import alive, cpu_s, descendants, port_open, rss_kb

FQMES = ('btcusdt.sim', 'ethusdt.sim', 'solusdt.sim')
KINDS = {'rest': 35, 'keep': 15, 'market': 15, 'dark': 20, 'dark_fill': 15}
WAIT = 30.0          # longest wait for one expected status under load
DARK_FILL_WAIT = 2.0  # a touch-level dark order not triggered by then is cancelled
START_GRACE = 6.0    # sessions open (worker processes import, connect) meanwhile
RESULT_TAG = 'LOADRESULT '
# the profiler RPC the daemons load with `Config.profile`
_EMS_RPC = 'piker.testing._ems_rpc'
# the service tree's daemons whose CPU the load's target bounds
TREE = ('brokerd.sim', 'emsd', 'paperboi.sim')
# a session (beyond its plan's duration) or a worker (beyond that) is given
# up on after this long: the bench reports what it saw instead of hanging
SESSION_LIMIT = START_GRACE + 4 * WAIT


class Config(msgspec.Struct, kw_only=True):
    """The knobs of a run (each is a command line option)."""

    clients: int = 20
    orders: int = 250
    duration: float = 30.0
    procs: int = 4  # client processes; 0: the clients run in the bench itself
    quote_rate: float = 1000.0
    seed: int = 1
    mix: str = ','.join(f'{k}={v}' for k, v in KINDS.items())  # kind=weight,...
    profile: str = ''  # a directory: cProfile emsd and paperboi over the load phase
    # sample the daemons' CPU over the load phase: split by part, per quote and order
    sample: bool = False
    # what-if: emsd's venue heartbeat timeout, s (0: piker's own setting)
    venue_watchdog: float = 0.0


class Plan(msgspec.Struct, kw_only=True):
    """One client's part of the load."""

    cid: int
    mix: dict[str, int]
    fqme: str
    orders: int
    duration: float
    seed: int
    start_at: float  # wall clock


class ClientStats(msgspec.Struct, kw_only=True):
    """What one client did and saw."""

    cid: int
    pid: int
    fqme: str
    placed: int = 0
    modifies: int = 0
    cancels: int = 0
    cancel_all: int = 0
    fills: int = 0
    statuses: int = 0
    ends: dict[str, int] = {}
    errors: dict[str, int] = {}   # why own dialogs ended in 'error' (kind: reason)
    kinds: dict[str, int] = {}
    open_ms: list[float] = []
    fill_ms: list[float] = []
    oids: list[str] = []
    problems: list[str] = []
    late_s: float = 0.0     # how far behind its schedule it fell, at worst
    seconds: float = 0.0    # first order to last dialog ended
    cpu_s: float = 0.0      # CPU time of its process during the run (workers)
    lag_p50: float = 0.0    # its process's event loop lag, s (workers)
    lag_p99: float = 0.0
    lag_max: float = 0.0


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered)) - 1))
    return ordered[k]


async def probe(names: list[str], rtts: dict[str, list[float]], every: float = 0.2) -> None:
    """Ping each daemon every `every` s over a connection of its own: the
    round trip shows how long its event loop leaves a heartbeat waiting
    (piker's watchdogs give up at 2 s)."""
    from contextlib import AsyncExitStack

    from ..service import find_service, ping

    async with AsyncExitStack() as stack:
        portals = {name: await stack.enter_async_context(find_service(name)) for name in names}
        while True:
            for name, portal in list(portals.items()):
                if portal is None:
                    continue
                t0 = time.perf_counter()
                try:
                    await portal.run(ping)
                except Exception:  # gone: the bench reports the rest
                    portals[name] = None
                    rtts.setdefault(name, []).append(math.inf)
                    continue
                rtts.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
            await trio.sleep(every)


# ---- the market as this process sees it ------------------------------------

class Market:
    """Latest quotes of the load's markets (one feed per process)."""

    def __init__(self, feed: Any) -> None:
        self.mkts = feed.mkts
        self.last: dict[str, dict] = dict(feed.first_quotes)
        self.quotes: Counter[str] = Counter()
        self.broken = ''
        self._feed = feed

    async def run(self) -> None:
        from ..data import FeedError
        try:
            async for batch in self._feed.stream:
                for fqme, quote in batch.items():
                    self.last[fqme] = quote
                    # conflation merges tick lists: one bid tick per quote
                    self.quotes[fqme] += sum(t.get('type') == 'bid' for t in quote.get('ticks') or ())
        except FeedError as err:  # prices go stale: a finding, not a crash
            self.broken = f'the bench feed of pid {os.getpid()} failed: {err}'

    def price(self, fqme: str, value: float) -> float:
        return self.mkts[fqme].quantize(value, 'price')

    def touch(self, fqme: str) -> tuple[float, float]:
        q = self.last[fqme]
        return q['bid'], q['ask']


# ---- one client ----------------------------------------------------------------

def _refusal(st: Any) -> bool:
    """emsd's answer to a request for a dialog that had already ended
    (e.g. a modify racing another client's cancel-all)."""
    return st.resp == 'error' and st.src == 'emsd' and 'is finished' in st.reason


class Track:
    """Everything one of this client's orders was told, as it arrives."""

    __slots__ = ('kind', 'sent', 'statuses', 'times', 'changed', 'ended')

    def __init__(self, kind: str, sent: float) -> None:
        self.kind = kind
        self.sent = sent
        self.statuses: list[Any] = []
        self.times: list[float] = []
        self.changed = trio.Event()
        self.ended = False

    def add(self, st: Any, now: float) -> None:
        self.statuses.append(st)
        self.times.append(now)
        if st.terminal and not _refusal(st):
            self.ended = True
        self.changed.set()
        self.changed = trio.Event()


def _finished_error() -> type[Exception]:
    from ..clearing import OrderFinishedError
    return OrderFinishedError


class LoadClient:
    """One `open_ems()` session running its plan."""

    def __init__(self, plan: Plan, market: Market, client: Any, trades: Any) -> None:
        self.plan = plan
        self.market = market
        self.client = client
        self.trades = trades
        self.rng = random.Random(plan.seed)
        self.tracks: dict[str, Track] = {}
        self.stats = ClientStats(cid=plan.cid, pid=os.getpid(), fqme=plan.fqme)
        mkt = market.mkts[plan.fqme]
        self.size = float(mkt.size_tick) * 100

    async def pump(self) -> None:
        from ..clearing import Status
        async for msg in self.trades:
            if not isinstance(msg, Status):
                continue
            self.stats.statuses += 1
            track = self.tracks.get(msg.oid)
            if track is not None:
                track.add(msg, time.perf_counter())

    # -- helpers ------------------------------------------------------------

    def passive(self, action: str) -> float:
        """A limit 1.5-2.5% away from the touch: rests, never fills."""
        bid, ask = self.market.touch(self.plan.fqme)
        off = self.rng.uniform(0.015, 0.025)
        return self.market.price(self.plan.fqme, bid * (1 - off) if action == 'buy' else ask * (1 + off))

    async def place(self, kind: str, action: str, price: float, exec_mode: str = 'live') -> str:
        order = self.client.mk_order(action, price, self.size, exec_mode=exec_mode)
        self.tracks[order.oid] = Track(kind, time.perf_counter())
        self.stats.oids.append(order.oid)
        self.stats.placed += 1
        await self.client.send(order)
        return order.oid

    async def until(self, oid: str, pred: Any, since: int = 0) -> tuple[Any, float] | None:
        """The first status of `oid` (from `since`) with `pred`, and when it
        came; None if the dialog ended first."""
        track = self.tracks[oid]
        i = since
        with trio.fail_after(WAIT):
            while True:
                while i < len(track.statuses):
                    st = track.statuses[i]
                    i += 1
                    if pred(st):
                        return st, track.times[i - 1]
                if track.ended:
                    return None
                await track.changed.wait()

    async def end(self, oid: str) -> None:
        await self.until(oid, lambda st: st.terminal and not _refusal(st))

    async def modify(self, oid: str, price: float, size: float | None, resp: str) -> bool:
        """Modify and wait until the dialog reports the new version; False
        if it ended meanwhile."""
        mark = len(self.tracks[oid].statuses)
        try:
            new = await self.client.update(oid, price=price, size=size)
        except _finished_error():   # it ended (e.g. filled) before the modify went out
            return False
        self.stats.modifies += 1
        got = await self.until(oid, lambda st: st.resp == resp and st.req is not None
                               and st.req.price == new.price and st.req.size == new.size,
                               since=mark)
        return got is not None

    async def cancel(self, oid: str) -> None:
        await self.client.cancel(oid)
        self.stats.cancels += 1
        await self.end(oid)

    # -- lives of orders ------------------------------------------------------

    async def life(self, kind: str) -> None:
        try:
            await getattr(self, f'_{kind}')(kind)
        except trio.TooSlowError:
            self.stats.problems.append(f'{kind}: a status did not come within {WAIT}s')

    async def _rest(self, kind: str, keep: bool = False) -> None:
        action = self.rng.choice(('buy', 'sell'))
        oid = await self.place(kind, action, self.passive(action))
        got = await self.until(oid, lambda st: st.resp == 'open')
        if got is None:
            return  # cancelled by another client's cancel-all already
        self.stats.open_ms.append((got[1] - self.tracks[oid].sent) * 1e3)
        if keep:
            return
        for _ in range(self.rng.choice((1, 1, 2))):
            await trio.sleep(self.rng.uniform(0.05, 0.5))
            size = self.size * 2 if self.rng.random() < 0.3 else None
            if not await self.modify(oid, self.passive(action), size, 'open'):
                return
        await trio.sleep(self.rng.uniform(0.05, 0.5))
        await self.cancel(oid)

    async def _keep(self, kind: str) -> None:
        await self._rest(kind, keep=True)

    async def _market(self, kind: str) -> None:
        action = self.rng.choice(('buy', 'sell'))
        bid, ask = self.market.touch(self.plan.fqme)
        price = self.market.price(self.plan.fqme, ask * 1.003 if action == 'buy' else bid * 0.997)
        oid = await self.place(kind, action, price)
        got = await self.until(oid, lambda st: st.resp == 'fill')
        if got is not None:
            self.stats.fill_ms.append((got[1] - self.tracks[oid].sent) * 1e3)
        await self.end(oid)

    async def _dark(self, kind: str) -> None:
        action = self.rng.choice(('buy', 'sell'))
        oid = await self.place(kind, action, self.passive(action), exec_mode='dark')
        if await self.until(oid, lambda st: st.resp == 'dark_open') is None:
            return
        await trio.sleep(self.rng.uniform(0.05, 0.5))
        if not await self.modify(oid, self.passive(action), None, 'dark_open'):
            return
        await trio.sleep(self.rng.uniform(0.05, 0.5))
        await self.cancel(oid)

    async def _dark_fill(self, kind: str) -> None:
        action = self.rng.choice(('buy', 'sell'))
        bid, ask = self.market.touch(self.plan.fqme)
        # at the touch: fires as soon as the market ticks through it
        oid = await self.place(kind, action, bid if action == 'buy' else ask, exec_mode='dark')
        with trio.move_on_after(DARK_FILL_WAIT):
            await self.end(oid)
            return
        await self.cancel(oid)

    # -- the plan -------------------------------------------------------------

    async def run(self) -> ClientStats:
        plan = self.plan
        kinds = list(plan.mix)
        weights = list(plan.mix.values())
        interval = plan.duration / plan.orders
        async with trio.open_nursery() as pump_n:
            pump_n.start_soon(self.pump)
            await trio.sleep(max(0.0, plan.start_at - time.time()))
            t0 = time.perf_counter()
            async with trio.open_nursery() as n:
                for i in range(plan.orders):
                    due = t0 + i * interval
                    now = time.perf_counter()
                    if due > now:
                        await trio.sleep(due - now)
                    else:
                        self.stats.late_s = max(self.stats.late_s, now - due)
                    kind = self.rng.choices(kinds, weights)[0]
                    self.stats.kinds[kind] = self.stats.kinds.get(kind, 0) + 1
                    n.start_soon(self.life, kind)
            # cancel-all: every dialog this client sees (its market's)
            oids = await self.client.cancel_all()
            self.stats.cancel_all = len(oids)
            with trio.move_on_after(WAIT) as cs:
                for oid in self.stats.oids:
                    await self.end(oid)
            if cs.cancelled_caught:
                left = sum(not t.ended for t in self.tracks.values())
                self.stats.problems.append(f'{left} dialog(s) still working {WAIT}s after cancel-all')
            self.stats.seconds = time.perf_counter() - t0
            pump_n.cancel_scope.cancel()
        self.check()
        return self.stats

    def check(self) -> None:
        """The invariants of this client's own dialogs (see module doc)."""
        stats = self.stats
        for oid, track in self.tracks.items():
            sts = track.statuses
            story = f'{oid[:8]} {track.kind}: {[s.resp for s in sts]}'
            ends = [i for i, s in enumerate(sts) if s.terminal and not _refusal(s)]
            if len(ends) != 1:
                stats.problems.append(f'{len(ends)} terminal statuses: {story}')
                continue
            end = sts[ends[0]]
            stats.ends[end.resp] = stats.ends.get(end.resp, 0) + 1
            if end.resp == 'error':
                why = f'{track.kind}: {end.reason[:90]}'
                stats.errors[why] = stats.errors.get(why, 0) + 1
            if any(s.resp != 'fill' and not _refusal(s) for s in sts[ends[0] + 1:]):
                stats.problems.append(f'status after the end: {story}')
            fills = [s for s in sts if s.resp == 'fill']
            stats.fills += len(fills)
            with_req = [s for s in sts if s.req is not None and not _refusal(s)]
            for s in with_req:
                if not math.isclose(s.filled + s.remaining, s.req.size, abs_tol=1e-9):
                    stats.problems.append(f'filled + remaining != size: {story}')
                    break
            total = sum(s.brokerd_msg['size'] for s in fills)
            if with_req and not math.isclose(total, with_req[-1].filled, abs_tol=1e-9):
                stats.problems.append(f'fills {total} != filled {with_req[-1].filled}: {story}')


async def run_clients(
    plans: list[Plan], market: Market, in_worker: bool = False,
) -> list[ClientStats]:
    """Open a session per plan (concurrently) and run them all.

    Every session stays open until all of this process's clients are done,
    so none closes while emsd still streams it the statuses of the others'
    dialogs: in tractor 0.1.0a5 that can break the closing session's
    connection (its message loop raises when a full stream's consumer goes
    away mid-send). A teardown race this bench does not mean to measure.
    """
    from ..clearing import open_ems

    results: list[ClientStats] = []
    finished = 0
    all_done = trio.Event()

    def done() -> None:
        nonlocal finished
        finished += 1
        if finished == len(plans):
            all_done.set()

    async def one(plan: Plan) -> None:
        lc: LoadClient | None = None
        err: BaseException | None = None
        # a session wedged in teardown must not hang the bench
        with trio.move_on_after(SESSION_LIMIT + plan.duration) as cs:
            try:
                async with open_ems(plan.fqme, mode='paper') as (client, trades, *_):
                    lc = LoadClient(plan, market, client, trades)
                    results.append(await lc.run())
                    done()
                    await all_done.wait()
            except Exception as exc:  # a lost session is a finding, not a crash
                err = exc
        if cs.cancelled_caught and err is None:
            err = TimeoutError(f'session still open after {SESSION_LIMIT + plan.duration:.0f}s')
        if err is not None:
            stats = lc.stats if lc is not None else ClientStats(
                cid=plan.cid, pid=os.getpid(), fqme=plan.fqme)
            stats.problems.append(f'session failed: {type(err).__name__}: {err}'[:300])
            if stats not in results:
                if lc is not None:
                    lc.check()
                results.append(stats)
                done()

    async with trio.open_nursery() as n:
        for plan in plans:
            n.start_soon(one, plan)
    if market.broken and in_worker:
        for stats in results:
            stats.problems.append(market.broken)
    return results


async def _with_market(fn: Any) -> Any:
    from ..data import open_feed
    async with open_feed(list(FQMES)) as feed, trio.open_nursery() as n:
        market = Market(feed)
        n.start_soon(market.run)
        out = await fn(market)
        n.cancel_scope.cancel()
        return out


# ---- worker processes ------------------------------------------------------------

def worker(plans_json: str) -> None:
    """A client process: joins the running tree, runs its plans, prints
    the results as one tagged JSON line."""
    from ..service import maybe_open_pikerd

    plans = msgspec.json.decode(plans_json, type=list[Plan])

    async def main() -> list[ClientStats]:
        async with maybe_open_pikerd():
            await _load_rpc.lag_start()
            stats = await _with_market(lambda market: run_clients(plans, market, True))
            lag = await _load_rpc.lag_stop()
            for c in stats:
                c.lag_p50, c.lag_p99, c.lag_max = lag['p50'], lag['p99'], lag['max']
            return stats

    cpu0 = cpu_s(os.getpid())
    stats = trio.run(main)
    for c in stats:
        c.cpu_s = cpu_s(os.getpid()) - cpu0
    print(RESULT_TAG + msgspec.json.encode(stats).decode(), flush=True)


async def run_worker(plans: list[Plan], out: list[ClientStats], errors: list[str]) -> None:
    cmd = [sys.executable, '-m', __name__, '--worker', msgspec.json.encode(plans).decode()]
    limit = SESSION_LIMIT + max(p.duration for p in plans) + WAIT
    proc = None
    with trio.move_on_after(limit):  # cancelling run_process kills the worker
        proc = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False)
    if proc is None:
        errors.append(f'worker (clients {[p.cid for p in plans]}) still running after '
                      f'{limit:.0f}s: killed')
        return
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode or not lines:
        tail = proc.stderr.decode().strip().splitlines()[-5:]
        errors.append(f'worker (clients {[p.cid for p in plans]}) failed, rc={proc.returncode}: '
                      + ' | '.join(tail))
        return
    out += msgspec.json.decode(lines[-1][len(RESULT_TAG):], type=list[ClientStats])


# ---- the run -----------------------------------------------------------------------

class Report(msgspec.Struct, kw_only=True):
    cfg: Config
    clients: list[ClientStats]
    problems: list[str]
    rss_kb: tuple[int, int, int]      # start, peak, end
    quotes_per_s: dict[str, float]
    seconds: float
    journal_dialogs: int
    venue_orders: int
    warmup: int = 0                      # warm-up dialogs (in the journal too)
    cpu_wall: float = 0.0                # wall seconds `cpu_s` was measured over
    cpu_s: dict[str, float]              # per process, during the load phase
    ping_ms: dict[str, list[float]]      # per daemon: p50, p99, max heartbeat RTT
    profiles: list[str] = []             # with --profile: hot spots per daemon
    lag: dict[str, dict] = {}            # per daemon: its event loop's lag (_load_rpc)

    def table(self) -> str:
        rows = [f'{"client":>6} {"pid":>7} {"market":<12}{"placed":>7}{"modify":>7}'
                f'{"cancel":>7}{"c-all":>6}{"fills":>6}{"statuses":>9}{"late s":>7}  ends']
        for c in sorted(self.clients, key=lambda c: c.cid):
            ends = ' '.join(f'{k}={v}' for k, v in sorted(c.ends.items()))
            rows.append(f'{c.cid:>6} {c.pid:>7} {c.fqme:<12}{c.placed:>7}{c.modifies:>7}'
                        f'{c.cancels:>7}{c.cancel_all:>6}{c.fills:>6}{c.statuses:>9}'
                        f'{c.late_s:>7.2f}  {ends}')
        tot = lambda f: sum(getattr(c, f) for c in self.clients)  # noqa: E731
        rows.append(f'{"all":>6} {"":>7} {"":<12}{tot("placed"):>7}{tot("modifies"):>7}'
                    f'{tot("cancels"):>7}{tot("cancel_all"):>6}{tot("fills"):>6}'
                    f'{tot("statuses"):>9}')
        opens = [x for c in self.clients for x in c.open_ms]
        fills = [x for c in self.clients for x in c.fill_ms]
        start, peak, end = self.rss_kb
        placed = tot('placed')
        secs = max(self.cpu_wall or self.seconds, 1e-9)
        tree = sum(self.cpu_s.get(k, 0) for k in TREE) / secs
        rows += [
            '',
            f'order -> open under load: n={len(opens)} p50 {pct(opens, 50):.2f} ms, '
            f'p99 {pct(opens, 99):.2f} ms, max {max(opens, default=math.nan):.2f} ms',
            f'marketable order -> fill: n={len(fills)} p50 {pct(fills, 50):.2f} ms, '
            f'p99 {pct(fills, 99):.2f} ms',
            f'emsd RSS: start {start / 1024:.1f} MB, peak {peak / 1024:.1f} MB, '
            f'end {end / 1024:.1f} MB ({(end - start) / 1024:+.1f} MB)',
            'quotes/s seen per market: ' + ', '.join(
                f'{k} {v:,.0f}' for k, v in sorted(self.quotes_per_s.items())),
            'CPU seconds in the load phase: ' + ', '.join(
                f'{k} {v:.1f}' for k, v in self.cpu_s.items()),
            'event loop lag p50/p99/max ms: ' + ', '.join(
                f'{k} {v["p50"] * 1e3:.1f}/{v["p99"] * 1e3:.0f}/{v["max"] * 1e3:.0f}'
                for k, v in self.lag.items() if v.get('n')),
            'heartbeat RTT p50/p99/max ms: ' + ', '.join(
                f'{k} {a:.1f}/{b:.1f}/{c:.0f}' for k, (a, b, c) in self.ping_ms.items()),
            f'tree CPU (brokerd + emsd + paperboi): {tree:.2f} core, CPU-seconds per wall '
            f'second over {secs:.1f} s (' + ', '.join(
                f'{k} {self.cpu_s.get(k, 0) / secs:.2f}' for k in TREE) + ')',
            f'dialogs: {placed} placed (+ {self.warmup} warm-up: each market, live and '
            f'dark), {self.journal_dialogs} in the journal, '
            f'{self.venue_orders} venue orders; {len(self.problems)} problem(s)',
            f'load phase {self.seconds:.1f} s ({placed / max(self.seconds, 1e-9):,.0f} orders/s, '
            f'{self.cfg.clients} clients in {self.cfg.procs or 1} process(es))',
        ]
        errors: Counter[str] = Counter()
        for c in self.clients:
            errors.update(c.errors)
        for why, n in errors.most_common(8):
            rows.append(f'ERRORS: {n} x {why}')
        for name, v in self.lag.items():
            for t, lag in v.get('stalls', [])[:10]:
                rows.append(f'STALL: {name} event loop stalled {lag:.2f} s at '
                            f'{time.strftime("%H:%M:%S", time.localtime(t))}')
        # problems grouped by kind (ids and numbers masked), most frequent first
        kinds: Counter[str] = Counter(
            re.sub(r"'[^']*'|\[[^\]]*\]|[0-9a-f-]{36}|\b[0-9a-f]{8}\b|\d+(\.\d+)?",
                   '#', p)[:150]
            for p in self.problems
        )
        for kind, n in kinds.most_common(15):
            rows.append(f'PROBLEM: {n} x {kind}')
        return '\n'.join(rows)


def parse_mix(text: str) -> dict[str, int]:
    """'rest=35,market=15' -> {'rest': 35, 'market': 15} (kinds checked)."""
    mix = {}
    for part in text.split(','):
        kind, _, weight = part.partition('=')
        if kind.strip() not in KINDS:
            raise ValueError(f'unknown order kind {kind!r}: use {", ".join(KINDS)}')
        mix[kind.strip()] = int(weight)
    return mix


def plans_for(cfg: Config, start_at: float) -> list[Plan]:
    mix = parse_mix(cfg.mix)
    return [
        Plan(cid=i, mix=mix, fqme=FQMES[i % len(FQMES)], orders=cfg.orders, duration=cfg.duration,
             seed=cfg.seed * 1000 + i, start_at=start_at)
        for i in range(cfg.clients)
    ]


async def _load(cfg: Config) -> Report:
    from contextlib import AsyncExitStack

    from ..brokers import brokerd_spec
    from ..clearing._daemons import EMSD, PAPERBOI
    from ..service import open_daemon

    # the daemons are spawned first, with the bench's RPC modules enabled
    extra = [_load_rpc.__name__, *([_EMS_RPC] if cfg.profile or cfg.sample else [])]
    async with AsyncExitStack() as stack:
        portals = {}
        for spec in (brokerd_spec('sim', extra_modules=extra),
                     EMSD.spec(extra_modules=extra), PAPERBOI.spec('sim', extra_modules=extra)):
            portals[spec.name] = await stack.enter_async_context(open_daemon(spec))
        return await _with_market(lambda market: load_phase(cfg, market, portals))


async def load_phase(cfg: Config, market: Market, portals: dict[str, Any]) -> Report:
    from ..brokers import daemon_name
    from ..clearing import open_ems
    from ..clearing._client import wait_for_status
    from ..clearing._daemons import EMSD, PAPERBOI
    from ..clearing._ems_admin import flush_journal
    from ..clearing._journal import Journal
    from ..clearing._paper_engine import paper_audit
    from ..service import find_service, list_services, open_pikerd_portal, ping

    if cfg.venue_watchdog:
        old = await portals[EMSD.name()].run(
            _load_rpc.set_module_attr, module='piker.clearing._relays',
            name='VENUE_WATCHDOG_TIMEOUT', value=cfg.venue_watchdog)
        print(f'what-if: emsd venue watchdog {old} s -> {cfg.venue_watchdog} s', flush=True)
    # warm up: daemons spawned, the venue's and emsd's feeds of every
    # market up, before the clock starts
    warm: list[str] = []
    for fqme in FQMES:
        async with open_ems(fqme) as (client, trades, *_):
            bid, _ = market.touch(fqme)
            for mode in ('live', 'dark'):
                order = client.mk_order('buy', market.price(fqme, bid * 0.9), 1.0, exec_mode=mode)
                await client.send(order)
                warm.append(order.oid)
                await wait_for_status(trades, order.oid, {'open', 'dark_open'}, timeout=WAIT)
                await client.cancel(order.oid)
                await wait_for_status(trades, order.oid, 'canceled', timeout=WAIT)
    services = await list_services()
    emsd_pid = services[EMSD.name()].pid
    assert emsd_pid, services
    pids = {name: info.pid for name, info in services.items() if info.pid}
    pids['bench'] = os.getpid()
    async with open_pikerd_portal() as portal:
        pids['pikerd'] = await portal.run(ping)
    cpu0 = {name: cpu_s(pid) for name, pid in pids.items()}
    cpu_t0 = time.perf_counter()
    rtts: dict[str, list[float]] = {}
    rss_start = peak = rss_kb(emsd_pid)
    problems: list[str] = []
    results: list[ClientStats] = []

    plans = plans_for(cfg, time.time() + (START_GRACE if cfg.procs else 0.5))
    # round robin: each process gets clients of every market
    parts = [plans[i::cfg.procs] for i in range(cfg.procs)] if cfg.procs else []
    local = [] if cfg.procs else plans
    profiled = {k: p for k, p in portals.items() if cfg.profile and k != daemon_name('sim')}
    if profiled:
        from . import _ems_rpc
        Path(cfg.profile).mkdir(parents=True, exist_ok=True)
        for portal in profiled.values():
            await portal.run(_ems_rpc.profile_start)
    if cfg.sample:
        from . import _ems_rpc
        for portal in portals.values():
            await portal.run(_ems_rpc.sample_start)
    for portal in portals.values():
        await portal.run(_load_rpc.lag_start)
    await _load_rpc.lag_start()  # this process: the local clients
    q0 = Counter(market.quotes)
    t0 = time.perf_counter()
    profiles: list[str] = []
    async with trio.open_nursery() as n:

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_kb(emsd_pid))
                await trio.sleep(0.25)

        n.start_soon(sample)
        n.start_soon(probe, sorted(services), rtts)
        async with trio.open_nursery() as clients_n:
            for part in parts:
                if part:
                    clients_n.start_soon(run_worker, part, results, problems)

            async def local_clients() -> None:
                results.extend(await run_clients(local, market))

            if local:
                clients_n.start_soon(local_clients)
        n.cancel_scope.cancel()
    quotes = {k: (market.quotes[k] - q0[k]) / (time.perf_counter() - t0) for k in FQMES}
    if cfg.sample:
        # the same wall span as the quotes counted (the clients' CPU aside)
        per = {'quote': float(sum(market.quotes[k] - q0[k] for k in FQMES)),
               'order': float(sum(c.placed for c in results))}
        for name, portal in portals.items():
            with trio.move_on_after(30):
                text = await portal.run(_ems_rpc.sample_stop, per=per)
                profiles.append(f'===== {name}: CPU split (quotes are all markets\'; '
                                f'us/order is per placed order) =====\n{text}')
    # the load phase: from the common start to the last client's end (or,
    # if no client got that far, to now)
    seconds = max((c.seconds for c in results), default=0.0) or (
        time.time() - plans[0].start_at if plans else 0.0)
    rss_end = rss_kb(emsd_pid)
    lags: dict[str, dict] = {}
    for name, portal in portals.items():
        with trio.move_on_after(5):  # a daemon the load broke must not hang the report
            lags[name] = await portal.run(_load_rpc.lag_stop)
    lags['bench'] = await _load_rpc.lag_stop()
    for c in results:
        if c.lag_max:
            lags.setdefault(f'worker {c.pid}', {'n': 1, 'p50': c.lag_p50, 'p99': c.lag_p99,
                                                'max': c.lag_max})
    for name, portal in profiled.items():
        with trio.move_on_after(30):
            text = await portal.run(
                _ems_rpc.profile_stop, path=str(Path(cfg.profile) / f'load-{name}.prof'))
            profiles.append(f'===== {name} =====\n{text}')
    cpu = {name: cpu_s(pid) - cpu0[name] for name, pid in pids.items()}
    cpu_wall = time.perf_counter() - cpu_t0
    for c in results:
        if c.cpu_s:
            cpu[f'worker {c.pid}'] = c.cpu_s

    # ---- global checks
    if market.broken:
        problems.append(market.broken)
    placed = [oid for c in results for oid in c.oids]
    dupes = [oid for oid, k in Counter(placed).items() if k > 1]
    if dupes:
        problems.append(f'{len(dupes)} oid(s) placed twice: {dupes[:3]}')
    expected = set(placed) | set(warm)
    for c in results:
        problems += [f'client {c.cid}: {p}' for p in c.problems]
    audit: dict[str, list[str]] = {}
    with trio.move_on_after(WAIT) as cs:
        async with find_service(PAPERBOI.name('sim')) as paperboi:
            audit = await paperboi.run(paper_audit, broker='sim') if paperboi else {}
    if cs.cancelled_caught:
        problems.append('paperboi did not answer its audit')
    many = {oid: r for oid, r in audit.items() if len(r) > 1}
    if many:
        problems.append(f'{len(many)} oid(s) with several venue orders: {list(many)[:3]}')
    if stray := set(audit) - expected:
        problems.append(f'{len(stray)} venue order(s) of unknown oids: {list(stray)[:3]}')

    # emsd commits its journal a moment behind what it publishes
    with trio.move_on_after(WAIT) as cs:
        async with find_service(EMSD.name()) as emsd:
            if emsd is not None:
                await emsd.run(flush_journal)
    if cs.cancelled_caught:
        problems.append('emsd did not flush its journal')

    def read_journal() -> list[Any]:
        with Journal.open(readonly=True) as journal:
            return journal.history(limit=None, events=True)

    records = await trio.to_thread.run_sync(read_journal, cancellable=True)
    seen = Counter(r.oid for r in records)
    if twice := [oid for oid, k in seen.items() if k > 1]:
        problems.append(f'{len(twice)} oid(s) twice in the journal: {twice[:3]}')
    if lost := expected - set(seen):
        problems.append(f'{len(lost)} oid(s) missing from the journal: {list(lost)[:3]}')
    if extra := set(seen) - expected:
        problems.append(f'{len(extra)} unknown oid(s) in the journal: {list(extra)[:3]}')
    for rec in records:
        ends = [s for s in rec.events if s.terminal and not _refusal(s)]
        if rec.active or len(ends) != 1:
            problems.append(f'journal: {rec.oid} active={rec.active} with '
                            f'{len(ends)} terminal events ({rec.phase})')
    for fqme in FQMES:
        with trio.move_on_after(WAIT) as cs:
            async with open_ems(fqme) as (_, _, _, _, dialogs):
                if dialogs:
                    problems.append(f'{len(dialogs)} dialog(s) of {fqme} still working at the end')
        if cs.cancelled_caught:
            problems.append(f'no handshake from emsd for {fqme} at the end')
    return Report(
        cfg=cfg, clients=results, problems=problems,
        rss_kb=(rss_start, max(peak, rss_end), rss_end), quotes_per_s=quotes, seconds=seconds,
        journal_dialogs=len(seen), venue_orders=sum(len(r) for r in audit.values()),
        warmup=len(warm), cpu_wall=cpu_wall,
        cpu_s=cpu, profiles=profiles, lag=lags,
        ping_ms={k: [pct(v, 50), pct(v, 99), max(v)] for k, v in sorted(rtts.items())},
    )


def run(cfg: Config) -> Report:
    """Run the load in the isolated environment the caller set up
    (`PIKER_CONFIG_DIR`, `PIKER_REGISTRY_ADDR`); see the module doc.

    pikerd runs as a process of its own (`piker pikerd`), as it would for
    a user: the bench is a client, and reports even if the tree fails.
    A process of the tree that outlives its teardown is killed, and listed
    among the report's problems.
    """
    import subprocess

    import tomli_w

    from ..config import get_config_dir, get_registry_addr
    from ..service import maybe_open_pikerd

    confdir = get_config_dir()
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / 'brokers.toml').write_text(tomli_w.dumps({'sim': {
        'seed': cfg.seed, 'quote_rate': cfg.quote_rate, 'paper': {'latency_ms': 0.0},
    }}))
    host, port = get_registry_addr()
    pikerd = subprocess.Popen([str(Path(sys.executable).parent / 'piker'), 'pikerd'])
    try:
        deadline = time.monotonic() + 30
        while not port_open(host, port):
            if pikerd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f'pikerd did not come up (exit code {pikerd.poll()})')
            time.sleep(0.05)

        async def main() -> Report:
            async with maybe_open_pikerd():
                with trio.fail_after(cfg.duration + SESSION_LIMIT + 2 * WAIT + 60):
                    return await _load(cfg)

        report = trio.run(main)
    finally:
        tree = descendants(pikerd.pid)
        pikerd.send_signal(signal.SIGINT)
        try:
            pikerd.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pikerd.kill()
            pikerd.wait()
        left = sorted(pid for pid in tree if alive(pid))
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    if left:
        report.problems.append(f'processes outlived the tree (killed): {left}')
    return report


if __name__ == '__main__':
    # a client process of `run_worker()`
    if len(sys.argv) != 3 or sys.argv[1] != '--worker':
        raise SystemExit(f'usage: python -m {__spec__.name} --worker PLANS_JSON')
    worker(sys.argv[2])
