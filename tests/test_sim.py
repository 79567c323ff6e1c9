"""The sim backend in-process: determinism, L1 and history invariants,
market info / search errors, and the stream/push/resume model (no actors)."""
from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
import trio

from piker.brokers import NoSuchBackend, SymbolNotFound, get_brokermod
from piker.brokers.sim import (
    MARKETS,
    Walk,
    get_market,
    get_mkt_info,
    open_history,
    stream_quotes,
    symbol_search,
)
from piker.brokers.sim._history import HISTORY_BARS, gen_bridge, gen_history
from piker.data import OHLC_DTYPE, pack_array, unpack_array


def _content(q: dict) -> dict:
    """A quote without its wall-clock timestamp."""
    return {k: v for k, v in q.items() if k != 'time_ns'}


def _walk(key: str, seed: int, n: int) -> list[dict]:
    w = Walk(MARKETS[key], seed)
    return [_content(w.step()) for _ in range(n)]


def _on_grid(value: float, tick: Decimal) -> bool:
    steps = Decimal(str(value)) / tick
    return steps == steps.to_integral_value()


def write_sim_conf(confdir, **kw) -> None:
    body = '\n'.join(f'{k} = {v!r}' for k, v in kw.items())
    (confdir / 'brokers.toml').write_text(f'[sim]\n{body}\n')


# -- determinism ---------------------------------------------------------------

def test_same_seed_same_walk():
    # more than one random chunk (1024 steps) to cover refills
    assert _walk('btcusdt', 7, 2500) == _walk('btcusdt', 7, 2500)


def test_seed_and_market_change_the_walk():
    a = [q['bid'] for q in _walk('ethusdt', 1, 200)]
    b = [q['bid'] for q in _walk('ethusdt', 2, 200)]
    assert a != b
    # same seed, different markets: different relative paths
    eth = np.diff(np.log([q['bid'] for q in _walk('ethusdt', 1, 200)]))
    sol = np.diff(np.log([q['bid'] for q in _walk('solusdt', 1, 200)]))
    assert not np.allclose(eth, sol)


def test_history_is_deterministic():
    spec = MARKETS['btcusdt']
    a = gen_history(spec, 3, 65000.0, 1_700_000_040)
    b = gen_history(spec, 3, 65000.0, 1_700_000_040)
    c = gen_history(spec, 4, 65000.0, 1_700_000_040)
    for tf in HISTORY_BARS:
        assert np.array_equal(a[tf], b[tf])
        assert not np.array_equal(a[tf]['close'], c[tf]['close'])


# -- L1 invariants ---------------------------------------------------------------

@pytest.mark.parametrize('key', sorted(MARKETS))
def test_l1_invariants(key):
    spec = MARKETS[key]
    w = Walk(spec, 11)
    volume = 0.0
    trades = 0
    for _ in range(3000):
        q = w.step()
        assert q['symbol'] == key
        assert 0 < q['bid'] < q['ask']
        spread = round((q['ask'] - q['bid']) / float(spec.price_tick))
        assert 1 <= spread <= 3
        for field in ('bid', 'ask', 'last'):
            assert _on_grid(q[field], spec.price_tick), (field, q[field])
        for field in ('bsize', 'asize'):
            assert q[field] > 0 and _on_grid(q[field], spec.size_tick)
        assert q['volume'] >= volume
        volume = q['volume']
        kinds = [t['type'] for t in q['ticks']]
        assert kinds[:2] == ['bid', 'ask']
        assert {'price', 'size', 'type'} == set(q['ticks'][0])
        if 'trade' in kinds:
            trades += 1
            tick = q['ticks'][-1]
            assert tick['price'] in (q['bid'], q['ask'])
            assert tick['price'] == q['last']
            assert tick['size'] > 0 and _on_grid(tick['size'], spec.size_tick)
    # roughly a third of the steps print a trade
    assert 700 < trades < 1400


def test_stock_has_integer_lots():
    mkt = MARKETS['simco'].mkt
    assert mkt.fqme == 'simco.sim'
    assert mkt.size_tick == Decimal('1')
    w = Walk(MARKETS['simco'], 0)
    for _ in range(200):
        q = w.step()
        assert q['bsize'] == int(q['bsize']) and q['asize'] == int(q['asize'])


# -- history ---------------------------------------------------------------------

