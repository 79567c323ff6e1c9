"""Positions: cost-basis maths, `Position`, `Account`, `open_account()`."""
from __future__ import annotations

import logging
import os
import tomllib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from piker.accounting import (
    Account,
    AccountingError,
    Asset,
    Clear,
    MktPair,
    Position,
    Transaction,
    TransactionLedger,
    account_path,
    open_account,
    open_trade_ledger,
    replay,
    step_position,
)

FAST = settings(max_examples=150, deadline=None)
T0 = datetime(2026, 1, 2, tzinfo=UTC)
FQME = 'btcusdt.sim'


def mk_mkt(broker: str = 'sim') -> MktPair:
    return MktPair(
        dst=Asset(name='btc', atype='crypto', tx_tick=Decimal('1e-8')),
        src=Asset(name='usdt', atype='crypto', tx_tick=Decimal('0.01')),
        price_tick=Decimal('0.01'), size_tick=Decimal('0.001'),
        broker=broker, bs_mktid='BTCUSDT',
    )


def txn(tid: str, size: float, price: float, cost: float = 0.0,
        fqme: str = FQME, i: int = 0) -> Transaction:
    return Transaction(
        fqme=fqme, tid=tid, size=size, price=price, cost=cost,
        dt=T0 + timedelta(seconds=i),
    )


# --- a from-scratch reference, written independently (exact fractions) ------

def reference(clears: list[tuple[float, float, float]]) -> tuple[Fraction, Fraction]:
    """Replay every fill from flat with exact rational maths."""
    size, ppu = Fraction(0), Fraction(0)
    for sz, px, fee in clears:
        sz, px, fee = Fraction(str(sz)), Fraction(str(px)), Fraction(str(fee))
        new = size + sz
        if new == 0:
            size, ppu = Fraction(0), Fraction(0)
            continue
        direction = 1 if new > 0 else -1
        if size * new < 0:          # flipped through zero
            ppu = px + direction * fee / abs(new)
        elif abs(new) > abs(size):  # opened or grew
            ppu = (ppu * abs(size) + px * abs(sz) + direction * fee) / abs(new)
        size = new                  # (a reduction leaves ppu alone)
    return size, ppu


_sizes = st.sampled_from([0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 0.001, 1.5]).flatmap(
    lambda s: st.sampled_from([s, -s])
)
_prices = st.integers(min_value=1, max_value=10_000_000).map(lambda c: c / 100)
_costs = st.one_of(st.just(0.0), st.integers(min_value=0, max_value=1000).map(lambda c: c / 100))
_clears = st.lists(st.tuples(_sizes, _prices, _costs), min_size=1, max_size=40)


def _close(a: float, b: Fraction, scale: float) -> bool:
    return abs(Fraction(a) - b) <= Fraction(1e-9) * max(1.0, scale)


# --- step_position / Position.add_clear unit tests --------------------------

def test_cost_basis_walkthrough():
    pos = Position(fqme=FQME)
    steps = [
        # (size, price, cost) -> (size, ppu)
        ((1.0, 100.0, 1.0), (1.0, 101.0)),     # open long: fee raises basis
        ((1.0, 110.0, 0.0), (2.0, 105.5)),     # add: weighted
        ((-1.0, 120.0, 1.0), (1.0, 105.5)),    # reduce: ppu kept
        ((-3.0, 90.0, 2.0), (-2.0, 89.0)),     # flip: residual at price, fee lowers short basis
        ((-2.0, 80.0, 4.0), (-4.0, 83.5)),     # add to short: (89*2 + 80*2 - 4) / 4
        ((1.0, 70.0, 3.0), (-3.0, 83.5)),      # reduce short: ppu kept
        ((3.0, 70.0, 0.0), (0.0, 0.0)),        # flat
        ((-1.0, 50.0, 0.5), (-1.0, 49.5)),     # open short from flat
    ]
    for i, ((sz, px, fee), expect) in enumerate(steps):
        assert pos.add_clear(txn(f't{i}', sz, px, fee, i=i))
        assert (pos.size, pos.ppu) == pytest.approx(expect)


