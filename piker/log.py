"""Logging: one `piker.*` logger tree, coloured console output per actor.

Every line carries the actor name so interleaved output from the service
tree stays readable. tractor's own logger is kept at `error` unless asked
otherwise: its normal path logs spurious warnings (TRACTOR.md rule 15).

tractor also logs, traceback and all, errors that it then raises to
piker's code, which reports them in one line (`piker order`, `piker
chart`: "error: no sim market ..."): a remote task's error in its caller,
any error leaving the root actor or an actor nursery, and in a daemon an
RPC endpoint's refusal (a piker error it raised on purpose, shipped to the
caller). Below piker's `debug` level those echoes are dropped (a daemon's
refusal shrinks to one line); `-l debug` shows them whole.
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
        # no import: a process that never loaded tractor runs no actor, and
        # this floor stays free of it (the import contracts check that)
        tractor = sys.modules.get('tractor')
        try:
            record.actor = tractor.current_actor().name  # type: ignore[union-attr]
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


# tractor records (by message start) that only echo an error raised to
# piker's code: leaving the root actor, an actor nursery, a remote task
_ECHOES = ('Root actor crashed', 'Nursery for ', 'Remote context error for ')
# ... and in a daemon: an RPC task's error, shipped to its caller
_RPC_CRASH = 'Actor crashed:'
# the loggers they come from (a logger's filters see only its own records)
_TRACTOR_LOGGERS = ('tractor', 'tractor._supervise', 'tractor._streaming')


def _deliberate(exc: BaseException | None) -> bool:
    """A piker error class: raised on purpose to refuse a request (a bug
    shows up as a builtin error: its traceback always stays)."""
    return exc is not None and any(
        cls.__module__.split('.')[0] == 'piker' for cls in type(exc).__mro__
    )


class _TractorEchoes(logging.Filter):
    """Drop (or shorten) tractor's echoes of errors piker reports itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger('piker').isEnabledFor(logging.DEBUG):
            return True
        msg = str(record.msg)
        if msg.startswith(_ECHOES):
            return False
        if msg.startswith(_RPC_CRASH) and record.exc_info:
            exc = record.exc_info[1]
            if _deliberate(exc):
                record.msg = f'refused a request: {type(exc).__name__}: {exc}'
                record.args = ()
                record.exc_info = record.exc_text = None
                record.levelno, record.levelname = logging.WARNING, 'WARNING'
        return True


_ECHO_FILTER = _TractorEchoes()


def _filter_tractor_echoes() -> None:
    for name in _TRACTOR_LOGGERS:
        logger = logging.getLogger(name)
        if _ECHO_FILTER not in logger.filters:
            logger.addFilter(_ECHO_FILTER)


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
    _filter_tractor_echoes()
    return root
