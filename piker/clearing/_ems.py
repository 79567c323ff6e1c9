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
"""
from __future__ import annotations

import math
import time
from collections import defaultdict
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
from ..service import PeerLost, maybe_spawn_daemon, open_watched_context, watch_peer
from ._dark import DarkBook
from ._dialogs import Arm, DialogTable, Disarm, Effect, ToVenue
from ._messages import (
    BrokerdError,
    BrokerdPosition,
    MessageError,
    Order,
    Status,
    decode_broker_msg,
    decode_client_msg,
    error_status,
)
from ._paper_engine import leave_if_cancelled, open_trade_dialog

log = get_logger(__name__)

Mode = Literal['live', 'paper']
EMSD_NAME = 'emsd'
# per-client queue of outgoing messages; a client this far behind is cut
CLIENT_QUEUE = 20_000
# a venue that leaves heartbeats unanswered this long is declared lost
VENUE_WATCHDOG_TIMEOUT = 2.0


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
        except trio.ClosedResourceError:
            self.dropped = True


class Relay:
    """The trades dialogue with one venue: (broker, mode)."""

    def __init__(self, broker: str, mode: Mode) -> None:
        self.broker = broker
        self.mode = mode
        self.stream: tractor.MsgStream | None = None
        self.accounts: list[str] = []
        self.ready = trio.Event()
        self.error: str = ''
        self.send_lock = trio.StrictFIFOLock()

    @property
    def venue(self) -> str:
        return f'paperboi.{self.broker}' if self.mode == 'paper' else f'brokerd.{self.broker}'


class DarkFeed:
    """The quote feed of one market, driving the dark book."""

    def __init__(self) -> None:
        self.ready = trio.Event()
        self.last: float = math.nan
        self.mkt: MktPair | None = None
        self.error: str = ''


class Router:
    """emsd's state and the executor of dialog effects."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._n = nursery
        self.dialogs = DialogTable()
        self.book = DarkBook()
        conf = load_conf()
        self.pad_ticks = conf.ems.dark_pad_ticks
        self.clients: dict[int, ClientConn] = {}
        self.relays: dict[tuple[str, Mode], Relay] = {}
        self.feeds: dict[str, DarkFeed] = {}
        # oid -> (broker, mode) of the relay its venue orders go to
        self.routes: dict[str, tuple[str, Mode]] = {}
        # oid -> id of the client that placed it (sees it whatever its subs)
        self.owners: dict[str, int] = {}
        # (broker, account) -> fqme -> latest position
        self.positions: dict[tuple[str, str], dict[str, BrokerdPosition]] = defaultdict(dict)

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
        func: Any
        if relay.mode == 'paper':
            modules = ['piker.clearing._paper_engine']
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
            modules = brokerd_modules(relay.broker)
            func = mod.trades_dialogue
        backoff = 0.1
        while True:
            try:
                async with maybe_spawn_daemon(relay.venue, enable_modules=modules) as portal:
                    async with open_watched_context(
                        portal, func, broker=relay.broker, timeout=VENUE_WATCHDOG_TIMEOUT,
                    ) as (ctx, (positions, accounts)):
                        async with ctx.open_stream() as stream:
                            relay.accounts = list(accounts)
                            for raw in positions:
                                await self.on_venue_msg(relay, raw)
                            relay.stream = stream
                            relay.ready.set()
                            backoff = 0.1
                            async for raw in stream:
                                await self.on_venue_msg(relay, raw)
                log.warning('%s ended its trades dialogue; reconnecting', relay.venue)
            except PeerLost as err:
                await leave_if_cancelled()
                log.error('lost %s (%s): reconnecting', relay.venue, err)
            except Exception as err:
                if not relay.ready.is_set():
                    relay.error = f'cannot reach {relay.venue}: {err}'
                    log.error(relay.error)
                    relay.ready.set()
                    return
                await leave_if_cancelled()
                log.exception('trades relay with %s failed; reconnecting', relay.venue)
            except BaseException:
                await leave_if_cancelled()
                raise
            finally:
                relay.stream = None
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def on_venue_msg(self, relay: Relay, raw: Any) -> None:
        """One backend -> emsd message: positions, or a dialog event."""
        try:
            msg = decode_broker_msg(raw)
        except MessageError as err:
            log.warning('bad message from %s: %s: %r', relay.venue, err.reason, raw)
            return
        if isinstance(msg, BrokerdPosition):
            self.positions[(msg.broker, msg.account)][msg.symbol] = msg
            for client in self.clients.values():
                if msg.broker in client.brokers:
                    client.push(msg)
            return
        effects = self.dialogs.on_broker_msg(msg, relay.broker)
        # an external order announced by the venue routes back to it
        for eff in effects:
            if isinstance(eff, Status) and eff.oid not in self.routes:
                self.routes[eff.oid] = (relay.broker, relay.mode)
        await self.execute(effects)

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
                    feed.ready.set()
                    backoff = 0.1
                    async for batch in f.stream:
                        quote = batch.get(fqme)
                        if quote is None:
                            continue
                        last = quote.get('last')
                        if last is not None:
                            feed.last = last
                        fired = self.book.process_quote(fqme, quote)
                        if fired:
                            effects: list[Effect] = []
                            for trig in fired:
                                effects += self.dialogs.on_trigger(trig)
                            await self.execute(effects)
            except Exception as err:
                if not feed.ready.is_set():
                    feed.error = f'no market data for {fqme!r}: {err}'
                    log.error(feed.error)
                    feed.ready.set()
                    return
                await leave_if_cancelled()
                log.error('dark feed of %s failed (%s); reconnecting', fqme, err)
            except BaseException:
                await leave_if_cancelled()
                raise
            await trio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    # -- client commands ------------------------------------------------------

    async def on_client_msg(self, client: ClientConn, raw: Any) -> None:
        """Validate, route and apply one client command."""
        try:
            msg = decode_client_msg(raw)
        except MessageError as err:
            log.warning('bad message from client %s: %s', client.id, err.reason)
            client.push(error_status(raw, err.reason))
            return
        if isinstance(msg, Order):
            problem = await self._check_order(client, msg)
            if problem:
                log.warning('order %s refused: %s', msg.oid, problem)
                live = self.dialogs.get(msg.oid)
                if live is not None and not live.terminal:
                    # a refused modify: the order works on as it was
                    client.push(live.snapshot().copy({'reason': f'modify refused: {problem}'}))
                else:
                    client.push(error_status(msg, problem))
                return
            self.owners.setdefault(msg.oid, client.id)
            self.routes.setdefault(msg.oid, (msg.broker, client.mode))
        else:
            self.owners.setdefault(msg.oid, client.id)
        effects = self.dialogs.on_client_msg(msg)
        if not effects:
            return
        await self.execute(effects, origin=client)

    async def _check_order(self, client: ClientConn, order: Order) -> str:
        broker = order.broker
        try:
            get_brokermod(broker)
        except Exception as err:  # NoSuchBackend: lists the known ones
            return str(err)
        existing = self.dialogs.get(order.oid)
        if existing is not None and existing.terminal:
            # the dialog table would drop it silently: tell the sender
            return (f'dialog {order.oid} is finished ({existing.phase.value}): '
                    'a new order needs a new oid')
        if existing is not None and existing.fqme != order.symbol:
            return (f'modify of {order.oid} cannot change its market '
                    f'{existing.fqme!r} to {order.symbol!r}')
        _, mode = self.routes.get(order.oid, (broker, client.mode))
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
        return ''

    # -- effects ----------------------------------------------------------------

    async def execute(self, effects: Iterable[Effect], origin: ClientConn | None = None) -> None:
        """Carry out dialog effects in order."""
        for eff in effects:
            if isinstance(eff, Status):
                self.publish(eff, origin)
            elif isinstance(eff, ToVenue):
                await self._to_venue(eff)
            elif isinstance(eff, Arm):
                self._arm(eff)
            elif isinstance(eff, Disarm):
                self.book.disarm(eff.oid)

    def execute_nowait(self, effects: Iterable[Effect]) -> None:
        """`execute()` for effects that need no venue round trip."""
        for eff in effects:
            if isinstance(eff, Status):
                self.publish(eff)
            elif isinstance(eff, Arm):
                self._arm(eff)
            elif isinstance(eff, Disarm):
                self.book.disarm(eff.oid)

    def _arm(self, eff: Arm) -> None:
        feed = self.feeds.get(eff.fqme)
        mkt = feed.mkt if feed else None
        last = feed.last if feed else math.nan
        if not math.isfinite(last):
            last = eff.level  # no print yet: a level at the market fires on a fall
        self.book.arm(
            eff.oid, eff.fqme, eff.action, eff.level, last, size=eff.size,
            price_tick=mkt.price_tick if mkt else None,
            pad_ticks=self.pad_ticks if mkt else 0,
        )

    async def _to_venue(self, eff: ToVenue) -> None:
        broker, mode = self.routes.get(eff.msg.oid, (eff.broker, 'paper'))
        relay = self.relays.get((broker, mode))
        stream = relay.stream if relay else None
        if stream is None:
            reason = f'venue {relay.venue if relay else broker} is not connected'
            self._venue_down(eff, reason)
            return
        try:
            # shielded: this may run in a client's task, cancelled when that
            # client goes away; a send cut half-way would corrupt the framing
            # of the connection every client's orders share
            with trio.CancelScope(shield=True):
                async with relay.send_lock:
                    await stream.send(eff.msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as err:
            self._venue_down(eff, f'lost {relay.venue}: {type(err).__name__}')

    def _venue_down(self, eff: ToVenue, reason: str) -> None:
        log.error('cannot send %s for %s: %s', type(eff.msg).__name__, eff.msg.oid, reason)
        effects = self.dialogs.on_broker_msg(
            BrokerdError(oid=eff.msg.oid, reqid=getattr(eff.msg, 'reqid', None), reason=reason),
            eff.broker,
        )
        self.execute_nowait(effects)

    def publish(self, status: Status, origin: ClientConn | None = None) -> None:
        """Fan a Status out to every interested client."""
        fqme = status.req.symbol if status.req is not None else ''
        owner = self.owners.get(status.oid)
        sent = False
        for client in self.clients.values():
            if fqme in client.fqmes or client.id == owner or client is origin:
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


_router: Router | None = None


def get_router() -> Router:
    global _router
    if _router is None:
        # tractor 0.1.0a5 has no public per-actor nursery; its service
        # nursery lives as long as the actor, like the router must.
        _router = Router(tractor.current_actor()._service_n)
    return _router


@tractor.context
async def open_ems_dialog(
    ctx: tractor.Context,
    fqme: str,
    mode: Mode = 'paper',
    loglevel: str | None = None,
) -> None:
    """One order client's session: handshake, then commands in, events out."""
    get_console_log(loglevel)
    router = get_router()
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
        async with ctx.open_stream() as stream, watch_peer(ctx), trio.open_nursery() as n:

            async def _sender() -> None:
                async with client.recv_ch:
                    async for msg in client.recv_ch:
                        await stream.send(msg)
                # queue closed: the client fell too far behind
                n.cancel_scope.cancel()

            n.start_soon(_sender)
            async for raw in stream:
                try:
                    await router.on_client_msg(client, raw)
                except Exception:
                    log.exception('failed to handle client message %r', raw)
                    client.push(error_status(raw, 'internal error handling this message'))
            n.cancel_scope.cancel()
    finally:
        router.clients.pop(client.id, None)
        client.send_ch.close()


async def ems_ping() -> float:
    """RPC: the daemon's clock (liveness probe for tests and the CLI)."""
    return time.time()


__all__ = ['EMSD_NAME', 'Router', 'get_router', 'open_ems_dialog']
