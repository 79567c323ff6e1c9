"""Bounded drain buffers (TRACTOR.md rule 9): overflow policies, no actors."""
from __future__ import annotations

import pytest
import trio

from piker.service import DrainBuffer, open_drained_stream


async def _source(items, done: trio.Event | None = None):
    for item in items:
        yield item
    if done is not None:
        done.set()


def run(fn):
    return trio.run(fn)


def test_drop_oldest_keeps_newest_and_counts():
    async def main():
        done = trio.Event()
        async with open_drained_stream(
            _source(range(100), done), policy='drop_oldest', maxlen=10,
        ) as buf:
            await done.wait()  # producer finished before we read anything
            got = [m async for m in buf]
        return got, buf.dropped, buf.received

    got, dropped, received = run(main)
    assert got == list(range(90, 100))
    assert dropped == 90 and received == 100


def test_conflate_by_key_keeps_latest_in_place_and_merges():
    quotes = [
        {'fqme': 'a', 'last': 1, 'ticks': [1]},
        {'fqme': 'b', 'last': 10, 'ticks': [10]},
        {'fqme': 'a', 'last': 2, 'ticks': [2]},
        {'fqme': 'a', 'last': 3, 'ticks': [3]},
    ]

    def merge(old, new):
        return {**new, 'ticks': old['ticks'] + new['ticks']}

    async def main():
        done = trio.Event()
        async with open_drained_stream(
            _source(quotes, done), policy='conflate', maxlen=8,
            key=lambda q: q['fqme'], merge=merge,
        ) as buf:
            await done.wait()
            batch = await buf.receive_batch()
        return batch, buf.conflated

    batch, conflated = run(main)
    assert batch == [
        {'fqme': 'a', 'last': 3, 'ticks': [1, 2, 3]},
        {'fqme': 'b', 'last': 10, 'ticks': [10]},
    ]
    assert conflated == 2


def test_conflate_evicts_oldest_key_when_full():
    async def main():
        done = trio.Event()
        async with open_drained_stream(
            _source([('a', 1), ('b', 2), ('c', 3)], done), policy='conflate',
            maxlen=2, key=lambda m: m[0],
        ) as buf:
            await done.wait()
            return [m async for m in buf], buf.dropped

    assert run(main) == ([('b', 2), ('c', 3)], 1)


def test_never_drop_blocks_producer_and_loses_nothing():
    async def main():
        async with open_drained_stream(
            _source(range(50)), policy='never_drop', maxlen=4,
        ) as buf:
            await trio.sleep(0.05)
            assert len(buf) == 4  # producer parked, not dropping
            got = []
            async for m in buf:
                got.append(m)
                await trio.sleep(0)
        return got, buf.dropped

    got, dropped = run(main)
    assert got == list(range(50)) and dropped == 0


def test_stream_error_propagates_and_end_is_seen():
    async def bad():
        yield 1
        raise ValueError('boom')

    async def main():
        async with open_drained_stream(bad(), policy='never_drop'):
            await trio.sleep_forever()

    with pytest.raises(ValueError, match='boom'):
        run(main)

    async def empty():
        async with open_drained_stream(_source([]), policy='drop_oldest') as buf:
            with pytest.raises(trio.EndOfChannel):
                await buf.receive()

    run(empty)


@pytest.mark.parametrize('kw, match', [
    ({'policy': 'nope'}, 'unknown overflow policy'),
    ({'policy': 'conflate'}, 'needs a key'),
    ({'policy': 'drop_oldest', 'maxlen': 0}, 'maxlen'),
])
def test_bad_arguments(kw, match):
    maxlen = kw.pop('maxlen', 4)
    with pytest.raises(ValueError, match=match):
        DrainBuffer(maxlen, **kw)
