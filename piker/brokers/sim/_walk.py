"""The deterministic L1 random walk of one sim market (pure, no I/O).

Determinism: a walk's random numbers come from a numpy PCG64 generator
seeded with `(seed, crc32(market key))`, drawn in fixed-size chunks, so
the sequence of quotes (everything but `time_ns`) depends only on the
`[sim] seed` and the market, never on timing, quote rate or who listens.
Different markets get different streams from the same seed.

The book lives on the integer tick grid: `bid` moves by a normal number
of ticks scaled to the market's per-step volatility, the spread is 1-3
ticks (`bid < ask` always), sizes are log-normal multiples of the size
tick (so integer lots for stock-likes). About a third of the steps print
a trade at the new touch (buy at the ask, sell at the bid).

`push()` overrides the state with exactly the given fields (tests and
scripts "take the wheel"); `recentre()` moves the walk's grid onto the
last pushed prices so a resumed walk continues from there.
"""
from __future__ import annotations

import math
import time
import zlib
from decimal import Decimal
from typing import Any

import numpy as np

from ._markets import MarketSpec

# random draws per refill; part of the determinism contract (the chunking
# must not change or the same seed would give different walks)
CHUNK = 1024
TRADE_PROB = 0.35

Quote = dict[str, Any]


def _as_fraction(tick: Decimal) -> tuple[int, int]:
    """`tick` as `(num, den)` integers with `den` a power of ten."""
    digits = max(0, -tick.normalize().as_tuple().exponent)
    den = 10 ** digits
    return int(tick * den), den


def walk_seed(seed: int, key: str) -> np.random.SeedSequence:
    """The seed sequence of market `key` under the global `seed`."""
    return np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, zlib.crc32(key.encode())])


def _positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    try:
        val = float(value)
    except (TypeError, ValueError):
        raise ValueError(f'{name} must be a number, got {value!r}') from None
    if not math.isfinite(val) or val <= 0:
        raise ValueError(f'{name} must be a finite number > 0, got {value!r}')
    return val


