"""Markets and fqmes: `Asset`, `MktPair`, `unpack_fqme()` and friends."""
from __future__ import annotations

import math
from decimal import ROUND_DOWN, ROUND_UP, Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piker.accounting import (
    Asset,
    MktPair,
    mk_fqme,
    quantize_to_tick,
    strip_broker,
    tick_digits,
    to_decimal,
    unpack_fqme,
)

FAST = settings(max_examples=150, deadline=None)


def mk_btc(**kw) -> MktPair:
    fields = dict(
        dst=Asset(name='btc', atype='crypto', tx_tick=Decimal('1e-8')),
        src=Asset(name='usdt', atype='crypto', tx_tick=Decimal('0.01')),
        price_tick=Decimal('0.01'),
        size_tick=Decimal('0.001'),
        broker='sim',
        bs_mktid='BTCUSDT',
    )
    fields.update(kw)
    return MktPair(**fields)


def mk_future() -> MktPair:
    return MktPair(
        dst=Asset(name='mnq', atype='future', tx_tick=Decimal(1)),
        src=Asset(name='usd', atype='fiat', tx_tick=Decimal('0.01')),
        price_tick=Decimal('0.25'),
        size_tick=Decimal(1),
        broker='ib',
        venue='cme',
        expiry='20261218',
        fqme_without_src=True,
    )


# --- unpack_fqme ----------------------------------------------------------

@pytest.mark.parametrize('fqme, expect', [
    ('btcusdt.sim', ('sim', 'btcusdt', '', '')),
    ('mnq.cme.ib', ('ib', 'mnq', 'cme', '')),
    ('mnq.cme.20261218.ib', ('ib', 'mnq', 'cme', '20261218')),
    ('BTCUSDT.SIM', ('sim', 'btcusdt', '', '')),
    ('MNQ.CME.20261218.IB', ('ib', 'mnq', 'cme', '20261218')),
])
def test_unpack_fqme_forms(fqme, expect):
    assert unpack_fqme(fqme) == expect


@pytest.mark.parametrize('bad, needle', [
    ('', 'empty'),
    ('btcusdt', 'no broker'),
    ('a.b.c.d.e', '5 parts'),
    ('btcusdt..sim', 'empty part'),
    ('.sim', 'empty part'),
    ('btcusdt.', 'empty part'),
    ('btc usdt.sim', 'whitespace'),
    (' btcusdt.sim', 'whitespace'),
    ('btcusdt.sim\n', 'whitespace'),
    ('btcusdt.sim\t', 'whitespace'),
    (None, 'string'),
    (123, 'string'),
])
def test_unpack_fqme_errors_are_helpful(bad, needle):
    with pytest.raises(ValueError) as exc:
        unpack_fqme(bad)
    msg = str(exc.value)
    assert needle in msg
    # every error shows what a valid fqme looks like
    assert 'btcusdt.sim' in msg and '<broker>' in msg


# --- mk_fqme / strip_broker ------------------------------------------------

def test_mk_fqme():
    assert mk_fqme('sim', 'btcusdt') == 'btcusdt.sim'
    assert mk_fqme('IB', 'MNQ', 'CME') == 'mnq.cme.ib'
    assert mk_fqme('ib', 'mnq', 'cme', '20261218') == 'mnq.cme.20261218.ib'


@pytest.mark.parametrize('args, needle', [
    (('', 'btcusdt'), 'broker'),
    (('sim', ''), 'pair'),
    (('sim', 'btc.usdt'), 'dots'),
    (('sim', 'btcusdt', 'bin ance'), 'whitespace'),
    (('ib', 'mnq', '', '20261218'), 'needs a venue'),
])
def test_mk_fqme_errors(args, needle):
    with pytest.raises(ValueError, match=needle):
        mk_fqme(*args)


def test_strip_broker_strips_the_suffix_only():
    assert strip_broker('btcusdt.sim') == 'btcusdt'
    assert strip_broker('mnq.cme.20261218.ib') == 'mnq.cme.20261218'
    # a pair containing the broker name must survive (str.replace would eat it)
    assert strip_broker('simusd.sim') == 'simusd'
    assert strip_broker('ibm.nyse.ib') == 'ibm.nyse'
    assert strip_broker('BTCUSDT.SIM', broker='sim') == 'btcusdt'


def test_strip_broker_errors():
    with pytest.raises(ValueError, match="broker 'sim', not 'ib'"):
        strip_broker('btcusdt.sim', broker='ib')
    with pytest.raises(ValueError, match='no broker'):
        strip_broker('btcusdt')


