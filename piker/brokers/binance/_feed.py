"""Live L1 quotes: `bookTicker` + `trade` on one combined websocket.

`stream_quotes()` answers `started()` from a REST snapshot
(`/api/v3/ticker/bookTicker`, and the latest 1 s kline's close for `last`)
taken once the websocket is open, never by waiting for a first trade, so
a quiet market starts at once and no update is lost in between. It streams `<symbol>@bookTicker` and `<symbol>@trade` from
`<ws_url>/stream?streams=...` and turns each frame into a piker quote
(see the contract in `piker.brokers`).

The connection heals itself (`piker.service.reconnecting`): every
`PING_INTERVAL` a ping must be answered within `PONG_TIMEOUT`, a
connection is renewed before Binance's 24 h cut-off (`MAX_AGE`), and on
any disconnect it reconnects with backoff, takes a fresh snapshot and
resumes. Subscribers see a gap in quotes - framed by two `gap` ticks
(lost / back, see the contract in `piker.brokers`) that emsd relays to
dark orders - never a dead feed.
"""
from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ...log import get_logger
from ...service import Backoff, reconnecting
from ._rest import BinanceError
from ._session import get_session

log = get_logger('brokers.binance.feed')

PING_INTERVAL = 10.0
PONG_TIMEOUT = 10.0
# Binance closes every connection after 24 h: renew it a little earlier
MAX_AGE = 23.5 * 3600
# started() waits this long for a market's first websocket connection
CONNECT_WAIT = 5.0

Quote = dict[str, Any]


class _BookTicker(msgspec.Struct):
    s: str
    b: str
    B: str
    a: str
    A: str
    u: int = 0


class _Trade(msgspec.Struct):
    s: str
    p: str
    q: str
    T: int = 0
    t: int = 0
    m: bool = False


class _Frame(msgspec.Struct):
    stream: str
    data: msgspec.Raw


_frame_decoder = msgspec.json.Decoder(_Frame)
_book_decoder = msgspec.json.Decoder(_BookTicker)
_trade_decoder = msgspec.json.Decoder(_Trade)


