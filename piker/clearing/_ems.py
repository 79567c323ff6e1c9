"""emsd: the order execution management daemon.

One emsd per registry sits between every order client and every venue.
It is a thin shell around the pure core: `DialogTable` (the per-order
state machine) turns each input into *effects*, `DarkBook` indexes the
dark triggers, and the `Router` here carries the effects out:

- `Status` -> fanned out to every client subscribed to the dialog's fqme
  (and to the client that placed it) through per-client bounded queues,
  so a slow or dead client never stalls the others (a client whose queue
  overflows is disconnected; it gets the full state back on reconnect);
- `ToVenue` -> sent on the trade relay of the dialog's (broker, mode);
- `Arm`/`Disarm` -> the dark book, fed by one quote feed per market.

A trade relay is one trades dialogue per (broker, mode) with the venue
(`brokerd.<broker>` for live, `paperboi.<broker>` for paper), shared by all
clients and markets, started on first use.

Everything is single-threaded trio: between a quote firing a trigger and
its dialog moving to `dark_triggered` there is no checkpoint, so a trigger
and a cancel can never both win.

Durability: every batch of effects is written to the journal (`_journal`,
SQLite in the config dir) before any of it leaves emsd - a client never
sees a Status the journal could lose to a crash. A restarted emsd (pikerd
respawns a crashed one and runs its start-up hook, `startup()`) restores
every active dialog from it at once, with or without clients: dark orders
and alerts are re-armed with their original trigger directions once their
market's feed is up, and the venue relays of live orders are re-opened.

Venue outages: a relay that (re)connects to a venue that reports its
orders (the paper engine; live backends with `REPORTS_ORDERS`) first
reconciles the dialogs with that report (`_reconcile`): missed fills and
cancels are applied, lost acks recovered, orders the venue no longer has
resolved; requests wait for it meanwhile. While a venue is down, clients
get a notice (not an error) for each order working there, and anything
that cannot be sent fails with an `error` saying why. A lost market feed
gets the same kind of notice for the dark orders waiting on it.
"""
from __future__ import annotations

import math
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any, Literal

import tractor
import trio

# every import up front: emsd answers heartbeats from its first handshake
# on, and a lazy import of a heavy package (numpy via the feed layer) would
# block its event loop long enough to look dead on a loaded machine
from ..accounting import MktPair, unpack_fqme
from ..brokers import brokerd_modules, get_brokermod
from ..config import load_conf
from ..data import open_feed
from ..log import get_console_log, get_logger
from ..service import (
    PeerLost,
    maybe_spawn_daemon,
    open_drained_stream,
    open_watched_context,
    watch_peer,
)
from ._dark import DarkBook, Triggered
from ._dialogs import Arm, Dialog, DialogTable, Disarm, Effect, Phase, ToVenue
from ._journal import (
    Journal,
    JournalEntry,
    JournalError,
    JournalWriter,
    entries_from_changes,
    restore_dialogs,
)
from ._messages import (
    BrokerdError,
    BrokerdOrdersSynced,
    BrokerdPosition,
    Cancel,
    MessageError,
    Order,
    Status,
    decode_broker_msg,
    decode_client_msg,
    error_status,
)
from ._paper_engine import PAPERBOI_STARTUP, leave_if_cancelled, open_trade_dialog
from ._reconcile import VenueSync
from ._risk import quote_mark
from ._risk_state import open_risk_gate

log = get_logger(__name__)

Mode = Literal['live', 'paper']
EMSD_NAME = 'emsd'
# per-client queue of outgoing messages; a client this far behind is cut
CLIENT_QUEUE = 20_000
# messages a stream's drain task holds before it applies backpressure:
# a venue's events, and one client's commands (a bound per client, so a
# flooding client slows itself down, not emsd's memory)
STREAM_BUFFER = 100_000
CLIENT_COMMANDS = 10_000
# messages to a client queued while one is sent leave together, as a list
# of at most this many (the client unpacks it): under load the fan-out
# costs a frame per batch instead of one per Status
SEND_BATCH = 256
# a Status saying one of these is published only once the journal has it
_DURABLE_RESPS = frozenset({'pending', 'dark_open', 'dark_triggered'})
# a venue that leaves heartbeats unanswered this long is declared lost
VENUE_WATCHDOG_TIMEOUT = 2.0
# a venue's order report (see `_reconcile`) must end within this long;
# requests wait for it (bounded by this too) instead of failing
SYNC_TIMEOUT = 10.0
# a handshake waits this long at most for the restore from the journal
# (re-arming restored dark orders needs their market feeds up)
RESTORE_WAIT = 15.0


