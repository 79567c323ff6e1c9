"""emsd: the order execution management daemon, and how it is wired.

One emsd per registry sits between every order client and every venue.
It is a thin shell around the pure core - `DialogTable` (the per-order
state machine) turns each input into *effects*, `DarkBook` indexes the
dark triggers - with one object per IO edge, each opened for emsd's
lifetime by `open_emsd()`:

- `Clients` (`_fanout`): every connected order client, its bounded queue,
  and which dialogs it hears;
- `Relays` (`_relays`): one trades dialogue per (broker, mode) with the
  venue, reconnected and reconciled after an outage;
- `DarkFeeds` (`_dark_feeds`): the dark book and one quote feed per market
  driving it;
- the journal (`_journal`): every batch of effects is written before any
  of it leaves emsd;

and what joins them, `Effects` (`_effects`): the executor of the core's
effects. Client commands come in through `Intake` (`_intake`): decoded,
checked, then into the table.

Everything is single-threaded trio: between a quote firing a trigger and
its dialog moving to `dark_triggered` there is no checkpoint, so a trigger
and a cancel can never both win.

Restarts: pikerd respawns a crashed emsd and runs its start-up hook
(`startup()`), which opens emsd at once, with or without clients: every
active dialog is restored from the journal, dark orders and alerts are
re-armed with their original trigger directions once their market's feed
is up, and the venue relays of live orders are re-opened.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import tractor
import trio

# every import up front: emsd answers heartbeats from its first handshake
# on, and a lazy import of a heavy package (numpy via the feed layer) would
# block its event loop long enough to look dead on a loaded machine
from ..accounting import unpack_fqme
from ..brokers import get_brokermod
from ..config import EMSConf, load_conf
from ..log import get_console_log, get_logger
from ..service import open_drained_stream, start_actor_task, watch_peer
from ._dark_feeds import DarkFeeds, open_dark_feeds
from ._dialogs import Arm, DialogTable, Expire, Mode, Phase
from ._effects import Effects
from ._expiry import open_expiries
from ._fanout import Clients, open_clients
from ._intake import Intake
from ._journal import DialogRecord, open_journal_writer, restore_dialogs
from ._messages import commands_of
from ._relays import Relays, open_relays
from ._risk import RiskGate
from ._risk_state import open_risk_gate

__all__ = ['Emsd', 'current', 'open_ems_dialog', 'open_emsd', 'startup']

log = get_logger(__name__)

# one client's commands a session's drain task holds before it applies
# backpressure (a bound per client: a flooding client slows itself down,
# not emsd's memory)
CLIENT_COMMANDS = 10_000
# a handshake waits this long at most for the restore from the journal
# (re-arming restored dark orders needs their market feeds up)
RESTORE_WAIT = 15.0


class Emsd:
    """emsd's parts, as `open_emsd()` wired them."""

    def __init__(
        self,
        dialogs: DialogTable,
        risk: RiskGate,
        clients: Clients,
        fx: Effects,
        relays: Relays,
        dark: DarkFeeds,
    ) -> None:
        self.dialogs = dialogs
        self.risk = risk
        self.clients = clients
        self.fx = fx
        self.relays = relays
        self.dark = dark
        self.intake = Intake(dialogs, risk, clients, fx, relays, dark)
        # set once journaled dialogs are restored (and re-armed): handshakes wait
        self.restored = trio.Event()

    async def restore(self, records: list[DialogRecord]) -> None:
        """Bring back the journal's active dialogs: re-open their venues,
        re-arm their dark triggers."""
        arms = restore_dialogs(self.dialogs, records)
        self.fx.groups.rebuild()
        venues: set[tuple[str, Mode]] = set()
        # held bracket children arm when their entry fills: feeds up front
        held = {rec.fqme for rec in records if rec.phase == Phase.HELD}
        for rec in records:
            # a dark order's venue opens when a client needs it, but a
            # reduce-only one is sized by the venue's position at release
            needs = rec.phase != Phase.DARK_OPEN or rec.req.reduce_only
            if rec.route is not None and rec.active and needs:
                venues.add((rec.broker, rec.route))
            if rec.phase in ('pending', 'dark_triggered', 'cancel_stashed'):
                log.warning(
                    'restored dialog %s was waiting for its venue ack when emsd '
                    'stopped: it stays %s until %s reports on it',
                    rec.oid, rec.phase, rec.broker,
                )
        if records:
            self.risk.sync(d.snapshot() for d in self.dialogs.active())
            log.warning('restored %d active dialog(s) from the journal: %d to re-arm, '
                        'venues %s', len(records), len(arms), sorted(venues))
        for fqme in sorted(held):  # before the venues' reports arm them
            await self.dark.resume(fqme, [])
        by_fqme: dict[str, list[Arm]] = defaultdict(list)
        for eff in arms:
            if isinstance(eff, Arm):
                by_fqme[eff.fqme].append(eff)
        async with trio.open_nursery() as n:
            for broker, mode in venues:
                n.start_soon(self.relays.resume, broker, mode)
            for fqme, group in by_fqme.items():
                n.start_soon(self.dark.resume, fqme, group)
        # groups whose members changed meanwhile (the venues' reports
        # bring the rest through the usual path)
        await self.fx.execute(self.fx.groups.settle())
        # gtd timers once the venues are back (an expiry that passed while
        # emsd was down rings now, and its cancel needs the venue)
        for eff in arms:
            if isinstance(eff, Expire) and self.fx.timers is not None:
                self.fx.timers.schedule(eff)
        self.restored.set()