def test_step_position_is_pure_function():
    assert step_position(0.0, 0.0, 2.0, 10.0, 1.0) == (2.0, 10.5)
    assert step_position(2.0, 10.5, -2.0, 12.0) == (0.0, 0.0)
    assert step_position(2.0, 10.5, -1.0, 12.0, 5.0) == (1.0, 10.5)
    assert step_position(-2.0, 10.0, -2.0, 8.0, 2.0) == (-4.0, 8.5)
    assert step_position(-2.0, 10.0, 3.0, 8.0, 2.0) == (1.0, 10.0)


def test_decimal_sizes_really_go_flat():
    pos = Position(fqme=FQME)
    for i, sz in enumerate((0.1, 0.2, -0.3)):
        pos.add_clear(txn(f't{i}', sz, 100.0, i=i))
    assert pos.size == 0.0 and pos.ppu == 0.0 and pos.is_flat
    assert pos.side == 'flat'


def test_duplicate_tid_ignored():
    pos = Position(fqme=FQME)
    assert pos.add_clear(txn('a', 1.0, 100.0))
    assert not pos.add_clear(txn('a', 5.0, 1.0))
    assert (pos.size, pos.ppu) == (1.0, 100.0)
    assert list(pos.clears) == ['a']


def test_add_clear_wrong_market():
    with pytest.raises(ValueError, match="not this position 'btcusdt.sim'"):
        Position(fqme=FQME).add_clear(txn('a', 1.0, 1.0, fqme='ethusdt.sim'))


def test_position_picks_up_ids_from_fills():
    pos = Position(fqme='mnq.cme.20261218.ib')
    pos.add_clear(Transaction(
        fqme='mnq.cme.20261218.ib', tid='x', size=1, price=2.0, dt=T0,
        bs_mktid='551601561', expiry='20261218',
    ))
    assert pos.bs_mktid == '551601561' and pos.expiry == '20261218'


def test_position_side_and_from_mkt():
    pos = Position.from_mkt(mk_mkt())
    assert pos.fqme == FQME and pos.bs_mktid == 'BTCUSDT'
    assert pos.price_tick == Decimal('0.01') and pos.size_tick == Decimal('0.001')
    assert pos.is_flat and pos.side == 'flat'
    pos.add_clear(txn('a', -1.0, 10.0))
    assert pos.side == 'short'


@pytest.mark.parametrize('kw, needle', [
    (dict(fqme='nobroker'), 'no broker'),
    (dict(size=float('nan')), 'size must be a finite'),
    (dict(ppu='1'), 'ppu must be a finite'),
    (dict(price_tick=Decimal(0)), 'price_tick must be > 0'),
])
def test_position_validation(kw, needle):
    with pytest.raises(ValueError, match=needle):
        Position(**{'fqme': FQME, **kw})


def test_flat_position_has_zero_ppu():
    assert Position(fqme=FQME, size=0.0, ppu=12.0).ppu == 0.0


def test_open_clears_are_since_last_flat():
    pos = Position(fqme=FQME)
    for i, (sz, px) in enumerate([(1, 10), (-1, 11), (2, 12), (-3, 13), (2, 14)]):
        pos.add_clear(txn(f't{i}', sz, px, i=i))
    # flat after t1; t3 flips (not flat) so the run is t2..t4
    assert list(pos.open_clears()) == ['t2', 't3', 't4']
    again = replay(FQME, pos.open_clears().items())
    assert (again.size, again.ppu) == (pos.size, pos.ppu)


def test_open_clears_cost_what_is_open_not_the_history(monkeypatch):
    """Finding the fills since the last flat point must not walk every
    clear ever made: the positions file is written on every paper fill."""
    import piker.accounting._pos as pos_mod

    pos = Position(fqme=FQME)
    for i in range(2000):
        pos.add_clear(txn(f'h{i}', 1 if i % 2 == 0 else -1, 10.0, i=i))
    pos.add_clear(txn('open', 2, 11.0, i=2001))
    calls = []
    real = pos_mod.to_decimal
    monkeypatch.setattr(pos_mod, 'to_decimal', lambda *a: calls.append(a) or real(*a))
    assert list(pos.open_clears()) == ['open']
    assert len(calls) < 10
    # a position read back from a file finds its flat point once, then O(open)
    back = msgspec.convert(msgspec.to_builtins(pos), Position)
    assert list(back.open_clears()) == ['open']


