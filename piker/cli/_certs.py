"""`piker certs init|issue NAME|revoke NAME`: the private CA for multi-host.

See `piker.service._pki` for the layout and `piker.service._tls` for how
the certificates are used (mutual TLS on every non-loopback connection).
"""
from __future__ import annotations

import typer

from ._app import app

certs_app = typer.Typer(
    help='Certificates for running piker across machines (mutual TLS).',
    no_args_is_help=True,
)
app.add_typer(certs_app, name='certs')


def _run(fn, *args, **kw):  # type: ignore[no-untyped-def]
    from ..service._pki import CertError
    try:
        return fn(*args, **kw)
    except CertError as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None


@certs_app.command()
def init() -> None:
    """Create the CA (ca.pem, ca.key 0600) and an empty revocation list."""
    from ..service._pki import certs_dir, init_ca
    path = _run(init_ca, certs_dir())
    typer.echo(f'CA created: {path} (keep ca.key on this machine only)')


@certs_app.command()
def issue(
    name: str = typer.Argument(..., help='host or client name'),
    host: list[str] = typer.Option(
        [], '--host', help="an IP or DNS name peers dial this one at (repeatable)"),
    install: bool = typer.Option(
        False, '--install', help="make it this machine's own identity"),
) -> None:
    """Issue a certificate + key for a host or client, as a bundle to copy."""
    from ..service._pki import certs_dir
    from ..service._pki import issue as do_issue
    bundle = _run(do_issue, certs_dir(), name, host, install=install)
    typer.echo(f'issued {name!r} ({", ".join(host) or "no addresses: client only"})')
    typer.echo(f'bundle: {bundle}  (copy its files into <config dir>/certs/ on {name})')
    if install:
        typer.echo(f'installed as this machine\'s identity in {certs_dir()}')


@certs_app.command()
def revoke(name: str = typer.Argument(..., help='a name issued before')) -> None:
    """Revoke a certificate: its serial goes on crl.pem (copy it to every host)."""
    from ..service._pki import certs_dir
    from ..service._pki import revoke as do_revoke
    serial = _run(do_revoke, certs_dir(), name)
    typer.echo(f'revoked {name!r} (serial {serial:x}); copy {certs_dir()}/crl.pem '
               'to every host (read at the next handshake)')
