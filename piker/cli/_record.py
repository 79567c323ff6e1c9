"""`piker record FQME...`: record every quote and trade of markets now.

Keeps a feed of the markets open (so brokerd streams them) and has
brokerd record them into the tick store (`piker.storage`) until Ctrl-C
or `--for SECONDS`; markets it started recording stop with it (those in
`[storage] record` go on whenever they stream). Prints the recorder's
status (quotes written, dropped, errors) every second.
"""
from __future__ import annotations

import typer

from ._app import app


@app.command()
def record(
    fqmes: list[str] = typer.Argument(..., metavar='FQME...', help='markets to record'),
    seconds: float = typer.Option(None, '--for', help='stop after this many seconds'),
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """Record every L1 quote and trade of FQME... into the local store."""
    import trio

    from ..accounting import unpack_fqme
    from ..brokers import _brokerd
    from ..brokers._errors import BrokerError
    from ..data import open_feed
    from ..storage._record import read_status

    fqmes = [f.strip().lower() for f in fqmes]

    async def main() -> None:
        async with open_feed(fqmes, loglevel=loglevel) as feed:
            by_broker: dict[str, list[str]] = {}
            for f in fqmes:
                by_broker.setdefault(unpack_fqme(f)[0], []).append(f)
            added: dict[str, list[str]] = {}
            try:
                for broker, group in by_broker.items():
                    reply = await _brokerd.call(feed._portals[broker], _brokerd.record,
                                                broker=broker, fqmes=group, on=True)
                    added[broker] = reply['changed']
                typer.echo(f'recording {", ".join(fqmes)} (Ctrl-C to stop)')
                with trio.move_on_after(seconds if seconds is not None else float('inf')):
                    async for _ in _ticker(1.0):
                        status = read_status()
                        typer.echo('  '.join(
                            f'{f}: {_fmt(status.get(f))}' for f in fqmes))
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    for broker, group in added.items():
                        if group:
                            await _brokerd.call(feed._portals[broker], _brokerd.record,
                                                broker=broker, fqmes=group, on=False)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass
    except (BrokerError, ValueError) as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None


async def _ticker(period: float):
    import trio
    while True:
        await trio.sleep(period)
        yield


def _fmt(entry: dict | None) -> str:
    if not entry:
        return 'starting'
    line = f'{entry.get("state")} {entry.get("written", 0):,} written'
    if entry.get('dropped'):
        line += f', {entry["dropped"]:,} dropped'
    if entry.get('error'):
        line += f' ({entry["error"]})'
    return line