def test_the_positions_file_keeps_the_last_fills_and_what_the_earlier_made(caplog):
    """A position built over many fills without going flat: the file keeps
    the last FILE_CLEARS of them after the position the earlier ones made,
    so its size (and the cost of a fill's write) does not grow with the
    history; it loads back exactly, self-checked, and trades on."""
    from piker.accounting._pos import FILE_CLEARS

    n = FILE_CLEARS * 3 + 7
    fills = [txn(f'f{i}', 0.5 + (i % 3) * 0.25, 100.0 + i % 17, 0.01 * (i % 5), i=i)
             for i in range(n)]
    with open_account('sim', 'paper') as acct:
        for t in fills:
            acct.apply(t, mk_mkt())
        mem = acct.get(FQME)
    data = tomllib.loads(account_path('sim', 'paper').read_text())[FQME]
    assert list(data['clears']) == [f'f{i}' for i in range(n - FILE_CLEARS, n)]
    assert data['carried_clears'] == n - FILE_CLEARS
    early = replay(FQME, ((t.tid, Clear.from_txn(t)) for t in fills[:n - FILE_CLEARS]))
    assert (data['carried_size'], data['carried_ppu']) == (early.size, early.ppu)
    # grown by 4x the fills, the file is no bigger than at FILE_CLEARS + 1
    with open_account('sim', 'small', path=account_path('sim', 'small')) as small:
        for t in fills[:FILE_CLEARS + 1]:
            small.apply(t, mk_mkt())
    assert (account_path('sim', 'paper').stat().st_size
            <= account_path('sim', 'small').stat().st_size + 200)

    caplog.set_level(logging.WARNING)
    with open_account('sim', 'paper') as again:
        back = again.get(FQME)
        assert (back.size, back.ppu) == (mem.size, mem.ppu)
        assert back.open_count == n and not caplog.records  # the replay check held
        assert again.apply(fills[-1]).size == mem.size  # a kept tid is still a duplicate
        again.apply(txn('more', 1.0, 90.0, i=n))
        grown = again.get(FQME)
        assert grown.open_count == n + 1
    data = tomllib.loads(account_path('sim', 'paper').read_text())[FQME]
    assert list(data['clears'])[-1] == 'more' and len(data['clears']) == FILE_CLEARS
    assert data['carried_clears'] == n + 1 - FILE_CLEARS
    with open_account('sim', 'paper') as again:
        pos = again.get(FQME)
        assert (pos.size, pos.ppu) == (grown.size, grown.ppu) and not caplog.records
        again.apply(txn('flat', -pos.size, 95.0, i=n + 1))  # flat: nothing carried
        again.apply(txn('new', 2.0, 96.0, i=n + 2))
        assert again.get(FQME).open_count == 1
    data = tomllib.loads(account_path('sim', 'paper').read_text())[FQME]
    assert list(data['clears']) == ['new'] and 'carried_clears' not in data


def test_position_msgspec_roundtrip():
    pos = Position.from_mkt(mk_mkt())
    pos.add_clear(txn('a', 1.5, 100.0, 0.25))
    back = msgspec.convert(pos.to_builtins(), Position)
    assert back == pos
    assert isinstance(back.clears['a'], Clear)


# --- property tests ----------------------------------------------------------

@FAST
@given(_clears)
def test_incremental_equals_from_scratch(clears):
    pos = Position(fqme=FQME)
    for i, (sz, px, fee) in enumerate(clears):
        pos.add_clear(txn(f't{i}', sz, px, fee, i=i))
        ref_size, ref_ppu = reference(clears[: i + 1])
        assert pos.size == float(ref_size)
        assert _close(pos.ppu, ref_ppu, scale=max(p for _, p, _ in clears))


