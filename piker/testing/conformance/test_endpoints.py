"""Backend-level checks: the endpoints of `piker.brokers` called directly,
in this process (see the contract in `piker.brokers.__init__`)."""
from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import trio

from piker.accounting import MktPair, quantize_to_tick, strip_broker
from piker.brokers import SymbolNotFound, get_brokermod
from piker.data import OHLC_DTYPE

from ._harness import Harness, Quotes

QUOTE_KEYS = {'symbol': str, 'last': float, 'bid': float, 'ask': float, 'bsize': float,
              'asize': float, 'volume': float, 'time_ns': int, 'ticks': list}
TICK_TYPES = {'bid', 'ask', 'trade', 'last', 'gap'}
STARTED_WITHIN = 5.0  # s: `stream_quotes` must call `started()` this soon
UNKNOWN = 'nosuchmarketxyz'


def run(fn: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    async def main() -> Any:
        with trio.fail_after(timeout):
            return await fn()
    return trio.run(main)


def mod(harness: Harness) -> Any:
    return get_brokermod(harness.broker)


def bs(harness: Harness) -> str:
    return strip_broker(harness.fqme)


def test_mkt_info_ticks_quantize(harness: Harness, endpoints: Quotes) -> None:
    mkt = run(lambda: mod(harness).get_mkt_info(bs(harness)))
    assert isinstance(mkt, MktPair)
    assert mkt.broker == harness.broker and mkt.fqme == harness.fqme
    for tick in (mkt.price_tick, mkt.size_tick):
        assert isinstance(tick, Decimal) and tick > 0
        # a value off the grid lands on it, one on the grid stays put
        odd = tick * Decimal('1234.4')
        q = quantize_to_tick(odd, tick)
        assert q % tick == 0 and abs(q - odd) <= tick / 2, (tick, odd, q)
        assert quantize_to_tick(tick * 7, tick) == tick * 7


def test_search_finds_market(harness: Harness, endpoints: Quotes) -> None:
    found = run(lambda: mod(harness).symbol_search(harness.pattern))
    assert harness.fqme in found, f'{harness.pattern!r} -> {list(found)[:10]}'
    assert all(isinstance(m, MktPair) and m.fqme == k for k, m in found.items())


@pytest.mark.parametrize('timeframe', [1, 60])
def test_history_bars(harness: Harness, endpoints: Quotes, timeframe: int) -> None:
    bars = run(lambda: mod(harness).open_history(bs(harness), timeframe))
    assert isinstance(bars, np.ndarray) and bars.dtype == np.dtype(OHLC_DTYPE)
    assert len(bars) > 1
    t = bars['time']
    assert (np.diff(t) > 0).all(), 'bar times must increase'
    assert (t % timeframe == 0).all(), f'bar times must be aligned to {timeframe}s'
    assert (np.diff(t) % timeframe == 0).all()
    assert t[-1] <= time.time() + timeframe, 'no bars from the future'
    lo, hi = bars['low'], bars['high']
    for col in ('open', 'close'):
        assert (lo <= bars[col]).all() and (bars[col] <= hi).all(), f'low <= {col} <= high'
    assert np.isfinite(bars[['open', 'high', 'low', 'close', 'volume']].tolist()).all()
    assert (bars['volume'] >= 0).all()


@pytest.mark.parametrize('timeframe', [1, 60])
def test_history_time_range(harness: Harness, endpoints: Quotes, timeframe: int) -> None:
    """`open_history(.., start=, end=)`: only bars opening in `[start, end]`
    (both inclusive), and the ones the default window has there."""
    m, key = mod(harness), bs(harness)
    bars = run(lambda: m.open_history(key, timeframe))
    assert len(bars) > 10
    t = bars['time']
    start, end = int(t[len(t) // 4]), int(t[len(t) // 2])
    got = run(lambda: m.open_history(key, timeframe, start=start, end=end))
    assert got.dtype == np.dtype(OHLC_DTYPE)
    assert len(got), f'nothing in [{start}, {end}] though the default window has bars there'
    gt = got['time']
    assert gt.min() >= start and gt.max() <= end, (
        f'bars {gt.min()}..{gt.max()} outside the asked [{start}, {end}]')
    assert (np.diff(gt) > 0).all() and (gt % timeframe == 0).all()
    assert gt[-1] == end, 'the bar opening at `end` is in the range (inclusive)'
    # a start alone reaches up to now; an end alone stops there
    tail = run(lambda: m.open_history(key, timeframe, start=end))
    assert len(tail) and tail['time'].min() >= end
    head = run(lambda: m.open_history(key, timeframe, end=start))
    assert len(head) and head['time'].max() <= start


def test_history_unsupported_timeframe_is_value_error(harness: Harness, endpoints: Quotes) -> None:
    with pytest.raises(ValueError):
        run(lambda: mod(harness).open_history(bs(harness), 7))


def check_quote(quote: dict, key: str) -> None:
    missing = set(QUOTE_KEYS) - set(quote)
    assert not missing, f'quote lacks {sorted(missing)}: {quote}'
    for k, typ in QUOTE_KEYS.items():
        assert isinstance(quote[k], typ), f'{k}={quote[k]!r} is not {typ.__name__}'
    assert quote['symbol'] == key
    assert abs(quote['time_ns'] - time.time_ns()) < 60e9, 'time_ns is time.time_ns()'
    if not (math.isnan(quote['bid']) or math.isnan(quote['ask'])):
        assert quote['bid'] <= quote['ask'], quote
    for tick in quote['ticks']:
        assert tick['type'] in TICK_TYPES, tick
        assert isinstance(tick['price'], float) and isinstance(tick['size'], float), tick


def test_stream_quotes_starts_promptly_and_streams_valid_quotes(
    harness: Harness, endpoints: Quotes,
) -> None:
    key = bs(harness)

    async def main() -> list[dict]:
        send, recv = trio.open_memory_channel[dict](1000)
        async with trio.open_nursery() as n:
            t0 = time.monotonic()
            with trio.fail_after(STARTED_WITHIN):
                first = await n.start(mod(harness).stream_quotes, send, [key])
            took = time.monotonic() - t0
            assert set(first) == {key}, f'started() must map every market: {list(first)}'
            check_quote(first[key], key)
            # an update the test makes: it arrives, valid, with its values
            await endpoints.quote(bid=100.0, ask=100.5, bsize=2.0, asize=3.0)
            got: list[dict] = []
            with trio.fail_after(10):
                async for q in recv:
                    check_quote(q, key)
                    got.append(q)
                    if q['bid'] == 100.0 and q['ask'] == 100.5:
                        break
            n.cancel_scope.cancel()
        assert took < STARTED_WITHIN
        assert got[-1]['bsize'] == 2.0 and got[-1]['asize'] == 3.0
        assert {t['type'] for t in got[-1]['ticks']} & {'bid', 'ask'}
        assert len({id(q) for q in got}) == len(got), 'a fresh dict per quote'
        return got

    run(main)


@pytest.mark.parametrize('endpoint', ['get_mkt_info', 'open_history', 'stream_quotes'])
def test_unknown_market_is_symbol_not_found(
    harness: Harness, endpoints: Quotes, endpoint: str,
) -> None:
    m = mod(harness)

    async def call() -> None:
        if endpoint == 'get_mkt_info':
            await m.get_mkt_info(UNKNOWN)
        elif endpoint == 'open_history':
            await m.open_history(UNKNOWN, 60)
        else:
            send, _ = trio.open_memory_channel[dict](10)
            async with trio.open_nursery() as n:
                await n.start(m.stream_quotes, send, [UNKNOWN])
                n.cancel_scope.cancel()
                raise AssertionError('stream_quotes started an unknown market')

    with pytest.raises(SymbolNotFound):
        try:
            run(call)
        except BaseExceptionGroup as eg:  # from the nursery: the one error in it
            (err,) = eg.exceptions
            raise err from None
