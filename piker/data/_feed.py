"""`open_feed()`: live quotes, market info and history for a set of fqmes.

Works from anywhere: a plain `trio.run()` script (it opens or joins the
service tree with `maybe_open_pikerd()`), an actor in the tree, a test.
Quotes flow `backend -> brokerd FeedBus -> one session per client process
(FeedHub) -> one QuoteBuffer per open_feed()`; every hop fans out without
blocking and conflates per fqme under pressure, so no consumer can stall
another.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from contextlib import asynccontextmanager as acm
from typing import Any

import msgspec
import numpy as np
import tractor

from ..accounting import MktPair, unpack_fqme
from ..brokers._brokerd import backfill, call, history, maybe_spawn_brokerd, mkt_info
from ..brokers._errors import BrokerError, FeedError
from ..brokers._registry import get_brokermod
from ..buffers import Batch, QuoteBuffer
from ..log import get_logger
from ..ohlc import OHLC_DTYPE, TIMEFRAMES, unpack_array
from ..storage._backfill import PAGE_BARS, BackfillReport, pages
from ._hub import FeedHub, get_hub

log = get_logger('data.feed')

Quote = dict[str, Any]


class Feed:
    """What `open_feed()` yields.

    - `fqmes`: the requested fqmes (lower case, in order).
    - `mkts`: `{fqme: MktPair}`.
    - `first_quotes`: `{fqme: quote}`, the latest quote at open time.
    - `stream`: async iterator of batches `{fqme: quote}` (a
      `QuoteBuffer`: conflating, see `piker.buffers`); iterating it
      raises `FeedError` if the feed breaks.
    - `await history(fqme, timeframe)`: OHLC bars from the backend,
      merged into the local store (backfill, gap repair), all stored bars.
    - `await stored(fqme, timeframe)`: the stored bars only, at once.
    - `await backfill(fqme, timeframes, since, until)`: fetch into the store.
    - `async for report in backfill_pages(fqme, tf, since)`: the same,
      paged backwards from now to `since` (a deep backfill with progress).
    - `last_heard(fqme)`: when brokerd last sent anything (quotes or its
      heartbeat) for this feed's stream of `fqme`.
    """

    def __init__(
        self,
        fqmes: list[str],
        mkts: dict[str, MktPair],
        first_quotes: dict[str, Quote],
        stream: QuoteBuffer,
        portals: dict[str, tractor.Portal],
        hubs: dict[str, FeedHub] | None = None,
    ) -> None:
        self.fqmes = fqmes
        self.mkts = mkts
        self.first_quotes = first_quotes
        self.stream = stream
        self._portals = portals
        self._hubs = hubs or {}

    def last_heard(self, fqme: str) -> float:
        """`trio.current_time()` of brokerd's last message (a quote batch or
        its heartbeat, every `HEARTBEAT` s even when the market is quiet) on
        the connection serving `fqme`.

        A link that goes silent is a dead or hung brokerd: its stream raises
        `FeedError` once the watchdog gives up, this says so earlier.
        """
        broker, *_ = unpack_fqme(fqme.lower())
        hub = self._hubs.get(broker)
        if hub is None:
            raise ValueError(f'{fqme!r} has no live stream in this feed')
        return hub.last_heard

    async def receive(self) -> Batch:
        """The next batch of quotes (same as `await feed.stream.receive()`)."""
        return await self.stream.receive()

    def _portal(self, fqme: str) -> tuple[str, tractor.Portal]:
        """`(broker, brokerd portal)` serving `fqme` in this feed."""
        broker, *_ = unpack_fqme(fqme)
        portal = self._portals.get(broker)
        if portal is None:
            raise ValueError(f'{fqme!r} is not in this feed ({", ".join(self.fqmes)})')
        return broker, portal

    async def history(self, fqme: str, timeframe: int = 60) -> np.ndarray:
        """OHLC bars (`OHLC_DTYPE`) of `timeframe` seconds for `fqme`, fetched
        from brokerd now (so it includes bars the live market printed)."""
        fqme = fqme.lower()
        broker, portal = self._portal(fqme)
        packed = await call(
            portal, history, broker=broker, fqme=fqme,
            timeframe=int(timeframe),
        )
        return unpack_array(packed)

    async def stored(self, fqme: str, timeframe: int = 60) -> np.ndarray:
        """The bars of `fqme` in the local store, read now from disk (no
        backend, no IPC): what a chart shows at once, before `history()`
        has backfilled up to now. Empty if nothing is stored or the store
        cannot be read (logged)."""
        return await stored_bars(fqme, timeframe)

    async def backfill(
        self,
        fqme: str,
        timeframes: tuple[int, ...] = TIMEFRAMES,
        since: int | None = None,
        until: int | None = None,
    ) -> list[BackfillReport]:
        """Have brokerd fetch `timeframes` of `fqme` from the backend into the
        store (bars of `[since, until]`, epoch s; `since` None: the
        backend's default window); one report each."""
        fqme = fqme.lower()
        broker, portal = self._portal(fqme)
        raw = await call(
            portal, backfill, broker=broker, fqme=fqme,
            timeframes=[int(t) for t in timeframes], since=since, until=until,
        )
        return [msgspec.convert(r, BackfillReport) for r in raw]

    async def backfill_pages(
        self,
        fqme: str,
        timeframe: int,
        since: int,
        until: int | None = None,
        page_bars: int = PAGE_BARS,
    ) -> AsyncIterator[BackfillReport]:
        """A deep backfill of `[since, until]` (default now), paged backwards
        newest first (`piker.storage._backfill.pages`); one report per page
        (`start`/`end` say which; `skipped` ones were all stored or closed
        already). Pages the backend has nothing for are recorded closed."""
        import time

        spans = pages(since, int(until if until is not None else time.time()),
                      timeframe, page_bars)
        empty = None
        while True:
            try:
                lo, hi = spans.send(empty)
            except StopIteration:
                return
            (rep,) = await self.backfill(fqme, (int(timeframe),), since=lo, until=hi)
            empty = not rep.skipped and rep.fetched == 0
            yield rep


async def stored_bars(fqme: str, timeframe: int = 60) -> np.ndarray:
    """`fqme`'s stored bars (`OHLC_DTYPE`), read in a worker thread."""
    import trio

    from ..storage import BarStore, StorageError

    try:
        return await trio.to_thread.run_sync(
            BarStore().read, fqme.lower(), int(timeframe))
    except StorageError as err:
        log.error(f'{fqme}: cannot read stored bars: {err}')
        return np.empty(0, dtype=OHLC_DTYPE)


def _group(fqmes: list[str] | str) -> tuple[list[str], dict[str, list[str]]]:
    """Validate fqmes and group them by broker (before spawning anything)."""
    if isinstance(fqmes, str):
        fqmes = [fqmes]
    ordered = list(dict.fromkeys(f.strip().lower() for f in fqmes))
    if not ordered:
        raise ValueError('open_feed() needs at least one fqme')
    by_broker: dict[str, list[str]] = {}
    for fqme in ordered:
        broker, *_ = unpack_fqme(fqme)  # ValueError explaining the format
        get_brokermod(broker)  # NoSuchBackend listing the backends
        by_broker.setdefault(broker, []).append(fqme)
    return ordered, by_broker


@acm
async def open_feed(
    fqmes: list[str] | str,
    loglevel: str | None = None,
    start_stream: bool = True,
) -> AsyncIterator[Feed]:
    """Open live quotes (and market info, history) for `fqmes`.

    Raises `ValueError` for a malformed fqme, `NoSuchBackend` for an
    unknown broker and `SymbolNotFound` for an unknown market, before
    yielding. With `start_stream=False` only `mkts` and `history()` are
    served (`first_quotes` is empty, the stream is closed).
    """
    from ..service import maybe_open_pikerd

    ordered, by_broker = _group(fqmes)
    setup_err: BaseException | None = None
    async with maybe_open_pikerd(loglevel=loglevel):
        async with AsyncExitStack() as stack:
            try:
                feed = await _setup(stack, ordered, by_broker, loglevel, start_stream)
            except _SETUP_ERRORS as err:
                # raised below, once out of the actor runtime: a user error
                # should not be logged by tractor as a crashed root actor
                setup_err = err
            else:
                yield feed
    if setup_err is not None:
        raise setup_err


_SETUP_ERRORS = (BrokerError, ValueError)


async def _setup(
    stack: AsyncExitStack,
    ordered: list[str],
    by_broker: dict[str, list[str]],
    loglevel: str | None,
    start_stream: bool,
) -> Feed:
    portals = {
        broker: await stack.enter_async_context(
            maybe_spawn_brokerd(broker, loglevel=loglevel)
        )
        for broker in by_broker
    }
    buf = QuoteBuffer(fqmes=set())
    stack.callback(buf.close)
    mkts: dict[str, MktPair] = {}
    first: dict[str, Quote] = {}
    hubs: dict[str, FeedHub] = {}
    if start_stream:
        for broker, group in by_broker.items():
            hub = hubs[broker] = await get_hub(broker, loglevel)
            # registered first: a failed attach still releases the hub
            stack.push_async_callback(hub.detach, buf)
            first.update(await hub.attach(buf, group))
            mkts.update({f: hub.mkts[f] for f in group})
    else:
        for broker, group in by_broker.items():
            raw = await call(
                portals[broker], mkt_info, broker=broker, fqmes=group,
            )
            mkts.update({f: MktPair.from_msg(m) for f, m in raw.items()})
        buf.close(FeedError('this feed was opened with start_stream=False'))
    return Feed(
        fqmes=ordered,
        mkts={f: mkts[f] for f in ordered},
        first_quotes={f: first[f] for f in ordered if f in first},
        stream=buf,
        portals=portals,
        hubs=hubs,
    )
