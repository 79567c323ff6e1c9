"""Where piker keeps its files and how it reads them.

- `get_config_dir()`: `$PIKER_CONFIG_DIR`, else the platform user config
  dir + `/piker`. Every actor honours it (it is passed to sub-actors through
  the environment), so tests never touch a user's files.
- `get_registry_addr()`: `$PIKER_REGISTRY_ADDR` (`host:port`), else
  `127.0.0.1:6116`.
- `load_brokers_conf()` / `load_conf()`: read and validate `brokers.toml` and
  `conf.toml` with pydantic models. A missing file is created with a
  commented default; a bad file raises `ConfigError` naming the file, the
  key and what was expected.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .atomicfile import write_atomic

DEFAULT_REGISTRY_HOST = '127.0.0.1'
DEFAULT_REGISTRY_PORT = 6116

ENV_CONFIG_DIR = 'PIKER_CONFIG_DIR'
ENV_REGISTRY_ADDR = 'PIKER_REGISTRY_ADDR'


class ConfigError(ValueError):
    """A config file (or config env var) is missing, unreadable or invalid."""


def get_config_dir() -> Path:
    """Return (and create) the piker config dir."""
    env = os.environ.get(ENV_CONFIG_DIR)
    path = Path(env).expanduser() if env else Path(platformdirs.user_config_dir('piker'))
    path.mkdir(parents=True, exist_ok=True)
    return path


def parse_addr(text: str, what: str = ENV_REGISTRY_ADDR) -> tuple[str, int]:
    """Parse `host:port` into a `(host, port)` tuple with a clear error."""
    host, sep, port = text.strip().rpartition(':')
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f'{what}={text!r} is not a valid address: expected host:port, '
            f'e.g. 127.0.0.1:{DEFAULT_REGISTRY_PORT}'
        )
    return host.strip('[]'), int(port)


def get_registry_addr() -> tuple[str, int]:
    """Return the tractor registry address from the env or the default."""
    env = os.environ.get(ENV_REGISTRY_ADDR)
    if env:
        return parse_addr(env)
    return DEFAULT_REGISTRY_HOST, DEFAULT_REGISTRY_PORT


# --- config models --------------------------------------------------------

class _Model(BaseModel):
    model_config = ConfigDict(extra='forbid', validate_assignment=True)


class PaperConf(_Model):
    """Paper engine behaviour for one broker (`[<broker>.paper]`)."""

    fee_rate: float = Field(0.0, ge=0, description='fraction of notional per fill')
    fee_per_unit: float = Field(0.0, ge=0, description='flat fee per unit filled')
    fee_min: float = Field(0.0, ge=0, description='minimum fee per fill')
    latency_ms: float = Field(0.0, ge=0, description='delay before acks and fills')


class BackendConf(_Model):
    """Settings common to every backend (`[<broker>]`)."""

    model_config = ConfigDict(extra='allow', validate_assignment=True)
    accounts: list[str] = Field(default_factory=lambda: ['paper'])
    paper: PaperConf = Field(default_factory=PaperConf)


class SimConf(BackendConf):
    """The built-in `sim` market (`[sim]`)."""

    seed: int = 0
    quote_rate: float = Field(
        20.0, ge=0, description='quotes per second per market; 0 = unthrottled',
    )


class BrokersConf(_Model):
    """`brokers.toml`: one table per backend."""

    model_config = ConfigDict(extra='allow', validate_assignment=True)
    sim: SimConf = Field(default_factory=SimConf)

    def backend(self, name: str) -> BackendConf:
        """Return the validated settings of backend `name` (defaults if absent)."""
        if name == 'sim':
            return self.sim
        raw = (self.model_extra or {}).get(name, {})
        if isinstance(raw, BackendConf):
            return raw
        try:
            return BackendConf.model_validate(raw)
        except ValidationError as err:
            raise ConfigError(_explain(err, 'brokers.toml', prefix=name)) from None


class UIConf(_Model):
    theme: Literal['dark', 'light'] = 'dark'
    default_size_unit: Literal['units', 'currency'] = 'currency'
    default_limit: float = Field(5000.0, gt=0)
    default_slots: int = Field(4, ge=1)


class EMSConf(_Model):
    dark_pad_ticks: int = Field(5, ge=0, description='price ticks added to a triggered dark order')


class Conf(_Model):
    """`conf.toml`: UI and EMS settings."""

    ui: UIConf = Field(default_factory=UIConf)
    ems: EMSConf = Field(default_factory=EMSConf)


_DEFAULTS: dict[str, str] = {
    'brokers.toml': '''\
# piker backend settings: one table per broker backend.
#
# [sim]                # the built-in simulated market
# seed = 0             # random-walk seed (same seed -> same prices)
# quote_rate = 20.0    # quotes per second per market, 0 = as fast as possible
# accounts = ["paper"]
#
# [sim.paper]          # paper engine for this broker
# fee_rate = 0.0       # fraction of notional charged per fill
# fee_per_unit = 0.0
# fee_min = 0.0
# latency_ms = 0.0     # delay before acks and fills
''',
    'conf.toml': '''\
# piker settings.
#
# [ui]
# theme = "dark"
# default_size_unit = "currency"   # or "units"
# default_limit = 5000.0
# default_slots = 4
#
# [ems]
# dark_pad_ticks = 5   # price ticks a triggered dark order is padded by
''',
}


def _explain(err: ValidationError, fname: str, prefix: str = '') -> str:
    parts = []
    for e in err.errors():
        key = '.'.join(str(p) for p in ((prefix,) if prefix else ()) + tuple(e['loc']))
        got = e.get('input')
        if e['type'] == 'extra_forbidden':
            parts.append(f'unknown key {key!r}')
        elif e['type'] == 'missing':
            parts.append(f'missing key {key!r}')
        else:
            parts.append(f'key {key!r}: {e["msg"]} (got {got!r})')
    return f'invalid {fname}: ' + '; '.join(parts)


def _load(fname: str, model: type[BaseModel], path: Path | None = None) -> Any:
    path = path or get_config_dir() / fname
    if not path.exists():
        write_atomic(path, _DEFAULTS[fname])
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f'invalid {path}: not valid TOML: {err}') from None
    except OSError as err:
        raise ConfigError(f'cannot read {path}: {err}') from None
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_explain(err, str(path))) from None


def load_brokers_conf(path: Path | None = None) -> BrokersConf:
    """Load and validate `brokers.toml` (creating a commented default)."""
    return _load('brokers.toml', BrokersConf, path)


def load_conf(path: Path | None = None) -> Conf:
    """Load and validate `conf.toml` (creating a commented default)."""
    return _load('conf.toml', Conf, path)
