"""The live side of sim markets: one `SimMarket` per market per trio run.

A `SimMarket` owns the market's `Walk`, its live bars and the send
channels ("sinks") its quotes go to. Exactly one task drives the walk at
a time, however many `stream_quotes()` calls listen: the first becomes the
driver, later ones only add their sink, and the role passes on when the
driver leaves. So a market's walk advances at the configured rate no
matter how many listeners it has, and every sink sees the same quotes in
the same order.

Control (`push()`/`resume()`) goes through the same `emit()` path: a push
pauses the walk and hands exactly the given quote to every sink; when
`emit()` returns, every sink's `send()` has returned.

State lives in a `trio.lowlevel.RunVar`: each trio run (a brokerd, a
test) starts from the configured seed, and nothing leaks between runs.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import trio

from ...config import load_brokers_conf
from ...log import get_logger
from .. import _pacing
from ._history import (
    HISTORY_BARS,
    LiveBars,
    check_timeframe,
    first_live_time,
    gen_bridge,
    gen_history,
)
from ._markets import MarketSpec, get_spec
from ._walk import Quote, Walk

log = get_logger('brokers.sim')

# unthrottled walks yield to the scheduler every BURST quotes
BURST = 32


class SimMarket:
    """Live state of one sim market (see module docstring)."""

    def __init__(self, spec: MarketSpec, seed: int, quote_rate: float) -> None:
        self.spec = spec
        self.key = spec.key
        self.seed = seed
        self.quote_rate = quote_rate
        self.walk = Walk(spec, seed)
        self.t0 = time.time()
        # history ends at this minute boundary; until the walk's first
        # second, a generated bridge (1s), then live bars
        self.first_live = first_live_time(self.t0)
        self.live_from = int(self.t0)
        start = self.walk.start_price
        self._bridge = gen_bridge(spec, seed, start, self.first_live, self.live_from)
        self.bars = {
            tf: LiveBars(tf, start, self.first_live, since=self._bridge) if tf > 1
            else LiveBars(tf, start, self.live_from)
            for tf in HISTORY_BARS
        }
        self._past: dict[int, np.ndarray] | None = None
        self.sinks: list[trio.abc.SendChannel] = []
        self.paused = False
        self._resumed = trio.Event()
        self._driving = False
        self._driver_gone = trio.Event()

    # -- history -----------------------------------------------------------

    def history(self, timeframe: int) -> np.ndarray:
        """Generated past + live bars up to now, one continuous series."""
        check_timeframe(timeframe)
        if self._past is None:
            self._past = gen_history(
                self.spec, self.seed, self.walk.start_price, self.first_live,
            )
        live = self.bars[timeframe].array(time.time())
        if timeframe == 1:
            return np.concatenate([self._past[1], self._bridge, live])
        return np.concatenate([self._past[timeframe], live])

    # -- quotes ------------------------------------------------------------

    async def emit(self, quote: Quote) -> None:
        """Record `quote`'s trades into the bars and send it to every sink.

        Each sink gets its own dict (a receiver may set `symbol`); ticks
        lists are shared and must be treated as read-only.
        """
        for tick in quote['ticks']:
            if tick['type'] in ('trade', 'last'):
                now = quote['time_ns'] / 1e9
                for bars in self.bars.values():
                    bars.trade(tick['price'], tick['size'], now)
        sinks = self.sinks
        if len(sinks) == 1:
            sink = sinks[0]
            try:
                await sink.send(quote)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._drop(sink)
            return
        for i, sink in enumerate(tuple(sinks)):
            try:
                await sink.send(quote if i == 0 else dict(quote))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._drop(sink)

    def _drop(self, sink: trio.abc.SendChannel) -> None:
        if sink in self.sinks:
            self.sinks.remove(sink)
            log.info(f'{self.key}: dropped a closed quote sink')

    async def push(self, **fields: Any) -> Quote:
        """Pause the walk and emit exactly the quote `fields` describe."""
        quote = self.walk.push(**fields)
        self.pause()
        await self.emit(quote)
        return quote

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self._resumed = trio.Event()

    def resume(self) -> None:
        """Restart the walk from the last pushed prices."""
        self.walk.recentre()
        if self.paused:
            self.paused = False
            self._resumed.set()

    # -- streaming ---------------------------------------------------------

    async def stream(
        self,
        sink: trio.abc.SendChannel,
        *,
        task_status: trio.TaskStatus[Quote] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Send this market's quotes to `sink` until cancelled.

        `task_status.started()` gets the current quote; from then on the
        sink sees every emitted quote.
        """
        self.sinks.append(sink)
        try:
            task_status.started(self.walk.quote())
            # a sink that broke is dropped by `emit()`: then stop
            while sink in self.sinks:
                if self._driving:
                    await self._driver_gone.wait()
                    continue
                self._driving = True
                self._driver_gone = trio.Event()
                try:
                    await self._drive(sink)
                finally:
                    self._driving = False
                    self._driver_gone.set()
        finally:
            self._drop(sink)

    async def _drive(self, sink: trio.abc.SendChannel) -> None:
        rate = self.quote_rate
        period = 1.0 / rate if rate > 0 else 0.0
        next_t = trio.current_time()
        burst = 0
        walk = self.walk
        sinks = self.sinks
        while sink in sinks:
            if self.paused:
                await self._resumed.wait()
                next_t = trio.current_time()
                continue
            await self.emit(walk.step())
            if period:
                next_t += period
                now = trio.current_time()
                if next_t < now - 1.0:
                    next_t = now  # fell far behind (a stall): do not burst
                # pace by the shared clock: every market and brokerd's busy
                # feed sessions wake together, once per tick, each market
                # emitting every quote due by then (one already due goes at
                # once, no extra checkpoint: `emit()` has one)
                if next_t > now:
                    await _pacing.wait_until(next_t)
            else:
                burst += 1
                if burst >= BURST:
                    burst = 0
                    await trio.sleep(0)


_markets: trio.lowlevel.RunVar[dict[str, SimMarket]] = trio.lowlevel.RunVar('sim_markets')


def get_market(symbol: str) -> SimMarket:
    """This run's `SimMarket` for `symbol` (fqme or key), created on first use.

    Seed and quote rate come from `brokers.toml` `[sim]` at creation.
    Raises `SymbolNotFound` for an unknown market.
    """
    spec = get_spec(symbol)
    try:
        markets = _markets.get()
    except LookupError:
        markets = {}
        _markets.set(markets)
    market = markets.get(spec.key)
    if market is None:
        conf = load_brokers_conf().sim
        market = markets[spec.key] = SimMarket(spec, conf.seed, conf.quote_rate)
    return market
