"""The trading state switch survives emsd restarts.

A kill switch that silently turns itself off is worse than none: pikerd
respawns a crashed emsd, and a halted emsd must come back halted. So a
runtime switch (`piker ems halt|resume|reduce-only`) is written to
`ems_state.toml` in the config dir, with the `[ems.risk] state` of
`conf.toml` at the time. At start-up the *latest decision* wins:

- no state file: the config's `state`;
- a state file recorded under the same config `state`: the switch;
- the config's `state` was edited since the switch: the config.

An unreadable state file means the last switch is unknown: emsd starts
`halted` (failing closed) and says why.
"""
from __future__ import annotations

import time
import tomllib
from pathlib import Path

import msgspec
import tomli_w

from ..atomicfile import write_atomic
from ..config import RiskConf, get_config_dir
from ..log import get_logger
from ..types import Struct
from ._risk import RiskGate, TradingState

__all__ = [
    'STATE_FILE', 'SavedState', 'load_saved_state', 'open_risk_gate', 'save_state',
    'switch_state',
]

log = get_logger(__name__)

STATE_FILE = 'ems_state.toml'


class SavedState(Struct):
    """One runtime switch of the trading state."""

    state: TradingState
    conf_state: TradingState  # `[ems.risk] state` when it was switched
    since: float              # epoch seconds
    reason: str = ''


def _path(path: Path | None) -> Path:
    return path if path is not None else get_config_dir() / STATE_FILE


def save_state(saved: SavedState, path: Path | None = None) -> None:
    """Record a switch (atomically: a crash never leaves half a file)."""
    write_atomic(_path(path), tomli_w.dumps(saved.to_builtins()))


def load_saved_state(path: Path | None = None) -> SavedState | None:
    """The last recorded switch; None if there is none. `ValueError` if the
    file exists but cannot be read or understood."""
    path = _path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ValueError(f'cannot read {path}: {err}') from None
    try:
        return msgspec.convert(tomllib.loads(text), SavedState)
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as err:
        raise ValueError(f'invalid {path}: {err}') from None


def open_risk_gate(conf: RiskConf, path: Path | None = None, **kw: object) -> RiskGate:
    """The `RiskGate` emsd starts with: config limits, latest state decision."""
    conf_state = TradingState(conf.state)
    try:
        saved = load_saved_state(path)
    except ValueError as err:
        log.error('%s: starting halted (fail closed)', err)
        return RiskGate(conf, state=TradingState.HALTED,
                        reason=f'state file unreadable: {err}', **kw)  # type: ignore[arg-type]
    if saved is None:
        return RiskGate(conf, **kw)  # type: ignore[arg-type]
    if saved.conf_state != conf_state:
        log.info('conf.toml [ems.risk] state changed to %s since the last switch '
                 '(%s): the config wins', conf_state.value, saved.state.value)
        return RiskGate(conf, **kw)  # type: ignore[arg-type]
    if saved.state is not conf_state:
        log.warning('trading state %s (switched at runtime%s), not %s as configured',
                    saved.state.value, f': {saved.reason}' if saved.reason else '',
                    conf_state.value)
    return RiskGate(conf, state=saved.state, reason=saved.reason, since=saved.since,
                    **kw)  # type: ignore[arg-type]


def switch_state(
    gate: RiskGate,
    state: TradingState | str,
    reason: str = '',
    path: Path | None = None,
) -> TradingState:
    """Switch `gate` now and record it; returns the previous state.

    The gate switches first: the kill switch works even if the disk does
    not (the error is re-raised after, so the caller hears of it).
    """
    old = gate.set_state(state, reason)
    save_state(SavedState(
        state=gate.state, conf_state=TradingState(gate.conf.state),
        since=gate.since or time.time(), reason=reason,
    ), path)
    return old
