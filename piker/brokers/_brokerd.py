"""The `brokerd.<broker>` daemon: RPC endpoints over one backend.

Spawned on demand under pikerd by `maybe_spawn_brokerd()`. Endpoints:

- `feed_session(ctx, broker)`: a client process's one quote context per
  broker (see "Session protocol"), fed by the `FeedBus`.
- `mkt_info(broker, fqmes)`, `search(broker, pattern)`,
  `history(broker, fqme, timeframe)` (backend bars merged into the local
  store, all stored bars back), `backfill(broker, fqme, timeframes,
  since, until)` (a time range of them, answering with reports; a
  client pages a deep backfill with it): request/response calls;
  `feed_status(broker)`: sessions and upstreams, for diagnostics.
  They never raise for bad input: they return `{'ok': value}` or
  `{'error': {'type', 'msg'}}` (re-raised client side by
  `unwrap_reply()`), because tractor cannot ship exception objects.
  History arrays travel as `pack_array()` dicts (bytes + dtype + shape).

Session protocol (messages are lists on the wire):

    client -> brokerd   ['sub', reqid, [fqme, ...]]   subscribe (all or nothing)
                        ['unsub', [fqme, ...]]        unsubscribe
    brokerd -> client   ['q', bytes]                  a batch {fqme: quote, ...},
                                                      msgpack-encoded (see below)
                        ['ok', reqid, {'mkts': {fqme: MktPair builtins},
                                       'first_quotes': {fqme: quote}}]
                        ['err', reqid, {'type', 'msg'}]
                        ['down', fqme, {'type', 'msg'}]   an upstream failed
                        ['hb']                        idle heartbeat

A quote in a batch is the backend's (see the contract in `piker.brokers`)
plus `bars`: the market's live bars as brokerd builds and stores them
(`_livebars`), so every client shows the same bars as the store.

Batches travel pre-encoded (`encode_batch()`/`decode_batch()`): tractor
formats every message it sends and receives into log strings whether or
not the level is enabled (TRACTOR.md rule 10), and the repr of a bytes
payload is ~7x cheaper than that of the same quotes as dicts.

Each session has one `QuoteBuffer` (conflating, never blocking) and one
sender task that ships whatever has accumulated as one batch. A busy
session (over 1 / `COALESCE` quotes/s, e.g. the sim at 1,000 quotes/s per
market) ships at most one batch per `COALESCE` seconds: a frame per 10 ms
instead of one per quote, for at most 10 ms more quote age (ticks are
merged, never dropped); a quieter one ships every quote at once. Busy
sessions ship on the ticks of one shared clock (`_pacing`), so brokerd
wakes once per tick for all of them. When there is nothing to send for
`HEARTBEAT` seconds it sends `['hb']`, so the client's watchdog always
hears from a live brokerd; and it checks
`ctx.chan.connected()` on every wake-up, so a SIGKILLed client is noticed
within `HEARTBEAT` seconds even though a blocked `receive()` would never
notice (TRACTOR.md rule 2). The session returns when the client closes
its stream (rule 4).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager as acm
from functools import partial
from typing import Any

import msgspec
import tractor
import trio

from ..buffers import QuoteBuffer
from ..log import get_logger
from ..ohlc import pack_array
from ..service import STOP_LAST, DaemonKind, DaemonSpec, actor_nursery
from ._errors import BrokerError, error_to_msg, raise_from_msg
from ._feedbus import FeedBus
from ._pacing import GRID, tick
from ._registry import get_brokermod

log = get_logger('brokers.brokerd')

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def encode_batch(batch: dict[str, Any]) -> bytes:
    """A quote batch as msgpack bytes (the `['q', ...]` payload)."""
    return _encoder.encode(batch)


def decode_batch(data: bytes) -> dict[str, Any]:
    """Inverse of `encode_batch()`."""
    return _decoder.decode(data)

HEARTBEAT = 0.25
# a session busier than 1 / COALESCE quotes/s (measured over RATE_WINDOW
# seconds) ships at most one batch per COALESCE seconds (see above), on
# the grid every busy session shares (`_pacing`)
COALESCE = GRID
RATE_WINDOW = 0.1

# errors caused by the request (bad input), answered as error replies
_REQUEST_ERRORS = (BrokerError, ValueError, LookupError)

_buses: dict[str, FeedBus] = {}

# brokerd.<broker>: the quote feed (and trades dialogue) of one backend;
# every other daemon consumes it, so it stops last
BROKERD = DaemonKind(prefix='brokerd', modules=(__name__,), stop_order=STOP_LAST)


def daemon_name(broker: str) -> str:
    """The registry name of `broker`'s brokerd."""
    return BROKERD.name(broker)


