"""The dark book: trigger semantics, atomic firing, padding, and the index
checked against a naive scan for random books and quote streams."""
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piker.clearing import DarkBook, Triggered, pad_price

FQME = 'btcusdt.sim'


def q(*ticks: tuple[str, float]) -> dict:
    return {'symbol': FQME, 'ticks': [{'type': t, 'price': p, 'size': 1.0} for t, p in ticks]}


def fired(book: DarkBook, *ticks, fqme: str = FQME) -> list[str]:
    return [t.oid for t in book.process_quote(fqme, q(*ticks))]


# ---- pad_price ------------------------------------------------------------

@pytest.mark.parametrize('price,action,tick,n,want', [
    (100.0, 'buy', '0.01', 5, 100.05),
    (100.0, 'sell', '0.01', 5, 99.95),
    (0.1, 'buy', '0.01', 5, 0.15),            # exact, not 0.15000000000000002
    (0.3, 'sell', '0.1', 2, 0.1),
    (100.033, 'buy', '0.05', 5, 100.30),      # off-grid: snapped away from the market
    (100.033, 'sell', '0.05', 5, 99.75),
    (101.0, 'buy', '0.25', 0, 101.0),
    (101.1, 'buy', '0.25', 0, 101.25),
    (101.1, 'sell', '0.25', 0, 101.0),
    (0.02, 'sell', '0.01', 5, 0.01),          # never below one tick
    (123.456, 'alert', '0.01', 5, 123.456),   # alerts are never submitted
    (30000.5, 'buy', Decimal('0.5'), 3, 30002.0),
    (7.0, 'buy', 1, 2, 9.0),
])
def test_pad_price(price, action, tick, n, want):
    assert pad_price(price, action, tick, n) == want


@pytest.mark.parametrize('args', [
    (1.0, 'buy', '0.01', -1),
    (1.0, 'buy', '0', 1),
    (1.0, 'buy', '-0.01', 1),
    (math.nan, 'buy', '0.01', 1),
    (math.inf, 'sell', '0.01', 1),
    (1.0, 'hold', '0.01', 1),
])
def test_pad_price_refuses(args):
    with pytest.raises(ValueError):
        pad_price(*args)


@settings(derandomize=True)
@given(
    price=st.decimals(min_value='0.01', max_value='100000', places=4),
    tick=st.sampled_from(['0.01', '0.05', '0.25', '1', '0.0001']),
    n=st.integers(0, 20),
)
def test_pad_price_on_grid_and_at_least_n_ticks(price, tick, n):
    t = Decimal(tick)
    buy = Decimal(str(pad_price(float(price), 'buy', tick, n)))
    sell = Decimal(str(pad_price(float(price), 'sell', tick, n)))
    assert buy % t == 0 and sell % t == 0
    assert buy - price >= n * t
    assert buy - price < (n + 1) * t
    if price - n * t > t:
        assert price - sell >= n * t
        assert price - sell < (n + 1) * t


# ---- trigger semantics -------------------------------------------------------

def test_direction_fixed_from_last_price():
    book = DarkBook()
    assert book.arm('up', FQME, 'buy', 101.0, last_price=100.0).direction == 'up'
    assert book.arm('down', FQME, 'buy', 99.0, last_price=100.0).direction == 'down'
    # a level at the last price fires when the price falls (back) to it
    assert book.arm('at', FQME, 'buy', 100.0, last_price=100.0).direction == 'down'


def test_up_fires_when_price_rises_to_level():
    book = DarkBook()
    book.arm('b', FQME, 'buy', 101.0, last_price=100.0)
    assert fired(book, ('ask', 100.99)) == []
    assert fired(book, ('ask', 101.0)) == ['b']
    assert len(book) == 0


def test_down_fires_when_price_falls_to_level():
    book = DarkBook()
    book.arm('s', FQME, 'sell', 99.0, last_price=100.0)
    assert fired(book, ('bid', 99.01)) == []
    assert fired(book, ('bid', 98.0)) == ['s']


