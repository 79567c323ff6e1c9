"""Pre-trade risk checks and the trading state: emsd's kill switch.

emsd runs every new order and every modify through one `RiskGate` before
its dialog table sees it. A refusal is a `Refusal` whose `reason` names the
limit, its value and scope and what the order asked for, e.g.
`max_order_size for btcusdt.sim is 5, order size 7`; emsd answers it with
`Status(resp='error')` (a refused modify leaves the order working as it
was). Cancels are never checked: getting out must always work.

Trading state (`TradingState`):

- `active`: the limits below apply.
- `reduce_only`: on top of the limits, a buy/sell must shrink the position
  of its (broker, account, fqme). The rule: the side must be opposite to
  the position, and `size <= |position| - sum(remaining of the other
  working orders on the same side)` - so all reducing orders together can
  at most flatten it, never flip it (bracket children are left out of that
  sum: their group book bounds them together). A modify passes if the new version
  passes that rule, or if it only lowers the size (same price and exec
  mode). A resting dark order that triggers must pass the rule too (the
  position may have changed since it was placed); emsd cancels it if not.
- `halted`: every new order and modify is refused, alerts included; a
  resting dark order that triggers is cancelled instead of sent. Resting
  alerts still fire (they trade nothing).

Limits (`piker.config.RiskConf`, `[ems.risk]` in `conf.toml`, all off by
default): `max_order_size` (units), `max_notional` (price * size, the
order's own price: a dark order's trigger level) and `max_open_orders`
(working dark + live orders; a new order is refused when that many are
working, modifies are not counted). An order that only closes - reduce-only,
or a bracket child (`Order.parent`) - adds no exposure: the limits and
the open-order count neither check nor count it (its price is checked; a
bracket child is sized and checked at release). Each is checked in two scopes, the
order's account `(broker, account)` and its market (fqme); in each scope
the value is the scope's override (`[ems.risk.accounts."<broker>.<account>"]`,
then `[ems.risk.accounts.<account>]`; `[ems.risk.fqmes."<fqme>"]`), field
by field, else the `[ems.risk]` default. A float limit of `inf` lifts a
default for one scope.

Price sanity (on by default, unlike the limits): an order's notional must
be a finite number, and its price lie within `price_band` (a fraction,
default 0.5: within 50%) of the market's price now - `dark_price_band`
(default 9: up to 10 times it) for a dark order's trigger level or an
alert, which may sensibly wait further away. A band is a property of
the market: the most specific setting wins (fqme, then account, then
default), so one market may have a wider band; `inf` turns one off.
emsd passes the market's price as `mark` (`quote_mark`: the middle of
the touch, else the last trade); with none known (no market data) only
the notional is checked, and the venue has the last word (the paper
venue checks its own band).
Alerts are checked too: a level of 1e308 is a typo, not an alert.

Order rate: one token bucket per client session (not global, so one
runaway script cannot lock the chart, or a trader's cancel-and-replace,
out): `max_orders_per_sec` tokens per second, `order_burst` at most. New
orders and modifies take a token, only once every other check passed (a
refused order sends nothing to a venue).

Alerts trade nothing, so they are exempt from every limit, the throttle,
`reduce_only` and the open-order counts; only `halted` and the price
sanity checks refuse them.

What the gate knows of orders it reads from emsd's dialog table (one
owner per fact, see `_risk_book`): the working orders, their remaining
size. An accepted order is counted at once, since emsd puts it in the
table right after `check()`, with no checkpoint between, so concurrent
sessions cannot both slip under a count. Positions it learns from emsd:
`observe()` every `Status` emsd publishes (fills) and every
`BrokerdPosition` a venue reports. Position = the venue's last report plus
the fills seen since; a venue is assumed to report a fill before the
position that includes it (the paper engine does); if one does it the
other way round the two views disagree until its next report, and
`reduce_only` refuses every order of that market meanwhile - failing
closed.

Everything here is pure: no IO, injected clock. The limits and their
scopes are `_risk_limits`.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from enum import StrEnum
from typing import Any

from ..config import RiskConf
from ..types import Struct
from ._dialogs import DialogTable
from ._messages import BrokerdPosition, Order, Status
from ._risk_book import RiskBook, exposes
from ._risk_limits import ABS_TOL, REL_TOL, Limits, Refusal, exceeds, flat, fmt

__all__ = [
    'LIMITS',
    'Refusal',
    'RiskGate',
    'RiskReport',
    'TokenBucket',
    'TradingState',
    'fmt',
    'quote_mark',
]

# the names a `Refusal.limit` can take
LIMITS = (
    'halted', 'reduce_only', 'max_order_size', 'max_notional',
    'max_open_orders', 'max_orders_per_sec', 'price_band', 'dark_price_band',
)


class TradingState(StrEnum):
    ACTIVE = 'active'
    REDUCE_ONLY = 'reduce_only'
    HALTED = 'halted'


class RiskReport(Struct):
    """The gate's state for `piker ems status`."""

    state: str
    since: float          # epoch seconds of the last state change
    reason: str           # why it was switched ('' if nobody said)
    limits: dict[str, Any]
    open_by_account: dict[str, int]   # '<broker>.<account>' -> working orders
    open_by_fqme: dict[str, int]
    positions: dict[str, float]       # '<broker>.<account>:<fqme>' -> size
    refused: dict[str, int]           # limit -> refusals since start


