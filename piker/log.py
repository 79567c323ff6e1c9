"""Logging: one `piker.*` logger tree, coloured console output per actor.

Every line carries the actor name so interleaved output from the service
tree stays readable. tractor's own logger is kept at `error` unless asked
otherwise: its normal path logs spurious warnings (TRACTOR.md rule 15).
"""
from __future__ import annotations

import logging
import os
import sys

_FMT = '%(asctime)s %(levelname)-7s [%(actor)s] %(name)s: %(message)s'
_COLOURS = {
    'DEBUG': '\x1b[37m', 'INFO': '\x1b[36m', 'WARNING': '\x1b[33m',
    'ERROR': '\x1b[31m', 'CRITICAL': '\x1b[1;31m',
}
_RESET = '\x1b[0m'


class _ActorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            import tractor
            actor = tractor.current_actor()
            record.actor = actor.name
        except Exception:
            record.actor = f'pid{os.getpid()}'
        return True


class _ColourFormatter(logging.Formatter):
    def __init__(self, colour: bool) -> None:
        super().__init__(_FMT, datefmt='%H:%M:%S')
        self._colour = colour

    def format(self, record: logging.LogRecord) -> str:
        msg = super().format(record)
        if self._colour:
            return f'{_COLOURS.get(record.levelname, "")}{msg}{_RESET}'
        return msg


class _StderrHandler(logging.StreamHandler):
    """A console handler that writes to whatever `sys.stderr` is *now*.

    A plain `StreamHandler()` keeps the `sys.stderr` of the moment it was
    made: once whoever swapped it in (pytest's `capfd`, an embedding app)
    closes it, every later log line fails with "--- Logging error ---".
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def get_logger(name: str) -> logging.Logger:
    """Return the `piker.<name>` logger (`name` may already start with piker)."""
    if not name.startswith('piker'):
        name = f'piker.{name}'
    return logging.getLogger(name)


def get_console_log(level: str | None = None, tractor_level: str = 'error') -> logging.Logger:
    """Attach (once) a console handler to the piker logger at `level`."""
    root = logging.getLogger('piker')
    level = (level or os.environ.get('PIKER_LOGLEVEL') or 'warning').upper()
    root.setLevel(level)
    if not any(getattr(h, '_piker', False) for h in root.handlers):
        h = _StderrHandler()
        h._piker = True  # type: ignore[attr-defined]
        h.addFilter(_ActorFilter())
        h.setFormatter(_ColourFormatter(colour=h.stream.isatty()))
        root.addHandler(h)
        root.propagate = False
    logging.getLogger('tractor').setLevel(tractor_level.upper())
    return root