_token = st.text(
    alphabet=st.sampled_from('abcdefghijklmnopqrstuvwxyz0123456789_-'),
    min_size=1, max_size=12,
)


@FAST
@given(broker=_token, pair=_token, venue=st.one_of(st.just(''), _token),
       suffix=st.one_of(st.just(''), _token))
def test_fqme_roundtrip_property(broker, pair, venue, suffix):
    if suffix and not venue:
        with pytest.raises(ValueError):
            mk_fqme(broker, pair, venue, suffix)
        return
    fqme = mk_fqme(broker, pair, venue, suffix)
    assert unpack_fqme(fqme) == (broker, pair, venue, suffix)
    assert unpack_fqme(fqme.upper()) == (broker, pair, venue, suffix)
    assert strip_broker(fqme) + '.' + broker == fqme
    assert strip_broker(fqme, broker) == '.'.join(t for t in (pair, venue, suffix) if t)


@FAST
@given(st.text(max_size=30))
def test_unpack_fqme_never_crashes_unexpectedly(text):
    try:
        broker, pair, venue, suffix = unpack_fqme(text)
    except ValueError:
        return
    assert broker and pair
    assert mk_fqme(broker, pair, venue, suffix) == text.lower()


# --- tick helpers ----------------------------------------------------------

@pytest.mark.parametrize('tick, digits', [
    (Decimal('0.01'), 2), (Decimal('0.25'), 2), (Decimal('1'), 0),
    (Decimal('5'), 0), (Decimal('1e-8'), 8), (Decimal('0.0100'), 2),
    (Decimal('1E+1'), 0), (0.001, 3), ('0.5', 1),
])
def test_tick_digits(tick, digits):
    assert tick_digits(tick) == digits


def test_to_decimal():
    assert to_decimal(0.1) == Decimal('0.1')
    assert to_decimal(3) == Decimal(3)
    assert to_decimal('2.50') == Decimal('2.50')
    for bad in (float('nan'), float('inf'), 'abc', True, None):
        with pytest.raises(ValueError):
            to_decimal(bad)


def test_quantize_to_tick():
    assert quantize_to_tick(1.13, Decimal('0.25')) == Decimal('1.25')
    assert quantize_to_tick(1.12, Decimal('0.25')) == Decimal('1.00')
    # half-even: ties go to the even multiple
    assert quantize_to_tick(0.125, Decimal('0.25')) == Decimal('0')
    assert quantize_to_tick(0.375, Decimal('0.25')) == Decimal('0.5')
    assert quantize_to_tick(2.5, Decimal(1)) == 2
    assert quantize_to_tick(3.5, Decimal(1)) == 4
    assert quantize_to_tick(1.999, Decimal('0.01'), ROUND_DOWN) == Decimal('1.99')
    assert quantize_to_tick(1.001, Decimal('0.01'), ROUND_UP) == Decimal('1.01')
    neg_zero = quantize_to_tick(-0.001, Decimal('0.01'))
    assert neg_zero == 0 and not neg_zero.is_signed()
    with pytest.raises(ValueError, match='tick must be > 0'):
        quantize_to_tick(1, Decimal(0))


@FAST
@given(
    value=st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    tick=st.sampled_from([Decimal('0.01'), Decimal('0.25'), Decimal('1'), Decimal('0.001'), Decimal('5')]),
)
def test_quantize_lands_on_grid_and_nearest(value, tick):
    q = quantize_to_tick(value, tick)
    assert q % tick == 0
    assert abs(q - to_decimal(value)) <= tick / 2


# --- Asset / MktPair -------------------------------------------------------

def test_mktpair_names():
    mkt = mk_btc()
    assert mkt.pair == 'btcusdt'
    assert mkt.fqme == 'btcusdt.sim'
    assert mkt.bs_fqme == 'btcusdt'
    assert mkt.price_tick_digits == 2
    assert mkt.size_tick_digits == 3
    assert unpack_fqme(mkt.fqme) == ('sim', 'btcusdt', '', '')


def test_mktpair_future_names():
    mkt = mk_future()
    assert mkt.pair == 'mnq'
    assert mkt.fqme == 'mnq.cme.20261218.ib'
    assert mkt.bs_fqme == 'mnq.cme.20261218'
    assert strip_broker(mkt.fqme) == mkt.bs_fqme
    assert mkt.price_tick_digits == 2 and mkt.size_tick_digits == 0


def test_stock_fqme_without_src():
    mkt = MktPair(
        dst=Asset(name='SIMCO', atype='stock', tx_tick=Decimal(1)),
        src=Asset(name='USD', atype='fiat', tx_tick=Decimal('0.01')),
        price_tick=Decimal('0.01'), size_tick=Decimal(1),
        broker='Sim', fqme_without_src=True,
    )
    assert mkt.fqme == 'simco.sim'
    assert mkt.dst.name == 'simco' and mkt.broker == 'sim'


