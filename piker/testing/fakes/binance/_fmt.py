"""Numbers as Binance writes them: decimal strings with 8 places."""
from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, InvalidOperation

from ._errors import BinanceError

ZERO = Decimal(0)
_PLACES = Decimal('0.00000001')


def d8(x: Decimal | float | int | str) -> str:
    """`Decimal('64000.01')` -> `'64000.01000000'` (Binance's 8 places)."""
    if not isinstance(x, Decimal):
        x = Decimal(str(x))
    return f'{x.quantize(_PLACES):f}'


def dec(x: float, digits: int) -> Decimal:
    """A float on a decimal grid as the exact Decimal of that grid point."""
    return Decimal(repr(round(x, digits))).quantize(Decimal(1).scaleb(-digits))


def digits(step: Decimal) -> int:
    return max(0, -step.normalize().as_tuple().exponent)


def floor_to(x: Decimal, step: Decimal) -> Decimal:
    return (x / step).to_integral_value(ROUND_DOWN) * step


def parse_decimal(name: str, raw: str | None, required: bool = True) -> Decimal | None:
    """A request's decimal parameter, or Binance's error for a bad one."""
    from ._errors import mandatory
    if raw is None or raw == '':
        if required:
            raise mandatory(name)
        return None
    try:
        val = Decimal(raw)
    except InvalidOperation:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; "
                                  r"legal range is '^([0-9]{1,20})(\.[0-9]{1,20})?$'.") from None
    if not val.is_finite() or val < 0:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; "
                                  r"legal range is '^([0-9]{1,20})(\.[0-9]{1,20})?$'.")
    return val


def parse_int(name: str, raw: str | None, required: bool = True) -> int | None:
    from ._errors import bad_param, mandatory
    if raw is None or raw == '':
        if required:
            raise mandatory(name)
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise bad_param(name)
    return int(raw)
