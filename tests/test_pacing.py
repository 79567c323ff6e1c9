"""brokerd's shared clock (`piker.brokers._pacing`): every waiter of a tick
wakes at the same grid instant, the clock stops when nobody waits, and a
sim market paced by it keeps its exact quote rate. Driven by trio's
MockClock, so the timing is exact and instant."""
from __future__ import annotations

import pytest
import trio
from trio.testing import MockClock

from piker.brokers import _pacing
from piker.brokers._pacing import GRID, next_instant, on_grid, tick
from piker.brokers.sim._markets import get_spec
from piker.brokers.sim._runtime import SimMarket

pytestmark = pytest.mark.timeout(30)


def _run(fn):
    return trio.run(fn, clock=MockClock(autojump_threshold=0))


def test_grid_instants_survive_float_rounding():
    # 0.29 / 0.01 == 28.999...: still the instant 29, not 28
    for k in (1, 29, 58, 1234):
        t = k * GRID
        assert on_grid(t) == t
        assert next_instant(t) == (k + 1) * GRID
        assert on_grid(t + GRID / 3) == (k + 1) * GRID
        assert next_instant(t - GRID / 3) == t


def test_every_waiter_of_a_tick_wakes_at_the_same_instant():
    async def main() -> list[list[float]]:
        woke: list[list[float]] = [[], [], []]

        async def waiter(i: int) -> None:
            await trio.sleep(i * GRID / 7)  # arrive at different times
            for _ in range(5):
                await tick()
                woke[i].append(trio.current_time())

        async with trio.open_nursery() as n:
            for i in range(3):
                n.start_soon(waiter, i)
        return woke

    woke = _run(main)
    assert woke[0] == woke[1] == woke[2]
    assert all(on_grid(t) == t for t in woke[0])
    steps = [b - a for a, b in zip(woke[0], woke[0][1:], strict=False)]
    assert steps == pytest.approx([GRID] * 4)


def test_the_clock_runs_only_while_somebody_waits():
    async def main() -> tuple[bool, bool, bool]:
        await tick()
        ticker = _pacing._ticker.get()
        running = ticker._running
        await trio.sleep(5 * GRID)  # nobody waits: it ends at its next tick
        idle = ticker._running
        t = trio.current_time()
        await tick()  # and starts again
        return running, idle, trio.current_time() == next_instant(t)

    assert _run(main) == (True, False, True)


@pytest.mark.parametrize('rate', [1000.0, 250.0, 7.0])
def test_a_paced_sim_market_keeps_its_rate(rate: float):
    async def main() -> list[float]:
        market = SimMarket(get_spec('btcusdt'), seed=1, quote_rate=rate)
        send, recv = trio.open_memory_channel(10_000)
        times: list[float] = []
        async with trio.open_nursery() as n:
            await n.start(market.stream, send)
            t0 = trio.current_time()
            with trio.move_on_at(t0 + 2.0):
                async for _ in recv:
                    times.append(trio.current_time())
            n.cancel_scope.cancel()
        return times

    times = _run(main)
    # exact but for the quotes due in the last tick (emitted at its end)
    assert abs(len(times) - 2.0 * rate) <= rate * GRID + 1
    # every quote is emitted on a grid instant: one wake-up per tick
    assert all(on_grid(t) == pytest.approx(t, abs=1e-9) for t in times[1:])