def test_mktpair_is_lowercased_and_hashable():
    mkt = mk_btc(broker='SIM', venue='Binance')
    assert mkt.fqme == 'btcusdt.binance.sim'
    assert hash(mkt) == hash(mk_btc(broker='sim', venue='binance'))
    with pytest.raises(AttributeError):
        mkt.broker = 'ib'  # immutable: everyone shares one tick grid


def test_mktpair_quantize():
    mkt = mk_btc()
    assert mkt.quantize(1.23456) == 1.235
    assert mkt.quantize(1.23456, 'size') == 1.235
    assert mkt.quantize(100.005, 'price') == 100.0  # half-even
    assert mkt.quantize(100.015, 'price') == 100.02
    assert mkt.quantize(1.2349, rounding=ROUND_DOWN) == 1.234
    assert isinstance(mkt.quantize(1), float)
    fut = mk_future()
    assert fut.quantize(20001.13, 'price') == 20001.25
    assert fut.quantize(2.5) == 2.0
    with pytest.raises(ValueError, match='quantity_type'):
        mkt.quantize(1.0, 'volume')
    with pytest.raises(ValueError, match='non-finite'):
        mkt.quantize(float('nan'))


def test_mktpair_msgspec_roundtrip():
    for mkt in (mk_btc(), mk_future()):
        wire = mkt.to_builtins()
        # msgpack-ready: decimals travel as strings
        assert wire['price_tick'] == str(mkt.price_tick)
        back = msgspec.convert(wire, MktPair)
        assert back == mkt and back.fqme == mkt.fqme
        assert MktPair.from_msg(wire) == mkt
        # and through the real codec
        assert msgspec.msgpack.decode(msgspec.msgpack.encode(mkt), type=MktPair) == mkt


@pytest.mark.parametrize('kw, needle', [
    (dict(price_tick=Decimal(0)), 'price_tick must be > 0'),
    (dict(size_tick=Decimal('-0.1')), 'size_tick must be > 0'),
    (dict(size_tick=Decimal('nan')), 'size_tick must be finite'),
    (dict(broker=''), 'broker must not be empty'),
    (dict(broker='s.im'), 'dots'),
    (dict(expiry='20261218'), 'needs a venue'),
    (dict(venue='my venue'), 'whitespace'),
])
def test_mktpair_validation(kw, needle):
    with pytest.raises(ValueError, match=needle):
        mk_btc(**kw)


def test_mktpair_validation_at_ipc_boundary():
    wire = mk_btc().to_builtins()
    wire['price_tick'] = '0'
    with pytest.raises(msgspec.ValidationError, match='price_tick'):
        MktPair.from_msg(wire)
    wire = mk_btc().to_builtins()
    del wire['broker']
    with pytest.raises(msgspec.ValidationError, match='broker'):
        MktPair.from_msg(wire)


@pytest.mark.parametrize('kw, needle', [
    (dict(name=''), 'must not be empty'),
    (dict(name='b.tc'), 'dots'),
    (dict(atype=''), 'atype'),
    (dict(tx_tick=Decimal(0)), 'tx_tick'),
])
def test_asset_validation(kw, needle):
    fields = dict(name='btc', atype='crypto', tx_tick=Decimal('1e-8'))
    fields.update(kw)
    with pytest.raises(ValueError, match=needle):
        Asset(**fields)


def test_asset_lowercased():
    assert Asset(name='BTC', atype='crypto', tx_tick=Decimal(1)).name == 'btc'


def test_mktpair_copy_revalidates():
    mkt = mk_btc()
    assert mkt.copy({'venue': 'binance'}).fqme == 'btcusdt.binance.sim'
    assert mkt.fqme == 'btcusdt.sim'  # original untouched
    with pytest.raises(ValueError, match='size_tick'):
        mkt.copy({'size_tick': '0'})
    # a str for a Decimal field is coerced, and validated
    assert mkt.copy({'size_tick': '0.01'}).size_tick == Decimal('0.01')


def test_quantize_matches_float_round_for_power_of_ten_ticks():
    mkt = mk_btc()
    for v in (0.0004, 0.0006, 1.0, 12.3456789):
        assert math.isclose(mkt.quantize(v), round(v, 3))


def test_market_structs_are_keyword_only():
    with pytest.raises(TypeError):
        Asset('btc', 'crypto', Decimal(1))  # type: ignore[misc]
