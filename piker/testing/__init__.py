"""piker's pytest plugin (registered via the `pytest11` entry point).

Fixtures that give every test an isolated piker world: a private
`PIKER_CONFIG_DIR` and a free `PIKER_REGISTRY_ADDR`, so a test never
touches a user's files or daemons (`piker_env`), and paper-trading
simulations on top of it (`paper_sim`, or `run_sim()` directly): a fresh
service tree per run, EMS sessions in paper mode, control of the sim
market, and the paper venue's ledger and positions.

Fake venues (`fakes`: `open_fake_binance`, `FakeBinanceThread`, the
`fake_binance` fixture) are real loopback servers speaking a venue's
protocol, for testing real backends offline (docs/fake_binance.md); the
`binance_sim` fixture (`run_binance_sim`) boots the whole tree against
the fake Binance, live mode included.

The simulation kit (`_sim`) and the fakes are imported lazily: pytest
loads this plugin in every run, and most test runs need neither.
"""
from typing import Any

from ._binance import BinanceSimRunner, binance_sim, run_binance_sim
from ._plugin import SimRunner, fake_binance, free_port, paper_sim, piker_env

_LAZY = {'EMSSession', 'LeakedProcesses', 'PaperSim', 'run_sim'}
_LAZY_FAKES = {'ControlClient', 'FakeBinance', 'FakeBinanceThread', 'open_fake_binance'}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import _sim
        return getattr(_sim, name)
    if name in _LAZY_FAKES:
        from .fakes import binance
        return getattr(binance, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


__all__ = [
    'BinanceSimRunner',
    'ControlClient',
    'EMSSession',
    'FakeBinance',
    'FakeBinanceThread',
    'LeakedProcesses',
    'PaperSim',
    'SimRunner',
    'binance_sim',
    'fake_binance',
    'free_port',
    'open_fake_binance',
    'paper_sim',
    'piker_env',
    'run_binance_sim',
    'run_sim',
]
