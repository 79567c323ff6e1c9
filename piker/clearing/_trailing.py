"""Trailing stops in the dark book, still an index (no per-quote scan).

A trailing stop is an ordinary `DarkBook` entry at its current trigger,
in the direction of a stop (sell: fires when the price falls to it, buy:
when it rises). What moves it is a second, small index per market and
side, `_Trails`: each trailing order is keyed by *move_at*, the price at
which its trigger would move by at least one price tick in the
position's favour (a sell's trigger up, a buy's down). A new best price
`p` moves exactly the sell trails with `move_at <= p` (a prefix of the
ascending list) and the buy trails with `move_at >= p` (a suffix), so a
quote costs O(log n + moved), and a trigger never moves back: it is only
ever replaced by a better one.

Trigger of a best price `p` (quantized away from the market, so the trail
is never shorter than asked):

- sell, `Trail(n, 'ticks')`: floor(p - n * tick); `Trail(r, 'pct')`:
  floor(p * (1 - r / 100));
- buy: ceil(p + n * tick), ceil(p * (1 + r / 100)).

Which prices count as "best": the ticks the order watches (sells
`bid`/`last`/`trade`, buys `ask`/`last`/`trade`). Moves are conflated:
`process_quote()` applies a quote's ticks in order (a new high and the
fall after it in one quote both count) and `drain_moved()` gives each
moved order once, with its final trigger.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import count
from typing import Any

from sortedcontainers import SortedList

from ..accounting import quantize_to_tick, to_decimal
from ..types import Struct
from ._dark import DarkBook, DarkEntry, Triggered, _top_of_book_ticks
from ._messages import Action, Trail
from ._order_types import last_for_direction

__all__ = ['TrailMove', 'TriggerBook', 'trail_trigger']

_SIDE_TICKS: dict[str, frozenset[str]] = {
    'sell': frozenset({'bid', 'last', 'trade'}),
    'buy': frozenset({'ask', 'last', 'trade'}),
}


def trail_trigger(best: float, action: Action, trail: Trail, tick: Decimal) -> float:
    """The trigger a best price of `best` gives (see the module doc)."""
    p = to_decimal(best, 'best price')
    amt = to_decimal(trail.amount, 'trail')
    if action == 'sell':
        raw = p - amt * tick if trail.unit == 'ticks' else p * (1 - amt / 100)
        return float(max(quantize_to_tick(raw, tick, ROUND_FLOOR), tick))
    raw = p + amt * tick if trail.unit == 'ticks' else p * (1 + amt / 100)
    return float(quantize_to_tick(raw, tick, ROUND_CEILING))


def _move_at(trigger: float, action: Action, trail: Trail, tick: Decimal) -> float:
    """The best price at which `trigger` moves by one tick or more."""
    trig = to_decimal(trigger, 'trigger')
    amt = to_decimal(trail.amount, 'trail')
    if action == 'sell':
        want = trig + tick
        out = want + amt * tick if trail.unit == 'ticks' else want / (1 - amt / 100)
    else:
        want = trig - tick
        out = want - amt * tick if trail.unit == 'ticks' else want / (1 + amt / 100)
    return float(out)


class TrailMove(Struct, frozen=True):
    """A trailing stop whose trigger moved: `anchor` is the best price
    that moved it."""

    oid: str
    anchor: float
    trigger: float


class _Trail:
    __slots__ = ('oid', 'fqme', 'action', 'trail', 'tick', 'trigger', 'anchor', 'key')

    def __init__(
        self, oid: str, fqme: str, action: Action, trail: Trail, tick: Decimal,
        trigger: float, anchor: float | None,
    ) -> None:
        self.oid, self.fqme, self.action = oid, fqme, action
        self.trail, self.tick = trail, tick
        self.trigger = trigger
        self.anchor = anchor
        self.key: tuple[float, int, str] = (0.0, 0, oid)


class _Trails:
    """One market's trailing orders by side, sorted by `move_at`."""

    __slots__ = ('sell', 'buy')

    def __init__(self) -> None:
        self.sell = SortedList()
        self.buy = SortedList()

    def __len__(self) -> int:
        return len(self.sell) + len(self.buy)


