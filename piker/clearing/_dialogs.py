"""Order dialogs: the per-oid state machine at the heart of emsd.

An order *dialog* is everything that happens to one client order (one
`oid`): submission, modifies, cancels, the venue's ack, statuses and
fills. Venues are asynchronous and sometimes disorderly - a status can
overtake its ack, a fill can be repeated, a fill can land after a cancel
was sent - so the rules for what each event means in each state are an
explicit table (`TRANSITIONS`), not scattered `if`s.

Everything here is pure and in-process: no actors, no IO, no clock other
than the injected one. Each input returns a list of *effects* - `Status`
messages for clients, `ToVenue` commands for a backend, `Arm`/`Disarm`
actions for the dark book - and emsd's only job is to carry them out.

States (`Phase`) follow the client-visible `Status.resp` values, plus the
sub-states a venue round-trip needs:

- `new` -> `dark_open` (held in the dark book) or `pending` (sent, no ack);
  a bracket child -> `held` (nothing armed), and `held` <-arm-> `dark_open`
  as the group book (`_groups`) sizes what its entry's fills allow
- `dark_open` -trigger-> `dark_triggered` (live order sent, no ack) or
  `alert_triggered` (terminal)
- `pending`/`dark_triggered` -cancel-> `cancel_stashed` (sent on the ack)
- `pending`/`dark_triggered` -ack-> `acked` (reqid known, not yet open)
- `cancel_stashed` -ack-> `canceling` (cancel sent to the venue)
- `acked` -open-> `open`; `acked`/`open` -cancel-> `canceling`
- fills move towards `closed`; venue statuses/errors end in `closed`,
  `canceled` or `error`.

Venue events that arrive before the ack are buffered in the dialog and
replayed, in arrival order, right after it. Modifies and cancels sent to
the venue wait in a FIFO (`Dialog.outstanding`) for their verdict: a
venue answers the requests of one order in the order they were sent, so
an error is the verdict on the oldest, and a status after a modify's ack
confirms it. At most one modify is in flight: newer ones wait in the
dialog (`stashed_modify`, the newest replacing older ones) until the venue
answers it, so a burst of modifies costs the venue two, and a cancel -
sent at once, dropping the waiting modify - queues behind one at most.
What this assumes of a backend: every `BrokerdOrder` (a
modify too) gets an ack before any status about it, a modify is refused
with a `BrokerdError`, `BrokerdStatus.filled` is cumulative.
"""
from __future__ import annotations

import itertools
import logging
import operator
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from typing import Any, Literal, NamedTuple

import msgspec

from ..accounting import strip_broker
from ..log import get_logger
from ..types import Struct
from ._dark import Direction, Triggered
from ._messages import (
    TERMINAL_RESPS,
    TRIGGER_TYPES,
    Action,
    BrokerdCancel,
    BrokerdError,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    Cancel,
    MessageError,
    Order,
    Resp,
    Status,
    Trail,
)
from ._order_types import fixed_direction, release_price, venue_tif

__all__ = [
    'Arm',
    'Mode',
    'Dialog',
    'DialogChange',
    'DialogState',
    'DialogTable',
    'Disarm',
    'Effect',
    'Event',
    'Expire',
    'PendingRequest',
    'Phase',
    'TRANSITIONS',
    'ToVenue',
    'Transition',
]

log = get_logger(__name__)

ReqId = int | str
Mode = Literal['live', 'paper']


# ---- effects: what emsd must do after each input -------------------------

class ToVenue(Struct, frozen=True):
    """Send `msg` to the backend of `broker` (paper or live by `msg.account`)."""

    broker: str
    msg: BrokerdOrder | BrokerdCancel


class Arm(Struct, frozen=True):
    """Rest (or move, if `oid` rests already) a dark trigger in the dark book.

    emsd supplies what only it knows: the market's last price (which fixes
    the trigger direction), price tick and padding. `direction` is set
    only when a restored trigger is re-armed: its direction was fixed when
    it was first placed and must not flip because the market moved while
    emsd was down.
    """

    oid: str
    fqme: str
    action: Action
    level: float
    size: float
    direction: Direction | None = None
    # a trailing stop's trail and best price so far (level 0: from the market)
    trail: Trail | None = None
    anchor: float | None = None


class Expire(Struct, frozen=True):
    """Wake the dialog `oid` at `at_ns` (its gtd expiry, on the table's
    clock): emsd's timers call `DialogTable.on_expire()` then."""

    oid: str
    at_ns: int


class Disarm(Struct, frozen=True):
    """Remove `oid`'s trigger from the dark book (if still resting)."""

    oid: str


Effect = Status | ToVenue | Arm | Disarm | Expire


# ---- the state machine ---------------------------------------------------

class Phase(StrEnum):
    NEW = 'new'
    HELD = 'held'  # a bracket child with nothing armed (`_groups`)
    DARK_OPEN = 'dark_open'
    PENDING = 'pending'
    DARK_TRIGGERED = 'dark_triggered'
    CANCEL_STASHED = 'cancel_stashed'
    ACKED = 'acked'
    OPEN = 'open'
    CANCELING = 'canceling'
    # terminal
    ALERT_TRIGGERED = 'alert_triggered'
    CLOSED = 'closed'
    CANCELED = 'canceled'
    EXPIRED = 'expired'
    ERROR = 'error'


TERMINAL_PHASES = frozenset({
    Phase.ALERT_TRIGGERED, Phase.CLOSED, Phase.CANCELED, Phase.EXPIRED, Phase.ERROR,
})
# phases where the venue has not acked the live order yet
PRE_ACK_PHASES = frozenset({Phase.PENDING, Phase.DARK_TRIGGERED, Phase.CANCEL_STASHED})


class Event(StrEnum):
    SUBMIT = 'submit'                # client: a new order
    MODIFY = 'modify'                # client: an order with a known oid
    CANCEL = 'cancel'                # client
    TRIGGER = 'trigger'              # dark book fired
    ACK = 'ack'                      # BrokerdOrderAck
    VENUE_PENDING = 'venue_pending'  # BrokerdStatus(status=...)
    VENUE_OPEN = 'venue_open'
    VENUE_CANCELED = 'venue_canceled'
    VENUE_CLOSED = 'venue_closed'
    FILL = 'fill'                    # BrokerdFill
    VENUE_ERROR = 'venue_error'      # BrokerdError
    TRAIL = 'trail'                  # dark book: a trailing stop's trigger moved
    EXPIRE = 'expire'                # emsd's timer: a gtd order's expiry
    ARM = 'arm'                      # group book: a child's armed size


Handler = Callable[['Dialog', Any], tuple['Phase', list[Effect]]]


class Transition(NamedTuple):
    """`handler` (a `Dialog` method) runs; the dialog ends in one of `to`."""

    handler: Handler
    to: frozenset[Phase]


def _t(handler: Handler, *to: Phase) -> Transition:
    return Transition(handler, frozenset(to))


P, E = Phase, Event


# the resp a client sees for a dialog resting in each phase
_STATE_RESP: dict[Phase, Resp] = {
    P.HELD: 'held',
    P.DARK_OPEN: 'dark_open',
    P.PENDING: 'pending',
    P.DARK_TRIGGERED: 'dark_triggered',
    P.ACKED: 'pending',
    P.OPEN: 'open',
    P.ALERT_TRIGGERED: 'alert_triggered',
    P.CLOSED: 'closed',
    P.CANCELED: 'canceled',
    P.EXPIRED: 'expired',
    P.ERROR: 'error',
}

_STATUS_EVENT = {
    'pending': E.VENUE_PENDING,
    'open': E.VENUE_OPEN,
    'canceled': E.VENUE_CANCELED,
    'closed': E.VENUE_CLOSED,
}

