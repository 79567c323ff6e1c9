"""Harnesses of the built-in backends, on the existing simulation kit.

- `sim`: paper mode is its venue: the tree of `run_sim()`, quotes by
  market control, orders from the paper venue's audit.
- `binance`, `kraken`: live mode against their fakes (`run_binance_sim`,
  `run_kraken_sim`), quotes by `fake.push`, faults by `fake.faults`.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal, TypeVar

import trio

from ...brokers import daemon_name
from ...clearing._daemons import PAPERBOI
from ._harness import Harness, Quotes, VenueOrder

# the sim backend's paper venue: its trading daemon
PAPER_VENUE = PAPERBOI.name('sim')

T = TypeVar('T')


def _given(**quote: float | None) -> dict[str, float]:
    return {k: v for k, v in quote.items() if v is not None}


class _FakeQuotes:
    """`Quotes` on a fake venue in a thread (its calls block: from a worker
    thread, never the trio thread calling the endpoints)."""

    def __init__(self, fake: Any, symbol: str) -> None:
        self.fake = fake
        self.symbol = symbol

    async def quote(self, **quote: float | None) -> None:
        given = _given(**quote)
        await trio.to_thread.run_sync(lambda: self.fake.push(self.symbol, **given))


# -- sim ---------------------------------------------------------------------

class _SimQuotes:
    """In-process `Quotes` of a sim market (this trio run's `SimMarket`)."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def quote(self, **quote: float | None) -> None:
        from ...brokers.sim import get_market
        await get_market(self.key).push(**_given(**quote))


class SimVenue:
    """The paper venue of the sim, as a conformance `Venue`."""

    def __init__(self, sim: Any, fqme: str) -> None:
        self.sim = sim
        self.fqme = fqme

    async def quote(self, **quote: float | None) -> None:
        await self.sim.push(self.fqme, **_given(**quote))

    async def orders(self, oid: str) -> list[VenueOrder]:
        return [VenueOrder(r) for r in (await self.sim.venue_orders('sim')).get(oid, [])]

    async def _venue_up(self) -> None:
        await self.sim.until_ems(lambda st: st['venues'].get(PAPER_VENUE) == 'up', timeout=20)

    async def fill_while_away(self, oid: str, price: float, action: str) -> None:
        # the paper venue *is* the trading daemon: nothing fills while it is
        # down. Its respawn reloads its orders and feeds before any emsd
        # reconnects, so the fill lands between respawn and reconnect (or,
        # on a fast reconnect, just after: either way emsd must count it once)
        before = len(self.sim.ledger('sim', 'paper'))
        cross = dict(ask=price, asize=1e6, bid=price - 1, bsize=1) if action == 'buy' \
            else dict(bid=price, bsize=1e6, ask=price + 1, asize=1)
        with trio.fail_after(20):
            while len(self.sim.ledger('sim', 'paper')) == before:
                await self.sim.push(self.fqme, **cross)  # until the venue's feed is back
                await trio.sleep(0.1)

    @asynccontextmanager
    async def duplicated(self) -> AsyncIterator[None]:
        # no fault injection in the paper venue: a restart does it, its
        # order report repeats the recent fills emsd already has
        yield
        await self.sim.kill(PAPER_VENUE)
        await self._venue_up()


class SimHarness:
    broker = 'sim'
    fqme = 'btcusdt.sim'
    pattern = 'btc'
    mode: Literal['live', 'paper'] = 'paper'
    account = 'paper'
    trading_daemon = PAPER_VENUE
    notes = {
        'order_report_after_reconnect': 'the paper venue is the trading daemon: '
        'its fill lands after its respawn, not while it is down',
        'duplicate_fills_dropped': 'no fault injection: the venue restarts and its '
        'order report repeats the fills emsd already has',
    }

    @contextmanager
    def endpoints(self) -> Iterator[Quotes]:
        yield _SimQuotes('btcusdt')

    def run(self, scenario: Callable[[Any], Awaitable[T]], *,
            ack_delay: float = 0.0, timeout: float = 60.0) -> T:
        from .._sim import run_sim
        brokers = {'sim': {'paper': {'latency_ms': ack_delay * 1000}}} if ack_delay else None
        return run_sim(lambda sim: scenario(SimVenue(sim, self.fqme)), brokers=brokers,
                       timeout=timeout)


# -- the fakes ---------------------------------------------------------------

class FakeVenue:
    """A fake venue behind a `BinanceSim` / `KrakenSim`, as a `Venue`."""

    def __init__(self, sim: Any, harness: _FakeHarness) -> None:
        self.sim = sim
        self.fake = sim.fake
        self.h = harness

    async def quote(self, **quote: float | None) -> None:
        self.fake.push(self.h.symbol, **_given(**quote))

    async def orders(self, oid: str) -> list[VenueOrder]:
        return [self.h.venue_order(o) for o in self.fake.orders() if self.h.is_of(o, oid)]

    async def fill_while_away(self, oid: str, price: float, action: str) -> None:
        (order,) = [o for o in await self.orders(oid) if o.working]
        self.fake.fill_while_away(self.h.native_id(order.id))

    @asynccontextmanager
    async def duplicated(self) -> AsyncIterator[None]:
        self.fake.faults.duplicate_reports(1000)
        try:
            yield
        finally:
            self.fake.faults.duplicate_reports(0)


class _FakeHarness:
    broker: str
    fqme: str
    symbol: str  # the fake's name of `fqme`'s market
    pattern: str
    mode: Literal['live', 'paper'] = 'live'
    account = 'spot'
    trading_daemon: str
    env_keys: tuple[str, ...]
    fake_opts: dict[str, Any]
    notes: dict[str, str] = {}

    def __init__(self) -> None:
        self.trading_daemon = daemon_name(self.broker)

    def thread(self) -> Any:
        raise NotImplementedError

    def runner(self) -> Callable[..., Any]:
        raise NotImplementedError

    def is_of(self, order: dict, oid: str) -> bool:
        raise NotImplementedError

    def venue_order(self, order: dict) -> VenueOrder:
        raise NotImplementedError

    def native_id(self, id: str) -> Any:
        return id

    @contextmanager
    def endpoints(self) -> Iterator[Quotes]:
        from ...config import get_config_dir
        from .._venue import venue_conf
        saved = {k: os.environ.pop(k) for k in self.env_keys if k in os.environ}
        try:
            with self.thread() as fake:
                (get_config_dir() / 'brokers.toml').write_text(venue_conf(fake, self.broker))
                yield _FakeQuotes(fake, self.symbol)
        finally:
            os.environ.update(saved)

    def run(self, scenario: Callable[[Any], Awaitable[T]], *,
            ack_delay: float = 0.0, timeout: float = 60.0) -> T:
        async def main(sim: Any) -> T:
            if ack_delay:
                sim.fake.faults.delay_acks(ack_delay)
            return await scenario(FakeVenue(sim, self))

        saved = {k: os.environ.pop(k) for k in self.env_keys if k in os.environ}
        try:
            return self.runner()(main, fake=self.fake_opts, timeout=timeout)
        finally:
            os.environ.update(saved)


class BinanceHarness(_FakeHarness):
    broker = 'binance'
    fqme = 'btcusdt.binance'
    symbol = 'BTCUSDT'
    pattern = 'btcusdt'
    env_keys = ('PIKER_BINANCE_API_KEY', 'PIKER_BINANCE_API_SECRET')
    fake_opts = {'balances': {'USDT': 100_000}}
    notes = {'modify_keeps_one_venue_order': 'Binance modifies by cancel-replace: the '
             'old order is canceled at the venue, one stays working'}

    def thread(self) -> Any:
        from ..fakes.binance import FakeBinanceThread
        return FakeBinanceThread(quote_rate=0, **self.fake_opts)

    def runner(self) -> Callable[..., Any]:
        from .._binance import run_binance_sim
        return run_binance_sim

    def is_of(self, order: dict, oid: str) -> bool:
        # the dialog's oid (hex) is carried in the client order id
        return order['clientOrderId'][2:34] == oid.replace('-', '')

    def venue_order(self, order: dict) -> VenueOrder:
        return VenueOrder(str(order['orderId']),
                          order['status'] in ('NEW', 'PARTIALLY_FILLED'), float(order['price']))

    def native_id(self, id: str) -> Any:
        return int(id)


class KrakenHarness(_FakeHarness):
    broker = 'kraken'
    fqme = 'btcusd.kraken'
    symbol = 'BTC/USD'
    pattern = 'btcusd'
    env_keys = ('PIKER_KRAKEN_API_KEY', 'PIKER_KRAKEN_API_SECRET')
    fake_opts = {'balances': {'ZUSD': 100_000}}

    def thread(self) -> Any:
        from ..fakes.kraken import FakeKrakenThread
        return FakeKrakenThread(quote_rate=0, **self.fake_opts)

    def runner(self) -> Callable[..., Any]:
        from .._kraken import run_kraken_sim
        return run_kraken_sim

    def is_of(self, order: dict, oid: str) -> bool:
        return order.get('cl_ord_id') == oid

    def venue_order(self, order: dict) -> VenueOrder:
        return VenueOrder(order['order_id'],
                          order['order_status'] in ('new', 'pending_new', 'partially_filled'),
                          float(order['limit_price']))


BUILTIN: dict[str, Callable[[], Harness]] = {
    'sim': SimHarness,
    'binance': BinanceHarness,
    'kraken': KrakenHarness,
}

__all__ = ['BUILTIN', 'BinanceHarness', 'FakeVenue', 'KrakenHarness', 'SimHarness', 'SimVenue']
