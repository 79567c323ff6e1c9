"""`piker pikerd` (run the service tree) and `piker services` (list it)."""
from __future__ import annotations

import typer

from ._app import app


def _registry(host: str | None, port: int | None) -> tuple[str, int]:
    from ..config import get_registry_addr
    reg_host, reg_port = get_registry_addr()
    return host or reg_host, port or reg_port


@app.command()
def pikerd(
    host: str = typer.Option(
        None, '--host',
        help='bind the registry here (default: PIKER_REGISTRY_ADDR host); '
        'a non-loopback host exposes the unauthenticated service tree',
    ),
    port: int = typer.Option(None, '--port', help='registry port'),
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """Run pikerd, the root service actor, until Ctrl-C / SIGTERM."""
    from functools import partial

    import trio

    from ..service import ServiceError, serve_pikerd

    addr = _registry(host, port)

    async def main() -> None:
        async with trio.open_nursery() as n:
            await n.start(partial(serve_pikerd, addr, loglevel, expose=host is not None))
            typer.echo(f'pikerd up, registry at {addr[0]}:{addr[1]} (Ctrl-C to stop)', err=True)
        typer.echo('pikerd down', err=True)

    try:
        trio.run(main)
    except ServiceError as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None


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
    for col in ('name', 'address', 'pid', 'state', 'restarts', 'supervised'):
        table.add_column(col)
    for name, info in sorted(daemons.items()):
        table.add_row(
            name,
            f'{info.addr[0]}:{info.addr[1]}' if info.addr[0] else '-',
            str(info.pid or '-'),
            info.state,
            str(info.restarts),
            'yes' if info.managed else 'no',
        )
    Console(width=120).print(table)
