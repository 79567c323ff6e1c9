"""The markets an account trades through piker, per broker, on disk.

A venue that reports balances rather than positions (crypto spot) needs
to know which markets to show a position for, and some venues answer
"my trades" per market only: every market piker ever sent an order for
is kept in `<config dir>/<broker>/symbols.txt` (one per line, written
atomically). Venue-neutral: `binance._state` keeps the same file.
"""
from __future__ import annotations

from pathlib import Path

from ..atomicfile import write_atomic
from ..config import get_config_dir


class TradedSymbols:
    def __init__(self, broker: str) -> None:
        self.broker = broker

    @property
    def path(self) -> Path:
        return get_config_dir() / self.broker / 'symbols.txt'

    def load(self) -> set[str]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return set()
        return {line.strip() for line in text.splitlines() if line.strip()}

    def add(self, symbol: str) -> None:
        """Remember `symbol` (a no-op if known)."""
        symbols = self.load()
        if symbol in symbols:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, ''.join(f'{s}\n' for s in sorted(symbols | {symbol})))


def average_price(fills: list[tuple[bool, float, float]]) -> float:
    """Average cost of what `(is_buy, qty, price)` fills (oldest first)
    leave held; 0 if nothing is."""
    size = ppu = 0.0
    for is_buy, qty, price in fills:
        if is_buy:
            ppu = (ppu * size + price * qty) / (size + qty) if size + qty else 0.0
            size += qty
        else:
            size = max(size - qty, 0.0)
    return ppu if size > 0 else 0.0


__all__ = ['TradedSymbols', 'average_price']
