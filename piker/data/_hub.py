"""A client process's shared connection to one `brokerd.<broker>`.

Every `open_feed()` in a process that wants quotes from broker `b` goes
through one `FeedHub`: one `feed_session` context to `brokerd.b` (so one
IPC stream), refcounted per fqme. The hub's receive task never blocks: it
drops each incoming batch into the `QuoteBuffer` of every local consumer
(conflating, see `piker.buffers`), so a slow consumer in this process
cannot stall the stream, brokerd, or other consumers.

The hub runs in the actor's service nursery (it outlives any one
`open_feed()` caller) and closes when its last consumer leaves: it closes
its stream, brokerd's session returns, the context ends (TRACTOR.md rule
4). Watchdog (rules 2, 3): brokerd sends something at least every
`HEARTBEAT` seconds; each received message pushes the deadline of a cancel
scope that wraps `open_context` *from outside*; if nothing arrives for
`WATCHDOG` seconds the whole context is cancelled and every consumer's
stream raises `FeedError`.
"""
from __future__ import annotations

import itertools
from typing import Any

import tractor
import trio

from ..accounting import MktPair
from ..brokers._brokerd import decode_batch, feed_session, maybe_spawn_brokerd
from ..brokers._errors import FeedError, raise_from_msg
from ..buffers import QuoteBuffer
from ..log import get_logger
from ..service import actor_nursery

log = get_logger('data.hub')

WATCHDOG = 3.0
REQUEST_TIMEOUT = 30.0
CLOSE_TIMEOUT = 3.0

Quote = dict[str, Any]