@FAST
@given(_clears)
def test_ppu_rules_hold_at_every_step(clears):
    pos = Position(fqme=FQME)
    for i, (sz, px, fee) in enumerate(clears):
        prev_size, prev_ppu = pos.size, pos.ppu
        pos.add_clear(txn(f't{i}', sz, px, fee, i=i))
        if pos.size == 0:
            assert pos.ppu == 0.0
        elif prev_size * pos.size > 0 and abs(pos.size) < abs(prev_size):
            assert pos.ppu == prev_ppu  # a reduction never moves ppu
        elif fee == 0 and (prev_size == 0 or prev_size * pos.size < 0):
            assert pos.ppu == px  # fresh position without fee: ppu is the price


@FAST
@given(_clears, st.randoms(use_true_random=False))
def test_ledger_rebuild_equals_incremental_account(clears, rnd):
    fqmes = ['btcusdt.sim', 'ethusdt.sim']
    txns = [
        txn(f't{i}', sz, px, fee, fqme=rnd.choice(fqmes), i=i)
        for i, (sz, px, fee) in enumerate(clears)
    ]
    live = Account('sim', 'paper')
    for t in txns:
        live.apply(t)
    ledger = TransactionLedger('sim', 'paper', txns)
    rebuilt = Account.from_ledger(ledger)
    assert set(rebuilt.open_positions()) == set(live.open_positions())
    for fqme, pos in live.open_positions().items():
        other = rebuilt.get(fqme)
        assert (other.size, other.ppu) == (pos.size, pos.ppu)
    # and the persisted table reloads to the same numbers
    live.write()
    loaded = Account.load('sim', 'paper')
    assert {f: (p.size, p.ppu) for f, p in loaded.open_positions().items()} == {
        f: (p.size, p.ppu) for f, p in live.open_positions().items()
    }


@FAST
@given(_clears)
def test_open_clears_replay_reproduces_position(clears):
    pos = Position(fqme=FQME)
    for i, (sz, px, fee) in enumerate(clears):
        pos.add_clear(txn(f't{i}', sz, px, fee, i=i))
    again = replay(FQME, pos.open_clears().items())
    assert (again.size, again.ppu) == (pos.size, pos.ppu)


# --- Account -----------------------------------------------------------------

def test_apply_returns_updated_position():
    acct = Account('sim', 'paper')
    pos = acct.apply(txn('a', 1.0, 100.0), mk_mkt())
    assert pos is acct.get(FQME) and pos.size == 1.0
    assert pos.price_tick == Decimal('0.01') and pos.bs_mktid == 'BTCUSDT'
    assert acct.dirty
    assert acct.apply(txn('a', 1.0, 100.0)).size == 1.0  # duplicate ignored
    assert acct.get('BTCUSDT.SIM') is pos
    assert acct.get('ethusdt.sim') is None


def test_apply_fills_in_missing_market_info():
    acct = Account('sim', 'paper')
    acct.apply(txn('a', 1.0, 100.0))
    assert acct.get(FQME).price_tick is None
    pos = acct.apply(txn('b', 1.0, 100.0, i=1), mk_mkt())
    assert pos.price_tick == Decimal('0.01') and pos.bs_mktid == 'BTCUSDT'


def test_apply_rejects_foreign_fills():
    acct = Account('sim', 'paper')
    with pytest.raises(ValueError, match="not a 'sim' market"):
        acct.apply(txn('a', 1.0, 1.0, fqme='mnq.cme.ib'))
    with pytest.raises(ValueError, match='does not match'):
        acct.apply(txn('a', 1.0, 1.0, fqme='ethusdt.sim'), mk_mkt())


