"""The root `piker` typer app; each `piker.cli._<topic>` module adds commands."""
from __future__ import annotations

import typer

app = typer.Typer(
    name='piker',
    help='piker: trading gear for hackers.',
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    loglevel: str = typer.Option(
        None, '--loglevel', '-l', envvar='PIKER_LOGLEVEL',
        help='log level: debug, info, warning, error',
    ),
) -> None:
    import os

    from ..log import get_console_log
    if loglevel:
        # every later set-up in this process (a client's root actor...)
        # and any daemon it starts keep it: they read the environment
        os.environ['PIKER_LOGLEVEL'] = loglevel
    get_console_log(loglevel)