@pytest.mark.parametrize('tf', sorted(HISTORY_BARS))
def test_history_shape_and_ohlc_invariants(tf):
    async def main():
        market = get_market('solusdt.sim')
        arr = await open_history('solusdt', tf)
        return market, arr

    market, arr = trio.run(main)
    assert arr.dtype == OHLC_DTYPE
    assert len(arr) >= HISTORY_BARS[tf]
    assert np.all(np.diff(arr['time']) == tf)
    assert np.all(arr['time'] % tf == 0)
    assert np.all(arr['low'] <= np.minimum(arr['open'], arr['close']))
    assert np.all(arr['high'] >= np.maximum(arr['open'], arr['close']))
    assert np.all(arr['low'] > 0) and np.all(arr['volume'] >= 0)
    for col in ('open', 'high', 'low', 'close'):
        assert all(_on_grid(v, MARKETS['solusdt'].price_tick) for v in arr[col][-50:])
    # every bar opens at the previous close
    assert np.array_equal(arr['open'][1:], arr['close'][:-1])
    # the generated past ends exactly where the live walk starts
    past = arr[arr['time'] < market.first_live]
    assert len(past) == HISTORY_BARS[tf]
    assert past['close'][-1] == market.walk.start_price
    assert arr['time'][len(past)] == market.first_live


def test_history_timeframes_agree():
    """The last hour of 1m bars aggregates the 1s bars."""
    hist = gen_history(MARKETS['ethusdt'], 8, 3200.0, 1_700_000_040)
    secs, mins = hist[1], hist[60][-60:]
    assert secs['time'][0] == mins['time'][0] and secs['time'][-1] == 1_700_000_039
    by_min = secs.reshape(60, 60)
    assert np.array_equal(by_min['open'][:, 0], mins['open'])
    assert np.array_equal(by_min['close'][:, -1], mins['close'])
    assert np.array_equal(by_min['high'].max(axis=1), mins['high'])
    assert np.array_equal(by_min['low'].min(axis=1), mins['low'])
    assert np.allclose(by_min['volume'].sum(axis=1), mins['volume'])
    assert secs['close'][-1] == hist[60]['close'][-1] == 3200.0


def test_live_trades_extend_history():
    async def main():
        market = get_market('ethusdt.sim')
        before = await open_history('ethusdt.sim', 1)
        await market.push(last=3300.0, size=2.5)
        await market.push(last=3100.0, size=1.0)
        after = await open_history('ethusdt.sim', 1)
        return before, after

    before, after = trio.run(main)
    assert len(after) >= len(before)
    last = after[-1]
    assert last['close'] == 3100.0
    assert last['high'] >= 3300.0 and last['low'] <= 3100.0
    assert last['volume'] >= 3.5


def test_history_bad_timeframe():
    with pytest.raises(ValueError, match='timeframes: 1, 60'):
        trio.run(open_history, 'btcusdt.sim', 5)


def test_pack_roundtrip():
    arr = gen_history(MARKETS['simco'], 0, 100.0, 1_700_000_040)[60]
    again = unpack_array(pack_array(arr))
    assert again.dtype == arr.dtype and np.array_equal(again, arr)


# -- market info, search, errors --------------------------------------------------

def test_mkt_info_and_search():
    async def main():
        mkt = await get_mkt_info('btcusdt')
        same = await get_mkt_info('BTCUSDT.sim')
        found = await symbol_search('eth')
        usdt = await symbol_search('usdt')
        stock = await symbol_search('stock')
        return mkt, same, found, usdt, stock

    mkt, same, found, usdt, stock = trio.run(main)
    assert mkt == same and mkt.fqme == 'btcusdt.sim' and mkt.bs_fqme == 'btcusdt'
    assert mkt.price_tick == Decimal('0.1')
    assert list(found)[0] == 'ethusdt.sim'
    assert {'btcusdt.sim', 'ethusdt.sim', 'solusdt.sim'} <= set(usdt)
    assert list(stock) == ['simco.sim']


def test_unknown_symbol_lists_close_matches():
    with pytest.raises(SymbolNotFound) as info:
        trio.run(get_mkt_info, 'btcusd.sim')
    msg = str(info.value)
    assert "'btcusd.sim'" in msg and 'did you mean btcusdt.sim' in msg
    with pytest.raises(SymbolNotFound):
        get_market('nope')


def test_unknown_backend_lists_available():
    with pytest.raises(NoSuchBackend, match=r"no broker backend 'ib'.*available backends: .*sim"):
        get_brokermod('ib')
    assert get_brokermod('SIM').__name__ == 'piker.brokers.sim'


# -- streaming, push, resume (in-process) -------------------------------------------

