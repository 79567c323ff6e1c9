"""emsd's venue relays: one trades dialogue per (broker, mode).

A relay is the trades dialogue with one venue (`brokerd.<broker>` for
live, `paperboi.<broker>` for paper), shared by all clients and markets,
started on first use and closed once nobody has used it for a while
(`[ems] relay_idle_s`).

Venue outages: a relay that (re)connects to a venue that reports its
orders (the paper engine; live backends with `REPORTS_ORDERS`) first
reconciles the dialogs with that report (`_reconcile`): missed fills and
cancels are applied, lost acks recovered, orders the venue no longer has
resolved; requests wait for it meanwhile. While a venue is down, clients
get a notice (not an error) for each order working there, and anything
that cannot be sent fails with an `error` saying why. A lost venue is
reconnected with backoff.
"""
from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import tractor
import trio

from ..brokers import brokerd_spec, daemon_name, get_brokermod
from ..log import get_logger
from ..service import (
    Backoff,
    PeerLost,
    open_daemon,
    open_drained_stream,
    open_watched_context,
    reconnecting,
)
from ._daemons import PAPERBOI
from ._dialogs import Dialog, DialogTable, Effect, Mode, Phase, ToVenue
from ._effects import Effects
from ._fanout import Clients
from ._messages import (
    BrokerdOrdersSynced,
    BrokerdPosition,
    MessageError,
    batch_frame,
    decode_broker_msg,
)
from ._paper_engine import open_trade_dialog
from ._reconcile import VenueSync

__all__ = ['Relay', 'Relays', 'open_relays']

log = get_logger(__name__)

# messages a venue stream's drain task holds before it applies backpressure
STREAM_BUFFER = 100_000
# a venue that leaves heartbeats unanswered this long is declared lost
VENUE_WATCHDOG_TIMEOUT = 2.0
# a venue's order report (see `_reconcile`) must end within this long;
# requests wait for it (bounded by this too) instead of failing
SYNC_TIMEOUT = 10.0


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
        return PAPERBOI.name(self.broker) if self.mode == 'paper' else daemon_name(self.broker)

    @property
    def state(self) -> str:
        """'up', 'syncing' or 'down: why' (for `ems_state`)."""
        if self.syncing:
            return 'syncing'
        if self.stream is not None:
            return 'up'
        return f'down: {self.down or self.error or "connecting"}'

    def routes(self, dialog: Dialog) -> bool:
        """Whether `dialog`'s venue orders go through this relay."""
        return dialog.broker == self.broker and dialog.route == self.mode


