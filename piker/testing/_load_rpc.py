"""RPC the load generator (`_load`) loads into the daemons it spawns (not piker API).

`lag_start()` / `lag_stop()`: an event-loop lag monitor inside an actor. A
task sleeps `period` seconds over and over; how much later than asked it
wakes is the time every other task of that actor had to wait for the loop
(a heartbeat reply included). The bench pre-spawns emsd, paperboi and
brokerd with this module enabled, so no daemon needs a hook for it.

Daemons enable it by its dotted name, `piker.testing._load_rpc`.
"""
from __future__ import annotations

import time

import trio

from ..service import start_actor_task

_scope: trio.CancelScope | None = None
_lags: list[tuple[float, float]] = []  # (wall time, lag in s)


async def lag_start(period: float = 0.01) -> None:
    """Start monitoring this actor's event loop (see module doc)."""
    global _scope
    _lags.clear()
    scope = _scope = trio.CancelScope()

    async def monitor() -> None:
        with scope:
            while True:
                t0 = trio.current_time()
                await trio.sleep(period)
                _lags.append((time.time(), trio.current_time() - t0 - period))

    start_actor_task(monitor)


async def lag_stop(over: float = 0.5) -> dict:
    """Stop monitoring; the lag figures, and when the loop stalled > `over` s."""
    if _scope is not None:
        _scope.cancel()
    lags = sorted(lag for _, lag in _lags)
    if not lags:
        return {'n': 0}
    return {
        'n': len(lags),
        'p50': lags[len(lags) // 2],
        'p99': lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        'max': lags[-1],
        'stalls': [(t, lag) for t, lag in _lags if lag > over],
    }


async def set_module_attr(module: str, name: str, value: float) -> float:
    """What-if knob: set `module.name` in this actor (an already imported
    piker module's tunable, e.g. emsd's venue watchdog timeout); returns
    the previous value. For experiments only: `bench/load.py --venue-watchdog`."""
    import importlib

    mod = importlib.import_module(module)
    old = getattr(mod, name)
    setattr(mod, name, value)
    return old
