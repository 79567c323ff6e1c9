"""The paper venue's quote feeds: one per market with working orders.

A feed runs for the life of the venue, not of a dialogue (a venue keeps
working its orders while no emsd is connected), and reconnects with
backoff when brokerd dies: the book it feeds outlives feed restarts.
Every quote is matched against its book under the venue's lock, and the
fills go down the venue's one fill path (`_paper_fills`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import trio

from ..data import open_feed  # up front: no blocking import in a handler
from ..log import get_logger
from ..service import Backoff, reconnecting
from ._matching import PaperBook
from ._paper_rules import NotAMarketKey

if TYPE_CHECKING:
    from ._paper_engine import PaperVenue

log = get_logger(__name__)


class PaperFeeds:
    """The quote feeds of one `PaperVenue`, started once per fqme."""

    def __init__(self, venue: PaperVenue) -> None:
        self.venue = venue
        # fqme -> set once its feed is up (or failed to start)
        self._feeds: dict[str, trio.Event] = {}
        self._feed_errors: dict[str, str] = {}

    async def ensure_feed(self, fqme: str) -> str | None:
        """Start (once) the quote feed of `fqme`; return an error or None."""
        ready = self._feeds.get(fqme)
        if ready is None:
            ready = self._feeds[fqme] = trio.Event()
            self._feed_errors.pop(fqme, None)
            self.venue.nursery.start_soon(self._run_feed, fqme, ready)
        await ready.wait()
        return self._feed_errors.get(fqme)

    async def _run_feed(self, fqme: str, ready: trio.Event) -> None:
        """Feed `fqme`'s quotes into its book, reconnecting if the feed dies.

        The book outlives feed restarts: resting orders must survive a
        brokerd respawn.
        """
        backoff = Backoff()

        async def connect() -> None:
            async with open_feed([fqme]) as feed:
                if feed.mkts[fqme].fqme != fqme:
                    raise NotAMarketKey(fqme, feed.mkts[fqme].fqme)
                book = self.venue.books.get(fqme) or PaperBook(fqme)
                first = feed.first_quotes.get(fqme)
                if first:
                    async with self.venue.lock:
                        fills = book.on_quote(_as_touch_quote(first))
                        if fills:
                            await self.venue.fills.report_or_end(fills)
                self.venue.mkts[fqme] = feed.mkts[fqme]
                self.venue.books[fqme] = book
                ready.set()
                backoff.reset()
                async for batch in feed.stream:
                    quote = batch.get(fqme)
                    if quote is None:
                        continue
                    async with self.venue.lock:
                        fills = book.on_quote(quote)
                        if fills:
                            await self.venue.fills.report_or_end(fills)

        def on_down(err: BaseException | None) -> bool:
            if err is None or ready.is_set():
                return True  # it ended or broke after it was up: reconnect
            # unknown symbol, dead backend, ...: orders for it fail with why
            reason = (str(err) if isinstance(err, NotAMarketKey)
                      else f'no market data for {fqme!r}: {err}')
            log.error(reason)
            self._feed_errors[fqme] = reason
            self._feeds.pop(fqme, None)
            ready.set()
            return False

        await reconnecting(connect, f'quote feed of {fqme}', backoff=backoff, on_down=on_down)

    async def start_feed(self, fqme: str) -> None:
        err = await self.ensure_feed(fqme)
        if err:
            log.error('restored orders of %s cannot work: %s', fqme, err)


def _as_touch_quote(quote: dict[str, Any]) -> dict[str, Any]:
    """Turn a snapshot quote (bid/ask fields) into touch ticks."""
    ticks = []
    for key, size_key in (('bid', 'bsize'), ('ask', 'asize')):
        price = quote.get(key)
        if price is not None and math.isfinite(price):
            ticks.append({'type': key, 'price': price, 'size': quote.get(size_key)})
    return {'ticks': ticks}