class Relays:
    """Every venue relay of emsd, keyed by (broker, mode)."""

    def __init__(
        self, nursery: trio.Nursery, dialogs: DialogTable, clients: Clients, fx: Effects,
        idle_s: float,
    ) -> None:
        self._n = nursery
        self.dialogs = dialogs
        self.clients = clients
        self.fx = fx
        self.idle_s = idle_s
        self.relays: dict[tuple[str, Mode], Relay] = {}

    async def ensure(self, broker: str, mode: Mode) -> Relay:
        """Start (once) and wait for the trades relay of (broker, mode)."""
        key = (broker, mode)
        relay = self.relays.get(key)
        if relay is None:
            relay = self.relays[key] = Relay(broker, mode)
            self._n.start_soon(self._run, relay)
        if not relay.ready.is_set():  # (every order asks: no checkpoint once up)
            await relay.ready.wait()
        if relay.error:
            self.relays.pop(key, None)
            raise RuntimeError(relay.error)
        return relay

    async def resume(self, broker: str, mode: Mode) -> None:
        """Reconnect the venue of restored orders."""
        try:
            await self.ensure(broker, mode)
        except Exception as err:
            log.error('restored orders at %s (%s) have no venue: %s', broker, mode, err)

    def reports_orders(self, broker: str, mode: Mode) -> bool:
        """Whether the venue of (broker, mode) opens each dialogue with its
        order report (`_reconcile`)."""
        relay = self.relays.get((broker, mode))
        return relay is not None and relay.reports_orders

    async def send(self, effs: list[ToVenue], mode: Mode) -> str:
        """Send the commands of one venue on its relay, as one frame (a
        batch frame when several); '' or why they could not be sent."""
        broker = effs[0].broker
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
            return f'{reason}: not sent (send it again once it is back)'
        frame = batch_frame([eff.msg for eff in effs])
        try:
            # shielded: this may run in a client's task, cancelled when that
            # client goes away; a send cut half-way would corrupt the framing
            # of the connection every client's orders share
            with trio.CancelScope(shield=True):
                async with relay.send_lock:
                    await stream.send(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            return (f'lost {relay.venue} ({type(err).__name__}): '
                    'not sent (send it again once it is back)')
        return ''

    # -- lifetime -------------------------------------------------------------

    async def _run(self, relay: Relay) -> None:
        with relay.scope:
            await self._dialogue(relay)
        if relay.scope.cancelled_caught:
            log.info('closed the unused trades dialogue with %s', relay.venue)

    def _in_use(self, relay: Relay) -> bool:
        """A client of its broker and mode, or a working order routed to it
        (a resting dark order included: its trigger goes there)."""
        if self.clients.uses(relay.broker, relay.mode):
            return True
        return any(relay.routes(d) for d in self.dialogs.active())

    async def reap(self) -> None:
        """Close trades relays nobody has used for `idle_s` seconds; the
        next order or session opens it again."""
        poll = min(1.0, max(self.idle_s / 4, 0.05))
        while True:
            await trio.sleep(poll)
            now = time.monotonic()
            for key, relay in list(self.relays.items()):
                if not relay.ready.is_set() or relay.syncing or self._in_use(relay):
                    relay.idle_since = None
                    continue
                if relay.idle_since is None:
                    relay.idle_since = now
                if now - relay.idle_since >= self.idle_s:
                    del self.relays[key]
                    relay.scope.cancel()

    async def _dialogue(self, relay: Relay) -> None:
        """Connect, serve, and reconnect (with backoff) once lost."""
        func: Any
        if relay.mode == 'paper':
            # a respawned paperboi resumes its resting orders on its own
            # (its start-up hook)
            spec = PAPERBOI.spec(relay.broker)
            func = open_trade_dialog
        else:
            mod = get_brokermod(relay.broker)
            if not hasattr(mod, 'trades_dialogue'):
                relay.error = (
                    f'backend {relay.broker!r} has no live trading (no '
                    "trades_dialogue): use mode='paper'"
                )
                relay.ready.set()
                return
            spec = brokerd_spec(relay.broker)
            func = mod.trades_dialogue
            relay.reports_orders = bool(getattr(mod, 'REPORTS_ORDERS', False))
        backoff = Backoff()
        was_up = False

        async def connect() -> None:
            nonlocal was_up
            try:
                async with open_daemon(spec) as portal:
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
                                await self._on_msg(relay, raw)
                            if relay.reports_orders:
                                await self._sync(relay, stream, events)
                            else:
                                relay.stream = stream
                            relay.down = ''
                            relay.ready.set()
                            backoff.reset()
                            async for frame in events:
                                # a venue may send what it emits at once as one list
                                if isinstance(frame, list):
                                    await self._on_msgs(relay, frame)
                                else:
                                    await self._on_msg(relay, frame)
            finally:
                was_up = relay.stream is not None or relay.syncing
                relay.stream = None
                if relay.syncing:
                    relay.syncing = False
                    relay.synced.set()  # waiters find it down and fail

        def on_down(err: BaseException | None) -> bool:
            if err is None:
                lost = 'it ended the trades dialogue'
            elif isinstance(err, PeerLost):  # (even before it was up: retried)
                lost = err.reason
            elif not relay.ready.is_set():
                relay.error = f'cannot reach {relay.venue}: {err}'
                log.error(relay.error)
                relay.ready.set()
                return False  # never up: orders for it fail with why
            else:
                lost = f'{type(err).__name__}: {err}'
                log.error('trades relay with %s failed', relay.venue, exc_info=err)
            if was_up:
                self._lost(relay, lost)
            return True

        await reconnecting(connect, relay.venue, backoff=backoff, on_down=on_down)

    # -- what the venue says --------------------------------------------------

    def _decode(self, relay: Relay, raw: Any) -> Any:
        """The venue's message, decoded once (None: garbage, logged)."""
        try:
            return decode_broker_msg(raw)
        except MessageError as err:
            log.warning('bad message from %s: %s: %r', relay.venue, err.reason, raw)
            return None

    async def _on_msg(self, relay: Relay, raw: Any) -> None:
        """One backend -> emsd message: positions, or a dialog event."""
        msg = self._decode(relay, raw)
        if msg is None:
            return
        if isinstance(msg, BrokerdPosition):
            self.fx.position(msg)
            return
        await self.fx.execute(self.dialogs.on_broker_msg(msg, relay.broker, relay.mode))

    async def _on_msgs(self, relay: Relay, frame: list[Any]) -> None:
        """A venue's list frame: its dialog events applied in order, as
        one batch of effects (one journal batch, one publish), positions
        passed on in their place."""
        effects: list[Effect] = []
        for raw in frame:
            msg = self._decode(relay, raw)
            if msg is None:
                continue
            if isinstance(msg, BrokerdPosition):
                if effects:
                    await self.fx.execute(effects)
                    effects = []
                self.fx.position(msg)
                continue
            effects += self.dialogs.on_broker_msg(msg, relay.broker, relay.mode)
        if effects:
            await self.fx.execute(effects)

    async def _sync(self, relay: Relay, stream: tractor.MsgStream, events: Any) -> None:
        """Read and reconcile the venue's order report (see `_reconcile`).

        New requests wait meanwhile (`send`), so every request still in
        flight was sent before this connection; what reconciling sends (a
        stashed cancel whose ack was lost...) goes out once it is done,
        before those waiting.
        """
        relay.syncing = True
        relay.synced = trio.Event()
        sync = VenueSync(self.dialogs, relay.broker, relay.venue, relay.mode)
        deferred: list[ToVenue] = []
        synced: BrokerdOrdersSynced | None = None
        t0 = time.monotonic()
        with trio.move_on_after(SYNC_TIMEOUT):
            async for raw in _each(events):
                msg = self._decode(relay, raw)
                if msg is None:
                    continue
                if isinstance(msg, BrokerdOrdersSynced):
                    synced = msg
                    break
                if isinstance(msg, BrokerdPosition):
                    self.fx.position(msg)
                    continue
                await self._apply_sync(sync.on_msg(msg), deferred)
        if synced is None:
            log.error('%s did not finish its order report within %ss: its orders '
                      'are not reconciled', relay.venue, SYNC_TIMEOUT)
        else:
            await self._apply_sync(sync.finish(synced), deferred)
        relay.stream = stream
        relay.syncing = False
        for eff in deferred:
            await self.fx.to_venue(eff)
        relay.synced.set()
        log.info('%s: order report reconciled in %.0f ms', relay.venue,
                 (time.monotonic() - t0) * 1e3)

    async def _apply_sync(self, effects: list[Effect], deferred: list[ToVenue]) -> None:
        """Carry out reconciling effects; hold venue commands back (the
        group book's verdicts on them too: `_groups`)."""
        effects = effects + self.fx.groups.react(effects)
        deferred += [e for e in effects if isinstance(e, ToVenue)]
        await self.fx.execute([e for e in effects if not isinstance(e, ToVenue)])

    def _lost(self, relay: Relay, reason: str) -> None:
        """Tell clients their orders at a lost venue still work (not errors).

        A venue keeps its orders while emsd reconnects; its report then
        brings back what happened meanwhile. Orders sent while it is down
        fail at once (`send`): they cannot proceed.
        """
        relay.down = f'{relay.venue} is down ({reason})'
        notice = (f'{relay.down}: reconnecting; the order stays at the venue, '
                  'its news follow on reconnect')
        count = 0
        for dialog in self.dialogs.active():
            if dialog.phase in (Phase.DARK_OPEN, Phase.HELD) or not relay.routes(dialog):
                continue
            count += 1
            self.fx.publish(dialog.snapshot().copy({'reason': notice}))
        log.error('VENUE DOWN: %s; %d working order(s) wait for it', relay.down, count)


async def _each(frames: Any) -> AsyncIterator[Any]:
    """The messages of a venue's frames (a list frame holds several)."""
    async for frame in frames:
        if isinstance(frame, list):
            for raw in frame:
                yield raw
        else:
            yield frame


@asynccontextmanager
async def open_relays(
    dialogs: DialogTable, clients: Clients, fx: Effects, idle_s: float,
) -> AsyncIterator[Relays]:
    """emsd's venue relays, for its lifetime (unused ones reaped)."""
    async with trio.open_nursery() as n:
        relays = Relays(n, dialogs, clients, fx, idle_s)
        n.start_soon(relays.reap)
        yield relays
        n.cancel_scope.cancel()
