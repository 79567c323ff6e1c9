"""Reconciling emsd's dialogs with a venue's own report of its orders.

A venue keeps its orders when emsd's connection to it drops: emsd may
restart (its dialogs come back from the journal), the venue may restart
(the paper engine reloads its orders from disk), or just the connection
may break. Either way, whatever the venue said meanwhile - fills, a
cancel's confirmation, the ack of an order sent just before the break -
never reached emsd. So a venue that knows its orders opens every trades
dialogue with a *report* (the backend contract in `piker.brokers`):

1. the recent fills and final statuses, oldest first (emsd may have
   missed them; duplicates are harmless: fills are dropped by tid, a
   second final status by the dialog state machine);
2. one `BrokerdStatus(status='open', req=...)` per working order;
3. `BrokerdOrdersSynced(reqids)`: the complete set of working orders.

`VenueSync` turns that report into dialog effects, one message at a time
and then once more at the end. Nothing is sent to the venue on the new
connection before the report ends (emsd holds new requests back), so
every request of a dialog still in flight was sent on an older
connection and its answer is lost for good. The rules:

- an event about an order emsd knows (by reqid, else by oid) is applied
  to its dialog; a dialog still waiting for its ack (the ack was lost)
  first gets one made from the event, which names the reqid - a cancel
  or modify stashed meanwhile then goes out as usual;
- a working order emsd does not know becomes a new *external* dialog
  (`DialogTable`'s usual path: a collision-free oid), so it is visible,
  cancellable and never duplicated; a past event of an order emsd does
  not know is dropped (nothing is left to act on);
- a working order with modifies/cancels in flight: modifies the venue
  did apply (its version matches) are confirmed; the others are
  refused with a reason (nothing changed at the venue) and a lost cancel
  is sent again - the trader asked for it;
- at the end, each of this venue's dialogs that the venue does not list
  as working is resolved: a live one ends `closed` if its fills cover
  it, else `canceled`, reason "not found at venue after reconnect"; one
  still waiting for its ack never reached the venue and ends in `error`.

Pure: no IO, no actors; emsd carries out the effects.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..log import get_logger
from ._dialogs import PRE_ACK_PHASES, Dialog, DialogTable, Effect, Mode, Phase
from ._messages import (
    BrokerdError,
    BrokerdFill,
    BrokerdOrderAck,
    BrokerdOrdersSynced,
    BrokerdStatus,
)

__all__ = ['NOT_AT_VENUE', 'VenueSync']

log = get_logger(__name__)

NOT_AT_VENUE = 'not found at venue after reconnect'


def _announces(msg: Any) -> bool:
    """A venue's statement that an order works there now."""
    return (
        isinstance(msg, BrokerdStatus) and msg.req is not None
        and msg.status in ('open', 'pending')
    )