class ClientConn:
    """One connected order client: its subscriptions and outgoing queue."""

    _ids = iter(range(1, 1 << 62))

    def __init__(self, fqme: str, mode: Mode) -> None:
        self.id = next(self._ids)
        self.fqmes = {fqme}
        self.brokers = {unpack_fqme(fqme)[0]}
        self.mode = mode
        self.send_ch, self.recv_ch = trio.open_memory_channel(CLIENT_QUEUE)
        self.dropped = False

    def push(self, msg: Any) -> None:
        """Queue `msg`; a client that fell too far behind is disconnected."""
        if self.dropped:
            return
        try:
            self.send_ch.send_nowait(msg)
        except trio.WouldBlock:
            log.error('client %s is %d messages behind: disconnecting it',
                      self.id, CLIENT_QUEUE)
            self.dropped = True
            self.send_ch.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            # closed here, or its sender task ended (the client went away):
            # never let one gone client break the fan-out to the others
            self.dropped = True


class Relay:
    """The trades dialogue with one venue: (broker, mode).

    `stream` is None while the venue is unreachable; `syncing` while a
    (re)connected venue's order report is being reconciled (`_reconcile`):
    requests then wait for `synced` rather than fail.
    """

    def __init__(self, broker: str, mode: Mode) -> None:
        self.broker = broker
        self.mode = mode
        self.stream: tractor.MsgStream | None = None
        self.accounts: list[str] = []
        self.ready = trio.Event()
        self.error: str = ''
        self.send_lock = trio.StrictFIFOLock()
        self.syncing = False
        self.synced = trio.Event()
        # the reason the venue is unreachable ('' while connected)
        self.down: str = ''
        # whether the venue opens each dialogue with its order report
        self.reports_orders = mode == 'paper'
        # its task's scope (closing an unused relay cancels it) and since
        # when nothing has used it (None: in use)
        self.scope = trio.CancelScope()
        self.idle_since: float | None = None

    @property
    def venue(self) -> str:
        return f'paperboi.{self.broker}' if self.mode == 'paper' else f'brokerd.{self.broker}'


# how long a live order waits for its market's first quote (price band),
# and how long a market with none is not asked again
LIVE_MARK_WAIT = 5.0
NO_MARK_RETRY = 30.0


class DarkFeed:
    """The quote feed of one market, driving the dark book."""

    def __init__(self) -> None:
        self.ready = trio.Event()
        self.last: float = math.nan
        self.mark: float = math.nan  # the price band's reference: see quote_mark
        self.mkt: MktPair | None = None
        self.error: str = ''
        self.down = False  # lost after it was up; reconnecting


