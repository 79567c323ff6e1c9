"""`piker certs` and the TLS policy, in process (no namespaces needed).

The namespace tests (test_multihost.py) prove it on the wire; these pin
the pieces: key permissions, the CA's refusals, the CRL, the handshake
rules (a CA-signed client passes, another CA's or a revoked one does not,
the server's address must be in its certificate), and the bind policy.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import trio
import trio.testing
from typer.testing import CliRunner

from piker.cli import app
from piker.service import ServiceError, _pki, _tls


def _cli(*argv: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(argv))
    return r.exit_code, r.output


@pytest.fixture
def ca(piker_env: tuple[Path, tuple]) -> Path:
    code, out = _cli('certs', 'init')
    assert code == 0, out
    return piker_env[0] / 'certs'


def test_init_issue_revoke_files_and_modes(ca: Path) -> None:
    assert (ca / 'ca.key').stat().st_mode & 0o777 == 0o600
    code, out = _cli('certs', 'init')
    assert code == 1 and 'already exists' in out
    code, out = _cli('certs', 'issue', 'hostb', '--host', '10.0.0.2', '--host', 'venue.lan')
    assert code == 0, out
    bundle = ca / 'bundles' / 'hostb'
    assert sorted(p.name for p in bundle.iterdir()) == ['ca.pem', 'cert.key', 'cert.pem',
                                                         'crl.pem']
    assert (bundle / 'cert.key').stat().st_mode & 0o777 == 0o600
    code, out = _cli('certs', 'issue', 'hostb')
    assert code == 1 and 'revoke' in out
    code, out = _cli('certs', 'issue', '../x')
    assert code == 1 and 'bad certificate name' in out
    code, out = _cli('certs', 'revoke', 'nobody')
    assert code == 1 and 'nobody' in out
    code, out = _cli('certs', 'revoke', 'hostb')
    assert code == 0, out
    assert len(_pki.revoked_serials(ca)) == 1
    code, out = _cli('certs', 'issue', 'hostb')  # a revoked name may be issued again
    assert code == 0, out


def _identity(ca: Path, name: str, hosts: list[str], where: Path) -> Path:
    bundle = _pki.issue(ca, name, hosts)
    shutil.copytree(bundle, where / 'certs')
    return where


async def _handshake(server_dir: Path, client_dir: Path, host: str,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = trio.testing.memory_stream_pair()
    monkeypatch.setenv('PIKER_CONFIG_DIR', str(server_dir))
    server = trio.SSLStream(a, _tls._context(server=True), server_side=True)
    monkeypatch.setenv('PIKER_CONFIG_DIR', str(client_dir))
    client = trio.SSLStream(b, _tls._context(server=False), server_hostname=host)
    async with trio.open_nursery() as n:
        n.start_soon(server.do_handshake)
        n.start_soon(client.do_handshake)


def _failure(srv: Path, cli: Path, host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The TLS error(s) behind a refused handshake, as text."""
    try:
        trio.run(_handshake, srv, cli, host, monkeypatch)
    except trio.BrokenResourceError as err:
        return repr(err.__cause__)
    except BaseExceptionGroup as group:
        return repr([e.__cause__ for e in group.exceptions])
    raise AssertionError('the handshake succeeded')


def test_handshake_rules(ca: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = _identity(ca, 'srv', ['10.0.0.1'], tmp_path / 'srv')
    cli = _identity(ca, 'cli', [], tmp_path / 'cli')
    trio.run(_handshake, srv, cli, '10.0.0.1', monkeypatch)

    # the server's certificate must name the address dialled
    assert "IP address mismatch" in _failure(srv, cli, '10.0.0.9', monkeypatch)

    # a client certificate from another CA
    other = tmp_path / 'other-ca'
    _pki.init_ca(other)
    evil = _identity(other, 'evil', [], tmp_path / 'evil')
    assert 'certificate verify failed' in _failure(srv, evil, '10.0.0.1', monkeypatch)

    # revoked: the server reads its new crl.pem at the next handshake
    _pki.revoke(ca, 'cli')
    shutil.copy(ca / 'crl.pem', srv / 'certs' / 'crl.pem')
    assert 'certificate revoked' in _failure(srv, cli, '10.0.0.1', monkeypatch)


def test_bind_policy(piker_env: tuple[Path, tuple], monkeypatch: pytest.MonkeyPatch,
                     caplog: pytest.LogCaptureFixture) -> None:
    _tls.check_bind('127.0.0.1', 'x')  # loopback: nothing to set up
    with pytest.raises(ServiceError, match='without TLS: set up TLS.*piker certs init'):
        _tls.check_bind('10.0.0.1', 'pikerd')
    for unspecified in ('0.0.0.0', '::'):
        with pytest.raises(ServiceError, match='routable'):
            _tls.check_bind(unspecified, 'pikerd')
    monkeypatch.setenv('PIKER_INSECURE', '1')
    with caplog.at_level(logging.WARNING):
        _tls.check_bind('10.0.0.1', 'pikerd')
    assert 'INSECURELY' in caplog.text
    monkeypatch.delenv('PIKER_INSECURE')
    ca = _pki.certs_dir()
    _pki.init_ca(ca)
    _pki.issue(ca, 'me', ['10.0.0.1'], install=True)
    _tls.check_bind('10.0.0.1', 'pikerd')  # TLS set up: allowed


def test_connect_off_loopback_without_tls_is_refused(piker_env: tuple[Path, tuple]) -> None:
    from tractor._ipc import Channel

    async def main() -> None:
        listener = (await trio.open_tcp_listeners(0, host='127.0.0.1'))[0]
        port = listener.socket.getsockname()[1]
        chan = Channel(destaddr=('127.0.0.1', port))
        await chan.connect()  # loopback: plain, no set-up
        assert not isinstance(chan.msgstream.stream, trio.SSLStream)
        await chan.aclose()
        await listener.aclose()
        # off loopback with no identity: refused before a packet is sent
        with pytest.raises(_tls.TLSRefused, match='piker certs init'):
            await Channel(destaddr=('10.255.255.1', 9)).connect()

    trio.run(main)


def test_broken_identity_costs_one_connection(ca: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A crl.pem caught half-written refuses that peer; the handler returns
    (an error escaping it would take the actor's listener down)."""
    _pki.issue(ca, 'me', ['10.0.0.1'], install=True)
    (ca / 'crl.pem').write_text('-----BEGIN X509 CRL-----\ngarbage\n')

    class _Sock:
        def getpeername(self) -> tuple[str, int]:
            return ('10.0.0.5', 40000)

    class _Stream:
        socket = _Sock()
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    stream = _Stream()
    with caplog.at_level(logging.ERROR):
        trio.run(_tls._stream_handler, None, stream)
    assert stream.closed and 'cannot load the TLS identity' in caplog.text
