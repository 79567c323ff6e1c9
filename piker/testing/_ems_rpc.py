"""RPC helpers the benches load into actors they spawn (not piker API).

- `echo`: a trivial bidirectional stream, the floor an EMS round trip is
  compared with (same tractor IPC, no piker code);
- `profile_start` / `profile_stop`: cProfile of the whole trio thread of
  an actor (emsd, paperboi) for the duration of one benchmark phase. The
  bench pre-spawns those daemons with this module enabled, so no daemon
  code needs a profiling hook.

Used by `bench/ems.py` and the load generator (`_load`, when profiling);
daemons enable it by its dotted name, `piker.testing._ems_rpc`.
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import time

import tractor

_profiler: cProfile.Profile | None = None


@tractor.context
async def echo(ctx: tractor.Context) -> None:
    """Send every message straight back until the caller closes the stream."""
    await ctx.started()
    async with ctx.open_stream() as stream:
        async for msg in stream:
            await stream.send(msg)


async def profile_start() -> None:
    """Start profiling this actor's trio thread (all of its tasks)."""
    global _profiler
    # CPU time of this thread, not wall time: a task preempted by the
    # other processes of a busy box (a socket send waking its receiver)
    # is not charged for their turn
    _profiler = cProfile.Profile(time.thread_time)
    _profiler.enable()


def summary(profiler: cProfile.Profile, top: int) -> str:
    """Top functions by own time, then piker's by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats('tottime').print_stats(top)
    stats.sort_stats('cumtime').print_stats('piker/', top)
    return out.getvalue()


async def profile_stop(path: str, top: int = 15) -> str:
    """Stop profiling, dump the stats to `path`; return `summary()`."""
    global _profiler
    if _profiler is None:
        return 'profiler was not started'
    _profiler.disable()
    _profiler.dump_stats(path)
    text = summary(_profiler, top)
    _profiler = None
    return text


# ---- a sampling CPU profiler (no py-spy, no per-call overhead) ------------------

class _Sampler:
    """Every `interval` seconds of this process's CPU time (`ITIMER_PROF`),
    the signal handler (run in the main thread, at the bytecode it
    interrupted) counts the main thread's stack: one sample per function
    on it (inclusive) and one for its innermost piker/tractor/trio frame
    (self). CPU the process spent in other threads (the journal's
    checkpointer...) lands on wherever the main thread was: usually its
    idle `epoll.poll`.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.cpu0 = 0.0
        self.cpu = 0.0  # process CPU seconds while sampling
        self.total = 0
        self.inclusive: dict[str, int] = {}
        self.own: dict[str, int] = {}
        self.cats: dict[str, int] = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        self.total += 1
        seen: set[str] = set()
        leaf = ''
        cat = ''
        f = frame
        while f is not None:
            code = f.f_code  # type: ignore[attr-defined]
            name = f'{_short(code.co_filename)}:{code.co_name}'
            if not leaf:
                leaf = name
                if name in _IDLE:
                    cat = 'idle (epoll), other threads'
            if not cat:
                cat = _category(name)
            if name not in seen:
                seen.add(name)
                self.inclusive[name] = self.inclusive.get(name, 0) + 1
            f = f.f_back  # type: ignore[attr-defined]
        self.own[leaf] = self.own.get(leaf, 0) + 1
        cat = cat or 'trio scheduler, other'
        self.cats[cat] = self.cats.get(cat, 0) + 1

    def start(self) -> None:
        import signal
        self.cpu0 = _cpu()
        signal.signal(signal.SIGPROF, self._on_signal)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        import signal
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
        self.cpu = _cpu() - self.cpu0

    def split(self, per: dict[str, float]) -> str:
        """CPU by category (`CATEGORIES`), as a share and in us per unit of
        each of `per` (e.g. {'quote': 90_000, 'order': 5_000})."""
        total = max(self.total, 1)
        head = f'{"CPU by part":<34}{"share":>7}' + ''.join(f'{"us/" + k:>11}' for k in per)
        lines = [f'{self.total} samples over {self.cpu * 1e3:.0f} ms of process CPU', head]
        for cat, n in sorted(self.cats.items(), key=lambda kv: -kv[1]):
            share = n / total
            lines.append(f'{cat:<34}{100 * share:>6.1f}%' + ''.join(
                f'{share * self.cpu / max(count, 1) * 1e6:>11.1f}' for count in per.values()))
        lines.append(f'{"all":<34}{100:>6.1f}%' + ''.join(
            f'{self.cpu / max(count, 1) * 1e6:>11.1f}' for count in per.values()))
        return '\n'.join(lines)

    def report(self, top: int) -> str:
        # the kernel fires ITIMER_PROF on its accounting ticks: fewer
        # samples than asked for, each worth the same CPU on average
        lines = [f'{self.total} samples over {self.cpu * 1e3:.0f} ms of process CPU',
                 f'{"self %":>7} {"incl %":>7}  function']
        for table, label in ((self.own, 'innermost'), (self.inclusive, 'inclusive')):
            lines.append(f'-- by {label}:')
            for name, _ in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
                lines.append(f'{100 * self.own.get(name, 0) / max(self.total, 1):>7.1f} '
                             f'{100 * self.inclusive.get(name, 0) / max(self.total, 1):>7.1f}  {name}')
        return '\n'.join(lines)


