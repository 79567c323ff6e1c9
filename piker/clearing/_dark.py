"""The dark book: emsd's index of resting dark orders and alerts.

A dark order (or alert) never reaches a venue until its trigger fires, so
emsd checks every incoming quote against every resting trigger of that
market. Scanning them all would cost O(orders) per quote; instead each
market keeps its trigger levels in sorted lists, one per
(tick source, direction), and a quote costs O(log n + fired):

- *direction* is fixed when the order is placed, from the last price
  (DESIGN.md section 5): a level above the last price fires when the price
  rises to it (`'up'`: price >= level), a level at or below the last price
  fires when the price falls to it (`'down'`: price <= level). So the
  `'up'` entries that fire for a price are a prefix of their list sorted
  by level, the `'down'` ones a suffix, and "nothing fires" is one
  comparison against the list's end.
- *tick source*: buys watch `ask`/`last`/`trade` ticks, sells
  `bid`/`last`/`trade`, alerts `last`/`trade` (`last` and `trade` are one
  source). An order sits in the list of each source it watches.

A fired entry is removed from every list before `process_quote()` returns,
so an order can never both fire and be cancelled: a later `disarm()` of it
returns False.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import count
from typing import Any, Literal

from sortedcontainers import SortedList

from ..accounting import quantize_to_tick, to_decimal
from ..types import Struct
from ._messages import Action

__all__ = ['DarkBook', 'DarkEntry', 'Direction', 'Triggered', 'pad_price']

Direction = Literal['up', 'down']
Source = Literal['ask', 'bid', 'trade']

# which tick sources each kind of order watches
_SOURCES: dict[str, tuple[Source, ...]] = {
    'buy': ('ask', 'trade'),
    'sell': ('bid', 'trade'),
    'alert': ('trade',),
}
# quote tick type -> tick source
_TICK_SOURCE: dict[str, Source] = {
    'ask': 'ask',
    'bid': 'bid',
    'last': 'trade',
    'trade': 'trade',
}
_INF = math.inf


def pad_price(
    price: float,
    action: Action,
    tick: Decimal | float | str,
    n_ticks: int,
) -> float:
    """Return the price a triggered dark order is submitted at.

    Buys are padded up and sells down by `n_ticks` *price* ticks so the
    live order is marketable even if the touch moves a little; the result
    is snapped onto the tick grid away from the market (buy up, sell
    down), so the padding is never less than `n_ticks`. A sell never goes
    below one tick. Alerts are not submitted and are returned unchanged.
    Decimal maths throughout: `0.1 + 5 * 0.01` must be `0.15`, exactly.
    """
    if n_ticks < 0:
        raise ValueError(f'n_ticks must be >= 0, got {n_ticks!r}')
    step = to_decimal(tick, 'tick')
    if step <= 0:
        raise ValueError(f'tick must be > 0, got {tick!r}')
    dec = to_decimal(price, 'price')
    if action == 'alert':
        return float(price)
    if action == 'buy':
        out = quantize_to_tick(dec + n_ticks * step, step, ROUND_CEILING)
    elif action == 'sell':
        out = quantize_to_tick(dec - n_ticks * step, step, ROUND_FLOOR)
        out = max(out, step)
    else:
        raise ValueError(f"action must be 'buy', 'sell' or 'alert', got {action!r}")
    return float(out)


class DarkEntry(Struct, frozen=True):
    """A resting trigger, as the book holds it."""

    oid: str
    fqme: str
    action: Action
    level: float
    direction: Direction
    size: float = 0.0
    # for padding the live order's price when it fires (None: no padding)
    price_tick: Decimal | None = None
    pad_ticks: int = 0


class Triggered(Struct, frozen=True):
    """A trigger that fired; already removed from the book.

    `price` is the tick price that crossed the level and `submit_price`
    the (padded, quantized) price to submit the live order at.
    """

    oid: str
    fqme: str
    action: Action
    level: float
    direction: Direction
    price: float
    tick_type: str
    size: float
    submit_price: float


# the sort key of an entry in its lists: level first, then arm order
_Key = tuple[float, int, str]


class _MktBook:
    """The sorted trigger lists of one market."""

    __slots__ = ('up', 'down')

    def __init__(self) -> None:
        # ascending by (level, seq); 'up' fires a prefix, 'down' a suffix
        self.up: dict[Source, SortedList] = {s: SortedList() for s in ('ask', 'bid', 'trade')}
        self.down: dict[Source, SortedList] = {s: SortedList() for s in ('ask', 'bid', 'trade')}

    def lists(self, direction: Direction) -> dict[Source, SortedList]:
        return self.up if direction == 'up' else self.down

    def __len__(self) -> int:
        # every entry watches 'trade'
        return len(self.up['trade']) + len(self.down['trade'])


class DarkBook:
    """Resting dark orders and alerts of every market, indexed for quotes."""

    def __init__(self) -> None:
        self._books: dict[str, _MktBook] = {}
        self._entries: dict[str, DarkEntry] = {}
        self._keys: dict[str, _Key] = {}
        self._seq = count()

    # ---- queries --------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, oid: object) -> bool:
        return oid in self._entries

    def get(self, oid: str) -> DarkEntry | None:
        """The resting entry of `oid`, or None."""
        return self._entries.get(oid)

    def entries(self, fqme: str | None = None) -> list[DarkEntry]:
        """Every resting entry (of `fqme` only, if given)."""
        if fqme is None:
            return list(self._entries.values())
        return [e for e in self._entries.values() if e.fqme == fqme]

    def fqmes(self) -> set[str]:
        """Markets with at least one resting entry (emsd needs their quotes)."""
        return {fqme for fqme, book in self._books.items() if len(book)}

    # ---- mutation -------------------------------------------------------

    def arm(
        self,
        oid: str,
        fqme: str,
        action: Action,
        level: float,
        last_price: float,
        size: float = 0.0,
        price_tick: Decimal | float | str | None = None,
        pad_ticks: int = 0,
    ) -> DarkEntry:
        """Rest a trigger at `level`; an existing `oid` is re-armed (replaced).

        The direction is fixed here from `last_price`: `'up'` if the level
        is above it, else `'down'`.
        """
        if action not in _SOURCES:
            raise ValueError(f"action must be 'buy', 'sell' or 'alert', got {action!r}")
        if not math.isfinite(level):
            raise ValueError(f'trigger level must be finite, got {level!r}')
        if not math.isfinite(last_price):
            raise ValueError(f'last price must be finite, got {last_price!r}')
        if pad_ticks < 0:
            raise ValueError(f'pad_ticks must be >= 0, got {pad_ticks!r}')
        tick = None if price_tick is None else to_decimal(price_tick, 'price_tick')
        if tick is not None and tick <= 0:
            raise ValueError(f'price_tick must be > 0, got {price_tick!r}')
        self.disarm(oid)
        entry = DarkEntry(
            oid=oid,
            fqme=fqme,
            action=action,
            level=float(level),
            direction='up' if level > last_price else 'down',
            size=float(size),
            price_tick=tick,
            pad_ticks=pad_ticks,
        )
        key: _Key = (entry.level, next(self._seq), oid)
        book = self._books.get(fqme)
        if book is None:
            book = self._books[fqme] = _MktBook()
        lists = book.lists(entry.direction)
        for src in _SOURCES[action]:
            lists[src].add(key)
        self._entries[oid] = entry
        self._keys[oid] = key
        return entry

    def disarm(self, oid: str) -> bool:
        """Remove `oid`'s trigger; False if it is not resting (or already fired)."""
        entry = self._entries.pop(oid, None)
        if entry is None:
            return False
        key = self._keys.pop(oid)
        lists = self._books[entry.fqme].lists(entry.direction)
        for src in _SOURCES[entry.action]:
            lists[src].remove(key)
        return True

    # ---- the hot path ---------------------------------------------------

    def process_quote(self, fqme: str, quote: Mapping[str, Any]) -> list[Triggered]:
        """Fire (and remove) every trigger of `fqme` that `quote` crosses.

        Ticks are applied in order; an entry fires on the first tick that
        crosses its level. A quote without a `ticks` list is read as ticks
        from its top-level `ask`/`bid`/`last` fields.
        """
        book = self._books.get(fqme)
        if book is None:
            return []
        ticks = quote.get('ticks')
        if not ticks:
            ticks = _top_of_book_ticks(quote)
        fired: list[Triggered] = []
        up, down = book.up, book.down
        for tick in ticks:
            src = _TICK_SOURCE.get(tick.get('type'))  # type: ignore[arg-type]
            if src is None:
                continue
            price = tick.get('price')
            if price is None or not math.isfinite(price):
                continue
            ups = up[src]
            # 'up' fires when price >= level: a prefix of the ascending list
            if ups and ups[0][0] <= price:
                k = ups.bisect_right((price, _INF))
                keys = list(ups.islice(0, k))
                del ups[:k]
                self._fire(book, src, keys, price, tick, fired)
            downs = down[src]
            # 'down' fires when price <= level: a suffix
            if downs and downs[-1][0] >= price:
                k = downs.bisect_left((price, -_INF))
                keys = list(downs.islice(k))
                del downs[k:]
                self._fire(book, src, keys, price, tick, fired)
        return fired

    def _fire(
        self,
        book: _MktBook,
        src: Source,
        keys: Iterable[_Key],
        price: float,
        tick: Mapping[str, Any],
        out: list[Triggered],
    ) -> None:
        """Remove fired `keys` (already cut from `src`'s list) everywhere."""
        tick_type = tick.get('type', src)
        for key in keys:
            oid = key[2]
            entry = self._entries.pop(oid)
            del self._keys[oid]
            lists = book.lists(entry.direction)
            for other in _SOURCES[entry.action]:
                if other != src:
                    lists[other].remove(key)
            if entry.action == 'alert' or entry.price_tick is None:
                submit = float(price)
            else:
                submit = pad_price(price, entry.action, entry.price_tick, entry.pad_ticks)
            out.append(Triggered(
                oid=oid,
                fqme=entry.fqme,
                action=entry.action,
                level=entry.level,
                direction=entry.direction,
                price=float(price),
                tick_type=str(tick_type),
                size=entry.size,
                submit_price=submit,
            ))


def _top_of_book_ticks(quote: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Read a tick-less quote (e.g. a snapshot) as ask/bid/last ticks."""
    ticks = []
    for field in ('ask', 'bid', 'last'):
        price = quote.get(field)
        if isinstance(price, int | float):
            ticks.append({'type': field, 'price': price})
    return ticks
