"""`piker order history` / `piker order show`: read emsd's journal from the
config dir, read-only, with no daemon running."""
from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from piker.clearing import (
    BrokerdFill,
    BrokerdOrderAck,
    BrokerdStatus,
    DialogTable,
    Order,
)
from piker.clearing._journal import Journal, entries_from_changes, journal_path
from piker.cli import app
from piker.cli._history import parse_since
from tests._pikerd_proc import PIKER

HOUR = 3600 * 10**9


def run(*args: str):
    return CliRunner().invoke(app, ['order', *args], env={'COLUMNS': '250'})


def populate(now_ns: int) -> None:
    """Three dialogs: a filled buy 3h ago, a cancelled dark sell 1h ago on
    ethusdt, a resting alert now."""
    clock = [now_ns - 3 * HOUR]
    table = DialogTable(clock=lambda: clock[0], track_changes=True)
    with Journal.open() as journal:

        def place(order: Order) -> None:
            table.on_order(order, route='paper')
            if order.exec_mode == 'dark':
                table[order.oid].armed('up')  # as emsd's dark book does

        def commit() -> None:
            journal.record(entries_from_changes(table.drain_changes()))

        place(Order(oid='aaaa1111-filled', symbol='btcusdt.sim', action='buy',
                             exec_mode='live', price=65000.5, size=0.5, account='paper'))
        commit()
        table.on_broker_msg(BrokerdOrderAck(oid='aaaa1111-filled', reqid='r1',
                                            account='paper'), 'sim')
        table.on_broker_msg(BrokerdStatus(reqid='r1', status='open', account='paper',
                                          time_ns=1), 'sim')
        commit()
        table.on_broker_msg(BrokerdFill(reqid='r1', tid='tid-xyz', action='buy', size=0.5,
                                        price=65000.0, broker_time=1.0, time_ns=1), 'sim')
        commit()
        clock[0] = now_ns - HOUR
        place(Order(oid='aaaa2222-canceled', symbol='ethusdt.sim', action='sell',
                             exec_mode='dark', price=3000.0, size=2.0, account='paper'))
        commit()
        table.on_cancel('aaaa2222-canceled')
        commit()
        clock[0] = now_ns
        place(Order(oid='bbbb3333-alert', symbol='btcusdt.sim', action='alert',
                             exec_mode='dark', price=70000.0, size=0.0, account='paper'))
        commit()


# ---- --since parsing ------------------------------------------------------------

def test_parse_since():
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert parse_since('2h', now) == now - timedelta(hours=2)
    assert parse_since('90s', now) == now - timedelta(seconds=90)
    assert parse_since('1.5d', now) == now - timedelta(days=1.5)
    assert parse_since(' 15M ', now) == now - timedelta(minutes=15)
    assert parse_since('1w', now) == now - timedelta(weeks=1)
    assert parse_since('2026-11-23T09:30+00:00') == datetime(2026, 11, 23, 9, 30,
                                                            tzinfo=UTC)
    naive = parse_since('2026-11-23')  # local midnight
    assert naive.tzinfo is not None
    assert naive.replace(tzinfo=None) == datetime(2026, 11, 23)
    for bad in ('yesterday', '2x', '-1h', ''):
        with pytest.raises(ValueError, match='ISO date/time'):
            parse_since(bad, now)


# ---- history ----------------------------------------------------------------------

def test_history_without_a_journal():
    res = run('history')
    assert res.exit_code == 0
    assert 'no order history yet' in res.output
    assert not journal_path().exists()  # a reader creates nothing


def test_history_lists_latest_first_with_timelines():
    populate(time.time_ns())
    res = run('history')
    assert res.exit_code == 0, res.output
    out = res.output
    # newest first: the alert, the cancelled sell, the filled buy
    assert out.index('bbbb3333-alert') < out.index('aaaa2222-canceled') < out.index(
        'aaaa1111-filled')
    assert 'buy 0.5 btcusdt.sim @ 65,000.5 live [paper] via paper  closed filled 0.5' in out
    for resp in ('pending', 'open', 'fill', 'closed', 'dark_open', 'canceled'):
        assert resp in out
    assert '0.5 @ 65,000' in out  # the fill's size and price


def test_history_filters():
    populate(time.time_ns())
    out = run('history', '--fqme', 'ETHUSDT.sim').output
    assert 'aaaa2222' in out and 'aaaa1111' not in out and 'bbbb3333' not in out
    out = run('history', '--since', '2h').output
    assert 'aaaa2222' in out and 'bbbb3333' in out and 'aaaa1111' not in out
    out = run('history', '--limit', '1').output
    assert 'bbbb3333' in out and 'aaaa' not in out
    res = run('history', '--brief')
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 3 and 'dark_open' in lines[0]
    res = run('history', '--fqme', 'solusdt.sim')
    assert res.exit_code == 0 and 'no orders on solusdt.sim' in res.output
    res = run('history', '--since', 'last tuesday')
    assert res.exit_code == 2 and 'ISO date/time' in res.output


def test_history_on_a_corrupt_journal_fails_cleanly():
    path = journal_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'not sqlite at all' * 100)
    res = run('history')
    assert res.exit_code == 1
    assert 'cannot read the EMS journal' in res.output
    assert path.read_bytes().startswith(b'not sqlite')  # left alone for emsd


# ---- show ----------------------------------------------------------------------------

def test_show_by_oid_and_prefix():
    populate(time.time_ns())
    res = run('show', 'aaaa1111-filled')
    assert res.exit_code == 0, res.output
    out = res.output
    for text in ('market', 'btcusdt.sim', 'buy 0.5 @ 65,000.5 live', 'closed (ended)',
                 'filled', '0.5 of 0.5', 'venue id', 'r1', 'events (4)', 'tid-xyz'):
        assert text in out, text
    prefix = run('show', 'aaaa1')
    assert prefix.exit_code == 0 and 'aaaa1111-filled' in prefix.output
    alert = run('show', 'bbbb').output
    assert 'dark_open' in alert and 'fires when the price goes up to 70,000' in alert


def test_show_json():
    populate(time.time_ns())
    res = run('show', 'aaaa2222', '--json')
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data['oid'] == 'aaaa2222-canceled' and data['phase'] == 'canceled'
    assert [e['resp'] for e in data['events']] == ['dark_open', 'canceled']


def test_show_unknown_and_ambiguous():
    populate(time.time_ns())
    res = run('show', 'zzzz')
    assert res.exit_code == 1 and "no order 'zzzz'" in res.output
    res = run('show', 'aaaa')
    assert res.exit_code == 1 and 'ambiguous' in res.output
    assert 'aaaa1111-filled' in res.output and 'aaaa2222-canceled' in res.output


def test_show_without_a_journal():
    res = run('show', 'abc')
    assert res.exit_code == 1 and 'no EMS journal' in res.output


@pytest.mark.timeout(60)
def test_real_command_reads_while_a_writer_holds_the_journal():
    """As a user runs it: its own process, while emsd (here: this process)
    has the journal open for writing."""
    now = time.time_ns()
    populate(now)
    writer = Journal.open()
    try:
        env = {**os.environ, 'COLUMNS': '250'}
        res = subprocess.run([PIKER, 'order', 'history', '--brief'], env=env,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert 'bbbb3333-alert' in res.stdout and 'aaaa1111-filled' in res.stdout
    finally:
        writer.close()
