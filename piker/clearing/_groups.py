"""Order groups: brackets and OCO, held by emsd so they work on any venue.

Two kinds of group, both made of ordinary dialogs linked by their orders'
fields (`Order.parent`, `Order.oco`), so the journal keeps the links with
each dialog and a restarted emsd rebuilds the book from its dialogs:

- a **bracket**: an entry and its children (take-profit, stop-loss: any
  dark orders on the other side with `parent = <entry oid>`, sharing one
  `oco` id). A child is `held` (nothing in the dark book) until the entry
  fills; it is then armed (`Status.armed`) for its share of the entry's
  fills: child k may close at most `min(size_k, entry filled - what its
  siblings filled or work at the venue)`. So a partial entry fill arms
  partial children, further fills grow them, a sibling's fill shrinks or
  cancels them, and while one child works at the venue the others are
  armed only for what it cannot fill: the children together never close
  more than the entry opened, whatever the venue does and in which order.
  A child already at the venue keeps the size it was released with. An
  entry that ends with nothing filled cancels its children; once the
  entry has ended and its children closed all it filled, the rest are
  cancelled, saying which sibling filled.
- a client **OCO group**: orders with the same `oco` id and no parent.
  Together they fill at most the largest size any of them was placed
  with: a fill of one shrinks the others (a dark one's armed size, a live
  one by a venue modify) or cancels them once nothing is left.

The book is pure: `react()` takes the effects of one input, looks at the
dialogs they touched and returns the effects of its own verdicts (arming,
modifies, cancels, made through the `DialogTable`, so they are journaled
and published like any other). Released children go through the usual
trigger path (risk checked at release).
"""
from __future__ import annotations

from collections.abc import Iterable

from ..log import get_logger
from ._dialogs import Dialog, DialogTable, Effect, Mode, Phase
from ._messages import Order, Status

__all__ = ['GroupBook']

log = get_logger(__name__)

# sizes are floats: sums of fills carry rounding
_EPS = 1e-9
# a chain of verdicts settles in a few rounds (a fill, its sibling's
# shrink, that one's end); the bound only guards against a bug looping
_MAX_ROUNDS = 8

_DARK = frozenset({Phase.HELD, Phase.DARK_OPEN})
_CANCELLING = frozenset({Phase.CANCELING, Phase.CANCEL_STASHED})
_RESTING = frozenset({Phase.ACKED, Phase.OPEN})

Key = tuple[str, str]  # ('bracket', entry oid) | ('oco', group id)


def _short(oid: str) -> str:
    return oid[:8]


def _working(d: Dialog) -> float:
    """What `d` may still fill at the venue (0 while emsd holds it)."""
    if d.terminal or d.phase in _DARK or d.phase is Phase.NEW:
        return 0.0
    size = max(d.req.size, d.s.confirmed.size)
    return max(size - d.filled, 0.0)


def _placed_size(d: Dialog) -> float:
    """The size `d` was placed with (its first Status's order)."""
    first = d.history[0].req if d.history else None
    return first.size if first is not None else d.req.size


