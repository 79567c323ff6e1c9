"""Mutual TLS on every non-loopback tractor connection (tractor 0.1.0a5).

tractor trusts whatever connects to an actor's port. On loopback that is
the user's own machine and stays exactly as it was (plain TCP, no set-up).
A connection whose peer address is *not* loopback is wrapped, on both
ends, in `trio.SSLStream` (TLS 1.3, stdlib `ssl`) before tractor sees it:

- accepting side (`Actor._stream_handler`): the TLS handshake, which
  requires a client certificate signed by piker's CA (`_pki`) and not on
  its revocation list, completes before the handler reads a byte; a peer
  that fails it is dropped with one log line and never reaches tractor's
  handshake or message loop (`_wire`);
- connecting side (`Channel.connect`): the server's certificate must be
  signed by the same CA, not be revoked, and name the address dialled in
  its subjectAltName.

The identity is `<config dir>/certs/{ca,cert,crl}.pem` + `cert.key` (a
bundle from `piker certs issue`). Contexts are rebuilt when one of those
files changes, so a `piker certs revoke` copied to a host (its `crl.pem`)
applies to the next handshake without a restart.

Binding a non-loopback address without that identity is refused
(`check_bind`), unless `PIKER_INSECURE=1` (`piker pikerd --insecure`,
inherited by children) says so on purpose; then non-loopback traffic is
plain TCP, and every bind says so at WARNING.

A root actor joining a remote registry would bind its own listener on the
*registry's* address (TRACTOR.md rule 11); `_serve_forever` binds it on
this host's address towards the registry instead (`PIKER_HOST`, else the
source address the kernel routes to the registry from).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import trio
from tractor import _actor
from tractor._ipc import Channel

from ..config import get_config_dir
from ..log import get_logger
from . import _wire  # noqa: F401  (installed first: its handler runs inside ours)
from ._registry import ServiceError, is_loopback

log = get_logger('service')

ENV_INSECURE = 'PIKER_INSECURE'
ENV_HOST = 'PIKER_HOST'
TLS_HANDSHAKE_TIMEOUT = 10.0
_FILES = ('ca.pem', 'cert.pem', 'cert.key', 'crl.pem')


class TLSRefused(ConnectionError):
    """A non-loopback connection could not be made secure (an OSError)."""


def certs_path() -> Path:
    return get_config_dir() / 'certs'


def insecure() -> bool:
    return os.environ.get(ENV_INSECURE, '') == '1'


def tls_configured(d: Path | None = None) -> bool:
    d = d or certs_path()
    return all((d / f).is_file() for f in _FILES[:3])


def setup_hint() -> str:
    return (
        'set up TLS: on the machine that keeps the CA run `piker certs init`, '
        'then `piker certs issue NAME --host <this host\'s IP or name>` and copy '
        f'the bundle it prints into {certs_path()}/ on this machine '
        '(`--install` when it is this machine); or pass --insecure '
        '(PIKER_INSECURE=1) to run unauthenticated plain TCP on purpose'
    )


_cache: dict[tuple, ssl.SSLContext] = {}


def _context(server: bool) -> ssl.SSLContext:
    d = certs_path()
    if not tls_configured(d):
        raise TLSRefused(f'no TLS identity in {d}: {setup_hint()}')
    stamp = tuple((d / f).stat().st_mtime_ns if (d / f).exists() else 0 for f in _FILES)
    key = (str(d), server, stamp)
    ctx = _cache.get(key)
    if ctx is None:
        purpose = ssl.Purpose.CLIENT_AUTH if server else ssl.Purpose.SERVER_AUTH
        ctx = ssl.create_default_context(purpose, cafile=str(d / 'ca.pem'))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(d / 'cert.pem', d / 'cert.key')
        ctx.verify_mode = ssl.CERT_REQUIRED
        if (d / 'crl.pem').exists():
            ctx.load_verify_locations(cafile=str(d / 'crl.pem'))
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        _cache.clear()
        _cache[key] = ctx
    return ctx


def _wrap(tcp: trio.SocketStream, ctx: ssl.SSLContext, **kw: Any) -> trio.SSLStream:
    # https_compatible: closing never waits on a dead peer's close_notify;
    # a truncated stream is still caught by the framing (`_wire`)
    tls = trio.SSLStream(tcp, ctx, https_compatible=True, **kw)
    tls.socket = tcp.socket  # type: ignore[attr-defined]  # tractor reads addresses from it
    return tls


def _reason(err: BaseException) -> str:
    cause = err.__cause__ or err.__context__
    return f'{type(cause).__name__}: {cause}' if cause else f'{type(err).__name__}: {err}'


# --- connecting side -----------------------------------------------------------

async def _connect(self: Channel, destaddr: tuple[Any, ...] | None = None, **kwargs: Any) -> Any:
    if self.connected():
        raise RuntimeError('channel is already connected?')
    destaddr = destaddr or self._destaddr
    assert isinstance(destaddr, tuple)
    host = str(destaddr[0])
    ctx = None
    if not is_loopback(host) and (tls_configured() or not insecure()):
        ctx = _context(server=False)  # no identity: refused before connecting
    tcp = await trio.open_tcp_stream(*destaddr, **kwargs)
    stream: Any = tcp
    if ctx is not None:
        stream = _wrap(tcp, ctx, server_hostname=host)
        try:
            with trio.fail_after(TLS_HANDSHAKE_TIMEOUT):
                await stream.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as err:
            await tcp.aclose()
            raise TLSRefused(f'TLS handshake with {host}:{destaddr[1]} failed '
                             f'({_reason(err)})') from None
    return self.set_msg_transport(stream)


# --- accepting side ------------------------------------------------------------

_inner_stream_handler = None


async def _stream_handler(self: _actor.Actor, stream: trio.SocketStream) -> None:
    try:
        peer = stream.socket.getpeername()[:2]
    except OSError:
        await stream.aclose()
        return
    wrapped: Any = stream
    if not is_loopback(peer[0]) and tls_configured():
        try:
            ctx = _context(server=True)
        except (OSError, ssl.SSLError, ValueError) as err:
            # e.g. a crl.pem caught half-copied: this peer waits for the
            # next attempt; the listener and other peers are untouched
            log.error(f'refused connection from {peer[0]}:{peer[1]}: cannot load '
                      f'the TLS identity in {certs_path()}: {err!r}')
            await stream.aclose()
            return
        wrapped = _wrap(stream, ctx, server_side=True)
        try:
            with trio.fail_after(TLS_HANDSHAKE_TIMEOUT):
                await wrapped.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as err:
            cause = err.__cause__ or err.__context__
            # no ClientHello at all: a port probe (pikerd's pruner), not a peer
            probe = isinstance(cause, ssl.SSLEOFError) or not isinstance(cause, ssl.SSLError)
            level = logging.DEBUG if probe else logging.WARNING
            log.log(level, f'refused connection from {peer[0]}:{peer[1]}: '
                           f'TLS handshake failed ({_reason(err)})')
            await stream.aclose()
            return
    assert _inner_stream_handler is not None
    await _inner_stream_handler(self, wrapped)


# --- listener ----------------------------------------------------------------

def route_host(dest: tuple[str, int]) -> str:
    """This host's address towards `dest` (`PIKER_HOST` wins)."""
    if os.environ.get(ENV_HOST):
        return os.environ[ENV_HOST]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((dest[0], dest[1] or 9))  # no packet is sent
        return s.getsockname()[0]


