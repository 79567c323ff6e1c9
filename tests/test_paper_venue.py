"""The paper venue's life cycle (issue #11, item 6): its start-up disk
work runs off the event loop, concurrent first users share one load, and
a new dialogue's report waits for commands in flight on events."""
from __future__ import annotations

import threading
import time

import trio
import trio.testing

from piker.clearing import _paper_engine
from piker.clearing._paper_engine import PaperVenue, open_venue
from piker.clearing._paper_store import VenueStore


def slow_store(monkeypatch, delay: float, loads: list[str]) -> None:
    """Every `VenueStore` the venue builds blocks `delay` s (a slow disk)."""
    class SlowStore(VenueStore):
        def __init__(self, *a, **kw):
            loads.append(threading.current_thread().name)
            time.sleep(delay)
            super().__init__(*a, **kw)
    monkeypatch.setattr(_paper_engine, 'VenueStore', SlowStore)


def test_load_reads_the_disk_off_the_event_loop(monkeypatch):
    loads: list[str] = []
    slow_store(monkeypatch, 0.3, loads)

    async def main():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await trio.sleep(0.01)
                ticks += 1

        async with trio.open_nursery() as n:
            n.start_soon(tick)
            venue = await PaperVenue.load('sim', n)
            n.cancel_scope.cancel()
        return venue, ticks

    venue, ticks = trio.run(main)
    assert loads and loads[0] != threading.main_thread().name
    # the loop kept running while the store loaded (0.3 s: ~30 ticks)
    assert ticks >= 10, ticks
    assert venue.accounts[0] == 'paper' and venue.store.orders == {}


def test_concurrent_first_users_share_one_load(monkeypatch):
    loads: list[str] = []
    slow_store(monkeypatch, 0.2, loads)
    monkeypatch.setattr(_paper_engine, '_venues', {})

    async def main():
        got: list[PaperVenue] = []
        async with trio.open_nursery() as n:
            monkeypatch.setattr(_paper_engine, 'actor_nursery', lambda: n)

            async def use():
                got.append(await open_venue('sim'))

            for _ in range(3):
                n.start_soon(use)
            await trio.sleep(0.5)
            n.cancel_scope.cancel()
        return got

    got = trio.run(main)
    assert len(got) == 3 and got[0] is got[1] is got[2]
    assert len(loads) == 1


def test_settle_waits_for_the_command_in_flight():
    """A new dialogue's report waits until a command another dialogue is
    handling is done, and goes at once then (woken, not polled late)."""
    async def main():
        async with trio.open_nursery() as n:
            venue = await PaperVenue.load('sim', n)
            gate = trio.Event()
            done_at: list[float] = []

            async def handle(raw, origin=None):
                await gate.wait()

            venue.handle = handle  # type: ignore[method-assign]
            n.start_soon(venue.dialogues._serve_one, {'name': 'brokerd_cancel'}, None)
            await trio.testing.wait_all_tasks_blocked()
            assert venue.dialogues._handling == 1

            async def settle():
                await venue.dialogues.settle(inbox=None, timeout=5)
                done_at.append(trio.current_time())

            n.start_soon(settle)
            await trio.sleep(0.2055)  # (off any poll interval's grid)
            assert not done_at  # still waiting for the command in flight
            released = trio.current_time()
            gate.set()
            with trio.fail_after(1):
                while not done_at:
                    await trio.sleep(0.001)
            assert venue.dialogues._handling == 0
            return done_at[0] - released

    # the virtual clock only moves when every task sleeps: a settle that
    # polled would finish a poll interval after the release, not at it
    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) == 0