def test_update_from_txns():
    acct = Account('sim', 'paper')
    touched = acct.update_from_txns(
        [txn('a', 1.0, 10.0), txn('b', 2.0, 20.0, fqme='ethusdt.sim', i=1)],
        mkts={'BTCUSDT.SIM': mk_mkt()},
    )
    assert set(touched) == {FQME, 'ethusdt.sim'}
    assert touched[FQME].size_tick == Decimal('0.001')
    assert touched['ethusdt.sim'].size_tick is None
    assert [p.fqme for p in acct] == [FQME, 'ethusdt.sim']


def test_open_account_persists_and_drops_flat():
    with open_account('sim', 'paper') as acct:
        acct.apply(txn('a', 1.5, 100.0, 0.3), mk_mkt())
        acct.apply(txn('b', 1.0, 10.0, fqme='ethusdt.sim', i=1))
        acct.apply(txn('c', -1.0, 12.0, fqme='ethusdt.sim', i=2))
        assert acct.get('ethusdt.sim').is_flat  # still in memory
    path = account_path('sim', 'paper')
    assert path == acct.path
    text = path.read_text()
    assert text.startswith('# piker positions')
    data = tomllib.loads(text)
    assert list(data) == [FQME]  # flat eth dropped
    assert data[FQME] == {
        'size': 1.5, 'ppu': 100.2, 'bs_mktid': 'BTCUSDT',
        'price_tick': '0.01', 'size_tick': '0.001',
        'clears': {'a': {'size': 1.5, 'price': 100.0, 'cost': 0.3, 'dt': T0}},
    }
    with open_account('sim', 'paper') as again:
        pos = again.get(FQME)
        assert (pos.size, pos.ppu, pos.price_tick) == (1.5, 100.2, Decimal('0.01'))
        assert not again.dirty
        assert again.apply(txn('a', 1.5, 100.0, 0.3)).size == 1.5  # dup across reload
        again.apply(txn('d', -1.5, 101.0, i=5))
    assert tomllib.loads(path.read_text()) == {}


def test_open_account_missing_file_not_created():
    with open_account('sim', 'paper') as acct:
        assert acct.open_positions() == {}
    assert not acct.path.exists()


def test_account_written_even_if_body_raises():
    with pytest.raises(KeyError):
        with open_account('sim', 'paper') as acct:
            acct.apply(txn('a', 1.0, 10.0))
            raise KeyError('later failure')
    assert Account.load('sim', 'paper').get(FQME).size == 1.0


def test_account_crash_mid_write_keeps_previous_file(monkeypatch):
    with open_account('sim', 'paper') as acct:
        acct.apply(txn('a', 1.0, 10.0))
    before = acct.path.read_bytes()
    acct.apply(txn('b', 1.0, 20.0, i=1))
    with monkeypatch.context() as m:
        m.setattr(os, 'replace', lambda *a: (_ for _ in ()).throw(OSError('crash')))
        with pytest.raises(OSError, match='crash'):
            acct.write()
    assert acct.path.read_bytes() == before
    assert acct.dirty  # still needs writing


def test_rebuild_from_ledger_keeps_market_info():
    with open_trade_ledger('sim', 'paper') as ledger:
        ledger.update_from_txns([
            txn('b', -1.0, 110.0, i=2),
            txn('a', 2.0, 100.0, 1.0, i=1),  # earlier: applied first
            txn('e', 1.0, 5.0, fqme='ethusdt.sim', i=3),
            txn('f', -1.0, 6.0, fqme='ethusdt.sim', i=4),
        ])
    acct = Account('sim', 'paper')
    acct.apply(txn('zzz', 7.0, 1.0), mk_mkt())  # to be replaced by the replay
    open_pps = acct.rebuild_from_ledger(TransactionLedger.load('sim', 'paper'))
    assert list(open_pps) == [FQME]
    pos = open_pps[FQME]
    assert (pos.size, pos.ppu) == (1.0, 100.5)
    assert pos.price_tick == Decimal('0.01')  # kept from the known position
    assert list(pos.clears) == ['a', 'b']

    fresh = Account.from_ledger(ledger, mkts={FQME: mk_mkt()})
    assert fresh.get(FQME).size_tick == Decimal('0.001')
    assert fresh.get('ethusdt.sim').is_flat


