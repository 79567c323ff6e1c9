"""The Binance markets this account trades through piker.

Binance answers "my trades" and "all my orders" per symbol only, so an
order report must know which symbols to ask about: every symbol piker
ever sent an order for is kept in `<config dir>/binance/symbols.txt`
(one per line, written atomically), plus whatever has working orders.
"""
from __future__ import annotations

from pathlib import Path

from ...atomicfile import write_atomic
from ...config import get_config_dir


def _path() -> Path:
    return get_config_dir() / 'binance' / 'symbols.txt'


def load_symbols() -> set[str]:
    try:
        text = _path().read_text()
    except FileNotFoundError:
        return set()
    return {line.strip().upper() for line in text.splitlines() if line.strip()}


def add_symbol(symbol: str) -> None:
    """Remember `symbol` (a no-op if known)."""
    symbols = load_symbols()
    if symbol.upper() in symbols:
        return
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, ''.join(f'{s}\n' for s in sorted(symbols | {symbol.upper()})))


__all__ = ['add_symbol', 'load_symbols']
