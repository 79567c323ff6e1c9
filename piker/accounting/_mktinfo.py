"""Market identity: assets, tradable pairs and fqme parsing.

A `MktPair` is everything an order, a position or a chart needs to know
about a market that does not change while trading: what is bought (`dst`)
with what (`src`), where (`venue`, `broker`), when it expires, and the
price/size grids orders must sit on. It travels over IPC, so it is a plain
msgspec struct that round-trips through `to_builtins()` -> `convert()`.

An *fqme* (fully qualified market endpoint, DESIGN.md section 4) is the
lower-case dotted name clients use everywhere:
`<pair>[.<venue>][.<suffix>].<broker>`, e.g. `btcusdt.sim` or
`mnq.cme.20261218.ib`. A backend only ever sees the broker-native key: the
fqme with its `.<broker>` suffix stripped (`strip_broker()`).
"""
from __future__ import annotations

import functools
import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

import msgspec

from ..types import Struct

_FQME_HELP = (
    'expected <pair>[.<venue>][.<suffix>].<broker>, '
    "e.g. 'btcusdt.sim', 'mnq.cme.ib' or 'mnq.cme.20261218.ib'"
)


def _check_token(value: str, what: str, *, required: bool) -> None:
    """Reject fqme tokens that would not survive a dotted round-trip."""
    if not isinstance(value, str):
        raise ValueError(f'{what} must be a string, got {value!r}')
    if not value:
        if required:
            raise ValueError(f'{what} must not be empty')
        return
    if '.' in value or any(c.isspace() for c in value):
        raise ValueError(
            f'{what} {value!r} must not contain dots or whitespace'
        )


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


def unpack_fqme(fqme: str) -> tuple[str, str, str, str]:
    """Split an fqme into `(broker, pair, venue, suffix)`, lower-cased.

    `btcusdt.sim` -> `('sim', 'btcusdt', '', '')`,
    `mnq.cme.ib` -> `('ib', 'mnq', 'cme', '')`,
    `mnq.cme.20261218.ib` -> `('ib', 'mnq', 'cme', '20261218')`.
    Anything else raises `ValueError` saying what a valid fqme looks like.
    """
    if not isinstance(fqme, str):
        raise ValueError(f'fqme must be a string, got {fqme!r}; {_FQME_HELP}')
    return _unpack_fqme(fqme)


@functools.lru_cache(maxsize=4096)
def _unpack_fqme(fqme: str) -> tuple[str, str, str, str]:
    # cached: the order path splits the same few fqmes many times per
    # order (errors raise, so they are never cached)
    if not fqme:
        raise ValueError(f'empty fqme; {_FQME_HELP}')
    if any(c.isspace() for c in fqme):
        raise ValueError(f'fqme {fqme!r} contains whitespace; {_FQME_HELP}')
    tokens = fqme.lower().split('.')
    if len(tokens) < 2:
        raise ValueError(
            f'fqme {fqme!r} has no broker suffix; {_FQME_HELP}'
        )
    if len(tokens) > 4:
        raise ValueError(
            f'fqme {fqme!r} has {len(tokens)} parts (at most 4); {_FQME_HELP}'
        )
    if not all(tokens):
        raise ValueError(f'fqme {fqme!r} has an empty part; {_FQME_HELP}')
    pair, *middle, broker = tokens
    venue, suffix = (middle + ['', ''])[:2]
    return broker, pair, venue, suffix


def mk_fqme(broker: str, pair: str, venue: str = '', suffix: str = '') -> str:
    """Build an fqme from its parts (the inverse of `unpack_fqme()`).

    A `suffix` needs a `venue`: `pair.suffix.broker` would read back as a
    venue.
    """
    _check_token(broker, 'broker', required=True)
    _check_token(pair, 'pair', required=True)
    _check_token(venue, 'venue', required=False)
    _check_token(suffix, 'suffix', required=False)
    if suffix and not venue:
        raise ValueError(
            f'suffix {suffix!r} needs a venue: {pair}.{suffix}.{broker} '
            'would parse as venue'
        )
    return '.'.join(t for t in (pair, venue, suffix, broker) if t).lower()


def strip_broker(fqme: str, broker: str | None = None) -> str:
    """Return the broker-native key: `fqme` without its `.<broker>` suffix.

    Strips the last token only (never `str.replace`, which would also eat
    a pair or venue that happens to contain the broker name). If `broker`
    is given the fqme must belong to it.
    """
    fbroker, *_ = unpack_fqme(fqme)
    if broker is not None and fbroker != broker.lower():
        raise ValueError(
            f'fqme {fqme!r} belongs to broker {fbroker!r}, not {broker!r}'
        )
    return fqme.lower()[: -(len(fbroker) + 1)]


class Asset(Struct, frozen=True, kw_only=True):
    """One side of a market: a coin, a currency, a stock, a contract.

    `atype` is a free-form kind (`crypto`, `fiat`, `stock`, `future`, ...);
    `tx_tick` is the smallest transferable amount of the asset.
    """

    name: str
    atype: str
    tx_tick: Decimal

    def __post_init__(self) -> None:
        _check_token(self.name, 'asset name', required=True)
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
