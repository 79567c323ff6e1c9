"""`piker order buy|sell` options for order types, time in force, reduce-only.

How PRICE reads with each type (the `--help` and README say the same):

    buy FQME SIZE PRICE                       limit at PRICE (as always)
    sell FQME SIZE 95 --type stop             stop: sells at the market once 95 trades
    sell FQME SIZE --type stop --trigger 95   the same
    sell FQME SIZE 94.5 --trigger 95          stop_limit: once 95 trades, a limit at 94.5
    sell FQME SIZE 105 --type take_profit     limit-if-touched: once 105 trades, a limit there
    sell FQME SIZE --trail 0.5%               trailing stop 0.5 % under the best price
    sell FQME SIZE --trail 5 --trigger 98     trailing 5 price ticks, starting at 98

So: `--trigger` is always the trigger; PRICE is the limit when there is
one (limit, stop_limit) and otherwise the trigger. `--trigger` without a
`--type` means stop_limit if PRICE is given, else stop; `--trail` alone
means trailing_stop (from the market, unless a trigger is given).
`--tif gtc|ioc|fok|gtd:<ISO time>` (gtd: UTC unless the time says
otherwise, e.g. `gtd:2026-12-31T00:00Z`); `--reduce-only`.

Pure: `order_fields()` raises `OptionError` with the message to show.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ['TYPES', 'OptionError', 'order_fields', 'parse_tif', 'parse_trail']

TYPES = ('limit', 'stop', 'stop_limit', 'take_profit', 'trailing_stop')
TYPE_HELP = (
    'order type: limit (default), stop (at the market once --trigger/PRICE '
    'trades), stop_limit (a limit at PRICE once --trigger trades), take_profit '
    '(a limit at its trigger once it trades), trailing_stop (see --trail)'
)
TRIGGER_HELP = (
    'trigger price; PRICE is then the limit (stop_limit). Without --type: '
    'stop_limit with PRICE, stop without'
)
TRAIL_HELP = (
    "trailing stop distance: '0.5%' (of the best price) or '5' (price ticks); "
    'alone it means --type trailing_stop from the market'
)
TIF_HELP = (
    'time in force: gtc (default), ioc, fok (as the venue honours them), '
    'gtd:<ISO time, UTC if no zone> e.g. gtd:2026-12-31T00:00Z (emsd expires it)'
)
REDUCE_HELP = 'never increase the position: sized down to it, or refused'


class OptionError(ValueError):
    """A bad option or combination; the message says which and why."""


def parse_trail(text: str) -> dict[str, Any]:
    """'0.5%' -> 0.5 percent, '5' -> 5 price ticks (`Trail` fields)."""
    raw = text.strip()
    pct = raw.endswith('%')
    try:
        amount = float(raw.rstrip('%').strip())
    except ValueError:
        raise OptionError(
            f"--trail must be a number of ticks ('5') or a percent ('0.5%'), got {text!r}"
        ) from None
    if not amount > 0 or amount == float('inf'):
        raise OptionError(f'--trail must be > 0, got {text!r}')
    if pct and amount >= 100:
        raise OptionError(f'--trail in percent must be below 100%, got {text!r}')
    return {'amount': amount, 'unit': 'pct' if pct else 'ticks'}


def parse_tif(text: str, now: datetime | None = None) -> tuple[str, int | None]:
    """`(tif, expires_ns)` of a `--tif` value."""
    raw = text.strip().lower()
    if raw in ('gtc', 'ioc', 'fok'):
        return raw, None
    if not raw.startswith('gtd:'):
        raise OptionError(
            f"--tif must be gtc, ioc, fok or gtd:<time> (e.g. gtd:2026-12-31T00:00Z), "
            f'got {text!r}'
        )
    when = text.strip()[4:].strip()
    try:
        dt = datetime.fromisoformat(when.replace('z', 'Z').replace('Z', '+00:00'))
    except ValueError:
        raise OptionError(
            f'--tif gtd: {when!r} is not an ISO time (e.g. 2026-12-31T00:00Z)'
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    if dt <= (now or datetime.now(UTC)):
        raise OptionError(f'--tif gtd: {dt.isoformat()} is in the past')
    return 'gtd', int(dt.timestamp() * 1e9)


def order_fields(
    action: str,
    price: float | None,
    *,
    kind: str | None = None,
    trigger: float | None = None,
    trail: str | None = None,
    tif: str | None = None,
    reduce_only: bool = False,
) -> tuple[float, dict[str, Any]]:
    """`(Order.price, other Order fields)` of the CLI's PRICE and options."""
    if kind is not None and kind not in TYPES:
        raise OptionError(f'--type must be one of {", ".join(TYPES)}, got {kind!r}')
    if kind is None:
        if trail is not None:
            kind = 'trailing_stop'
        elif trigger is not None:
            kind = 'stop_limit' if price is not None else 'stop'
        else:
            kind = 'limit'
    if action == 'alert' and (kind != 'limit' or tif or reduce_only):
        raise OptionError('an alert takes no --type, --trigger, --trail, --tif or --reduce-only')
    if trail is not None and kind != 'trailing_stop':
        raise OptionError(f'--trail is for a trailing_stop, not a {kind}')
    fields: dict[str, Any] = {'type': kind}
    if kind == 'limit':
        if trigger is not None:
            raise OptionError(
                'a limit order has no trigger: --type stop_limit (PRICE is its limit) '
                'or --type stop'
            )
        if price is None:
            raise OptionError('a limit order needs PRICE')
        out = price
    elif kind == 'stop_limit':
        if trigger is None or price is None:
            raise OptionError('a stop_limit needs --trigger (the trigger) and PRICE (the limit)')
        out, fields['limit'] = trigger, price
    elif kind == 'trailing_stop':
        if trail is None:
            raise OptionError("a trailing_stop needs --trail ('0.5%' or ticks, e.g. '5')")
        if price is not None and trigger is not None:
            raise OptionError('a trailing_stop starts at --trigger or PRICE, not both')
        out = trigger if trigger is not None else (price if price is not None else 0.0)
        fields['trail'] = parse_trail(trail)
    else:  # stop, take_profit: released at the market / at the trigger
        if price is not None and trigger is not None:
            raise OptionError(
                f'a {kind} has one price, its trigger: PRICE or --trigger, not both '
                '(a limit after the trigger is --type stop_limit)'
            )
        out = trigger if trigger is not None else price
        if out is None:
            raise OptionError(f'a {kind} needs its trigger: PRICE or --trigger')
    if tif is not None:
        fields['tif'], expires = parse_tif(tif)
        if expires is not None:
            fields['expires_ns'] = expires
    if reduce_only:
        fields['reduce_only'] = True
    return out, fields
