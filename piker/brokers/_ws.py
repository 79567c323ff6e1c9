"""Venue-neutral pieces of a healing websocket market feed.

Every real backend's quote feed has the same shape: an L1 state per
market that turns venue frames into the contract's quotes (`L1`), a
connection that is renewed with backoff after any disconnect
(`piker.service.reconnecting`), and the two `gap` ticks that tell
subscribers (and emsd's dark book) when market data was lost and when
it is back (`Gaps`). Only the frame parsing is the venue's own.
"""
from __future__ import annotations

import math
import time
from typing import Any

import trio

Quote = dict[str, Any]


def gap_tick(reason: str) -> dict[str, Any]:
    """The contract's notice of an upstream gap (no price: consumers of
    prices skip it)."""
    return {'type': 'gap', 'price': math.nan, 'size': 0.0, 'reason': reason}


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

    def book(self, bid: float, bsize: float, ask: float, asize: float) -> list[dict[str, Any]]:
        """Set the touch; the `bid`/`ask` ticks of what changed."""
        ticks = []
        if (bid, bsize) != (self.bid, self.bsize):
            self.bid, self.bsize = bid, bsize
            ticks.append({'type': 'bid', 'price': bid, 'size': bsize})
        if (ask, asize) != (self.ask, self.asize):
            self.ask, self.asize = ask, asize
            ticks.append({'type': 'ask', 'price': ask, 'size': asize})
        return ticks

    def trade(self, price: float, size: float) -> dict[str, Any]:
        self.last = price
        self.volume += size
        return {'type': 'trade', 'price': price, 'size': size}


class Gaps:
    """The lost/back notices of one market's feed: one `lost` per
    outage (however many reconnects fail), one `back` when it is over."""

    def __init__(self, l1: L1, name: str) -> None:
        self.l1 = l1
        self.name = name  # fqme shown to traders: 'btcusd.kraken'
        self.why: str | None = None

    def lost(self, why: str) -> Quote | None:
        if self.why is not None:
            return None
        self.why = why
        return self.l1.quote([gap_tick(
            f'market data for {self.name} lost ({why}): reconnecting')])

    def back(self, quote: Quote) -> Quote:
        """`quote` (the fresh book), with the `back` notice if it ends an outage."""
        if self.why is not None:
            quote['ticks'].append(gap_tick(
                f'market data for {self.name} is back after a gap ({self.why})'))
            self.why = None
        return quote


async def receive_within(ws: Any, seconds: float) -> str | bytes | None:
    """The next message, or None if nothing came within `seconds` (a
    venue that sends heartbeats is gone when it is silent this long)."""
    with trio.move_on_after(seconds):
        return await ws.get_message()
    return None


__all__ = ['Gaps', 'L1', 'Quote', 'gap_tick', 'receive_within']
