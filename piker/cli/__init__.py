"""The `piker` command line.

Each topic lives in its own module and registers its commands on the one
typer `app`; importing this package wires them all up.
"""
from __future__ import annotations

import os

import typer

from . import (
    _accounting,  # noqa: F401
    _chart,  # noqa: F401
    _ems,  # noqa: F401
    _fake,  # noqa: F401
    _history,  # noqa: F401
    _market,  # noqa: F401
    _orders,  # noqa: F401
    _services,  # noqa: F401
)
from ._app import app

# silence tractor/trio deprecation spam in this process and every child
# (TRACTOR.md rule 12): children inherit the environment.
_WARNINGS = (
    'ignore:trio.MultiError is deprecated:FutureWarning,'
    'ignore:MultiError.filter() is deprecated:FutureWarning'
)
os.environ.setdefault('PYTHONWARNINGS', _WARNINGS)


def main() -> None:
    """Console-script entry point.

    A bad config dir (`PIKER_CONFIG_DIR` naming a file...) is met by
    whichever part of a command first needs it, often inside the actor
    runtime: every command reports it here, as one line (exit 1).
    """
    import warnings
    warnings.filterwarnings('ignore', category=FutureWarning, module='trio|tractor')
    warnings.filterwarnings('ignore', message='.*MultiError.*')
    from ..config import ConfigError
    try:
        app()
    except BaseException as err:
        found = _find(err, ConfigError)
        if found is None:
            raise
        typer.echo(f'error: {found}', err=True)
        raise SystemExit(1) from None


def _find(err: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`err`, or the first `kind` inside it if it is an exception group."""
    if isinstance(err, kind):
        return err
    if isinstance(err, BaseExceptionGroup):
        for sub in err.exceptions:
            if (found := _find(sub, kind)) is not None:
                return found
    return None


__all__ = ['app', 'main']
