"""The paper venue's rules for an order: keys, ticks, price band, fees.

Pure functions, so the venue's order entry (`_paper_engine`) and its fill
reporting (`_paper_fills`) apply one copy of each rule, and tests can
check them without a venue.
"""
from __future__ import annotations

import functools
import math
import time
import uuid
from decimal import Decimal

from ..accounting import strip_broker, unpack_fqme
from ..config import PaperConf
from ._matching import RestingOrder
from ._messages import BrokerdStatus

# the venue's own price band: an order's price within this factor of the
# market either way (like an exchange's percent-price filter)
VENUE_PRICE_FACTOR = 10.0


def fee_for(conf: PaperConf, price: float, size: float) -> float:
    """The fee schedule: rate of notional + per unit, at least `fee_min`."""
    fee = conf.fee_rate * abs(price * size) + conf.fee_per_unit * abs(size)
    if fee == 0 and conf.fee_min == 0:
        return 0.0
    return max(fee, conf.fee_min)


def price_problem(conf: PaperConf, price: float, size: float, bid: float, ask: float) -> str:
    """Why the venue refuses to rest `size` @ `price`, or '' (emsd checks
    its own, narrower band first: this is the venue's backstop).

    The notional (at the worst of the order's price and the touch, where
    it may fill) and its fee must be finite numbers, and the price within
    `VENUE_PRICE_FACTOR` times the market (the mid of the touch, when
    one is known) either way.
    """
    touch = [p for p in (bid, ask) if math.isfinite(p) and p > 0]
    notional = max([price, *touch]) * size
    fee = fee_for(conf, max([price, *touch]), size)
    if not math.isfinite(notional) or not math.isfinite(fee):
        return f'notional {price!r} * {size!r} (fee {fee!r}) is not a finite number'
    if touch:
        mid = sum(touch) / len(touch)
        low, high = mid / VENUE_PRICE_FACTOR, mid * VENUE_PRICE_FACTOR
        if not low <= price <= high:
            return (f'price {price!r} is outside the paper venue\'s band around the '
                    f'market {mid!r}: {low!r} to {high!r}')
    return ''


@functools.lru_cache(maxsize=8192)
def off_tick(value: float, tick: Decimal) -> bool:
    """Whether `value` is not a whole number of `tick`s (no tick: never).

    Exact (decimal), and cached: orders come at a few prices and sizes,
    and the division costs more than the rest of an order's checks."""
    if not tick:
        return False
    steps = Decimal(repr(value)) / tick
    return steps != steps.to_integral_value()


class NotAMarketKey(ValueError):
    """An order's symbol resolved to a market of another name: it was not
    that market's broker-native key (an fqme, or a case variant)."""

    def __init__(self, fqme: str, market: str) -> None:
        super().__init__(
            f'symbol {strip_broker(fqme)!r} is not a broker-native key: it names '
            f'the market {market!r}, whose key is {strip_broker(market)!r}'
        )


def native_fqme(symbol: str, broker: str) -> tuple[str, str]:
    """`(fqme, '')` for a well-formed broker-native key, else `('', why)`.

    A venue order carries the fqme without its `.<broker>` suffix, lower
    case (`btcusdt`), never an fqme (`btcusdt.sim`: it would be booked
    under `btcusdt.sim.sim`) nor another spelling. Whether the key names
    a market is the feed's to say (`NotAMarketKey`).
    """
    if symbol != symbol.lower():
        return '', (f'symbol {symbol!r} is not a broker-native key: keys are '
                    f'lower case ({symbol.lower()!r})')
    fqme = f'{symbol}.{broker}'
    try:
        unpack_fqme(fqme)
    except ValueError as err:
        return '', f'symbol {symbol!r} is not a broker-native key of {broker}: {err}'
    return fqme, ''


def new_reqid() -> str:
    """A fresh venue order id."""
    return uuid.uuid4().hex


def canceled_status(order: RestingOrder, reason: str, filled: float | None = None) -> BrokerdStatus:
    """`order` ended `canceled` saying why, with what it filled (or `filled`)."""
    done = order.filled if filled is None else filled
    return BrokerdStatus(
        reqid=order.reqid, oid=order.oid, status='canceled', account=order.account,
        time_ns=time.time_ns(), filled=done, remaining=max(order.size - done, 0.0),
        reason=reason,
    )
