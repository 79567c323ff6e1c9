"""pikerd's service manager: spawns daemons and supervises them.

tractor 0.1.0a5 has no supervision (TRACTOR.md rule 7): a SIGKILLed daemon
just vanishes and its registry entry stays forever. `Services` owns every
daemon pikerd spawns and, per daemon, one supervisor task that waits on the
child process. When it exits the supervisor classifies the exit:

- requested (`cancel_daemon()` / pikerd shutting down) or exit code 0
  (cancelled cleanly by some peer): the daemon is gone on purpose, forget it;
- anything else is a crash: drop the stale registry entry and respawn the
  same spec after a backoff, at most `max_restarts` times per
  `restart_window` seconds, then give up (state `failed`) until someone asks
  for the daemon again.

Concurrent requests for one name serialise on a per-name lock and re-check
before spawning, so callers in any process get one daemon, not two.

A pruning task also drops registry entries of actors that pikerd did not
spawn (client roots, nested daemons) once their address stops accepting
connections, so `find_actor` never hands out a dead address for long.
Only a refused connection counts as gone (a slow accept on a busy box does
not), and since pikerd drops entries itself, its registry treats
unregistering an already-dropped entry as done rather than an error.

The same task probes every running daemon's own address: a daemon whose
process lives but whose listener is gone (measured: a bad connection once
tore emsd's listener down while its message loop with pikerd kept it
running, unreachable, for ever) can serve nobody. After
`DEAF_STRIKES` refused probes in a row (a daemon exiting on purpose closes
its listener a moment before it exits) it is killed, and so respawned like
any crash. pikerd itself exits with an error if its own listener goes:
it could not respawn anything any more (tractor spawns a child with the
parent's listening address: `OSError(9, 'Bad file descriptor')`).
"""
from __future__ import annotations

import os
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any, Literal

import tractor
import trio

from ..log import get_logger
from ..types import Struct
from . import _child_init
from ._registry import Addr, ServiceError, check_bind_host, is_loopback, listener_gone

log = get_logger('service')

# modules every piker sub-actor loads: the start-up hook and the heartbeat
DAEMON_MODULES: list[str] = ['piker.service._child_init', 'piker.service._heartbeat']

DaemonState = Literal['starting', 'running', 'cancelling', 'failed']

_services: Services | None = None

# refused probes in a row before a daemon with a live process counts as dead
DEAF_STRIKES = 3


# a daemon's place in `Services.stop_all()`: consumers stop before what
# they consume (emsd, then the paper venues, then others, brokerds last)
STOP_FIRST, STOP_EARLY, STOP_NORMAL, STOP_LAST = 0, 1, 2, 3


def teardown_order(specs: Iterable[DaemonSpec]) -> list[str]:
    """The names of `specs` in stop order (`DaemonSpec.stop_order`, then name)."""
    return [s.name for s in sorted(specs, key=lambda s: (s.stop_order, s.name))]


def current_services() -> Services | None:
    """The `Services` of this process if it is pikerd, else None."""
    return _services


class DaemonSpec(Struct):
    """Everything needed to (re)spawn a daemon identically."""

    name: str
    enable_modules: list[str]
    loglevel: str | None = None
    bind_host: str = '127.0.0.1'
    expose: bool = False
    infect_asyncio: bool = False
    # 'package.module:function': an async function (no arguments) in one of
    # `enable_modules` that pikerd runs in the daemon right after every
    # (re)spawn, before anyone is handed the daemon. For work a daemon must
    # resume on its own after a crash, with nobody asking for it yet (emsd
    # re-arming its journal's dark orders, paperboi restarting the feeds of
    # its resting orders). Keep it quick: start tasks, do not wait on them.
    startup: str | None = None
    # when `Services.stop_all()` stops it: lower first (`STOP_FIRST`...)
    stop_order: int = STOP_NORMAL