class TriggerBook(DarkBook):
    """The dark book plus the trailing index that moves trailing stops."""

    def __init__(self) -> None:
        super().__init__()
        self._trails: dict[str, _Trail] = {}
        self._by_mkt: dict[str, _Trails] = {}
        self._moved: dict[str, TrailMove] = {}
        self._tseq = count()

    # ---- trailing orders ------------------------------------------------

    def arm_trailing(
        self,
        oid: str,
        fqme: str,
        action: Action,
        trail: Trail,
        *,
        level: float,
        anchor: float | None,
        last_price: float,
        size: float,
        price_tick: Decimal | float | str,
        pad_ticks: int,
    ) -> DarkEntry:
        """Rest a trailing stop (an existing `oid` is re-armed).

        `level` is its trigger (0: start from `last_price`, the market);
        `anchor` the best price seen so far (None: not known, e.g. a
        trigger the client gave).
        """
        if action not in ('buy', 'sell'):
            raise ValueError(f'a trailing stop is a buy or a sell, not {action!r}')
        tick = to_decimal(price_tick, 'price_tick')
        if level <= 0:
            if not math.isfinite(last_price):
                raise ValueError(f'no market price for {fqme} to start the trail from')
            level, anchor = trail_trigger(last_price, action, trail, tick), last_price
        self.disarm(oid)
        direction = 'down' if action == 'sell' else 'up'
        entry = super().arm(
            oid, fqme, action, level, last_for_direction(level, direction),
            size=size, price_tick=tick, pad_ticks=pad_ticks,
        )
        tr = _Trail(oid, fqme, action, trail, tick, level, anchor)
        self._trails[oid] = tr
        self._index(tr)
        return entry

    def trailing(self, oid: str) -> tuple[float, float | None] | None:
        """`(trigger, anchor)` of a resting trailing stop, else None."""
        tr = self._trails.get(oid)
        return None if tr is None else (tr.trigger, tr.anchor)

    def drain_moved(self) -> list[TrailMove]:
        """Trailing stops moved since the last call, once each (final trigger)."""
        moved, self._moved = list(self._moved.values()), {}
        return moved

    def _side(self, tr: _Trail) -> SortedList:
        mkt = self._by_mkt.get(tr.fqme)
        if mkt is None:
            mkt = self._by_mkt[tr.fqme] = _Trails()
        return mkt.sell if tr.action == 'sell' else mkt.buy

    def _index(self, tr: _Trail) -> None:
        tr.key = (_move_at(tr.trigger, tr.action, tr.trail, tr.tick), next(self._tseq), tr.oid)
        self._side(tr).add(tr.key)

    def _unindex(self, oid: str) -> None:
        tr = self._trails.pop(oid, None)
        if tr is not None:
            self._side(tr).remove(tr.key)
            self._moved.pop(oid, None)

    # ---- the dark book's API, trailing-aware ------------------------------

    def arm(self, oid: str, *args: Any, **kwargs: Any) -> DarkEntry:
        self._unindex(oid)  # a trailing stop re-armed as a plain trigger
        return super().arm(oid, *args, **kwargs)

    def disarm(self, oid: str) -> bool:
        self._unindex(oid)
        return super().disarm(oid)

    def process_quote(self, fqme: str, quote: Mapping[str, Any]) -> list[Triggered]:
        """Fire triggers (see `DarkBook`), then move trailing ones, tick by tick."""
        mkt = self._by_mkt.get(fqme)
        if mkt is None or not len(mkt):
            return super().process_quote(fqme, quote)
        ticks = quote.get('ticks') or _top_of_book_ticks(quote)
        fired: list[Triggered] = []
        for tick in ticks:
            now = super().process_quote(fqme, {'ticks': [tick]})
            for trig in now:
                self._unindex(trig.oid)
            fired += now
            price = tick.get('price')
            if isinstance(price, int | float) and math.isfinite(price):
                self._follow(mkt, str(tick.get('type')), float(price))
        return fired

    def _follow(self, mkt: _Trails, tick_type: str, price: float) -> None:
        """Move the trails that `price` (a new best) moves."""
        if tick_type in _SIDE_TICKS['sell'] and mkt.sell and mkt.sell[0][0] <= price:
            k = mkt.sell.bisect_right((price, math.inf))
            keys = list(mkt.sell.islice(0, k))
            del mkt.sell[:k]
            self._move(keys, price)
        if tick_type in _SIDE_TICKS['buy'] and mkt.buy and mkt.buy[-1][0] >= price:
            k = mkt.buy.bisect_left((price, -math.inf))
            keys = list(mkt.buy.islice(k))
            del mkt.buy[k:]
            self._move(keys, price)

    def _move(self, keys: list[tuple[float, int, str]], price: float) -> None:
        for key in keys:
            tr = self._trails[key[2]]
            new = trail_trigger(price, tr.action, tr.trail, tr.tick)
            better = new > tr.trigger if tr.action == 'sell' else new < tr.trigger
            if better:
                entry = self._entries[tr.oid]
                direction = entry.direction
                # out of the trail index meanwhile: (re-)arming disarms
                del self._trails[tr.oid]
                super().arm(
                    tr.oid, tr.fqme, tr.action, new, last_for_direction(new, direction),
                    size=entry.size, price_tick=entry.price_tick, pad_ticks=entry.pad_ticks,
                )
                self._trails[tr.oid] = tr
                tr.trigger, tr.anchor = new, price
                self._moved[tr.oid] = TrailMove(oid=tr.oid, anchor=price, trigger=new)
            self._index(tr)
            # float fuzz must never leave a trail that `price` moves again
            if (tr.action == 'sell' and tr.key[0] <= price) or (
                tr.action == 'buy' and tr.key[0] >= price
            ):
                self._side(tr).remove(tr.key)
                bump = math.nextafter(price, math.inf if tr.action == 'sell' else -math.inf)
                tr.key = (bump, tr.key[1], tr.oid)
                self._side(tr).add(tr.key)