@asynccontextmanager
async def open_emsd(conf: EMSConf) -> AsyncIterator[Emsd]:
    """Open every part of emsd, restore the journal (in the background:
    see `Emsd.restored`), and close it all on exit."""
    dialogs = DialogTable(track_changes=True)
    # pre-trade checks + trading state (kill switch): see _risk.py
    risk = open_risk_gate(conf.risk, dialogs=dialogs)
    async with open_clients(dialogs) as clients:
        fx = Effects(dialogs, risk, clients)
        async with (
            open_dark_feeds(dialogs, fx, risk, conf.dark_pad_ticks) as dark,
            open_relays(dialogs, clients, fx, conf.relay_idle_s) as relays,
            open_journal_writer(conf.journal_keep_days, fx.release,
                                conf.journal_linger_ms / 1e3) as (writer, records),
            open_expiries(dialogs, fx) as expiries,
            trio.open_nursery() as n,
        ):
            fx.connect(relays, dark, expiries)
            fx.attach(writer)
            emsd = Emsd(dialogs, risk, clients, fx, relays, dark)
            n.start_soon(emsd.restore, records)
            try:
                yield emsd
            finally:
                fx.attach(None)  # nothing more for a closing journal
                emsd.restored.set()
                n.cancel_scope.cancel()


# -- the one emsd of this actor ---------------------------------------------

_emsd: Emsd | None = None
_up: trio.Event | None = None


async def _serve(conf: EMSConf, up: trio.Event) -> None:
    global _emsd
    async with open_emsd(conf) as emsd:
        _emsd = emsd
        up.set()
        try:
            await trio.sleep_forever()
        finally:
            _emsd = None


def _start() -> trio.Event:
    """Open emsd for the actor's lifetime (once); set when it is open."""
    global _up
    if _up is None:
        conf = load_conf().ems  # a bad config fails the caller, not the actor
        _up = trio.Event()
        start_actor_task(_serve, conf, _up)
    return _up


async def current() -> Emsd:
    """This actor's emsd (opened on first use)."""
    await _start().wait()
    assert _emsd is not None
    return _emsd


async def startup() -> None:
    """emsd's start-up hook (`DaemonSpec.startup`), run by pikerd right
    after every (re)spawn: restore the journal now, not at the first
    client's handshake, so a respawned emsd re-arms its dark orders and
    alerts and reconnects the venues of its live orders with nobody
    connected. Returns at once; emsd opens in the background.
    """
    _start()


@tractor.context
async def open_ems_dialog(
    ctx: tractor.Context,
    fqme: str,
    mode: Mode = 'paper',
    loglevel: str | None = None,
) -> None:
    """One order client's session: handshake, then commands in, events out
    (several queued events leave as one list: `SEND_BATCH`; a client's
    batch frame is several commands, in order: `commands_of`)."""
    get_console_log(loglevel)
    emsd = await current()
    # a restarted emsd shows restored dialogs only once they work again
    with trio.move_on_after(RESTORE_WAIT) as cs:
        await emsd.restored.wait()
    if cs.cancelled_caught:
        log.error('restore from the journal still running after %ss: handshake anyway',
                  RESTORE_WAIT)
    fqme = fqme.lower()
    broker = unpack_fqme(fqme)[0]  # ValueError with help reaches the client
    if mode not in ('live', 'paper'):
        raise ValueError(f"mode must be 'live' or 'paper', got {mode!r}")
    mod = get_brokermod(broker)  # unknown backend: a clear error for the client
    await mod.get_mkt_info(fqme)  # unknown market: SymbolNotFound, with close matches
    relay = await emsd.relays.ensure(broker, mode)
    with emsd.clients.session(fqme, mode) as client:
        pps, dialogs = emsd.clients.snapshot(client)
        await ctx.started((pps, relay.accounts or ['paper'], dialogs))
        async with (
            ctx.open_stream() as stream,
            watch_peer(ctx),
            # drained (rule 9): the client's heartbeats share the connection
            open_drained_stream(stream, policy='never_drop', maxlen=CLIENT_COMMANDS) as commands,
            trio.open_nursery() as n,
        ):

            async def _sender() -> None:
                await client.send_all(stream)
                # queue closed: the client fell too far behind
                n.cancel_scope.cancel()

            n.start_soon(_sender)
            async for frame in commands:
                # a client sends the commands it queued meanwhile as one
                # batch, taken as one (`Intake.on_client_msgs`)
                await emsd.intake.on_client_msgs(client, commands_of(frame))
            n.cancel_scope.cancel()
