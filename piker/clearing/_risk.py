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

What the gate knows it learns from emsd: `observe()` every `Status` emsd
publishes (working orders, their remaining size and fills) and every
`BrokerdPosition` a venue reports. An accepted order is counted at once
(`check()` reserves it), so concurrent sessions cannot both slip under a
count. Position = the venue's last report plus the fills seen since; a
venue is assumed to report a fill before the position that includes it
(the paper engine does); if one does it the other way round the two views
disagree until its next report, and `reduce_only` refuses every order of
that market meanwhile - failing closed.

Everything here is pure: no IO, injected clock.
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
from ._messages import TERMINAL_RESPS, BrokerdPosition, Order, Status

__all__ = [
    'LIMITS',
    'Refusal',
    'RiskGate',
    'RiskReport',
    'TokenBucket',
    'TradingState',
    'quote_mark',
]

# sizes are floats: a limit equal to the order is not exceeded by rounding
_REL_TOL = 1e-9
_ABS_TOL = 1e-12

# the names a `Refusal.limit` can take
LIMITS = (
    'halted', 'reduce_only', 'max_order_size', 'max_notional',
    'max_open_orders', 'max_orders_per_sec', 'price_band', 'dark_price_band',
)


class TradingState(StrEnum):
    ACTIVE = 'active'
    REDUCE_ONLY = 'reduce_only'
    HALTED = 'halted'


class Refusal(Struct, frozen=True):
    """Why the gate refused an order: the `limit` (one of `LIMITS`) and a
    human-readable `reason` naming it."""

    limit: str
    reason: str

    def __str__(self) -> str:
        return self.reason


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


def fmt(value: float) -> str:
    """A number without float noise: 5, 0.01, 65000.1."""
    if not math.isfinite(value) or abs(value) >= 1e15:
        return repr(value)  # inf, 1e+308: not 309 digits
    text = f'{value:.10f}'.rstrip('0').rstrip('.')
    return '0' if text in ('-0', '') else text


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


class _Working:
    """What the gate keeps of one working (non-terminal) buy/sell dialog."""

    __slots__ = ('oid', 'broker', 'account', 'fqme', 'action', 'size', 'price',
                 'exec_mode', 'filled', 'remaining', 'counted', 'child')

    def __init__(self, order: Order, filled: float, remaining: float) -> None:
        self.oid = order.oid
        # toward max_open_orders (fixed when first seen: a modify cannot
        # change parent, and the count must come off as it went on)
        self.counted = _exposes(order)
        # a bracket child: its group book, not this gate, bounds it and
        # its siblings together (they never close more than the entry)
        self.child = order.parent is not None
        self.broker = order.broker
        self.account = order.account
        self.fqme = order.symbol
        self.filled = filled
        self.remaining = remaining
        self.set_order(order)

    def set_order(self, order: Order) -> None:
        self.action = order.action
        self.size = order.size
        self.price = order.price
        self.exec_mode = order.exec_mode

    @property
    def acct(self) -> tuple[str, str]:
        return self.broker, self.account

    @property
    def pos_key(self) -> tuple[str, str, str]:
        return self.broker, self.account, self.fqme


def _exposes(order: Order) -> bool:
    """Whether `order` may add exposure (see the module doc)."""
    return not order.reduce_only and order.parent is None


def _exceeds(value: float, limit: float) -> bool:
    return value > limit * (1 + _REL_TOL) + _ABS_TOL


def _flat(size: float) -> bool:
    return abs(size) <= _ABS_TOL


