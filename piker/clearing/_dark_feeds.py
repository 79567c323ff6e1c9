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
from typing import NamedTuple

import trio

from ..accounting import MktPair
from ..data import open_feed
from ..log import get_logger
from ..service import Backoff, reconnecting
from ._dark import Triggered
from ._dialogs import Arm, DialogTable, Effect, Phase
from ._effects import Effects
from ._messages import TRIGGER_TYPES, Order
from ._order_types import last_for_direction, reduce_only_fit, release_price
from ._risk import RiskGate, quote_mark
from ._trailing import TriggerBook

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
        self.book = TriggerBook()
        # Statuses of triggers set while arming (a trailing stop started
        # from the market): `Effects` publishes them after their batch's
        self._news: list[Effect] = []
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
        if eff.trail is not None and mkt is not None:
            try:
                entry = self.book.arm_trailing(
                    eff.oid, eff.fqme, eff.action, eff.trail,  # type: ignore[arg-type]
                    level=eff.level, anchor=eff.anchor, last_price=feed.last if feed else last,
                    size=eff.size, price_tick=mkt.price_tick, pad_ticks=self.pad_ticks,
                )
            except ValueError as err:  # no market price to start from
                log.error('trailing stop %s not armed: %s', eff.oid, err)
                self._news += self.dialogs.on_cancel(eff.oid, reason=str(err))
                return
            if entry.level != eff.level:  # started from the market
                trigger, anchor = self.book.trailing(eff.oid) or (entry.level, None)
                self._news += self.dialogs.on_trail(_Start(oid=eff.oid, trigger=trigger, anchor=anchor))
            return
        if eff.direction is not None:
            # a restored trigger keeps the direction it was placed with,
            # whatever the market did while emsd was down; a trigger
            # type's is fixed by its type and side
            last = last_for_direction(eff.level, eff.direction)
        entry = self.book.arm(
            eff.oid, eff.fqme, eff.action, eff.level, last, size=eff.size,
            price_tick=mkt.price_tick if mkt else None,
            pad_ticks=self.pad_ticks if mkt else 0,
        )
        dialog = self.dialogs.get(eff.oid)
        if dialog is not None:
            dialog.armed(entry.direction)

    def news(self) -> list[Effect]:
        """What arming said (see `_news`), once."""
        news, self._news = self._news, []
        return news

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
            # (a guard, a held bracket child, rests in the book too)
            resting = dialog is not None and (
                dialog.phase is Phase.DARK_OPEN or dialog.s.guard == 'armed')
            if (dialog is None or not resting
                    or eff.oid in self.book or dialog.arm_effect().level != eff.level):
                continue
            self.arm(eff)
        self.fx.execute_nowait(self.news())

    def on_quote(self, fqme: str, quote: dict) -> list[Effect]:
        """One quote of `fqme` through the dark book: the triggers it fired
        and the trailing stops it moved (one `dark_open` each, conflated:
        the final trigger of the quote, and only if it moved a tick or more)."""
        fired = self.book.process_quote(fqme, quote)
        moved = self.book.drain_moved()
        effects: list[Effect] = []
        for trig in fired:
            effects += self._on_trigger(trig)
        for move in moved:
            effects += self.dialogs.on_trail(move)
        return effects

    def _on_trigger(self, trig: Triggered) -> list[Effect]:
        """A dark trigger fired: send it live, unless it may not go now
        (`_release_problem`): then the dark order is cancelled, its Status
        saying why."""
        dialog = self.dialogs.get(trig.oid)
        problem = ''
        if dialog is None or dialog.phase is not Phase.HELD:
            # (a guard firing releases nothing: checked once it re-arms)
            problem, trig = self._release_problem(dialog.req if dialog else None, trig)
        if not problem:
            effects = self.dialogs.on_trigger(trig)
            # a group sibling firing on the same quote must see this release
            return effects + self.fx.groups.react(effects)
        log.warning('dark order %s not sent: %s', trig.oid, problem)
        return self.dialogs.on_cancel(trig.oid, reason=problem)

    def _release_problem(self, req: Order | None, trig: Triggered) -> tuple[str, Triggered]:
        """Why the triggered `req` may not go live now ('' if it may), and
        the trigger to release it with. Every dark order: the trading state
        (halted, or reduce_only and it would not reduce). A trigger type
        also: the risk gate's band and limits for what is actually sent (a
        stop_limit's limit, a stop's padded price). A reduce-only order: the
        position now (sized down to it, or refused). `trig.size` is what
        the book armed (a group member's armed share): the most it sends."""
        if req is not None and req.reduce_only:
            armed = req.copy({'size': trig.size}) if 0 < trig.size < req.size else req
            size, note = reduce_only_fit(
                armed, *self.risk.position(req.broker, req.account, req.symbol),
            )
            if size <= 0:
                return note + ': the triggered order was cancelled, not sent', trig
            trig = trig.copy({'size': size})
        if req is None or req.type not in TRIGGER_TYPES:
            # a dark limit, as ever: what the book armed of it (0: all)
            refusal = self.risk.check_trigger(trig.oid, trig.size or None)
        else:
            released = req.copy({
                'price': release_price(req, trig), 'size': trig.size or req.size,
                'exec_mode': 'live', 'type': 'limit', 'limit': None, 'trail': None,
            })
            refusal = self.risk.check_release(released, self.mark(req.symbol))
        return (refusal.reason if refusal is not None else ''), trig

    # -- market prices (the risk gate's price band) --------------------------

    async def await_mark(self, order: Order) -> None:
        """Have the market's price for the risk gate's price band.

        Without market data (or not in time) the band is not checked - the
        venue's is - and the market is not asked again for a while: a
        backend with no feed must not slow every order down.
        """
        feed = self.feeds.get(order.symbol)
        if feed is not None and feed.ready.is_set() and not feed.error:
            return  # the common case: no cancel scope, no checkpoint per order
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

        async def connect() -> None:
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
                    effects = self.on_quote(fqme, quote)
                    if effects:
                        await self.fx.execute(effects)

        def on_down(err: BaseException | None) -> bool:
            if err is None:
                return True  # the feed ended: open it again
            if not feed.ready.is_set():
                feed.error = f'no market data for {fqme!r}: {err}'
                log.error(feed.error)
                feed.ready.set()
                return False
            if not feed.down:
                feed.down = True
                self._notice(fqme, f'market data for {fqme} lost ({err}): '
                             'the trigger waits for it; reconnecting')
            return True

        await reconnecting(connect, f'dark feed of {fqme}', backoff=backoff, on_down=on_down)

    def _notice(self, fqme: str, notice: str) -> None:
        """Tell clients about their dark orders' market data (not an error)."""
        for dialog in self.dialogs.active(fqme):
            if dialog.phase is Phase.DARK_OPEN:
                self.fx.publish(dialog.snapshot().copy({'reason': notice}))


class _Start(NamedTuple):
    """A trailing stop's first trigger, set from the market at arm."""

    oid: str
    trigger: float
    anchor: float | None


@asynccontextmanager
async def open_dark_feeds(
    dialogs: DialogTable, fx: Effects, risk: RiskGate, pad_ticks: int,
) -> AsyncIterator[DarkFeeds]:
    """The dark book and its feeds, for emsd's lifetime."""
    async with trio.open_nursery() as n:
        yield DarkFeeds(n, dialogs, fx, risk, pad_ticks)
        n.cancel_scope.cancel()
