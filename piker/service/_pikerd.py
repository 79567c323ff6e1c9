"""pikerd: the root service actor, and how any process gets a runtime.

- `open_pikerd()` starts the root actor *as the registry* and asserts that it
  owns the registry address (TRACTOR.md rule 8: tractor would otherwise
  silently join whatever listens there).
- `maybe_open_pikerd()` probes the registry address with a tractor
  handshake: a client root when a pikerd answers, else pikerd in-process.
  A client never becomes the registry by accident, and a non-tractor
  listener is an error rather than a hang.
- `serve_pikerd()` runs pikerd until SIGINT/SIGTERM (the CLI's foreground
  mode) and then tears the tree down gracefully (rule 5).

Sub-actors inherit the environment, so pikerd exports the resolved
`PIKER_CONFIG_DIR`, `PIKER_REGISTRY_ADDR` and `PYTHONWARNINGS` (rule 12)
before spawning anything; the previous values are restored on exit.
"""
from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, contextmanager
from contextlib import asynccontextmanager as acm
from typing import Any

import tractor
import trio

from ..config import ENV_CONFIG_DIR, ENV_REGISTRY_ADDR, get_config_dir
from ..log import get_console_log, get_logger
from ._daemon import PIKERD_NAME
from ._mngr import Services, current_services
from ._registry import (
    Addr,
    PikerdNotRunning,
    RegistryBusy,
    ServiceError,
    check_bind_host,
    handshake,
    port_in_use,
    resolve_addr,
)

log = get_logger('service')

PIKERD_MODULES: list[str] = ['piker.service._daemon', 'piker.service._heartbeat']
CLIENT_MODULES: list[str] = ['piker.service._heartbeat']

PYTHONWARNINGS = (
    'ignore:trio.MultiError is deprecated:FutureWarning,'
    'ignore:MultiError.filter() is deprecated:FutureWarning'
)


@contextmanager
def _exported_env(addr: Addr, loglevel: str | None) -> Iterator[None]:
    """Export the resolved config dir / registry so children see the same.

    The piker log level travels the same way: tractor itself is started at
    its default `error` level (rule 15), which children inherit.
    """
    wanted = {
        ENV_CONFIG_DIR: str(get_config_dir()),
        ENV_REGISTRY_ADDR: f'{addr[0]}:{addr[1]}',
    }
    if loglevel:
        wanted['PIKER_LOGLEVEL'] = loglevel
    if 'PYTHONWARNINGS' not in os.environ:
        wanted['PYTHONWARNINGS'] = PYTHONWARNINGS
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _busy_msg(addr: Addr) -> str:
    return (
        f'the registry address {addr[0]}:{addr[1]} is already in use '
        '(another pikerd? `piker services` lists it). pikerd must own the '
        'registry: stop the other process or set PIKER_REGISTRY_ADDR to a '
        'free address.'
    )


@acm
async def open_pikerd(
    registry_addr: Addr | str | None = None,
    loglevel: str | None = None,
    debug_mode: bool = False,
    *,
    expose: bool = False,
    enable_modules: list[str] | None = None,
    **services_kw: Any,
) -> AsyncIterator[Services]:
    """Run pikerd in this process: the registry plus the service manager.

    Binds the registry at `registry_addr` (default `PIKER_REGISTRY_ADDR` or
    127.0.0.1:6116). A non-loopback address needs `expose=True`. Raises
    `RegistryBusy` if anything already listens there. Yields the `Services`
    manager; on exit every daemon is cancelled gracefully. `services_kw`
    tune supervision (`max_restarts`, `restart_window`, `spawn_timeout`,
    `prune_interval`).
    """
    addr = resolve_addr(registry_addr)
    check_bind_host(addr[0], expose, 'pikerd')
    if tractor.current_actor(err_on_no_runtime=False) is not None:
        raise ServiceError(
            'this process already runs an actor runtime; use maybe_open_pikerd()'
        )
    if port_in_use(addr):
        raise RegistryBusy(_busy_msg(addr))

    with _exported_env(addr, loglevel):
        async with tractor.open_root_actor(
            arbiter_addr=addr,
            name=PIKERD_NAME,
            debug_mode=debug_mode,
            enable_modules=list(dict.fromkeys(PIKERD_MODULES + (enable_modules or []))),
        ) as actor:
            registry_owned = actor.is_arbiter
            if registry_owned:
                async with _run_services(addr, loglevel, services_kw) as services:
                    yield services
    if not registry_owned:
        # lost a race with another process binding the address
        raise RegistryBusy(_busy_msg(addr))


