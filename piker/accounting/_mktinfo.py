"""Market identity: assets, tradable pairs and fqme parsing.

A `MktPair` is everything an order, a position or a chart needs to know
about a market that does not change while trading: what is bought (`dst`)
with what (`src`), where (`venue`, `broker`), when it expires, and the
price/size grids orders must sit on. It travels over IPC, so it is a plain
msgspec struct that round-trips through `to_builtins()` -> `convert()`.

Markets are named by fqmes; their grammar lives on the bottom floor in
`piker.fqme` (re-exported here and from `piker.accounting`).
"""
from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

from ..fqme import check_token, mk_fqme, strip_broker, unpack_fqme  # noqa: F401  (older import path)
from ..types import Struct


def to_decimal(value: Decimal | float | int | str, what: str = 'value') -> Decimal:
    """Convert to an exact `Decimal` (floats via their shortest repr).

    `Decimal(0.1)` is `0.1000000000000000055...`; going through `str()`
    gives the `0.1` the user typed, which is what tick maths must use.
    """
    if isinstance(value, Decimal):
        dec = value
    else:
        if isinstance(value, bool):
            raise ValueError(f'{what} must be a number, got {value!r}')
        try:
            dec = Decimal(str(value))
        except (InvalidOperation, ValueError):
            raise ValueError(f'{what} must be a number, got {value!r}') from None
    if not dec.is_finite():
        raise ValueError(f'{what} must be finite, got {value!r}')
    return dec


def tick_digits(tick: Decimal | float | str) -> int:
    """Number of decimal places needed to show multiples of `tick`.

    `0.01` -> 2, `0.25` -> 2, `1` -> 0, `5` -> 0, `1e-8` -> 8.
    """
    dec = to_decimal(tick, 'tick').normalize()
    exp = dec.as_tuple().exponent
    assert isinstance(exp, int)  # finite, checked above
    return max(0, -exp)


def quantize_to_tick(
    value: Decimal | float | int | str,
    tick: Decimal | float | str,
    rounding: str = ROUND_HALF_EVEN,
) -> Decimal:
    """Round `value` to a whole multiple of `tick` (default half-even).

    Works for any tick, not just powers of ten (a 0.25 tick rounds 1.13 to
    1.25), which a bare `Decimal.quantize()` would not.
    """
    dec = to_decimal(value)
    step = to_decimal(tick, 'tick')
    if step <= 0:
        raise ValueError(f'tick must be > 0, got {tick!r}')
    steps = (dec / step).quantize(Decimal(1), rounding=rounding)
    out = steps * step
    return out if out else Decimal(0)  # never a signed '-0'


class Asset(Struct, frozen=True, kw_only=True):
    """One side of a market: a coin, a currency, a stock, a contract.

    `atype` is a free-form kind (`crypto`, `fiat`, `stock`, `future`, ...);
    `tx_tick` is the smallest transferable amount of the asset.
    """

    name: str
    atype: str
    tx_tick: Decimal

    def __post_init__(self) -> None:
        check_token(self.name, 'asset name', required=True)
        if not self.atype:
            raise ValueError('asset atype must not be empty')
        tick = to_decimal(self.tx_tick, 'asset tx_tick')
        if tick <= 0:
            raise ValueError(f'asset tx_tick must be > 0, got {tick}')
        msgspec.structs.force_setattr(self, 'tx_tick', tick)
        msgspec.structs.force_setattr(self, 'name', self.name.lower())


class MktPair(Struct, frozen=True, kw_only=True):
    """A tradable market: `dst` priced in `src` on `venue` via `broker`.

    Immutable (and hashable) because every holder of a market - feeds,
    the EMS, positions, charts - must agree on the same tick grid. Names
    are normalised to lower case so the derived fqme always is.
    """

    dst: Asset
    src: Asset
    price_tick: Decimal
    size_tick: Decimal
    broker: str
    venue: str = ''
    expiry: str = ''
    bs_mktid: str = ''
    # stocks are named by ticker alone: 'simco.sim', not 'simcousd.sim'
    fqme_without_src: bool = False

    def __post_init__(self) -> None:
        for field in ('price_tick', 'size_tick'):
            tick = to_decimal(getattr(self, field), field)
            if tick <= 0:
                raise ValueError(f'{field} must be > 0, got {tick}')
            msgspec.structs.force_setattr(self, field, tick)
        # validates broker/venue/expiry tokens and their combination
        mk_fqme(self.broker, self.dst.name, self.venue, self.expiry)
        for field in ('broker', 'venue', 'expiry'):
            msgspec.structs.force_setattr(self, field, getattr(self, field).lower())

    @classmethod
    def from_msg(cls, msg: dict[str, Any]) -> MktPair:
        """Rebuild a `MktPair` from its `to_builtins()` form (IPC boundary)."""
        return msgspec.convert(msg, cls)

    @property
    def pair(self) -> str:
        """`dst`+`src` names (`btcusdt`), or just `dst` for stock-likes."""
        if self.fqme_without_src:
            return self.dst.name
        return f'{self.dst.name}{self.src.name}'

    @property
    def bs_fqme(self) -> str:
        """The broker-native key: the fqme without `.<broker>`."""
        return '.'.join(t for t in (self.pair, self.venue, self.expiry) if t)

    @property
    def fqme(self) -> str:
        """The fully qualified market endpoint, e.g. `btcusdt.sim`."""
        return mk_fqme(self.broker, self.pair, self.venue, self.expiry)

    @property
    def price_tick_digits(self) -> int:
        return tick_digits(self.price_tick)

    @property
    def size_tick_digits(self) -> int:
        return tick_digits(self.size_tick)

    def quantize(
        self,
        value: float,
        quantity_type: Literal['size', 'price'] = 'size',
        *,
        rounding: str = ROUND_HALF_EVEN,
    ) -> float:
        """Round `value` onto this market's size or price tick grid.

        Half-even by default (no systematic bias over many roundings);
        pass e.g. `rounding=decimal.ROUND_DOWN` to never exceed a limit.
        """
        if quantity_type == 'size':
            tick = self.size_tick
        elif quantity_type == 'price':
            tick = self.price_tick
        else:
            raise ValueError(
                f"quantity_type must be 'size' or 'price', got {quantity_type!r}"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f'cannot quantize non-finite {quantity_type} {value!r}')
        return float(quantize_to_tick(value, tick, rounding))