def brokerd_spec(
    broker: str, loglevel: str | None = None, extra_modules: Iterable[str] = (),
) -> DaemonSpec:
    """The spawn spec of `brokerd.<broker>`: `BROKERD` with the backend and
    whatever extra modules it lists in `__enable_modules__`; raises
    `NoSuchBackend` for an unknown broker."""
    mod = get_brokermod(broker)
    return BROKERD.spec(broker, loglevel=loglevel, extra_modules=[
        mod.__name__, *getattr(mod, '__enable_modules__', []), *extra_modules,
    ])


def get_bus(broker: str) -> FeedBus:
    """This daemon's feed bus for `broker`, created on first use.

    Upstreams run in the actor's service nursery, which lives as long as
    the daemon (an RPC task's nursery would die with its caller).
    """
    bus = _buses.get(broker)
    if bus is None:
        bus = _buses[broker] = FeedBus(get_brokermod(broker), broker, actor_nursery())
        bus.recording |= _configured_recording(broker)
        bus.on_start = partial(_backfill_on_open, broker)
    return bus


async def _backfill_on_open(broker: str, fqme: str) -> None:
    """A market just opened (any client: chart, script, emsd): bring its
    stored bars up to now in the background. Never raises (logged)."""
    from ..ohlc import TIMEFRAMES

    for tf in TIMEFRAMES:
        try:
            _, report = await _backfill(broker, fqme, tf, None, serve=False)
            # gaps older than the default window: asked for by range
            # (newest first, a few per open; `piker store backfill` does all)
            for gap in (report.gaps[::-1][:REPAIR_ON_OPEN]
                        if report is not None and takes_range(get_bus(broker).mod) else ()):
                _, report = await _backfill(broker, fqme, tf, gap.start, serve=False,
                                            until=gap.end - tf)
        except Exception as err:  # noqa: BLE001 - a backfill must not fail the feed
            log.warning(f'{fqme}: {tf}s backfill on open failed: {err}')
            continue
        if report is not None:
            log.info(f'{fqme}: {tf}s backfilled, {report.bars} bars stored'
                     + (f', {len(report.gaps)} gap(s) not repaired yet'
                        if report.gaps else ''))


# gaps a market's opening asks the backend for (by time range)
REPAIR_ON_OPEN = 4


def takes_range(mod: Any) -> bool:
    """Whether a backend's `open_history` takes `start`/`end` (the
    contract's time range; a backend written before it does not)."""
    import inspect

    params = inspect.signature(mod.open_history).parameters
    return 'start' in params and 'end' in params


def _configured_recording(broker: str) -> set[str]:
    """`[storage] record` fqmes of this broker (none if conf.toml is bad: logged)."""
    from ..accounting import unpack_fqme
    from ..config import ConfigError, load_conf

    try:
        fqmes = load_conf().storage.record
    except ConfigError as err:
        log.error(f'brokerd.{broker}: records nothing: {err}')
        return set()
    return {f.lower() for f in fqmes if unpack_fqme(f)[0] == broker}


def unwrap_reply(reply: dict[str, Any]) -> Any:
    """Client side: return an endpoint's `ok` value or raise its error."""
    if 'error' in reply:
        raise_from_msg(reply['error'])
    return reply['ok']


async def _reply(coro: Any) -> dict[str, Any]:
    try:
        return {'ok': await coro}
    except _REQUEST_ERRORS as err:
        return {'error': error_to_msg(err)}


# --- request/response endpoints --------------------------------------------

async def mkt_info(broker: str, fqmes: list[str]) -> dict[str, Any]:
    """RPC: `{'ok': {fqme: MktPair builtins}}` for every fqme."""
    async def _get() -> dict[str, Any]:
        bus = get_bus(broker)
        return {f.lower(): (await bus.mkt_info(f)).to_builtins() for f in fqmes}
    return await _reply(_get())


async def search(broker: str, pattern: str) -> dict[str, Any]:
    """RPC: `{'ok': {fqme: MktPair builtins}}`, best match first."""
    async def _get() -> dict[str, Any]:
        found = await get_brokermod(broker).symbol_search(pattern)
        return {fqme: mkt.to_builtins() for fqme, mkt in dict(found).items()}
    return await _reply(_get())


