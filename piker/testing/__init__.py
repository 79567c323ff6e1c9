"""piker's pytest plugin (registered via the `pytest11` entry point).

Fixtures that give every test an isolated piker world: a private
`PIKER_CONFIG_DIR` and a free `PIKER_REGISTRY_ADDR`, so a test never
touches a user's files or daemons (`piker_env`), and paper-trading
simulations on top of it (`paper_sim`, or `run_sim()` directly): a fresh
service tree per run, EMS sessions in paper mode, control of the sim
market, and the paper venue's ledger and positions; `recorded_market`
installs a recorded span to replay as a market (`piker.brokers.replay`).

The simulation kit (`_sim`) is imported lazily: pytest loads this plugin
in every run, and most test runs never boot actors.
"""
from typing import Any

from ._plugin import SimRunner, free_port, paper_sim, piker_env, recorded_market

_LAZY = {'EMSSession', 'LeakedProcesses', 'PaperSim', 'run_sim'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _sim
        return getattr(_sim, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'EMSSession',
    'LeakedProcesses',
    'PaperSim',
    'SimRunner',
    'free_port',
    'paper_sim',
    'piker_env',
    'recorded_market',
    'run_sim',
]
