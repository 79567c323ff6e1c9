"""Live bars: built once in brokerd from the trades, stored as they close."""
from __future__ import annotations

import time

import trio

from piker.brokers._livebars import BarBuilder
from piker.brokers.sim import open_market_control
from piker.data import open_feed
from piker.storage import BarStore


def test_builder_closes_bars_on_the_next_trade_or_when_due():
    b = BarBuilder((1, 60))
    assert b.trade(10.0, 1.0, 120.2) == []
    assert b.trade(12.0, 2.0, 120.7) == []
    assert b.trade(9.0, 1.0, 120.9) == []
    closed = b.trade(11.0, 1.0, 121.1)
    assert closed == [(1, (120, 10.0, 12.0, 9.0, 9.0, 4.0))]
    assert b.trade(5.0, 1.0, 100.0) == []  # late: ignored
    assert b.close_due(180.0) == [(1, (121, 11.0, 11.0, 11.0, 11.0, 1.0)),
                                 (60, (120, 10.0, 12.0, 9.0, 11.0, 5.0))]
    assert b.close_due(1e9) == []


def test_a_trade_later_than_a_closed_bar_never_reopens_it():
    b = BarBuilder((1,))
    b.trade(10.0, 1.0, 120.2)
    assert b.close_due(122.0) == [(1, (120, 10.0, 10.0, 10.0, 10.0, 1.0))]
    # late (after its bar closed): dropped, the stored bar is not replaced
    assert b.trade(99.0, 1.0, 120.9) == []
    assert b.snapshot() == {'1': [[120, 10.0, 10.0, 10.0, 10.0, 1.0]]}
    b.trade(11.0, 2.0, 123.5)
    # what every quote carries: the last closed bar, then the one in progress
    assert b.snapshot() == {'1': [[120, 10.0, 10.0, 10.0, 10.0, 1.0],
                                  [123, 11.0, 11.0, 11.0, 11.0, 2.0]]}


def test_brokerd_stores_live_bars_as_they_close(piker_env):
    confdir, _ = piker_env
    (confdir / 'brokers.toml').write_text('[sim]\nseed = 2\nquote_rate = 20.0\n')

    async def main():
        async with open_feed('btcusdt.sim') as feed:
            store = BarStore()
            # let the backfill on open (the backend's bars, which win) finish first
            with trio.fail_after(20):
                while not len(store.times('btcusdt.sim', 60)):
                    await trio.sleep(0.05)
            async with open_market_control('btcusdt.sim', resume_on_exit=False) as ctl:
                for i, price in enumerate((50_000.5, 50_010.5, 49_990.5)):
                    q = await ctl.push(last=price, bid=price - 0.5, ask=price + 0.5,
                                       size=i + 1)
            second = q['time_ns'] // 10**9
            # closes within 1 s (+1 s grace for late trades), flushed every 2 s
            with trio.fail_after(10):
                while True:
                    bars = store.read('btcusdt.sim', 1, second, second + 1)
                    if len(bars) and bars['close'][0] == 49_990.5:
                        break
                    await trio.sleep(0.1)
            (bar,) = bars
            assert bar['low'] <= 49_990.5 and bar['volume'] >= 3.0
            await feed.stream.receive()
            assert time.time() >= second + 1

    trio.run(main)