class GroupBook:
    """Every bracket and OCO group of an emsd, over its `DialogTable`."""

    def __init__(self, dialogs: DialogTable) -> None:
        self.dialogs = dialogs
        # entry oid -> its children's oids; client oco id -> member oids
        self.children: dict[str, list[str]] = {}
        self.members: dict[str, list[str]] = {}
        self._known: set[str] = set()

    # ---- the index --------------------------------------------------------

    def _index(self, d: Dialog) -> list[Key]:
        """File `d` under its groups (once); the groups it belongs to."""
        req = d.req
        keys: list[Key] = []
        if req.parent is not None:
            keys.append(('bracket', req.parent))
        elif req.oco is not None:
            keys.append(('oco', req.oco))
        if d.oid in self.children:
            keys.append(('bracket', d.oid))
        if d.oid not in self._known:
            self._known.add(d.oid)
            if req.parent is not None:
                self.children.setdefault(req.parent, []).append(d.oid)
            elif req.oco is not None:
                self.members.setdefault(req.oco, []).append(d.oid)
        return keys

    def rebuild(self) -> None:
        """Index every dialog of the table (after a restore); `settle()`
        them once their markets' feeds are up."""
        for d in self.dialogs:
            self._index(d)

    def settle(self) -> list[Effect]:
        """Settle every group: what changed while emsd was down (or
        before the book knew the group) takes effect."""
        keys: dict[Key, None] = {('bracket', e): None for e in self.children}
        keys.update({('oco', g): None for g in self.members})
        return self._settle_all(keys)

    def group_of(self, oid: str) -> list[str]:
        """The oids grouped with `oid` (its bracket or oco group), itself
        included; [] if it is in none."""
        d = self.dialogs.get(oid)
        if d is None:
            return []
        entry = d.req.parent or (oid if oid in self.children else None)
        if entry is not None:
            return [entry, *self.children.get(entry, [])]
        if d.req.oco is not None:
            return list(self.members.get(d.req.oco, []))
        return []

    # ---- admission ----------------------------------------------------------

    def check(self, order: Order, mode: Mode | None = None) -> str:
        """Why `order` (from a session of `mode`) cannot join or modify its
        group ('' if it can).

        Run by emsd's intake before the dialog table sees the order: a
        refusal loses nothing (no dialog, no group change).
        """
        live = self.dialogs.get(order.oid)
        if live is not None:
            return self._check_modify(live, order)
        if order.parent is not None:
            return self._check_child(order, mode)
        if order.oco is not None:
            if order.action == 'alert':
                return 'an alert cannot be in an oco group (it fills nothing)'
            owner = self._bracket_of_oco(order.oco)
            if owner is not None:
                return (f'oco id {order.oco!r} is the bracket of entry {owner}: '
                        'a bracket child needs parent set')
        return ''

    def _check_modify(self, live: Dialog, order: Order) -> str:
        old = live.req
        if (order.parent, order.oco) != (old.parent, old.oco):
            return (f'a modify cannot change parent/oco ({old.parent!r}, {old.oco!r} '
                    f'-> {order.parent!r}, {order.oco!r})')
        if old.parent is not None and order.exec_mode != 'dark' and live.phase in _DARK:
            return 'a bracket child is held by emsd until its entry fills: exec_mode must be dark'
        entry = self.dialogs.get(old.parent) if old.parent is not None else None
        if entry is not None and order.size > entry.req.size * (1 + _EPS):
            return f'child size {order.size:g} is larger than its entry\'s {entry.req.size:g}'
        return ''

    def _bracket_of_oco(self, oco: str) -> str | None:
        for entry, kids in self.children.items():
            for oid in kids:
                d = self.dialogs.get(oid)
                if d is not None and d.req.oco == oco:
                    return entry
        return None

    def _check_child(self, order: Order, mode: Mode | None) -> str:
        parent = order.parent
        assert parent is not None
        entry = self.dialogs.get(parent)
        if entry is None:
            return f'unknown entry {parent!r}: place the entry before its children'
        ereq = entry.req
        if ereq.parent is not None:
            return f'entry {parent} is itself a bracket child: brackets do not nest'
        if ereq.action == 'alert':
            return f'entry {parent} is an alert: it opens no position to close'
        if ereq.symbol != order.symbol:
            return f'a bracket child must trade its entry\'s market {ereq.symbol!r}, not {order.symbol!r}'
        if ereq.account != order.account:
            return f'a bracket child must use its entry\'s account {ereq.account!r}, not {order.account!r}'
        if mode is not None and entry.route is not None and entry.route != mode:
            return (f'entry {parent} trades {entry.route}: its children must come from '
                    f'a {entry.route} session, not {mode}')
        side = 'sell' if ereq.action == 'buy' else 'buy'
        if order.action != side:
            return f'a child of a {ereq.action} entry closes it: it must {side}, not {order.action}'
        if order.exec_mode != 'dark':
            return 'a bracket child is held by emsd until its entry fills: exec_mode must be dark'
        if order.size > ereq.size * (1 + _EPS):
            return f'child size {order.size:g} is larger than its entry\'s {ereq.size:g}'
        if entry.terminal and entry.filled <= _EPS:
            return f'entry {parent} is {entry.phase.value} with nothing filled: nothing to close'
        siblings = [self.dialogs.get(o) for o in self.children.get(parent, [])]
        ocos = {s.req.oco for s in siblings if s is not None and not s.terminal}
        if ocos and ocos != {order.oco}:
            return (f'children of one entry share one oco id: entry {parent} has '
                    f'{sorted(map(str, ocos))}, not {order.oco!r}')
        if order.oco is not None:
            if self.members.get(order.oco):
                return f'oco id {order.oco!r} is a client oco group, not a bracket'
            owner = self._bracket_of_oco(order.oco)
            if owner is not None and owner != parent:
                return f'oco id {order.oco!r} is the bracket of entry {owner}, not {parent}'
        return ''

    # ---- verdicts -----------------------------------------------------------

    def react(self, effects: Iterable[Effect]) -> list[Effect]:
        """The effects of the group verdicts on what `effects` changed.

        Looks at every dialog a Status of `effects` names (a new child, a
        fill, an end...), settles its groups, and repeats on the Statuses
        that produced, so a chain (TP fills -> SL cancelled) resolves in
        one call.
        """
        out: list[Effect] = []
        batch = list(effects)
        for _ in range(_MAX_ROUNDS):
            keys: dict[Key, None] = {}
            for eff in batch:
                if isinstance(eff, Status):
                    d = self.dialogs.get(eff.oid)
                    if d is not None:
                        for key in self._index(d):
                            keys[key] = None
            if not keys:
                return out
            batch = self._settle_all(keys)
            out += batch
        log.error('group verdicts did not settle in %d rounds: %r', _MAX_ROUNDS, batch)
        return out

    def _settle_all(self, keys: Iterable[Key]) -> list[Effect]:
        out: list[Effect] = []
        for kind, ident in keys:
            if kind == 'bracket':
                out += self._settle_bracket(ident)
            else:
                out += self._settle_oco(ident)
        return out

    def _kids(self, oids: list[str]) -> list[Dialog]:
        return [d for d in map(self.dialogs.get, oids) if d is not None]

    def _settle_bracket(self, entry_oid: str) -> list[Effect]:
        kids = self._kids(self.children.get(entry_oid, []))
        if not any(not k.terminal for k in kids):
            return []
        entry = self.dialogs.get(entry_oid)
        if entry is None:
            log.error('bracket children of unknown entry %s left as they are', entry_oid)
            return []
        opened = entry.filled
        if entry.terminal and opened <= _EPS:
            why = (f'entry {_short(entry_oid)} {entry.phase.value} with nothing filled: '
                   'nothing to close')
            return self._cancel(kids, why)
        closed = sum(k.filled for k in kids)
        out: list[Effect] = []
        for k in kids:
            if k.terminal or k.phase in _CANCELLING:
                continue
            others = [j for j in kids if j is not k]
            room = min(k.req.size, opened - sum(j.filled + _working(j) for j in others))
            if k.phase in _DARK:
                out += self._settle_child(k, room, others, entry.terminal,
                                          open_left=opened - closed)
            else:
                out += self._shrink_live(k, room, self._closed_by(others, closed, opened))
        return out

    def _settle_child(
        self, k: Dialog, room: float, others: list[Dialog], entry_done: bool,
        open_left: float,
    ) -> list[Effect]:
        """The verdict on dark child `k` that may release `room`.

        With no room while a sibling works at the venue for what is left
        open, `k` is a *guard*: held (releasing nothing) with its trigger
        armed; once it fires, the working siblings are cancelled, and their
        end leaves it room to arm again (with its first direction: the
        next quote past its level releases it).
        """
        if room > _EPS:
            if k.phase is Phase.HELD or k.s.armed is None or abs(room - k.s.armed) > _EPS:
                return self.dialogs.on_arm(k.oid, room)
            return []
        busy = [j for j in others if _working(j) > _EPS]
        if busy and open_left > _EPS:
            if k.s.guard == 'fired':
                # a sibling resting at the venue gives way; one just
                # released (not acked yet) is likely filling: wait for it
                resting = [j for j in busy if j.phase in _RESTING]
                return self._cancel(resting, f'OCO: {_short(k.oid)} triggered')
            if k.s.guard is None:
                return self.dialogs.on_arm(k.oid, 0.0, guard=True)
            return []
        if entry_done and not busy:
            closed = sum(j.filled for j in others)
            return self._cancel([k], self._closed_by(others, closed, closed + open_left))
        if k.phase is Phase.DARK_OPEN or k.s.guard is not None or k.s.armed != 0.0:
            return self.dialogs.on_arm(k.oid, 0.0)
        return []

    def _settle_oco(self, oco: str) -> list[Effect]:
        members = self._kids(self.members.get(oco, []))
        if not any(not m.terminal for m in members):
            return []
        budget = max(_placed_size(m) for m in members)
        out: list[Effect] = []
        for m in members:
            if m.terminal or m.phase in _CANCELLING:
                continue
            others = [j for j in members if j is not m]
            took = sum(j.filled for j in others)
            if took <= _EPS:
                continue
            room = min(m.req.size, budget - took)
            why = self._closed_by(others, took, budget, oco=True)
            if m.phase in _DARK:
                if room <= _EPS:
                    out += self._cancel([m], why)
                elif m.s.armed is None or abs(room - m.s.armed) > _EPS:
                    out += self.dialogs.on_arm(m.oid, room)
            else:
                out += self._shrink_live(m, room, why)
        return out

    def _shrink_live(self, d: Dialog, room: float, why: str) -> list[Effect]:
        """A live member may fill at most `room` in all: shrink or cancel it."""
        if max(d.req.size, d.s.confirmed.size) <= room + _EPS:
            return []
        if room <= d.filled + _EPS:
            return self._cancel([d], why)
        log.info('group: %s shrunk to %g (%s)', d.oid, room, why)
        return self.dialogs.on_order(d.req.copy({'size': room}))

    def _cancel(self, dialogs: list[Dialog], why: str) -> list[Effect]:
        out: list[Effect] = []
        for d in dialogs:
            if not d.terminal and d.phase not in _CANCELLING:
                log.info('group: cancelling %s: %s', d.oid, why)
                out += self.dialogs.on_cancel(d.oid, reason=why)
        return out

    @staticmethod
    def _closed_by(others: list[Dialog], took: float, of: float, oco: bool = False) -> str:
        names = ', '.join(_short(j.oid) for j in others if j.filled > _EPS) or 'siblings'
        what = 'budget' if oco else 'filled size of the entry'
        return f'OCO: {names} filled {took:g} of the {of:g} {what}: nothing left'
