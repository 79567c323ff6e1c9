"""emsd's dark-book feeds: one quote feed per market with resting triggers.

The feed of a market starts with its first dark order or alert (or a live
order, whose risk check wants the market's price) and keeps the `DarkBook`
fed: every quote may fire triggers, which go to the dialog table at once,
with no checkpoint between the quote and the dialog leaving `dark_open`
(so a trigger and a cancel never both win). A feed that breaks is
reconnected with backoff; meanwhile the clients of its dark orders get a
notice (not an error), and another once it is back.
"""
from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..accounting import MktPair
from ..data import open_feed
from ..log import get_logger
from ..service import Backoff, leave_if_cancelled
from ._dark import DarkBook, Triggered
from ._dialogs import Arm, DialogTable, Effect, Phase
from ._effects import Effects
from ._messages import Order
from ._risk import RiskGate, quote_mark

__all__ = ['LIVE_MARK_WAIT', 'NO_MARK_RETRY', 'DarkFeed', 'DarkFeeds', 'open_dark_feeds']

log = get_logger(__name__)

# how long a live order waits for its market's first quote (price band),
# and how long a market with none is not asked again
LIVE_MARK_WAIT = 5.0
NO_MARK_RETRY = 30.0


class DarkFeed:
    """The quote feed of one market, driving the dark book."""

    def __init__(self) -> None:
        self.ready = trio.Event()
        self.last: float = math.nan
        self.mark: float = math.nan  # the price band's reference: see quote_mark
        self.mkt: MktPair | None = None
        self.error: str = ''
        self.down = False  # lost after it was up; reconnecting


