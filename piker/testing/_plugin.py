"""Fixtures of the piker pytest plugin."""
from __future__ import annotations

import random
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--backend NAME` (repeatable): the backends the conformance kit
    (`piker.testing.conformance`) checks; default every built-in one.
    `NAME=pkg.module:factory` names a harness of your own (docs/backends.md)."""
    parser.addoption(
        '--backend', action='append', default=[], metavar='NAME',
        help='backend for the piker conformance kit (repeatable; default: '
             'sim, binance, kraken); NAME=pkg.module:factory for your own harness',
    )


def free_port(host: str = '127.0.0.1') -> int:
    """Return a TCP port that is free on `host` right now, for a registry.

    Chosen below the kernel's ephemeral range: a port the kernel hands out
    (as port 0, or as the source port of any outgoing connection) could be
    taken by someone else between this check and pikerd's bind; one below
    that range is only ever taken on purpose.
    """
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(50):
        port = rng.randrange(max(1024, low - 12_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range (Linux; else IANA's)."""
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


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
    yield confdir, addr
    _reset_interrupted_runtime()


def _reset_interrupted_runtime() -> None:
    """Clean up after a test interrupted inside `trio.run` (pytest-timeout).

    Such a test never ran its teardown: tractor's process globals still
    name its actor, so every later test would fail with "already runs an
    actor runtime", and its daemons still run. Fixtures run outside trio,
    so a runtime still set here is a leftover: reset it, SIGKILL the
    interrupted tree's processes, and say so.
    """
    import os
    import signal
    import warnings

    from ..service import forget_actor_runtime
    from ._proc import descendants

    if not forget_actor_runtime():
        return
    killed = sorted(descendants(os.getpid()))
    for pid in killed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    warnings.warn(f'a test left an actor runtime behind (interrupted?): reset it, '
                  f'killed its processes {killed}', stacklevel=1)


class SimRunner:
    """What the `paper_sim` fixture returns: `run_sim()` bound to a test.

    `paper_sim(async_fn, brokers=..., conf=..., timeout=...)` runs
    `await async_fn(sim)` in a fresh, private service tree and returns its
    result (see `piker.testing.run_sim`). Call it more than once in a test
    to restart the whole tree on the same config dir (persistence tests).
    """

    def __init__(self, config_dir: Path, registry_addr: tuple[str, int]) -> None:
        self.config_dir = config_dir
        self.registry_addr = registry_addr

    def __call__(
        self,
        async_fn: Callable[[Any], Awaitable[Any]],
        **kwargs: Any,
    ) -> Any:
        from ._sim import run_sim
        return run_sim(async_fn, **kwargs)

    run = __call__


@pytest.fixture
def paper_sim(piker_env: tuple[Path, tuple[str, int]]) -> SimRunner:
    """Run paper-trading simulations in an isolated service tree.

    ```python
    def test_it(paper_sim):
        async def main(sim):
            await sim.push('btcusdt.sim', bid=99, ask=100, bsize=5, asize=5)
            ems = await sim.open_ems('btcusdt.sim')
            await ems.wait(await ems.place('buy', 100, 1), 'closed')
        paper_sim(main)
    ```
    """
    confdir, addr = piker_env
    return SimRunner(confdir, addr)


@pytest.fixture
def fake_binance() -> Iterator[Any]:
    """A fake Binance spot venue in a background thread (`FakeBinanceThread`).

    Its market moves only when the test says so (`quote_rate=0`):
    ```python
    def test_it(fake_binance, piker_env):
        (piker_env[0] / 'brokers.toml').write_text(fake_binance.config_toml())
        fake_binance.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
    ```
    See docs/fake_binance.md; build your own with other options.
    """
    from .fakes.binance import FakeBinanceThread
    with FakeBinanceThread(quote_rate=0) as fake:
        yield fake


@pytest.fixture
def recorded_market(piker_env: tuple[Path, tuple[str, int]]) -> Callable[..., str]:
    """Install a recorded span into the test's store; returns its replay fqme.

    `recorded_market(src)` takes a store root holding `ticks/<fqme>/`
    (what `piker record` writes under `<config dir>/storage`), copies
    those recordings in and returns `'<fqme>.replay'` (the first, if there
    are several): a market that replays them through the paper engine,
    the EMS and `open_feed()` like a live one. `speed` (0: no pacing) and
    `paused` (start with `open_replay_control(fqme).play()`) are written
    to `brokers.toml [replay]`; pass `brokers=` to `paper_sim` runs to
    keep them (`replay_conf()` gives the table).
    """
    import shutil

    confdir, _ = piker_env

    def install(src: str | Path, speed: float = 0.0, paused: bool = False) -> str:
        src = Path(src)
        ticks = src / 'ticks'
        fqmes = sorted(p.name for p in ticks.iterdir() if p.is_dir()) if ticks.is_dir() else []
        if not fqmes:
            raise ValueError(f'{src} holds no recording (no ticks/<fqme>/ dirs)')
        dest = confdir / 'storage' / 'ticks'
        for fqme in fqmes:
            shutil.copytree(ticks / fqme, dest / fqme, dirs_exist_ok=True)
        (confdir / 'brokers.toml').write_text(
            f'[replay]\nspeed = {float(speed)!r}\npaused = {str(bool(paused)).lower()}\n')
        return f'{fqmes[0]}.replay'

    return install