def test_stream_quotes_rate_push_and_resume(piker_env):
    confdir, _ = piker_env
    write_sim_conf(confdir, seed=5, quote_rate=200.0)

    async def main():
        send, recv = trio.open_memory_channel(math.inf)
        async with trio.open_nursery() as n:
            first = await n.start(stream_quotes, send, ['btcusdt', 'simco'])
            assert set(first) == {'btcusdt', 'simco'}
            t0 = trio.current_time()
            got = [await recv.receive() for _ in range(60)]
            elapsed = trio.current_time() - t0
            # 2 markets at 200/s: 60 quotes take ~0.15s (not unthrottled)
            assert 0.08 < elapsed < 2.0, elapsed
            assert {q['symbol'] for q in got} == {'btcusdt', 'simco'}

            market = get_market('btcusdt')
            pushed = await market.push(last=50_000.0, bid=49_999.0, ask=50_001.0, size=3.0)
            assert [t['type'] for t in pushed['ticks']] == ['bid', 'ask', 'trade']
            assert pushed['ticks'][-1] == {'type': 'trade', 'price': 50_000.0, 'size': 3.0}
            # drain until the pushed quote; after it no btc walk quotes come
            while (q := await recv.receive()) is not pushed:
                pass
            with trio.move_on_after(0.1):
                while True:
                    q = await recv.receive()
                    assert q['symbol'] == 'simco', 'walk not paused'
            only_bid = await market.push(bid=49_998.0)
            assert [t['type'] for t in only_bid['ticks']] == ['bid']
            assert only_bid['last'] == 50_000.0 and only_bid['ask'] == 50_001.0

            market.resume()
            while (q := await recv.receive())['symbol'] != 'btcusdt':
                pass
            # resumed from the pushed book, moving a few ticks per step
            assert abs(q['bid'] - 49_998.0) < 100
            n.cancel_scope.cancel()

    trio.run(main)


def test_push_validation():
    w = Walk(MARKETS['btcusdt'], 0)
    with pytest.raises(ValueError, match='at least one'):
        w.push()
    with pytest.raises(ValueError, match='finite number > 0'):
        w.push(last=float('nan'))
    with pytest.raises(ValueError, match='finite number > 0'):
        w.push(bid=-1)
    with pytest.raises(ValueError, match='needs last'):
        w.push(size=1)
    q = w.push(last=1.5)
    assert [t['type'] for t in q['ticks']] == ['trade']
    assert q['ticks'][0]['size'] == MARKETS['btcusdt'].lot


def test_same_seed_same_stream(piker_env):
    """Two runs with the same seed stream the same prices."""
    confdir, _ = piker_env
    write_sim_conf(confdir, seed=42, quote_rate=0.0)

    async def main():
        send, recv = trio.open_memory_channel(math.inf)
        async with trio.open_nursery() as n:
            await n.start(stream_quotes, send, ['ethusdt'])
            got = [_content(await recv.receive()) for _ in range(300)]
            n.cancel_scope.cancel()
        return got

    assert trio.run(main) == trio.run(main)
    assert trio.run(main) == _walk('ethusdt', 42, 300)


def test_bridge_fills_the_minute_before_the_walk():
    """A market that comes to life mid-minute has no flat hole in its 1s
    history: a bridge from the walk's start price back to it."""
    spec = MARKETS['btcusdt']
    br = gen_bridge(spec, 3, 65000.0, 1_700_000_040, 1_700_000_077)
    assert np.array_equal(br, gen_bridge(spec, 3, 65000.0, 1_700_000_040, 1_700_000_077))
    assert list(br['time']) == list(range(1_700_000_040, 1_700_000_077))
    assert br['open'][0] == br['close'][-1] == 65000.0
    assert np.array_equal(br['open'][1:], br['close'][:-1])
    assert np.all(br['low'] <= np.minimum(br['open'], br['close']))
    assert np.all(br['high'] >= np.maximum(br['open'], br['close']))
    assert br['high'].max() > br['low'].min()  # it moves
    assert len(gen_bridge(spec, 3, 65000.0, 1_700_000_040, 1_700_000_040)) == 0


def test_live_minute_includes_the_bridge():
    async def main():
        market = get_market('btcusdt.sim')
        return market, await open_history('btcusdt', 1), await open_history('btcusdt', 60)

    market, secs, mins = trio.run(main)
    bridge = secs[(secs['time'] >= market.first_live) & (secs['time'] < market.live_from)]
    assert len(bridge) == market.live_from - market.first_live
    minute = mins[mins['time'] == market.first_live]
    assert len(minute) == 1
    if len(bridge):
        assert minute['high'][0] >= bridge['high'].max()
        assert minute['low'][0] <= bridge['low'].min()
        assert minute['volume'][0] >= bridge['volume'].sum() - 1e-9