class VenueSync:
    """One venue's order report, applied to emsd's `DialogTable`.

    The venue is `broker`'s `route` one: emsd routes per (broker, mode),
    and a dialog is this venue's if its route says so. Feed each report message to `on_msg()`,
    then the closing `BrokerdOrdersSynced` to `finish()`.
    """

    def __init__(
        self,
        table: DialogTable,
        broker: str,
        venue: str,
        route: Mode,
        *,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.table = table
        self.broker = broker
        self.venue = venue
        self.route = route
        self._clock = clock
        # oids the venue announced as working, and counts for the log
        self.announced: set[str] = set()
        self.applied = 0
        self.dropped = 0
        self.resolved: list[str] = []

    def _ours(self, dialog: Dialog) -> bool:
        return dialog.broker == self.broker and dialog.route == self.route

    def _find(self, msg: BrokerdStatus | BrokerdFill) -> Dialog | None:
        dialog = self.table.by_reqid(self.broker, msg.reqid)
        if dialog is None and msg.oid:
            dialog = self.table.get(msg.oid)
            if dialog is not None and dialog.broker != self.broker:
                dialog = None
        return dialog

    def on_msg(self, msg: Any) -> list[Effect]:
        """Apply one message of the report (a past event or an announcement)."""
        if not isinstance(msg, BrokerdStatus | BrokerdFill):
            # not part of a report (an ack, an error): the usual path
            return self.table.on_broker_msg(msg, self.broker, self.route)
        dialog = self._find(msg)
        if dialog is None:
            if _announces(msg):
                effects = self.table.on_broker_msg(msg, self.broker, self.route)  # external
                ext = self.table.by_reqid(self.broker, msg.reqid)
                if ext is not None:
                    self.announced.add(ext.oid)
                    log.warning('%s reports working order %r that emsd did not know: '
                                'opened dialog %s for it', self.venue, msg.reqid, ext.oid)
                return effects
            self.dropped += 1
            log.debug('%s: past event of an order emsd does not track dropped: %r',
                      self.venue, msg)
            return []
        self.applied += 1
        # requests sent before this connection (not those the made-up ack
        # below sends now: a stashed cancel or modify)
        in_flight = list(dialog.outstanding)
        effects: list[Effect] = []
        if dialog.phase in PRE_ACK_PHASES:
            # its ack went down with the old connection: the event names it
            effects += self.table.on_broker_msg(BrokerdOrderAck(
                oid=dialog.oid, reqid=msg.reqid, account=dialog.req.account,
            ), self.broker)
        if not _announces(msg):
            return effects + self.table.on_broker_msg(msg, self.broker)
        self.announced.add(dialog.oid)
        assert isinstance(msg, BrokerdStatus)
        effects += self._confirm_applied(dialog, msg, in_flight)
        effects += self.table.on_broker_msg(msg, self.broker)
        return effects + self._refuse_lost(dialog, in_flight)

    def _confirm_applied(
        self, dialog: Dialog, ann: BrokerdStatus, in_flight: list[Any],
    ) -> list[Effect]:
        """Ack the in-flight modifies up to the one the venue works now."""
        assert ann.req is not None
        unacked = [r for r in in_flight if not r.acked]
        applied = None
        for i, request in enumerate(unacked):
            order = request.order
            if (request.kind == 'modify' and order is not None
                    and order.price == ann.req.price and order.size == ann.req.size):
                applied = i
        if applied is None:
            return []
        effects: list[Effect] = []
        for request in unacked[:applied + 1]:
            if request.kind == 'modify':
                effects += self.table.on_broker_msg(BrokerdOrderAck(
                    oid=dialog.oid, reqid=ann.reqid, account=dialog.req.account,
                ), self.broker)
        return effects

    def _refuse_lost(self, dialog: Dialog, in_flight: list[Any]) -> list[Effect]:
        """Requests still in flight were never applied: say so; re-cancel.

        `DialogTable` takes a venue error as the verdict on the oldest
        request, so only a dialog whose every request is from before the
        reconnect is handled (always the case: nothing new was sent yet).
        """
        lost = [r for r in dialog.outstanding
                if not r.acked and any(r is f for f in in_flight)]
        if len(lost) != len([r for r in dialog.outstanding if not r.acked]):
            log.warning('dialog %s has requests from before and after the reconnect '
                        'in flight: left to the venue to answer', dialog.oid)
            return []
        if not lost or dialog.terminal:
            return []
        effects: list[Effect] = []
        reason = f'lost when the connection to {self.venue} dropped (not applied there)'
        for request in lost:
            effects += self.table.on_broker_msg(BrokerdError(
                oid=dialog.oid, reqid=dialog.reqid,
                reason=reason + ('; sending it again' if request.kind == 'cancel' else ''),
            ), self.broker)
        if any(r.kind == 'cancel' for r in lost) and not dialog.terminal:
            effects += self.table.on_cancel(dialog.oid)
        return effects

    def finish(self, synced: BrokerdOrdersSynced) -> list[Effect]:
        """Resolve this venue's dialogs it does not list as working."""
        working = {str(r) for r in synced.reqids}
        effects: list[Effect] = []
        for dialog in self.table.active():
            if dialog.phase in (Phase.NEW, Phase.HELD, Phase.DARK_OPEN) or not self._ours(dialog):
                continue
            if dialog.phase in PRE_ACK_PHASES:
                self.resolved.append(dialog.oid)
                effects += self.table.on_broker_msg(BrokerdError(
                    oid=dialog.oid,
                    reason=f'{NOT_AT_VENUE}: the order never reached {self.venue} '
                           '(nothing executed)',
                ), self.broker)
            elif str(dialog.reqid) not in working:
                self.resolved.append(dialog.oid)
                effects += self.table.on_broker_msg(BrokerdStatus(
                    reqid=dialog.reqid,  # type: ignore[arg-type]  # live: has one
                    oid=dialog.oid,
                    status='closed' if dialog.fully_filled else 'canceled',
                    account=dialog.req.account,
                    time_ns=self._clock(),
                    filled=dialog.filled,
                    remaining=dialog.remaining,
                    reason=NOT_AT_VENUE,
                ), self.broker)
        # routine at every (re)connect: loud only when it changed something
        noteworthy = self.applied or self.dropped or self.resolved
        (log.warning if noteworthy else log.info)(
            '%s order report: %d working, %d event(s) applied, %d of untracked orders '
            'dropped, %d dialog(s) resolved as gone%s',
            self.venue, len(working), self.applied, self.dropped, len(self.resolved),
            f': {self.resolved}' if self.resolved else '',
        )
        return effects
