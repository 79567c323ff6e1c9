"""What each order type means: trigger direction, release price, reduce-only.

The rules of docs/protocol.md ("Trigger semantics"), as pure functions the
dialog (`_dialogs`), the dark-book feeds (`_dark_feeds`) and the intake
(`_intake`) share, so there is one copy of each:

| type | buy fires when the price | sell fires when the price | released as |
|---|---|---|---|
| `limit` (dark) | crosses the level from the side of the last price | same | marketable limit, padded |
| `stop` | rises to the trigger | falls to it | marketable limit, padded |
| `stop_limit` | rises to the trigger | falls to it | limit at `Order.limit` |
| `take_profit` | falls to the trigger | rises to it | limit at the trigger |
| `trailing_stop` | rises to the trigger | falls to it | marketable limit, padded |

A `limit`'s direction comes from the market when it is armed; every other
type's is fixed by type and side (a stop buy placed below the market fires
on the next tick, as a stop at a venue would).
"""
from __future__ import annotations

import math

from ._dark import Direction, Triggered
from ._messages import Order, VenueTimeInForce

__all__ = [
    'fixed_direction',
    'last_for_direction',
    'reduce_only_fit',
    'release_price',
    'venue_tif',
]

# (type, action) -> the direction the trigger fires in
_DIRECTIONS: dict[tuple[str, str], Direction] = {
    ('stop', 'buy'): 'up',
    ('stop', 'sell'): 'down',
    ('stop_limit', 'buy'): 'up',
    ('stop_limit', 'sell'): 'down',
    ('trailing_stop', 'buy'): 'up',
    ('trailing_stop', 'sell'): 'down',
    ('take_profit', 'buy'): 'down',
    ('take_profit', 'sell'): 'up',
}
# sizes are floats: a size within this of the position is the position
_REL_TOL = 1e-9


def fixed_direction(order: Order) -> Direction | None:
    """The trigger direction `order`'s type fixes (None: a `limit`, whose
    direction the market decides when it is armed)."""
    return _DIRECTIONS.get((order.type, order.action))


def last_for_direction(level: float, direction: Direction) -> float:
    """A last price that makes `DarkBook.arm()` pick `direction` for `level`."""
    return level if direction == 'down' else math.nextafter(level, -math.inf)


def release_price(order: Order, trig: Triggered) -> float:
    """The limit price a triggered `order` goes to its venue with.

    `trig.submit_price` is the tick price padded by the dark pad ticks
    (marketable): a dark `limit`, `stop` and `trailing_stop` use it; a
    `stop_limit` uses its own limit, a `take_profit` its trigger.
    """
    if order.type == 'stop_limit':
        assert order.limit is not None  # validated by Order
        return order.limit
    if order.type == 'take_profit':
        return order.price
    return trig.submit_price


def venue_tif(order: Order) -> VenueTimeInForce:
    """What the venue is told: `gtd` is emsd's to enforce (sent as gtc)."""
    return 'gtc' if order.tif == 'gtd' else order.tif


def reduce_only_fit(
    order: Order, reported: float, estimate: float,
) -> tuple[float, str]:
    """`(size, note)` a reduce-only `order` may have, or `(0, why not)`.

    The position is `reported` (the venue's last `BrokerdPosition`) and
    `estimate` (that plus the fills seen since); both must say the order
    closes it, and the size is capped by the smaller, so the order never
    flips or grows the position. `note` says when it was sized down.
    """
    sign = 1.0 if order.action == 'buy' else -1.0
    where = f'{order.symbol} [{order.broker}.{order.account}]'
    flat = [abs(p) <= _REL_TOL * max(1.0, order.size) for p in (reported, estimate)]
    if all(flat):
        return 0.0, f'reduce_only: no position in {where} to reduce'
    if any(flat) or reported * sign > 0 or estimate * sign > 0:
        return 0.0, (
            f'reduce_only: a {order.action} would increase or flip the position '
            f'in {where} ({estimate:g}, last reported {reported:g}): refused'
        )
    room = min(abs(reported), abs(estimate))
    if order.size > room * (1 + _REL_TOL):
        return room, (
            f'reduce_only: sized down from {order.size:g} to {room:g}, the '
            f'position in {where}'
        )
    return order.size, ''
