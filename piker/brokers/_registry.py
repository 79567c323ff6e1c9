"""Which backends exist, and loading one by name.

A backend is any importable `piker.brokers.<name>` module or package
whose name does not start with `_`; it is loaded lazily so importing
`piker.brokers` never imports every broker SDK.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from ._errors import NoSuchBackend

# a backend module must define these (see the package docstring)
REQUIRED_ENDPOINTS: tuple[str, ...] = (
    'get_mkt_info', 'symbol_search', 'open_history', 'stream_quotes',
)


def available_backends() -> list[str]:
    """Names of every installed backend, sorted."""
    from . import __path__ as pkg_path
    return sorted(
        info.name for info in pkgutil.iter_modules(pkg_path)
        if not info.name.startswith('_')
    )


# backends already loaded and checked: emsd asks on every order, and a
# package scan costs ~50-150 us (failures are not kept: a backend
# installed later is found)
_loaded: dict[str, ModuleType] = {}


def get_brokermod(name: str) -> ModuleType:
    """Import and return backend `name`.

    Raises `NoSuchBackend` listing the available backends when there is
    no such backend, and when the module does not implement the contract.
    """
    key = str(name).strip().lower()
    mod = _loaded.get(key)
    if mod is not None:
        return mod
    backends = available_backends()
    if not key or key not in backends:
        raise NoSuchBackend(
            f'no broker backend {name!r}; available backends: '
            f'{", ".join(backends) or "(none)"}'
        )
    mod = importlib.import_module(f'piker.brokers.{key}')
    missing = [ep for ep in REQUIRED_ENDPOINTS if not callable(getattr(mod, ep, None))]
    if missing:
        raise NoSuchBackend(
            f'piker.brokers.{key} is not a complete backend: missing '
            f'{", ".join(missing)}'
        )
    _loaded[key] = mod
    return mod
