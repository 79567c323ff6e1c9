"""brokerd's feed bus: one upstream per fqme, fanned out to subscribers.

For every fqme some client wants, the bus runs exactly one backend
`stream_quotes(send_chan, [bs_fqme])` task, however many subscribers
(client sessions) want it. `send_chan` is a `FanOut`: its `send()` sets
the quote's `symbol` to the fqme, remembers it as the fqme's latest quote
(a new subscriber's first quote) and `put()`s it into every subscriber's
`QuoteBuffer`. Buffers never block (they conflate, see
`piker.buffers`), so a slow subscriber can never stall the upstream
or the other subscribers; and when `send()` returns the quote is in every
current subscriber's buffer (which the sim's control `push()` relies on).

The upstream starts with its first subscriber and is cancelled when the
last one leaves. If it fails, each of its subscribers is told through its
`on_down(fqme, error)` callback and the next subscriber starts a fresh one.
The bus is trio-only (no tractor), so it is unit-testable in-process.
"""
from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import trio

from ..accounting import MktPair, strip_broker, unpack_fqme
from ..buffers import QuoteBuffer
from ..log import get_logger
from ._errors import FeedError, NoSuchBackend

log = get_logger('brokers.feedbus')

Quote = dict[str, Any]
OnDown = Callable[[str, BaseException], None]

# FanOut.send() yields to the scheduler every this many quotes, so even a
# backend that produces quotes in a tight loop cannot starve the senders
YIELD_EVERY = 32


class _Upstream:
    """One fqme's backend stream and who listens to it."""

    __slots__ = ('fqme', 'bs_fqme', 'subs', 'last', 'cs', 'ready', 'error', 'sent',
                 'recorder', 'bars')

    def __init__(self, fqme: str, bs_fqme: str) -> None:
        self.fqme = fqme
        self.bs_fqme = bs_fqme
        self.subs: dict[QuoteBuffer, OnDown] = {}
        self.last: Quote | None = None
        self.cs = trio.CancelScope()
        self.ready = trio.Event()
        self.error: BaseException | None = None
        self.sent = 0
        # a `piker.storage.TickRecorder` while this fqme is recorded
        self.recorder: Any = None
        # the market's `piker.brokers._livebars.LiveBarWriter`
        self.bars: Any = None


class FanOut(trio.abc.SendChannel[Quote]):
    """The send channel a backend's `stream_quotes()` writes to.

    `send()` never blocks: it hands the quote to every subscriber buffer
    and returns (yielding to the scheduler every `YIELD_EVERY` quotes).
    It takes ownership of the quote dict (sets `symbol` to the fqme).
    """

    def __init__(self, up: _Upstream) -> None:
        self._up = up
        self._closed = False

    async def send(self, quote: Quote) -> None:
        if self._closed:
            raise trio.ClosedResourceError('upstream closed')
        up = self._up
        fqme = up.fqme
        quote['symbol'] = fqme
        if up.bars is not None:
            up.bars.quote(quote)    # first: it stamps the quote with the bars
        up.last = quote
        for buf in up.subs:
            buf.put(fqme, quote)
        if up.recorder is not None:
            up.recorder.put(quote)
        up.sent += 1
        if up.sent % YIELD_EVERY:
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._closed = True
        await trio.lowlevel.checkpoint()


