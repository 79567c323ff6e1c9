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
    _profiler = cProfile.Profile()
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
