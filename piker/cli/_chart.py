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
    timeframe: int = typer.Option(
        None, '--timeframe', '-t', help='bar period in seconds (default 60; 1 with --linked)'),
    linked: bool = typer.Option(
        False, '--linked', help='1 s charts, each with its 1 m view showing where it is'),
    screenshot: Path = typer.Option(
        None, '--screenshot', metavar='PNG',
        help='save a screenshot after --after seconds, then exit',
    ),
    after: float = typer.Option(3.0, '--after', help='seconds to wait before --screenshot'),
    first_frame_t0: float = typer.Option(
        None, '--first-frame-t0', hidden=True,
        help='bench: print FIRST_FRAME <seconds since this epoch time> and exit',
    ),
    replay: str = typer.Option(
        None, '--replay', metavar='START/END',
        help='replay what was recorded of FQME... over this span (UTC ISO, '
             'e.g. 2026-11-30T14:00/16:00)',
    ),
    speed: float = typer.Option(1.0, '--speed', help='--replay speed: 1 real time, N x, 0 unpaced'),
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """Chart markets with live quotes and order mode (hold f/d/a, click to submit).

    Keys: hold f (buy), d (sell) or a (alert) to stage an order at the
    cursor, add ctrl for a live order (default dark), left-click submits;
    drag a line to modify; c cancels the orders under the cursor, c c all.
    Arrows/+/- navigate, Home goes back to the live bar, p hides the order pane.
    ctrl+l searches markets (opens a tab), ctrl+Tab / ctrl+shift+Tab switch tabs,
    i picks indicators (conf.toml [indicators] sets each chart's; docs/indicators.md).
    Headless: QT_QPA_PLATFORM=offscreen piker chart FQME --screenshot out.png
    """
    from ..accounting import unpack_fqme
    from ..brokers import get_brokermod

    if mode not in ('paper', 'live'):
        raise typer.BadParameter(f"must be 'paper' or 'live', got {mode!r}", param_hint='--mode')
    if timeframe is None:
        timeframe = 1 if linked else 60
    if timeframe <= 0:
        raise typer.BadParameter('must be > 0 seconds', param_hint='--timeframe')
    if after < 0:
        raise typer.BadParameter('must be >= 0 seconds', param_hint='--after')
    if replay is not None:
        fqmes = _replay_setup(fqmes, replay, speed)
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

    from ..ui._platform import check_platform

    hint = check_platform()
    if hint is not None:
        # before any QApplication: Qt would print its plugin list and abort
        typer.echo(hint, err=True)
        raise typer.Exit(3)

    from ..brokers._errors import BrokerError
    from ..config import ConfigError
    from ..service import ServiceError
    from ..ui._boot import quiet_qt_noise, run_chart_booted

    quiet_qt_noise()
    try:
        run_chart_booted(
            fqmes,
            mode=mode,
            timeframe=timeframe,
            loglevel=loglevel,
            screenshot=screenshot,
            after=after,
            first_frame_t0=first_frame_t0,
            exit_on_first_frame=first_frame_t0 is not None,
            linked=linked,
        )
    except (BrokerError, ConfigError, ServiceError, ValueError) as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None


def _replay_setup(fqmes: list[str], span: str, speed: float) -> list[str]:
    """`--replay`: the replay fqmes, with the span and speed exported for the
    brokerd.replay this chart starts; exit 2 on a bad span or a running pikerd
    (its brokerd.replay would not see them)."""
    import os
    from datetime import datetime

    from ..brokers.replay import ENV_SPAN, ENV_SPEED
    from ..config import get_registry_addr
    from ..service._registry import port_in_use

    start, sep, end = span.partition('/')
    try:
        t0 = datetime.fromisoformat(start)
        t1 = datetime.fromisoformat(end) if 'T' in end or '-' in end else (
            datetime.fromisoformat(f'{t0.date().isoformat()}T{end}'))
    except ValueError:
        typer.echo(f'error: --replay {span!r}: give START/END as ISO times, e.g. '
                   '2026-11-30T14:00/16:00 (UTC)', err=True)
        raise typer.Exit(2) from None
    if not sep or t1 <= t0:
        typer.echo(f'error: --replay {span!r}: END must come after START', err=True)
        raise typer.Exit(2)
    if speed < 0:
        typer.echo('error: --speed must be >= 0', err=True)
        raise typer.Exit(2)
    if port_in_use(get_registry_addr()):
        typer.echo('error: --replay needs its own service tree, but pikerd is running: '
                   'stop it, or set [replay] start/end/speed in brokers.toml and chart '
                   'FQME.replay', err=True)
        raise typer.Exit(2)
    os.environ[ENV_SPAN] = f'{t0.isoformat()}/{t1.isoformat()}'
    os.environ[ENV_SPEED] = repr(float(speed))
    return [f if f.lower().endswith('.replay') else f'{f}.replay' for f in fqmes]
