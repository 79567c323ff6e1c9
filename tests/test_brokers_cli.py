"""`piker quote` and `piker search`, run as a user would (subprocess).

Each command starts its own in-process pikerd on the test's private
registry address and must leave nothing running.
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

PIKER = str(Path(sys.executable).parent / 'piker')


def run(*args: str, timeout: float = 40) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PIKER, *args], capture_output=True, text=True, timeout=timeout,
    )


def registry_free(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        return s.connect_ex(addr) != 0


@pytest.mark.timeout(60)
def test_quote_count_json(piker_env):
    confdir, addr = piker_env
    (confdir / 'brokers.toml').write_text('[sim]\nquote_rate = 200.0\n')
    proc = run('quote', 'btcusdt.sim', 'simco.sim', '--count', '5', '--json')
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert len(lines) == 6  # first quotes + 5 batches
    assert set(lines[0]) == {'btcusdt.sim', 'simco.sim'}
    for batch in lines[1:]:
        for fqme, q in batch.items():
            assert q['symbol'] == fqme and q['bid'] < q['ask']
    assert registry_free(addr)


@pytest.mark.timeout(60)
def test_quote_once_table_and_errors(piker_env):
    _, addr = piker_env
    proc = run('quote', 'ethusdt.sim', 'simco.sim', '--once')
    assert proc.returncode == 0, proc.stderr
    assert 'ethusdt.sim' in proc.stdout and 'simco.sim' in proc.stdout
    assert 'bid' in proc.stdout and 'ask' in proc.stdout

    bad = run('quote', 'btcusd.sim', '--once')
    assert bad.returncode == 1
    assert "error: no sim market 'btcusd'" in bad.stderr
    assert 'did you mean btcusdt.sim' in bad.stderr
    assert 'Traceback' not in bad.stderr

    nobackend = run('quote', 'btcusdt.nope', '--once')
    assert nobackend.returncode == 1
    assert "no broker backend 'nope'" in nobackend.stderr
    assert registry_free(addr)


@pytest.fixture
def pikerd_proc(piker_env):
    """A `piker pikerd` the commands connect to as clients."""
    _, addr = piker_env
    proc = subprocess.Popen(
        [PIKER, 'pikerd'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while registry_free(addr):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, 'pikerd did not come up'
        time.sleep(0.02)
    yield proc
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


@pytest.mark.timeout(60)
def test_search(piker_env, pikerd_proc):
    _, addr = piker_env
    proc = run('search', 'usdt', '--json')
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert list(found)[:3] == ['btcusdt.sim', 'ethusdt.sim', 'solusdt.sim']
    assert found['btcusdt.sim']['price_tick'] == '0.1'

    table = run('search', 'sim', '--broker', 'sim')
    assert table.returncode == 0, table.stderr
    assert 'simco.sim' in table.stdout and 'stock' in table.stdout

    none = run('search', 'zzzzqqq')
    assert none.returncode == 1 and 'no market matches' in none.stderr
    assert none.stdout == ''  # errors go to stderr

    bad = run('search', 'btc', '--broker', 'nope')
    assert bad.returncode == 1 and "no broker backend 'nope'" in bad.stderr

    # a client of a running pikerd: quotes come from its brokerd.sim
    quote = run('quote', 'solusdt.sim', '--count', '2', '--json')
    assert quote.returncode == 0, quote.stderr
    assert len(quote.stdout.splitlines()) == 3
    assert not registry_free(addr)  # pikerd keeps running
