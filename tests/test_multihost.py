"""piker across three hosts (network namespaces A, B, C; see tests/_netns.py).

A runs pikerd (registry) and emsd, B a joined supervisor serving
`brokerd.sim` and `paperboi.sim`, C the clients. Every connection between
hosts is mutual TLS with certificates from `piker certs`. The tests share
one set-up and run in file order (later ones break things on purpose).
Skipped, with the reason, where namespaces cannot be created (not root,
no iproute2, no CAP_SYS_ADMIN).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from piker.testing._netns import ADDR, PIKER, Hosts, NetnsUnavailable
from piker.testing._proc import alive, cmdline

HERE = Path(__file__).parent
PY = sys.executable
PORT = 6116
REG = f'{ADDR["A"]}:{PORT}'
FQME = 'btcusdt.sim'
pytestmark = pytest.mark.timeout(300)


def wait_for(pred: Callable[[], object], timeout: float = 30.0, what: str = '',
             show: Path | None = None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    tail = f':\n{show.read_text(errors="replace")[-3000:]}' if show else ''
    raise AssertionError(f'timed out waiting for {what or pred}{tail}')


class Tree:
    def __init__(self, h: Hosts, root: Path) -> None:
        self.h, self.root = h, root
        self.pikerd: subprocess.Popen | None = None
        self.joined: subprocess.Popen | None = None

    def env(self, host: str, **kw: str) -> dict[str, str]:
        return self.h.env(host, REG, **kw)

    def start_pikerd(self) -> None:
        self.pikerd = self.h.spawn('A', [PIKER, 'pikerd', '--host', ADDR['A'], '--port',
                                         str(PORT)], self.env('A'), self.root / 'A.log')
        wait_for(lambda: 'pikerd up' in self.log('A'), what='pikerd up')

    def start_joined(self) -> None:
        self.joined = self.h.spawn(
            'B', [PIKER, 'pikerd', '--join', REG, '--host', ADDR['B'],
                  '--serve', 'brokerd.sim,paperboi.sim'], self.env('B'), self.root / 'B.log')

    def log(self, host: str) -> str:
        return (self.root / f'{host}.log').read_text(errors='replace')

    def services(self) -> dict[str, str]:
        """name -> address, as `piker services` (run in C) shows them."""
        r = self.h.run('C', [PIKER, 'services'], self.env('C'), timeout=30)
        out = {}
        for line in r.stdout.splitlines():
            m = re.match(r'│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│ (\S+)\s+│ (\S+)', line)
            if m and m.group(1) != 'name':
                out[m.group(1)] = m.group(3)
        return out

    def order(self, price: float, env: dict[str, str] | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess:
        return self.h.run('C', [PY, str(HERE / '_multihost_client.py'), 'order', FQME,
                                str(price)], env or self.env('C'), timeout=timeout)


def _statuses(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{')]


@pytest.fixture(scope='module')
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    if os.geteuid() != 0:
        pytest.skip('network namespaces need root (CI runs as root)')
    root = tmp_path_factory.mktemp('multihost')
    h = Hosts(root)
    try:
        h.up()
    except NetnsUnavailable as err:
        pytest.skip(f'cannot create network namespaces: {err}')
    t = Tree(h, root)
    try:
        ca = t.env('A')
        for argv in (['certs', 'init'],
                     ['certs', 'issue', 'hostA', '--host', ADDR['A'], '--install'],
                     ['certs', 'issue', 'hostB', '--host', ADDR['B']],
                     ['certs', 'issue', 'clientC', '--host', ADDR['C']]):
            r = h.run('A', [PIKER, *argv], ca)
            assert r.returncode == 0, r.stderr
        for name, host in (('hostB', 'B'), ('clientC', 'C')):
            shutil.copytree(h.dirs['A'] / 'certs' / 'bundles' / name, h.dirs[host] / 'certs')
        t.start_pikerd()
        t.start_joined()
        wait_for(lambda: {'brokerd.sim', 'paperboi.sim'} <= set(t.services()),
                 what="B's daemons registered")
        yield t
    finally:
        h.close()


def test_services_show_each_daemon_on_its_host(tree: Tree) -> None:
    svc = tree.services()
    assert svc['brokerd.sim'].startswith(f'{ADDR["B"]}:')
    assert svc['paperboi.sim'].startswith(f'{ADDR["B"]}:')
    assert not any(a.startswith('0.0.0.0') for a in svc.values())


def test_order_from_c_fills_through_b_encrypted(tree: Tree) -> None:
    cap = tree.root / 'c.pcap'
    sniff = tree.h.spawn('C', [PY, str(HERE / '_sniff.py'), f'{tree.h.tag}ca', str(cap)],
                         tree.env('C'), tree.root / 'sniff.log')
    wait_for(lambda: 'ready' in (tree.root / 'sniff.log').read_text(), what='sniffer')
    try:
        r = tree.order(70_000.0)
    finally:
        sniff.send_signal(signal.SIGTERM)
        sniff.wait(10)
    st = _statuses(r.stdout)
    assert r.returncode == 0, r.stderr[-3000:]
    assert [s['resp'] for s in st][-1] == 'closed' and st[-1]['filled'] == 0.001
    assert 'fill' in [s['resp'] for s in st]
    svc = tree.services()
    assert svc['emsd'].startswith(f'{ADDR["A"]}:')  # the order went C -> A -> B
    data = cap.read_bytes()
    oid = st[0]['oid']
    assert len(data) > 20_000, 'the capture saw the session'
    assert b'\x17\x03\x03' in data  # TLS application-data records
    assert oid.encode() not in data and b'btcusdt' not in data


def _plain_tractor_hello() -> bytes:
    enc = msgspec.msgpack.encode
    frames = [('intruder', 'x' * 8),
              {'cmd': ['piker.clearing._ems', 'open_ems_dialog', {}, ['intruder', 'x'], 'c1']}]
    return b''.join(struct.pack('<I', len(enc(f))) + enc(f) for f in frames)


def test_client_without_certificate_is_refused(tree: Tree) -> None:
    emsd = tree.services()['emsd']
    host, port = emsd.rsplit(':', 1)
    # plain tractor bytes straight at emsd from C: refused at the TLS layer
    probe = (f'import socket,sys; s=socket.create_connection(({host!r},{port}));'
             f's.sendall(bytes.fromhex({_plain_tractor_hello().hex()!r}));'
             's.settimeout(10); d=s.recv(100);'
             'sys.stdout.write("eof" if not d else "data:"+d.hex())')
    before = tree.log('A')
    r = tree.h.run('C', [PY, '-c', probe], tree.env('C'))
    assert r.stdout in ('eof', '') or 'Connection reset' in r.stderr, r.stdout
    wait_for(lambda: f'refused connection from {ADDR["C"]}' in tree.log('A')[len(before):],
             10, 'the refusal logged')
    after = tree.log('A')[len(before):]
    assert 'intruder' not in after and 'handshake' in after  # never reached tractor

    # a piker client with no certificate at all (plain TCP, --insecure)
    bare = tree.root / 'bare'
    bare.mkdir()
    env = tree.env('C', PIKER_INSECURE='1')
    env['PIKER_CONFIG_DIR'] = str(bare)
    before = tree.log('A')
    r = tree.h.run('C', [PIKER, 'services'], env)
    assert r.returncode != 0
    assert 'TLS handshake failed' in tree.log('A')[len(before):]

    # a certificate from another CA
    other = tree.root / 'other'
    env['PIKER_CONFIG_DIR'] = str(other)
    env.pop('PIKER_INSECURE')
    for argv in (['certs', 'init'], ['certs', 'issue', 'evil', '--install']):
        assert tree.h.run('C', [PIKER, *argv], env).returncode == 0
    r = tree.h.run('C', [PIKER, 'services'], env)
    assert r.returncode != 0 and 'TLS handshake' in r.stderr, r.stderr[-2000:]


def test_revoked_certificate_is_refused(tree: Tree) -> None:
    ca = tree.env('A')
    assert tree.h.run('A', [PIKER, 'certs', 'issue', 'laptop', '--host', ADDR['C']],
                      ca).returncode == 0
    d = tree.root / 'laptop'
    shutil.copytree(tree.h.dirs['A'] / 'certs' / 'bundles' / 'laptop', d / 'certs')
    env = tree.env('C')
    env['PIKER_CONFIG_DIR'] = str(d)
    assert tree.h.run('C', [PIKER, 'services'], env).returncode == 0
    r = tree.h.run('A', [PIKER, 'certs', 'revoke', 'laptop'], ca)
    assert r.returncode == 0, r.stderr
    # A's certs dir is the CA's: its crl.pem is current, read at the next handshake
    r = tree.h.run('C', [PIKER, 'services'], env)
    assert r.returncode != 0
    assert 'revoked' in tree.log('A').lower()


def _pids_in(tree: Tree, host: str, needle: str) -> list[int]:
    out = subprocess.run(['ip', 'netns', 'pids', tree.h.ns[host]], capture_output=True,
                         text=True).stdout.split()
    return [int(pid) for pid in out if needle in cmdline(pid)]


def test_brokerd_sigkilled_is_respawned_by_b(tree: Tree) -> None:
    old = tree.services()['brokerd.sim']
    pids = _pids_in(tree, 'B', "'brokerd.sim'")
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: tree.services().get('brokerd.sim', old) != old, 30, 'brokerd respawned')
    assert 'brokerd.sim' in tree.log('B') and 'respawning' in tree.log('B')
    r = tree.order(70_000.0)
    assert r.returncode == 0 and _statuses(r.stdout)[-1]['resp'] == 'closed', r.stderr[-2000:]


def test_link_cut_fill_during_cut_reconciled_once(tree: Tree) -> None:
    go = tree.root / 'go'
    ctl = tree.h.spawn('B', [PY, str(HERE / '_multihost_client.py'), 'control', FQME,
                             str(go), '50000'], tree.env('B'), tree.root / 'ctl.log')
    wait_for(lambda: 'ready' in (tree.root / 'ctl.log').read_text(), 30, 'market control')
    out = tree.root / 'order.log'
    client = tree.h.spawn('C', [PY, str(HERE / '_multihost_client.py'), 'order', FQME,
                                '50000'], tree.env('C'), out)
    wait_for(lambda: '"open"' in out.read_text(), 30, 'the order works', out)
    before = len(tree.log('A'))
    tree.h.cut('ab')
    try:
        time.sleep(1.0)
        go.touch()  # B's market crosses the order while A cannot see B
        wait_for(lambda: 'pushed' in (tree.root / 'ctl.log').read_text(), 10, 'push')
        # longer than emsd's venue watchdog: emsd loses paperboi and must
        # reconnect and reconcile once the link is back
        wait_for(lambda: 'paperboi.sim is down' in out.read_text(), 20,
                 'C told its order waits at a venue that is down')
        assert '"fill"' not in out.read_text()  # nothing can reach C during the cut
    finally:
        tree.h.restore('ab')
    client.wait(60)
    assert 'paperboi.sim: order report reconciled' in tree.log('A')[before:]
    st = _statuses(out.read_text())
    resps = [s['resp'] for s in st]
    assert resps.count('fill') == 1, resps
    assert resps[-1] == 'closed' and st[-1]['filled'] == 0.001, resps
    down = [s for s in st if 'is down' in s['reason']]
    assert [s['resp'] for s in down] == ['open']  # still working, not an error
    ctl.send_signal(signal.SIGTERM)
    ctl.wait(10)


def test_pikerd_restart_joined_supervisor_reregisters(tree: Tree) -> None:
    assert tree.pikerd is not None
    tree.pikerd.send_signal(signal.SIGTERM)
    tree.pikerd.wait(30)
    tree.start_pikerd()
    wait_for(lambda: {'brokerd.sim', 'paperboi.sim'} <= set(tree.services()), 20,
             're-registered')
    r = tree.order(70_000.0)
    assert r.returncode == 0 and _statuses(r.stdout)[-1]['resp'] == 'closed', r.stderr[-2000:]


def test_joined_supervisor_killed_venue_unreachable(tree: Tree) -> None:
    assert tree.joined is not None
    daemons = _pids_in(tree, 'B', 'piker.service._child_boot')
    assert daemons
    out = tree.root / 'resting.log'
    # far below the market (the link-cut test left it near 50,000): rests
    resting = tree.h.spawn('C', [PY, str(HERE / '_multihost_client.py'), 'order', FQME,
                                 '40000'], tree.env('C'), out)
    wait_for(lambda: '"open"' in out.read_text(), 30, 'a working order at B', out)
    os.kill(tree.joined.pid, signal.SIGKILL)
    # its client is told the venue is down (the order waits there, not an error)
    wait_for(lambda: 'paperboi.sim is down' in out.read_text(), 20, 'venue down notice')
    resting.send_signal(signal.SIGTERM)
    tree.joined.wait(10)
    wait_for(lambda: not any(alive(p) for p in daemons), 20, "B's daemons stop")
    wait_for(lambda: 'paperboi.sim' not in tree.services(), 20, 'entries pruned')
    r = tree.order(70_000.0, timeout=90)
    st = _statuses(r.stdout)
    assert st and st[-1]['resp'] == 'error', (r.stdout, r.stderr[-2000:])
    assert 'paperboi.sim' in st[-1]['reason'], st[-1]
