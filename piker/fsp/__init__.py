"""Indicators ("financial signal processing"), each chart's in its own actor.

- `indicator` (decorator), `Indicator`, `get_indicator`, `known`: the API
  an indicator is written against (`_api`); the built-ins (`_builtins`):
  `sma`, `ema`, `vwap` (overlays), `rsi`, `dollar_volume` (subplots).
- `Selected`, `select`, `resolve`, `load_module`: which indicators a chart
  runs, from `conf.toml` `[indicators]` and user modules (`_select`).
- `Engine`: bars in, outputs out, the pure core of the actor (`_engine`).
- `open_indicators()`: a chart's session with its indicator actor
  (`_client`); `Delta` is what flows both ways (`_delta`).

Qt-free and importable without an actor runtime: the chart (`piker.ui`)
sits on top. docs/indicators.md shows how to write your own.
"""
from ._api import REGISTRY, Indicator, IndicatorError, get_indicator, indicator, known
from ._delta import Delta, Growing, merge
from ._select import Selected, load_module, resolve, select

__all__ = [
    'REGISTRY',
    'Delta',
    'Engine',
    'Growing',
    'Indicator',
    'IndicatorError',
    'IndicatorSession',
    'Selected',
    'get_indicator',
    'indicator',
    'known',
    'load_module',
    'merge',
    'open_indicators',
    'resolve',
    'select',
]


def __getattr__(name: str):  # lazy: the actor machinery imports tractor
    if name == 'Engine':
        from ._engine import Engine
        return Engine
    if name in ('open_indicators', 'IndicatorSession'):
        from . import _client
        return getattr(_client, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
