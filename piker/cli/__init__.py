"""The `piker` command line.

Each topic lives in its own module and registers its commands on the one
typer `app`; importing this package wires them all up.
"""
from __future__ import annotations

import os

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
    """Console-script entry point."""
    import warnings
    warnings.filterwarnings('ignore', category=FutureWarning, module='trio|tractor')
    warnings.filterwarnings('ignore', message='.*MultiError.*')
    app()


__all__ = ['app', 'main']