def test_rebuild_from_wrong_ledger():
    with pytest.raises(ValueError, match='cannot rebuild'):
        Account('sim', 'paper').rebuild_from_ledger(TransactionLedger('sim', 'live'))


def test_account_bad_names():
    with pytest.raises(AccountingError, match='invalid broker'):
        Account('', 'paper')
    with pytest.raises(AccountingError, match='invalid account'):
        open_account('sim', 'a b').__enter__()


@pytest.mark.parametrize('body, needle', [
    ('[x\n', 'not valid TOML'),
    ('"btcusdt.sim" = 1\n', 'is not a table'),
    ('["btcusdt.sim"]\nsize = "big"\nppu = 1.0\n', "position 'btcusdt.sim'.*size"),
    ('["nobroker"]\nsize = 1.0\nppu = 1.0\n', "position 'nobroker'.*broker"),
    ('["btcusdt.sim"]\nsize = 1.0\nppu = 1.0\nprice_tick = "0"\n', 'price_tick'),
    ('["btcusdt.sim"]\nsize = 1.0\nppu = 1.0\n[\"btcusdt.sim\".clears.a]\n'
     'size = 1.0\nprice = -1.0\ndt = 2026-01-01T00:00:00Z\n', 'bad clear.*price'),
])
def test_account_invalid_file(body, needle):
    path = account_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    path.write_text(body)
    with pytest.raises(AccountingError, match=needle) as exc:
        Account.load('sim', 'paper')
    assert str(path) in str(exc.value)


def test_inconsistent_hand_edit_warns_and_keeps_recorded(caplog):
    path = account_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    path.write_text(
        '["btcusdt.sim"]\nsize = 3.0\nppu = 50.0\n'
        '["btcusdt.sim".clears.a]\nsize = 1.0\nprice = 10.0\ndt = 2026-01-01T00:00:00Z\n'
    )
    with caplog.at_level(logging.WARNING, logger='piker'):
        acct = Account.load('sim', 'paper')
    pos = acct.get(FQME)
    assert (pos.size, pos.ppu) == (3.0, 50.0)
    assert 'keeping the recorded values' in caplog.text


def test_hand_written_position_without_clears_loads():
    path = account_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    path.write_text('["simco.sim"]\nsize = 100\nppu = 12.5\nsize_tick = "1"\n')
    pos = Account.load('sim', 'paper').get('simco.sim')
    assert (pos.size, pos.ppu, pos.size_tick) == (100.0, 12.5, Decimal(1))


@pytest.mark.parametrize('body', [
    b'[btcusdt.sim\nsize = ',                      # torn TOML
    b'["btcusdt.sim"]\nsize = "lots"\nppu = 1.0\n',  # valid TOML, invalid position
])
def test_an_unusable_positions_file_is_set_aside_for_a_rebuild(body, caplog):
    """Issue #9, item 9: the paper venue rebuilds positions from the ledger,
    so a bad positions file must not stop it: set aside (bytes intact),
    said loudly, an empty dirty account returned to be rebuilt."""
    path = account_path('sim', 'paper')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    with pytest.raises(AccountingError):
        Account.load('sim', 'paper')  # a plain reader still sees the error
    acct = Account.load_or_set_aside('sim', 'paper')
    assert acct.dirty and not acct.pps and not path.exists()
    (aside,) = path.parent.glob(f'{path.name}.corrupt-*')
    assert aside.read_bytes() == body
    assert 'POSITIONS FILE' in caplog.text and str(aside) in caplog.text
    acct.rebuild_from_ledger(TransactionLedger('sim', 'paper', [txn('t1', 2.0, 10.0)]))
    acct.write()
    assert Account.load('sim', 'paper').get(FQME).size == 2.0


def test_a_good_positions_file_is_loaded_as_is():
    with open_account('sim', 'paper') as acct:
        acct.apply(txn('t1', 1.0, 10.0))
    again = Account.load_or_set_aside('sim', 'paper')
    assert not again.dirty and again.get(FQME).size == 1.0