class L1:
    """One market's top of book, last trade and volume since start."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.bid = self.ask = self.last = math.nan
        self.bsize = self.asize = 0.0
        self.volume = 0.0

    def quote(self, ticks: list[dict[str, Any]], **extra: Any) -> Quote:
        return {
            'symbol': self.key, 'last': self.last, 'bid': self.bid, 'ask': self.ask,
            'bsize': self.bsize, 'asize': self.asize, 'volume': self.volume,
            'time_ns': time.time_ns(), 'ticks': ticks, **extra,
        }

    def on_book(self, b: _BookTicker) -> Quote:
        self.bid, self.bsize = float(b.b), float(b.B)
        self.ask, self.asize = float(b.a), float(b.A)
        return self.quote([
            {'type': 'bid', 'price': self.bid, 'size': self.bsize},
            {'type': 'ask', 'price': self.ask, 'size': self.asize},
        ])

    def on_trade(self, t: _Trade) -> Quote:
        price, size = float(t.p), float(t.q)
        self.last = price
        self.volume += size
        return self.quote([{'type': 'trade', 'price': price, 'size': size}])

    def on_frame(self, raw: bytes | str) -> Quote | None:
        """The quote of one combined-stream frame; None for frames of no
        interest (subscription replies, unknown streams). Raises
        `msgspec.DecodeError`/`ValueError` on a malformed frame."""
        frame = _frame_decoder.decode(raw)
        kind = frame.stream.rpartition('@')[2]
        if kind == 'bookTicker':
            return self.on_book(_book_decoder.decode(frame.data))
        if kind == 'trade':
            return self.on_trade(_trade_decoder.decode(frame.data))
        return None

    async def snapshot(self, client: Any, symbol: str) -> Quote:
        """Refresh from REST: the book, and the last trade price."""
        book = await client.book_ticker(symbol)
        self.on_book(_BookTicker(
            s=symbol, b=book['bidPrice'], B=book['bidQty'],
            a=book['askPrice'], A=book['askQty'],
        ))
        try:
            # the close of the latest 1 s kline is the last trade's price
            (row,) = await client.klines(symbol, '1s', None, limit=1) or [[]]
            self.last = float(row[4])
        except (BinanceError, IndexError, TypeError, ValueError) as err:
            log.info('%s: no last trade (%s): using the mid', symbol, err)
            if math.isnan(self.last):
                self.last = (self.bid + self.ask) / 2
        ticks = [
            {'type': 'bid', 'price': self.bid, 'size': self.bsize},
            {'type': 'ask', 'price': self.ask, 'size': self.asize},
        ]
        return self.quote(ticks)


def gap_tick(reason: str) -> dict[str, Any]:
    """The contract's notice of an upstream gap (no price: consumers of
    prices skip it)."""
    return {'type': 'gap', 'price': math.nan, 'size': 0.0, 'reason': reason}


def stream_url(ws_url: str, symbol: str) -> str:
    s = symbol.lower()
    return f'{ws_url.rstrip("/")}/stream?streams={s}@bookTicker/{s}@trade'


async def messages(ws: Any) -> AsyncIterator[str | bytes]:
    """A connection's messages until it closes or reaches `MAX_AGE` (then
    the caller reconnects: Binance would cut it at 24 h anyway)."""
    deadline = trio.current_time() + MAX_AGE
    while True:
        with trio.move_on_at(deadline):
            try:
                raw = await ws.get_message()
            except ConnectionClosed:
                return
        if trio.current_time() >= deadline:
            return
        yield raw


async def _keepalive(ws: Any, what: str) -> None:
    """Ping every `PING_INTERVAL`; a missing pong closes the connection."""
    while True:
        await trio.sleep(PING_INTERVAL)
        with trio.move_on_after(PONG_TIMEOUT) as cs:
            await ws.ping()
        if cs.cancelled_caught:
            log.warning('%s: no pong within %ss: reconnecting', what, PONG_TIMEOUT)
            await ws.aclose()
            return


class MarketStream:
    """One market's websocket, reconnected for as long as it runs.

    The first connection is opened *before* the REST snapshot that
    answers `started()` (`connected`, then `go`): frames sent meanwhile
    wait in the socket, so no update falls between the snapshot and the
    stream. After a disconnect, each new connection takes a fresh
    snapshot first, marked with a `gap` tick.
    """

    def __init__(self, l1: L1, symbol: str, ws_url: str,
                 send_chan: trio.abc.SendChannel[Quote]) -> None:
        self.l1 = l1
        self.symbol = symbol
        self.url = stream_url(ws_url, symbol)
        self.send_chan = send_chan
        self.gap: list[str] = []  # why it is down, while it is
        self.connected = trio.Event()
        self.go = trio.Event()

    async def run(self) -> None:
        await reconnecting(
            self._attempt,
            f'binance quotes {self.symbol}',
            backoff=Backoff(first=0.1, cap=5.0),
            retry_on=(OSError, HandshakeError, ConnectionClosed, BinanceError),
        )

    async def _lost(self, why: str) -> None:
        if self.gap or not self.go.is_set():
            return  # the same outage (said already), or not started yet
        self.gap.append(why)
        await self.send_chan.send(self.l1.quote([gap_tick(
            f'market data for {self.l1.key}.binance lost ({why}): reconnecting')]))

    async def _attempt(self) -> None:
        try:
            await self._once()
        except Exception as err:
            await self._lost(f'{type(err).__name__}: {err}')
            raise
        await self._lost('disconnected by Binance')

    async def _once(self) -> None:
        """One connection, until it closes, fails or gets too old."""
        l1, symbol, send_chan = self.l1, self.symbol, self.send_chan
        async with open_websocket_url(self.url) as ws:
            async with trio.open_nursery() as n:
                n.start_soon(_keepalive, ws, symbol)
                self.connected.set()
                await self.go.wait()
                if self.gap:
                    # back after a disconnect: a fresh book first, saying so
                    quote = await l1.snapshot(get_session().client, symbol)
                    quote['ticks'].append(gap_tick(
                        f'market data for {l1.key}.binance is back after a gap '
                        f'({self.gap[0]})'))
                    self.gap.clear()
                    await send_chan.send(quote)
                async for raw in messages(ws):
                    try:
                        quote = l1.on_frame(raw)
                    except (msgspec.DecodeError, ValueError) as err:
                        log.warning('%s: bad frame ignored (%s): %.200r', symbol, err, raw)
                        continue
                    if quote is not None:
                        await send_chan.send(quote)
                n.cancel_scope.cancel()


async def stream_quotes(
    send_chan: trio.abc.SendChannel[Quote],
    bs_fqmes: list[str],
    *,
    task_status: trio.TaskStatus[dict[str, Quote]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Stream L1 quotes of `bs_fqmes` until cancelled (see module doc).

    `started()` waits at most `CONNECT_WAIT` for each websocket: a
    market whose stream cannot connect yet still starts from its
    snapshot (its stream keeps trying, the first frames then follow).
    """
    sess = get_session()
    first: dict[str, Quote] = {}
    async with trio.open_nursery() as n:
        for key in bs_fqmes:
            market = await sess.markets.get(sess.client, key)  # SymbolNotFound
            stream = MarketStream(L1(key), market.symbol, sess.conf.ws_url, send_chan)
            n.start_soon(stream.run)
            with trio.move_on_after(CONNECT_WAIT):
                await stream.connected.wait()
            first[key] = await stream.l1.snapshot(sess.client, market.symbol)
            stream.go.set()
        task_status.started(first)


__all__ = ['L1', 'MarketStream', 'gap_tick', 'stream_quotes', 'stream_url']
