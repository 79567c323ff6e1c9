"""Which indicators a chart runs: `conf.toml`'s `[indicators]`, user modules.

`Selected` is one indicator with its parameters, as a chart asks for it
and as the indicator actor receives it (a plain Struct: it crosses the
wire). `resolve()` turns the config's choice into `Selected`s, checking
every name and parameter up front so a typo is a start-up error naming
the key (`indicators.default[1]: unknown indicator 'smaa'; known: ...`),
not a silently empty pane.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ..config import ConfigError, IndicatorChoice, IndicatorsConf
from ..types import Struct
from ._api import Indicator, IndicatorError, get_indicator

_loaded: dict[str, Any] = {}


class Selected(Struct, frozen=True):
    name: str
    params: dict[str, Any] = {}

    @property
    def key(self) -> str:
        """Unique per chart and the label drawn: `sma`, `sma(50)`, `rsi(7)`."""
        if not self.params:
            return self.name
        return f'{self.name}({",".join(str(v) for v in self.params.values())})'

    @property
    def indicator(self) -> Indicator:
        return get_indicator(self.name)


def load_module(ref: str) -> Any:
    """Import a user indicator module once: a `.py` file path (`~` allowed)
    or a dotted module name. Its `@indicator` functions register on import."""
    if ref in _loaded:
        return _loaded[ref]
    try:
        if ref.endswith('.py') or '/' in ref:
            path = Path(ref).expanduser()
            if not path.is_file():
                raise IndicatorError(f'indicator module {ref!r}: no such file {path}')
            name = f'piker_user_indicators_{len(_loaded)}_{path.stem}'
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(ref)
    except IndicatorError:
        raise
    except Exception as err:  # noqa: BLE001 - a user's module: say which and why
        raise IndicatorError(
            f'indicator module {ref!r} failed to load: {type(err).__name__}: {err}') from err
    _loaded[ref] = mod
    return mod


def select(name: str, **params: Any) -> Selected:
    """A checked `Selected` (`IndicatorError` for an unknown name or parameter)."""
    ind = get_indicator(name)
    ind.params(params)
    return Selected(ind.name, dict(params))


def resolve(conf: IndicatorsConf, fqme: str) -> list[Selected]:
    """What `fqme`'s chart runs, every name and parameter checked;
    `ConfigError` naming the conf.toml key of the first bad one."""
    for i, ref in enumerate(conf.modules):
        try:
            load_module(ref)
        except IndicatorError as err:
            raise ConfigError(f'invalid conf.toml: key indicators.modules[{i}]: {err}') from None
    where, choices = conf.for_fqme(fqme)
    out: list[Selected] = []
    for i, choice in enumerate(choices):
        try:
            sel = _checked(choice)
        except IndicatorError as err:
            raise ConfigError(f'invalid conf.toml: key {where}[{i}]: {err}') from None
        if sel not in out:
            out.append(sel)
    return out


def _checked(choice: IndicatorChoice) -> Selected:
    return select(choice.name, **choice.params)
