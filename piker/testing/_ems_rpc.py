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
        self.total = 0
        self.inclusive: dict[str, int] = {}
        self.own: dict[str, int] = {}

    def _on_signal(self, signum: int, frame: object) -> None:
        self.total += 1
        seen: set[str] = set()
        leaf = ''
        f = frame
        while f is not None:
            code = f.f_code  # type: ignore[attr-defined]
            name = f'{_short(code.co_filename)}:{code.co_name}'
            if not leaf:
                leaf = name
            if name not in seen:
                seen.add(name)
                self.inclusive[name] = self.inclusive.get(name, 0) + 1
            f = f.f_back  # type: ignore[attr-defined]
        self.own[leaf] = self.own.get(leaf, 0) + 1

    def start(self) -> None:
        import signal
        signal.signal(signal.SIGPROF, self._on_signal)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        import signal
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)

    def report(self, top: int) -> str:
        ms = self.interval * 1e3
        lines = [f'{self.total} samples of {ms:g} ms CPU = {self.total * ms:.0f} ms CPU',
                 f'{"self %":>7} {"incl %":>7}  function']
        for table, label in ((self.own, 'innermost'), (self.inclusive, 'inclusive')):
            lines.append(f'-- by {label}:')
            for name, _ in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
                lines.append(f'{100 * self.own.get(name, 0) / max(self.total, 1):>7.1f} '
                             f'{100 * self.inclusive.get(name, 0) / max(self.total, 1):>7.1f}  {name}')
        return '\n'.join(lines)


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


async def sample_stop(top: int = 40) -> str:
    """Stop sampling; return the table."""
    global _sampler
    if _sampler is None:
        return 'sampler was not started'
    _sampler.stop()
    text = _sampler.report(top)
    _sampler = None
    return text
