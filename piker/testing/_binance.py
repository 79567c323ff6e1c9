"""The whole service tree against the fake Binance: live-mode simulations.

```python
def test_fill(binance_sim):
    async def main(sim):
        ems = await sim.open_ems('btcusdt.binance', mode='live')
        sim.fake.push('BTCUSDT', bid=99, ask=100, bsize=5, asize=5)
        oid = await ems.place('buy', 100.0, 0.01, account='spot')
        await ems.wait(oid, 'closed')

    binance_sim(main)
```

`run_binance_sim(async_fn)` (the `binance_sim` fixture binds it to the
test's isolated environment) serves a `FakeBinance` (see
`piker.testing.fakes.binance`) on loopback in the test's own trio loop,
points `brokers.toml` `[binance]` at it (with its API keys, unless
`keys=False`), boots the tree like `run_sim()` and passes a `BinanceSim`:
the `PaperSim` handle (EMS sessions, crash tests, ...) plus `.fake`, the
venue itself (`push`, `fill`, `fill_while_away`, `faults`, ...).
"""
from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

if TYPE_CHECKING:
    from ._sim import EMSSession, PaperSim

__all__ = ['BinanceSim', 'BinanceSimRunner', 'binance_sim', 'run_binance_sim']

ENV_KEYS = ('PIKER_BINANCE_API_KEY', 'PIKER_BINANCE_API_SECRET')


class BinanceSim:
    """A `PaperSim` whose `binance` backend is the fake at `.fake`."""

    def __init__(self, sim: PaperSim, fake: Any) -> None:
        self.sim = sim
        self.fake = fake

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    async def open_ems(
        self, fqme: str = 'btcusdt.binance', mode: str = 'live', record: bool = True,
    ) -> EMSSession:
        """An EMS session on a Binance market, live (the fake) by default."""
        return await self.sim.open_ems(fqme, mode=mode, record=record)

    def push(self, fqme: str = 'btcusdt.binance', **quote: float) -> dict[str, Any]:
        """Emit exactly this book/trade at the fake (see `FakeBinance.push`)."""
        return self.fake.push(_symbol(fqme), **quote)

    def orders(self, fqme: str | None = None, open_only: bool = False) -> list[dict]:
        """The fake venue's orders (Binance's REST shape)."""
        return self.fake.orders(_symbol(fqme) if fqme else None, open_only=open_only)


def _symbol(fqme: str) -> str:
    return fqme.lower().removesuffix('.binance').upper()


def binance_conf(fake: Any, keys: bool = True, extra: dict[str, Any] | None = None) -> str:
    """`brokers.toml` text pointing `[binance]` at `fake`."""
    import tomli_w

    data = tomllib.loads(fake.config_toml())
    table = data['binance']
    if not keys:
        table.pop('api_key', None)
        table.pop('api_secret', None)
    for name, value in (extra or {}).items():
        if name == 'binance':
            table.update(value)
        else:
            data[name] = value
    return tomli_w.dumps(data)


def run_binance_sim(
    async_fn: Callable[[BinanceSim], Awaitable[Any]],
    *,
    fake: dict[str, Any] | None = None,
    keys: bool = True,
    brokers: dict[str, Any] | None = None,
    conf: dict[str, Any] | str | None = None,
    loglevel: str | None = None,
    timeout: float = 60.0,
    check_leaks: bool = True,
) -> Any:
    """Run `await async_fn(sim)` against a fresh fake Binance and tree.

    `fake`: `FakeBinance` keyword arguments (default: seed 0, a paused
    walk - `quote_rate=0` - so only the test moves the market); `brokers`:
    more `brokers.toml` tables (`{'binance': {...}}` merges into the fake's
    table); `keys=False` leaves the API keys out (market data + paper).
    """
    # lazily: the plugin loads this module in every pytest run
    from ._sim import _write_toml, check_gone, isolated_config_dir, run_tree
    from .fakes.binance import open_fake_binance

    confdir = isolated_config_dir('run_binance_sim()')
    _write_toml(confdir / 'conf.toml', conf)
    opts = {'quote_rate': 0.0, **(fake or {})}

    async def main() -> tuple[Any, set[int]]:
        async with open_fake_binance(**opts) as venue:
            (confdir / 'brokers.toml').write_text(binance_conf(venue, keys, brokers))
            return await run_tree(
                lambda sim: async_fn(BinanceSim(sim, venue)), confdir, loglevel, timeout,
            )

    result, pids = trio.run(main)
    if check_leaks:
        check_gone(pids)
    return result


class BinanceSimRunner:
    """What the `binance_sim` fixture returns: `run_binance_sim()` bound to
    a test (call it more than once to restart the tree on the same dir)."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir

    def __call__(self, async_fn: Callable[[BinanceSim], Awaitable[Any]], **kw: Any) -> Any:
        return run_binance_sim(async_fn, **kw)

    run = __call__


@pytest.fixture
def binance_sim(
    piker_env: tuple[Path, tuple[str, int]], monkeypatch: pytest.MonkeyPatch,
) -> BinanceSimRunner:
    """Live-mode simulations against the fake Binance (see `run_binance_sim`).

    Keys from the environment never leak in: the fake's own are used.
    """
    for var in ENV_KEYS:
        monkeypatch.delenv(var, raising=False)
    return BinanceSimRunner(piker_env[0])
