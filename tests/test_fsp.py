"""Indicator math (issue 16 build item 2): the full compute equals the
bar-by-bar updates (live bar recomputed many times too), values on known
series, parameter and conf.toml errors, and the actor-free `Engine`."""
from __future__ import annotations

import numpy as np
import pytest

from piker.fsp import (
    Delta,
    Growing,
    IndicatorError,
    get_indicator,
    known,
    merge,
    select,
)
from piker.ohlc import OHLC_DTYPE
from tests._fsp_fixtures import fsp_registry  # noqa: F401 (a fixture)

BUILTINS = ['dollar_volume', 'ema', 'rsi', 'sma', 'vwap']



pytestmark = pytest.mark.usefixtures('fsp_registry')


def mk_ohlc(n: int, seed: int = 1, t0: int = 1_700_000_000, tf: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    a = np.empty(n, dtype=OHLC_DTYPE)
    a['time'] = t0 + tf * np.arange(n)
    a['open'] = np.r_[close[0], close[:-1]]
    a['close'] = close
    a['high'] = np.maximum(a['open'], close) + rng.uniform(0, 0.5, n)
    a['low'] = np.minimum(a['open'], close) - rng.uniform(0, 0.5, n)
    a['volume'] = rng.uniform(0, 10, n)
    return a


def series(close: list[float], volume: list[float] | None = None) -> np.ndarray:
    a = np.zeros(len(close), dtype=OHLC_DTYPE)
    a['time'] = 60 * np.arange(len(close))
    a['open'] = a['high'] = a['low'] = a['close'] = close
    a['volume'] = volume if volume is not None else 1.0
    return a


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(known())
    assert get_indicator('sma').pane == 'overlay'
    assert get_indicator('rsi').pane == 'subplot'
    assert get_indicator('rsi').levels == (30.0, 70.0)


@pytest.mark.parametrize('name', BUILTINS)
def test_full_compute_equals_bar_by_bar_updates(name):
    """Bars arrive one at a time and the live bar trades 3 times before the
    next opens (each tick recomputes it from the bar before): the result
    must equal one full compute. The series crosses a UTC day (VWAP)."""
    ind = get_indicator(name)
    full_bars = mk_ohlc(400, t0=86400 * 20000 - 60 * 150)
    want = ind.compute(full_bars)
    out = ind.empty(0)
    for i in range(len(full_bars)):
        final = full_bars[i]
        for k in range(3):
            bars = full_bars[:i + 1].copy()
            # the live bar's intermediate states, then its final one
            bars['close'][-1] = final['close'] + (2 - k) * 0.7
            bars['volume'][-1] = final['volume'] * (k + 1) / 3
            if k == 2:
                bars[-1] = final
            out = ind.update(bars, out, i)
    for f in ind.outputs + ind.state:
        np.testing.assert_allclose(out[f], want[f], rtol=1e-9, atol=1e-9, equal_nan=True)
    assert np.isfinite(want[ind.outputs[0]][-100:]).all()


def test_sma_ema_known_values():
    c = series([1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(
        get_indicator('sma').compute(c, length=3)['sma'], [np.nan, np.nan, 2, 3, 4, 5])
    # alpha = 2 / (3 + 1) = 0.5, seeded with the first close
    np.testing.assert_allclose(
        get_indicator('ema').compute(c, length=3)['ema'],
        [1, 1.5, 2.25, 3.125, 4.0625, 5.03125])


def test_rsi_known_values():
    rsi = get_indicator('rsi')
    up = rsi.compute(series([float(x) for x in range(20)]), length=14)['rsi']
    assert np.isnan(up[:14]).all() and (up[14:] == 100).all()
    # alternating +1/-1: average gain == average loss
    zig = rsi.compute(series([10.0 + (i % 2) for i in range(30)]), length=14)['rsi']
    np.testing.assert_allclose(zig[14:], 50.0, atol=4.0)
    # Wilder, length 2, by hand: gains 1,0,2 losses 0,1,0
    # seed (bar 2): up=(1+0)/2=.5, down=(0+1)/2=.5 -> 50
    # bar 3: up=(.5*1+2)/2=1.25, down=(.5*1+0)/2=.25 -> 100-100/(1+5)=83.333
    v = rsi.compute(series([1.0, 2.0, 1.0, 3.0]), length=2)['rsi']
    np.testing.assert_allclose(v[2:], [50.0, 100 - 100 / 6])


def test_vwap_and_dollar_volume_known_values():
    a = series([10.0, 20.0, 30.0], volume=[1.0, 3.0, 0.0])
    # one session: (10*1 + 20*3) / 4, then unchanged by a bar without volume
    np.testing.assert_allclose(get_indicator('vwap').compute(a)['vwap'], [10.0, 17.5, 17.5])
    a['time'] = [86400 - 60, 86400, 86460]       # a new UTC day at bar 1
    np.testing.assert_allclose(get_indicator('vwap').compute(a)['vwap'], [10.0, 20.0, 20.0])
    np.testing.assert_allclose(
        get_indicator('dollar_volume').compute(a)['dollar_volume'], [10.0, 60.0, 0.0])


def test_bad_names_and_parameters_are_clear_errors():
    with pytest.raises(IndicatorError, match=r"unknown indicator 'smaa'; known: .*sma"):
        select('smaa')
    with pytest.raises(IndicatorError, match=r"'sma' has no parameter 'len'; parameters: length"):
        select('sma', len=3)
    with pytest.raises(IndicatorError, match=r"'sma' parameter 'length': expected int, got 'x'"):
        select('sma', length='x')
    with pytest.raises(IndicatorError, match=r'length must be >= 1'):
        get_indicator('sma').compute(mk_ohlc(10), length=0)
    assert select('sma', length=50).key == 'sma(50)'


def test_delta_merge_is_apply_then_apply():
    dt = np.dtype([('v', 'f8')])

    def rows(*vs: float) -> np.ndarray:
        return np.array([(v,) for v in vs], dtype=dt)

    base = rows(*range(10))
    a = Delta(8, {'x': rows(80.0, 90.0, 100.0)})      # last 2 rewritten + 1 new
    b = Delta(10, {'x': rows(101.0, 110.0)})           # the new one again + 1
    c = Delta(3, {'x': rows(-3.0)})                     # a shorter reload
    for seq in ([a, b], [b, c], [a, b, c], [c, a]):
        one, two = Growing(dt), Growing(dt)
        one.apply(base, 0)
        two.apply(base, 0)
        folded = seq[0]
        for d in seq:
            one.apply(d.arrays['x'], d.start)
        for d in seq[1:]:
            folded = merge(folded, d)
        two.apply(folded.arrays['x'], folded.start)
        np.testing.assert_array_equal(one.view, two.view)
    wire = Delta.from_msg(merge(a, b).to_msg())
    assert wire.start == 8 and wire.arrays['x']['v'].tolist() == [80.0, 90.0, 101.0, 110.0]


def test_engine_streams_output_deltas_and_isolates_a_failing_indicator():
    from piker.fsp import Engine, indicator

    @indicator('boom_test', pane='subplot')
    def boom_test(ohlc, out, start):
        if len(ohlc) > 50:
            raise RuntimeError('bad bar')
        out['boom_test'][start:] = 1.0

    bars = mk_ohlc(60)
    eng = Engine([select('sma', length=5), select('boom_test')])
    d = eng.apply(Delta(0, {'ohlc': bars[:40]}))
    assert d.start == 0 and set(d.arrays) == {'sma(5)', 'boom_test'}
    assert len(d.arrays['sma(5)']) == 40
    d = eng.apply(Delta(39, {'ohlc': bars[39:60]}))
    assert d.start == 39 and set(d.arrays) == {'sma(5)'}
    assert 'RuntimeError: bad bar' in d.errors['boom_test']
    want = get_indicator('sma').compute(bars, length=5)['sma'][39:]
    np.testing.assert_allclose(d.arrays['sma(5)']['sma'], want)
    d = eng.apply(Delta(59, {'ohlc': bars[59:]}))
    assert set(d.arrays) == {'sma(5)'} and not d.errors   # reported once, stays off


def test_the_actor_drops_malformed_bar_deltas_and_carries_on():
    """A daemon never dies on a bad message: malformed deltas are skipped."""
    import trio

    from piker.fsp._engine import _decoded

    good = Delta(0, {'ohlc': mk_ohlc(3)}).to_msg()
    wrong_fields = Delta(0, {'ohlc': np.zeros(2, dtype=[('x', 'f8')])}).to_msg()
    msgs = [{'start': 'x'}, {'start': -1, 'arrays': {}}, {'start': 0, 'arrays': {}},
            {'start': 0, 'arrays': {'ohlc': {'dtype': [], 'shape': [1], 'data': b'1'}}},
            wrong_fields, good]

    async def stream():
        for m in msgs:
            yield m

    async def main():
        return [d async for d in _decoded(stream())]

    out = trio.run(main)
    assert len(out) == 1 and len(out[0].arrays['ohlc']) == 3