class FeedBus:
    """All upstreams of one backend in one brokerd (see module docstring)."""

    def __init__(self, brokermod: ModuleType, broker: str, nursery: trio.Nursery) -> None:
        self.mod = brokermod
        self.broker = broker
        self._n = nursery
        self._ups: dict[str, _Upstream] = {}
        self._mkts: dict[str, MktPair] = {}
        # fqmes recorded whenever their upstream runs (`[storage] record`,
        # `piker record`): see `record()`
        self.recording: set[str] = set()
        # run (in the upstream's nursery) when an upstream has started:
        # brokerd backfills the market's stored bars from the backend
        self.on_start: Callable[[str], Any] | None = None

    def to_native(self, fqme: str) -> str:
        """Validate `fqme` and return its broker-native key."""
        broker, *_ = unpack_fqme(fqme)
        if broker != self.broker:
            raise NoSuchBackend(
                f'{fqme!r} belongs to backend {broker!r}, but this is '
                f'brokerd.{self.broker}'
            )
        return strip_broker(fqme, self.broker)

    async def mkt_info(self, fqme: str) -> MktPair:
        """The backend's `MktPair` for `fqme` (cached)."""
        fqme = fqme.lower()
        mkt = self._mkts.get(fqme)
        if mkt is None:
            mkt = self._mkts[fqme] = await self.mod.get_mkt_info(self.to_native(fqme))
        return mkt

    def record(self, fqmes: list[str], on: bool = True) -> None:
        """Start (or stop) recording `fqmes`: at once for a running upstream,
        else from when one starts."""
        for fqme in fqmes:
            fqme = fqme.lower()
            self.to_native(fqme)
            if on:
                self.recording.add(fqme)
            else:
                self.recording.discard(fqme)
            up = self._ups.get(fqme)
            if up is not None and up.ready.is_set():
                if on and up.recorder is None:
                    self._n.start_soon(self._run_recorder, up)
                elif not on and up.recorder is not None:
                    up.recorder.stop()

    async def _run_recorder(self, up: _Upstream) -> None:
        """One recorder for `up` until it is stopped or the upstream ends."""
        from ..storage import TickRecorder

        mkt = self._mkts.get(up.fqme)
        rec = up.recorder = TickRecorder(up.fqme, mkt=mkt.to_builtins() if mkt else None)
        if up.last is not None:
            rec.put(up.last)
        try:
            await rec.run()
        finally:
            if up.recorder is rec:
                up.recorder = None

    def upstreams(self) -> dict[str, int]:
        """fqme -> number of subscribers (for status and tests)."""
        return {fqme: len(up.subs) for fqme, up in self._ups.items()}

    async def subscribe(
        self,
        buf: QuoteBuffer,
        fqmes: list[str],
        on_down: OnDown,
    ) -> tuple[dict[str, MktPair], dict[str, Quote]]:
        """Add `buf` as a subscriber of every fqme; start missing upstreams.

        Returns `(mkts, first_quotes)` keyed by fqme. All or nothing: if any
        fqme fails (unknown symbol, backend error) `buf` is subscribed to
        none of them and the error is raised.
        """
        fqmes = [f.lower() for f in fqmes]
        mkts = {fqme: await self.mkt_info(fqme) for fqme in fqmes}
        first: dict[str, Quote] = {}
        done: list[str] = []
        try:
            for fqme in fqmes:
                up = await self._ensure_upstream(fqme)
                # atomically (no checkpoint): join and read the latest quote,
                # so the subscriber misses nothing after its first quote
                up.subs[buf] = on_down
                assert up.last is not None
                first[fqme] = up.last
                done.append(fqme)
        except BaseException:
            self.unsubscribe(buf, done)
            raise
        return mkts, first

    def unsubscribe(self, buf: QuoteBuffer, fqmes: list[str] | None = None) -> None:
        """Remove `buf` from `fqmes` (default: all); stop idle upstreams."""
        for fqme in list(self._ups) if fqmes is None else fqmes:
            up = self._ups.get(fqme.lower())
            if up is None:
                continue
            up.subs.pop(buf, None)
            if not up.subs and up.ready.is_set():
                self._stop(up)

    def _stop(self, up: _Upstream) -> None:
        if self._ups.get(up.fqme) is up:
            del self._ups[up.fqme]
        up.cs.cancel()

    async def _ensure_upstream(self, fqme: str) -> _Upstream:
        up = self._ups.get(fqme)
        if up is None:
            up = self._ups[fqme] = _Upstream(fqme, self.to_native(fqme))
            try:
                await self._n.start(self._run_upstream, up)
            except BaseException as err:
                if self._ups.get(fqme) is up:
                    del self._ups[fqme]
                up.error = err if isinstance(err, Exception) else FeedError(
                    f'{fqme} upstream start was cancelled'
                )
                up.ready.set()
                raise
        elif not up.ready.is_set():
            await up.ready.wait()
            if up.error is not None:
                raise up.error
        return up

    async def _run_upstream(
        self,
        up: _Upstream,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run one backend stream; never raises once started."""
        started = False
        err: BaseException | None = None
        try:
            with up.cs:
                async with trio.open_nursery() as n:
                    first = await n.start(
                        self.mod.stream_quotes, FanOut(up), [up.bs_fqme],
                    )
                    if up.last is None:
                        quote = dict(first[up.bs_fqme])
                        quote['symbol'] = up.fqme
                        up.last = quote
                    up.ready.set()
                    started = True
                    if up.fqme in self.recording:
                        # in the upstream's nursery: flushes and ends with it
                        n.start_soon(self._run_recorder, up)
                    from ._livebars import LiveBarWriter
                    if getattr(self.mod, 'SERVES_STORE', False):
                        # bars for the clients only: the store is the source
                        up.bars = LiveBarWriter(up.fqme, write=False)
                    else:
                        up.bars = LiveBarWriter(up.fqme)
                        n.start_soon(up.bars.run)
                        if self.on_start is not None:
                            n.start_soon(self.on_start, up.fqme)
                    task_status.started()
            if not up.cs.cancelled_caught:
                err = FeedError(f'{up.fqme}: backend stream_quotes() returned')
        except Exception as exc:
            if not started:
                raise
            err = exc
        finally:
            if up.recorder is not None:
                up.recorder.stop()
        if err is not None and started:
            log.error(f'brokerd.{self.broker}: upstream {up.fqme} failed: {err!r}')
            if self._ups.get(up.fqme) is up:
                del self._ups[up.fqme]
            down = err if isinstance(err, FeedError) else FeedError(
                f'{up.fqme} upstream failed: {type(err).__name__}: {err}'
            )
            for buf, on_down in list(up.subs.items()):
                try:
                    on_down(up.fqme, down)
                except Exception:  # pragma: no cover - callbacks are ours
                    log.exception('on_down callback failed')
                up.subs.pop(buf, None)
