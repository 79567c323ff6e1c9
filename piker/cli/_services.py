"""`piker pikerd` (run the service tree) and `piker services` (list it)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from ._app import app

if TYPE_CHECKING:
    from ..service import DaemonSpec


def _registry(host: str | None, port: int | None) -> tuple[str, int]:
    from ..config import get_registry_addr
    reg_host, reg_port = get_registry_addr()
    return host or reg_host, port or reg_port


def _serve_spec(name: str, loglevel: str | None) -> DaemonSpec:
    """The spawn spec of a daemon a joined host serves (as emsd would ask)."""
    from ..brokers import BROKERD, brokerd_spec
    from ..clearing._daemons import PAPERBOI

    if broker := BROKERD.key_of(name):
        return brokerd_spec(broker, loglevel)
    if broker := PAPERBOI.key_of(name):
        return PAPERBOI.spec(broker, loglevel=loglevel)
    raise typer.BadParameter(f'cannot serve {name!r}: brokerd.<broker> or paperboi.<broker>',
                             param_hint='--serve')


@app.command()
def pikerd(
    host: str = typer.Option(
        None, '--host',
        help="this host's routable address: bind the registry (or a joined "
        'host\'s daemons) here; off loopback needs TLS (`piker certs`) or --insecure',
    ),
    port: int = typer.Option(None, '--port', help='registry port'),
    join: str = typer.Option(
        None, '--join', help="MAIN:PORT: join that pikerd as a supervisor of this host's daemons"),
    serve: str = typer.Option(
        None, '--serve', help='with --join: daemons to run here, e.g. brokerd.sim,paperboi.sim'),
    insecure: bool = typer.Option(
        False, '--insecure', help='allow plain TCP off loopback: NO authentication'),
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """Run pikerd, the root service actor, until Ctrl-C / SIGTERM.

    With --join, run a joined supervisor instead: it registers with the main
    pikerd and spawns, watches and respawns the daemons given by --serve.
    Defaults come from conf.toml [network].
    """
    import os
    from functools import partial

    import trio

    from ..config import ConfigError, load_conf, parse_addr
    from ..service import ServiceError, serve_pikerd
    from ..service._tls import ENV_INSECURE

    net = load_conf().network
    host = host or net.host
    join = join or net.join
    names = [n.strip() for n in (serve.split(',') if serve else net.serve) if n.strip()]
    if insecure or net.insecure:
        os.environ[ENV_INSECURE] = '1'  # children inherit it
        typer.echo('WARNING: --insecure: connections off loopback are plain TCP with NO '
                   'authentication: anyone who can reach them can place orders', err=True)
    if names and not join:
        raise typer.BadParameter('--serve needs --join MAIN:PORT', param_hint='--serve')

    if join:
        from ..service._join import serve_joined
        try:
            main_addr = parse_addr(join, what='--join')
        except ConfigError as err:
            raise typer.BadParameter(str(err), param_hint='--join') from None
        if not host:
            raise typer.BadParameter("--join needs --host (this host's routable address)",
                                     param_hint='--host')
        specs = [_serve_spec(n, loglevel) for n in names]

        async def run() -> None:
            async with trio.open_nursery() as n:
                await n.start(partial(serve_joined, main_addr, host, specs, loglevel))
                typer.echo(f'joined pikerd at {join} from {host}, serving '
                           f'{", ".join(names) or "nothing"} (Ctrl-C to stop)', err=True)
    else:
        addr = _registry(host, port)

        async def run() -> None:
            async with trio.open_nursery() as n:
                await n.start(partial(serve_pikerd, addr, loglevel, expose=host is not None))
                typer.echo(f'pikerd up, registry at {addr[0]}:{addr[1]} (Ctrl-C to stop)',
                           err=True)
    try:
        trio.run(run)
    except ServiceError as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None
    typer.echo('pikerd down', err=True)


@app.command()
def services(
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """List the daemons running under pikerd, with their addresses."""
    import trio
    from rich.console import Console
    from rich.table import Table

    from ..service import ServiceError, connect_pikerd, list_services

    addr = _registry(None, None)

    async def main() -> dict:
        async with connect_pikerd(addr, loglevel):
            return await list_services()

    try:
        daemons = trio.run(main)
    except ServiceError as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None

    if not daemons:
        typer.echo(f'pikerd @ {addr[0]}:{addr[1]}: no daemons running')
        return
    table = Table(title=f'pikerd @ {addr[0]}:{addr[1]}')
    for col in ('name', 'host', 'address', 'pid', 'state', 'restarts', 'supervised'):
        table.add_column(col)
    for name, info in sorted(daemons.items()):
        table.add_row(
            name,
            info.addr[0] or '-',
            f'{info.addr[0]}:{info.addr[1]}' if info.addr[0] else '-',
            str(info.pid or '-'),
            info.state,
            str(info.restarts),
            info.supervisor or 'no',
        )
    Console(width=120).print(table)