@pytest.mark.parametrize('action,fires_on', [
    ('buy', {'ask', 'last', 'trade'}),
    ('sell', {'bid', 'last', 'trade'}),
    ('alert', {'last', 'trade'}),
])
def test_tick_sources(action, fires_on):
    for tick_type in ('ask', 'bid', 'last', 'trade', 'bsize', 'dark_trade'):
        book = DarkBook()
        book.arm('x', FQME, action, 101.0, last_price=100.0)
        got = book.process_quote(FQME, q((tick_type, 105.0)))
        assert bool(got) == (tick_type in fires_on), tick_type
        if got:
            assert got[0].tick_type == tick_type


def test_fired_entry_is_gone_and_cannot_be_cancelled():
    book = DarkBook()
    book.arm('b', FQME, 'buy', 101.0, last_price=100.0)
    (trig,) = book.process_quote(FQME, q(('trade', 102.0), ('ask', 103.0)))
    assert isinstance(trig, Triggered)
    assert (trig.price, trig.tick_type, trig.level) == (102.0, 'trade', 101.0)
    assert 'b' not in book
    assert book.disarm('b') is False
    assert fired(book, ('ask', 200.0)) == []


def test_disarm_then_no_fire():
    book = DarkBook()
    book.arm('b', FQME, 'buy', 101.0, last_price=100.0)
    assert book.disarm('b') is True
    assert book.disarm('b') is False
    assert fired(book, ('ask', 200.0)) == []


def test_arm_same_oid_replaces():
    book = DarkBook()
    book.arm('b', FQME, 'buy', 101.0, last_price=100.0)
    book.arm('b', FQME, 'buy', 102.0, last_price=100.0)
    assert len(book) == 1
    assert fired(book, ('ask', 101.5)) == []
    assert fired(book, ('ask', 102.0)) == ['b']


def test_gap_fires_every_crossed_level_in_order():
    book = DarkBook()
    for i, lvl in enumerate([101.0, 102.0, 103.0, 110.0]):
        book.arm(f'u{i}', FQME, 'buy', lvl, last_price=100.0)
    for i, lvl in enumerate([99.0, 98.0]):
        book.arm(f'd{i}', FQME, 'sell', lvl, last_price=100.0)
    assert fired(book, ('ask', 103.0)) == ['u0', 'u1', 'u2']
    assert fired(book, ('bid', 50.0)) == ['d1', 'd0']
    assert [e.oid for e in book.entries()] == ['u3']


def test_submit_price_is_padded():
    book = DarkBook()
    book.arm('b', FQME, 'buy', 101.0, last_price=100.0, price_tick='0.01', pad_ticks=5)
    book.arm('s', FQME, 'sell', 99.0, last_price=100.0, price_tick=Decimal('0.5'), pad_ticks=2)
    book.arm('a', FQME, 'alert', 99.5, last_price=100.0, price_tick='0.01', pad_ticks=5)
    book.arm('n', FQME, 'buy', 102.0, last_price=100.0)  # no tick: no padding
    (b,) = book.process_quote(FQME, q(('ask', 101.013)))
    assert b.submit_price == 101.07
    trigs = {t.oid: t for t in book.process_quote(FQME, q(('trade', 98.7), ('ask', 103)))}
    assert trigs['s'].submit_price == 97.5
    assert trigs['a'].submit_price == 98.7
    assert trigs['n'].submit_price == 103.0


def test_quote_without_ticks_uses_top_of_book():
    book = DarkBook()
    book.arm('b', FQME, 'buy', 101.0, last_price=100.0)
    book.arm('s', FQME, 'sell', 99.0, last_price=100.0)
    got = book.process_quote(FQME, {'ask': 101.5, 'bid': 100.5, 'last': 101.0})
    assert [t.oid for t in got] == ['b']


