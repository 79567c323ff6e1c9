"""`piker ledger` and `piker positions` through typer's CliRunner."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from piker.accounting import (
    Asset,
    MktPair,
    Transaction,
    account_path,
    ledger_path,
    open_account,
    open_trade_ledger,
)
from piker.cli import app

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def runner(monkeypatch) -> CliRunner:
    monkeypatch.setenv('COLUMNS', '200')  # rich: wide enough to not fold cells
    return CliRunner()


def mk_txn(tid: str, size: float, price: float, fqme: str = 'btcusdt.sim', i: int = 0,
           cost: float = 0.0) -> Transaction:
    return Transaction(fqme=fqme, tid=tid, size=size, price=price, cost=cost,
                       dt=T0 + timedelta(minutes=i))


def test_ledger_empty(runner):
    res = runner.invoke(app, ['ledger', 'sim', 'paper'])
    assert res.exit_code == 0, res.output
    assert 'no trades recorded for sim/paper' in res.output
    assert str(ledger_path('sim', 'paper')) in res.output.replace('\n', '')
    assert not ledger_path('sim', 'paper').exists()  # read-only


def test_ledger_table(runner):
    with open_trade_ledger('sim', 'paper') as ledger:
        ledger.update_from_txns([
            mk_txn('fill-2', -0.5, 101.25, i=1),
            mk_txn('fill-1', 1.5, 100.0, cost=0.25),
            mk_txn('fill-3', 2.0, 3000.0, fqme='ethusdt.sim', i=2),
        ])
    res = runner.invoke(app, ['ledger', 'sim', 'paper'])
    assert res.exit_code == 0, res.output
    out = res.output
    for needle in ('trades sim/paper', 'fill-1', 'fill-2', 'fill-3', 'btcusdt.sim',
                   'ethusdt.sim', '2026-03-04 05:06:07', '101.25', '-0.5', '0.25',
                   '3,000'):
        assert needle in out, needle
    # time order
    assert out.index('fill-1') < out.index('fill-2') < out.index('fill-3')


def test_positions_empty(runner):
    res = runner.invoke(app, ['positions', 'sim', 'paper'])
    assert res.exit_code == 0, res.output
    assert 'no open positions for sim/paper' in res.output
    assert not account_path('sim', 'paper').exists()


def test_positions_only_flat_is_empty(runner):
    with open_account('sim', 'paper') as acct:
        acct.apply(mk_txn('a', 1.0, 10.0))
        acct.apply(mk_txn('b', -1.0, 11.0, i=1))
    res = runner.invoke(app, ['positions', 'sim', 'paper'])
    assert res.exit_code == 0
    assert 'no open positions' in res.output


def test_positions_table(runner):
    mkt = MktPair(
        dst=Asset(name='btc', atype='crypto', tx_tick=Decimal('1e-8')),
        src=Asset(name='usdt', atype='crypto', tx_tick=Decimal('0.01')),
        price_tick=Decimal('0.01'), size_tick=Decimal('0.001'),
        broker='sim', bs_mktid='BTCUSDT',
    )
    with open_account('sim', 'paper') as acct:
        acct.apply(mk_txn('a', 1.0, 100.0), mkt)
        acct.apply(mk_txn('b', 2.0, 103.0, i=1), mkt)
        acct.apply(mk_txn('c', -3.0, 2000.0, fqme='ethusdt.sim', i=2))
    res = runner.invoke(app, ['positions', 'sim', 'paper'])
    assert res.exit_code == 0, res.output
    out = res.output
    for needle in ('positions sim/paper', 'btcusdt.sim', 'long', '102.00', 'BTCUSDT',
                   'ethusdt.sim', 'short', '-3', '2,000'):
        assert needle in out, needle


@pytest.mark.parametrize('cmd', ['ledger', 'positions'])
def test_bad_account_name(runner, cmd):
    res = runner.invoke(app, [cmd, 'sim', '../etc'])
    assert res.exit_code == 1
    # errors go to stderr: stdout is for the table
    assert res.stdout == ''
    assert res.stderr.startswith("error: invalid account name '../etc'")


@pytest.mark.parametrize('cmd', ['ledger', 'positions'])
def test_unknown_backend_is_an_error(runner, cmd):
    res = runner.invoke(app, [cmd, 'nope', 'paper'])
    assert res.exit_code == 1 and res.stdout == ''
    assert res.stderr.startswith("error: no broker backend 'nope'; available backends: ")
    assert 'sim' in res.stderr


def test_corrupt_files_are_reported(runner):
    for path in (ledger_path('sim', 'paper'), account_path('sim', 'paper')):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('not = [valid')
    for cmd in ('ledger', 'positions'):
        res = runner.invoke(app, [cmd, 'sim', 'paper'])
        assert res.exit_code == 1
        assert res.stdout == '' and 'not valid TOML' in res.stderr


def test_missing_args_is_usage_error(runner):
    res = runner.invoke(app, ['ledger', 'sim'])
    assert res.exit_code == 2


def test_help_lists_commands(runner):
    res = runner.invoke(app, ['--help'])
    assert res.exit_code == 0
    assert 'ledger' in res.output and 'positions' in res.output