# arrival order of buffered venue events, across dialogs and the orphan buffer
_arrival = itertools.count()

# sizes are floats: "fully filled" allows for rounding in sums of fills
_REL_TOL = 1e-9
# a gtd order's cancel the venue did not take is sent again this much later
EXPIRE_RETRY_NS = 5_000_000_000


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


class _Buffered(NamedTuple):
    seq: int
    event: Event
    msg: Any


# ---- the dialog's data: one struct, used as is and journaled as is ------

class PendingRequest(Struct):
    """A modify or cancel sent to the venue whose verdict is pending.

    Venues answer the requests of one order in the order they were sent,
    so the dialog keeps them in a FIFO: a venue error is the verdict on the
    oldest one, and a venue 'open' confirms the oldest modify once the
    venue has acked it (an earlier 'open' describes the previous version).
    Compared by identity (`is`): two equal requests are still two.
    """

    kind: Literal['modify', 'cancel']
    order: Order | None = None
    acked: bool = False


class DialogState(Struct):
    """Everything emsd knows about one order, and all a restart needs.

    A `Dialog` keeps its data in one of these (`Dialog.s`), and the journal
    stores it as is (updated with every batch that touched the dialog), so
    a restarted emsd rebuilds the dialog with `Dialog.from_state()`: the
    state machine then carries on as if it had never stopped - same
    phase, reqid, fill tids (a replayed fill is still dropped), stashed
    and outstanding requests, route and dark-trigger direction. The Status
    history is not part of it: the journal keeps that as the dialog's
    event timeline.
    """

    oid: str
    req: Order  # as clients should see it (see `Dialog`)
    confirmed: Order  # the version the venue is known to work
    phase: Phase = Phase.NEW
    reqid: ReqId | None = None
    external: bool = False  # a venue order emsd did not place
    # fills: seen trade ids, their sum, and the venue's cumulative report
    fill_tids: set[str] = set()
    fill_sum: float = 0.0
    venue_filled: float = 0.0
    # client requests waiting for the venue's ack of the order (a modify
    # also for the venue's answer to the modify in flight)
    stashed_modify: Order | None = None
    stashed_cancel: bool = False
    # modifies/cancels sent to the venue, oldest first
    outstanding: list[PendingRequest] = []
    # venue events waiting for the ack, in arrival order
    buffered: list[BrokerdStatus | BrokerdFill] = []
    venue_orders: int = 0  # new (reqid-less) venue orders ever sent
    pre_cancel: Phase = Phase.ACKED  # what a client sees while a cancel runs
    terminal_sent: bool = False
    opened: bool = False  # an 'open' Status went out
    # the venue relay its orders go to ('live' or 'paper' at `req.broker`;
    # None: never routed), and the direction its dark trigger was armed with
    route: Mode | None = None
    direction: Direction | None = None
    # a trailing stop's trigger now and the best price that moved it there
    # (None: not moved yet, the trigger is `req.price`); `expiring`: the
    # cancel in flight is its gtd expiry (it ends 'expired')
    trail_trigger: float | None = None
    trail_anchor: float | None = None
    expiring: bool = False
    # a group member's armed size: what its trigger may release (a bracket
    # child's share of its entry's fills, see `_groups`); None: its size.
    # guard: a held child whose trigger stays armed while a sibling works
    # at the venue ('armed'); 'fired': it crossed, the sibling is cancelled
    # first and this child re-armed for what that leaves
    armed: float | None = None
    guard: Literal['armed', 'fired'] | None = None

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def trigger(self) -> float | None:
        """A trigger type's current trigger (None: a limit or alert)."""
        if self.req.type not in TRIGGER_TYPES:
            return None
        if self.trail_trigger is not None:
            return self.trail_trigger
        # a trailing stop from the market has none until it is armed
        return self.req.price or None

    @property
    def filled(self) -> float:
        """Executed size: the larger of the fills seen and the venue's report.

        Capped at the order size so `filled + remaining == size` holds even
        if a broken venue over-fills (which is logged as an error).
        """
        return min(self.executed, self.req.size)

    @property
    def remaining(self) -> float:
        return max(self.req.size - self.filled, 0.0)

    # ---- the arithmetic of its versions and fills (pure) ---------------

    @property
    def executed(self) -> float:
        return max(self.fill_sum, self.venue_filled)

    @property
    def fully_filled(self) -> bool:
        """Filled up to every size the venue may be working.

        While a modify is unconfirmed the venue works either the old or the
        new size, so only the largest proves the order is done.
        """
        sizes = [self.confirmed.size]
        sizes += [r.order.size for r in self.outstanding if r.order is not None]
        size = max(sizes)
        return size > 0 and self.executed >= size * (1 - _REL_TOL)

    def refresh_req(self) -> None:
        """Re-derive `req`: the newest request that can still come true."""
        executed = self.executed
        newest_first = [self.stashed_modify] if self.stashed_modify else []
        newest_first += [
            r.order for r in reversed(self.outstanding) if r.order is not None
        ]
        for order in newest_first:
            # a venue refuses a size below what is filled already
            if order.size >= executed * (1 - _REL_TOL):
                self.req = order
                return
        self.req = self.confirmed
        if executed > self.req.size * (1 + _REL_TOL):
            log.error('dialog %s: venue reports %s filled of size %s',
                      self.oid, executed, self.req.size)

    def settle(self) -> None:
        """At the end no pending request will apply: show the venue's version.

        That is the confirmed one, unless fills prove the venue had taken a
        later (bigger) modify whose confirmation had not arrived yet.
        """
        executed = self.executed
        versions = [self.confirmed]
        versions += [r.order for r in self.outstanding if r.order is not None]
        self.req = next(
            (o for o in versions if o.size >= executed * (1 - _REL_TOL)),
            versions[-1],
        )
        self.outstanding.clear()
        self.stashed_modify = None

    def add_executed(self, *, fill: float = 0.0, reported: float = 0.0) -> None:
        """Account for a fill or a venue's cumulative filled report."""
        self.fill_sum += fill
        self.venue_filled = max(self.venue_filled, reported)
        self.refresh_req()

    def count_fill(self, fill: BrokerdFill) -> bool:
        """Count `fill` once; False if its tid was seen already."""
        if fill.tid in self.fill_tids:
            log.info('dialog %s: dropping duplicate fill tid=%s', self.oid, fill.tid)
            return False
        self.fill_tids.add(fill.tid)
        self.add_executed(fill=fill.size)
        return True

    def modify_problem(self, new: Order) -> str:
        """Why `new` cannot modify this dialog ('' if it can)."""
        old = self.req
        for field in ('symbol', 'action', 'account'):
            if getattr(new, field) != getattr(old, field):
                return (
                    f'a modify cannot change {field} '
                    f'({getattr(old, field)!r} -> {getattr(new, field)!r})'
                )
        if new.exec_mode == 'dark' and old.exec_mode == 'live':
            return 'a live order cannot be moved into the dark book; cancel it instead'
        if self.filled and new.size < self.filled * (1 - _REL_TOL):
            return f'new size {new.size} is below the filled size {self.filled}'
        return ''

    def modify_in_flight(self) -> bool:
        """A modify is at the venue, not yet answered (acked or refused)."""
        return any(r.kind == 'modify' and not r.acked for r in self.outstanding)

    def confirm_acked(self) -> bool:
        """A venue status after a modify's ack shows the modify applied."""
        confirmed = False
        while self.outstanding and self.outstanding[0].acked:
            order = self.outstanding.pop(0).order
            assert order is not None  # only modifies are acked
            self.confirmed = order
            confirmed = True
        return confirmed