def test_markets_are_separate_and_bad_ticks_skipped():
    book = DarkBook()
    book.arm('b', FQME, 'buy', 101.0, last_price=100.0)
    book.arm('e', 'ethusdt.sim', 'buy', 101.0, last_price=100.0)
    assert book.fqmes() == {FQME, 'ethusdt.sim'}
    assert book.process_quote('nope.sim', q(('ask', 500.0))) == []
    assert fired(book, ('ask', math.nan), ('ask', math.inf), ('ask', None)) == []
    assert fired(book, ('ask', 200.0), fqme='ethusdt.sim') == ['e']
    assert book.fqmes() == {FQME}
    assert [e.oid for e in book.entries(FQME)] == ['b']
    assert book.get('b').action == 'buy' and book.get('e') is None


@pytest.mark.parametrize('kw', [
    dict(action='hold'),
    dict(level=math.nan),
    dict(level=math.inf),
    dict(last_price=math.nan),
    dict(pad_ticks=-1),
    dict(price_tick=0),
])
def test_arm_refuses_bad_input(kw):
    args = dict(oid='x', fqme=FQME, action='buy', level=101.0, last_price=100.0)
    args.update(kw)
    book = DarkBook()
    with pytest.raises(ValueError):
        book.arm(**args)
    assert len(book) == 0


# ---- the index against a naive scan ----------------------------------------

_WATCH = {
    'buy': {'ask', 'last', 'trade'},
    'sell': {'bid', 'last', 'trade'},
    'alert': {'last', 'trade'},
}


class NaiveBook:
    """The obvious O(n)-per-tick reference implementation."""

    def __init__(self):
        self.orders: dict[str, tuple] = {}

    def arm(self, oid, fqme, action, level, last_price):
        self.orders[oid] = (fqme, action, level, 'up' if level > last_price else 'down')

    def disarm(self, oid):
        return self.orders.pop(oid, None) is not None

    def process_quote(self, fqme, quote):
        out = {}
        for tick in quote['ticks']:
            for oid, (f, action, level, direction) in list(self.orders.items()):
                if f != fqme or tick['type'] not in _WATCH[action]:
                    continue
                p = tick['price']
                if (direction == 'up' and p >= level) or (direction == 'down' and p <= level):
                    out[oid] = (p, tick['type'])
                    del self.orders[oid]
        return out


# prices on a coarse grid so levels and ticks collide often (equality edges)
price = st.integers(90, 110).map(lambda i: i / 2)
arm_op = st.tuples(
    st.just('arm'), st.integers(0, 30), st.sampled_from([FQME, 'ethusdt.sim']),
    st.sampled_from(['buy', 'sell', 'alert']), price, price,
)
disarm_op = st.tuples(st.just('disarm'), st.integers(0, 30))
quote_op = st.tuples(
    st.just('quote'), st.sampled_from([FQME, 'ethusdt.sim']),
    st.lists(st.tuples(st.sampled_from(['ask', 'bid', 'last', 'trade', 'bsize']), price),
             min_size=0, max_size=4),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(ops=st.lists(st.one_of(arm_op, disarm_op, quote_op), max_size=60))
def test_index_matches_naive_scan(ops):
    book, ref = DarkBook(), NaiveBook()
    for op in ops:
        if op[0] == 'arm':
            _, i, fqme, action, level, last = op
            book.arm(f'o{i}', fqme, action, level, last_price=last)
            ref.arm(f'o{i}', fqme, action, level, last)
        elif op[0] == 'disarm':
            assert book.disarm(f'o{op[1]}') == ref.disarm(f'o{op[1]}')
        else:
            _, fqme, ticks = op
            quote = q(*ticks)
            if not ticks:
                quote['ticks'] = [{'type': 'bsize', 'price': 1.0}]
            got = book.process_quote(fqme, quote)
            want = ref.process_quote(fqme, quote)
            assert {t.oid: (t.price, t.tick_type) for t in got} == want
            assert len(got) == len(want)  # each fired exactly once
        assert len(book) == len(ref.orders)
        assert {e.oid for e in book.entries()} == set(ref.orders)
