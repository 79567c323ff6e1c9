"""How the chart writes numbers: prices, sizes and P&L in labels and tables.

One place, so that every label rounds the same way: a P&L of -0.001
reads `+0.00`, never `-0.00`, on a position line, a bracket's label and
a blotter row alike.
"""
from __future__ import annotations

import math

__all__ = ['fmt_num', 'fmt_size']


def fmt_num(value: float | None, digits: int = 2, signed: bool = False) -> str:
    """`value` to `digits` places with thousands commas (`signed`: always
    a sign); '' for None or a non-finite value."""
    if value is None or not math.isfinite(value):
        return ''
    value = round(value, digits) + 0.0     # never '-0.00'
    return f'{value:+,.{digits}f}' if signed else f'{value:,.{digits}f}'


def fmt_size(size: float, digits: int, signed: bool = False) -> str:
    """A size on its market's size grid (`signed`: always show the sign)."""
    return fmt_num(size, digits, signed)