class FeedHub:
    """One broker's shared session in this process (see module docstring)."""

    def __init__(self, broker: str, loglevel: str | None = None) -> None:
        self.broker = broker
        self.loglevel = loglevel
        self.mkts: dict[str, MktPair] = {}
        self.last: dict[str, Quote] = {}
        # consumer buffer -> the fqmes it holds through this hub
        self.consumers: dict[QuoteBuffer, set[str]] = {}
        # fqme -> number of consumers holding it
        self._refs: dict[str, int] = {}
        # fqme -> event set once its subscription is confirmed (or failed)
        self._subscribing: dict[str, trio.Event] = {}
        self._reqids = itertools.count(1)
        self._replies: dict[int, tuple[trio.Event, list]] = {}
        self._stream: tractor.MsgStream | None = None
        self._rx_cs = trio.CancelScope()
        self._wd_cs = trio.CancelScope()
        self.error: BaseException | None = None
        self.closing = False
        self.done = trio.Event()
        self.batches = 0
        self._heard = trio.current_time()

    @property
    def last_heard(self) -> float:
        """`trio.current_time()` of the last message from brokerd (a batch or
        a heartbeat): a consumer can tell a quiet market (heartbeats go on)
        from a silent link before the watchdog fires."""
        return self._heard

    # -- lifecycle (runs in the actor's service nursery) --------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        err: BaseException | None = None
        try:
            async with maybe_spawn_brokerd(self.broker, loglevel=self.loglevel) as portal:
                with self._wd_cs:
                    self._wd_cs.deadline = trio.current_time() + WATCHDOG
                    async with portal.open_context(
                        feed_session, broker=self.broker,
                    ) as (ctx, _):
                        async with ctx.open_stream() as stream:
                            self._stream = stream
                            started = True
                            task_status.started()
                            with self._rx_cs:
                                await self._receive(stream)
                            self._stream = None
                if self._wd_cs.cancelled_caught and not self.closing:
                    err = FeedError(
                        f'brokerd.{self.broker} stopped responding '
                        f'(nothing heard for {WATCHDOG:.0f}s)'
                    )
                elif not self.closing:
                    err = FeedError(f'brokerd.{self.broker} ended the feed session')
        except Exception as exc:
            if not started:
                raise
            if self.closing:
                log.debug(f'feed hub {self.broker}: error while closing: {exc!r}')
            else:
                err = exc if isinstance(exc, FeedError) else FeedError(
                    f'lost brokerd.{self.broker}: {type(exc).__name__}: {exc}'
                )
        finally:
            self._stream = None
            self._fail(err or FeedError(f'feed from brokerd.{self.broker} closed'))
            _forget(self)
            self.done.set()
        if err is not None:
            log.error(str(err))

    async def _receive(self, stream: tractor.MsgStream) -> None:
        wd = self._wd_cs
        consumers = self.consumers
        last = self.last
        async for msg in stream:
            now = self._heard = trio.current_time()
            if wd.deadline - now < WATCHDOG - 0.5:
                wd.deadline = now + WATCHDOG
            kind = msg[0]
            if kind == 'q':
                batch = decode_batch(msg[1])
                self.batches += 1
                last.update(batch)
                for buf in consumers:
                    buf.put_batch(batch)
            elif kind == 'hb':
                continue
            elif kind in ('ok', 'err'):
                entry = self._replies.pop(msg[1], None)
                if entry is not None:
                    entry[1].append(msg)
                    entry[0].set()
            elif kind == 'down':
                self._upstream_down(msg[1], msg[2])
            else:
                log.warning(f'feed hub: unknown message kind {kind!r}')
        # brokerd closed the stream

    def _fail(self, err: BaseException) -> None:
        """Wake everyone: consumers and pending requests get `err`."""
        self.error = err
        for buf in list(self.consumers):
            buf.close(err)
        for event, box in self._replies.values():
            box.append(['err', None, {'type': 'FeedError', 'msg': str(err)}])
            event.set()
        self._replies.clear()
        for event in self._subscribing.values():
            event.set()

    def _upstream_down(self, fqme: str, errmsg: dict) -> None:
        err = FeedError(f'{fqme}: {errmsg.get("msg", "upstream failed")}')
        for buf, fqmes in list(self.consumers.items()):
            if fqme in fqmes:
                buf.close(err)
        self._refs.pop(fqme, None)
        self.mkts.pop(fqme, None)
        self.last.pop(fqme, None)

    async def close(self) -> None:
        """Close the session gracefully and wait (bounded) for it to end."""
        self.closing = True
        self._rx_cs.cancel()
        with trio.move_on_after(CLOSE_TIMEOUT) as cs:
            cs.shield = True
            await self.done.wait()
        if cs.cancelled_caught:
            # brokerd did not end the context in time: stop waiting for it
            self._wd_cs.cancel()

    # -- requests ----------------------------------------------------------

    async def _request(self, kind: str, fqmes: list[str]) -> list:
        stream = self._stream
        if stream is None or self.error is not None:
            raise self.error or FeedError(f'feed from brokerd.{self.broker} is closed')
        reqid = next(self._reqids)
        event, box = trio.Event(), []
        self._replies[reqid] = (event, box)
        try:
            await stream.send([kind, reqid, fqmes])
            with trio.fail_after(REQUEST_TIMEOUT):
                await event.wait()
        except trio.TooSlowError:
            raise FeedError(
                f'brokerd.{self.broker} did not answer {kind} {fqmes} '
                f'within {REQUEST_TIMEOUT:.0f}s'
            ) from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise FeedError(f'lost brokerd.{self.broker}: {exc}') from None
        finally:
            self._replies.pop(reqid, None)
        return box[0]

    async def attach(
        self,
        buf: QuoteBuffer,
        fqmes: list[str],
    ) -> dict[str, Quote]:
        """Route `fqmes` into `buf`, subscribing upstream as needed.

        Returns the first quote of each fqme; raises `SymbolNotFound` etc.
        (and attaches nothing) if brokerd refuses any of them.
        """
        mine = self.consumers.setdefault(buf, set())
        if buf.fqmes is None:
            buf.fqmes = set()
        # route first: quotes arriving before the reply go to `buf` too
        for fqme in fqmes:
            mine.add(fqme)
            buf.fqmes.add(fqme)
        try:
            # wait out concurrent subscriptions of the same fqmes
            for fqme in fqmes:
                pending = self._subscribing.get(fqme)
                if pending is not None:
                    await pending.wait()
            new = [f for f in fqmes if f not in self._refs]
            if new:
                events = {f: trio.Event() for f in new}
                self._subscribing.update(events)
                try:
                    reply = await self._request('sub', new)
                finally:
                    for f, ev in events.items():
                        self._subscribing.pop(f, None)
                        ev.set()
                if reply[0] == 'err':
                    raise_from_msg(reply[2])
                body = reply[2]
                for fqme, mkt in body['mkts'].items():
                    self.mkts[fqme] = MktPair.from_msg(mkt)
                for fqme, quote in body['first_quotes'].items():
                    # a batch may already have brought a newer one
                    self.last.setdefault(fqme, quote)
                for fqme in new:
                    self._refs.setdefault(fqme, 0)
            if self.error is not None:
                raise self.error
            missing = [f for f in fqmes if f not in self._refs]
            if missing:
                raise FeedError(f'subscription of {missing} failed')
        except BaseException:
            for fqme in fqmes:
                mine.discard(fqme)
                buf.fqmes.discard(fqme)
            if not mine:
                self.consumers.pop(buf, None)
            raise
        for fqme in fqmes:
            self._refs[fqme] += 1
        return {fqme: self.last[fqme] for fqme in fqmes}

    async def detach(self, buf: QuoteBuffer) -> None:
        """Stop routing to `buf`; unsubscribe fqmes nobody here wants."""
        fqmes = self.consumers.pop(buf, set())
        idle = []
        for fqme in fqmes:
            n = self._refs.get(fqme, 0) - 1
            if n <= 0:
                self._refs.pop(fqme, None)
                self.last.pop(fqme, None)
                idle.append(fqme)
            else:
                self._refs[fqme] = n
        if not self.consumers:
            await self.close()
            return
        if idle and self._stream is not None:
            try:
                await self._stream.send(['unsub', idle])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass


_hubs: trio.lowlevel.RunVar[dict[str, FeedHub]] = trio.lowlevel.RunVar('feed_hubs')
_hub_lock: trio.lowlevel.RunVar[trio.Lock] = trio.lowlevel.RunVar('feed_hub_lock')


def _registry() -> tuple[dict[str, FeedHub], trio.Lock]:
    try:
        return _hubs.get(), _hub_lock.get()
    except LookupError:
        hubs: dict[str, FeedHub] = {}
        lock = trio.Lock()
        _hubs.set(hubs)
        _hub_lock.set(lock)
        return hubs, lock


def _forget(hub: FeedHub) -> None:
    hubs, _ = _registry()
    if hubs.get(hub.broker) is hub:
        del hubs[hub.broker]


async def get_hub(broker: str, loglevel: str | None = None) -> FeedHub:
    """This process's live hub for `broker`, started on first use."""
    hubs, lock = _registry()
    async with lock:
        hub = hubs.get(broker)
        if hub is not None and (hub.closing or hub.error is not None):
            # a closing hub cannot take new consumers: let it finish
            with trio.move_on_after(CLOSE_TIMEOUT):
                await hub.done.wait()
            hub = None
        if hub is None:
            hub = FeedHub(broker, loglevel)
            service_n = actor_nursery()
            hubs[broker] = hub
            try:
                await service_n.start(hub.run)
            except BaseException:
                _forget(hub)
                raise
        return hub