def quote_mark(quote: dict[str, Any], prev: float = math.nan) -> float:
    """The market's price in `quote`, for the price band: the middle of
    its touch when it quotes both sides (its `last` trade may be long
    gone), else its last trade, else `prev`."""
    bid, ask = quote.get('bid'), quote.get('ask')
    if _positive(bid) and _positive(ask):
        return (bid + ask) / 2
    last = quote.get('last')
    return float(last) if _positive(last) else prev


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


class TokenBucket:
    """`rate` tokens per second, at most `capacity` banked."""

    __slots__ = ('rate', 'capacity', 'tokens', 'stamp')

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 if one was there, else seconds until one is."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        """Idle long enough to be indistinguishable from a new bucket."""
        self._refill(now)
        return self.tokens >= self.capacity


class RiskGate:
    """Checks orders against the limits and the trading state; see module doc.

    emsd calls `check()` for each new order / modify (`existing` = the
    dialog's current order for a modify), `check_trigger()` before a dark
    order goes live, and `observe()` with every Status and position. The
    working orders are those of `dialogs` (emsd's table; a gate of its own,
    empty table if none is given).
    """

    # buckets of idle sessions are dropped once there are this many
    _PRUNE_AT = 256

    def __init__(
        self,
        conf: RiskConf | None = None,
        *,
        dialogs: DialogTable | None = None,
        state: TradingState | str | None = None,
        reason: str = '',
        since: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conf = conf if conf is not None else RiskConf()
        self._state = TradingState(state if state is not None else self.conf.state)
        self.reason = reason
        self.since = time.time() if since is None else since
        self._clock = clock
        rate = self.conf.max_orders_per_sec
        self._rate = rate
        self._burst = self.conf.order_burst or max(1, math.ceil(rate))
        self._buckets: dict[Hashable, TokenBucket] = {}
        self.limits = Limits(self.conf)
        # the working orders (the table's) and the positions
        self.book = RiskBook(dialogs if dialogs is not None else DialogTable())
        self.refused: Counter[str] = Counter()

    # ---- the trading state -------------------------------------------------

    @property
    def state(self) -> TradingState:
        return self._state

    def set_state(self, state: TradingState | str, reason: str = '') -> TradingState:
        """Switch the trading state (effective for the next check); returns
        the previous one. `ValueError` names the valid states."""
        try:
            new = TradingState(state)
        except ValueError:
            valid = ', '.join(s.value for s in TradingState)
            raise ValueError(f'unknown trading state {state!r}: use one of {valid}') from None
        old, self._state = self._state, new
        self.reason = reason
        self.since = time.time()
        return old

    # ---- checks ------------------------------------------------------------

    def check(
        self,
        order: Order,
        *,
        existing: Order | None = None,
        session: Hashable = None,
        mark: float | None = None,
    ) -> Refusal | None:
        """None if `order` may go ahead, else why not (counted as working
        once the dialog table has it: apply it with no checkpoint between).

        `existing` is the working version when `order` is a modify;
        `session` identifies the client for the order-rate throttle;
        `mark` is the market's price now (None: unknown, the price band
        is then not checked).
        """
        what = 'modify' if existing is not None else 'order'
        if self._state is TradingState.HALTED:
            return self._refuse('halted', (
                f'trading is halted{self._why()}: no new orders or modifies '
                '(cancels work; `piker ems resume` to trade again)'
            ))
        if order.action == 'alert':
            refusal = self.limits.check_price(order, what, mark)
            if refusal is not None:
                self.refused[refusal.limit] += 1
            return refusal
        # a reduce-only order (emsd sizes it to the position) or a bracket
        # child (armed only for its entry's fills) adds no exposure
        exposure = exposes(order)
        refusal = (
            self.limits.check_price(order, what, mark)
            or (self.limits.check_limits(order, what) if exposure else None)
            or (self._check_reducing(order, existing)
                if self._state is TradingState.REDUCE_ONLY and order.parent is None
                else None)
            or (self._check_open(order) if existing is None and exposure else None)
            or self._check_rate(session, what)
        )
        if refusal is not None:
            self.refused[refusal.limit] += 1
            return refusal
        return None

    def check_trigger(self, oid: str, size: float | None = None) -> Refusal | None:
        """May the resting dark order `oid` go live now that it triggered,
        sending `size` (default: all that remains of it; a bracket's exit
        armed for part of its entry's fill sends only that share)?"""
        dialog = self.dialogs.get(oid)
        if dialog is None or dialog.terminal or dialog.req.action == 'alert':
            return None  # an alert, or nothing working
        if self._state is TradingState.HALTED:
            return self._refuse('halted', (
                f'trading is halted{self._why()}: the triggered dark order '
                'was cancelled, not sent'
            ))
        if self._state is TradingState.REDUCE_ONLY:
            req = dialog.req
            refusal = self._reducing(
                req.broker, req.account, req.symbol, req.action,
                dialog.remaining if size is None else size, oid, req.oco,
            )
            if refusal is not None:
                return self._refuse('reduce_only', refusal.reason + (
                    ': the triggered dark order was cancelled, not sent'
                ))
        return None

    def check_release(self, order: Order, mark: float | None = None) -> Refusal | None:
        """May a triggered order go live as `order` (its release price and
        size)? `check_trigger()`, then the price and limits of what is sent
        (a reduce-only order adds no exposure: only its price is checked)."""
        refusal = self.check_trigger(order.oid, order.size)
        if refusal is not None:
            return refusal
        what = 'triggered order'
        refusal = self.limits.check_price(order, what, mark) or (
            None if order.reduce_only else self.limits.check_limits(order, what)
        )
        if refusal is not None:
            self.refused[refusal.limit] += 1
            return refusal.copy({'reason': refusal.reason + ': cancelled, not sent'})
        return None

    def _refuse(self, limit: str, reason: str) -> Refusal:
        self.refused[limit] += 1
        return Refusal(limit=limit, reason=reason)

    def _why(self) -> str:
        return f' ({self.reason})' if self.reason else ''

    # ---- limits --------------------------------------------------------------

    def _check_open(self, order: Order) -> Refusal | None:
        for scope, label, limit in self.limits.scopes('max_open_orders', order):
            count = self.book.count(scope, order)
            if count >= limit:
                return Refusal(limit='max_open_orders', reason=(
                    f'{label} is {int(limit)}, {count} working already'
                ))
        return None

    def _check_rate(self, session: Hashable, what: str) -> Refusal | None:
        if self._rate <= 0:
            return None
        now = self._clock()
        bucket = self._buckets.get(session)
        if bucket is None:
            if len(self._buckets) >= self._PRUNE_AT:
                self._buckets = {
                    k: b for k, b in self._buckets.items() if not b.full(now)
                }
            bucket = self._buckets[session] = TokenBucket(self._rate, self._burst, now)
        wait = bucket.take(now)
        if wait:
            return Refusal(limit='max_orders_per_sec', reason=(
                f'max_orders_per_sec is {fmt(self._rate)} (burst {self._burst}) '
                f'per session: {what} refused, retry in {wait:.3f}s'
            ))
        return None

    # ---- reduce_only ---------------------------------------------------------

    def position(self, broker: str, account: str, fqme: str) -> tuple[float, float]:
        """`(reported, estimate)`: the venue's last position report and that
        plus the fills seen since."""
        return self.book.position(broker, account, fqme)

    def _check_reducing(self, order: Order, existing: Order | None) -> Refusal | None:
        if (
            existing is not None and order.size <= existing.size
            and order.price == existing.price and order.exec_mode == existing.exec_mode
        ):
            return None  # shrinking an order never adds risk
        return self._reducing(
            order.broker, order.account, order.symbol, order.action,
            order.size, order.oid, order.oco,
        )

    def _reducing(
        self, broker: str, account: str, fqme: str, action: str, size: float, oid: str,
        oco: str | None,
    ) -> Refusal | None:
        reported, estimate = self.position(broker, account, fqme)
        sign = 1.0 if action == 'buy' else -1.0
        where = f'{fqme} [{broker}.{account}]'
        shown = fmt(estimate)
        if not math.isclose(reported, estimate, rel_tol=REL_TOL, abs_tol=ABS_TOL):
            shown += f', last reported {fmt(reported)}'
        if flat(reported) and flat(estimate):
            return Refusal(limit='reduce_only', reason=(
                f'reduce_only: no position in {where} to reduce'
            ))
        # both views must agree that the order goes against the position
        if flat(reported) or flat(estimate) or reported * sign > 0 or estimate * sign > 0:
            return Refusal(limit='reduce_only', reason=(
                f'reduce_only: a {action} would not reduce the position in '
                f'{where} ({shown})'
            ))
        resting = self.book.resting((broker, account, fqme), action, but=oid, oco=oco)
        room = min(abs(reported), abs(estimate)) - resting
        if exceeds(size, room):
            return Refusal(limit='reduce_only', reason=(
                f'reduce_only: {action} {fmt(size)} exceeds what is left to reduce '
                f'in {where}: {fmt(max(room, 0.0))} (position {shown}; working '
                f'{action}s {fmt(resting)})'
            ))
        return None

    # ---- what it learns -------------------------------------------------------

    @property
    def dialogs(self) -> DialogTable:
        """The dialog table whose working orders the gate counts."""
        return self.book.dialogs

    def observe(self, msg: Status | BrokerdPosition) -> None:
        """Learn from a Status emsd published or a position a venue reported."""
        self.book.observe(msg)

    def sync(self, statuses: Iterable[Status]) -> None:
        """Take the dialogs of a snapshot of every active dialog (e.g. after
        emsd restored them from its journal) as they are."""
        self.book.sync(statuses)

    # ---- reporting -------------------------------------------------------------

    def working(self) -> int:
        """How many buy/sell orders are working."""
        return len(self.book.working())

    def report(self) -> RiskReport:
        positions = {f'{b}.{a}:{fqme}': size for (b, a, fqme), size in self.book.positions().items()}
        by_acct, by_fqme = self.book.counts()
        return RiskReport(
            state=self._state.value,
            since=self.since,
            reason=self.reason,
            limits=self.conf.model_dump(),
            open_by_account={f'{b}.{a}': n for (b, a), n in sorted(by_acct.items())},
            open_by_fqme=dict(sorted(by_fqme.items())),
            positions=dict(sorted(positions.items())),
            refused=dict(self.refused),
        )