class DarkFeeds:
    """The dark book and the market feeds that drive it."""

    def __init__(
        self,
        nursery: trio.Nursery,
        dialogs: DialogTable,
        fx: Effects,
        risk: RiskGate,
        pad_ticks: int,
    ) -> None:
        self._n = nursery
        self.dialogs = dialogs
        self.fx = fx
        self.risk = risk
        self.pad_ticks = pad_ticks
        self.book = DarkBook()
        self.feeds: dict[str, DarkFeed] = {}
        # fqme -> monotonic time until which live orders skip waiting for
        # its market price (it had none: see `await_mark`)
        self._no_mark_until: dict[str, float] = {}

    async def ensure(self, fqme: str) -> DarkFeed:
        """Start (once) and wait for the feed of `fqme`."""
        feed = self.feeds.get(fqme)
        if feed is None:
            feed = self.feeds[fqme] = DarkFeed()
            self._n.start_soon(self._run, fqme, feed)
        await feed.ready.wait()
        if feed.error:
            self.feeds.pop(fqme, None)
            raise RuntimeError(feed.error)
        return feed

    # -- the dark book ----------------------------------------------------------

    def arm(self, eff: Arm) -> None:
        """Rest `eff`'s trigger; its dialog learns the direction it got."""
        feed = self.feeds.get(eff.fqme)
        mkt = feed.mkt if feed else None
        last = feed.last if feed else math.nan
        if not math.isfinite(last):
            last = eff.level  # no print yet: a level at the market fires on a fall
        if eff.direction is not None:
            # a restored trigger keeps the direction it was placed with,
            # whatever the market did while emsd was down
            last = eff.level if eff.direction == 'down' else math.nextafter(eff.level, -math.inf)
        entry = self.book.arm(
            eff.oid, eff.fqme, eff.action, eff.level, last, size=eff.size,
            price_tick=mkt.price_tick if mkt else None,
            pad_ticks=self.pad_ticks if mkt else 0,
        )
        dialog = self.dialogs.get(eff.oid)
        if dialog is not None:
            dialog.armed(entry.direction)

    def disarm(self, oid: str) -> None:
        self.book.disarm(oid)

    async def resume(self, fqme: str, arms: list[Arm]) -> None:
        """Re-arm restored dark orders once their market's feed is up."""
        try:
            await self.ensure(fqme)
        except Exception as err:
            log.error('restored dark orders of %s stay unarmed: %s', fqme, err)
            return
        for eff in arms:
            dialog = self.dialogs.get(eff.oid)
            # a cancel or modify since the restore has moved on: leave it
            resting = dialog is not None and (
                dialog.phase is Phase.DARK_OPEN or dialog.s.guard == 'armed')
            if (dialog is None or not resting
                    or eff.oid in self.book or dialog.req.price != eff.level):
                continue
            self.arm(eff)

    def _on_trigger(self, trig: Triggered) -> list[Effect]:
        """A dark trigger fired: send it live, unless the trading state
        forbids it now (halted, or reduce_only and it would not reduce):
        then the dark order is cancelled, its Status saying why."""
        refusal = self.risk.check_trigger(trig.oid)
        if refusal is None:
            effects = self.dialogs.on_trigger(trig)
            # a group sibling firing on the same quote must see this release
            return effects + self.fx.groups.react(effects)
        log.warning('dark order %s not sent: %s', trig.oid, refusal.reason)
        return self.dialogs.on_cancel(trig.oid, reason=refusal.reason)

    # -- market prices (the risk gate's price band) --------------------------

    async def await_mark(self, order: Order) -> None:
        """Have the market's price for the risk gate's price band.

        Without market data (or not in time) the band is not checked - the
        venue's is - and the market is not asked again for a while: a
        backend with no feed must not slow every order down.
        """
        if time.monotonic() < self._no_mark_until.get(order.symbol, 0.0):
            return
        with trio.move_on_after(LIVE_MARK_WAIT):
            try:
                await self.ensure(order.symbol)
                return
            except Exception as err:
                log.warning('no market price for %s to check order %s against: %s',
                            order.symbol, order.oid, err)
        self._no_mark_until[order.symbol] = time.monotonic() + NO_MARK_RETRY

    def mark(self, fqme: str) -> float | None:
        """The market's price now if a feed has one (the price band's
        reference)."""
        feed = self.feeds.get(fqme)
        if feed is None or not feed.ready.is_set() or not math.isfinite(feed.mark):
            return None
        return feed.mark

    # -- the feed -----------------------------------------------------------

    async def _run(self, fqme: str, feed: DarkFeed) -> None:
        backoff = Backoff()
        while True:
            try:
                async with open_feed([fqme]) as f:
                    feed.mkt = f.mkts[fqme]
                    first = f.first_quotes.get(fqme) or {}
                    last = first.get('last')
                    if last is None or not math.isfinite(last):
                        bid, ask = first.get('bid'), first.get('ask')
                        if bid is not None and ask is not None:
                            last = (bid + ask) / 2
                    if last is not None:
                        feed.last = float(last)
                    feed.mark = quote_mark(first, feed.mark)
                    feed.ready.set()
                    backoff.reset()
                    if feed.down:
                        feed.down = False
                        self._notice(fqme, f'market data for {fqme} is back: '
                                     'the trigger watches it again')
                    async for batch in f.stream:
                        quote = batch.get(fqme)
                        if quote is None:
                            continue
                        last = quote.get('last')
                        if last is not None:
                            feed.last = last
                        feed.mark = quote_mark(quote, feed.mark)
                        for tick in quote.get('ticks') or ():
                            if tick.get('type') == 'gap':  # the backend reconnected
                                self._notice(fqme, str(tick.get('reason', '')))
                        fired = self.book.process_quote(fqme, quote)
                        if fired:
                            effects: list[Effect] = []
                            for trig in fired:
                                effects += self._on_trigger(trig)
                            await self.fx.execute(effects)
            except Exception as err:
                if not feed.ready.is_set():
                    feed.error = f'no market data for {fqme!r}: {err}'
                    log.error(feed.error)
                    feed.ready.set()
                    return
                await leave_if_cancelled()
                log.error('dark feed of %s failed (%s); reconnecting in %.1fs',
                          fqme, err, backoff.delay)
                if not feed.down:
                    feed.down = True
                    self._notice(fqme, f'market data for {fqme} lost ({err}): '
                                 'the trigger waits for it; reconnecting')
            except BaseException:
                await leave_if_cancelled()
                raise
            await backoff.sleep()

    def _notice(self, fqme: str, notice: str) -> None:
        """Tell clients about their dark orders' market data (not an error)."""
        for dialog in self.dialogs.active(fqme):
            if dialog.phase is Phase.DARK_OPEN:
                self.fx.publish(dialog.snapshot().copy({'reason': notice}))


@asynccontextmanager
async def open_dark_feeds(
    dialogs: DialogTable, fx: Effects, risk: RiskGate, pad_ticks: int,
) -> AsyncIterator[DarkFeeds]:
    """The dark book and its feeds, for emsd's lifetime."""
    async with trio.open_nursery() as n:
        yield DarkFeeds(n, dialogs, fx, risk, pad_ticks)
        n.cancel_scope.cancel()
