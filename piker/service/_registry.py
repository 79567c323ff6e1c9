"""The registry address: resolving it, probing it, and exposure rules.

tractor 0.1.0a5 silently turns any root whose registry address has no
listener into a registry (TRACTOR.md rule 8), so piker never lets tractor
decide: it probes the address itself first. tractor has no authentication,
so everything binds loopback unless the caller explicitly exposes it, and
an exposed bind needs mutual TLS (`_tls`) or an explicit `--insecure`.
"""
from __future__ import annotations

import ipaddress
import socket

import trio

from ..config import get_registry_addr, parse_addr
from ..log import get_logger

log = get_logger('service')

Addr = tuple[str, int]


class ServiceError(RuntimeError):
    """A service-tree operation failed (clear message for the user)."""


class RegistryBusy(ServiceError):
    """Something already listens on the address pikerd must own."""


class PikerdNotRunning(ServiceError):
    """No pikerd answers at the registry address."""


def resolve_addr(addr: Addr | str | None) -> Addr:
    """Normalise a registry address; `None` -> `PIKER_REGISTRY_ADDR`/default."""
    if addr is None:
        return get_registry_addr()
    if isinstance(addr, str):
        return parse_addr(addr, what='registry address')
    host, port = addr
    return str(host), int(port)


def is_loopback(host: str) -> bool:
    """True for loopback names/addresses (the only default-safe binds)."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind_host(host: str, expose: bool, what: str) -> None:
    """Refuse a non-loopback bind unless explicitly exposed *and* secured.

    Exposed means mutual TLS (`_tls`: a certificate from `piker certs`),
    or an explicit, loudly logged `--insecure`.
    """
    if is_loopback(host):
        return
    if not expose:
        raise ServiceError(
            f'{what} would bind {host!r}, which is not loopback. Pass '
            '--host/expose=True to do this on purpose (with TLS set up: '
            '`piker certs`).'
        )
    from ._tls import check_bind
    check_bind(host, what)


async def probe(addr: Addr, timeout: float = 0.5) -> bool:
    """Return True if something accepts TCP connections at `addr`."""
    with trio.move_on_after(timeout):
        try:
            stream = await trio.open_tcp_stream(*addr)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False


async def handshake(addr: Addr, timeout: float = 2.0) -> tuple[str, str] | None:
    """Return the uid `(name, uuid)` of the tractor actor listening at `addr`.

    None when nothing listens. Raises `RegistryBusy` when something accepts
    connections but does not speak tractor's handshake: tractor itself would
    hang trying to register with it.
    """
    import uuid

    from tractor._ipc import Channel

    if not await probe(addr, timeout=timeout):
        return None
    from ._tls import TLSRefused

    chan = Channel(destaddr=addr)
    try:
        with trio.move_on_after(timeout):
            await chan.connect()
            await chan.send(('piker-probe', str(uuid.uuid4())))
            value = await chan.recv()
            return str(value[0]), str(value[1])
    except TLSRefused as err:
        raise ServiceError(f'cannot talk to {addr[0]}:{addr[1]}: {err}') from None
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError,
            trio.EndOfChannel, TypeError, IndexError, ValueError):
        pass
    finally:
        if chan.msgstream is not None:
            with trio.CancelScope(shield=True):
                await chan.aclose()
    raise RegistryBusy(
        f'something listens at {addr[0]}:{addr[1]} but it is not a tractor '
        'actor (no handshake): not a pikerd. Free the address or set '
        'PIKER_REGISTRY_ADDR to where pikerd runs.'
    )


async def listener_gone(addr: Addr, timeout: float = 2.0) -> bool:
    """Return True only if `addr` definitely has no listener any more.

    A refused (or otherwise failed) connect means gone. A connect that does
    not finish within `timeout` means *unknown*, not gone: on a loaded box a
    live actor can take longer than that to accept, and dropping its
    registry entry would make the next caller spawn a duplicate daemon.
    """
    with trio.move_on_after(timeout):
        try:
            stream = await trio.open_tcp_stream(*addr)
        except OSError:
            return True
        await stream.aclose()
    return False


def port_in_use(addr: Addr) -> bool:
    """Synchronously check whether `addr` can be bound (rule 8 assertion)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError:
            return True
    return False
