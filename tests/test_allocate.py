"""Order sizing: `Allocator` and `mk_allocator()`."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piker.accounting import (
    Allocator,
    Asset,
    MktPair,
    Position,
    Transaction,
    mk_allocator,
)

FAST = settings(max_examples=150, deadline=None)
T0 = datetime(2026, 1, 2, tzinfo=UTC)


def mk_mkt(size_tick: str = '0.001') -> MktPair:
    return MktPair(
        dst=Asset(name='btc', atype='crypto', tx_tick=Decimal('1e-8')),
        src=Asset(name='usdt', atype='crypto', tx_tick=Decimal('0.01')),
        price_tick=Decimal('0.01'), size_tick=Decimal(size_tick), broker='sim',
    )


def pos(size: float, ppu: float = 100.0, fqme: str = 'btcusdt.sim') -> Position:
    return Position(fqme=fqme, size=size, ppu=ppu)


def fill(p: Position, size: float, price: float, n: int) -> None:
    p.add_clear(Transaction(fqme=p.fqme, tid=str(n), size=size, price=price, dt=T0))


# --- mk_allocator / validation -----------------------------------------------

def test_mk_allocator_honours_every_kwarg():
    mkt = mk_mkt()
    alloc = mk_allocator(
        mkt, account='margin', size_unit='units', units_limit=7.5,
        currency_limit=123.0, slots=3,
    )
    assert alloc.mkt is mkt
    assert (alloc.account, alloc.size_unit, alloc.units_limit,
            alloc.currency_limit, alloc.slots) == ('margin', 'units', 7.5, 123.0, 3)
    assert alloc.limit == 7.5
    assert alloc.copy({'size_unit': 'currency'}).limit == 123.0


def test_mk_allocator_defaults():
    alloc = mk_allocator(mk_mkt())
    assert (alloc.account, alloc.size_unit, alloc.currency_limit, alloc.slots) == (
        'paper', 'currency', 5000.0, 4,
    )
    assert alloc.units_limit is None


def test_mk_allocator_rejects_unknown_kwargs():
    with pytest.raises(TypeError):
        mk_allocator(mk_mkt(), limit=5)


@pytest.mark.parametrize('kw, needle', [
    (dict(currency_limit=0), 'currency_limit must be a finite number > 0'),
    (dict(currency_limit=-5.0), 'currency_limit must be a finite number > 0'),
    (dict(currency_limit=float('inf')), 'currency_limit must be a finite'),
    (dict(units_limit=float('nan')), 'units_limit must be a finite'),
    (dict(units_limit='10'), 'units_limit must be a number'),
    (dict(size_unit='units'), "size_unit 'units' needs units_limit"),
    (dict(size_unit='units', units_limit=None, currency_limit=None), 'needs units_limit'),
    (dict(size_unit='usd'), "size_unit must be 'units' or 'currency'"),
    (dict(slots=0), 'slots must be an integer >= 1'),
    (dict(slots=2.5), 'slots must be an integer >= 1'),
    (dict(slots=True), 'slots must be an integer >= 1'),
    (dict(account=''), 'account must be a non-empty string'),
])
def test_validation(kw, needle):
    with pytest.raises(ValueError, match=needle):
        mk_allocator(mk_mkt(), **kw)


def test_copy_revalidates():
    alloc = mk_allocator(mk_mkt(), currency_limit=1000.0)
    with pytest.raises(ValueError, match='slots'):
        alloc.copy({'slots': 0})
    with pytest.raises(ValueError, match='needs units_limit'):
        alloc.copy({'size_unit': 'units'})
    assert alloc.slots == 4


def test_allocator_roundtrips_msgspec():
    alloc = mk_allocator(mk_mkt(), size_unit='units', units_limit=2.0)
    assert msgspec.convert(alloc.to_builtins(), Allocator) == alloc


@pytest.mark.parametrize('args, needle', [
    ((None, None, 100.0, 'hold'), "action must be 'buy', 'sell' or 'alert'"),
    ((None, None, 0.0, 'buy'), 'price must be > 0'),
    ((None, None, -1.0, 'buy'), 'price must be > 0'),
    ((None, None, float('nan'), 'buy'), 'price must be finite'),
    ((None, None, '100', 'buy'), 'price must be a number'),
    ((None, pos(1.0, fqme='ethusdt.sim'), 100.0, 'buy'), "live_pos is for 'ethusdt.sim'"),
    ((pos(1.0, fqme='ethusdt.sim'), None, 100.0, 'buy'), "startup_pos is for 'ethusdt.sim'"),
])
def test_next_order_info_validation(args, needle):
    alloc = mk_allocator(mk_mkt(), currency_limit=1000.0)
    with pytest.raises(ValueError, match=needle):
        alloc.next_order_info(*args)


# --- entries -------------------------------------------------------------------

def test_currency_entry_from_flat():
    alloc = mk_allocator(mk_mkt(), currency_limit=1000.0, slots=4, account='acct1')
    info = alloc.next_order_info(None, pos(0.0), 100.0, 'buy')
    assert info == {
        'size': 2.5, 'size_digits': 3, 'notional': 250.0, 'slots_used': 1.0,
        'account': 'acct1', 'action': 'buy', 'kind': 'entry',
    }
    # a short entry is sized the same way
    assert alloc.next_order_info(None, None, 100.0, 'sell')['size'] == 2.5


def test_units_entry_and_tick_rounding_down():
    alloc = mk_allocator(mk_mkt(), size_unit='units', units_limit=10.0, slots=3)
    info = alloc.next_order_info(None, None, 50.0, 'buy')
    assert info['size'] == 3.333  # 3.3333.. rounded *down* to the 0.001 tick
    assert info['notional'] == pytest.approx(166.65)
    alloc = mk_allocator(mk_mkt('1'), size_unit='units', units_limit=10.0, slots=3)
    assert alloc.next_order_info(None, None, 50.0, 'buy')['size'] == 3.0


def test_exact_decimal_sizing():
    # 0.3 / 0.1 is 2.9999999999999996 in floats: must still be 3 units
    alloc = mk_allocator(mk_mkt('1'), currency_limit=0.3, slots=1)
    assert alloc.next_order_info(None, None, 0.1, 'buy')['size'] == 3.0


def test_entry_cut_to_room_left_units():
    alloc = mk_allocator(mk_mkt(), size_unit='units', units_limit=10.0, slots=4)
    info = alloc.next_order_info(pos(9.0), pos(9.0), 100.0, 'buy')
    assert info['size'] == 1.0 and info['slots_used'] == pytest.approx(0.4)
    full = alloc.next_order_info(pos(10.0), pos(10.0), 100.0, 'buy')
    assert full['size'] == 0.0 and full['kind'] == 'entry'
    over = alloc.next_order_info(None, pos(12.0), 100.0, 'buy')
    assert over['size'] == 0.0
    # shorts: adding to a short is an entry
    assert alloc.next_order_info(None, pos(-9.0), 100.0, 'sell')['size'] == 1.0


def test_entry_cut_to_room_left_currency_uses_cost_basis():
    alloc = mk_allocator(mk_mkt(), currency_limit=1000.0, slots=4)
    # 8 units held at ppu 100 use 800 of the 1000 limit: 200 left, at price 50 -> 4
    # units, but one slot (250 at 50 -> 5 units) is more, so the room wins.
    info = alloc.next_order_info(None, pos(8.0, ppu=100.0), 50.0, 'buy')
    assert info['size'] == 4.0 and info['notional'] == 200.0
    assert info['slots_used'] == pytest.approx(0.8)


def test_entries_fill_up_to_but_never_past_the_limit():
    alloc = mk_allocator(mk_mkt(), size_unit='units', units_limit=10.0, slots=3)
    live = Position(fqme='btcusdt.sim')
    sizes = []
    for n in range(10):
        size = alloc.next_order_info(None, live, 100.0, 'buy')['size']
        if not size:
            break
        sizes.append(size)
        fill(live, size, 100.0, n)
    assert sizes == [3.333, 3.333, 3.333, 0.001]
    assert live.size == 10.0


# --- exits ---------------------------------------------------------------------

def test_exits_walk_to_flat_without_flipping():
    alloc = mk_allocator(mk_mkt(), size_unit='units', units_limit=10.0, slots=4)
    live = pos(10.0)
    startup = pos(10.0)
    sizes = []
    for n in range(10):
        info = alloc.next_order_info(startup, live, 120.0, 'sell')
        assert info['kind'] == 'exit'
        sizes.append(info['size'])
        fill(live, -info['size'], 120.0, n)
        if live.is_flat:
            break
    assert sizes == [2.5, 2.5, 2.5, 2.5]
    assert live.size == 0.0


def test_exit_back_loads_remaining_sliver():
    alloc = mk_allocator(mk_mkt(), size_unit='units', units_limit=10.0, slots=4)
    # 3.5 held, slot 2.5: exiting one slot would leave 1.0 (< half a slot)
    assert alloc.next_order_info(None, pos(3.5), 100.0, 'sell')['size'] == 3.5
    # 4.0 held: leaves 1.5 (>= half a slot): one slot
    assert alloc.next_order_info(None, pos(4.0), 100.0, 'sell')['size'] == 2.5
    # less than a slot held: all of it, never more (no flip)
    info = alloc.next_order_info(None, pos(-1.0), 100.0, 'buy')
    assert info['size'] == 1.0 and info['kind'] == 'exit'


def test_exit_of_position_bigger_than_limit():
    alloc = mk_allocator(mk_mkt(), size_unit='units', units_limit=10.0, slots=4)
    # start-up position of 20 (limit lowered since): exit in 4 slots of 5
    assert alloc.next_order_info(pos(20.0), pos(20.0), 100.0, 'sell')['size'] == 5.0
    assert alloc.next_order_info(pos(20.0), pos(15.0), 100.0, 'sell')['size'] == 5.0


def test_currency_exit_slots_at_ppu_not_price():
    alloc = mk_allocator(mk_mkt(), currency_limit=1000.0, slots=4)
    live = pos(10.0, ppu=100.0)
    # price doubled: still 2.5 units per slot, as the position was built
    info = alloc.next_order_info(live, live, 200.0, 'sell')
    assert info['size'] == 2.5
    assert info['notional'] == 500.0
    assert info['slots_used'] == pytest.approx(2.0)  # at today's price


def test_discrete_units_still_progress():
    alloc = mk_allocator(mk_mkt('1'), size_unit='units', units_limit=2.0, slots=4)
    # a slot (0.5) is smaller than one lot: no entry possible...
    assert alloc.next_order_info(None, None, 10.0, 'buy')['size'] == 0.0
    # ...but an exit always moves toward flat by at least one lot
    assert alloc.next_order_info(None, pos(3.0), 10.0, 'sell')['size'] == 1.0


def test_alert_has_no_size():
    alloc = mk_allocator(mk_mkt(), currency_limit=1000.0)
    info = alloc.next_order_info(None, pos(1.0), 100.0, 'alert')
    assert (info['size'], info['notional'], info['slots_used'], info['kind']) == (
        0.0, 0.0, 0.0, 'alert',
    )


def test_slots_used():
    alloc = mk_allocator(mk_mkt(), currency_limit=1000.0, slots=4)
    assert alloc.slots_used(None) == 0.0
    assert alloc.slots_used(pos(0.0)) == 0.0
    assert alloc.slots_used(pos(5.0, ppu=100.0)) == 2.0
    assert alloc.slots_used(pos(-2.5, ppu=100.0)) == 1.0
    units = alloc.copy({'size_unit': 'units', 'units_limit': 8.0})
    assert units.slots_used(pos(-3.0)) == 1.5


# --- properties ------------------------------------------------------------------

@FAST
@given(
    size_unit=st.sampled_from(['units', 'currency']),
    limit=st.integers(min_value=1, max_value=100_000).map(lambda c: c / 10),
    slots=st.integers(min_value=1, max_value=10),
    tick=st.sampled_from(['0.001', '0.01', '1']),
    steps=st.lists(
        st.tuples(
            st.sampled_from(['buy', 'sell']),
            st.integers(min_value=1, max_value=100_000).map(lambda c: c / 100),
        ),
        min_size=1, max_size=30,
    ),
)
def test_sizes_never_breach_limit_or_flip(size_unit, limit, slots, tick, steps):
    alloc = mk_allocator(
        mk_mkt(tick), size_unit=size_unit, units_limit=limit,
        currency_limit=limit, slots=slots,
    )
    live = Position(fqme='btcusdt.sim')
    for n, (action, price) in enumerate(steps):
        before = live.size
        info = alloc.next_order_info(None, live, price, action)
        size = info['size']
        assert size >= 0
        # on the size grid
        assert Decimal(str(size)) % Decimal(tick) == 0
        if not size:
            continue
        fill(live, size if action == 'buy' else -size, price, n)
        if info['kind'] == 'exit':
            # toward flat, never through it
            assert abs(live.size) < abs(before)
            assert live.size == 0 or (live.size > 0) == (before > 0)
        else:
            assert info['slots_used'] <= 1 + 1e-9
            if size_unit == 'units':
                assert abs(live.size) <= limit + 1e-9
            else:
                assert abs(live.size) * live.ppu <= limit * (1 + 1e-9)
