"""Finding and spawning daemons from any actor or client process.

Daemons always live under pikerd. A caller first looks the name up in the
registry; if it is missing the request goes to pikerd's `Services` (directly
when the caller *is* pikerd, else by RPC into pikerd), which spawns it under
a per-name lock, so concurrent callers in any process get one daemon.

The RPC endpoints (`_rpc_*`) run inside pikerd; this module is in pikerd's
`enable_modules`.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from contextlib import asynccontextmanager as acm
from typing import Any

import msgspec
import tractor
import trio
from tractor._ipc import _connect_chan
from tractor._portal import open_portal

from ..log import get_logger
from ._mngr import DaemonInfo, DaemonSpec, current_services
from ._registry import Addr, PikerdNotRunning, ServiceError, resolve_addr

log = get_logger('service')

PIKERD_NAME = 'pikerd'


def _require_runtime() -> Any:
    actor = tractor.current_actor(err_on_no_runtime=False)
    if actor is None:
        raise ServiceError(
            'no actor runtime in this process: wrap your code in '
            '`async with piker.service.maybe_open_pikerd():`'
        )
    return actor


def _registry_addr() -> Addr:
    actor = _require_runtime()
    arb = actor._arb_addr
    return (str(arb[0]), int(arb[1])) if arb else resolve_addr(None)


@acm
async def _portal_at(addr: Addr) -> AsyncIterator[tractor.Portal]:
    """Open a portal to the actor listening at `addr` (OSError if none)."""
    async with _connect_chan(str(addr[0]), int(addr[1])) as chan:
        async with open_portal(chan) as portal:
            yield portal


@acm
async def find_service(name: str) -> AsyncIterator[tractor.Portal | None]:
    """Yield a portal to the running actor `name`, or None if there is none.

    A registry entry whose address refuses connections (a SIGKILLed actor
    pikerd has not pruned yet) counts as none.
    """
    _require_runtime()
    try:
        async with tractor.query_actor(name) as addr:
            pass
    except OSError as err:
        reg = _registry_addr()
        raise PikerdNotRunning(
            f'the registry at {reg[0]}:{reg[1]} does not answer ({err}); '
            'is pikerd still running?'
        ) from err
    async with AsyncExitStack() as stack:
        portal = None
        if addr is not None:
            try:
                portal = await stack.enter_async_context(_portal_at(tuple(addr)))
            except OSError:
                log.info(f'{name}: registry entry {addr} is stale')
        yield portal


@acm
async def open_pikerd_portal() -> AsyncIterator[tractor.Portal]:
    """Yield a portal to pikerd (the registry); `PikerdNotRunning` if absent."""
    addr = _registry_addr()
    try:
        async with _portal_at(addr) as portal:
            if portal.channel.uid is None or portal.channel.uid[0] != PIKERD_NAME:
                raise PikerdNotRunning(
                    f'the registry at {addr[0]}:{addr[1]} is not a pikerd '
                    f'(it is {portal.channel.uid})'
                )
            yield portal
    except OSError as err:
        raise PikerdNotRunning(
            f'no pikerd answers at {addr[0]}:{addr[1]}: start one with '
            '`piker pikerd` or use maybe_open_pikerd()'
        ) from err


async def _ensure(spec: DaemonSpec) -> Addr:
    services = current_services()
    if services is not None:
        return await services.ensure_daemon(spec)
    async with open_pikerd_portal() as portal:
        addr = await portal.run(_rpc_ensure, spec=spec.to_dict())
    return str(addr[0]), int(addr[1])


@acm
async def maybe_spawn_daemon(
    service_name: str,
    *,
    enable_modules: list[str],
    loglevel: str | None = None,
    timeout: float = 20.0,
    bind_host: str = '127.0.0.1',
    expose: bool = False,
    infect_asyncio: bool = False,
    startup: str | None = None,
) -> AsyncIterator[tractor.Portal]:
    """Yield a portal to daemon `service_name`, spawning it under pikerd.

    Works from pikerd, from any actor in the tree, and from a client process
    that ran `maybe_open_pikerd()`. The daemon gets `enable_modules` plus
    piker's start-up hook and heartbeat. It binds `bind_host` (loopback;
    anything else needs `expose=True`). `startup` ('module:function', see
    `DaemonSpec.startup`) runs in it after this and every later respawn.
    Raises `ServiceError` when the daemon cannot be started within
    `timeout` seconds.
    """
    spec = DaemonSpec(
        name=service_name,
        enable_modules=list(enable_modules),
        loglevel=loglevel,
        bind_host=bind_host,
        expose=expose,
        infect_asyncio=infect_asyncio,
        startup=startup,
    )
    async with open_daemon(spec, timeout=timeout) as portal:
        yield portal


@acm
async def open_daemon(spec: DaemonSpec, *, timeout: float = 20.0) -> AsyncIterator[tractor.Portal]:
    """Yield a portal to the daemon of `spec` (see `DaemonKind.spec()`),
    spawning it under pikerd if no such daemon runs; see `maybe_spawn_daemon`."""
    service_name = spec.name
    async with find_service(service_name) as portal:
        if portal is not None:
            yield portal
            return

    deadline = trio.current_time() + timeout
    last_err: Exception | None = None
    async with AsyncExitStack() as stack:
        portal = None
        while portal is None:
            addr = None
            with trio.move_on_at(deadline):
                addr = await _ensure(spec)
            if addr is None or trio.current_time() > deadline:
                raise ServiceError(
                    f'daemon {service_name!r} did not come up within {timeout}s'
                    + (f': {last_err}' if last_err else '')
                )
            # connect outside the timeout scope: the portal's nursery must
            # not be opened inside a scope that closes before it does
            try:
                portal = await stack.enter_async_context(_portal_at(addr))
            except OSError as err:
                # died between spawn and connect: pikerd respawns it
                last_err = err
                await trio.sleep(0.05)
        yield portal


async def list_services() -> dict[str, DaemonInfo]:
    """Return every running daemon (name -> `DaemonInfo`, incl. `.addr`)."""
    services = current_services()
    if services is not None:
        await services.prune()
        return services.list_daemons()
    async with open_pikerd_portal() as portal:
        raw = await portal.run(_rpc_list)
    me = tractor.current_actor().name
    return {
        name: msgspec.convert(info, DaemonInfo)
        for name, info in raw.items() if name != me
    }


async def cancel_service(name: str) -> bool:
    """Cancel daemon `name` gracefully (not a crash: no respawn).

    Returns False if pikerd does not manage a daemon of that name.
    """
    services = current_services()
    if services is not None:
        return await services.cancel_daemon(name)
    async with open_pikerd_portal() as portal:
        return await portal.run(_rpc_cancel, name=name)


# --- RPC endpoints, run inside pikerd ---------------------------------------

def _local_services() -> Any:
    services = current_services()
    if services is None:
        raise ServiceError('this actor is not pikerd')
    return services


async def _rpc_ensure(spec: dict) -> list:
    """RPC: make sure daemon `spec['name']` runs; return its address."""
    addr = await _local_services().ensure_daemon(msgspec.convert(spec, DaemonSpec))
    return list(addr)


async def _rpc_list() -> dict[str, dict]:
    """RPC: pikerd's view of every registered daemon."""
    services = _local_services()
    await services.prune()
    return {
        name: info.to_builtins() for name, info in services.list_daemons().items()
    }


async def _rpc_cancel(name: str) -> bool:
    """RPC: cancel daemon `name` gracefully."""
    return await _local_services().cancel_daemon(name)


async def _rpc_join(host: str, names: list[str], entries: list) -> bool:
    """RPC: a joined supervisor on `host` serves `names` and runs `entries`
    (`[[name, uuid], [host, port]]`); called at join and every second after."""
    await _local_services().joined(
        host, list(names), [((e[0][0], e[0][1]), (e[1][0], int(e[1][1]))) for e in entries])
    return True
