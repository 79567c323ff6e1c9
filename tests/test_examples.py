"""The scripts in examples/ run: against a running `piker pikerd`, and alone.

The sim market quotes 10x faster than by default so a short run sees
fills, re-centring modifies and the final cancels. Each example runs as
its own process (it must keep working with its `__main__` guard re-run in
every sub-actor), as a client of a pikerd subprocess.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from piker.accounting import TransactionLedger
from tests._pikerd_proc import running_pikerd, with_registry

EXAMPLES = Path(__file__).resolve().parent.parent / 'examples'


def grid_bot(*args: str) -> tuple[str, dict[str, int]]:
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / 'grid_bot.py'), *args],
        capture_output=True, text=True, timeout=50, env=dict(os.environ),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    done = re.search(
        r'done: (\d+) fills .*?, (\d+) orders placed, (\d+) modified, (\d+) cancelled, '
        r'(\d+) errors, (\d+) still working', res.stdout,
    )
    assert done, res.stdout
    keys = ('fills', 'placed', 'modified', 'cancelled', 'errors', 'working')
    return res.stdout, dict(zip(keys, map(int, done.groups()), strict=True))


@pytest.mark.timeout(90)
def test_grid_bot(piker_env, tmp_path):
    confdir, addr = piker_env
    (confdir / 'brokers.toml').write_text('[sim]\nseed = 3\nquote_rate = 200\n')
    with running_pikerd(addr, tmp_path / 'pikerd.log') as pikerd:
        # time-bound run: the market leaves a tight grid many times
        out, stats = grid_bot('--seconds', '3', '--fills', '100000',
                              '--levels', '2', '--step-ticks', '10')
        assert stats['fills'] > 0 and stats['modified'] > 0, out
        assert 'recentred' in out and 'cancelling' in out
        assert stats['working'] == 0
        assert out.count('FILL ') == stats['fills']
        # every fill the bot saw is in the paper ledger, on disk
        ledger = TransactionLedger.load('sim', 'paper')
        assert len(ledger) == stats['fills']

        # fill-bound run: stops at the first fills, cancels the rest
        out, stats = grid_bot('--seconds', '30', '--fills', '2', '--step-ticks', '10')
        assert stats['fills'] >= 2 and stats['working'] == 0, out
        assert stats['placed'] >= 6

        pikerd.stop()
        assert not pikerd.leftovers()


@pytest.mark.timeout(60)
def test_grid_bot_standalone(piker_env):
    """No pikerd running: the script starts the tree in-process and takes
    it down with it, leaving no process behind."""
    confdir, addr = piker_env
    (confdir / 'brokers.toml').write_text('[sim]\nseed = 3\nquote_rate = 200\n')
    out, stats = grid_bot('--seconds', '30', '--fills', '2', '--step-ticks', '10')
    assert stats['fills'] >= 2 and stats['working'] == 0, out
    deadline = time.monotonic() + 5
    while with_registry(addr) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not with_registry(addr)
