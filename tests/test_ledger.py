"""The trade ledger: `Transaction`, `TransactionLedger`, `open_trade_ledger()`."""
from __future__ import annotations

import os
import tomllib
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from piker.accounting import (
    AccountingError,
    Transaction,
    TransactionLedger,
    ledger_path,
    open_trade_ledger,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def mk_txn(tid: str, size: float = 1.0, price: float = 100.0, **kw) -> Transaction:
    fields = dict(fqme='btcusdt.sim', tid=tid, size=size, price=price, dt=T0)
    fields.update(kw)
    return Transaction(**fields)


# --- Transaction -----------------------------------------------------------

def test_transaction_normalises():
    txn = mk_txn('t1', size=2, fqme='BTCUSDT.SIM')
    assert txn.fqme == 'btcusdt.sim'
    assert txn.size == 2.0 and isinstance(txn.size, float)
    assert txn.cost == 0.0 and txn.bs_mktid == '' and txn.expiry == ''


def test_transaction_dt_is_utc_datetime():
    naive = mk_txn('t', dt=datetime(2026, 1, 1, 12))
    assert naive.dt == datetime(2026, 1, 1, 12, tzinfo=UTC)
    est = timezone(timedelta(hours=-5))
    shifted = mk_txn('t', dt=datetime(2026, 1, 1, 7, tzinfo=est))
    assert shifted.dt == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert shifted.dt.tzinfo is UTC
    from_str = mk_txn('t', dt='2026-01-01T12:00:00+00:00')
    assert from_str.dt == datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize('kw, needle', [
    (dict(fqme='btcusdt'), 'no broker'),
    (dict(tid=''), 'tid'),
    (dict(size=0), 'non-zero'),
    (dict(size=float('nan')), 'finite'),
    (dict(size='1'), 'number'),
    (dict(price=0.0), 'price must be > 0'),
    (dict(price=-1.0), 'price must be > 0'),
    (dict(price=float('inf')), 'finite'),
    (dict(cost=float('nan')), 'finite'),
    (dict(dt='yesterday'), 'ISO 8601'),
    (dict(dt=12345), 'datetime'),
])
def test_transaction_validation(kw, needle):
    fields = {'tid': 't1', **kw}
    with pytest.raises(ValueError, match=needle):
        mk_txn(**fields)


def test_transaction_msgspec_roundtrip():
    txn = mk_txn('t1', size=-0.5, cost=0.1, bs_mktid='BTCUSDT')
    wire = txn.to_builtins()
    assert isinstance(wire['dt'], str)
    assert msgspec.convert(wire, Transaction) == txn


# --- ledger in memory ----------------------------------------------------

def test_update_from_txns_dedupes_by_tid():
    ledger = TransactionLedger('sim', 'paper')
    assert len(ledger) == 0 and not ledger.dirty
    new = ledger.update_from_txns([mk_txn('a'), mk_txn('b'), mk_txn('a')])
    assert [t.tid for t in new] == ['a', 'b']
    assert ledger.dirty
    # a replayed fill (even with different contents) is ignored
    assert ledger.update_from_txns([mk_txn('a', size=9.0)]) == []
    assert ledger['a'].size == 1.0
    assert set(ledger) == {'a', 'b'} and 'a' in ledger and len(ledger) == 2


def test_update_from_txns_rejects_non_transactions():
    ledger = TransactionLedger('sim', 'paper')
    with pytest.raises(TypeError, match='Transaction'):
        ledger.update_from_txns([{'tid': 'x'}])


def test_iter_txns_time_order_and_filter():
    ledger = TransactionLedger('sim', 'paper', [
        mk_txn('late', dt=T0 + timedelta(seconds=2)),
        mk_txn('eth', fqme='ethusdt.sim', dt=T0 + timedelta(seconds=1)),
        mk_txn('tie1', dt=T0),
        mk_txn('tie2', dt=T0),
    ])
    assert [t.tid for t in ledger.iter_txns()] == ['tie1', 'tie2', 'eth', 'late']
    assert [t.tid for t in ledger.iter_txns('BTCUSDT.sim')] == ['tie1', 'tie2', 'late']


@pytest.mark.parametrize('broker, account', [
    ('', 'paper'), ('sim', ''), ('../x', 'paper'), ('sim', 'a/b'),
    ('sim', 'my acct'), ('.hidden', 'paper'),
])
def test_bad_names_rejected(broker, account):
    with pytest.raises(AccountingError, match='invalid'):
        TransactionLedger(broker, account)


def test_ledger_path(piker_env):
    confdir, _ = piker_env
    assert ledger_path('sim', 'paper') == (
        confdir / 'accounting' / 'ledgers' / 'trades_sim_paper.toml'
    )


# --- files -----------------------------------------------------------------

def test_missing_file_is_empty_and_not_created():
    ledger = TransactionLedger.load('sim', 'paper')
    assert len(ledger) == 0
    assert not ledger.path.exists()
    with open_trade_ledger('sim', 'paper') as ledger:
        assert len(ledger) == 0
    assert not ledger.path.exists()  # nothing added, nothing written


def test_open_trade_ledger_roundtrip():
    txns = [
        mk_txn('t1', size=1.5, price=101.25, cost=0.1, bs_mktid='BTCUSDT'),
        mk_txn('t 2/odd"tid', size=-0.5, price=99.0, dt=T0 + timedelta(minutes=1)),
        mk_txn('t3', fqme='mnq.cme.20261218.ib', expiry='20261218', dt=T0 - timedelta(days=1)),
    ]
    with open_trade_ledger('sim', 'paper') as ledger:
        assert [t.tid for t in ledger.update_from_txns(txns)] == ['t1', 't 2/odd"tid', 't3']
    path = ledger.path
    data = tomllib.loads(path.read_text())
    # one table per tid, written in time order, human readable
    assert list(data) == ['t3', 't1', 't 2/odd"tid']
    assert data['t1'] == {
        'fqme': 'btcusdt.sim', 'size': 1.5, 'price': 101.25, 'cost': 0.1,
        'dt': T0, 'bs_mktid': 'BTCUSDT',
    }
    assert path.read_text().startswith('# piker trade ledger')

    with open_trade_ledger('sim', 'paper') as again:
        assert dict(again) == {t.tid: t for t in txns}
        assert not again.dirty
        # duplicates on reload are ignored too
        assert again.update_from_txns([mk_txn('t1')]) == []


def test_write_and_load_without_context_manager():
    ledger = TransactionLedger.load('sim', 'paper')
    ledger.update_from_txns([mk_txn('a')])
    ledger.write()
    assert not ledger.dirty
    ledger.update_from_txns([mk_txn('b', dt=T0 + timedelta(seconds=1))])
    ledger.write()
    assert list(TransactionLedger.load('sim', 'paper')) == ['a', 'b']


def test_ledgers_are_per_broker_and_account():
    with open_trade_ledger('sim', 'paper') as ledger:
        ledger.update_from_txns([mk_txn('a')])
    with open_trade_ledger('sim', 'other') as ledger:
        assert len(ledger) == 0
    with open_trade_ledger('ib', 'paper') as ledger:
        assert len(ledger) == 0


def test_fills_are_written_even_if_body_raises():
    with pytest.raises(RuntimeError):
        with open_trade_ledger('sim', 'paper') as ledger:
            ledger.update_from_txns([mk_txn('a')])
            raise RuntimeError('boom after the fill')
    assert list(TransactionLedger.load('sim', 'paper')) == ['a']


def test_crash_mid_rewrite_keeps_previous_file(monkeypatch):
    """A ledger written whole (an older piker's, made append-only at its
    first write) is replaced atomically: a crash at the rename keeps it."""
    path = ledger_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    path.write_text('# piker trade ledger (an older one)\n\n' + mk_txn('a').render())
    before = path.read_bytes()

    def crash(*args, **kw):
        raise OSError('power cut during rename')

    ledger = TransactionLedger.load('sim', 'paper')
    assert not ledger.appendable
    ledger.update_from_txns([mk_txn('b')])
    with monkeypatch.context() as m:
        m.setattr(os, 'replace', crash)
        with pytest.raises(OSError, match='power cut'):
            ledger.write()

    assert ledger.path.read_bytes() == before
    # no temp files left behind either
    assert [p.name for p in ledger.path.parent.iterdir()] == [ledger.path.name]
    assert list(TransactionLedger.load('sim', 'paper')) == ['a']
    # the retry rewrites it, append-only from then on
    ledger.write()
    assert ledger.appendable and list(TransactionLedger.load('sim', 'paper')) == ['a', 'b']


def test_crash_while_writing_bytes_keeps_previous_file(monkeypatch):
    with open_trade_ledger('sim', 'paper') as ledger:
        ledger.update_from_txns([mk_txn('a')])
    before = ledger.path.read_bytes()

    real_fsync = os.fsync

    def crash(fd):
        real_fsync(fd)
        raise OSError('disk died mid-write')

    with monkeypatch.context() as m:
        m.setattr(os, 'fsync', crash)
        with pytest.raises(OSError, match='disk died'):
            with open_trade_ledger('sim', 'paper') as ledger:
                ledger.update_from_txns([mk_txn('b')])
    assert ledger.path.read_bytes() == before


def test_invalid_toml_is_a_clear_error():
    path = ledger_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    path.write_text('[t1\nfqme = ')
    with pytest.raises(AccountingError, match='not valid TOML') as exc:
        TransactionLedger.load('sim', 'paper')
    assert str(path) in str(exc.value)


@pytest.mark.parametrize('body, needle', [
    ('[t1]\nfqme = "btcusdt.sim"\nsize = 1.0\nprice = 1.0\n', "trade 't1'.*dt"),
    ('[t1]\nfqme = "btcusdt"\nsize = 1.0\nprice = 1.0\ndt = 2026-01-01T00:00:00Z\n', "trade 't1'.*broker"),
    ('[t1]\nfqme = "btcusdt.sim"\nsize = "x"\nprice = 1.0\ndt = 2026-01-01T00:00:00Z\n', "trade 't1'.*size"),
    ('t1 = 5\n', "'t1' is not a table"),
])
def test_invalid_entries_name_file_and_tid(body, needle):
    path = ledger_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    path.write_text(body)
    with pytest.raises(AccountingError, match=needle) as exc:
        TransactionLedger.load('sim', 'paper')
    assert str(path) in str(exc.value)


def test_int_sizes_in_hand_edited_file_load_as_float():
    path = ledger_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    path.write_text('[t1]\nfqme = "simco.sim"\nsize = 3\nprice = 10\ndt = 2026-01-01T00:00:00\n')
    txn = TransactionLedger.load('sim', 'paper')['t1']
    assert txn.size == 3.0 and txn.price == 10.0
    assert txn.dt == datetime(2026, 1, 1, tzinfo=UTC)


def test_explicit_path(tmp_path):
    path = tmp_path / 'elsewhere.toml'
    with open_trade_ledger('sim', 'paper', path=path) as ledger:
        ledger.update_from_txns([mk_txn('a')])
    assert path.exists() and not ledger_path('sim', 'paper').exists()
    assert 'a' in TransactionLedger.load('sim', 'paper', path=path)
