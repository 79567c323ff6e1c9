"""The conflating QuoteBuffer and brokerd's FeedBus, in-process (no actors)."""
from __future__ import annotations

import pytest
import trio

from piker.brokers import FeedError, SymbolNotFound
from piker.brokers import sim as simmod
from piker.brokers._feedbus import FeedBus
from piker.data import BufferClosed, QuoteBuffer


def write_sim_conf(confdir, **kw) -> None:
    body = '\n'.join(f'{k} = {v!r}' for k, v in kw.items())
    (confdir / 'brokers.toml').write_text(f'[sim]\n{body}\n')


def q(fqme: str, price: float, *kinds: str) -> dict:
    return {
        'symbol': fqme, 'last': price, 'bid': price - 1, 'ask': price + 1,
        'bsize': 1.0, 'asize': 1.0, 'volume': 0.0, 'time_ns': 0,
        'ticks': [{'type': k, 'price': price, 'size': 1.0} for k in kinds or ('trade',)],
    }


# -- QuoteBuffer -------------------------------------------------------------------

def test_conflation_keeps_latest_and_merges_ticks():
    buf = QuoteBuffer()
    a1, a2, a3 = q('a', 1), q('a', 2, 'bid', 'trade'), q('a', 3)
    buf.put('a', a1)
    buf.put('b', q('b', 10))
    buf.put('a', a2)
    buf.put('a', a3)
    assert len(buf) == 2 and buf.conflated == 2
    batch = buf.drain()
    assert list(batch) == ['a', 'b']
    merged = batch['a']
    assert merged['last'] == 3
    assert [(t['type'], t['price']) for t in merged['ticks']] == [
        ('trade', 1), ('bid', 2), ('trade', 2), ('trade', 3),
    ]
    # inputs are never mutated (they are shared between buffers)
    assert len(a1['ticks']) == 1 and len(a3['ticks']) == 1
    assert buf.drain() == {}


def test_tick_cap_drops_oldest():
    buf = QuoteBuffer(max_ticks=5)
    for i in range(8):
        buf.put('a', q('a', i))
    ticks = buf.drain()['a']['ticks']
    assert [t['price'] for t in ticks] == [3, 4, 5, 6, 7]
    assert buf.dropped_ticks == 3


def test_put_batch_filters_and_never_aliases():
    buf = QuoteBuffer(fqmes={'a'})
    batch = {'a': q('a', 1), 'b': q('b', 2)}
    buf.put_batch(batch)
    assert list(buf.drain()) == ['a']
    # fast path: the buffer must not hold the caller's dict
    mine = QuoteBuffer(fqmes={'a', 'b'})
    mine.put_batch(batch)
    mine.put('a', q('a', 5))
    assert batch['a']['last'] == 1 and len(batch) == 2


def test_receive_waits_times_out_and_closes():
    async def main():
        buf = QuoteBuffer()
        assert await buf.receive(timeout=0.01) == {}
        async with trio.open_nursery() as n:
            async def later():
                await trio.sleep(0.01)
                buf.put('a', q('a', 1))
            n.start_soon(later)
            assert list(await buf.receive()) == ['a']
        buf.put('a', q('a', 2))
        buf.close(FeedError('gone'))
        assert (await buf.receive())['a']['last'] == 2  # pending still delivered
        with pytest.raises(FeedError, match='gone'):
            await buf.receive()
        plain = QuoteBuffer()
        plain.close()
        with pytest.raises(BufferClosed):
            await plain.receive()
        assert [b async for b in plain] == []

    trio.run(main)


# -- FeedBus -------------------------------------------------------------------------