class Walk:
    """L1 state + random walk of one market (see module docstring)."""

    def __init__(self, spec: MarketSpec, seed: int) -> None:
        self.spec = spec
        self.key = spec.key
        self._tick = float(spec.price_tick)
        # ticks as exact num/den integers: `n * num / den` is the float
        # nearest the decimal price, with no round() per value
        self._pnum, self._pden = _as_fraction(spec.price_tick)
        self._snum, self._sden = _as_fraction(spec.size_tick)
        self._sinv = self._sden / self._snum
        self._sdigits = max(0, -spec.size_tick.normalize().as_tuple().exponent)
        self._rng = np.random.Generator(np.random.PCG64(walk_seed(seed, spec.key)))
        self._i = CHUNK  # force a refill on the first step
        self.steps = 0

        # book on the tick grid
        self._bid_t = max(1, round(spec.start_price / self._tick))
        self._spread_t = 1
        self.bid = self._price(self._bid_t)
        self.ask = self._price(self._bid_t + self._spread_t)
        self.bsize = self._size(spec.book_size)
        self.asize = self._size(spec.book_size)
        self.last = self.bid
        self.volume = 0.0
        # where `recentre()` restarts the grid after a push
        self._anchor: tuple[str, float, float] | None = None

    @property
    def start_price(self) -> float:
        """The price the live walk starts from (history's last close)."""
        return self._price(max(1, round(self.spec.start_price / self._tick)))

    # -- helpers -----------------------------------------------------------

    def _price(self, ticks: int) -> float:
        return ticks * self._pnum / self._pden

    def _size(self, units: float) -> float:
        n = int(units * self._sinv + 0.5)
        return (n if n > 1 else 1) * self._snum / self._sden

    def _refill(self) -> None:
        rng = self._rng
        # one (CHUNK, 7) block per refill: move, spread, kind, side,
        # trade size, bid size, ask size
        norm = rng.standard_normal((CHUNK, 4))
        unif = rng.random((CHUNK, 3))
        spec = self.spec
        self._move = norm[:, 0].tolist()
        # log-normal sizes in units (quantized per step)
        self._tsz = (spec.lot * np.exp(0.6 * norm[:, 1])).tolist()
        self._bsz = (spec.book_size * np.exp(0.75 * norm[:, 2])).tolist()
        self._asz = (spec.book_size * np.exp(0.75 * norm[:, 3])).tolist()
        self._usp = unif[:, 0].tolist()
        self._ukind = unif[:, 1].tolist()
        self._uside = unif[:, 2].tolist()
        self._i = 0

    # -- quotes ------------------------------------------------------------

    def quote(self, ticks: list[dict] | None = None) -> Quote:
        """The current L1 state as a quote dict (symbol = market key)."""
        return {
            'symbol': self.key,
            'last': self.last,
            'bid': self.bid,
            'ask': self.ask,
            'bsize': self.bsize,
            'asize': self.asize,
            'volume': self.volume,
            'time_ns': time.time_ns(),
            'ticks': ticks if ticks is not None else [
                {'type': 'bid', 'price': self.bid, 'size': self.bsize},
                {'type': 'ask', 'price': self.ask, 'size': self.asize},
            ],
        }

    def step(self) -> Quote:
        """Advance the walk one event and return its quote."""
        i = self._i
        if i >= CHUNK:
            self._refill()
            i = 0
        self._i = i + 1
        self.steps += 1
        spec = self.spec

        # mid move in ticks: relative volatility times the price in ticks
        sigma = spec.step_vol * self._bid_t
        bid_t = self._bid_t + round(self._move[i] * sigma)
        self._bid_t = bid_t = bid_t if bid_t > 1 else 1
        usp = self._usp[i]
        self._spread_t = spread_t = 1 if usp < 0.7 else (2 if usp < 0.9 else 3)
        self.bid = bid = self._price(bid_t)
        self.ask = ask = self._price(bid_t + spread_t)
        self.bsize = bsize = self._size(self._bsz[i])
        self.asize = asize = self._size(self._asz[i])
        ticks = [
            {'type': 'bid', 'price': bid, 'size': bsize},
            {'type': 'ask', 'price': ask, 'size': asize},
        ]
        if self._ukind[i] < TRADE_PROB:
            price = ask if self._uside[i] < 0.5 else bid
            size = self._size(self._tsz[i])
            self.last = price
            self.volume = round(self.volume + size, self._sdigits)
            ticks.append({'type': 'trade', 'price': price, 'size': size})
        return self.quote(ticks)

    def push(
        self,
        last: float | None = None,
        bid: float | None = None,
        ask: float | None = None,
        size: float | None = None,
        bsize: float | None = None,
        asize: float | None = None,
    ) -> Quote:
        """Set exactly the given fields and return that quote.

        Ticks are emitted for the given fields only: a `bid` tick when `bid`
        or `bsize` is given, an `ask` tick likewise, a `trade` tick when
        `last` is given (of `size`, default the market's lot). Values are
        taken as given (not quantized, crossed books allowed: tests may
        want exactly that); they must be finite and > 0.
        """
        last = _positive('last', last)
        bid = _positive('bid', bid)
        ask = _positive('ask', ask)
        size = _positive('size', size)
        bsize = _positive('bsize', bsize)
        asize = _positive('asize', asize)
        if size is not None and last is None:
            raise ValueError('size is the trade size: it needs last=')
        if all(v is None for v in (last, bid, ask, bsize, asize)):
            raise ValueError('push() needs at least one of last, bid, ask, bsize, asize')
        ticks: list[dict] = []
        if bid is not None or bsize is not None:
            self.bid = bid if bid is not None else self.bid
            self.bsize = bsize if bsize is not None else self.bsize
            ticks.append({'type': 'bid', 'price': self.bid, 'size': self.bsize})
        if ask is not None or asize is not None:
            self.ask = ask if ask is not None else self.ask
            self.asize = asize if asize is not None else self.asize
            ticks.append({'type': 'ask', 'price': self.ask, 'size': self.asize})
        if last is not None:
            tsize = size if size is not None else self.spec.lot
            self.last = last
            self.volume = round(self.volume + tsize, max(self._sdigits, 8))
            ticks.append({'type': 'trade', 'price': last, 'size': tsize})
        if (bid is not None or ask is not None) and self.bid < self.ask:
            self._anchor = ('book', self.bid, self.ask)
        elif last is not None:
            self._anchor = ('last', last, last)
        return self.quote(ticks)

    def recentre(self) -> None:
        """Put the walk's tick grid on the last pushed prices."""
        if self._anchor is None:
            return
        kind, lo, hi = self._anchor
        self._anchor = None
        self._bid_t = max(1, round(lo / self._tick))
        if kind == 'book':
            self._spread_t = max(1, round((hi - lo) / self._tick))
        self.bid = self._price(self._bid_t)
        self.ask = self._price(self._bid_t + self._spread_t)
