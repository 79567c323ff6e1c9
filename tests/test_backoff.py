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


def test_reconnecting_gives_up_when_on_down_says_so():
    """emsd's relays and feeds, and the paper venue's feeds, share the loop:
    a first connection that fails ends it (their `on_down` says False),
    later failures and ends are retried."""
    from piker.service import Backoff, reconnecting

    attempts: list[int] = []
    downs: list[str] = []
    up = False

    async def connect() -> None:
        nonlocal up
        attempts.append(1)
        if len(attempts) == 1:
            up = True
            return  # ended after it was up: reconnect
        if len(attempts) == 2:
            raise OSError('lost')  # failed after it was up: reconnect
        up = False
        raise OSError('refused')

    def on_down(err: BaseException | None) -> bool:
        downs.append(repr(err))
        return up

    async def main() -> None:
        with trio.fail_after(5):
            await reconnecting(connect, 'test', backoff=Backoff(first=0.01), on_down=on_down)

    trio.run(main)
    assert len(attempts) == 3 and downs == ['None', "OSError('lost')", "OSError('refused')"]