class RiskGate:
    """Checks orders against the limits and the trading state; see module doc.

    emsd calls `check()` for each new order / modify (`existing` = the
    dialog's current order for a modify), `check_trigger()` before a dark
    order goes live, and `observe()` with every Status and position.
    """

    # buckets of idle sessions are dropped once there are this many
    _PRUNE_AT = 256

    def __init__(
        self,
        conf: RiskConf | None = None,
        *,
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
        # working buy/sell dialogs and their counts per scope
        self._working: dict[str, _Working] = {}
        self._by_acct: Counter[tuple[str, str]] = Counter()
        self._by_fqme: Counter[str] = Counter()
        self._at: dict[tuple[str, str, str], set[str]] = {}
        # (broker, account, fqme) -> last reported size / fills since then
        self._reported: dict[tuple[str, str, str], float] = {}
        self._unreported: dict[tuple[str, str, str], float] = {}
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
        """None if `order` may go ahead (and it is then counted), else why not.

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
            refusal = self._check_price(order, what, mark)
            if refusal is not None:
                self.refused[refusal.limit] += 1
            return refusal
        # a reduce-only order (emsd sizes it to the position) or a bracket
        # child (armed only for its entry's fills) adds no exposure
        exposure = _exposes(order)
        refusal = (
            self._check_price(order, what, mark)
            or (self._check_limits(order, what) if exposure else None)
            or (self._check_reducing(order, existing)
                if self._state is TradingState.REDUCE_ONLY and order.parent is None
                else None)
            or (self._check_open(order) if existing is None and exposure else None)
            or self._check_rate(session, what)
        )
        if refusal is not None:
            self.refused[refusal.limit] += 1
            return refusal
        self._reserve(order)
        return None

    def check_trigger(self, oid: str) -> Refusal | None:
        """May the resting dark order `oid` go live now that it triggered?"""
        work = self._working.get(oid)
        if work is None:  # an alert, or nothing the gate tracks
            return None
        if self._state is TradingState.HALTED:
            return self._refuse('halted', (
                f'trading is halted{self._why()}: the triggered dark order '
                'was cancelled, not sent'
            ))
        if self._state is TradingState.REDUCE_ONLY:
            refusal = self._reducing(
                work.broker, work.account, work.fqme, work.action,  # type: ignore[arg-type]
                work.remaining, oid,
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
        refusal = self.check_trigger(order.oid)
        if refusal is not None:
            return refusal
        what = 'triggered order'
        refusal = self._check_price(order, what, mark) or (
            None if order.reduce_only else self._check_limits(order, what)
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

    def _scopes(self, name: str, order: Order) -> list[tuple[str, str, float]]:
        """The `(scope, label, value)` of limit `name` to check for `order`;
        scope is 'fqme' or 'account' (where a count is taken) or 'default'."""
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

    def _check_price(self, order: Order, what: str, mark: float | None) -> Refusal | None:
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
        label, band = self._band(name, order)
        away = abs(order.price / mark - 1.0)
        if math.isfinite(band) and _exceeds(away, band):
            low, high = max(mark * (1.0 - band), 0.0), mark * (1.0 + band)
            return Refusal(limit=name, reason=(
                f'{label} is {fmt(band)}: {what} price {fmt(order.price)} is '
                f'{fmt(round(away * 100, 1))}% away from the market '
                f'{fmt(mark)} (allowed {fmt(low)} to {fmt(high)})'
            ))
        return None

    def _band(self, name: str, order: Order) -> tuple[str, float]:
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

    def _check_limits(self, order: Order, what: str) -> Refusal | None:
        for name, value, noun in (
            ('max_order_size', order.size, 'size'),
            ('max_notional', order.price * order.size, 'notional'),
        ):
            for _, label, limit in self._scopes(name, order):
                if _exceeds(value, limit):
                    return Refusal(limit=name, reason=(
                        f'{label} is {fmt(limit)}, {what} {noun} {fmt(value)}'
                    ))
        return None

    def _check_open(self, order: Order) -> Refusal | None:
        for scope, label, limit in self._scopes('max_open_orders', order):
            if scope == 'account':
                count = self._by_acct[(order.broker, order.account)]
            else:
                count = self._by_fqme[order.symbol]
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
        key = (broker, account, fqme)
        reported = self._reported.get(key, 0.0)
        return reported, reported + self._unreported.get(key, 0.0)

    def _check_reducing(self, order: Order, existing: Order | None) -> Refusal | None:
        if (
            existing is not None and order.size <= existing.size
            and order.price == existing.price and order.exec_mode == existing.exec_mode
        ):
            return None  # shrinking an order never adds risk
        return self._reducing(
            order.broker, order.account, order.symbol, order.action,
            order.size, order.oid,
        )

    def _reducing(
        self, broker: str, account: str, fqme: str, action: str, size: float, oid: str,
    ) -> Refusal | None:
        reported, estimate = self.position(broker, account, fqme)
        sign = 1.0 if action == 'buy' else -1.0
        where = f'{fqme} [{broker}.{account}]'
        shown = fmt(estimate)
        if not math.isclose(reported, estimate, rel_tol=_REL_TOL, abs_tol=_ABS_TOL):
            shown += f', last reported {fmt(reported)}'
        if _flat(reported) and _flat(estimate):
            return Refusal(limit='reduce_only', reason=(
                f'reduce_only: no position in {where} to reduce'
            ))
        # both views must agree that the order goes against the position
        if _flat(reported) or _flat(estimate) or reported * sign > 0 or estimate * sign > 0:
            return Refusal(limit='reduce_only', reason=(
                f'reduce_only: a {action} would not reduce the position in '
                f'{where} ({shown})'
            ))
        resting = sum(
            self._working[o].remaining for o in self._at.get((broker, account, fqme), ())
            if o != oid and self._working[o].action == action and not self._working[o].child
        )
        room = min(abs(reported), abs(estimate)) - resting
        if _exceeds(size, room):
            return Refusal(limit='reduce_only', reason=(
                f'reduce_only: {action} {fmt(size)} exceeds what is left to reduce '
                f'in {where}: {fmt(max(room, 0.0))} (position {shown}; working '
                f'{action}s {fmt(resting)})'
            ))
        return None

    # ---- bookkeeping ---------------------------------------------------------

    def _reserve(self, order: Order) -> None:
        work = self._working.get(order.oid)
        if work is None:
            self._add(_Working(order, 0.0, order.size))
        else:
            work.set_order(order)
            work.remaining = max(order.size - work.filled, 0.0)

    def _add(self, work: _Working) -> None:
        self._working[work.oid] = work
        if work.counted:
            self._by_acct[work.acct] += 1
            self._by_fqme[work.fqme] += 1
        self._at.setdefault(work.pos_key, set()).add(work.oid)

    def _remove(self, oid: str) -> None:
        work = self._working.pop(oid, None)
        if work is None:
            return
        counts = ((self._by_acct, work.acct), (self._by_fqme, work.fqme))
        for counter, key in counts if work.counted else ():
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
        oids = self._at.get(work.pos_key)
        if oids is not None:
            oids.discard(oid)
            if not oids:
                del self._at[work.pos_key]

    def _fill_delta(self, key: tuple[str, str, str], action: str, size: float) -> None:
        if size > 0:
            sign = 1.0 if action == 'buy' else -1.0
            self._unreported[key] = self._unreported.get(key, 0.0) + sign * size

    def observe(self, msg: Status | BrokerdPosition) -> None:
        """Learn from a Status emsd published or a position a venue reported."""
        if isinstance(msg, BrokerdPosition):
            key = (msg.broker, msg.account, msg.symbol)
            self._reported[key] = msg.size
            self._unreported.pop(key, None)
            return
        req = msg.req
        if req is None or req.action == 'alert':
            return
        work = self._working.get(msg.oid)
        if work is None:
            if msg.resp == 'fill':
                # a fill after the dialog ended: still moves the position
                fill = msg.brokerd_msg or {}
                size = fill.get('size')
                if isinstance(size, int | float):
                    key = (req.broker, req.account, req.symbol)
                    self._fill_delta(key, str(fill.get('action', req.action)), float(size))
            if msg.resp in TERMINAL_RESPS:
                return
            # first sight (e.g. a venue's external order): its fills so far
            # are in the venue's position report already
            work = _Working(req, msg.filled, msg.remaining or 0.0)
            self._add(work)
        else:
            if msg.filled > work.filled:
                self._fill_delta(work.pos_key, work.action, msg.filled - work.filled)
                work.filled = msg.filled
        if msg.resp in TERMINAL_RESPS:
            self._remove(msg.oid)
            return
        work.set_order(req)
        work.remaining = msg.remaining if msg.remaining is not None else work.remaining

    def sync(self, statuses: Iterable[Status]) -> None:
        """Rebuild the working-order index from a snapshot of every active
        dialog (e.g. after emsd restored them from its journal)."""
        for oid in list(self._working):
            self._remove(oid)
        for st in statuses:
            self.observe(st)

    # ---- reporting -------------------------------------------------------------

    def working(self) -> int:
        """How many buy/sell orders are working."""
        return len(self._working)

    def report(self) -> RiskReport:
        positions: dict[str, float] = {}
        for key in set(self._reported) | set(self._unreported):
            broker, account, fqme = key
            positions[f'{broker}.{account}:{fqme}'] = self.position(*key)[1]
        return RiskReport(
            state=self._state.value,
            since=self.since,
            reason=self.reason,
            limits=self.conf.model_dump(),
            open_by_account={f'{b}.{a}': n for (b, a), n in sorted(self._by_acct.items())},
            open_by_fqme=dict(sorted(self._by_fqme.items())),
            positions=dict(sorted(positions.items())),
            refused=dict(self.refused),
        )
