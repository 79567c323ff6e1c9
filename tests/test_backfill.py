"""Backfill and gap repair: sim bars into the store, planted gaps refilled."""
from __future__ import annotations

import numpy as np
import pytest
import trio

from piker.brokers import BrokerError
from piker.brokers.sim._history import gen_history
from piker.brokers.sim._markets import MARKETS
from piker.data import open_feed
from piker.storage import BarStore, Gap
from piker.storage._backfill import merge_fetched

T_LIVE = 1_767_225_600 + 7 * 86_400


def sim_bars(tf: int = 60) -> np.ndarray:
    spec = MARKETS['btcusdt']
    return gen_history(spec, seed=1, end_price=100_000.0, first_live=T_LIVE)[tf]


def test_merge_fills_a_planted_gap_and_records_the_venues_own(tmp_path):
    store = BarStore(tmp_path)
    bars = sim_bars()
    hole = (bars['time'] >= bars['time'][500]) & (bars['time'] < bars['time'][560])
    store.write('btcusdt.sim', 60, bars[~hole])
    (gap,) = store.gaps('btcusdt.sim', 60)
    assert (gap.start, gap.end) == (int(bars['time'][500]), int(bars['time'][560]))

    report = merge_fetched(store, 'btcusdt.sim', 60, bars)
    assert report.gaps == [] and report.closed == []
    assert np.array_equal(store.read('btcusdt.sim', 60), bars)

    # the backend itself lacks bars 100..110 (market closed): recorded once
    venue = np.concatenate([bars[:100], bars[110:]])
    store.delete('btcusdt.sim')
    store.write('btcusdt.sim', 60, venue[:50])
    report = merge_fetched(store, 'btcusdt.sim', 60, venue)
    assert report.closed == [Gap(int(bars['time'][100]), int(bars['time'][110]))]
    assert store.gaps('btcusdt.sim', 60) == []
    again = merge_fetched(store, 'btcusdt.sim', 60, venue)
    assert again.closed == [] and again.gaps == []


def test_a_gap_older_than_the_backend_serves_stays_open(tmp_path):
    store = BarStore(tmp_path)
    bars = sim_bars()
    old = bars[:10].copy()
    old['time'] -= 3600 * 24  # a day before the backend's window
    store.write('btcusdt.sim', 60, old)
    report = merge_fetched(store, 'btcusdt.sim', 60, bars[100:])
    assert len(report.gaps) == 1 and report.closed == []
    assert report.bars == 10 + len(bars) - 100


def test_opening_a_market_backfills_and_history_repairs_a_planted_gap(piker_env):
    confdir, _ = piker_env

    async def main():
        async with open_feed('btcusdt.sim') as feed:
            store = BarStore()
            # brokerd backfills a market as it opens (1 s, then 60 s bars)
            with trio.fail_after(20):
                while len(store.times('btcusdt.sim', 60)) < 1000:
                    await trio.sleep(0.05)
            assert len(store.times('btcusdt.sim', 1)) >= 3600
            first = await feed.history('btcusdt.sim', 60)
            stored = store.read('btcusdt.sim', 60)
            assert len(stored) >= len(first) - 1 and len(stored) > 1000
            # plant a gap; the next history() (same backend window) fills it
            t = stored['time']
            store.delete('btcusdt.sim', 60, int(t[200]), int(t[260]))
            (gap,) = store.gaps('btcusdt.sim', 60)
            assert gap.bars(60) == 60
            held = await feed.stored('btcusdt.sim', 60)
            assert len(held) == len(stored) - 60
            again = await feed.history('btcusdt.sim', 60)
            assert store.gaps('btcusdt.sim', 60) == []
            assert np.array_equal(again[:len(stored) - 2], stored[:-2])
            reports = await feed.backfill('btcusdt.sim')
            assert [r.timeframe for r in reports] == [1, 60]
            assert reports[0].bars >= 3600 and reports[0].gaps == []

    trio.run(main)


def test_an_unwritable_store_is_a_clear_error_and_the_feed_keeps_streaming(piker_env):
    confdir, _ = piker_env
    (confdir / 'storage').write_text('in the way')

    async def main():
        async with open_feed('btcusdt.sim') as feed:
            bars = await feed.history('btcusdt.sim', 60)
            assert len(bars) > 1000  # served from the backend
            with pytest.raises(BrokerError, match='a file is in the way of the store dir'):
                await feed.backfill('btcusdt.sim', (60,))
            with trio.fail_after(10):
                for _ in range(3):
                    assert 'btcusdt.sim' in await feed.stream.receive()

    trio.run(main)


def test_a_re_served_window_rewrites_only_what_changed(tmp_path, monkeypatch):
    store = BarStore(tmp_path)
    bars = sim_bars()
    merge_fetched(store, 'btcusdt.sim', 60, bars)
    written = []
    real = store.write
    monkeypatch.setattr(store, 'write', lambda f, tf, b: written.append(len(b)) or real(f, tf, b))
    bars = bars.copy()
    bars['close'][-1] += 1  # the live bar moved
    merge_fetched(store, 'btcusdt.sim', 60, bars)
    assert written == [1]
