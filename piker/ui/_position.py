"""Position lines: the holding of each account drawn at its ppu with live PnL.

The EMS reports positions as `BrokerdPosition` (signed size, average
price) at start-up and after every fill; quotes move the PnL. One line per
account with a non-flat position, labelled
`paper: +0.035 @ 28,500.00  pnl +12.50 (+0.44%)`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..accounting import MktPair, Position
from ..types import Struct
from ._lines import LevelLine
from ._numbers import fmt_num, fmt_size
from ._theme import DARK, Theme

if TYPE_CHECKING:
    from ._chart import ChartWidget


class Holding(Struct, frozen=True):
    """One account's position in the chart's market."""

    account: str
    size: float
    ppu: float

    def pnl(self, price: float) -> float:
        """Unrealised PnL at `price`, in quote currency."""
        return (price - self.ppu) * self.size

    def pnl_pct(self, price: float) -> float:
        if not self.ppu:
            return 0.0
        return (price / self.ppu - 1.0) * 100.0 * (1 if self.size > 0 else -1)


class PositionTracker:
    """Holdings per account for one market, their lines and live PnL."""

    def __init__(self, chart: ChartWidget, mkt: MktPair, theme: Theme = DARK) -> None:
        self.chart = chart
        self.mkt = mkt
        self.theme = theme
        self.holdings: dict[str, Holding] = {}
        self.lines: dict[str, LevelLine] = {}
        self.last: float | None = None
        self.stale = False      # the EMS is disconnected: sizes may have changed

    def update(self, account: str, size: float, ppu: float) -> None:
        """Set `account`'s position (flat removes its line)."""
        if not size:
            self.holdings.pop(account, None)
            line = self.lines.pop(account, None)
            if line is not None:
                line.remove()
            return
        self.holdings[account] = Holding(account=account, size=float(size), ppu=float(ppu))
        line = self.lines.get(account)
        if line is None:
            line = LevelLine(
                self.chart, self._colour(), dash='position', price=ppu,
                theme=self.theme, z=550,
            )
            self.lines[account] = line
        line.set_price(float(ppu))
        self._relabel(account)

    def set_stale(self, stale: bool) -> None:
        """Grey the position lines while the EMS cannot tell us about fills."""
        self.stale = stale
        for line in self.lines.values():
            line.set_style(colour=self._colour())

    def _colour(self) -> str:
        return self.theme.stale if self.stale else self.theme.position

    def on_price(self, last: float | None) -> None:
        """New market price: refresh every PnL."""
        if last is None or not math.isfinite(last):
            return
        self.last = float(last)
        for account in self.holdings:
            self._relabel(account)

    def holding(self, account: str) -> Holding | None:
        return self.holdings.get(account)

    def position(self, account: str) -> Position | None:
        """`account`'s holding as an accounting `Position` (for the allocator)."""
        h = self.holdings.get(account)
        if h is None:
            return None
        return Position(
            fqme=self.mkt.fqme, size=h.size, ppu=h.ppu,
            price_tick=self.mkt.price_tick, size_tick=self.mkt.size_tick,
        )

    def pnl(self, account: str) -> float | None:
        h = self.holdings.get(account)
        if h is None or self.last is None:
            return None
        return h.pnl(self.last)

    def describe(self, account: str) -> tuple[str, str, str | None]:
        """(position text, pnl text, pnl colour) for the settings pane."""
        h = self.holdings.get(account)
        if h is None:
            return f'{account}: flat', '', None
        digits = self.mkt.size_tick_digits
        pos = (
            f'{account}: {fmt_size(h.size, digits, signed=True)} '
            f'@ {self.chart.format_price(h.ppu)}'
        )
        if self.last is None:
            return pos, '', None
        pnl = h.pnl(self.last)
        colour = self.theme.up if pnl >= 0 else self.theme.down
        return pos, f'pnl {fmt_num(pnl, 2, signed=True)} ({fmt_num(h.pnl_pct(self.last), 2, signed=True)}%)', colour

    def _relabel(self, account: str) -> None:
        line = self.lines.get(account)
        if line is None:
            return
        pos, pnl, _ = self.describe(account)
        line.set_text(f'{pos}  {pnl}' if pnl else pos)
