"""Backfill and gap repair: sim bars into the store, planted gaps refilled."""
from __future__ import annotations

import time

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
FQME = 'btcusdt.binance'


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


# --- time ranges: deep backfill, the venue's own gaps ---------------------------

def test_an_asked_range_the_backend_cannot_serve_is_recorded_closed(tmp_path):
    """Asked for [since, until], served a later part only (before the
    listing, past a depth limit): the rest is the venue's own, not re-asked."""
    from piker.storage._backfill import pages, wanted

    store = BarStore(tmp_path)
    bars = sim_bars()
    t = bars['time']
    since, until = int(t[0]) - 600 * 60, int(t[-1])
    rep = merge_fetched(store, 'btcusdt.sim', 60, bars[100:], since, until)
    assert rep.closed == [Gap(since, int(t[100]))] and rep.gaps == []
    assert (rep.start, rep.end) == (since, until)
    assert not wanted(store, 'btcusdt.sim', 60, since, until)
    # a hole inside an asked span the backend had nothing for: closed too
    store.delete('btcusdt.sim')
    hole = np.concatenate([bars[:300], bars[330:]])
    rep = merge_fetched(store, 'btcusdt.sim', 60, hole, int(t[0]), until)
    assert rep.closed == [Gap(int(t[300]), int(t[330]))]
    assert store.gaps('btcusdt.sim', 60) == []
    assert wanted(store, 'btcusdt.sim', 60, int(t[0]) - 60, until)
    # the bar in progress (and the one before) are never called the venue's own
    store.delete('btcusdt.sim')
    rep = merge_fetched(store, 'btcusdt.sim', 60, bars[:-5], int(t[0]), None,
                        now=float(t[-1]) + 30)
    assert rep.closed == [Gap(int(t[-5]), int(t[-2]))]

    spans = pages(1000 * 60, 100_000 * 60 + 59, 60, page_bars=40_000)
    assert next(spans) == (3_600_060, 6_000_000)
    # an empty page widens the next one 8x, clipped at `since`
    assert spans.send(True) == (60_000, 3_600_000)
    with pytest.raises(StopIteration):
        spans.send(False)


def test_opening_a_market_asks_for_gaps_older_than_the_default_window(piker_env):
    """A gap before the sim's day of bars: the sim is asked for that span on
    open, has nothing, and the gap is recorded as the venue's own."""
    async def main():
        store = BarStore()
        old = sim_bars()[:30].copy()
        old['time'] = old['time'] - old['time'][0] + (int(time.time()) // 60 - 3 * 1440) * 60
        store.write('btcusdt.sim', 60, old)
        async with open_feed('btcusdt.sim'):
            with trio.fail_after(30):
                while not store.closed('btcusdt.sim', 60):
                    await trio.sleep(0.05)
        assert store.gaps('btcusdt.sim', 60) == []
        (closed,) = store.closed('btcusdt.sim', 60)
        assert closed.start == int(old['time'][-1]) + 60

    trio.run(main)


def test_deep_backfill_pages_back_to_since_and_asks_once(binance_sim):
    """`backfill_pages` from now back to 5 days ago (the default window is
    2): every bar the venue has, pages newest first, the venue's closed
    span recorded; a second run asks for nothing older."""
    async def main(sim):
        from piker.data import open_feed
        m = sim.fake.now_ms() // 60_000 * 60
        since = m - 5 * 86_400
        shut = (m - 4 * 86_400, m - 4 * 86_400 + 3 * 3600)
        sim.fake.set_gaps('BTCUSDT', [(shut[0] * 1000, shut[1] * 1000)])
        async with open_feed([FQME], start_stream=False) as feed:
            reps = [r async for r in feed.backfill_pages(FQME, 60, since, page_bars=2000)]
            asked = len(sim.fake.request_log('/api/v3/klines'))
            again = [r async for r in feed.backfill_pages(FQME, 60, since, page_bars=2000)]
            asked_again = len(sim.fake.request_log('/api/v3/klines')) - asked
        ends = [r.end for r in reps]
        assert ends == sorted(ends, reverse=True) and reps[-1].start == since
        assert len(reps) == 4 and not any(r.skipped for r in reps)
        t = BarStore().times(FQME, 60)
        assert t[0] == since
        expect = np.arange(since, int(t[-1]) + 60, 60)
        expect = expect[(expect < shut[0]) | (expect >= shut[1])]
        assert np.array_equal(t, expect)
        assert Gap(shut[0], shut[1]) in [Gap(g.start, g.end) for r in reps for g in r.closed]
        assert BarStore().gaps(FQME, 60) == []
        assert asked >= 5 * 1440 // 1000
        # the second run: everything older than the newest page is skipped
        assert all(r.skipped for r in again[1:]) and asked_again <= 2  # one page

    binance_sim(main, keys=False)


def test_kraken_depth_limit_is_recorded_as_the_venues_own(kraken_sim):
    """Kraken serves 720 1 min OHLC bars; older ones only from its trade
    history, up to a page budget. A span beyond both is the venue's limit:
    recorded once, never asked again."""
    async def main(sim):
        from piker.data import open_feed
        fqme = 'btcusd.kraken'
        since = int(time.time()) // 60 * 60 - 2 * 86_400
        async with open_feed([fqme], start_stream=False) as feed:
            reps = [r async for r in feed.backfill_pages(fqme, 60, since)]
            asked = len(sim.fake.request_log())
            again = [r async for r in feed.backfill_pages(fqme, 60, since)]
            asked_again = len(sim.fake.request_log()) - asked
        (rep,) = reps
        (head,) = rep.closed
        assert head.start == since and head.end <= rep.first
        assert rep.bars >= 720 and BarStore().gaps(fqme, 60) == []
        assert again[0].skipped or asked_again <= 2

    kraken_sim(main, keys=False)