def check_bind(host: str, what: str) -> None:
    """Refuse a non-loopback bind without TLS (or an explicit insecure)."""
    if is_loopback(host):
        return
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified  # 0.0.0.0, ::
    except ValueError:
        unspecified = False
    if unspecified:
        raise ServiceError(
            f'{what} would bind {host!r}: it would register (and be dialled at) '
            f'{host}. Bind a routable address of this host instead.'
        )
    if tls_configured():
        log.info(f'{what} binds {host} (mutual TLS for non-loopback peers)')
    elif insecure():
        log.warning(
            f'{what} binds {host} INSECURELY (--insecure): no TLS, no '
            'authentication; anyone who can reach this address can place orders'
        )
    else:
        raise ServiceError(f'{what} would bind {host!r}, which is not loopback, '
                           f'without TLS: {setup_hint()}')


_orig_serve_forever = _actor.Actor._serve_forever


async def _serve_forever(self: _actor.Actor, handler_nursery: trio.Nursery, *,
                         accept_host: Any = None, accept_port: int = 0,
                         task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    arb = getattr(self, '_arb_addr', None)
    if (accept_host and arb and not self.is_arbiter
            and getattr(self, '_parent_chan', None) is None
            and accept_host == arb[0] and not is_loopback(accept_host)):
        accept_host = route_host(tuple(arb))  # rule 11
    if accept_host:
        check_bind(str(accept_host), f'actor {self.name!r}')
    await _orig_serve_forever(self, handler_nursery, accept_host=accept_host,
                              accept_port=accept_port, task_status=task_status)


# --- children ----------------------------------------------------------------

class _Lowlevel:
    """`trio.lowlevel` for `tractor._spawn`: children boot via `_child_boot`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(trio.lowlevel, name)

    @staticmethod
    async def open_process(cmd: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(cmd, list):
            i = cmd.index('tractor._child') if 'tractor._child' in cmd else -1
            if i >= 0:  # the spawner's pid for the child's orphan check
                cmd = [*cmd[:i], 'piker.service._child_boot', str(os.getpid()), *cmd[i + 1:]]
        return await trio.lowlevel.open_process(cmd, *args, **kw)


class _Trio:
    lowlevel = _Lowlevel()

    def __getattr__(self, name: str) -> Any:
        return getattr(trio, name)


def apply() -> None:
    """Install (idempotent); after `_wire`, whose handler runs inside ours."""
    global _inner_stream_handler
    if Channel.connect is _connect:
        return
    from tractor import _spawn
    _spawn.trio = _Trio()  # type: ignore[assignment]
    _inner_stream_handler = _actor.Actor._stream_handler
    _actor.Actor._stream_handler = _stream_handler  # type: ignore[method-assign]
    Channel.connect = _connect  # type: ignore[method-assign]
    _actor.Actor._serve_forever = _serve_forever  # type: ignore[method-assign]


apply()