async def history(broker: str, fqme: str, timeframe: int = 60) -> dict[str, Any]:
    """RPC: `{'ok': pack_array(bars)}` of `timeframe`-second OHLC bars.

    The backend's bars merged into the local store (backfill and gap
    repair, `piker.storage._backfill`), answered with everything stored. A
    store that cannot be written (full disk, read-only) is logged as an
    error and the backend's bars are served as they are.
    """
    async def _get() -> dict[str, Any]:
        bars, _ = await _backfill(broker, fqme.lower(), int(timeframe), None, serve=True)
        return pack_array(bars)
    return await _reply(_get())


async def backfill(
    broker: str,
    fqme: str,
    timeframes: list[int],
    since: int | None = None,
    until: int | None = None,
) -> dict[str, Any]:
    """RPC: fetch `timeframes` from the backend into the store: the bars
    of `[since, until]` (epoch s; `since` None: the backend's default
    window, `until` None: now); `{'ok': [BackfillReport builtins]}`. A
    range whose every bar is stored or recorded closed is not asked for
    (`skipped`)."""
    async def _get() -> list[dict[str, Any]]:
        mod = get_brokermod(broker)
        if getattr(mod, 'SERVES_STORE', False):
            raise ValueError(f'{fqme} is a stored market: there is nothing to backfill')
        if (since is not None or until is not None) and not takes_range(mod):
            raise ValueError(f'backend {broker!r} serves no time range (its open_history '
                             'takes no start/end): backfill without --since')
        out = []
        for tf in timeframes:
            _, report = await _backfill(broker, fqme.lower(), int(tf), since,
                                        serve=False, until=until)
            out.append(report.to_builtins())
        return out
    return await _reply(_get())


# one store writer per (fqme, timeframe) in this daemon
_store_locks: dict[tuple[str, int], trio.Lock] = {}


async def _backfill(
    broker: str,
    fqme: str,
    timeframe: int,
    since: int | None,
    serve: bool,
    until: int | None = None,
) -> tuple[Any, Any]:
    """Fetch (the bars of `[since, until]`, or the backend's default
    window), merge into the store (in a thread), optionally read it all
    back."""
    import time

    from ..storage import BarStore, StorageError
    from ..storage._backfill import merge_fetched, report, wanted

    bus = get_bus(broker)
    ranged = {k: v for k, v in (('start', since), ('end', until)) if v is not None}
    store = BarStore()
    lock = _store_locks.setdefault((fqme, timeframe), trio.Lock())
    now = time.time()
    if since is not None and not serve and not getattr(bus.mod, 'SERVES_STORE', False):
        hi = int(until if until is not None else now)
        try:
            todo = await trio.to_thread.run_sync(wanted, store, fqme, timeframe, since, hi)
            if not todo:
                return None, await trio.to_thread.run_sync(
                    partial(report, store, fqme, timeframe, since, until, skipped=True))
        except StorageError as err:
            raise BrokerError(f'{fqme}: {err}') from None
    fetched = await bus.mod.open_history(bus.to_native(fqme), timeframe, **ranged)
    if getattr(bus.mod, 'SERVES_STORE', False):
        # the backend's bars are the store's (`local`): nothing to merge
        return fetched, None

    def work() -> tuple[Any, Any]:
        rep = merge_fetched(store, fqme, timeframe, fetched, since, until, now)
        return (store.read(fqme, timeframe) if serve else None), rep

    async with lock:
        try:
            return await trio.to_thread.run_sync(work)
        except StorageError as err:
            if not serve:
                raise BrokerError(f'{fqme}: {err}') from None
            log.error(f'{fqme}: serving {timeframe}s bars without the store: {err}')
            return fetched, None


async def record(broker: str, fqmes: list[str], on: bool = True) -> dict[str, Any]:
    """RPC: start (`on`) or stop recording every quote of `fqmes` into the
    tick store while their upstreams run; `{'ok': {'recording': [fqmes],
    'changed': [the fqmes this call switched]}}`."""
    async def _set() -> dict[str, list[str]]:
        bus = get_bus(broker)
        before = set(bus.recording)
        bus.record(list(fqmes), on=on)
        return {'recording': sorted(bus.recording),
                'changed': sorted(before ^ bus.recording)}
    return await _reply(_set())


