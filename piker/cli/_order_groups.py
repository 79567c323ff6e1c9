"""Brackets and OCO groups in `piker order`: the `--tp/--sl` check and how
`piker order ls` lays groups out (children indented under their entry)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..clearing import Status

__all__ = ['bracket_problem', 'grouped', 'grouped_rows']


def bracket_problem(action: str, price: float, tp: float | None, sl: float | None) -> str:
    """Why `--tp`/`--sl` do not make a bracket of this order ('' if they do).

    A buy's take-profit sells above its price and its stop-loss below; a
    sell's the other way round.
    """
    if tp is None and sl is None:
        return ''
    if action == 'alert':
        return 'an alert opens no position: --tp/--sl need a buy or a sell'
    up, down = ('--tp', '--sl') if action == 'buy' else ('--sl', '--tp')
    above = tp if action == 'buy' else sl
    below = sl if action == 'buy' else tp
    if above is not None and above <= price:
        return f'{up} {above:g} must be above the {action} price {price:g}'
    if below is not None and below >= price:
        return f'{down} {below:g} must be below the {action} price {price:g}'
    return ''


def grouped(dialogs: dict[str, Status]) -> bool:
    """Whether any of `dialogs` is in a bracket or an oco group."""
    return any(st.req is not None and (st.req.parent or st.req.oco)
               for st in dialogs.values())


def grouped_rows(dialogs: dict[str, Status]) -> list[tuple[Status, int]]:
    """`dialogs` by last update, each entry followed by its children:
    (status, depth) with depth 1 for a child listed under its entry."""
    ordered = sorted((st for st in dialogs.values() if st.req is not None),
                     key=lambda s: s.time_ns)
    kids: dict[str, list[Status]] = {}
    for st in ordered:
        parent = st.req.parent if st.req else None
        if parent is not None and parent in dialogs:
            kids.setdefault(parent, []).append(st)
    rows: list[tuple[Status, int]] = []
    for st in ordered:
        parent = st.req.parent if st.req else None
        if parent is not None and parent in dialogs:
            continue  # under its entry
        rows.append((st, 1 if parent is not None else 0))
        rows += [(k, 1) for k in kids.get(st.oid, [])]
    return rows