def test_bus_one_upstream_fanout_and_slow_subscriber(piker_env):
    """One upstream per fqme; a subscriber that never reads neither blocks the
    upstream nor the fast subscriber, and stays bounded."""
    confdir, _ = piker_env
    write_sim_conf(confdir, seed=1, quote_rate=0.0)

    async def main():
        async with trio.open_nursery() as n:
            bus = FeedBus(simmod, 'sim', n)
            fast, slow = QuoteBuffer(), QuoteBuffer()
            downs = []
            mkts, first = await bus.subscribe(fast, ['btcusdt.sim', 'ethusdt.sim'], downs.append)
            assert mkts['btcusdt.sim'].fqme == 'btcusdt.sim'
            assert first['btcusdt.sim']['symbol'] == 'btcusdt.sim'
            await bus.subscribe(slow, ['btcusdt.sim'], downs.append)
            assert bus.upstreams() == {'btcusdt.sim': 2, 'ethusdt.sim': 1}

            market = simmod.get_market('btcusdt')
            start = market.walk.steps
            got = 0
            with trio.fail_after(10):
                while got < 2000:
                    batch = await fast.receive()
                    got += len(batch)
            # the upstream ran far ahead; the slow buffer holds one quote
            assert market.walk.steps - start >= 2000
            assert len(slow) == 1 and slow.conflated > 100
            # ...whose ticks are the merged history (capped)
            merged = slow.drain()['btcusdt.sim']
            assert len(merged['ticks']) == slow.max_ticks

            bus.unsubscribe(fast)
            assert bus.upstreams() == {'btcusdt.sim': 1}
            bus.unsubscribe(slow)
            assert bus.upstreams() == {}
            assert downs == []
            n.cancel_scope.cancel()

    trio.run(main)


def test_bus_unknown_symbol_subscribes_nothing(piker_env):
    async def main():
        async with trio.open_nursery() as n:
            bus = FeedBus(simmod, 'sim', n)
            buf = QuoteBuffer()
            with pytest.raises(SymbolNotFound, match='did you mean'):
                await bus.subscribe(buf, ['btcusdt.sim', 'btcusd.sim'], print)
            assert bus.upstreams() == {}
            with pytest.raises(Exception, match="belongs to backend 'ib'"):
                await bus.subscribe(buf, ['btcusdt.ib'], print)
            n.cancel_scope.cancel()

    trio.run(main)


def test_bus_reports_failed_upstream(piker_env):
    """An upstream that dies after starting tells its subscribers."""

    class Flaky:
        __name__ = 'flaky'

        @staticmethod
        async def get_mkt_info(key):
            return await simmod.get_mkt_info(key)

        @staticmethod
        async def stream_quotes(send_chan, keys, *, task_status=trio.TASK_STATUS_IGNORED):
            task_status.started({k: dict(simmod.Walk(simmod.MARKETS[k], 0).quote()) for k in keys})
            await trio.sleep(0.01)
            raise RuntimeError('exchange hung up')

    async def main():
        async with trio.open_nursery() as n:
            bus = FeedBus(Flaky, 'sim', n)
            buf = QuoteBuffer()
            downs: list = []
            await bus.subscribe(buf, ['btcusdt.sim'], lambda f, e: downs.append((f, e)))
            with trio.fail_after(5):
                while not downs:
                    await trio.sleep(0.01)
            fqme, err = downs[0]
            assert fqme == 'btcusdt.sim' and isinstance(err, FeedError)
            assert 'exchange hung up' in str(err)
            assert bus.upstreams() == {}

    trio.run(main)


def test_inf_rate_quotes_are_fast(piker_env):
    """Sanity: the unthrottled sim + fan-out produce >> 10k quotes/s."""
    confdir, _ = piker_env
    write_sim_conf(confdir, quote_rate=0.0)

    async def main():
        async with trio.open_nursery() as n:
            bus = FeedBus(simmod, 'sim', n)
            buf = QuoteBuffer()
            await bus.subscribe(buf, ['btcusdt.sim'], print)
            market = simmod.get_market('btcusdt')
            start, t0 = market.walk.steps, trio.current_time()
            await trio.sleep(0.3)
            rate = (market.walk.steps - start) / (trio.current_time() - t0)
            n.cancel_scope.cancel()
        return rate

    assert trio.run(main) > 10_000


def test_with_queued_ships_what_there_is_when_the_senders_close():
    """A sender loop takes its first message, then what else is queued; if
    the senders closed meanwhile, that is the end of the batch, not an
    `EndOfChannel` out of the loop (a script's `open_ems()` raised it on
    exit once its last orders were sent)."""
    import trio

    from piker.buffers import with_queued

    send, recv = trio.open_memory_channel(10)
    send.send_nowait('a')
    send.send_nowait('b')
    send.close()
    assert with_queued(recv.receive_nowait(), recv, 5) == ['a', 'b']
    send2, recv2 = trio.open_memory_channel(10)
    send2.send_nowait('x')
    assert with_queued(recv2.receive_nowait(), recv2, 5) == ['x']
