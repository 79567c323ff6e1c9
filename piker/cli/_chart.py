"""`piker chart FQME [FQME...]`: the Qt chart with order mode.

    piker chart btcusdt.sim ethusdt.sim
    QT_QPA_PLATFORM=offscreen piker chart btcusdt.sim --screenshot shot.png --after 3

Joins the running pikerd (or starts one in this process: closing the
window then stops the daemons too). Headless machines and CI run it with
`QT_QPA_PLATFORM=offscreen`; `--screenshot PATH --after SECONDS` renders
the window that long after the charts are drawn, saves a PNG and exits.
Qt is imported only when the command runs (TRACTOR.md rule 1: sub-actors
re-import the entry script).
"""
from __future__ import annotations

from pathlib import Path

import typer

from ._app import app


@app.command()
def chart(
    fqmes: list[str] = typer.Argument(
        ..., metavar='FQME...', help='markets to chart, e.g. btcusdt.sim',
    ),
    mode: str = typer.Option(
        'paper', '--mode', '-m', help="order venue: 'paper' (paper engine) or 'live' (broker)",
    ),
    timeframe: int = typer.Option(60, '--timeframe', '-t', help='bar period in seconds'),
    screenshot: Path = typer.Option(
        None, '--screenshot', metavar='PNG',
        help='save a screenshot after --after seconds, then exit',
    ),
    after: float = typer.Option(3.0, '--after', help='seconds to wait before --screenshot'),
    first_frame_t0: float = typer.Option(
        None, '--first-frame-t0', hidden=True,
        help='bench: print FIRST_FRAME <seconds since this epoch time> and exit',
    ),
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """Chart markets with live quotes and order mode (hold f/d/a, click to submit).

    Keys: hold f (buy), d (sell) or a (alert) to stage an order at the
    cursor, add ctrl for a live order (default dark), left-click submits;
    drag a line to modify; c cancels the orders under the cursor, c c all.
    Arrows/+/- navigate, Home goes back to the live bar.
    Headless: QT_QPA_PLATFORM=offscreen piker chart FQME --screenshot out.png
    """
    from ..accounting import unpack_fqme
    from ..brokers import get_brokermod

    if mode not in ('paper', 'live'):
        raise typer.BadParameter(f"must be 'paper' or 'live', got {mode!r}", param_hint='--mode')
    if timeframe <= 0:
        raise typer.BadParameter('must be > 0 seconds', param_hint='--timeframe')
    if after < 0:
        raise typer.BadParameter('must be >= 0 seconds', param_hint='--after')
    for fqme in fqmes:
        try:
            broker, *_ = unpack_fqme(fqme)
            mod = get_brokermod(broker)
        except Exception as err:  # noqa: BLE001 - ValueError / NoSuchBackend: say which
            typer.echo(f'error: {err}', err=True)
            raise typer.Exit(2) from None
        # a live backend that cannot trade now (e.g. no API keys) says why
        why = getattr(mod, 'live_unavailable', lambda: None)() if mode == 'live' else None
        if why:
            typer.echo(f'error: {why}; use --mode paper', err=True)
            raise typer.Exit(2)

    from ..brokers._errors import BrokerError
    from ..config import ConfigError
    from ..service import ServiceError
    from ..ui._app import quiet_qt_noise, run_chart

    quiet_qt_noise()
    try:
        run_chart(
            fqmes,
            mode=mode,
            timeframe=timeframe,
            loglevel=loglevel,
            screenshot=screenshot,
            after=after,
            first_frame_t0=first_frame_t0,
            exit_on_first_frame=first_frame_t0 is not None,
        )
    except (BrokerError, ConfigError, ServiceError, ValueError) as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None
