"""The indicator API: what an indicator is and how one is registered.

An indicator is one plain function over the OHLC array (`piker.ohlc.
OHLC_DTYPE` rows) that writes its output rows from bar `start` on::

    @indicator(pane='subplot', outputs=('rsi',), state=('up', 'down'))
    def rsi(ohlc, out, start, length: int = 14) -> None:
        ...

- `out` is a float64 structured array as long as `ohlc`, one field per
  name of `outputs` (the plotted lines) and `state` (hidden per-bar
  values an incremental step needs, e.g. running sums). Rows before
  `start` hold the function's earlier results; rows from `start` on are
  to be written.
- `start == 0` is the full compute (vectorise it: it runs over the whole
  history, up to millions of bars); `start > 0` is the update step, run
  for the live bar (`start == len(ohlc) - 1`, again and again while the
  bar trades) and for appended bars.

Why this shape: an update may only read `ohlc[:i + 1]` and `out[:i]`, so
recomputing the live bar is idempotent (it changes many times a second)
and the full compute must equal the bar-by-bar updates, which the tests
check for every built-in. Keyword parameters with defaults are the
indicator's settings (`conf.toml` and the menu set them; their types are
checked against the defaults').

`pane` says where it is drawn: `'overlay'` on the price pane (an SMA),
`'subplot'` in its own pane under it, sharing the time axis (an RSI).
`levels` are horizontal guide lines of a subplot (RSI's 30 / 70).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

Pane = Literal['overlay', 'subplot']
IndicatorFn = Callable[..., None]


class IndicatorError(ValueError):
    """An unknown indicator, a bad parameter, or a broken user module."""


class Indicator:
    """A registered indicator: the function plus how to draw it."""

    def __init__(
        self,
        fn: IndicatorFn,
        *,
        name: str,
        pane: Pane,
        outputs: tuple[str, ...],
        state: tuple[str, ...] = (),
        levels: tuple[float, ...] = (),
        doc: str = '',
    ) -> None:
        if pane not in ('overlay', 'subplot'):
            raise IndicatorError(f'indicator {name!r}: pane must be overlay or subplot, got {pane!r}')
        if not outputs:
            raise IndicatorError(f'indicator {name!r} declares no outputs')
        names = (*outputs, *state)
        if len(set(names)) != len(names):
            raise IndicatorError(f'indicator {name!r}: outputs and state share a name: {names}')
        self.fn = fn
        self.name = name
        self.pane: Pane = pane
        self.outputs = tuple(outputs)
        self.state = tuple(state)
        self.levels = tuple(float(v) for v in levels)
        self.doc = doc or (inspect.getdoc(fn) or '').split('\n')[0]
        self.dtype = np.dtype([(n, 'f8') for n in names])
        self.defaults: dict[str, Any] = {
            p.name: p.default
            for p in list(inspect.signature(fn).parameters.values())[3:]
            if p.default is not inspect.Parameter.empty
        }

    def __repr__(self) -> str:
        return f'<Indicator {self.name} ({self.pane})>'

    def params(self, given: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults updated by `given`, type-checked (`IndicatorError`)."""
        out = dict(self.defaults)
        for key, value in (given or {}).items():
            if key not in self.defaults:
                known = ', '.join(self.defaults) or '(none)'
                raise IndicatorError(
                    f'indicator {self.name!r} has no parameter {key!r}; parameters: {known}')
            want = type(self.defaults[key])
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
                raise IndicatorError(
                    f'indicator {self.name!r} parameter {key!r}: expected '
                    f'{want.__name__}, got {value!r}')
            out[key] = value
        return out

    def empty(self, n: int) -> np.ndarray:
        out = np.empty(n, dtype=self.dtype)
        for f in self.dtype.names or ():
            out[f] = np.nan
        return out

    def compute(self, ohlc: np.ndarray, **params: Any) -> np.ndarray:
        """The full compute: every row of `ohlc`."""
        out = self.empty(len(ohlc))
        if len(ohlc):
            self.fn(ohlc, out, 0, **self.params(params))
        return out

    def update(self, ohlc: np.ndarray, out: np.ndarray, start: int, **params: Any) -> np.ndarray:
        """Rows `[start, len(ohlc))` recomputed from `out[:start]`.

        Returns `out` resized to `len(ohlc)` (a new array when it grew).
        """
        n = len(ohlc)
        start = max(0, min(start, len(out), n))
        if len(out) != n:
            grown = self.empty(n)
            grown[:start] = out[:start]
            out = grown
        if start < n:
            self.fn(ohlc, out, start, **self.params(params))
        return out


# name -> Indicator: the built-ins register on import of `_builtins`,
# user modules when loaded (`load_module`)
REGISTRY: dict[str, Indicator] = {}


def indicator(
    name: str | None = None,
    *,
    pane: Pane = 'subplot',
    outputs: tuple[str, ...] | None = None,
    state: tuple[str, ...] = (),
    levels: tuple[float, ...] = (),
) -> Callable[[IndicatorFn], Indicator]:
    """Register the decorated function as an indicator (see module doc).

    `name` defaults to the function's name and `outputs` to `(name,)`. A
    name already registered is replaced (a user may override a built-in).
    """
    def wrap(fn: IndicatorFn) -> Indicator:
        key = (name or fn.__name__).lower()
        ind = Indicator(
            fn, name=key, pane=pane, outputs=outputs or (key,), state=state, levels=levels,
        )
        REGISTRY[key] = ind
        return ind
    return wrap


def get_indicator(name: str) -> Indicator:
    """The registered indicator `name` (`IndicatorError` listing the known ones)."""
    from . import _builtins  # noqa: F401 - registers the built-ins

    ind = REGISTRY.get(str(name).strip().lower())
    if ind is None:
        raise IndicatorError(
            f'unknown indicator {name!r}; known: {", ".join(sorted(REGISTRY))}')
    return ind


def known() -> list[str]:
    """Names of every registered indicator, sorted."""
    from . import _builtins  # noqa: F401

    return sorted(REGISTRY)