class DaemonKind(Struct, frozen=True):
    """One kind of piker daemon, defined once: its registry name (`prefix`,
    or `prefix.<key>` for one per broker), the modules it exposes, its
    start-up hook and its stop order. Every spawn (on demand, by a joined
    host's supervisor, by a bench) builds its `DaemonSpec` with `spec()`,
    so pikerd's respawn of it and `stop_all()` see the same daemon.
    """

    prefix: str
    modules: tuple[str, ...]
    startup: str | None = None
    stop_order: int = STOP_NORMAL

    def name(self, key: str = '') -> str:
        """The registry name: `prefix`, or `prefix.<key>`."""
        return f'{self.prefix}.{key}' if key else self.prefix

    def key_of(self, name: str) -> str | None:
        """The key in a registry name of this kind ('' if keyless), else None."""
        if name == self.prefix:
            return ''
        head, dot, key = name.partition('.')
        return key if dot and head == self.prefix and key else None

    def spec(
        self, key: str = '', *, loglevel: str | None = None,
        extra_modules: Iterable[str] = (), **kw: Any,
    ) -> DaemonSpec:
        """The spawn spec of this daemon (of `key`), with `extra_modules`
        exposed too (a backend's endpoints, a bench's probes)."""
        modules = list(dict.fromkeys([*self.modules, *extra_modules]))
        return DaemonSpec(
            name=self.name(key), enable_modules=modules, loglevel=loglevel,
            startup=self.startup, stop_order=self.stop_order, **kw,
        )


async def _run_startup(spec: DaemonSpec, portal: tractor.Portal) -> None:
    """Run `spec.startup` in the daemon; a failing hook is logged, not fatal.

    The daemon still serves requests without it (each one sets up what it
    needs on first use); what a broken hook costs is the resumption.
    """
    assert spec.startup is not None
    mod, _, func = spec.startup.partition(':')
    try:
        await portal.run_from_ns(mod, func)
    except Exception as err:
        log.error(f'{spec.name}: start-up hook {spec.startup} failed: {err!r}')


class DaemonInfo(Struct):
    """What `list_services()` reports per daemon."""

    name: str
    addr: tuple[str, int]
    pid: int | None = None
    state: str = 'running'
    restarts: int = 0
    managed: bool = True
    # who supervises it: 'pikerd', 'pikerd@<host>' (a joined host), or ''
    supervisor: str = 'pikerd'


class _Daemon:
    """Runtime record of one daemon process spawned by pikerd."""

    def __init__(self, spec: DaemonSpec) -> None:
        self.spec = spec
        self.state: DaemonState = 'starting'
        self.uid: tuple[str, str] | None = None
        self.addr: Addr | None = None
        self.pid: int | None = None
        self.portal: tractor.Portal | None = None
        self.proc: Any = None
        self.error: BaseException | None = None
        self.ready = trio.Event()  # spawn finished: running, or `error` set
        self.exited = trio.Event()
        self.deaf = 0  # refused listener probes in a row


