"""The venue harness: what the conformance kit needs to know about a backend.

The checks are written once against two small protocols. A `Harness`
says which market to use and boots a world for the backend: in-process
for the endpoint checks (`endpoints()`), or the whole service tree for
the order checks (`run()`). While a tree runs, a `Venue` scripts the
market: quotes at a price and size (so an order is marketable or rests),
the venue's own record of its orders, a fill while the trading daemon is
down, and duplicated order events.

Harnesses are found by backend name (`get_harness`): the built-ins
(`sim`, `binance`, `kraken`, see `_builtin`), then the entry point group
`piker.conformance` (`name = "pkg.module:factory"`), and a `--backend`
value may name a factory itself: `--backend mine=pkg.testing:harness`.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from .._sim import PaperSim

T = TypeVar('T')
ENTRY_POINTS = 'piker.conformance'


@dataclass(frozen=True)
class VenueOrder:
    """One order as the venue itself records it.

    `working` / `price` are None when the venue does not say (the paper
    venue's audit lists every order it created, not their state).
    """
    id: str
    working: bool | None = None
    price: float | None = None


class Quotes(Protocol):
    """Moves the harness's market (`Harness.fqme`) to exactly this quote."""

    async def quote(self, *, bid: float | None = None, ask: float | None = None,
                    bsize: float | None = None, asize: float | None = None,
                    last: float | None = None, size: float | None = None) -> None: ...


class Venue(Quotes, Protocol):
    """A running world (see `Harness.run`): the tree plus the venue's script."""

    sim: PaperSim  # EMS sessions, daemon kills, emsd's state

    async def orders(self, oid: str) -> list[VenueOrder]:
        """Every venue order made for emsd's dialog `oid`, oldest first."""
        ...

    async def fill_while_away(self, oid: str, price: float, action: str) -> None:
        """Fill `oid`'s working order in full while the trading daemon is
        down (it was just killed): its report must come from the order
        report of the next trades dialogue."""
        ...

    def duplicated(self) -> AbstractAsyncContextManager[None]:
        """The venue's order events in this block (fills included) reach
        emsd twice, by the block's exit (the check's order still works:
        it was only partly filled)."""
        ...


@runtime_checkable
class Harness(Protocol):
    """How to test one backend (see the module docstring)."""

    broker: str
    fqme: str            # a market the venue lists, e.g. 'btcusdt.binance'
    pattern: str         # a search pattern that finds `fqme`
    mode: Literal['live', 'paper']  # the order checks' EMS mode
    account: str         # where orders go ('paper' for a paper venue)
    trading_daemon: str  # holds the trades dialogue: 'brokerd.<name>', 'paperboi.<name>'
    notes: dict[str, str]  # check name -> how this backend deviates, and why

    def endpoints(self) -> AbstractContextManager[Quotes]:
        """Make the backend's endpoints work in this process (serve a fake,
        point the isolated config dir at it); yield quote control usable
        from inside a `trio.run` that calls the endpoints."""
        ...

    def run(self, scenario: Callable[[Venue], Awaitable[T]], *,
            ack_delay: float = 0.0, timeout: float = 60.0) -> T:
        """Boot a fresh tree for the backend (in the test's isolated
        environment) and return `await scenario(venue)`. `ack_delay`: the
        venue answers every order command that much later (its events may
        come first), so a cancel can arrive before the ack."""
        ...


def load_factory(spec: str) -> Callable[[], Harness]:
    """`pkg.module:attr` -> the attribute (a harness class or factory)."""
    mod, sep, attr = spec.partition(':')
    if not sep or not mod or not attr:
        raise ValueError(f'harness factory must look like pkg.module:name, got {spec!r}')
    return getattr(import_module(mod), attr)


def get_harness(name: str) -> Harness:
    """The harness of backend `name` (`name=pkg.mod:factory` names its own)."""
    from ._builtin import BUILTIN

    name, _, spec = name.partition('=')
    if spec:
        factory = load_factory(spec)
    elif name in BUILTIN:
        factory = BUILTIN[name]
    else:
        found = [ep for ep in entry_points(group=ENTRY_POINTS) if ep.name == name]
        if not found:
            known = sorted({*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINTS))})
            raise LookupError(
                f'no conformance harness for backend {name!r} (known: {", ".join(known)}); '
                f'register one under the {ENTRY_POINTS!r} entry point group or pass '
                f'--backend {name}=pkg.module:factory (docs/backends.md)')
        factory = found[0].load()
    harness = factory()
    if not isinstance(harness, Harness):
        raise TypeError(f'{name!r}: {factory!r} did not return a conformance Harness')
    return harness


def default_backends() -> list[str]:
    from ._builtin import BUILTIN
    return list(BUILTIN)


__all__ = ['Harness', 'Quotes', 'Venue', 'VenueOrder', 'default_backends', 'get_harness',
           'load_factory']