class _ClientHandlers:
    """`Dialog`'s handlers of client commands and dark-book triggers.

    Each returns (next phase, effects); `TRANSITIONS` says which runs when.
    """

    __slots__ = ()

    def _submit(self: Dialog, order: Order) -> tuple[Phase, list[Effect]]:
        timer = self.expiry_timers()
        if order.parent is not None:
            # a bracket child: nothing armed until its entry fills (`_groups`)
            self.s.armed = 0.0
            return P.HELD, [*timer, *self._status('held', src='emsd')]
        if order.exec_mode == 'dark':
            return P.DARK_OPEN, [
                self.arm_effect(), *timer, *self._status('dark_open', src='emsd'),
            ]
        cmd = self._new_venue_order(order.price)
        return P.PENDING, [cmd, *timer, *self._status('pending', src='emsd')]

    def _modify_dark(self: Dialog, new: Order) -> tuple[Phase, list[Effect]]:
        if problem := self.s.modify_problem(new):
            return self.s.phase, self._refusal(f'modify refused: {problem}')
        self.s.req = self.s.confirmed = new
        # a modify re-arms: new trigger, type and trail start afresh
        self.s.trail_trigger = self.s.trail_anchor = self.s.direction = None
        timer = self.expiry_timers()
        if new.exec_mode == 'live':
            # dark -> live: leave the book, go to the venue
            cmd = self._new_venue_order(new.price)
            return P.PENDING, [
                Disarm(oid=self.oid), cmd, *timer, *self._status('pending', src='emsd'),
            ]
        return P.DARK_OPEN, [self.arm_effect(), *timer, *self._status('dark_open', src='emsd')]

    def _trail(self: Dialog, move: Any) -> tuple[Phase, list[Effect]]:
        """The dark book moved a trailing stop's trigger (`TrailMove`); a
        guard (a held bracket child) trails too."""
        self.s.trail_trigger, self.s.trail_anchor = move.trigger, move.anchor
        return self.s.phase, self._status(self._state_resp(), src='dark', brokerd_msg={
            'trigger': move.trigger, 'anchor': move.anchor,
        })

    def _expire_dark(self: Dialog, _: Any) -> tuple[Phase, list[Effect]]:
        return P.EXPIRED, [
            Disarm(oid=self.oid), *self._status('expired', src='emsd', reason=self._expiry()),
        ]

    def _expire_pre_ack(self: Dialog, _: Any) -> tuple[Phase, list[Effect]]:
        self.s.expiring = True
        return self._stash_cancel(None)

    def _expire_live(self: Dialog, _: Any) -> tuple[Phase, list[Effect]]:
        self.s.expiring = True
        return self._cancel_live(None)

    def _expiry(self: Dialog) -> str:
        at = self.s.req.expires_ns or 0
        when = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(at / 1e9))
        return f'gtd: expired at {when}'

    def _modify_held(self: Dialog, new: Order) -> tuple[Phase, list[Effect]]:
        if problem := self.s.modify_problem(new):
            return self.s.phase, self._refusal(f'modify refused: {problem}')
        self.s.req = self.s.confirmed = new
        # a new trigger, type and trail: its direction is fixed afresh
        self.s.trail_trigger = self.s.trail_anchor = self.s.direction = None
        # a guard's trigger rests: move it
        effects = [self.arm_effect()] if self.s.guard == 'armed' else []
        return P.HELD, [*effects, *self.expiry_timers(), *self._status('held', src='emsd')]

    def _arm_group(self: Dialog, verdict: tuple[float, bool]) -> tuple[Phase, list[Effect]]:
        """The group book's verdict: arm `size` (0: hold, out of the book,
        or, as a `guard`, held with its trigger still armed).

        A re-armed trigger keeps the direction it was first armed with.
        """
        size, guard = verdict
        size = max(size, 0.0)
        was, self.s.armed = self.s.armed, size
        arm = self.arm_effect()
        if size <= 0:
            resting = self.s.phase is P.DARK_OPEN or self.s.guard == 'armed'
            if guard:
                if self.s.guard is not None:
                    return P.HELD, []  # armed, or fired: waiting for the sibling
                self.s.guard = 'armed'
                return P.HELD, [arm, *self._status(
                    'held', src='emsd', reason='a sibling works at the venue: '
                    'the trigger stays armed, releasing nothing until it ends')]
            self.s.guard = None
            if not resting:
                return P.HELD, []
            return P.HELD, [Disarm(oid=self.oid), *self._status('held', src='emsd')]
        self.s.guard = None
        if self.s.phase is P.DARK_OPEN and was == size:
            return P.DARK_OPEN, []
        return P.DARK_OPEN, [arm, *self._status('dark_open', src='emsd')]

    def _guard_fired(self: Dialog, trig: Triggered) -> tuple[Phase, list[Effect]]:
        if self.s.guard != 'armed':
            return P.HELD, []
        self.s.guard = 'fired'
        # (a guard armed by an earlier trigger of the same quote: out again)
        return P.HELD, [Disarm(oid=self.oid), *self._status(
            'held', src='dark', reason='triggered while a sibling works at the venue: '
            'cancelling it first', brokerd_msg={'price': trig.price, 'level': trig.level},
        )]

    def _armed_size(self: Dialog) -> float:
        armed = self.s.armed
        return self.s.req.size if armed is None else min(self.s.req.size, armed)

    def _cancel_dark(self: Dialog, why: str) -> tuple[Phase, list[Effect]]:
        return P.CANCELED, [
            Disarm(oid=self.oid), *self._status('canceled', src='emsd', reason=why),
        ]

    def _trigger(self: Dialog, trig: Triggered) -> tuple[Phase, list[Effect]]:
        details = {
            'price': trig.price, 'level': trig.level,
            'tick_type': trig.tick_type, 'direction': trig.direction,
        }
        if self.s.req.action == 'alert':
            return P.ALERT_TRIGGERED, self._status(
                'alert_triggered', src='dark', brokerd_msg=details,
            )
        req = self.s.req
        size, reason = self._armed_size(), ''
        if req.reduce_only and 0 < trig.size < size:
            # reduce-only, sized down to the position at release
            reason = f'reduce_only: sized down from {size:g} to {trig.size:g}'
            size = trig.size
        if size < req.size:
            # a group member goes out for its armed share only (or less:
            # reduce-only)
            self.s.req = self.s.confirmed = req.copy({'size': size})
        price = release_price(req, trig)
        cmd = self._new_venue_order(price)
        details['submit_price'] = price
        return P.DARK_TRIGGERED, [cmd, *self._status(
            'dark_triggered', src='dark', reason=reason, brokerd_msg=details,
        )]

    def _stash_modify(self: Dialog, new: Order) -> tuple[Phase, list[Effect]]:
        if problem := self.s.modify_problem(new):
            return self.s.phase, self._refusal(f'modify refused: {problem}')
        self.s.stashed_modify = new  # the latest wins
        self.s.refresh_req()
        return self.s.phase, []

    def _stash_cancel(self: Dialog, _: Any) -> tuple[Phase, list[Effect]]:
        self.s.pre_cancel = self.s.phase  # what a client still sees meanwhile
        self.s.stashed_cancel = True
        self.s.stashed_modify = None  # the cancel wins
        self.s.refresh_req()
        return P.CANCEL_STASHED, []

    def _refuse_modify(self: Dialog, new: Order) -> tuple[Phase, list[Effect]]:
        return self.s.phase, self._refusal('modify refused: a cancel is in progress')

    def _modify_live(self: Dialog, new: Order) -> tuple[Phase, list[Effect]]:
        if problem := self.s.modify_problem(new):
            return self.s.phase, self._refusal(f'modify refused: {problem}')
        if self.s.modify_in_flight():
            # a venue works through one order's requests in turn: a burst
            # of modifies (a dragged line) would queue there, and a cancel
            # behind them. One at a time; meanwhile the newest waits here
            # and supersedes older waiting ones.
            self.s.stashed_modify = new
            self.s.refresh_req()
            return self.s.phase, []
        return self.s.phase, [self._send_modify(new)]

    def _send_stashed(self: Dialog) -> list[Effect]:
        """Send the stashed modify once the one in flight is answered."""
        new = self.s.stashed_modify
        if new is None or self.s.modify_in_flight() or self.s.phase not in (P.ACKED, P.OPEN):
            return []
        self.s.stashed_modify = None
        self.s.refresh_req()
        if problem := self.s.modify_problem(new):  # e.g. filled past its size meanwhile
            return self._refusal(f'modify refused: {problem}')
        return [self._send_modify(new)]

    def _cancel_live(self: Dialog, _: Any) -> tuple[Phase, list[Effect]]:
        self.s.pre_cancel = self.s.phase
        self.s.stashed_modify = None  # the cancel wins
        self.s.refresh_req()
        return P.CANCELING, [self._send_cancel()]