async def feed_status(broker: str) -> dict[str, Any]:
    """RPC: `{'sessions': n, 'upstreams': {fqme: subscribers}}` (diagnostics)."""
    bus = get_bus(broker)
    return {'sessions': _sessions.get(broker, 0), 'upstreams': bus.upstreams()}


# --- the quote session -------------------------------------------------------

_sessions: dict[str, int] = {}


@tractor.context
async def feed_session(ctx: tractor.Context, broker: str) -> None:
    """One client process's quote session (protocol in the module doc)."""
    bus = get_bus(broker)
    buf = QuoteBuffer()
    await ctx.started(True)
    _sessions[broker] = _sessions.get(broker, 0) + 1
    try:
        async with ctx.open_stream() as stream:
            async with trio.open_nursery() as n:

                def on_down(fqme: str, err: BaseException) -> None:
                    n.start_soon(_send_quiet, stream, ['down', fqme, error_to_msg(err)])

                n.start_soon(_serve_requests, stream, bus, buf, on_down, n.cancel_scope)
                await _send_batches(ctx, stream, buf)
                n.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        # the client is gone: closing our stream end could not reach it
        log.info(f'feed session with {ctx.chan.uid}: client disconnected')
    finally:
        _sessions[broker] -= 1
        bus.unsubscribe(buf)
        buf.close()


async def _send_quiet(stream: tractor.MsgStream, msg: list) -> None:
    try:
        await stream.send(msg)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def _send_batches(
    ctx: tractor.Context,
    stream: tractor.MsgStream,
    buf: QuoteBuffer,
) -> None:
    """Ship batches (or heartbeats) until the client is gone."""
    hb = ['hb']
    last = window = trio.current_time()
    counted = buf.conflated  # quotes in = batch entries + merged ones
    quotes = 0
    busy = False
    try:
        while ctx.chan.connected():
            # a busy feed: let quotes gather (conflated) until the shared
            # clock's next tick; a quiet one ships at once
            if busy:
                await tick()
            batch = await buf.receive(timeout=HEARTBEAT)
            last = trio.current_time()
            quotes += len(batch) + buf.conflated - counted
            counted = buf.conflated
            if last - window >= RATE_WINDOW:
                busy = quotes > (last - window) / COALESCE
                window, quotes = last, 0
            await stream.send(['q', encode_batch(batch)] if batch else hb)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    log.info(f'feed session with {ctx.chan.uid} ended')


async def _serve_requests(
    stream: tractor.MsgStream,
    bus: FeedBus,
    buf: QuoteBuffer,
    on_down: Any,
    session_cs: trio.CancelScope,
) -> None:
    """Handle sub/unsub requests; end the session when the client does."""
    try:
        async for msg in stream:
            try:
                kind = msg[0]
                if kind == 'sub':
                    _, reqid, fqmes = msg
                    try:
                        mkts, first = await bus.subscribe(buf, list(fqmes), on_down)
                    except _REQUEST_ERRORS as err:
                        await stream.send(['err', reqid, error_to_msg(err)])
                        continue
                    await stream.send(['ok', reqid, {
                        'mkts': {f: m.to_builtins() for f, m in mkts.items()},
                        'first_quotes': first,
                    }])
                elif kind == 'unsub':
                    bus.unsubscribe(buf, list(msg[1]))
                else:
                    log.warning(f'feed session: unknown message {msg!r}')
            except (TypeError, ValueError, IndexError) as err:
                log.warning(f'feed session: malformed message {msg!r}: {err}')
    except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    # the client closed its side: end the session
    session_cs.cancel()


# --- spawning ------------------------------------------------------------------

@acm
async def maybe_spawn_brokerd(
    broker: str,
    loglevel: str | None = None,
) -> AsyncIterator[tractor.Portal]:
    """Yield a portal to `brokerd.<broker>`, spawning it under pikerd if needed.

    Needs a piker actor runtime in this process (`maybe_open_pikerd()`).
    Raises `NoSuchBackend` for an unknown broker before spawning anything.
    """
    from ..service import open_daemon

    async with open_daemon(brokerd_spec(broker.lower(), loglevel)) as portal:
        yield portal


async def call(portal: tractor.Portal, func: Any, **kwargs: Any) -> Any:
    """Run a request/response endpoint and unwrap its reply."""
    return unwrap_reply(await portal.run(func, **kwargs))
