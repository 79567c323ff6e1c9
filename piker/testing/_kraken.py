"""The whole service tree against the fake Kraken: live-mode simulations.

```python
def test_fill(kraken_sim):
    async def main(sim):
        ems = await sim.open_ems('btcusd.kraken', mode='live')
        sim.push('btcusd.kraken', bid=99, ask=100, bsize=5, asize=5)
        oid = await ems.place('buy', 100.0, 0.01, account='spot')
        await ems.wait(oid, 'closed')

    kraken_sim(main, fake={'balances': {'ZUSD': 10_000}})
```

`run_kraken_sim(async_fn)` serves a `FakeKraken` (`piker.testing.fakes.
kraken`) in the test's trio loop, points `brokers.toml` `[kraken]` at it
(with its keys unless `keys=False`), boots the tree like `run_sim()` and
passes a `KrakenSim`: the `PaperSim` handle plus `.fake`, the venue.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._sim import EMSSession, PaperSim

__all__ = ['KrakenSim', 'KrakenSimRunner', 'fake_kraken', 'kraken_sim', 'run_kraken_sim']

ENV_KEYS = ('PIKER_KRAKEN_API_KEY', 'PIKER_KRAKEN_API_SECRET')


class KrakenSim:
    """A `PaperSim` whose `kraken` backend is the fake at `.fake`."""

    def __init__(self, sim: PaperSim, fake: Any) -> None:
        self.sim = sim
        self.fake = fake

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    async def open_ems(self, fqme: str = 'btcusd.kraken', mode: str = 'live',
                       record: bool = True) -> EMSSession:
        return await self.sim.open_ems(fqme, mode=mode, record=record)

    def push(self, fqme: str = 'btcusd.kraken', **quote: float) -> dict[str, Any]:
        """Emit exactly this book/trade at the fake (see `FakeKraken.push`)."""
        return self.fake.push(pair_of(fqme), **quote)

    def orders(self, open_only: bool = False) -> list[dict]:
        return self.fake.orders(open_only=open_only)


def pair_of(fqme: str) -> str:
    """The fake's pair of a piker fqme: `btcusd.kraken` -> `BTC/USD`."""
    from .fakes.kraken import PAIRS
    key = fqme.lower().removesuffix('.kraken')
    for sym in PAIRS:
        if sym.replace('/', '').lower() == key:
            return sym
    return key


def run_kraken_sim(
    async_fn: Callable[[KrakenSim], Awaitable[Any]], **kw: Any,
) -> Any:
    """Run `await async_fn(sim)` against a fresh fake Kraken and tree.

    Keywords as `piker.testing._venue.run_venue_sim`: `fake` (`FakeKraken`
    kwargs; default a paused walk), `keys`, `brokers` (`{'kraken': {...}}`
    merges into the fake's table), `conf`, `loglevel`, `timeout`,
    `check_leaks`.
    """
    from ._venue import run_venue_sim
    from .fakes.kraken import open_fake_kraken
    return run_venue_sim(async_fn, open_fake_kraken, 'kraken', KrakenSim, **kw)


class KrakenSimRunner:
    """What the `kraken_sim` fixture returns: `run_kraken_sim()` bound to a test."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir

    def __call__(self, async_fn: Callable[[KrakenSim], Awaitable[Any]], **kw: Any) -> Any:
        return run_kraken_sim(async_fn, **kw)

    run = __call__


@pytest.fixture
def kraken_sim(
    piker_env: tuple[Path, tuple[str, int]], monkeypatch: pytest.MonkeyPatch,
) -> KrakenSimRunner:
    """Live-mode simulations against the fake Kraken (see `run_kraken_sim`)."""
    for var in ENV_KEYS:
        monkeypatch.delenv(var, raising=False)
    return KrakenSimRunner(piker_env[0])


@pytest.fixture
def fake_kraken() -> Iterator[Any]:
    """A fake Kraken spot venue in a background thread (`FakeKrakenThread`),
    its market moved only by the test (`quote_rate=0`), 10,000 USD:

    ```python
    def test_it(fake_kraken, piker_env):
        (piker_env[0] / 'brokers.toml').write_text(fake_kraken.config_toml())
        fake_kraken.push('BTC/USD', bid=64000, ask=64000.1, bsize=1, asize=1)
    ```
    """
    from .fakes.kraken import FakeKrakenThread
    with FakeKrakenThread(quote_rate=0, balances={'ZUSD': 10_000}) as fake:
        yield fake