class Router:
    """emsd's state and the executor of dialog effects."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._n = nursery
        self.dialogs = DialogTable(track_changes=True)
        self.book = DarkBook()
        # the journal's group-commit writer, once `run_journal()` opened it
        # (None: not (yet) open, or no journal), and the Status batches held
        # back until a commit: (ticket, statuses, origin), in order
        self.writer: JournalWriter | None = None
        self._held: deque[tuple[int, list[Status], ClientConn | None]] = deque()
        # set once journaled dialogs are restored (and re-armed): handshakes wait
        self.restored = trio.Event()
        conf = load_conf()
        self.pad_ticks = conf.ems.dark_pad_ticks
        self.relay_idle = conf.ems.relay_idle_s
        self.journal_keep_days = conf.ems.journal_keep_days
        # pre-trade checks + trading state (kill switch): see _risk.py
        self.risk = open_risk_gate(conf.ems.risk)
        self.clients: dict[int, ClientConn] = {}
        self.relays: dict[tuple[str, Mode], Relay] = {}
        self.feeds: dict[str, DarkFeed] = {}
        # fqme -> monotonic time until which live orders skip waiting for
        # its market price (it had none: see `_await_mark`)
        self._no_mark_until: dict[str, float] = {}
        # (broker, account) -> fqme -> latest position
        self.positions: dict[tuple[str, str], dict[str, BrokerdPosition]] = defaultdict(dict)

    # -- the journal ----------------------------------------------------------

    async def run_journal(self) -> None:
        """Open the journal, restore its active dialogs, keep it till exit.

        The db work runs in a worker thread: a big journal's integrity
        check must not stall heartbeats. A journal that cannot be opened
        leaves emsd working, without memory (logged loudly).
        """
        journal: Journal | None = None
        try:
            try:
                journal = await trio.to_thread.run_sync(_open_journal, self.journal_keep_days)
                records = await trio.to_thread.run_sync(journal.active_dialogs) if journal else []
            except Exception:
                log.exception('cannot read the EMS journal: nothing restored')
                records = []
            arms = restore_dialogs(self.dialogs, records)
            venues: set[tuple[str, Mode]] = set()
            for rec in records:
                if rec.route is not None and rec.phase != Phase.DARK_OPEN:
                    venues.add((rec.broker, rec.route))
                if rec.phase in ('pending', 'dark_triggered', 'cancel_stashed'):
                    log.warning(
                        'restored dialog %s was waiting for its venue ack when emsd '
                        'stopped: it stays %s until %s reports on it',
                        rec.oid, rec.phase, rec.broker,
                    )
            if journal is not None:
                self.writer = JournalWriter(journal, on_commit=self._release)
            if records:
                self.risk.sync(d.snapshot() for d in self.dialogs.active())
                log.warning('restored %d active dialog(s) from the journal: %d to re-arm, '
                            'venues %s', len(records), len(arms), sorted(venues))
            async with trio.open_nursery() as outer:
                if self.writer is not None:
                    outer.start_soon(self.writer.run)
                async with trio.open_nursery() as n:
                    for broker, mode in venues:
                        n.start_soon(self._resume_relay, broker, mode)
                    by_fqme: dict[str, list[Arm]] = defaultdict(list)
                    for eff in arms:
                        if isinstance(eff, Arm):
                            by_fqme[eff.fqme].append(eff)
                    for fqme, group in by_fqme.items():
                        n.start_soon(self._resume_feed, fqme, group)
                self.restored.set()
                await trio.sleep_forever()
        finally:
            self.restored.set()
            # the writer has written what was queued (its own finally)
            self.writer = None
            self._release(None)
            if journal is not None:
                journal.close()

    async def _resume_relay(self, broker: str, mode: Mode) -> None:
        try:
            await self.ensure_relay(broker, mode)
        except Exception as err:
            log.error('restored orders at %s (%s) have no venue: %s', broker, mode, err)

    async def _resume_feed(self, fqme: str, arms: list[Arm]) -> None:
        try:
            await self.ensure_feed(fqme)
        except Exception as err:
            log.error('restored dark orders of %s stay unarmed: %s', fqme, err)
            return
        for eff in arms:
            dialog = self.dialogs.get(eff.oid)
            # a cancel or modify since the restore has moved on: leave it
            if (dialog is None or dialog.phase is not Phase.DARK_OPEN
                    or eff.oid in self.book or dialog.req.price != eff.level):
                continue
            self._arm(eff)

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

    def _journal_refusal(self, status: Status, mode: Mode) -> None:
        """Keep a refused request in the history (it never made a dialog)."""
        if self.writer is not None:
            dialog = self.dialogs.get(status.oid)
            route = dialog.route if dialog is not None else None
            self.writer.submit([JournalEntry(
                oid=status.oid, events=[status], route=route or mode,
            )])

    # -- relays -------------------------------------------------------------

    async def ensure_relay(self, broker: str, mode: Mode) -> Relay:
        """Start (once) and wait for the trades relay of (broker, mode)."""
        key = (broker, mode)
        relay = self.relays.get(key)
        if relay is None:
            relay = self.relays[key] = Relay(broker, mode)
            self._n.start_soon(self._run_relay, relay)
        await relay.ready.wait()
        if relay.error:
            self.relays.pop(key, None)
            raise RuntimeError(relay.error)
        return relay

    async def _run_relay(self, relay: Relay) -> None:
        with relay.scope:
            await self._relay_dialogue(relay)
        if relay.scope.cancelled_caught:
            log.info('closed the unused trades dialogue with %s', relay.venue)

    def _relay_in_use(self, relay: Relay) -> bool:
        """A client of its broker and mode, or a working order routed to it
        (a resting dark order included: its trigger goes there)."""
        if any(relay.broker in c.brokers and c.mode == relay.mode
               for c in self.clients.values()):
            return True
        return any(_routed_to(d, relay) for d in self.dialogs.active())

    async def reap_relays(self) -> None:
        """Close trades relays nobody has used for `relay_idle` seconds
        (`[ems] relay_idle_s`); the next order or session opens it again."""
        poll = min(1.0, max(self.relay_idle / 4, 0.05))
        while True:
            await trio.sleep(poll)
            now = time.monotonic()
            for key, relay in list(self.relays.items()):
                if not relay.ready.is_set() or relay.syncing or self._relay_in_use(relay):
                    relay.idle_since = None
                    continue
                if relay.idle_since is None:
                    relay.idle_since = now
                if now - relay.idle_since >= self.relay_idle:
                    del self.relays[key]
                    relay.scope.cancel()

    async def _relay_dialogue(self, relay: Relay) -> None:
        func: Any
        startup: str | None = None
        if relay.mode == 'paper':
            modules = ['piker.clearing._paper_engine']
            func = open_trade_dialog
            # a respawned paperboi resumes its resting orders on its own
            startup = PAPERBOI_STARTUP
        else:
            mod = get_brokermod(relay.broker)
            if not hasattr(mod, 'trades_dialogue'):
                relay.error = (
                    f'backend {relay.broker!r} has no live trading (no '
                    "trades_dialogue): use mode='paper'"
                )
                relay.ready.set()
                return
            modules = brokerd_modules(relay.broker)
            func = mod.trades_dialogue
            relay.reports_orders = bool(getattr(mod, 'REPORTS_ORDERS', False))
        backoff = 0.1
        while True:
            lost = ''
            try:
                async with maybe_spawn_daemon(
                    relay.venue, enable_modules=modules, startup=startup,
                ) as portal:
                    async with open_watched_context(
                        portal, func, broker=relay.broker, timeout=VENUE_WATCHDOG_TIMEOUT,
                    ) as (ctx, (positions, accounts)):
                        # drained by a task of its own (TRACTOR.md rule 9):
                        # a full stream would block the connection, and the
                        # venue's heartbeat replies behind it time out
                        async with ctx.open_stream() as stream, open_drained_stream(
                            stream, policy='never_drop', maxlen=STREAM_BUFFER,
                        ) as events:
                            relay.accounts = list(accounts)
                            for raw in positions:
                                await self.on_venue_msg(relay, raw)
                            if relay.reports_orders:
                                await self._sync_relay(relay, stream, events)
                            else:
                                relay.stream = stream
                            relay.down = ''
                            relay.ready.set()
                            backoff = 0.1
                            async for raw in events:
                                await self.on_venue_msg(relay, raw)
                lost = 'it ended the trades dialogue'
                log.warning('%s ended its trades dialogue; reconnecting', relay.venue)
            except PeerLost as err:
                await leave_if_cancelled()
                lost = err.reason
                log.error('lost %s (%s): reconnecting', relay.venue, err)
            except Exception as err:
                if not relay.ready.is_set():
                    relay.error = f'cannot reach {relay.venue}: {err}'
                    log.error(relay.error)
                    relay.ready.set()
                    return
                await leave_if_cancelled()
                lost = f'{type(err).__name__}: {err}'
                log.exception('trades relay with %s failed; reconnecting', relay.venue)
            except BaseException:
                await leave_if_cancelled()
                raise
            finally:
                was_up = relay.stream is not None or relay.syncing
                relay.stream = None
                if relay.syncing:
                    relay.syncing = False
                    relay.synced.set()  # waiters find it down and fail
            if was_up and lost:
                self._venue_lost(relay, lost)
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _sync_relay(
        self,
        relay: Relay,
        stream: tractor.MsgStream,
        events: Any,
    ) -> None:
        """Read and reconcile the venue's order report (see `_reconcile`).

        New requests wait meanwhile (`_to_venue`), so every request still
        in flight was sent before this connection; what reconciling sends
        (a stashed cancel whose ack was lost...) goes out once it is done,
        before those waiting.
        """
        relay.syncing = True
        relay.synced = trio.Event()
        sync = VenueSync(self.dialogs, relay.broker, relay.venue, relay.mode)
        deferred: list[ToVenue] = []
        synced: BrokerdOrdersSynced | None = None
        t0 = time.monotonic()
        with trio.move_on_after(SYNC_TIMEOUT):
            async for raw in events:
                try:
                    msg = decode_broker_msg(raw)
                except MessageError as err:
                    log.warning('bad message from %s: %s: %r', relay.venue, err.reason, raw)
                    continue
                if isinstance(msg, BrokerdOrdersSynced):
                    synced = msg
                    break
                if isinstance(msg, BrokerdPosition):
                    await self.on_venue_msg(relay, msg)
                    continue
                await self._apply_sync(relay, sync.on_msg(msg), deferred)
        if synced is None:
            log.error('%s did not finish its order report within %ss: its orders '
                      'are not reconciled', relay.venue, SYNC_TIMEOUT)
        else:
            await self._apply_sync(relay, sync.finish(synced), deferred)
        relay.stream = stream
        relay.syncing = False
        for eff in deferred:
            await self._to_venue(eff)
        relay.synced.set()
        log.info('%s: order report reconciled in %.0f ms', relay.venue,
                    (time.monotonic() - t0) * 1e3)

    async def _apply_sync(self, relay: Relay, effects: list[Effect],
                          deferred: list[ToVenue]) -> None:
        """Carry out reconciling effects; hold venue commands back."""
        deferred += [e for e in effects if isinstance(e, ToVenue)]
        await self.execute([e for e in effects if not isinstance(e, ToVenue)])

    def _venue_lost(self, relay: Relay, reason: str) -> None:
        """Tell clients their orders at a lost venue still work (not errors).

        A venue keeps its orders while emsd reconnects; its report then
        brings back what happened meanwhile. Orders sent while it is down
        fail at once (`_to_venue`): they cannot proceed.
        """
        relay.down = f'{relay.venue} is down ({reason})'
        notice = (f'{relay.down}: reconnecting; the order stays at the venue, '
                  'its news follow on reconnect')
        count = 0
        for dialog in self.dialogs.active():
            if dialog.phase is Phase.DARK_OPEN or not _routed_to(dialog, relay):
                continue
            count += 1
            self.publish(dialog.snapshot().copy({'reason': notice}))
        log.error('VENUE DOWN: %s; %d working order(s) wait for it', relay.down, count)

    async def on_venue_msg(self, relay: Relay, raw: Any) -> None:
        """One backend -> emsd message: positions, or a dialog event."""
        try:
            msg = decode_broker_msg(raw)
        except MessageError as err:
            log.warning('bad message from %s: %s: %r', relay.venue, err.reason, raw)
            return
        if isinstance(msg, BrokerdPosition):
            self.positions[(msg.broker, msg.account)][msg.symbol] = msg
            self.risk.observe(msg)
            for client in self.clients.values():
                if msg.broker in client.brokers:
                    client.push(msg)
            return
        await self.execute(self.dialogs.on_broker_msg(msg, relay.broker, relay.mode))

    # -- dark feeds -----------------------------------------------------------

    async def ensure_feed(self, fqme: str) -> DarkFeed:
        feed = self.feeds.get(fqme)
        if feed is None:
            feed = self.feeds[fqme] = DarkFeed()
            self._n.start_soon(self._run_feed, fqme, feed)
        await feed.ready.wait()
        if feed.error:
            self.feeds.pop(fqme, None)
            raise RuntimeError(feed.error)
        return feed

    async def _run_feed(self, fqme: str, feed: DarkFeed) -> None:
        backoff = 0.1
        while True:
            try:
                async with open_feed([fqme]) as f:
                    feed.mkt = f.mkts[fqme]
                    first = f.first_quotes.get(fqme) or {}
                    last = first.get('last')
                    if last is None or not math.isfinite(last):
                        bid, ask = first.get('bid'), first.get('ask')
                        if bid is not None and ask is not None:
                            last = (bid + ask) / 2
                    if last is not None:
                        feed.last = float(last)
                    feed.mark = quote_mark(first, feed.mark)
                    feed.ready.set()
                    backoff = 0.1
                    if feed.down:
                        feed.down = False
                        self._dark_notice(fqme, f'market data for {fqme} is back: '
                                          'the trigger watches it again')
                    async for batch in f.stream:
                        quote = batch.get(fqme)
                        if quote is None:
                            continue
                        last = quote.get('last')
                        if last is not None:
                            feed.last = last
                        feed.mark = quote_mark(quote, feed.mark)
                        fired = self.book.process_quote(fqme, quote)
                        if fired:
                            effects: list[Effect] = []
                            for trig in fired:
                                effects += self._on_trigger(trig)
                            await self.execute(effects)
            except Exception as err:
                if not feed.ready.is_set():
                    feed.error = f'no market data for {fqme!r}: {err}'
                    log.error(feed.error)
                    feed.ready.set()
                    return
                await leave_if_cancelled()
                log.error('dark feed of %s failed (%s); reconnecting', fqme, err)
                if not feed.down:
                    feed.down = True
                    self._dark_notice(fqme, f'market data for {fqme} lost ({err}): '
                                      'the trigger waits for it; reconnecting')
            except BaseException:
                await leave_if_cancelled()
                raise
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _dark_notice(self, fqme: str, notice: str) -> None:
        """Tell clients about their dark orders' market data (not an error)."""
        for dialog in self.dialogs.active(fqme):
            if dialog.phase is Phase.DARK_OPEN:
                self.publish(dialog.snapshot().copy({'reason': notice}))

    def _on_trigger(self, trig: Triggered) -> list[Effect]:
        """A dark trigger fired: send it live, unless the trading state
        forbids it now (halted, or reduce_only and it would not reduce):
        then the dark order is cancelled, its Status saying why."""
        refusal = self.risk.check_trigger(trig.oid)
        if refusal is None:
            return self.dialogs.on_trigger(trig)
        log.warning('dark order %s not sent: %s', trig.oid, refusal.reason)
        effects = self.dialogs.on_cancel(trig.oid)
        for eff in effects:
            if isinstance(eff, Status) and eff.oid == trig.oid:
                eff.reason = refusal.reason
        return effects

    # -- client commands ------------------------------------------------------

    async def on_client_msg(self, client: ClientConn, raw: Any) -> None:
        """Validate, route and apply one client command."""
        try:
            msg = decode_client_msg(raw)
        except MessageError as err:
            log.warning('bad message from client %s: %s', client.id, err.reason)
            client.push(error_status(raw, err.reason))
            return
        ended = self.dialogs.get(msg.oid)
        if ended is not None and ended.terminal:
            self._on_finished(client, msg, ended)
            return
        if isinstance(msg, Order):
            problem = await self._check_order(client, msg)
            if not problem:
                # last, and with no checkpoint before the dialog table:
                # an accepted order is counted at once
                live = self.dialogs.get(msg.oid)
                refusal = self.risk.check(
                    msg, existing=live.req if live is not None else None,
                    session=client.id, mark=self.mark(msg.symbol),
                )
                problem = refusal.reason if refusal is not None else ''
            if problem:
                log.warning('order %s refused: %s', msg.oid, problem)
                live = self.dialogs.get(msg.oid)
                if live is not None and not live.terminal:
                    # a refused modify: the order works on as it was
                    reply = live.snapshot().copy({'reason': f'modify refused: {problem}'})
                else:
                    reply = error_status(msg, problem)
                self._journal_refusal(reply, client.mode)
                client.push(reply)
                return
        # a new dialog is the client's, at its mode's venue; a restored one
        # is claimed by its first modifier or canceller (who hears the end)
        effects = self.dialogs.on_client_msg(msg, owner=client.id, route=client.mode)
        # even with no effects: a stashed modify/cancel changed the dialog
        await self.execute(effects, origin=client)

    def _on_finished(self, client: ClientConn, msg: Order | Cancel, dialog: Dialog) -> None:
        """A modify, re-send or cancel of a dialog that has ended.

        Never a second terminal Status: a client that hears the dialog (it
        placed it, or watches its market) has its answer in the dialog's
        terminal Status, sent already or on its way (the request raced the
        end; `OrderClient` sends none for orders it saw end). Any
        other client gets an `error`: the first and only end it hears of
        that oid, kept out of the dialog's journal history.
        """
        what = 'cancel' if isinstance(msg, Cancel) else 'order'
        if self._hears(client, dialog.oid, dialog.fqme):
            log.info('%s for finished dialog %s (%s) from client %s dropped: '
                     'its end answers it', what, dialog.oid, dialog.phase.value, client.id)
            return
        log.warning('%s for finished dialog %s (%s) refused', what, dialog.oid,
                    dialog.phase.value)
        client.push(error_status(msg, (
            f'order {dialog.oid} is already {dialog.phase.value}: '
            + ('nothing to cancel' if what == 'cancel' else 'a new order needs a new oid')
        )))

    async def _check_order(self, client: ClientConn, order: Order) -> str:
        broker = order.broker
        try:
            get_brokermod(broker)
        except Exception as err:  # NoSuchBackend: lists the known ones
            return str(err)
        existing = self.dialogs.get(order.oid)
        if existing is not None and existing.fqme != order.symbol:
            return (f'modify of {order.oid} cannot change its market '
                    f'{existing.fqme!r} to {order.symbol!r}')
        mode = existing.route if existing is not None and existing.route else client.mode
        if order.action != 'alert':
            try:
                relay = await self.ensure_relay(broker, mode)
            except Exception as err:
                return str(err)
            if order.account not in relay.accounts:
                return (f'unknown account {order.account!r} for {broker} '
                        f'({mode}): use one of {relay.accounts}')
        if order.exec_mode == 'dark' or order.action == 'alert':
            try:
                await self.ensure_feed(order.symbol)
            except Exception as err:
                return str(err)
        else:
            await self._await_mark(order)
        return ''

    async def _await_mark(self, order: Order) -> None:
        """Have the market's price for the risk gate's price band.

        Without market data (or not in time) the band is not checked - the
        venue's is - and the market is not asked again for a while: a
        backend with no feed must not slow every order down.
        """
        if time.monotonic() < self._no_mark_until.get(order.symbol, 0.0):
            return
        with trio.move_on_after(LIVE_MARK_WAIT):
            try:
                await self.ensure_feed(order.symbol)
                return
            except Exception as err:
                log.warning('no market price for %s to check order %s against: %s',
                            order.symbol, order.oid, err)
        self._no_mark_until[order.symbol] = time.monotonic() + NO_MARK_RETRY

    def mark(self, fqme: str) -> float | None:
        """The market's price now if a feed has one (the price band's
        reference)."""
        feed = self.feeds.get(fqme)
        if feed is None or not feed.ready.is_set() or not math.isfinite(feed.mark):
            return None
        return feed.mark

    # -- effects ----------------------------------------------------------------

    async def execute(self, effects: Iterable[Effect], origin: ClientConn | None = None) -> None:
        """Carry out dialog effects: dark book, journal, then the world.

        The dark book goes first (local, no checkpoint; a dialog's
        `Arm`/`Disarm` always precedes its other effects anyway) so the
        journal records the direction a trigger was armed with. The
        batch's Statuses are queued before its venue commands: a command
        that cannot be sent ends its dialog with an `error` that must
        follow, not precede, the `pending` of the same batch (and a send
        may wait for a venue). A batch that changed the dark book (a
        trigger that sends its order live) is committed before its venue
        command leaves: a restarted emsd must never re-arm a trigger whose
        order already went to the venue.
        """
        effects, commit_first = self._book_and_journal(effects, origin)
        venue = [eff for eff in effects if isinstance(eff, ToVenue)]
        if venue and commit_first and self.writer is not None:
            await self.writer.flush(commit_first)
        for eff in venue:
            await self._to_venue(eff)

    def execute_nowait(self, effects: Iterable[Effect]) -> None:
        """`execute()` for effects that need no venue round trip."""
        self._book_and_journal(effects, None)

    def _book_and_journal(
        self, effects: Iterable[Effect], origin: ClientConn | None,
    ) -> tuple[list[Effect], int]:
        """Dark book, journal, then the batch's Statuses (`_emit`).

        Returns the effects and, if the batch changed the dark book, its
        journal ticket (else 0)."""
        effects = list(effects)
        dark_change = False
        for eff in effects:
            if isinstance(eff, Arm):
                self._arm(eff)
                dark_change = True
            elif isinstance(eff, Disarm):
                self.book.disarm(eff.oid)
                dark_change = True
        ticket = self._journal_changes()
        statuses = [eff for eff in effects if isinstance(eff, Status)]
        if statuses:
            durable = dark_change or any(st.resp in _DURABLE_RESPS for st in statuses)
            self._emit(statuses, origin, ticket, durable)
        return effects, ticket if dark_change else 0

    def _emit(
        self, statuses: list[Status], origin: ClientConn | None, ticket: int, durable: bool,
    ) -> None:
        """Publish a batch's Statuses, in batch order across batches.

        The journal commits behind the order path (`JournalWriter`): the
        venue already has a new order while its batch is being written.
        What a client is *told* about a placed or re-armed order (a batch
        that changed the dark book, or says `pending`, `dark_open` or
        `dark_triggered`) is held until committed: a client that heard its
        order was taken finds it again after any emsd crash. Every later
        batch queues behind a held one, so no client sees a dialog's events
        out of order. Other news (open, fills, ends) goes out at once: a
        crash before its commit loses it from the journal only, and the
        venue's order report brings it back (`_reconcile`).
        """
        if self.writer is not None and (durable or self._held):
            self._held.append((ticket, statuses, origin))
            self.writer.want(ticket)
            return
        for st in statuses:
            self.publish(st, origin)

    def _release(self, committed: int | None) -> None:
        """Publish held batches up to ticket `committed` (None: all)."""
        held = self._held
        while held and (committed is None or held[0][0] <= committed):
            _, statuses, origin = held.popleft()
            for st in statuses:
                self.publish(st, origin)

    def _arm(self, eff: Arm) -> None:
        feed = self.feeds.get(eff.fqme)
        mkt = feed.mkt if feed else None
        last = feed.last if feed else math.nan
        if not math.isfinite(last):
            last = eff.level  # no print yet: a level at the market fires on a fall
        if eff.direction is not None:
            # a restored trigger keeps the direction it was placed with,
            # whatever the market did while emsd was down
            last = eff.level if eff.direction == 'down' else math.nextafter(eff.level, -math.inf)
        entry = self.book.arm(
            eff.oid, eff.fqme, eff.action, eff.level, last, size=eff.size,
            price_tick=mkt.price_tick if mkt else None,
            pad_ticks=self.pad_ticks if mkt else 0,
        )
        dialog = self.dialogs.get(eff.oid)
        if dialog is not None:
            dialog.armed(entry.direction)

    async def _to_venue(self, eff: ToVenue) -> None:
        dialog = self.dialogs.get(eff.msg.oid)
        broker, mode = eff.broker, (dialog.route if dialog is not None else None) or 'paper'
        relay = self.relays.get((broker, mode))
        if relay is not None and relay.syncing:
            # just reconnected: the venue's order report comes first
            with trio.move_on_after(SYNC_TIMEOUT):
                await relay.synced.wait()
        stream = relay.stream if relay else None
        if stream is None:
            if relay is None:
                reason = f'venue {broker} ({mode}) is not connected'
            else:
                reason = relay.down or f'{relay.venue} is not connected'
            self._venue_down(eff, f'{reason}: not sent (send it again once it is back)')
            return
        try:
            # shielded: this may run in a client's task, cancelled when that
            # client goes away; a send cut half-way would corrupt the framing
            # of the connection every client's orders share
            with trio.CancelScope(shield=True):
                async with relay.send_lock:
                    await stream.send(eff.msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            self._venue_down(eff, f'lost {relay.venue} ({type(err).__name__}): '
                                  'not sent (send it again once it is back)')

    def _venue_down(self, eff: ToVenue, reason: str) -> None:
        log.error('cannot send %s for %s: %s', type(eff.msg).__name__, eff.msg.oid, reason)
        effects = self.dialogs.on_broker_msg(
            BrokerdError(oid=eff.msg.oid, reqid=getattr(eff.msg, 'reqid', None), reason=reason),
            eff.broker,
        )
        self.execute_nowait(effects)

    def _hears(self, client: ClientConn, oid: str, fqme: str) -> bool:
        """Whether `client` gets the Statuses of dialog `oid` (on `fqme`)."""
        if fqme in client.fqmes:
            return True
        dialog = self.dialogs.get(oid)
        return dialog is not None and dialog.owner == client.id

    def publish(self, status: Status, origin: ClientConn | None = None) -> None:
        """Fan a Status out to every interested client."""
        self.risk.observe(status)
        fqme = status.req.symbol if status.req is not None else ''
        sent = False
        for client in self.clients.values():
            if client is origin or self._hears(client, status.oid, fqme):
                client.push(status)
                sent = True
        if not sent:
            log.info('no client listening for %s: %s', status.oid, status.resp)

    # -- handshake state --------------------------------------------------------

    def snapshot(self, client: ClientConn) -> tuple[dict, list[str], dict]:
        pps: dict[str, list] = {}
        for (broker, account), table in self.positions.items():
            if broker in client.brokers:
                pps[f'{broker}.{account}'] = [p.to_builtins() for p in table.values() if p.size]
        accounts: list[str] = ['paper']
        for (broker, mode), relay in self.relays.items():
            if broker in client.brokers and mode == client.mode:
                accounts += [a for a in relay.accounts if a not in accounts]
        dialogs = {
            d.oid: d.snapshot().to_builtins()
            for d in self.dialogs.active()
        }
        return pps, accounts, dialogs


def _routed_to(dialog: Dialog, relay: Relay) -> bool:
    """Whether `dialog`'s venue orders go to `relay`."""
    return dialog.broker == relay.broker and dialog.route == relay.mode


def _open_journal(keep_days: float = 0.0) -> Journal | None:
    """The journal in the config dir, or None (logged) if it cannot be had;
    dialogs that ended more than `keep_days` ago are pruned (0: none)."""
    try:
        journal = Journal.open()
    except JournalError as err:
        log.error('EMS JOURNAL DISABLED, orders will not survive a restart: %s', err)
        return None
    if keep_days:
        try:
            gone = journal.prune(time.time_ns() - int(keep_days * 86_400e9))
        except sqlite3.Error as err:
            log.error('could not prune the EMS journal: %s', err)
        else:
            if gone:
                log.info('EMS journal: forgot %d dialog(s) finished over %g days ago',
                         gone, keep_days)
    return journal


_router: Router | None = None


def get_router() -> Router:
    global _router
    if _router is None:
        # tractor 0.1.0a5 has no public per-actor nursery; its service
        # nursery lives as long as the actor, like the router must.
        nursery = tractor.current_actor()._service_n
        _router = Router(nursery)
        nursery.start_soon(_router.run_journal)
        nursery.start_soon(_router.reap_relays)
    return _router


@tractor.context
async def open_ems_dialog(
    ctx: tractor.Context,
    fqme: str,
    mode: Mode = 'paper',
    loglevel: str | None = None,
) -> None:
    """One order client's session: handshake, then commands in, events out
    (several queued events leave as one list: `SEND_BATCH`)."""
    get_console_log(loglevel)
    router = get_router()
    # a restarted emsd shows restored dialogs only once they work again
    with trio.move_on_after(RESTORE_WAIT) as cs:
        await router.restored.wait()
    if cs.cancelled_caught:
        log.error('restore from the journal still running after %ss: handshake anyway',
                  RESTORE_WAIT)
    fqme = fqme.lower()
    broker = unpack_fqme(fqme)[0]  # ValueError with help reaches the client
    if mode not in ('live', 'paper'):
        raise ValueError(f"mode must be 'live' or 'paper', got {mode!r}")
    mod = get_brokermod(broker)  # unknown backend: a clear error for the client
    await mod.get_mkt_info(fqme)  # unknown market: SymbolNotFound, with close matches
    relay = await router.ensure_relay(broker, mode)
    client = ClientConn(fqme, mode)
    router.clients[client.id] = client
    try:
        pps, _, dialogs = router.snapshot(client)
        await ctx.started((pps, relay.accounts or ['paper'], dialogs))
        async with (
            ctx.open_stream() as stream,
            watch_peer(ctx),
            # drained (rule 9): the client's heartbeats share the connection
            open_drained_stream(stream, policy='never_drop', maxlen=CLIENT_COMMANDS) as commands,
            trio.open_nursery() as n,
        ):

            async def _sender() -> None:
                # what queued meanwhile goes out as one list (`SEND_BATCH`
                # at most): one frame and one socket write, not one each
                recv = client.recv_ch
                async with recv:
                    async for msg in recv:
                        batch = [msg]
                        while len(batch) < SEND_BATCH:
                            try:
                                batch.append(recv.receive_nowait())
                            except trio.WouldBlock:
                                break
                        await stream.send(batch if len(batch) > 1 else msg)
                # queue closed: the client fell too far behind
                n.cancel_scope.cancel()

            n.start_soon(_sender)
            async for raw in commands:
                try:
                    await router.on_client_msg(client, raw)
                except Exception:
                    log.exception('failed to handle client message %r', raw)
                    client.push(error_status(raw, 'internal error handling this message'))
            n.cancel_scope.cancel()
    finally:
        router.clients.pop(client.id, None)
        client.send_ch.close()


async def startup() -> None:
    """emsd's start-up hook (`DaemonSpec.startup`), run by pikerd right
    after every (re)spawn: restore the journal now, not at the first
    client's handshake, so a respawned emsd re-arms its dark orders and
    alerts and reconnects the venues of its live orders with nobody
    connected. Returns at once; the restore runs in the service nursery.
    """
    get_router()


__all__ = ['EMSD_NAME', 'Router', 'get_router', 'open_ems_dialog', 'startup']
