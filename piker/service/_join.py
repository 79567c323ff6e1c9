"""A joining supervisor: `piker pikerd --join MAIN:PORT --host H --serve ...`.

The main host runs pikerd (registry, emsd). Any other host runs this: a
root actor registered with the main registry that spawns, watches and
respawns the daemons named for its host (`Services`, the same supervision
as pikerd's), each bound on `H`, the host's routable address (never
`0.0.0.0`, TRACTOR.md rule 11), so each registers where peers can dial it.
emsd then finds a remote `brokerd.<b>`/`paperboi.<b>` through the registry
as it finds a local one; pikerd never spawns those names itself while a
joined host serves them (`Services.remote`).

Every second the supervisor tells pikerd what it serves and runs
(`_rpc_join`): a restarted pikerd has an empty registry, and tractor's
daemons register only once, at start-up, so this is how they come back.
When this supervisor dies its daemons die with it (parent-death signal,
`_child_init`); pikerd's pruner then drops their entries and emsd reports
the venue unreachable.
"""
from __future__ import annotations

import os
import signal
from typing import Any

import tractor
import trio

from ..log import get_console_log, get_logger
from ._daemon import PIKERD_NAME, _rpc_join
from ._mngr import DaemonSpec, Services, _Daemon
from ._registry import Addr, PikerdNotRunning, ServiceError, handshake, is_loopback
from ._tls import ENV_HOST, check_bind

log = get_logger('service')

REJOIN_INTERVAL = 1.0


class JoinedServices(Services):
    """`Services` in a root that is not the registry: the registry is remote."""

    def _init_registry(self) -> None:
        pass

    def _forget(self, uid: tuple[str, str]) -> bool:
        self.service_n.start_soon(self._unregister_remote, uid)
        return True

    async def _unregister_remote(self, uid: tuple[str, str]) -> None:
        with trio.move_on_after(2):
            try:
                async with tractor.get_arbiter(*self.registry_addr) as reg:
                    await reg.run_from_ns('self', 'unregister_actor', uid=uid)
            except Exception as err:  # pikerd down: its pruner drops it later
                log.info(f'could not unregister {uid[0]} at the registry: {err!r}')

    def _live_entry(self, name: str) -> Addr | None:
        return None  # what this host serves it spawns itself

    async def prune(self) -> int:
        return 0  # pikerd prunes its registry

    def _registered_addr(self, d: _Daemon, status: dict) -> Addr | None:
        addr = status.get('addr')
        return (str(addr[0]), int(addr[1])) if addr else None

    def entries(self) -> list:
        me = self._arbiter
        out = [[list(me.uid), list(me.accept_addr)]]
        out += [[list(d.uid), list(d.addr)] for d in self._daemons.values()
                if d.state == 'running' and d.uid and d.addr]
        return out

    async def rejoin_forever(self, host: str, names: list[str]) -> None:
        """Keep pikerd told what runs here; log each loss and recovery once."""
        up = True
        while True:
            try:
                with trio.fail_after(5):
                    async with tractor.get_arbiter(*self.registry_addr) as reg:
                        await reg.run(_rpc_join, host=host, names=names,
                                      entries=self.entries())
                if not up:
                    log.warning(f'pikerd at {self.registry_addr[0]}:'
                                f'{self.registry_addr[1]} is back: re-registered')
                up = True
            except (OSError, trio.TooSlowError, tractor.RemoteActorError, trio.BrokenResourceError,
                    trio.ClosedResourceError) as err:
                if up:
                    log.error(f'pikerd at {self.registry_addr[0]}:{self.registry_addr[1]} '
                              f'unreachable ({type(err).__name__}): retrying')
                up = False
            await trio.sleep(REJOIN_INTERVAL)


async def serve_joined(
    main: Addr,
    host: str,
    specs: list[DaemonSpec],
    loglevel: str | None = None,
    *,
    task_status: Any = trio.TASK_STATUS_IGNORED,
    **services_kw: Any,
) -> None:
    """Join pikerd at `main` from this host (`host`) and serve `specs` until
    SIGINT/SIGTERM."""
    from ._pikerd import _exported_env

    if is_loopback(host) and not is_loopback(main[0]):
        raise ServiceError(f'--host {host} is loopback: pikerd at {main[0]} could not '
                           'reach this host\'s daemons; give its routable address')
    check_bind(host, 'the joined supervisor')
    who = await handshake(main)
    if who is None or who[0] != PIKERD_NAME:
        raise PikerdNotRunning(f'no pikerd answers at {main[0]}:{main[1]} (to join)')
    os.environ[ENV_HOST] = host  # our root's listener (rule 11)
    names = [s.name for s in specs]
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs, \
            _exported_env(main, loglevel):
        async with tractor.open_root_actor(
            arbiter_addr=main, name=f'{PIKERD_NAME}@{host}',
            enable_modules=['piker.service._heartbeat'],
        ) as actor:
            if actor.is_arbiter:  # pikerd vanished after the handshake
                raise PikerdNotRunning(f'pikerd at {main[0]}:{main[1]} went away')
            get_console_log(loglevel)
            async with tractor.open_nursery() as an:
                services: JoinedServices | None = None
                try:
                    async with trio.open_nursery() as n:
                        services = JoinedServices(an, n, main, loglevel=loglevel,
                                                  bind_host=host, **services_kw)
                        services._set_global()
                        n.start_soon(services._watch_own_listener)
                        n.start_soon(services._prune_forever)  # deaf daemons here
                        for spec in specs:
                            await services.ensure_daemon(spec)
                        n.start_soon(services.rejoin_forever, host, names)
                        log.info(f'joined pikerd at {main[0]}:{main[1]} from {host}, '
                                 f'serving {", ".join(names)}')
                        task_status.started(services)
                        async for sig in sigs:
                            log.warning(f'joined supervisor got {signal.Signals(sig).name}:'
                                        ' shutting down')
                            break
                        await services.stop_all()
                        n.cancel_scope.cancel()
                finally:
                    if services is not None:
                        services.closing = True
                        services._clear_global()
                    with trio.CancelScope(shield=True):
                        await an.cancel()
