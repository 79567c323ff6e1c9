"""Opt-in: the binance backend against Binance's real spot testnet.

Skipped unless `PIKER_BINANCE_TESTNET=1` and testnet keys are in
`PIKER_BINANCE_API_KEY` / `PIKER_BINANCE_API_SECRET` (from
testnet.binance.vision). Needs the network; CI never runs it:

    PIKER_BINANCE_TESTNET=1 PIKER_BINANCE_API_KEY=... PIKER_BINANCE_API_SECRET=... \\
        uv run pytest tests/test_binance_testnet.py -q

The live test places one small buy far below the market (it cannot fill)
and cancels it.
"""
from __future__ import annotations

import math
import os
from decimal import ROUND_UP, Decimal

import pytest
import trio

pytestmark = pytest.mark.skipif(
    not (os.environ.get('PIKER_BINANCE_TESTNET') == '1'
         and os.environ.get('PIKER_BINANCE_API_KEY')
         and os.environ.get('PIKER_BINANCE_API_SECRET')),
    reason='set PIKER_BINANCE_TESTNET=1 and PIKER_BINANCE_API_KEY/SECRET (testnet keys)',
)

FQME = 'btcusdt.binance'


@pytest.fixture
def testnet_conf(piker_env):
    confdir, _ = piker_env
    (confdir / 'brokers.toml').write_text('[binance]\ntestnet = true\n')
    return confdir


def test_testnet_market_data(testnet_conf):
    from piker.brokers.binance import get_mkt_info, open_history, stream_quotes

    async def main():
        mkt = await get_mkt_info('btcusdt')
        assert mkt.fqme == FQME and mkt.price_tick > 0 and mkt.size_tick > 0
        bars = await open_history('btcusdt', 60, bars=1500)  # two pages
        assert len(bars) > 1000 and (bars['time'][1:] > bars['time'][:-1]).all()
        send, recv = trio.open_memory_channel(100)
        async with trio.open_nursery() as n:
            first = await n.start(stream_quotes, send, ['btcusdt'])
            q = first['btcusdt']
            assert 0 < q['bid'] <= q['ask']
            n.cancel_scope.cancel()

    trio.run(main)


def test_testnet_live_order_and_cancel(testnet_conf):
    from piker.brokers.binance._api import get_market
    from piker.testing import run_sim

    async def scenario(sim):
        market = await get_market('btcusdt')
        ems = await sim.open_ems(FQME, mode='live')
        from piker.data import open_feed
        async with open_feed([FQME], start_stream=False) as feed:
            bid = feed.first_quotes[FQME]['bid']
        price = float((Decimal(str(bid * 0.8)) / market.mkt.price_tick).to_integral_value()
                      * market.mkt.price_tick)
        need = max(market.min_notional * Decimal('1.5'), Decimal('6')) / Decimal(str(price))
        size = float((need / market.mkt.size_tick).to_integral_value(ROUND_UP)
                     * market.mkt.size_tick)
        assert math.isfinite(size) and size > 0
        oid = await ems.place('buy', price, size, account='spot')
        await ems.wait(oid, 'open', timeout=20)
        await ems.client.cancel(oid)
        await ems.wait(oid, 'canceled', timeout=20)

    run_sim(scenario, timeout=90)
