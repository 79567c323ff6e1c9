"""One clock for brokerd's periodic work: its tasks wake together, cheaply.

Why: a busy brokerd runs many periodic tasks (a sim market's walk per
market, a coalescing sender per feed session), and in trio a timed sleep
is expensive: a cancel scope, a deadline, and a `Cancelled` raised through
the sleeping coroutine and caught again, ~20 us of Python each, besides
the process wake-up each separate deadline can cost. At 1,000 quotes/s on
three markets and seven sessions the sleeps alone were a quarter of
brokerd's CPU.

`tick()` parks the caller until the next instant of one shared grid
(`GRID` seconds apart, trio time); `wait_until(t)` until the first
instant at or after `t`. One system task per trio run sleeps
from instant to instant and wakes every task parked meanwhile at once: a
parking lot unpark per waiter instead of a timed sleep each, and one
wake-up of the process per tick for all of them. The task runs only
while somebody waits: a tick with no waiter ends it, the next `tick()`
starts it again.

`GRID` is brokerd's busy-session coalescing window (`_brokerd.COALESCE`)
and what a fast sim market's walk paces itself by; both stay exact in
rate (a sender ships what gathered, a walk emits every quote that is
due), only their instants move, by less than a tick.
"""
from __future__ import annotations

import math

import trio

# 100 frames/s at most per busy feed session: each frame costs every
# receiver a wake-up and four task switches (tractor's loop, the feed
# hub, each consumer), whatever it carries; 10 ms is what a chart's
# 60 Hz or a trigger can tell apart (see docs/perf.md, third round)
GRID = 0.010

__all__ = ['GRID', 'next_instant', 'on_grid', 'tick', 'wait_until']


# instants are k * GRID, and (k * GRID) / GRID is not always k in floats
# (0.29 / 0.01 = 28.999...): a time within _EPS ticks of an instant is on it
_EPS = 1e-6


def on_grid(t: float) -> float:
    """The first grid instant at or after `t` (trio time)."""
    return math.ceil(t / GRID - _EPS) * GRID


def next_instant(t: float) -> float:
    """The first grid instant after `t`: when `tick()` called at `t` returns."""
    return (math.floor(t / GRID + _EPS) + 1) * GRID


class _Ticker:
    """The shared clock of one trio run (see the module docstring)."""

    def __init__(self) -> None:
        self._lot = trio.lowlevel.ParkingLot()
        self._running = False

    async def tick(self) -> None:
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name='piker pacing ticker')
        await self._lot.park()

    async def _run(self) -> None:
        try:
            while True:
                await trio.sleep_until(next_instant(trio.current_time()))
                if not self._lot:
                    return  # nobody waited for a whole tick
                self._lot.unpark_all()
        finally:
            self._running = False


_ticker: trio.lowlevel.RunVar[_Ticker] = trio.lowlevel.RunVar('piker_pacing_ticker')


async def tick() -> None:
    """Wait for the grid's next instant (shared by every caller in this run)."""
    try:
        ticker = _ticker.get()
    except LookupError:
        ticker = _Ticker()
        _ticker.set(ticker)
    await ticker.tick()


async def wait_until(t: float) -> None:
    """Wait until the first grid instant at or after `t` (a checkpoint if
    that is now): by the shared clock if it is the next tick, else by one
    timed sleep to it (a slow periodic task wakes no more often than it
    must, still on the grid)."""
    now = trio.current_time()
    if t <= now:
        await trio.lowlevel.checkpoint()
    elif t <= next_instant(now):
        await tick()
    else:
        await trio.sleep_until(on_grid(t))
