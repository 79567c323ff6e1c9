"""`piker store`: ls, gaps, backfill, export, import (then chart), delete."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import trio
from typer.testing import CliRunner

from piker.cli import app
from piker.data import open_feed
from piker.storage import BarStore

CSV = '''Date,Open,High,Low,Close,Volume
2026-11-02T14:00,10.50,11.25,10.00,11.00,100
2026-11-02T14:01,11.00,12.00,10.75,11.50,120
2026-11-02T14:03,11.50,11.75,11.00,11.25,90
'''
T = 1_793_628_000  # 2026-11-02T14:00Z


def run(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_import_ls_gaps_export_delete(tmp_path):
    src = tmp_path / 'acme.csv'
    src.write_text(CSV)
    res = run('store', 'import', str(src))
    assert res.exit_code == 0, res.output
    assert '3 60s bars' in res.output and 'acme.local' in res.output
    bars = BarStore().read('acme.local', 60)
    assert bars['time'].tolist() == [T, T + 60, T + 180]
    assert bars['close'].tolist() == [11.0, 11.5, 11.25]

    res = run('store', 'ls')
    assert res.exit_code == 0 and 'acme.local' in res.output and '60s' in res.output

    res = run('store', 'gaps', 'acme.local')
    assert res.exit_code == 0
    assert '1 gap(s)' in res.output and '2026-11-02 14:02:00' in res.output

    out = tmp_path / 'out.csv'
    res = run('store', 'export', 'acme.local', '--format', 'csv', '-o', str(out))
    assert res.exit_code == 0, res.output
    # the export imports back as the same bars
    res = run('store', 'import', str(out), '--fqme', 'copy.local')
    assert res.exit_code == 0, res.output
    assert np.array_equal(BarStore().read('copy.local', 60), bars)
    pq = tmp_path / 'out.parquet'
    assert run('store', 'export', 'acme.local', '-f', 'parquet', '-o', str(pq)).exit_code == 0
    assert run('store', 'import', str(pq), '--fqme', 'pq.local').exit_code == 0
    assert np.array_equal(BarStore().read('pq.local', 60), bars)

    res = run('store', 'delete', 'copy.local', '--yes')
    assert res.exit_code == 0 and 'deleted 3 bars' in res.output
    assert 'copy.local' not in BarStore().markets()


@pytest.mark.parametrize('body, words', [
    ('time,open,high,low\n1,2,3,1\n', 'missing column(s) close'),
    ('when,open,high,low,close\n1,2,3,1,2\n', 'no time column'),
    ('time,open,high,low,close\n90,2,3,1,2\n150,2,3,1,2\n', 'not a multiple'),
    ('time,open,high,low,close\n60,2,1,3,2\n', 'low > high'),
])
def test_import_refuses_bad_files_with_the_reason(tmp_path, body, words):
    src = tmp_path / 'bad.csv'
    src.write_text(body)
    res = CliRunner().invoke(app, ['store', 'import', str(src), '-t', '60'])
    assert res.exit_code == 1
    assert words in res.output
    assert BarStore().markets() == []


def test_unknown_market_and_empty_store_errors():
    res = CliRunner().invoke(app, ['store', 'gaps', 'nope.sim'])
    assert res.exit_code == 1 and 'nothing stored for nope.sim' in res.output
    res = CliRunner().invoke(app, ['store', 'export', 'nope'])
    assert res.exit_code == 2
    res = run('store', 'ls')
    assert res.exit_code == 0 and 'no bars stored yet' in res.output


def test_ls_shows_a_recorder_error_and_calls_an_old_status_stale(piker_env):
    confdir, _ = piker_env
    d = confdir / 'record-status'
    d.mkdir()
    (d / 'btcusdt.sim.json').write_text(json.dumps(
        {'state': 'error', 'error': 'cannot write x: the disk is full',
         'updated': time.time()}))
    (d / 'ethusdt.sim.json').write_text(json.dumps(
        {'state': 'recording', 'error': None, 'updated': time.time() - 60}))
    res = run('store', 'ls')
    assert 'the disk is full' in res.output
    assert 'stale' in res.output


def test_imported_market_is_served_and_charted(tmp_path):
    src = tmp_path / 'acme.csv'
    src.write_text(CSV)
    assert run('store', 'import', str(src)).exit_code == 0

    async def main():
        async with open_feed('acme.local') as feed:
            assert feed.first_quotes['acme.local']['last'] == 11.25
            assert str(feed.mkts['acme.local'].price_tick) == '0.01'
            bars = await feed.history('acme.local', 60)
            assert bars['time'].tolist() == [T, T + 60, T + 180]
            with pytest.raises(ValueError, match='stored timeframes: 60'):
                await feed.history('acme.local', 1)

    trio.run(main)

    from pyqtgraph.Qt import QtGui
    shot = tmp_path / 'acme.png'
    exe = os.path.join(os.path.dirname(sys.executable), 'piker')
    proc = subprocess.run(
        [exe, 'chart', 'acme.local', '--screenshot', str(shot), '--after', '0.3'],
        env=dict(os.environ, QT_QPA_PLATFORM='offscreen'),
        capture_output=True, text=True, timeout=80,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    assert not QtGui.QImage(str(shot)).isNull()


def test_backfill_cli_fills_the_store_from_the_sim():
    exe = os.path.join(os.path.dirname(sys.executable), 'piker')
    proc = subprocess.run([exe, 'store', 'backfill', 'btcusdt.sim', '-t', '60'],
                          capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'btcusdt.sim 60s:' in proc.stdout and 'stored' in proc.stdout
    assert len(BarStore().read('btcusdt.sim', 60)) >= 1440
    proc = subprocess.run([exe, 'store', 'backfill', 'acme.local'],
                          capture_output=True, text=True, timeout=80)
    assert proc.returncode == 1


def test_backfill_cli_since_pages_back_and_records_what_the_venue_lacks():
    """`--since 3d` of the sim (a day of history): one page back to then,
    the two days before the sim's history recorded as the venue's own."""
    import time
    exe = os.path.join(os.path.dirname(sys.executable), 'piker')
    t0 = int(time.time())
    proc = subprocess.run([exe, 'store', 'backfill', 'btcusdt.sim', '-t', '60', '--since', '3d'],
                          capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = ' '.join(proc.stdout.split())
    assert 'btcusdt.sim 60s:' in out and '1 span(s) the venue has no bars for' in out, out
    assert 'bars' in proc.stderr + proc.stdout  # the progress bar counts bars
    store = BarStore()
    (head,) = store.closed('btcusdt.sim', 60)
    assert abs(head.start - (t0 - 3 * 86_400)) <= 120
    assert head.end == int(store.times('btcusdt.sim', 60)[0])
    assert store.gaps('btcusdt.sim', 60) == []