class _VenueHandlers:
    """`Dialog`'s handlers of venue events (acks, statuses, fills, errors).

    Each returns (next phase, effects); `TRANSITIONS` says which runs when.
    """

    __slots__ = ()

    def _ignore(self: Dialog, msg: Any) -> tuple[Phase, list[Effect]]:
        log.debug('dialog %s: nothing to do in %s for %r', self.oid, self.s.phase.value, msg)
        return self.s.phase, []

    def _buffer(self: Dialog, msg: Any) -> tuple[Phase, list[Effect]]:
        self._seqs.append(next(_arrival))
        self.s.buffered.append(msg)
        return self.s.phase, []

    def _ack(self: Dialog, ack: BrokerdOrderAck) -> tuple[Phase, list[Effect]]:
        self.s.reqid = ack.reqid
        if self.s.stashed_cancel:
            self.s.stashed_cancel = False
            self.s.pre_cancel = P.ACKED  # where a rejected cancel leaves it
            return P.CANCELING, [self._send_cancel()]
        if self.s.stashed_modify is not None:
            new, self.s.stashed_modify = self.s.stashed_modify, None
            return P.ACKED, [self._send_modify(new)]
        return P.ACKED, []

    def _reject(self: Dialog, err: BrokerdError) -> tuple[Phase, list[Effect]]:
        self.s.settle()
        return P.ERROR, self._status(
            'error', src=self.broker, reason=err.reason, brokerd_msg=err.to_builtins(),
        )

    def _modify_ack(self: Dialog, ack: BrokerdOrderAck) -> tuple[Phase, list[Effect]]:
        # the venue acks every BrokerdOrder: this one is for the oldest
        # modify not acked yet (a repeated ack of the order itself is moot)
        for request in self.s.outstanding:
            if request.kind == 'modify' and not request.acked:
                request.acked = True
                break
        return self.s.phase, self._send_stashed()

    def _open(self: Dialog, msg: BrokerdStatus) -> tuple[Phase, list[Effect]]:
        before = self.s.filled
        confirmed = self.s.confirm_acked()
        self.s.add_executed(reported=msg.filled)
        if self.s.phase is P.CANCELING:
            return P.CANCELING, []  # a cancel is coming: no news for clients
        # `_opened`: an order filled in part on arrival has moved on to
        # OPEN already, but its client has not been told it works yet
        if self.s.phase is P.ACKED or confirmed or self.s.filled != before or not self.s.opened:
            return P.OPEN, self._status(
                'open', src=self.broker, reason=msg.reason, brokerd_msg=msg.to_builtins(),
            )
        return P.OPEN, []

    def _fill(self: Dialog, fill: BrokerdFill) -> tuple[Phase, list[Effect]]:
        stay = P.OPEN if self.s.phase is P.ACKED else self.s.phase
        if not self.s.count_fill(fill):
            return self.s.phase, []
        if self.s.phase is P.CANCELING and self.s.pre_cancel is P.ACKED:
            self.s.pre_cancel = P.OPEN  # it is certainly working at the venue
        effects = self._status('fill', src=self.broker, brokerd_msg=fill.to_builtins())
        if self.s.fully_filled:
            self.s.settle()
            effects += self._status('closed', src=self.broker)
            return P.CLOSED, effects
        return stay, effects

    def _late_fill(self: Dialog, fill: BrokerdFill) -> tuple[Phase, list[Effect]]:
        if not self.s.count_fill(fill):
            return self.s.phase, []
        log.warning('dialog %s: fill after terminal %s: %r', self.oid, self.s.phase.value, fill)
        return self.s.phase, self._status(
            'fill', src=self.broker, reason=f'fill after {self.s.phase.value}',
            brokerd_msg=fill.to_builtins(),
        )

    def _venue_done(self: Dialog, msg: BrokerdStatus) -> tuple[Phase, list[Effect]]:
        self.s.confirm_acked()
        self.s.add_executed(reported=msg.filled)
        closed = msg.status == 'closed' or self.s.fully_filled
        self.s.settle()
        if closed:
            phase, reason = P.CLOSED, msg.reason
        elif self.s.expiring:  # our gtd cancel: the order expired
            phase, reason = P.EXPIRED, self._expiry()
        else:
            phase, reason = P.CANCELED, msg.reason
        return phase, self._status(
            _STATE_RESP[phase], src=self.broker, reason=reason, brokerd_msg=msg.to_builtins(),
        )

    def _venue_error(self: Dialog, err: BrokerdError) -> tuple[Phase, list[Effect]]:
        details = err.to_builtins()
        if not self.s.outstanding:
            # no request of ours pending: the order itself failed
            self.s.settle()
            return P.ERROR, self._status(
                'error', src=self.broker, reason=err.reason, brokerd_msg=details,
            )
        # the verdict on our oldest request: the order keeps working
        request = self.s.outstanding.pop(0)
        if request.kind == 'cancel':
            self.s.phase = self.s.pre_cancel
            what = 'cancel'
        else:
            self.s.refresh_req()
            what = 'modify'
        effects = self._status(
            self._state_resp(), src=self.broker,
            reason=f'{what} rejected: {err.reason}', brokerd_msg=details,
        )
        if what == 'cancel' and self.s.expiring:
            # the gtd cancel did not get through (e.g. the venue is down):
            # try again a little later; it still ends 'expired'
            effects.append(Expire(oid=self.oid, at_ns=self._clock() + EXPIRE_RETRY_NS))
        return self.s.phase, effects + self._send_stashed()


