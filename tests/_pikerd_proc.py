"""`piker pikerd` as a subprocess for CLI and example tests.

The test's private PIKER_CONFIG_DIR / PIKER_REGISTRY_ADDR (autouse
`piker_env` fixture) reach pikerd and its daemons through the
environment. Process bookkeeping: `piker.testing._proc`.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from piker.testing._proc import alive, descendants, with_env
from piker.testing._proc import port_open as _port_open

PIKER = str(Path(sys.executable).parent / 'piker')


def port_open(addr: tuple[str, int]) -> bool:
    return _port_open(*addr)


def with_registry(addr: tuple[str, int]) -> list[int]:
    """Live processes (not this one) started with registry address `addr`."""
    return with_env('PIKER_REGISTRY_ADDR', f'{addr[0]}:{addr[1]}')


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
