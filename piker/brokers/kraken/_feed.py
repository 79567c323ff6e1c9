"""Live L1 quotes from Kraken's public websocket v2: `ticker` + `trade`.

One connection per `stream_quotes()` call subscribes `ticker` with
`event_trigger: "bbo"` (an update on every change of the touch; its
snapshot is the first quote, so a quiet market starts at once and no
REST call is needed) and `trade` (no snapshot: only new prints). Kraken
sends a `heartbeat` every second on a subscribed connection: silence for
`SILENCE_S` means the connection is dead and it is renewed.

The feed heals itself (`piker.service.reconnecting`): on any disconnect
it reconnects with backoff, takes the fresh ticker snapshot and resumes;
subscribers see one `gap` tick when it is lost and one when it is back
(`piker.brokers._ws.Gaps`), never a dead feed. An unknown symbol fails
before `started()`.
"""
from __future__ import annotations

import json
from functools import partial

import msgspec
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ...log import get_logger
from ...service import Backoff, reconnecting
from .._ws import L1, Gaps, Quote, receive_within
from ._markets import BROKER, Market
from ._rest import KrakenError
from ._session import get_session

log = get_logger('brokers.kraken.feed')

SILENCE_S = 10.0
SUBSCRIBE_TIMEOUT = 10.0


class _Ticker(msgspec.Struct):
    symbol: str
    bid: float
    bid_qty: float
    ask: float
    ask_qty: float
    last: float | None = None


class _Trade(msgspec.Struct):
    symbol: str
    price: float
    qty: float
    side: str = ''


class _Frame(msgspec.Struct):
    channel: str = ''
    type: str = ''
    data: msgspec.Raw = msgspec.Raw(b'null')
    method: str = ''
    success: bool = True
    error: str = ''
    symbol: str = ''


_frame = msgspec.json.Decoder(_Frame)
_tickers = msgspec.json.Decoder(list[_Ticker])
_trades = msgspec.json.Decoder(list[_Trade])


class FeedError(KrakenError):
    """Kraken refused a subscription (an unknown pair, ...)."""


class Books:
    """The L1 of every market of one connection, by v2 symbol."""

    def __init__(self, markets: list[tuple[str, Market]]) -> None:
        # keyed by v2 symbol; each L1 by the caller's key for the market
        self.l1 = {m.symbol: L1(key) for key, m in markets}

    def on_frame(self, raw: str | bytes) -> list[tuple[str, Quote, str]]:
        """`(symbol, quote, frame type)` of one frame; [] for frames of no
        interest. Raises `FeedError` for a refused subscription and
        `msgspec.DecodeError`/`ValueError` on a malformed frame."""
        f = _frame.decode(raw)
        if f.method == 'subscribe' and not f.success:
            raise FeedError(f'Kraken refused the subscription: {f.error}')
        if f.type not in ('snapshot', 'update') or bytes(f.data) == b'null':
            return []
        out = []
        if f.channel == 'ticker':
            for t in _tickers.decode(f.data):
                l1 = self.l1.get(t.symbol)
                if l1 is None:
                    continue
                ticks = l1.book(t.bid, t.bid_qty, t.ask, t.ask_qty)
                if f.type == 'snapshot' and t.last is not None and l1.last != l1.last:
                    l1.last = t.last
                if ticks or f.type == 'snapshot':
                    out.append((t.symbol, l1.quote(ticks), f.type))
        elif f.channel == 'trade':
            for tr in _trades.decode(f.data):
                l1 = self.l1.get(tr.symbol)
                if l1 is not None:
                    out.append((tr.symbol, l1.quote([l1.trade(tr.price, tr.qty)]), f.type))
        return out


def subscriptions(symbols: list[str]) -> list[str]:
    return [
        json.dumps({'method': 'subscribe', 'req_id': 1, 'params': {
            'channel': 'ticker', 'symbol': symbols, 'event_trigger': 'bbo',
            'snapshot': True}}),
        json.dumps({'method': 'subscribe', 'req_id': 2, 'params': {
            'channel': 'trade', 'symbol': symbols, 'snapshot': False}}),
    ]


async def _connect_once(
    books: Books, gaps: dict[str, Gaps], url: str,
    send_chan: trio.abc.SendChannel[Quote], first: dict[str, Quote] | None,
    ready: trio.Event,
) -> None:
    """One connection: subscribe, fill `first` and set `ready` (the first
    time) or send the fresh books with their `back` notices, then stream
    until silent or closed."""
    async with open_websocket_url(url) as ws:
        for msg in subscriptions(list(books.l1)):
            await ws.send_message(msg)
        waiting = set(books.l1)
        with trio.fail_after(SUBSCRIBE_TIMEOUT):
            while waiting:
                for sym, quote, kind in books.on_frame(await ws.get_message()):
                    if kind != 'snapshot' or sym not in waiting:
                        continue
                    waiting.discard(sym)
                    if first is not None:
                        first[books.l1[sym].key] = quote
                    else:
                        await send_chan.send(gaps[sym].back(quote))
        ready.set()
        while True:
            try:
                raw = await receive_within(ws, SILENCE_S)
            except ConnectionClosed:
                return
            if raw is None:
                log.warning('kraken feed: no message (not even a heartbeat) in %ss: '
                            'reconnecting', SILENCE_S)
                return
            try:
                quotes = books.on_frame(raw)
            except (msgspec.DecodeError, ValueError) as err:
                log.warning('kraken feed: bad frame ignored (%s): %.200r', err, raw)
                continue
            for _, quote, _kind in quotes:
                await send_chan.send(quote)


RETRY_ON = (OSError, HandshakeError, ConnectionClosed, trio.TooSlowError,
            msgspec.DecodeError, ValueError)


async def stream_quotes(
    send_chan: trio.abc.SendChannel[Quote],
    bs_fqmes: list[str],
    *,
    task_status: trio.TaskStatus[dict[str, Quote]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Stream L1 quotes of `bs_fqmes` until cancelled (see module doc)."""
    sess = get_session()
    markets = [await sess.markets.get(sess.client, k) for k in bs_fqmes]  # SymbolNotFound
    books = Books(list(zip(bs_fqmes, markets, strict=True)))
    gaps = {m.symbol: Gaps(books.l1[m.symbol], f'{m.mkt.bs_fqme}.{BROKER}') for m in markets}
    url = sess.conf.ws_url
    first: dict[str, Quote] = {}
    ready = trio.Event()

    async def attempt() -> None:
        initial = not ready.is_set()
        try:
            await _connect_once(books, gaps, url, send_chan, first if initial else None, ready)
            why = 'disconnected by Kraken'
        except RETRY_ON as err:
            if initial:  # the first connection: fail the call, clearly
                raise FeedError(f'cannot open the Kraken market data websocket {url}: '
                                f'{type(err).__name__}: {err}') from None
            why = f'{type(err).__name__}: {err}'
            await _lost(gaps, send_chan, why)
            raise
        await _lost(gaps, send_chan, why)

    async with trio.open_nursery() as n:
        n.start_soon(partial(reconnecting, attempt, 'kraken quotes',
                             backoff=Backoff(first=0.1, cap=5.0), retry_on=RETRY_ON))
        await ready.wait()
        task_status.started(dict(first))


async def _lost(gaps: dict[str, Gaps], send_chan: trio.abc.SendChannel[Quote],
                why: str) -> None:
    for g in gaps.values():
        q = g.lost(why)
        if q is not None:
            await send_chan.send(q)


__all__ = ['Books', 'stream_quotes', 'subscriptions']
