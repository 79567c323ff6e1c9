"""The risk gate's limits: which value of a limit applies to an order.

Pure functions of the `[ems.risk]` config and one order: the scopes of a
size/notional/count limit (the order's market and its account, each with
its override or the default), the market's own price band, and the price
and size checks that need nothing but the order (see `_risk` for the
rules). `fmt` writes the numbers of every refusal.
"""
from __future__ import annotations

import math

from ..config import RiskConf
from ..types import Struct
from ._messages import Order

__all__ = ['Limits', 'Refusal', 'fmt']

# sizes are floats: a limit equal to the order is not exceeded by rounding
REL_TOL = 1e-9
ABS_TOL = 1e-12


class Refusal(Struct, frozen=True):
    """Why the gate refused an order: the `limit` (one of `LIMITS`) and a
    human-readable `reason` naming it."""

    limit: str
    reason: str

    def __str__(self) -> str:
        return self.reason


def fmt(value: float) -> str:
    """A number without float noise: 5, 0.01, 65000.1."""
    if not math.isfinite(value) or abs(value) >= 1e15:
        return repr(value)  # inf, 1e+308: not 309 digits
    text = f'{value:.10f}'.rstrip('0').rstrip('.')
    return '0' if text in ('-0', '') else text


def exceeds(value: float, limit: float) -> bool:
    return value > limit * (1 + REL_TOL) + ABS_TOL


def flat(size: float) -> bool:
    return abs(size) <= ABS_TOL


# markets x accounts x limits whose scopes `Limits` keeps at most
_MAX_SCOPES = 4096


class Limits:
    """The limits of one `RiskConf`, as they apply to one order."""

    def __init__(self, conf: RiskConf) -> None:
        self.conf = conf
        # (limit, broker, account, fqme) -> its scopes: the conf is read
        # once per market and account, not at every order (bounded)
        self._scopes: dict[tuple[str, str, str, str], list[tuple[str, str, float]]] = {}

    def scopes(self, name: str, order: Order) -> list[tuple[str, str, float]]:
        """The `(scope, label, value)` of limit `name` to check for `order`;
        scope is 'fqme' or 'account' (where a count is taken) or 'default'."""
        key = (name, order.broker, order.account, order.symbol)
        found = self._scopes.get(key)
        if found is None:
            if len(self._scopes) >= _MAX_SCOPES:
                self._scopes.clear()
            found = self._scopes[key] = self._find_scopes(name, order)
        return found

    def _find_scopes(self, name: str, order: Order) -> list[tuple[str, str, float]]:
        conf = self.conf
        default = getattr(conf, name)
        acct_name = f'{order.broker}.{order.account}'
        acct_val = next((
            v for t in (conf.accounts.get(acct_name), conf.accounts.get(order.account))
            if t is not None and (v := getattr(t, name)) is not None
        ), None)
        fq = conf.fqmes.get(order.symbol)
        fq_val = getattr(fq, name) if fq is not None else None
        fq_label, acct_label = f'{name} for {order.symbol}', f'{name} for account {acct_name}'
        out: list[tuple[str, str, float]] = []
        if fq_val is not None:
            out.append(('fqme', fq_label, fq_val))
        if acct_val is not None:
            out.append(('account', acct_label, acct_val))
        if default is not None and name == 'max_open_orders':
            # a count differs per scope: the default applies in each one
            if fq_val is None:
                out.append(('fqme', f'{fq_label} (default)', default))
            if acct_val is None:
                out.append(('account', f'{acct_label} (default)', default))
        elif default is not None and (fq_val is None or acct_val is None):
            out.append(('default', f'{name} (default)', default))
        return [item for item in out if math.isfinite(item[2])]

    def check_price(self, order: Order, what: str, mark: float | None) -> Refusal | None:
        """Sanity, whatever the limits: a finite notional, and a price
        within the band around the market (dark orders and alerts: the
        wider dark band) when the market's price is known."""
        notional = order.price * order.size
        if not math.isfinite(notional):
            return Refusal(limit='max_notional', reason=(
                f'{what} notional {fmt(order.price)} * {fmt(order.size)} is not a '
                'finite number'
            ))
        if mark is None or not math.isfinite(mark) or mark <= 0:
            return None
        dark = order.exec_mode == 'dark' or order.action == 'alert'
        name = 'dark_price_band' if dark else 'price_band'
        label, band = self.band(name, order)
        away = abs(order.price / mark - 1.0)
        if math.isfinite(band) and exceeds(away, band):
            low, high = max(mark * (1.0 - band), 0.0), mark * (1.0 + band)
            return Refusal(limit=name, reason=(
                f'{label} is {fmt(band)}: {what} price {fmt(order.price)} is '
                f'{fmt(round(away * 100, 1))}% away from the market '
                f'{fmt(mark)} (allowed {fmt(low)} to {fmt(high)})'
            ))
        return None

    def band(self, name: str, order: Order) -> tuple[str, float]:
        """A price band is the market's own: the most specific setting
        wins (the fqme's, then the account's, then the default), so one
        volatile market can have a wider band than the rest."""
        conf = self.conf
        acct_name = f'{order.broker}.{order.account}'
        for label, scope in (
            (f'{name} for {order.symbol}', conf.fqmes.get(order.symbol)),
            (f'{name} for account {acct_name}', conf.accounts.get(acct_name)),
            (f'{name} for account {acct_name}', conf.accounts.get(order.account)),
        ):
            value = getattr(scope, name) if scope is not None else None
            if value is not None:
                return label, value
        default = getattr(conf, name)
        return f'{name} (default)', default if default is not None else math.inf

    def check_limits(self, order: Order, what: str) -> Refusal | None:
        for name, value, noun in (
            ('max_order_size', order.size, 'size'),
            ('max_notional', order.price * order.size, 'notional'),
        ):
            for _, label, limit in self.scopes(name, order):
                if exceeds(value, limit):
                    return Refusal(limit=name, reason=(
                        f'{label} is {fmt(limit)}, {what} {noun} {fmt(value)}'
                    ))
        return None
