"""Fixtures of the piker pytest plugin."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port(host: str = '127.0.0.1') -> int:
    """Return a TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture
def piker_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, tuple[str, int]]]:
    """Isolate piker: private config dir + free registry address.

    Both are exported through the environment so sub-actors inherit them.
    Yields `(config_dir, (host, port))`.
    """
    confdir = tmp_path / 'piker-config'
    confdir.mkdir()
    addr = ('127.0.0.1', free_port())
    monkeypatch.setenv('PIKER_CONFIG_DIR', str(confdir))
    monkeypatch.setenv('PIKER_REGISTRY_ADDR', f'{addr[0]}:{addr[1]}')
    monkeypatch.setenv(
        'PYTHONWARNINGS',
        'ignore:trio.MultiError is deprecated:FutureWarning,'
        'ignore:MultiError.filter() is deprecated:FutureWarning',
    )
    yield confdir, addr
