"""`piker.service.Backoff`: the retry delays every reconnect loop shares."""
from __future__ import annotations

import pytest
import trio
import trio.testing

from piker.service import Backoff


def test_backoff_doubles_to_its_cap_and_starts_over_after_reset():
    b = Backoff(first=0.1, cap=1.0)
    assert [b.step() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.attempts == 6 and b.delay == 1.0
    b.reset()
    assert (b.attempts, b.delay) == (0, 0.1)
    with pytest.raises(ValueError, match='first <= cap'):
        Backoff(first=2.0, cap=1.0)
    with pytest.raises(ValueError, match='factor'):
        Backoff(factor=0.5)


def test_backoff_sleep_waits_the_delay():
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> list[float]:
        b = Backoff(first=0.5, cap=2.0)
        waited = []
        for _ in range(4):
            t0 = trio.current_time()
            assert await b.sleep() == pytest.approx(trio.current_time() - t0)
            waited.append(trio.current_time() - t0)
        return waited

    assert trio.run(main, clock=clock) == pytest.approx([0.5, 1.0, 2.0, 2.0])
