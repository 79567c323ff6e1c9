"""Realised P&L of a market position, from its fills.

The cost-basis rules are `step_position()`'s (see `_pos`): ppu is the
breakeven price, an opening or adding fill's fee is in the ppu, so what a
fill *realises* is only the part of it that closes the position:

- a reduction (or a close to flat) realises `(price - ppu) * closed * sign`
  minus its own fee;
- a fill that crosses zero realises the close of the old position; its
  whole fee goes into the new position's ppu (step_position's rule);
- opening or adding realises nothing.

So realised + unrealised (`(last - ppu) * size`) is always the total P&L
of the fills, fees included. `PnlBook` keeps this per (account, fqme),
applying fills in time order whatever order they arrive in (a ledger
read at start-up and the live fills of the same moments), once per tid.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ._pos import step_position

__all__ = ['PnlBook', 'realised_by']


def realised_by(size: float, ppu: float, clear: float, price: float, cost: float = 0.0) -> float:
    """What one fill of signed size `clear` at `price` (fee `cost`)
    realises on a position `(size, ppu)`."""
    if not size or (size > 0) == (clear > 0):
        return 0.0
    closed = min(abs(clear), abs(size))
    sign = 1.0 if size > 0 else -1.0
    pnl = (price - ppu) * closed * sign
    if abs(clear) <= abs(size):
        pnl -= cost
    return pnl


@dataclass(slots=True)
class _Leg:
    """The fills of one (account, fqme) in time order and where they lead."""

    fills: list[tuple[float, str, float, float, float]] = field(default_factory=list)
    size: float = 0.0
    ppu: float = 0.0
    realised: float = 0.0

    def add(self, t: float, tid: str, size: float, price: float, cost: float) -> None:
        fill = (t, tid, size, price, cost)
        if not self.fills or t >= self.fills[-1][0]:
            self.fills.append(fill)
            self._step(size, price, cost)
            return
        bisect.insort_right(self.fills, fill, key=lambda f: f[0])
        self.size = self.ppu = self.realised = 0.0
        for _, _, s, p, c in self.fills:
            self._step(s, p, c)

    def _step(self, size: float, price: float, cost: float) -> None:
        self.realised += realised_by(self.size, self.ppu, size, price, cost)
        self.size, self.ppu = step_position(self.size, self.ppu, size, price, cost)


class PnlBook:
    """Realised P&L per (account, fqme) from fills, each tid counted once."""

    def __init__(self) -> None:
        self._legs: dict[tuple[str, str], _Leg] = {}
        self._tids: set[tuple[str, str]] = set()

    def add(
        self, account: str, fqme: str, tid: str, size: float, price: float,
        cost: float = 0.0, t: float = 0.0,
    ) -> bool:
        """Apply one fill (signed `size`, at epoch `t`); False if its tid
        was seen already for that account."""
        if (account, tid) in self._tids:
            return False
        self._tids.add((account, tid))
        self._legs.setdefault((account, fqme), _Leg()).add(t, tid, size, price, cost)
        return True

    def realised(self, account: str, fqme: str) -> float:
        leg = self._legs.get((account, fqme))
        return leg.realised if leg is not None else 0.0

    def keys(self) -> list[tuple[str, str]]:
        """Every (account, fqme) with fills."""
        return list(self._legs)
