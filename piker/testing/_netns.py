"""Three Linux network namespaces (hosts A, B, C) for multi-host tests and bench.

    B 10.217.1.2 --veth-- 10.217.1.1 A 10.217.2.1 --veth-- 10.217.2.2 C

A forwards between its links (B and C reach each other through it). Only
namespaces and links this helper creates are touched, in a private range
(10.217.0.0/16); `close()` deletes them (their veths go with them). Each
host gets its own PIKER_CONFIG_DIR; `run`/`spawn` execute commands in a
namespace with `ip netns exec`.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PIKER = str(Path(sys.executable).parent / 'piker')
ADDR = {'A': '10.217.2.1', 'B': '10.217.1.2', 'C': '10.217.2.2'}
A_TO_B = '10.217.1.1'  # A's end of the A-B link


class NetnsUnavailable(RuntimeError):
    pass


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ['ip', *args] if ns is None else ['ip', 'netns', 'exec', ns, 'ip', *args]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class Hosts:
    def __init__(self, root: Path) -> None:
        self.tag = f'pk{os.getpid() % 100000}'
        self.ns = {h: f'{self.tag}{h}' for h in 'ABC'}
        self.dirs = {h: root / h for h in 'ABC'}
        self.procs: list[subprocess.Popen] = []
        self.created: list[str] = []

    def up(self) -> None:
        if shutil.which('ip') is None:
            raise NetnsUnavailable('no `ip` command (iproute2)')
        try:
            for h in 'ABC':
                _ip('netns', 'add', self.ns[h])
                self.created.append(self.ns[h])
        except subprocess.CalledProcessError as err:
            self.close()
            raise NetnsUnavailable(f'`ip netns add` failed: {err.stderr.strip()}') from None
        t = self.tag
        a, b, c = self.ns['A'], self.ns['B'], self.ns['C']
        _ip('link', 'add', f'{t}ab', 'netns', a, 'type', 'veth', 'peer', f'{t}ba', 'netns', b)
        _ip('link', 'add', f'{t}ac', 'netns', a, 'type', 'veth', 'peer', f'{t}ca', 'netns', c)
        for ns, dev, addr in ((a, f'{t}ab', A_TO_B), (b, f'{t}ba', ADDR['B']),
                              (a, f'{t}ac', ADDR['A']), (c, f'{t}ca', ADDR['C'])):
            _ip('addr', 'add', f'{addr}/24', 'dev', dev, ns=ns)
            _ip('link', 'set', dev, 'up', ns=ns)
        for ns in (a, b, c):
            _ip('link', 'set', 'lo', 'up', ns=ns)
        subprocess.run(['ip', 'netns', 'exec', a, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'],
                       check=True, capture_output=True)
        self._routes()
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)

    def _routes(self) -> None:
        _ip('route', 'replace', 'default', 'via', A_TO_B, ns=self.ns['B'])
        _ip('route', 'replace', 'default', 'via', ADDR['A'], ns=self.ns['C'])

    def cut(self, link: str = 'ab') -> None:
        """Take the A-B (or A-C) link down (both ends)."""
        t = self.tag
        _ip('link', 'set', f'{t}{link}', 'down', ns=self.ns['A'])

    def restore(self, link: str = 'ab') -> None:
        t = self.tag
        _ip('link', 'set', f'{t}{link}', 'up', ns=self.ns['A'])
        self._routes()

    def env(self, h: str, registry: str, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop('PIKER_HOST', None)
        env.pop('PIKER_INSECURE', None)
        env.update(PIKER_CONFIG_DIR=str(self.dirs[h]), PIKER_REGISTRY_ADDR=registry,
                   PIKER_LOGLEVEL=extra.pop('loglevel', 'info'), **extra)
        return env

    def cmd(self, h: str, *argv: str) -> list[str]:
        return ['ip', 'netns', 'exec', self.ns[h], *argv]

    def run(self, h: str, argv: list[str], env: dict[str, str],
            timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(self.cmd(h, *argv), env=env, capture_output=True,
                              text=True, timeout=timeout)

    def spawn(self, h: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        out = open(log, 'a')  # a restarted process appends
        proc = subprocess.Popen(self.cmd(h, *argv), env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # whatever is still inside our namespaces (orphans) goes with them
        for ns in self.created:
            pids = subprocess.run(['ip', 'netns', 'pids', ns], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)
        self.created.clear()