class Dialog(_ClientHandlers, _VenueHandlers):
    """One order dialog: its `DialogState` (`s`), Status history and owner.

    `req` is the order as clients should see it: the latest request that
    can still come true (a pending modify included; one the venue refused,
    or whose size is below what is already filled, is not). Drive a
    dialog only through `handle()` (normally via a `DialogTable`); the
    fields of `s` read as the dialog's own (`dialog.phase`), and only the
    dialog writes them. `owner` is the client session that placed it (it
    hears the dialog whatever its subscriptions; None: restored, external).
    `risk` is its reservation with this emsd's risk gate (`_risk_book.Hold`:
    the gate's to fill in; None until the gate has seen the dialog; not
    persisted: a restarted gate starts from the venue's positions).
    """

    __slots__ = ('s', 'oid', 'fqme', 'broker', 'owner', 'history', 'risk', '_clock',
                 '_drained', '_seqs')

    def __init__(
        self,
        req: Order,
        *,
        clock: Callable[[], int] = time.time_ns,
        state: DialogState | None = None,
        history: list[Status] | None = None,
        owner: int | None = None,
        route: Mode | None = None,
    ) -> None:
        self.s = state if state is not None else DialogState(
            oid=req.oid, req=req, confirmed=req, route=route,
        )
        self.oid: str = self.s.oid
        self.fqme: str = req.symbol
        self.broker: str = req.broker
        self.owner = owner
        self.history: list[Status] = list(history or ())
        self.risk: Any = None
        self._clock = clock
        self._drained = len(self.history)  # history handed out as changes
        # arrival order of `s.buffered` (across dialogs and orphans)
        self._seqs: list[int] = [next(_arrival) for _ in self.s.buffered]

    def __getattr__(self, name: str) -> Any:
        # only reached for names that are not the dialog's own: its data
        if name == 's':
            raise AttributeError(name)
        return getattr(self.s, name)

    # ---- views ----------------------------------------------------------

    @property
    def terminal(self) -> bool:
        return self.s.phase in TERMINAL_PHASES

    @property
    def resp(self) -> Resp:
        """The client-visible state: what a fresh subscriber should see."""
        return self._state_resp()

    def snapshot(self) -> Status:
        """A `Status` of the dialog's current state (for a client handshake)."""
        return self._mk_status(self._state_resp(), src='emsd')

    # ---- persistence ------------------------------------------------------

    def state(self, *, fill_tids: bool = True) -> DialogState:
        """A copy of the dialog's data, safe to keep (see `DialogState`).

        Without `fill_tids` the seen fill ids are left out: every counted
        fill emitted a `fill` Status naming its tid, so `from_state()`
        recovers them from the history - and a journal need not rewrite a
        set that grows with every fill of a big order. Orders are never
        changed in place: only the containers are copied.
        """
        s = self.s
        return msgspec.structs.replace(
            s,
            fill_tids=set(s.fill_tids) if fill_tids else set(),
            outstanding=[msgspec.structs.replace(r) for r in s.outstanding],
            buffered=[m for _, m in sorted(zip(self._seqs, s.buffered, strict=True), key=_first)],
        )

    @classmethod
    def from_state(
        cls,
        state: DialogState,
        history: list[Status] | None = None,
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> Dialog:
        """Rebuild a dialog from `state()` (and its Status `history`).

        The history counts as already drained: a restored dialog reports
        only the changes made after its restore. The tids of the history's
        `fill` Statuses count as seen (see `state(fill_tids=False)`).
        """
        state = msgspec.structs.replace(state, fill_tids=set(state.fill_tids))
        for st in history or ():
            tid = st.brokerd_msg.get('tid') if st.resp == 'fill' else None
            if isinstance(tid, str):
                state.fill_tids.add(tid)
        return cls(state.req, clock=clock, state=state, history=history)

    def use_clock(self, clock: Callable[[], int]) -> None:
        """Take the clock of the table that adopts this dialog."""
        self._clock = clock

    def claim(self, owner: int) -> None:
        """`owner` (a client session) hears this dialog, unless one does."""
        if self.owner is None:
            self.owner = owner

    def armed(self, direction: Direction) -> None:
        """The dark book armed this dialog's trigger in `direction`."""
        self.s.direction = direction

    def announce(self, msg: BrokerdStatus) -> list[Effect]:
        """An external order's first venue status: tell clients of it."""
        effects = self.handle(_event_of(msg), msg)
        if self.s.phase is P.ACKED:  # 'pending': still announce it
            effects += self._status('pending', src=self.broker, reason='external order')
        return effects

    def drain_history(self) -> list[Status]:
        """The Statuses emitted since the last call."""
        new = self.history[self._drained:]
        self._drained = len(self.history)
        return new

    def absorb(self, events: Iterable[_Buffered]) -> None:
        """Venue events held for this dialog's reqid before its ack."""
        for item in events:
            self._seqs.append(item.seq)
            self.s.buffered.append(item.msg)

    def __repr__(self) -> str:
        return (
            f'Dialog({self.oid!r}, {self.s.phase.value}, {self.s.req.action} '
            f'{self.s.req.size}@{self.s.req.price} {self.fqme}, reqid={self.s.reqid!r}, '
            f'filled={self.s.filled})'
        )

    # ---- the dispatcher -------------------------------------------------

    def handle(self, event: Event, msg: Any = None) -> list[Effect]:
        """Apply `event` (with its message) and return the effects.

        An event the table does not allow in the current phase is logged
        and ignored. Buffered pre-ack venue events are replayed as soon as
        the dialog has left the pre-ack phases.
        """
        trans = TRANSITIONS[self.s.phase].get(event)
        if trans is None:
            # after the end, stragglers (a 2nd 'closed', a late error) are normal
            level = logging.DEBUG if self.terminal else logging.WARNING
            log.log(
                level, 'dialog %s: ignoring %s in phase %s: %r',
                self.oid, event.value, self.s.phase.value, msg,
            )
            return []
        nxt, effects = trans.handler(self, msg)
        if nxt not in trans.to:  # a bug in a handler, not in the input
            log.error(
                'dialog %s: %s in %s went to %s, table allows %s',
                self.oid, event.value, self.s.phase.value, nxt.value,
                sorted(p.value for p in trans.to),
            )
        self.s.phase = nxt
        if self.s.buffered and self.s.phase not in PRE_ACK_PHASES:
            effects.extend(self._replay())
        return effects

    def _replay(self) -> list[Effect]:
        buffered = sorted(zip(self._seqs, self.s.buffered, strict=True), key=_first)
        self.s.buffered = []
        self._seqs = []
        effects: list[Effect] = []
        for _, msg in buffered:
            effects.extend(self.handle(_event_of(msg), msg))
        return effects

    # ---- status construction --------------------------------------------

    def _state_resp(self) -> Resp:
        phase = self.s.phase
        if phase in (P.CANCEL_STASHED, P.CANCELING):
            phase = self.s.pre_cancel
        return _STATE_RESP.get(phase, 'pending')

    def _mk_status(
        self,
        resp: Resp,
        *,
        src: str,
        reason: str = '',
        brokerd_msg: Mapping[str, Any] | None = None,
    ) -> Status:
        return Status(
            oid=self.oid,
            resp=resp,
            time_ns=self._clock(),
            req=self.s.req,
            reqid=self.s.reqid,
            src=src,
            filled=self.s.filled,
            remaining=self.s.remaining,
            reason=reason,
            brokerd_msg=dict(brokerd_msg or {}),
            trigger=self.s.trigger,
            armed=self.s.armed,
        )

    def _status(
        self,
        resp: Resp,
        *,
        src: str,
        reason: str = '',
        brokerd_msg: Mapping[str, Any] | None = None,
    ) -> list[Effect]:
        """Record and emit one Status; refuses a second terminal one."""
        if resp in TERMINAL_RESPS:
            if self.s.terminal_sent:
                log.error('dialog %s: dropping a second terminal %r', self.oid, resp)
                return []
            self.s.terminal_sent = True
        status = self._mk_status(resp, src=src, reason=reason, brokerd_msg=brokerd_msg)
        self.s.opened = self.s.opened or resp == 'open'
        self.history.append(status)
        return [status]

    def _refusal(self, reason: str) -> list[Effect]:
        """Tell the client its request was refused; the state is unchanged."""
        log.warning('dialog %s: %s', self.oid, reason)
        return self._status(self._state_resp(), src='emsd', reason=reason)

    # ---- venue commands ---------------------------------------------------

    def _new_venue_order(self, price: float) -> ToVenue:
        req = self.s.req
        self.s.venue_orders += 1
        self.s.confirmed = req
        return ToVenue(broker=self.broker, msg=BrokerdOrder(
            oid=self.oid,
            reqid=None,
            symbol=strip_broker(self.fqme),
            action=req.action,  # type: ignore[arg-type]  # never 'alert' here
            price=price,
            size=req.size,
            account=req.account,
            time_ns=self._clock(),
            tif=venue_tif(req),
        ))

    def arm_effect(self) -> Arm:
        """The dark-book entry of the dialog as it stands (see `Arm`): a
        group member's is its armed size, and a trigger keeps the direction
        it was first armed with (else its type's, or None: the market's)."""
        req, s = self.s.req, self.s
        return Arm(
            oid=self.oid, fqme=self.fqme, action=req.action,
            level=s.trigger or req.price, size=self._armed_size(),
            direction=s.direction if s.direction is not None else fixed_direction(req),
            trail=req.trail, anchor=s.trail_anchor,
        )

    def expiry_timers(self) -> list[Effect]:
        at = self.s.req.expires_ns
        return [Expire(oid=self.oid, at_ns=at)] if self.s.req.tif == 'gtd' and at else []

    def _send_modify(self, new: Order) -> ToVenue:
        self.s.outstanding.append(PendingRequest('modify', new))
        self.s.refresh_req()
        return ToVenue(broker=self.broker, msg=BrokerdOrder(
            oid=self.oid,
            reqid=self.s.reqid,
            symbol=strip_broker(self.fqme),
            action=new.action,  # type: ignore[arg-type]
            price=new.price,
            size=new.size,
            account=new.account,
            time_ns=self._clock(),
            tif=venue_tif(new),
        ))

    def _send_cancel(self) -> ToVenue:
        assert self.s.reqid is not None
        self.s.outstanding.append(PendingRequest('cancel'))
        return ToVenue(broker=self.broker, msg=BrokerdCancel(
            oid=self.oid,
            reqid=self.s.reqid,
            account=self.s.req.account,
            time_ns=self._clock(),
        ))


# ---- the transition table ------------------------------------------------

# the dialog's data reads as its own (`dialog.phase`...): a property per
# `DialogState` field, not a `__getattr__` fallback on every read of the
# hot order path
for _field in DialogState.__struct_fields__:
    if not hasattr(Dialog, _field):
        setattr(Dialog, _field, property(operator.attrgetter(f's.{_field}')))
del _field


def _pre_ack(phase: Phase) -> dict[Event, Transition]:
    """Transitions shared by the phases waiting for the venue's ack."""
    stashing = phase is not P.CANCEL_STASHED
    return {
        E.MODIFY: _t(Dialog._stash_modify, phase) if stashing else _t(Dialog._refuse_modify, phase),
        E.CANCEL: _t(Dialog._stash_cancel, P.CANCEL_STASHED) if stashing else _t(Dialog._ignore, phase),
        E.ACK: _t(Dialog._ack, P.ACKED) if stashing else _t(Dialog._ack, P.CANCELING),
        # anything the venue says before its ack waits for the ack
        E.VENUE_PENDING: _t(Dialog._buffer, phase),
        E.VENUE_OPEN: _t(Dialog._buffer, phase),
        E.VENUE_CANCELED: _t(Dialog._buffer, phase),
        E.VENUE_CLOSED: _t(Dialog._buffer, phase),
        E.FILL: _t(Dialog._buffer, phase),
        # the order itself was rejected
        E.VENUE_ERROR: _t(Dialog._reject, P.ERROR),
        # gtd: cancel on the ack (a cancel in progress ends it anyway)
        **({E.EXPIRE: _t(Dialog._expire_pre_ack, P.CANCEL_STASHED)} if stashing else {}),
    }


def _live(phase: Phase) -> dict[Event, Transition]:
    """Transitions of an acked, working order (`acked` or `open`)."""
    return {
        # sent, or (while another modify is in flight) stashed: newest wins
        E.MODIFY: _t(Dialog._modify_live, phase),
        # sent at once, ahead of a stashed modify (which it drops)
        E.CANCEL: _t(Dialog._cancel_live, P.CANCELING),
        # a venue acks every BrokerdOrder, modifies included; the ack of
        # the modify in flight sends the stashed one
        E.ACK: _t(Dialog._modify_ack, phase),
        E.VENUE_PENDING: _t(Dialog._ignore, phase),
        E.VENUE_OPEN: _t(Dialog._open, P.OPEN),
        E.FILL: _t(Dialog._fill, P.OPEN, P.CLOSED),
        E.VENUE_CANCELED: _t(Dialog._venue_done, P.CANCELED, P.EXPIRED, P.CLOSED),
        E.VENUE_CLOSED: _t(Dialog._venue_done, P.CLOSED),
        # a rejected modify/cancel leaves the order working; else it died
        E.VENUE_ERROR: _t(Dialog._venue_error, phase, P.ERROR),
        E.EXPIRE: _t(Dialog._expire_live, P.CANCELING),
    }


_late_fill = {E.FILL: _t(Dialog._late_fill, P.CLOSED, P.CANCELED, P.EXPIRED, P.ERROR)}

# (phase, event) -> transition. A pair not listed is an invalid transition:
# logged and ignored, never raised.
TRANSITIONS: Mapping[Phase, Mapping[Event, Transition]] = {
    P.NEW: {
        E.SUBMIT: _t(Dialog._submit, P.HELD, P.DARK_OPEN, P.PENDING),
    },
    P.HELD: {
        E.MODIFY: _t(Dialog._modify_held, P.HELD),
        E.CANCEL: _t(Dialog._cancel_dark, P.CANCELED),
        E.ARM: _t(Dialog._arm_group, P.HELD, P.DARK_OPEN),
        E.TRIGGER: _t(Dialog._guard_fired, P.HELD),
        E.TRAIL: _t(Dialog._trail, P.HELD),
        E.EXPIRE: _t(Dialog._expire_dark, P.EXPIRED),
    },
    P.DARK_OPEN: {
        E.MODIFY: _t(Dialog._modify_dark, P.DARK_OPEN, P.PENDING),
        E.CANCEL: _t(Dialog._cancel_dark, P.CANCELED),
        E.TRIGGER: _t(Dialog._trigger, P.DARK_TRIGGERED, P.ALERT_TRIGGERED),
        E.TRAIL: _t(Dialog._trail, P.DARK_OPEN),
        E.EXPIRE: _t(Dialog._expire_dark, P.EXPIRED),
        E.ARM: _t(Dialog._arm_group, P.HELD, P.DARK_OPEN),
    },
    P.PENDING: _pre_ack(P.PENDING),
    P.DARK_TRIGGERED: _pre_ack(P.DARK_TRIGGERED),
    P.CANCEL_STASHED: _pre_ack(P.CANCEL_STASHED),
    P.ACKED: _live(P.ACKED),
    P.OPEN: _live(P.OPEN),
    P.CANCELING: {
        E.MODIFY: _t(Dialog._refuse_modify, P.CANCELING),
        E.CANCEL: _t(Dialog._ignore, P.CANCELING),
        E.ACK: _t(Dialog._modify_ack, P.CANCELING),
        E.VENUE_PENDING: _t(Dialog._ignore, P.CANCELING),
        E.VENUE_OPEN: _t(Dialog._open, P.CANCELING),
        # a fill racing the cancel still counts
        E.FILL: _t(Dialog._fill, P.CANCELING, P.CLOSED),
        E.VENUE_CANCELED: _t(Dialog._venue_done, P.CANCELED, P.EXPIRED, P.CLOSED),
        E.VENUE_CLOSED: _t(Dialog._venue_done, P.CLOSED),
        # a rejected cancel (or modify sent before it) leaves it working
        E.VENUE_ERROR: _t(Dialog._venue_error, P.CANCELING, P.ACKED, P.OPEN, P.ERROR),
    },
    P.ALERT_TRIGGERED: {},
    # a venue may report a fill after the terminal status: count it
    P.CLOSED: _late_fill,
    P.CANCELED: _late_fill,
    P.EXPIRED: _late_fill,
    P.ERROR: _late_fill,
}


def _event_of(msg: Any) -> Event:
    if isinstance(msg, BrokerdStatus):
        return _STATUS_EVENT[msg.status]
    if isinstance(msg, BrokerdFill):
        return E.FILL
    if isinstance(msg, BrokerdError):
        return E.VENUE_ERROR
    if isinstance(msg, BrokerdOrderAck):
        return E.ACK
    raise TypeError(f'not a venue event: {msg!r}')


# ---- the table of every dialog ------------------------------------------

class DialogChange(NamedTuple):
    """A dialog touched since the last `DialogTable.drain_changes()`.

    `new` are the Statuses it emitted meanwhile (possibly none: an ack,
    a stashed request or a buffered venue event changes only its state).
    """

    dialog: Dialog
    new: list[Status]


class _VenueRouting:
    """The venue half of `DialogTable`: backend messages to their dialogs.

    Acks bind a reqid to its dialog; events for a reqid nobody knows yet
    are held as orphans until the ack that names it; an order the venue
    reports that emsd never placed becomes an external dialog. Kept apart
    (as `Dialog`'s handlers are) so each half reads on its own; the state
    is the table's (`DialogTable.__init__`).
    """

    # ---- queries --------------------------------------------------------

    def orphans(self) -> int:
        """How many venue events wait for an ack naming their reqid."""
        return sum(len(v) for v in self._orphans.values())

    # ---- venue side -----------------------------------------------------

    def on_broker_msg(
        self, msg: Struct, broker: str, route: Mode | None = None,
    ) -> list[Effect]:
        """Apply one (decoded) backend -> emsd message from the dialogue
        with `broker`'s `route` venue. Positions are not dialog events:
        they are left for emsd to handle.
        """
        if isinstance(msg, BrokerdPosition):
            return []
        if isinstance(msg, BrokerdOrderAck):
            return self._on_ack(msg, broker)
        if isinstance(msg, BrokerdStatus | BrokerdFill):
            return self._on_event(msg, broker, route)
        if isinstance(msg, BrokerdError):
            return self._on_error(msg, broker)
        log.warning('unexpected message from %s ignored: %r', broker, msg)
        return []

    def _on_ack(self, ack: BrokerdOrderAck, broker: str) -> list[Effect]:
        dialog = self._dialogs.get(ack.oid)
        if dialog is None:
            log.warning('ack for unknown oid %s from %s ignored', ack.oid, broker)
            return []
        key = (broker, ack.reqid)
        owner = self._by_reqid.get(key)
        if owner is not None and owner != ack.oid:
            log.error('%s acked reqid %r for %s, already used by %s: ignored',
                      broker, ack.reqid, ack.oid, owner)
            return []
        if dialog.phase in PRE_ACK_PHASES:
            self._by_reqid[key] = ack.oid
            dialog.absorb(self._orphans.pop(key, ()))
        return self._after(dialog, dialog.handle(E.ACK, ack))

    def _on_event(
        self, msg: BrokerdStatus | BrokerdFill, broker: str, route: Mode | None,
    ) -> list[Effect]:
        key = (broker, msg.reqid)
        dialog = self.by_reqid(broker, msg.reqid)
        if dialog is None and msg.oid:
            dialog = self._dialogs.get(msg.oid)
            if dialog is not None and dialog.reqid is not None:
                # e.g. a venue that re-numbers an order on modify
                log.warning('dialog %s: %s reports reqid %r (had %r)',
                            dialog.oid, broker, msg.reqid, dialog.reqid)
                self._by_reqid[key] = dialog.oid
        if dialog is None:
            if isinstance(msg, BrokerdStatus) and msg.req is not None:
                return self._external(msg, broker, route)
            self._hold_orphan(key, msg)
            return []
        return self._after(dialog, dialog.handle(_event_of(msg), msg))

    def _on_error(self, err: BrokerdError, broker: str) -> list[Effect]:
        dialog = self._dialogs.get(err.oid)
        if dialog is None and err.reqid is not None:
            dialog = self.by_reqid(broker, err.reqid)
        if dialog is None:
            log.warning('error from %s for unknown order ignored: %r', broker, err)
            return []
        return self._after(dialog, dialog.handle(E.VENUE_ERROR, err))

    def _hold_orphan(self, key: tuple[str, ReqId], msg: Any) -> None:
        log.info('holding %s event for unknown reqid %r until its ack', key[0], key[1])
        self._orphans.setdefault(key, []).append(
            _Buffered(next(_arrival), _event_of(msg), msg)
        )
        while len(self._orphans) > self._max_orphans:
            dropped, events = self._orphans.popitem(last=False)
            log.warning('dropping %d events of never-acked reqid %r', len(events), dropped)

    def _external(
        self, msg: BrokerdStatus, broker: str, route: Mode | None,
    ) -> list[Effect]:
        """A venue order emsd did not place: open a dialog for it (routed
        back to the venue that announced it)."""
        assert msg.req is not None
        if msg.status not in ('open', 'pending'):
            log.info('finished external order %r from %s ignored', msg.reqid, broker)
            return []
        vreq = msg.req
        try:
            order = Order(
                oid=self._fresh_oid(vreq.oid),
                symbol=f'{vreq.symbol}.{broker}',
                action=vreq.action,
                exec_mode='live',
                price=vreq.price,
                size=vreq.size,
                account=msg.account or vreq.account,
                brokers=[broker],
            )
        except MessageError as err:
            log.warning('bad external order from %s: %s', broker, err.reason)
            return []
        dialog = Dialog(order, clock=self._clock, state=DialogState(
            oid=order.oid, req=order, confirmed=order, phase=P.ACKED,
            reqid=msg.reqid, external=True, route=route,
        ))
        self._dialogs[order.oid] = dialog
        self._by_reqid[(broker, msg.reqid)] = order.oid
        dialog.absorb(self._orphans.pop((broker, msg.reqid), ()))
        return self._after(dialog, dialog.announce(msg))

    def _fresh_oid(self, candidate: str) -> str:
        """`candidate` if no dialog uses it, else a new collision-free uuid."""
        if candidate and candidate not in self._dialogs:
            return candidate
        while True:
            oid = str(uuid.uuid4())
            if oid not in self._dialogs:
                return oid


class DialogTable(_VenueRouting):
    """Every order dialog of an emsd: oid -> Dialog, plus routing indexes.

    The single entry point for client commands, dark-book triggers and
    venue events; each method returns the effects to carry out. Finished
    dialogs are kept (up to `keep_finished`) so late venue events (a fill
    after the cancel) still find them and a re-used oid is recognised.
    Venue events for a reqid nobody knows yet are held (up to
    `max_orphans` reqids) until the ack that names it.

    With `track_changes` the table remembers which dialogs each input
    touched, for `drain_changes()`: that is how emsd's journal learns what
    to persist after each batch without diffing the whole table.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] = time.time_ns,
        keep_finished: int = 10_000,
        max_orphans: int = 10_000,
        track_changes: bool = False,
    ) -> None:
        self._clock = clock
        self._keep_finished = keep_finished
        self._max_orphans = max_orphans
        # oids touched since the last drain (an ordered set); None: off
        self._changed: dict[str, None] | None = {} if track_changes else None
        self._dialogs: dict[str, Dialog] = {}
        # the non-terminal ones, oldest first: `active()` costs what works
        # (the risk gate counts them on every order), not what is kept
        self._working: dict[str, Dialog] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._by_reqid: dict[tuple[str, ReqId], str] = {}
        self._orphans: OrderedDict[tuple[str, ReqId], list[_Buffered]] = OrderedDict()

    # ---- queries --------------------------------------------------------

    def __len__(self) -> int:
        return len(self._dialogs)

    def __contains__(self, oid: object) -> bool:
        return oid in self._dialogs

    def __getitem__(self, oid: str) -> Dialog:
        return self._dialogs[oid]

    def __iter__(self) -> Iterator[Dialog]:
        return iter(list(self._dialogs.values()))

    def get(self, oid: str) -> Dialog | None:
        return self._dialogs.get(oid)

    def by_reqid(self, broker: str, reqid: ReqId) -> Dialog | None:
        """The dialog the venue order `reqid` of `broker` belongs to."""
        oid = self._by_reqid.get((broker, reqid))
        return None if oid is None else self._dialogs.get(oid)

    def active(self, fqme: str | None = None) -> list[Dialog]:
        """Non-terminal dialogs (of `fqme`, if given), oldest first."""
        return [
            d for d in self._working.values()
            if not d.terminal and (fqme is None or d.fqme == fqme)
        ]

    # ---- persistence ------------------------------------------------------

    def drain_changes(self) -> list[DialogChange]:
        """Dialogs touched since the last call (oldest touch first).

        Needs `track_changes=True`. A dialog evicted meanwhile (see
        `keep_finished`) is left out.
        """
        if self._changed is None:
            raise RuntimeError('this DialogTable does not track changes')
        changed, self._changed = self._changed, {}
        out: list[DialogChange] = []
        for oid in changed:
            dialog = self._dialogs.get(oid)
            if dialog is None:
                continue
            out.append(DialogChange(dialog, dialog.drain_history()))
        return out

    def restore(self, dialogs: Iterable[Dialog]) -> list[Effect]:
        """Adopt dialogs rebuilt from a journal (see `Dialog.from_state()`).

        Returns the effects that resume them: an `Arm` for each dialog
        resting in the dark book (with its original trigger direction, when
        known). A dialog whose oid is already in the table is skipped
        (logged): restoring twice never duplicates. Restored dialogs do not
        count as changes and take the table's clock.
        """
        effects: list[Effect] = []
        for dialog in dialogs:
            if dialog.oid in self._dialogs:
                log.warning('restore: dialog %s already known, skipped', dialog.oid)
                continue
            dialog.use_clock(self._clock)  # one clock per table
            self._dialogs[dialog.oid] = dialog
            if not dialog.terminal:
                self._working[dialog.oid] = dialog
            if dialog.reqid is not None:
                self._by_reqid[(dialog.broker, dialog.reqid)] = dialog.oid
            if dialog.terminal:
                self._finished[dialog.oid] = None
            else:
                # a guard (a held bracket child) rests in the book too
                if dialog.phase is P.DARK_OPEN or dialog.s.guard == 'armed':
                    effects.append(dialog.arm_effect())
                # a gtd expiry that passed while emsd was down fires at once
                effects += dialog.expiry_timers()
        self._evict()
        return effects

    # ---- client side ----------------------------------------------------

    def on_client_msg(
        self, msg: Order | Cancel, *, owner: int | None = None, route: Mode | None = None,
    ) -> list[Effect]:
        """Apply a (decoded) client command from session `owner`."""
        if isinstance(msg, Order):
            return self.on_order(msg, owner=owner, route=route)
        return self.on_cancel(msg, owner=owner)

    def on_order(
        self, order: Order, *, owner: int | None = None, route: Mode | None = None,
    ) -> list[Effect]:
        """A new order, or a modify if `order.oid` has an active dialog.

        A new dialog is owned by session `owner` and routed to its broker's
        `route` venue; a modify leaves both as they were (a restored
        dialog is claimed by the first session that modifies it).
        """
        dialog = self._dialogs.get(order.oid)
        if dialog is None:
            dialog = Dialog(order, clock=self._clock, owner=owner, route=route)
            self._dialogs[order.oid] = dialog
            return self._after(dialog, dialog.handle(E.SUBMIT, order))
        if dialog.terminal:
            log.warning(
                'order for finished dialog %s (%s) dropped: %r',
                order.oid, dialog.phase.value, order,
            )
            return []
        if owner is not None:
            dialog.claim(owner)
        return self._after(dialog, dialog.handle(E.MODIFY, order))

    def on_cancel(
        self, cancel: Cancel | str, *, owner: int | None = None, reason: str = '',
    ) -> list[Effect]:
        """Cancel a dialog; an unknown oid gets an error reply (and leaves
        no trace). The canceller of an ownerless dialog hears its end; a
        dark order's `canceled` says `reason` (emsd's own cancels say why)."""
        oid = cancel if isinstance(cancel, str) else cancel.oid
        dialog = self._dialogs.get(oid)
        if dialog is None:
            reason = f'cancel for unknown oid {oid!r}'
            log.warning(reason)
            return [Status(oid=oid, resp='error', time_ns=self._clock(),
                           src='emsd', reason=reason)]
        if dialog.terminal:
            log.info('cancel for finished dialog %s (%s) ignored', oid, dialog.phase.value)
            return []
        if owner is not None:
            dialog.claim(owner)
        return self._after(dialog, dialog.handle(E.CANCEL, reason))

    def on_arm(self, oid: str, size: float, *, guard: bool = False) -> list[Effect]:
        """The group book arms `size` of a held/dark group member (0 with
        `guard`: held, its trigger armed; see `DialogState.guard`)."""
        dialog = self._dialogs.get(oid)
        if dialog is None or dialog.terminal:
            return []
        return self._after(dialog, dialog.handle(E.ARM, (size, guard)))

    # ---- dark book side --------------------------------------------------

    def on_trigger(self, trig: Triggered) -> list[Effect]:
        """A dark-book trigger fired for `trig.oid`."""
        dialog = self._dialogs.get(trig.oid)
        if dialog is None:
            log.warning('trigger for unknown oid %s ignored', trig.oid)
            return []
        return self._after(dialog, dialog.handle(E.TRIGGER, trig))

    def on_trail(self, move: Any) -> list[Effect]:
        """The dark book moved a trailing stop's trigger (a `TrailMove`)."""
        dialog = self._dialogs.get(move.oid)
        if dialog is None:
            log.warning('trail move for unknown oid %s ignored', move.oid)
            return []
        return self._after(dialog, dialog.handle(E.TRAIL, move))

    # ---- timers -----------------------------------------------------------

    def on_expire(self, oid: str, at_ns: int) -> list[Effect]:
        """The gtd timer `at_ns` of `oid` rang: expire it if its expiry has
        passed on the table's clock and the timer is not stale (one set
        before a modify moved the expiry later; a restored timer may also
        ring early). A timer after the expiry is a retry of its cancel."""
        dialog = self._dialogs.get(oid)
        if dialog is None or dialog.terminal:
            return []
        req = dialog.req
        if (req.tif != 'gtd' or req.expires_ns is None or at_ns < req.expires_ns
                or self._clock() < req.expires_ns):
            return []
        return self._after(dialog, dialog.handle(E.EXPIRE))

    # ---- bookkeeping ------------------------------------------------------

    def _after(self, dialog: Dialog, effects: list[Effect]) -> list[Effect]:
        """Note the change; index a working dialog (`active()`), retire
        one that just finished (keeping it for late events)."""
        if self._changed is not None:
            self._changed[dialog.oid] = None
        if not dialog.terminal:
            self._working[dialog.oid] = dialog  # (a new one joins at the end)
        elif dialog.oid not in self._finished:
            self._working.pop(dialog.oid, None)
            self._finished[dialog.oid] = None
            self._evict()
        return effects

    def _evict(self) -> None:
        """Forget the oldest finished dialogs beyond `keep_finished`."""
        while len(self._finished) > self._keep_finished:
            oid, _ = self._finished.popitem(last=False)
            old = self._dialogs.pop(oid, None)
            if old is not None and old.reqid is not None:
                self._by_reqid.pop((old.broker, old.reqid), None)
