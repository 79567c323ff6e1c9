"""emsd's executor of the core's effects: what joins its IO edges.

`DialogTable` turns every input into effects; `Effects.execute()` carries
them out, always in the same order:

1. the dark book (`Arm`/`Disarm`, local, no checkpoint) - so the journal
   records the direction a trigger was armed with - and emsd's timers
   (`Expire`: a gtd order's expiry);
2. the journal (what the batch changed, one group-commit ticket);
3. the batch's `ToVenue` commands, one frame per venue relay (a batch
   frame when several: a client's batch of orders is one venue write)
   - if the batch changed the dark book, after its commit (a restarted
   emsd must never re-arm a trigger whose order already went to the
   venue);
4. the batch's `Status`es, to the risk gate and the client fan-out -
   once its venue commands are written (a `pending` is true when told:
   the order went to the venue; one whose command could not be sent is
   never told `pending`, only the `error` that ends it), and held until
   committed when they promise something a crash must not lose.

A plain live order's `pending` needs no commit: the venue's order report
covers it (`_covered`).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Protocol

from ..log import get_logger
from ._dialogs import Arm, DialogTable, Disarm, Effect, Expire, Mode, ToVenue
from ._fanout import ClientConn, Clients
from ._groups import GroupBook
from ._journal import JournalEntry, JournalWriter, entries_from_changes
from ._messages import BrokerdError, BrokerdOrder, BrokerdPosition, Status
from ._risk import RiskGate

__all__ = ['Effects']

log = get_logger(__name__)

# a Status saying one of these is published only once the journal has it
_DURABLE_RESPS = frozenset({'pending', 'held', 'dark_open', 'dark_triggered'})


def _untold(statuses: list[Status], failed: list[tuple[ToVenue, str]]) -> list[Status]:
    """The Statuses of a batch that are true once its venue commands were
    written: not the `pending` of an order whose command was not sent."""
    if not failed:
        return statuses
    unsent = {eff.msg.oid for eff, _ in failed if isinstance(eff.msg, BrokerdOrder)}
    return [st for st in statuses if not (st.resp == 'pending' and st.oid in unsent)]


class Venues(Protocol):
    """Where `ToVenue` commands go (`_relays.Relays`)."""

    async def send(self, effs: list[ToVenue], mode: Mode) -> str:
        """Send the commands of one venue as one frame; '' or why they
        could not be sent."""
        ...

    def reports_orders(self, broker: str, mode: Mode) -> bool:
        """Whether that venue opens each dialogue with its order report."""
        ...


class Dark(Protocol):
    """Where `Arm`/`Disarm` go (`_dark_feeds.DarkFeeds`)."""

    def arm(self, eff: Arm) -> None: ...

    def disarm(self, oid: str) -> None: ...

    def news(self) -> list[Effect]:
        """What arming decided (a trailing stop's first trigger)."""
        ...


class Timers(Protocol):
    """Where `Expire` goes (`_expiry.Expiries`)."""

    def schedule(self, eff: Expire) -> None: ...


class Effects:
    """Carries out dialog effects on the dark book, journal, clients and
    venues (wired in by `connect()`; the journal by `attach()`)."""

    def __init__(self, dialogs: DialogTable, risk: RiskGate, clients: Clients) -> None:
        self.dialogs = dialogs
        self.risk = risk
        self.clients = clients
        # brackets and OCO groups: their verdicts join every batch
        self.groups = GroupBook(dialogs)
        self.venues: Venues | None = None
        self.dark: Dark | None = None
        self.timers: Timers | None = None
        # the journal's group-commit writer (None: not (yet) open, or no
        # journal), and the Status batches held back until a commit:
        # (ticket, statuses, origin), in order
        self.writer: JournalWriter | None = None
        self._held: deque[tuple[int, list[Status], ClientConn | None]] = deque()

    def connect(self, venues: Venues, dark: Dark, timers: Timers | None = None) -> None:
        self.venues, self.dark, self.timers = venues, dark, timers

    def attach(self, writer: JournalWriter | None) -> None:
        """Journal from now on (None: stop, publishing what was held)."""
        self.writer = writer
        if writer is None:
            self.release(None)

    # -- the order of things ----------------------------------------------------

    async def execute(self, effects: Iterable[Effect], origin: ClientConn | None = None) -> None:
        """Carry out effects (see the module doc for the order)."""
        effects, commit_first, after_send = self._book_and_journal(effects, origin)
        venue = [eff for eff in effects if isinstance(eff, ToVenue)]
        if venue and commit_first and self.writer is not None:
            await self.writer.flush(commit_first)
        failed = await self._send(venue) if venue else []
        if after_send is not None:
            statuses, told_to, ticket, durable = after_send
            self._emit(_untold(statuses, failed), told_to, ticket, durable=durable)
        for eff, problem in failed:
            self._send_failed(eff, problem)

    def execute_nowait(self, effects: Iterable[Effect]) -> None:
        """`execute()` for effects that need no venue round trip."""
        self._book_and_journal(effects, None, covers=False)

    def _book_and_journal(
        self, effects: Iterable[Effect], origin: ClientConn | None, covers: bool = True,
    ) -> tuple[list[Effect], int, tuple[list[Status], ClientConn | None, int, bool] | None]:
        """Dark book, journal, then the batch's Statuses (`_emit`).

        Returns the effects; if the batch changed the dark book, its
        journal ticket (else 0); and, if the batch has venue commands
        (and `covers`: `execute()` sends them), its Statuses, origin,
        ticket and whether they wait for the commit, to publish once the
        commands are written (else None: published or held)."""
        effects = list(effects)
        effects += self.groups.react(effects)
        dark_change = False
        i = 0
        while i < len(effects):  # arming may add effects (`Dark.news`)
            eff = effects[i]
            i += 1
            if isinstance(eff, Arm):
                assert self.dark is not None
                self.dark.arm(eff)
                news = self.dark.news()  # (a trailing child's start, or end)
                effects += news + self.groups.react(news)
                dark_change = True
            elif isinstance(eff, Disarm):
                assert self.dark is not None
                self.dark.disarm(eff.oid)
                dark_change = True
            elif isinstance(eff, Expire) and self.timers is not None:
                self.timers.schedule(eff)
        ticket = self._journal_changes()
        statuses = [eff for eff in effects if isinstance(eff, Status)]
        after_send = None
        if statuses:
            durable = dark_change or any(st.resp in _DURABLE_RESPS for st in statuses)
            sends = covers and any(isinstance(eff, ToVenue) for eff in effects)
            if durable and not dark_change and sends and self._covered(statuses, effects):
                durable = False
            if sends:
                after_send = (statuses, origin, ticket, durable)
            else:
                self._emit(statuses, origin, ticket, durable=durable)
        return effects, ticket if dark_change else 0, after_send

    def _covered(self, statuses: list[Status], effects: list[Effect]) -> bool:
        """Whether every promise of the batch is one its venue keeps.

        A `pending` says the order went to the venue. Should emsd die
        before the journal has it, a venue that reports its orders
        (`_reconcile`) hands the order back, under its oid, to the next
        emsd - so the `pending` of a plain live order (its venue command
        in this batch) needs no commit first. Not so for what only emsd
        knows: an order in a bracket or OCO group (its siblings count on
        it), a gtd order (emsd ends it), and anything in the dark book.
        """
        assert self.venues is not None
        sent = {eff.msg.oid for eff in effects
                if isinstance(eff, ToVenue) and isinstance(eff.msg, BrokerdOrder)}
        for st in statuses:
            if st.resp not in _DURABLE_RESPS:
                continue
            if st.resp != 'pending' or st.oid not in sent:
                return False
            dialog = self.dialogs.get(st.oid)
            if dialog is None or dialog.route is None or dialog.req.tif == 'gtd':
                return False
            if self.groups.group_of(st.oid):
                return False
            if not self.venues.reports_orders(dialog.broker, dialog.route):
                return False
        return True

    # -- the journal ------------------------------------------------------------

    def _journal_changes(self) -> int:
        """Queue what the last input changed for the journal (one batch);
        returns the writer's ticket for it (0: no journal)."""
        changes = self.dialogs.drain_changes()
        writer = self.writer
        if writer is None:
            return 0
        if changes:
            return writer.submit(entries_from_changes(changes))
        return writer.ticket

    def journal_refusal(self, status: Status, mode: Mode) -> None:
        """Keep a refused request in the history (it never made a dialog)."""
        if self.writer is not None:
            dialog = self.dialogs.get(status.oid)
            route = dialog.route if dialog is not None else None
            self.writer.submit([JournalEntry(
                oid=status.oid, events=[status], route=route or mode,
            )])

    def _emit(
        self, statuses: list[Status], origin: ClientConn | None, ticket: int, *,
        durable: bool,
    ) -> None:
        """Publish a batch's Statuses, in batch order across batches.

        The journal commits behind the order path (`JournalWriter`): the
        venue already has a new order while its batch is being written.
        What a client is *told* about a placed or re-armed order (a batch
        that changed the dark book, or says `pending`, `dark_open` or
        `dark_triggered`) is held until committed: a client that heard its
        order was taken finds it again after any emsd crash (a plain live
        order's `pending` excepted: `_covered`). Every later
        batch queues behind a held one, so no client sees a dialog's events
        out of order. Other news (open, fills, ends) goes out at once: a
        crash before its commit loses it from the journal only, and the
        venue's order report brings it back (`_reconcile`).
        """
        writer = self.writer
        if writer is not None and (self._held or (durable and writer.committed < ticket)):
            self._held.append((ticket, statuses, origin))
            writer.want(ticket)
            return
        for st in statuses:
            self.publish(st, origin)

    def release(self, committed: int | None) -> None:
        """Publish held batches up to ticket `committed` (None: all)."""
        held = self._held
        while held and (committed is None or held[0][0] <= committed):
            _, statuses, origin = held.popleft()
            for st in statuses:
                self.publish(st, origin)

    # -- the world --------------------------------------------------------------

    def publish(self, status: Status, origin: ClientConn | None = None) -> None:
        """A Status leaves emsd: the risk gate counts it, clients hear it."""
        self.risk.observe(status)
        self.clients.publish(status, origin)

    def position(self, msg: BrokerdPosition) -> None:
        """A venue's position report: to the risk gate and its clients."""
        self.risk.observe(msg)
        self.clients.position(msg)

    async def to_venue(self, eff: ToVenue) -> None:
        """Send a venue command; one that cannot be sent ends in an error."""
        for failed, problem in await self._send([eff]):
            self._send_failed(failed, problem)

    async def _send(self, effs: list[ToVenue]) -> list[tuple[ToVenue, str]]:
        """Send venue commands, in order, one frame per venue (a batch's
        orders at one venue are one write); the ones that could not be
        sent, with why."""
        assert self.venues is not None
        groups: dict[tuple[str, Mode], list[ToVenue]] = {}
        for eff in effs:
            dialog = self.dialogs.get(eff.msg.oid)
            mode = (dialog.route if dialog is not None else None) or 'paper'
            groups.setdefault((eff.broker, mode), []).append(eff)
        failed = []
        for (_, mode), group in groups.items():
            problem = await self.venues.send(group, mode)
            if problem:
                failed += [(eff, problem) for eff in group]
        return failed

    def _send_failed(self, eff: ToVenue, problem: str) -> None:
        log.error('cannot send %s for %s: %s', type(eff.msg).__name__, eff.msg.oid, problem)
        self.execute_nowait(self.dialogs.on_broker_msg(BrokerdError(
            oid=eff.msg.oid, reqid=getattr(eff.msg, 'reqid', None), reason=problem,
        ), eff.broker))
