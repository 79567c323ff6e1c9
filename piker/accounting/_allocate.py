"""Order sizing: split a position limit into equal "slots".

A trader sets a limit - in units of the asset or in quote currency - and a
number of slots; each staged order is one slot's worth:

- an **entry** (from flat, or adding to the current side) is one slot,
  cut down to the room left under the limit, so the position never
  exceeds the limit;
- an **exit** (against the current side) reduces toward flat and never
  flips: one slot (or `1/slots` of the largest of the start-up and live
  position, if the position outgrew the limit), and the whole remainder
  when less than half a slot would be left behind ("back-loading").

Currency-sized entries convert at the order price; currency-sized exits
convert at the position's ppu, so the same number of slots that built the
position unwinds it whatever the price did since. Sizes are computed as
exact decimals and rounded *down* to the size tick.
"""
from __future__ import annotations

import math
from decimal import ROUND_DOWN, Decimal
from typing import Any, Literal

from ..types import Struct
from ._mktinfo import MktPair, quantize_to_tick, to_decimal
from ._pos import Position

SizeUnit = Literal['units', 'currency']
_SIZE_UNITS = ('units', 'currency')
_ACTIONS = ('buy', 'sell', 'alert')


def _check_limit(value: float | None, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'{what} must be a number, got {value!r}')
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f'{what} must be a finite number > 0, got {value!r}')


class Allocator(Struct, kw_only=True):
    """Position-limit and slot settings of one market for one account."""

    mkt: MktPair
    account: str = 'paper'
    size_unit: SizeUnit = 'currency'
    units_limit: float | None = None
    currency_limit: float | None = None
    slots: int = 4

    def __post_init__(self) -> None:
        if self.size_unit not in _SIZE_UNITS:
            raise ValueError(
                f"size_unit must be 'units' or 'currency', got {self.size_unit!r}"
            )
        _check_limit(self.units_limit, 'units_limit')
        _check_limit(self.currency_limit, 'currency_limit')
        if self.limit_for(self.size_unit) is None:
            raise ValueError(
                f'size_unit {self.size_unit!r} needs {self.size_unit}_limit to be set'
            )
        if isinstance(self.slots, bool) or not isinstance(self.slots, int) or self.slots < 1:
            raise ValueError(f'slots must be an integer >= 1, got {self.slots!r}')
        if not isinstance(self.account, str) or not self.account:
            raise ValueError(f'account must be a non-empty string, got {self.account!r}')

    def limit_for(self, size_unit: SizeUnit) -> float | None:
        return self.units_limit if size_unit == 'units' else self.currency_limit

    @property
    def limit(self) -> float:
        """The limit in the active size unit."""
        limit = self.limit_for(self.size_unit)
        assert limit is not None  # validated
        return limit

    def slots_used(self, pos: Position | None) -> float:
        """How many slots `pos` takes (fractional; cost basis for currency)."""
        if pos is None or pos.is_flat:
            return 0.0
        size = abs(to_decimal(pos.size))
        if self.size_unit == 'units':
            used = size / to_decimal(self.limit)
        else:
            used = size * to_decimal(pos.ppu) / to_decimal(self.limit)
        return float(used * self.slots)

    def _check_pos(self, pos: Position | None, what: str) -> Decimal:
        if pos is None:
            return Decimal(0)
        if pos.fqme != self.mkt.fqme:
            raise ValueError(
                f'{what} is for {pos.fqme!r}, this allocator is for {self.mkt.fqme!r}'
            )
        return to_decimal(pos.size, f'{what} size')

    def next_order_info(
        self,
        startup_pos: Position | None,
        live_pos: Position | None,
        price: float,
        action: Literal['buy', 'sell', 'alert'],
    ) -> dict[str, Any]:
        """Size the next order of `action` at `price` given the positions.

        Returns `size` (>= 0, on the size tick; 0 when the limit is used
        up), `notional` (size * price), `slots_used` (this order in
        slots), `size_digits`, `account`, `action` and `kind` ('entry',
        'exit' or 'alert' - alerts carry no size).
        """
        if action not in _ACTIONS:
            raise ValueError(f"action must be 'buy', 'sell' or 'alert', got {action!r}")
        if isinstance(price, bool) or not isinstance(price, int | float | Decimal):
            raise ValueError(f'price must be a number, got {price!r}')
        px = to_decimal(price, 'price')
        if px <= 0:
            raise ValueError(f'price must be > 0, got {price!r}')
        startup = abs(self._check_pos(startup_pos, 'startup_pos'))
        live = self._check_pos(live_pos, 'live_pos')

        limit = to_decimal(self.limit)
        slots = Decimal(self.slots)
        tick = self.mkt.size_tick

        if action == 'alert':
            kind, size = 'alert', Decimal(0)
        elif live == 0 or (action == 'buy') == (live > 0):
            kind = 'entry'
            if self.size_unit == 'units':
                slot = limit / slots
                room = limit - abs(live)
            else:
                ppu = to_decimal(live_pos.ppu) if live_pos else Decimal(0)
                slot = limit / slots / px
                room = (limit - abs(live) * ppu) / px
            size = quantize_to_tick(min(slot, max(room, Decimal(0))), tick, ROUND_DOWN)
        else:
            kind = 'exit'
            held = abs(live)
            if self.size_unit == 'units':
                slot = limit / slots
            else:
                ppu = to_decimal(live_pos.ppu) if live_pos else Decimal(0)
                slot = limit / slots / (ppu if ppu > 0 else px)
            step = max(max(startup, held) / slots, slot)
            if held - step < step / 2:
                step = held  # back-load: don't leave a sliver behind
            size = quantize_to_tick(min(step, held), tick, ROUND_DOWN)
            if size == 0:
                # a slot smaller than one tick: still make progress to flat
                size = min(held, tick)

        slot_value = limit / slots  # in the active unit
        order_value = size if self.size_unit == 'units' else size * px
        return {
            'size': float(size),
            'size_digits': self.mkt.size_tick_digits,
            'notional': float(size * px),
            'slots_used': float(order_value / slot_value),
            'account': self.account,
            'action': action,
            'kind': kind,
        }


def mk_allocator(
    mkt: MktPair,
    *,
    account: str = 'paper',
    size_unit: SizeUnit = 'currency',
    units_limit: float | None = None,
    currency_limit: float | None = 5000.0,
    slots: int = 4,
) -> Allocator:
    """Build a validated `Allocator` for `mkt`; every argument is used as given.

    Defaults mirror `conf.toml`'s `[ui]` defaults (currency sizing, a 5000
    limit, 4 slots). Sizing in units needs `units_limit`.
    """
    return Allocator(
        mkt=mkt,
        account=account,
        size_unit=size_unit,
        units_limit=units_limit,
        currency_limit=currency_limit,
        slots=slots,
    )