class Services:
    """The actor nursery and service task nursery of pikerd, plus supervision."""

    def __init__(
        self,
        an: tractor._supervise.ActorNursery,
        service_n: trio.Nursery,
        registry_addr: Addr,
        *,
        loglevel: str | None = None,
        spawn_timeout: float = 15.0,
        max_restarts: int = 5,
        restart_window: float = 60.0,
        prune_interval: float = 1.0,
        bind_host: str = '127.0.0.1',
    ) -> None:
        self.an = an
        # where daemons asked to bind loopback listen instead: this host's
        # routable address when pikerd itself is exposed (multi-host)
        self.bind_host = bind_host
        # daemon name -> host of the joined supervisor serving it (`_join`)
        self.remote: dict[str, str] = {}
        self.service_n = service_n
        self.registry_addr = registry_addr
        self.loglevel = loglevel
        self.spawn_timeout = spawn_timeout
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.prune_interval = prune_interval
        self.closing = False
        self._arbiter = tractor.current_actor()
        self._init_registry()
        self._daemons: dict[str, _Daemon] = {}
        self._locks: defaultdict[str, trio.Lock] = defaultdict(trio.Lock)
        self._restarts: defaultdict[str, deque[float]] = defaultdict(deque)
        # last exit of every daemon: (name, returncode, crashed)
        self.exits: list[tuple[str, int | None, bool]] = []

    # --- registry ----------------------------------------------------------

    def _init_registry(self) -> None:
        assert self._arbiter.is_arbiter, 'Services must run in the registry actor'
        self._arbiter.unregister_actor = self._unregister_actor

    async def joined(self, host: str, names: list[str],
                     entries: list[tuple[tuple[str, str], Addr]]) -> None:
        """A joined supervisor on `host` serves `names`; (re-)register the
        daemons it runs (after a pikerd restart nobody else would)."""
        for name in names:
            if self.remote.get(name) != host:
                log.info(f'{name} is served by the joined host {host}')
            self.remote[name] = host
        for uid, addr in entries:
            uid = (str(uid[0]), str(uid[1]))
            if self._arbiter._registry.get(uid) != tuple(addr):
                await self._arbiter.register_actor(uid, (str(addr[0]), int(addr[1])))

    async def _ensure_remote(self, name: str) -> Addr:
        """A daemon a joined host serves is never spawned here: wait for its
        entry (it may be respawning) or say which host does not answer."""
        with trio.move_on_after(self.spawn_timeout):
            while True:
                addr = self._live_entry(name)
                if addr is not None and not await listener_gone(tuple(addr)):
                    return tuple(addr)  # type: ignore[return-value]
                await trio.sleep(0.1)
        raise ServiceError(f'{name} runs on the joined host {self.remote[name]}, '
                           f'which does not answer')

    def registry(self) -> dict[tuple[str, str], Addr]:
        """A copy of the tractor registry held by this (arbiter) actor."""
        return dict(self._arbiter._registry)

    def _forget(self, uid: tuple[str, str]) -> bool:
        """Remove `uid` from the registry and its waiter list; True if found."""
        uid = (str(uid[0]), str(uid[1]))
        found = self._arbiter._registry.pop(uid, None) is not None
        waiters = self._arbiter._waiters.get(uid[0])
        if waiters:
            waiters[:] = [w for w in waiters if w != uid]
        return found

    def drop_entry(self, uid: tuple[str, str]) -> bool:
        """Remove a (stale) registry entry; True if there was one."""
        found = self._forget(uid)
        if found:
            log.warning(f'dropped stale registry entry {uid[0]}@{str(uid[1])[:8]}')
        return found

    async def _unregister_actor(self, uid: tuple[str, str]) -> None:
        """The registry's `unregister_actor` RPC, replaced on pikerd's arbiter.

        tractor's own version raises `KeyError` for an unknown uid. pikerd
        drops entries itself (`prune`, crashed daemons), and a gracefully
        exiting actor closes its listener *before* it unregisters, so the
        pruner can legitimately drop the entry in that window. The
        `KeyError` would then travel back to the exiting actor as a
        `RemoteActorError` and crash its root on the way out (a client that
        did everything right exits 1). Unregistering an entry that is
        already gone is the wanted end state, not an error.
        """
        self._forget(uid)

    def _live_entry(self, name: str) -> Addr | None:
        """Newest registry address of `name` not known to be dead."""
        found = None
        for (aname, _), addr in self._arbiter._registry.items():
            if aname == name:
                found = addr
        return found

    async def prune(self) -> int:
        """Drop registry entries of unmanaged actors that stopped listening.

        Only a refused connection counts (`listener_gone`): a slow accept
        on a loaded box is not a dead actor.
        """
        managed = {d.uid for d in self._daemons.values() if d.uid}
        dropped = 0
        for uid, addr in list(self._arbiter._registry.items()):
            if uid == self._arbiter.uid or uid in managed:
                continue
            if await listener_gone(tuple(addr), timeout=0.5):
                dropped += self.drop_entry(uid)
        return dropped

    async def check_listeners(self) -> list[str]:
        """Kill the running daemons whose listener is gone; their names.

        Probed concurrently (a slow accept costs one `timeout`, not one per
        daemon). The supervisor then sees an unrequested exit: a respawn.
        """
        running = [d for d in self._daemons.values()
                   if d.state == 'running' and d.addr and d.proc.poll() is None]
        gone: dict[str, bool] = {}

        async def _probe(d: _Daemon) -> None:
            gone[d.spec.name] = await listener_gone(d.addr, timeout=0.5)  # type: ignore[arg-type]

        async with trio.open_nursery() as n:
            for d in running:
                n.start_soon(_probe, d)
        killed = []
        for d in running:
            d.deaf = d.deaf + 1 if gone[d.spec.name] else 0
            if d.deaf < DEAF_STRIKES or d.state != 'running' or d.proc.poll() is not None:
                continue
            log.error(
                f'{d.spec.name} (pid {d.pid}) no longer accepts connections at '
                f'{d.addr[0]}:{d.addr[1]}: killing it, to be respawned'  # type: ignore[index]
            )
            d.proc.kill()
            killed.append(d.spec.name)
        return killed

    async def _prune_forever(self) -> None:
        while True:
            await trio.sleep(self.prune_interval)
            await self.prune()
            await self.check_listeners()

    async def _watch_own_listener(self) -> None:
        """Exit pikerd (an error) if its listener closes while it is not
        shutting down: a registry nobody can reach is not half a pikerd."""
        await self._arbiter._server_down.wait()
        if not (self.closing or self._arbiter._cancel_called):
            raise ServiceError(
                "pikerd's listener closed: it can no longer be reached or "
                'respawn daemons; exiting'
            )

    # --- spawning ----------------------------------------------------------

    async def ensure_daemon(self, spec: DaemonSpec) -> Addr:
        """Return the address of a live daemon `spec.name`, spawning it if needed.

        Serialised per name: a second concurrent caller waits and then finds
        the daemon the first one started.
        """
        if self.closing:
            raise ServiceError(f'pikerd is shutting down, not spawning {spec.name}')
        check_bind_host(spec.bind_host, spec.expose, f'daemon {spec.name!r}')
        if spec.name in self.remote:
            return await self._ensure_remote(spec.name)
        async with self._locks[spec.name]:
            d = self._daemons.get(spec.name)
            if d is not None and d.state == 'running' and d.proc.poll() is None:
                return d.addr  # type: ignore[return-value]
            if d is None or d.state != 'starting':
                if d is None or d.state == 'failed':
                    # not ours: maybe some other root spawned it
                    addr = self._live_entry(spec.name)
                    if addr is not None:
                        if not await listener_gone(tuple(addr)):
                            return tuple(addr)  # type: ignore[return-value]
                        await self.prune()
                d = _Daemon(spec)
                self._daemons[spec.name] = d
                # spawn in pikerd's own nursery: a caller that gives up
                # waiting (or dies) must not abort a spawn others wait for
                self.service_n.start_soon(self._spawn, d)
            await d.ready.wait()
        if d.error is not None:
            raise d.error
        return d.addr  # type: ignore[return-value]

    async def _spawn(self, d: _Daemon) -> None:
        spec = d.spec
        # children compare their parent pid with this (see _child_init)
        os.environ[_child_init.ENV_SPAWNER_PID] = str(os.getpid())
        modules = list(dict.fromkeys(list(spec.enable_modules) + DAEMON_MODULES))
        try:
            with trio.fail_after(self.spawn_timeout):
                portal = await self.an.start_actor(
                    spec.name,
                    enable_modules=modules,
                    loglevel=spec.loglevel,
                    bind_addr=(self.bind_host if is_loopback(spec.bind_host)
                               else spec.bind_host, 0),
                    infect_asyncio=spec.infect_asyncio,
                )
                d.portal = portal
                d.uid = portal.channel.uid
                _, d.proc, _ = self.an._children[d.uid]
                d.pid = d.proc.pid
                self.service_n.start_soon(self._supervise, d)
                status = await self._await_ready(d, portal)
                if spec.startup:
                    await _run_startup(spec, portal)
            if not status['armed']:
                log.warning(f'{spec.name}: parent-death signal not armed (non-Linux?)')
            addr = self._registered_addr(d, status)
            if addr is None:
                raise ServiceError(f'{spec.name} started but did not register')
            d.addr = (str(addr[0]), int(addr[1]))
            d.state = 'running'
            log.info(f'spawned {spec.name} pid={d.pid} at {d.addr[0]}:{d.addr[1]}')
        except trio.TooSlowError:
            d.error = ServiceError(
                f'daemon {spec.name!r} did not start within {self.spawn_timeout}s'
            )
        except Exception as err:
            d.error = err
        finally:
            if d.state != 'running':
                if d.error is None:
                    d.error = ServiceError(f'spawning {spec.name!r} was cancelled')
                d.state = 'failed'
                if d.proc is not None and d.proc.poll() is None:
                    d.state = 'cancelling'
                    d.proc.kill()
            d.ready.set()

    def _registered_addr(self, d: _Daemon, status: dict) -> Addr | None:
        return self._arbiter._registry.get(tuple(d.uid))

    async def _await_ready(self, d: _Daemon, portal: tractor.Portal) -> dict:
        """Wait for the child's first RPC reply, or fail if it dies first.

        The child answers only after loading its modules (so the start-up
        hook ran) and registering with the registry: the reply proves both.
        """
        status: dict = {}
        async with trio.open_nursery() as n:

            async def _ask() -> None:
                status.update(await portal.run(_child_init.status))
                n.cancel_scope.cancel()

            async def _died() -> None:
                await d.exited.wait()
                n.cancel_scope.cancel()

            n.start_soon(_ask)
            n.start_soon(_died)
        if not status:
            raise ServiceError(
                f'daemon {d.spec.name!r} died during start-up '
                f'(exit code {d.proc.returncode}); see its log output'
            )
        return status

    async def _supervise(self, d: _Daemon) -> None:
        """Wait for the daemon process to exit; respawn it if it crashed."""
        try:
            rc = await d.proc.wait()
        finally:
            d.exited.set()
        requested = d.state == 'cancelling' or self.closing
        # a start-up failure is reported to the caller, not respawned
        crashed = not requested and rc != 0 and d.state != 'starting'
        if d.state == 'starting':
            d.state = 'failed'
        self.exits.append((d.spec.name, rc, crashed))
        if d.uid is not None:
            self.drop_entry(d.uid)
        if self._daemons.get(d.spec.name) is d:
            if not crashed and d.state != 'failed':
                del self._daemons[d.spec.name]
            else:
                d.state = 'failed'
        if not crashed:
            log.info(f'{d.spec.name} (pid {d.pid}) exited (rc={rc})')
            return

        history = self._restarts[d.spec.name]
        now = time.monotonic()
        while history and now - history[0] > self.restart_window:
            history.popleft()
        if len(history) >= self.max_restarts:
            log.error(
                f'{d.spec.name} (pid {d.pid}) crashed (rc={rc}) '
                f'{len(history)} times in {self.restart_window:.0f}s: giving up'
            )
            return
        backoff = min(0.1 * 2 ** len(history), 2.0)
        history.append(now)
        log.error(
            f'{d.spec.name} (pid {d.pid}) crashed (rc={rc}): '
            f'respawning in {backoff:.1f}s'
        )
        await trio.sleep(backoff)
        if self.closing:
            return
        try:
            await self.ensure_daemon(d.spec)
        except Exception as err:
            log.error(f'respawning {d.spec.name} failed: {err!r}')

    # --- queries and control ------------------------------------------------

    def list_daemons(self) -> dict[str, DaemonInfo]:
        """Every registered actor except pikerd, plus daemons given up on."""
        by_uid = {d.uid: d for d in self._daemons.values() if d.uid}
        out: dict[str, DaemonInfo] = {}
        for uid, addr in self._arbiter._registry.items():
            if uid == self._arbiter.uid:
                continue
            d = by_uid.get(uid)
            out[uid[0]] = DaemonInfo(
                name=uid[0],
                addr=(str(addr[0]), int(addr[1])),
                pid=d.pid if d else None,
                state=d.state if d else 'running',
                restarts=len(self._restarts.get(uid[0], ())),
                managed=d is not None or uid[0] in self.remote,
                supervisor=('pikerd' if d else f'pikerd@{self.remote[uid[0]]}'
                            if uid[0] in self.remote else ''),
            )
        for name, d in self._daemons.items():
            if d.state == 'failed' and name not in out:
                out[name] = DaemonInfo(
                    name=name,
                    addr=d.addr or ('', 0),
                    pid=d.pid,
                    state='failed',
                    restarts=len(self._restarts.get(name, ())),
                )
        return out

    def daemon_pid(self, name: str) -> int | None:
        d = self._daemons.get(name)
        return d.pid if d else None

    async def cancel_daemon(self, name: str, timeout: float = 3.0) -> bool:
        """Cancel daemon `name` gracefully (kill after `timeout`); not a crash."""
        d = self._daemons.get(name)
        if d is not None and d.state == 'starting':
            # mid-spawn the child cannot be asked to cancel yet (tractor would
            # SIGKILL it 3 s later, TRACTOR.md rule 5): let the spawn end first
            with trio.move_on_after(self.spawn_timeout):
                await d.ready.wait()
        async with self._locks[name]:
            d = self._daemons.get(name)
            if d is None or d.proc is None:
                return False
            d.state = 'cancelling'
            if d.portal is not None and d.portal.channel.connected():
                with trio.move_on_after(timeout):
                    await d.portal.cancel_actor()
            with trio.move_on_after(timeout):
                await d.exited.wait()
            if d.proc.poll() is None:
                log.warning(f'{name} did not exit after cancel: killing it')
                d.proc.kill()
                await d.exited.wait()
            return True

    async def stop_all(self, timeout: float = 10.0) -> None:
        """Cancel every daemon, each before the daemons it consumes
        (`teardown_order`), so none sees its upstream vanish mid-stream
        (cancelling all at once makes emsd and paperboi log the loss of
        brokerd as errors). No respawns from here on; bounded by `timeout`."""
        self.closing = True
        with trio.CancelScope(shield=True), trio.move_on_after(timeout):
            for name in teardown_order(d.spec for d in self._daemons.values()):
                await self.cancel_daemon(name)

    def _set_global(self) -> None:
        global _services
        _services = self

    def _clear_global(self) -> None:
        global _services
        if _services is self:
            _services = None