# what a sample is charged to: the first category (in this order) whose
# pattern one of its frames matches, innermost frame first. msgspec and
# sqlite are C: their time shows in the Python frame calling them (the
# decode wrapper `_stamped`, `_wire._send`'s encode, `_journal.record`)
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('codec', ('clearing/_messages.py', '_tractor_fixes.py:_stamped', '_wire.py:_send',
               'types.py:to_builtins')),
    ('journal', ('clearing/_journal.py',)),
    ('dark book', ('clearing/_dark.py', 'clearing/_dark_feeds.py')),
    ('fan-out', ('clearing/_fanout.py', 'brokers/_feedbus.py', 'data/_hub.py')),
    ('dialogs, risk, effects', ('clearing/_dialogs.py', 'clearing/_risk', 'clearing/_effects.py',
                                'clearing/_intake.py', 'clearing/_reconcile.py',
                                'clearing/_relays.py', 'clearing/_ems.py')),
    ('paper venue', ('clearing/_paper', 'clearing/_matching.py', 'accounting/')),
    ('market (sim backend)', ('brokers/sim/',)),
    ('IPC (tractor, sockets, buffers)', ('tractor/', 'trio/_socket.py', 'trio/_highlevel_socket.py',
                                         'service/', 'piker/buffers.py', 'tricycle/',
                                         'trio/_channel.py')),
)
_IDLE = {'trio/_core/_io_epoll.py:get_events'}


def _category(name: str) -> str:
    for cat, patterns in CATEGORIES:
        if any(p in name for p in patterns):
            return cat
    return ''


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _short(path: str) -> str:
    for marker in ('site-packages/', 'piker/', 'lib/python3'):
        i = path.rfind(marker)
        if i >= 0:
            return path[i + len(marker):] if marker != 'piker/' else path[i:]
    return path


_sampler: _Sampler | None = None


async def sample_start(interval: float = 0.0005) -> None:
    """Start sampling this actor's CPU (see `_Sampler`)."""
    global _sampler
    _sampler = _Sampler(interval)
    _sampler.start()


async def sample_stop(top: int = 40, per: dict[str, float] | None = None) -> str:
    """Stop sampling; return the table (with `per`: the split by category
    only, see `_Sampler.split`)."""
    global _sampler
    if _sampler is None:
        return 'sampler was not started'
    _sampler.stop()
    text = _sampler.split(per) if per is not None else _sampler.report(top)
    _sampler = None
    return text
