"""Tick recording: every quote into the store, never a stalled feed."""
from __future__ import annotations

import errno

import pytest
import trio

from piker.brokers.sim import open_market_control
from piker.data import open_feed
from piker.storage import StorageError, TickRecorder, TickStore, rows_to_quotes
from piker.storage._record import read_status


def _quote(i: int) -> dict:
    return {'time_ns': 1_767_225_600 * 10**9 + i, 'last': 100.0 + i, 'bid': 99.0,
            'ask': 101.0, 'bsize': 1.0, 'asize': 1.0, 'volume': float(i),
            'ticks': [{'type': 'trade', 'price': 100.0 + i, 'size': 1.0}]}


class FailingStore(TickStore):
    def __init__(self, root):
        super().__init__(root)
        self.fail = True

    def append(self, fqme, rows):
        if self.fail:
            raise StorageError(errno.ENOSPC, f'cannot write {self.root}: the disk is full')
        return super().append(fqme, rows)


def test_recorder_batches_bounds_memory_and_survives_a_full_disk(tmp_path, piker_env):
    store = FailingStore(tmp_path)
    rec = TickRecorder('btcusdt.sim', store, batch=10, flush_s=0.05, max_pending=25,
                       retry_s=0.05)

    async def main():
        async with trio.open_nursery() as n:
            await n.start(rec.run)
            for i in range(40):
                rec.put(_quote(i))  # never blocks, whatever the disk does
            with trio.fail_after(5):
                while rec.error is None:
                    await trio.sleep(0.01)
            assert 'the disk is full' in rec.error and rec.state == 'error'
            assert read_status()['btcusdt.sim']['state'] == 'error'
            assert rec.dropped == 15  # 40 put, room for 25
            store.fail = False
            with trio.fail_after(5):
                while rec.written < 25:
                    await trio.sleep(0.01)
            assert rec.error is None and rec.state == 'recording'
            rec.put(_quote(99))
            rec.stop()
        got = rows_to_quotes(store.read('btcusdt.sim'))
        # the newest 25 survived the outage, in order, then the last one
        assert [q['last'] for q in got] == [100.0 + i for i in range(15, 40)] + [199.0]
        assert read_status()['btcusdt.sim']['state'] == 'stopped'

    trio.run(main)


def write_conf(confdir, body: str) -> None:
    (confdir / 'brokers.toml').write_text('[sim]\nseed = 4\nquote_rate = 50.0\n')
    (confdir / 'conf.toml').write_text(body)


def test_configured_market_is_recorded_quote_for_quote(piker_env):
    confdir, _ = piker_env
    write_conf(confdir, '[storage]\nrecord = ["btcusdt.sim"]\n')
    pushed = [50_000.5, 50_001.5, 49_999.5]

    async def main():
        async with open_feed(['btcusdt.sim', 'ethusdt.sim']) as feed:
            async with open_market_control('btcusdt.sim', resume_on_exit=False) as ctl:
                for i, price in enumerate(pushed):
                    await ctl.push(last=price, bid=price - 0.5, ask=price + 0.5, size=i + 1)
            with trio.fail_after(5):
                await feed.stream.receive()
        # the feed closed: its upstreams and their recorders flushed and ended

    trio.run(main)
    quotes = rows_to_quotes(TickStore().read('btcusdt.sim'))
    trades = [(t['price'], t['size']) for q in quotes for t in q['ticks']
              if t['type'] == 'trade']
    assert trades[-3:] == [(p, float(i + 1)) for i, p in enumerate(pushed)]
    assert quotes[-1]['bid'] == pushed[-1] - 0.5 and quotes[-1]['ask'] == pushed[-1] + 0.5
    times = [q['time_ns'] for q in quotes]
    assert times == sorted(times)
    assert TickStore().markets() == ['btcusdt.sim']  # eth is not recorded


@pytest.mark.timeout(60)
def test_an_unwritable_store_never_stalls_the_recorded_feed(piker_env):
    confdir, _ = piker_env
    write_conf(confdir, '[storage]\nrecord = ["btcusdt.sim"]\n')
    (confdir / 'storage').write_text('in the way')

    async def main():
        async with open_feed('btcusdt.sim') as feed:
            n = 0
            with trio.fail_after(10):
                while n < 60:  # the walk goes on at 50 quotes/s
                    batch = await feed.stream.receive()
                    n += 'btcusdt.sim' in batch
                    status = read_status().get('btcusdt.sim', {})
                    if n > 20 and status.get('state') == 'error':
                        break
            assert 'a file is in the way of the store dir' in status['error']

    trio.run(main)


def test_recorder_folds_batches_and_closes_a_day_into_one_file(tmp_path, piker_env):
    from piker.storage import _record
    store = TickStore(tmp_path)
    rec = TickRecorder('btcusdt.sim', store, batch=1, flush_s=10)
    day = 86_400 * 10**9

    async def main():
        for i in range(_record.COMPACT_EVERY + 5):
            rec.put(_quote(i))
            await rec.flush()
        d = tmp_path / 'ticks/btcusdt.sim/2026-01-01'
        assert len(list(d.iterdir())) == 6  # one folded file + 5 batches
        rec.put({**_quote(1000), 'time_ns': _quote(1000)['time_ns'] + day})
        await rec.flush()
        assert [p.name for p in d.iterdir()] == [f'c-0-{_record.COMPACT_EVERY + 4}.parquet']

    trio.run(main)
    assert store.read('btcusdt.sim').height == _record.COMPACT_EVERY + 6