@acm
async def _run_services(
    addr: Addr,
    loglevel: str | None,
    services_kw: dict[str, Any],
) -> AsyncIterator[Services]:
    """The actor nursery and `Services` inside pikerd's root actor."""
    get_console_log(loglevel)  # tractor's logger back to `error`
    log.info(f'pikerd up, registry at {addr[0]}:{addr[1]}')

    async with tractor.open_nursery() as an:
        services: Services | None = None
        try:
            async with trio.open_nursery() as service_n:
                services = Services(
                    an, service_n, addr, loglevel=loglevel, **services_kw,
                )
                services._set_global()
                service_n.start_soon(services._prune_forever)
                service_n.start_soon(services._watch_own_listener)
                try:
                    yield services
                finally:
                    await services.stop_all()
                    service_n.cancel_scope.cancel()
        finally:
            # rule 5: cancel the children from *inside* the actor
            # nursery so they shut down gracefully, not SIGKILLed.
            if services is not None:
                services.closing = True
                services._clear_global()
            with trio.CancelScope(shield=True):
                await an.cancel()
    log.info('pikerd down')


@acm
async def _open_client(
    addr: Addr,
    loglevel: str | None,
    enable_modules: list[str] | None,
    debug_mode: bool,
) -> AsyncIterator[None]:
    with _exported_env(addr, loglevel):
        async with tractor.open_root_actor(
            arbiter_addr=addr,
            name=f'piker-client-{os.getpid()}',
            debug_mode=debug_mode,
            enable_modules=list(dict.fromkeys(CLIENT_MODULES + (enable_modules or []))),
        ) as actor:
            # raise only after leaving the runtime (no "root crashed" log)
            became_registry = actor.is_arbiter
            if not became_registry:
                get_console_log(loglevel)
                yield
    if became_registry:
        raise PikerdNotRunning(
            f'pikerd at {addr[0]}:{addr[1]} went away while this client '
            'was connecting; refusing to become the registry'
        )


@acm
async def connect_pikerd(
    registry_addr: Addr | str | None = None,
    loglevel: str | None = None,
) -> AsyncIterator[None]:
    """Open a client root actor on a running pikerd; never start one.

    Raises `PikerdNotRunning` when nothing answers at the registry address
    (CLI tools such as `piker services` use this).
    """
    if tractor.current_actor(err_on_no_runtime=False) is not None:
        yield
        return
    addr = resolve_addr(registry_addr)
    who = await handshake(addr)
    if who is None:
        raise PikerdNotRunning(
            f'no pikerd answers at {addr[0]}:{addr[1]}: start one with '
            '`piker pikerd` (or check PIKER_REGISTRY_ADDR)'
        )
    if who[0] != PIKERD_NAME:
        raise PikerdNotRunning(
            f'the registry at {addr[0]}:{addr[1]} is {who[0]!r}, not a pikerd'
        )
    async with _open_client(addr, loglevel, None, False):
        yield


@acm
async def maybe_open_pikerd(
    registry_addr: Addr | str | None = None,
    loglevel: str | None = None,
    **kw: Any,
) -> AsyncIterator[Services | None]:
    """Connect to the running pikerd, or start one in this process.

    - A tractor runtime already runs here: reuse it (yields this process's
      `Services` if it is pikerd, else None).
    - A pikerd answers at the registry address: open a client root actor
      named `piker-client-<pid>` connected to it (yields None).
    - Nothing answers: `open_pikerd(registry_addr, loglevel, **kw)` in
      process (yields its `Services`). If another process wins that race,
      connect to it as a client instead.
    """
    if tractor.current_actor(err_on_no_runtime=False) is not None:
        yield current_services()
        return

    addr = resolve_addr(registry_addr)
    enable_modules = kw.get('enable_modules')
    debug_mode = kw.get('debug_mode', False)
    async with AsyncExitStack() as stack:
        services: Services | None = None
        # a non-tractor listener raises RegistryBusy here (tractor would hang)
        who = await handshake(addr)
        if who is None:
            try:
                services = await stack.enter_async_context(
                    open_pikerd(addr, loglevel, **kw)
                )
            except RegistryBusy:
                log.info('another pikerd won the start-up race: connecting to it')
                with trio.move_on_after(5):
                    while who is None:
                        await trio.sleep(0.05)
                        who = await handshake(addr)
                if who is None:
                    raise
        if services is None:
            if who is not None and who[0] != PIKERD_NAME:
                log.warning(
                    f'the registry at {addr[0]}:{addr[1]} is {who[0]!r}, not a '
                    'pikerd: daemons cannot be spawned through it'
                )
            await stack.enter_async_context(
                _open_client(addr, loglevel, enable_modules, debug_mode)
            )
        yield services


async def serve_pikerd(
    registry_addr: Addr | str | None = None,
    loglevel: str | None = None,
    *,
    expose: bool = False,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run pikerd until SIGINT or SIGTERM, then shut the tree down cleanly.

    A second signal during the shutdown exits at once; the daemons then
    follow through their parent-death signal.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:

        async def _force_on_next_signal() -> None:
            async for sig in sigs:
                log.error(f'{signal.Signals(sig).name} again: exiting now')
                os._exit(1)

        async with trio.open_nursery() as n:
            async with open_pikerd(registry_addr, loglevel, expose=expose) as services:
                task_status.started(services)
                async for sig in sigs:
                    log.warning(
                        f'pikerd got {signal.Signals(sig).name}: shutting down '
                        '(again to force)'
                    )
                    break
                n.start_soon(_force_on_next_signal)
            n.cancel_scope.cancel()
