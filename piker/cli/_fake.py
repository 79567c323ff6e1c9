"""`piker fake binance --port P`: run a fake venue in the foreground.

The fake (`piker.testing.fakes`) serves on loopback until Ctrl-C and
prints the `[binance]` brokers.toml lines, with its random test keys,
that point piker at it; script it from another process through its
control API (`/_fake/...`, see docs/fake_binance.md).
"""
from __future__ import annotations

import typer

from ._app import app

fake_app = typer.Typer(
    help='Run a fake venue (offline tests against a real protocol).',
    no_args_is_help=True,
)
app.add_typer(fake_app, name='fake')


@fake_app.command()
def binance(
    port: int = typer.Option(0, '--port', '-p', min=0, max=65535,
                             help='loopback port (0: any free one)'),
    seed: int = typer.Option(0, '--seed', help='market and history seed'),
    quote_rate: float = typer.Option(
        10.0, '--quote-rate', min=0, help='walk steps per second per market (0: push only)'),
    commission: str = typer.Option('0.001', '--commission', help='commission rate per fill'),
    commission_asset: str = typer.Option(
        'quote', '--commission-asset', help="'quote', 'received' or 'BNB'"),
) -> None:
    """Serve a fake Binance spot venue until Ctrl-C."""
    import signal

    import trio

    from ..testing.fakes.binance import open_fake_binance

    async def main() -> None:
        async with open_fake_binance(port=port, seed=seed, quote_rate=quote_rate,
                                     commission=commission,
                                     commission_asset=commission_asset) as fake:
            typer.echo(f'# fake Binance on {fake.rest_url} (seed {seed}); '
                       'brokers.toml:\n')
            typer.echo(fake.config_toml())
            typer.echo(f'# control API: {fake.rest_url}/_fake/... ; Ctrl-C to stop',
                       err=True)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                async for _ in sigs:
                    break

    try:
        trio.run(main)
    except (ValueError, OSError) as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None
