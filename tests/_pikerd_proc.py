"""`piker pikerd` as a subprocess for CLI and example tests.

The test's private PIKER_CONFIG_DIR / PIKER_REGISTRY_ADDR (autouse
`piker_env` fixture) reach pikerd and its daemons through the
environment. Process bookkeeping reads /proc (no psutil).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PIKER = str(Path(sys.executable).parent / 'piker')


def port_open(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        return s.connect_ex(addr) == 0


def alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        stat = Path(f'/proc/{pid}/stat').read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(')', 1)[1].split()[0] != 'Z'


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`."""
    children: dict[int, list[int]] = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def with_registry(addr: tuple[str, int]) -> list[int]:
    """Live processes (not this one) started with registry address `addr`."""
    needle = f'PIKER_REGISTRY_ADDR={addr[0]}:{addr[1]}\0'.encode()
    found = []
    for env in Path('/proc').glob('[0-9]*/environ'):
        pid = int(env.parent.name)
        if pid == os.getpid():
            continue
        try:
            if needle in env.read_bytes() and alive(pid):
                found.append(pid)
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
    return found


class Pikerd:
    """A running `piker pikerd`; `stop()` sends SIGINT and collects the tree."""

    def __init__(self, proc: subprocess.Popen, log: Path, addr: tuple[str, int]) -> None:
        self.proc = proc
        self.log = log
        self.addr = addr
        self.returncode: int | None = None
        self.tree: list[int] = []

    def stop(self, timeout: float = 15.0) -> int:
        """SIGINT pikerd; wait for it and every daemon it had; its exit code."""
        self.tree = descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGINT)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        deadline = time.monotonic() + 5
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.returncode

    def leftovers(self) -> list[int]:
        """Processes of this tree still alive (by pid and by registry env)."""
        return sorted({p for p in self.tree if alive(p)} | set(with_registry(self.addr)))


@contextmanager
def running_pikerd(addr: tuple[str, int], log: Path, timeout: float = 15.0) -> Iterator[Pikerd]:
    """Start `piker pikerd`, wait until its registry listens; stop it on exit."""
    with log.open('w') as out:
        proc = subprocess.Popen([PIKER, 'pikerd'], stdout=out, stderr=subprocess.STDOUT)
    pikerd = Pikerd(proc, log, addr)
    try:
        deadline = time.monotonic() + timeout
        while not port_open(addr):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, 'pikerd did not come up'
            time.sleep(0.05)
        yield pikerd
    finally:
        if pikerd.returncode is None:
            pikerd.stop()
