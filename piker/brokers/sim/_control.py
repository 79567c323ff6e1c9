"""Taking the wheel of a sim market: `open_market_control(fqme)`.

Tests and scripts need exact prices at exact moments. A controller opens
a context to `brokerd.sim` (`market_control`, below); each
`await ctl.push(last=..., bid=..., ...)` is a request that brokerd
answers only after it has paused the market's random walk and handed
exactly that quote to every current subscriber's buffer (the feed bus's
fan-out is synchronous), so once `push()` returns every open feed will
see the quote, in push order. `await ctl.resume()` restarts the walk from
the last pushed prices.

On exit the walk is resumed (`resume_on_exit=True`, the default) so a
chart never stays frozen by a finished script; pass `False` to leave the
market paused (e.g. a test that wants no random quotes afterwards).

Wire protocol (lists): client `['push', seq, {field: value}]`,
`['resume', seq]`; brokerd `['ack', seq, quote | None]`,
`['nack', seq, {'type', 'msg'}]`.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager as acm
from typing import Any

import tractor
import trio

from ...accounting import MktPair, unpack_fqme
from .._errors import BrokerError, FeedError, error_to_msg, raise_from_msg
from ._markets import BROKER
from ._runtime import SimMarket, get_market

# a control request brokerd does not answer in this long means it is gone
REQUEST_TIMEOUT = 10.0
WATCHDOG_TIMEOUT = 2.0


@tractor.context
async def market_control(ctx: tractor.Context, fqme: str) -> None:
    """brokerd side: serve push/resume requests for one market."""
    from ...service import watch_peer

    try:
        market = get_market(fqme)
    except (BrokerError, ValueError) as err:
        await ctx.started({'error': error_to_msg(err)})
        return
    await ctx.started({'mkt': market.spec.mkt.to_builtins()})
    try:
        async with ctx.open_stream() as stream, watch_peer(ctx):
            await _serve(market, stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the controller is gone: closing our stream end could not reach it


async def _serve(market: SimMarket, stream: tractor.MsgStream) -> None:
    """Answer each request in order; bad input gets a `nack`, never a crash."""
    async for msg in stream:
        seq = None
        try:
            kind, seq = msg[0], msg[1]
            if kind == 'push':
                quote = await market.push(**dict(msg[2]))
                await stream.send(['ack', seq, quote])
            elif kind == 'resume':
                market.resume()
                await stream.send(['ack', seq, None])
            else:
                raise ValueError(f'unknown control request {kind!r}')
        except (TypeError, ValueError, IndexError) as err:
            await stream.send(['nack', seq, error_to_msg(err)])


class MarketControl:
    """Client handle yielded by `open_market_control()`."""

    def __init__(self, fqme: str, mkt: MktPair, stream: tractor.MsgStream) -> None:
        self.fqme = fqme
        self.mkt = mkt
        self._stream = stream
        self._lock = trio.Lock()
        self._seq = 0
        self.broken = False

    async def _request(self, msg: list) -> Any:
        async with self._lock:
            if self.broken:
                raise FeedError(f'market control of {self.fqme} is broken')
            self._seq += 1
            seq = self._seq
            try:
                await self._stream.send([msg[0], seq, *msg[1:]])
                with trio.fail_after(REQUEST_TIMEOUT):
                    reply = await self._stream.receive()
            except trio.TooSlowError:
                self.broken = True
                raise FeedError(
                    f'brokerd.sim did not answer a control request within '
                    f'{REQUEST_TIMEOUT:.0f}s'
                ) from None
            except (trio.BrokenResourceError, trio.ClosedResourceError,
                    trio.EndOfChannel) as err:
                self.broken = True
                raise FeedError(f'lost brokerd.sim: {type(err).__name__}') from None
            kind, rseq, body = reply
            if rseq != seq:  # pragma: no cover - one request at a time
                self.broken = True
                raise FeedError(f'control reply out of order: {reply!r}')
            if kind == 'nack':
                raise_from_msg(body)
            return body

    async def push(
        self,
        last: float | None = None,
        bid: float | None = None,
        ask: float | None = None,
        size: float | None = None,
        bsize: float | None = None,
        asize: float | None = None,
    ) -> dict[str, Any]:
        """Pause the walk and emit exactly this quote to every subscriber.

        Ticks: `bid`/`ask` when those prices or sizes are given, `trade`
        when `last` is (its size is `size`, default the market's lot).
        Returns the emitted quote once every current subscriber buffer
        holds it. Bad values raise `ValueError`.
        """
        fields = {
            k: v for k, v in (
                ('last', last), ('bid', bid), ('ask', ask), ('size', size),
                ('bsize', bsize), ('asize', asize),
            ) if v is not None
        }
        return await self._request(['push', fields])

    async def resume(self) -> None:
        """Restart the random walk from the last pushed prices."""
        await self._request(['resume'])


@acm
async def open_market_control(
    fqme: str,
    loglevel: str | None = None,
    resume_on_exit: bool = True,
) -> AsyncIterator[MarketControl]:
    """Control sim market `fqme` (see module docstring).

    Usable from any process: joins (or starts) the service tree and
    spawns `brokerd.sim` if needed. Raises `SymbolNotFound` for an unknown
    market.
    """
    from ...service import maybe_open_pikerd, open_watched_context
    from .._brokerd import maybe_spawn_brokerd

    fqme = fqme.strip().lower()
    broker, *_ = unpack_fqme(fqme)
    if broker != BROKER:
        raise ValueError(f'{fqme!r} is not a sim market (fqmes end in .{BROKER})')
    async with (
        maybe_open_pikerd(loglevel=loglevel),
        maybe_spawn_brokerd(BROKER, loglevel=loglevel) as portal,
        open_watched_context(
            portal, market_control, fqme=fqme,
            timeout=WATCHDOG_TIMEOUT, cancel_on_exit=False,
        ) as (ctx, first),
    ):
        if 'error' in first:
            raise_from_msg(first['error'])
        async with ctx.open_stream() as stream:
            ctl = MarketControl(fqme, MktPair.from_msg(first['mkt']), stream)
            try:
                yield ctl
            finally:
                if resume_on_exit and not ctl.broken:
                    with trio.move_on_after(REQUEST_TIMEOUT):
                        try:
                            await ctl.resume()
                        except FeedError:
                            pass  # brokerd is gone: nothing to resume
