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
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .atomicfile import write_atomic
from .fqme import unpack_fqme

DEFAULT_REGISTRY_HOST = '127.0.0.1'
DEFAULT_REGISTRY_PORT = 6116

ENV_CONFIG_DIR = 'PIKER_CONFIG_DIR'
ENV_REGISTRY_ADDR = 'PIKER_REGISTRY_ADDR'


class ConfigError(ValueError):
    """A config file (or config env var) is missing, unreadable or invalid."""


def get_config_dir() -> Path:
    """Return (and create) the piker config dir.

    Raises `ConfigError` naming the path, where it came from and what is
    wrong with it (a regular file, a parent that is a file, no permission).
    """
    env = os.environ.get(ENV_CONFIG_DIR)
    path = Path(env).expanduser() if env else Path(platformdirs.user_config_dir('piker'))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(_config_dir_problem(path, bool(env), err)) from None
    return path


def _config_dir_problem(path: Path, from_env: bool, err: OSError) -> str:
    what = f'{ENV_CONFIG_DIR}={str(path)!r}' if from_env else f'the config dir {str(path)!r}'
    fix = (f'point {ENV_CONFIG_DIR} at a directory (created if missing)' if from_env
           else f'remove it or set {ENV_CONFIG_DIR} to a directory')
    if path.exists() and not path.is_dir():
        return f'{what} is a file, not a directory: {fix}'
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f'{what} cannot be created: {str(blocker)!r} is a file, not a directory: {fix}'
    return f'{what} cannot be created: {err.strerror or err}'


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


BINANCE_REST = 'https://api.binance.com'
BINANCE_WS = 'wss://stream.binance.com:9443'
BINANCE_TESTNET_REST = 'https://testnet.binance.vision'
BINANCE_TESTNET_WS = 'wss://stream.testnet.binance.vision'
ENV_BINANCE_KEY = 'PIKER_BINANCE_API_KEY'
ENV_BINANCE_SECRET = 'PIKER_BINANCE_API_SECRET'


class BinanceConf(BackendConf):
    """Binance spot (`[binance]`).

    Keys come from (first found): `api_key`/`api_secret`, the files named
    by `api_key_file`/`api_secret_file`, or the environment variables
    `PIKER_BINANCE_API_KEY`/`PIKER_BINANCE_API_SECRET`. They are
    `SecretStr`s: a repr, a log line or a traceback shows `**********`.
    Without keys the backend serves market data and paper trading only.
    `testnet = true` points both URLs at Binance's spot testnet unless they
    are given explicitly.
    """

    model_config = ConfigDict(extra='forbid', validate_assignment=True)
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_key_file: Path | None = None
    api_secret_file: Path | None = None
    testnet: bool = False
    rest_url: str = ''
    ws_url: str = ''
    recv_window_ms: int = Field(5000, gt=0, le=60000)
    accounts: list[str] = Field(default_factory=lambda: ['paper', 'spot'])

    @model_validator(mode='after')
    def _resolve(self) -> BinanceConf:
        # plain object.__setattr__: validate_assignment would recurse here
        if not self.rest_url:
            object.__setattr__(
                self, 'rest_url', BINANCE_TESTNET_REST if self.testnet else BINANCE_REST)
        if not self.ws_url:
            object.__setattr__(
                self, 'ws_url', BINANCE_TESTNET_WS if self.testnet else BINANCE_WS)
        for name, path_field, env in (
            ('api_key', 'api_key_file', ENV_BINANCE_KEY),
            ('api_secret', 'api_secret_file', ENV_BINANCE_SECRET),
        ):
            if getattr(self, name) is not None:
                continue
            path = getattr(self, path_field)
            value = read_secret_file(path) if path is not None else os.environ.get(env)
            if value:
                object.__setattr__(self, name, SecretStr(value.strip()))
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError('give both api_key and api_secret (or neither)')
        return self

    @property
    def has_keys(self) -> bool:
        return self.api_key is not None and self.api_secret is not None


KRAKEN_REST = 'https://api.kraken.com'
KRAKEN_WS = 'wss://ws.kraken.com/v2'
KRAKEN_WS_AUTH = 'wss://ws-auth.kraken.com/v2'
ENV_KRAKEN_KEY = 'PIKER_KRAKEN_API_KEY'
ENV_KRAKEN_SECRET = 'PIKER_KRAKEN_API_SECRET'


def resolve_secrets(model: BaseModel, env: dict[str, str]) -> None:
    """Fill each unset secret field `name` of `model` from the file named
    by `<name>_file`, else from the environment variable `env[name]`;
    both halves of a key pair or neither. (Venue-neutral: any backend's
    `[<broker>]` model with `api_key`/`api_secret` can call it.)"""
    for name, var in env.items():
        if getattr(model, name) is not None:
            continue
        path = getattr(model, f'{name}_file')
        value = read_secret_file(path) if path is not None else os.environ.get(var)
        if value:
            object.__setattr__(model, name, SecretStr(value.strip()))
    if len({getattr(model, name) is None for name in env}) > 1:
        raise ValueError(f'give both {" and ".join(env)} (or neither)')


class KrakenConf(BackendConf):
    """Kraken spot (`[kraken]`), keys resolved like `[binance]`'s.

    Keys come from (first found): `api_key`/`api_secret`, the files named
    by `api_key_file`/`api_secret_file`, or `PIKER_KRAKEN_API_KEY`/
    `PIKER_KRAKEN_API_SECRET`; `SecretStr`s, never shown. `api_secret` is
    Kraken's base64 private key. Without keys: market data + paper only.
    `ws_url` is the public websocket v2, `ws_auth_url` the private one.
    """

    model_config = ConfigDict(extra='forbid', validate_assignment=True)
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    api_key_file: Path | None = None
    api_secret_file: Path | None = None
    rest_url: str = KRAKEN_REST
    ws_url: str = KRAKEN_WS
    ws_auth_url: str = KRAKEN_WS_AUTH
    accounts: list[str] = Field(default_factory=lambda: ['paper', 'spot'])

    @model_validator(mode='after')
    def _resolve(self) -> KrakenConf:
        resolve_secrets(self, {'api_key': ENV_KRAKEN_KEY, 'api_secret': ENV_KRAKEN_SECRET})
        return self

    @property
    def has_keys(self) -> bool:
        return self.api_key is not None and self.api_secret is not None


def read_secret_file(path: Path) -> str:
    """The secret in `path`; a warning if other users may read the file."""
    path = Path(path).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as err:
        raise ValueError(f'cannot read secret file {str(path)!r}: {err.strerror}') from None
    if mode & 0o077:
        import warnings
        warnings.warn(
            f'{path} holds a secret but is readable by other users '
            f'(mode {oct(mode & 0o777)}): chmod 600 it', stacklevel=2,
        )
        from .log import get_logger
        get_logger(__name__).warning(
            '%s holds a secret but is readable by other users (mode %s): chmod 600 it',
            path, oct(mode & 0o777))
    return text


class BrokersConf(_Model):
    """`brokers.toml`: one table per backend."""

    model_config = ConfigDict(extra='allow', validate_assignment=True)
    sim: SimConf = Field(default_factory=SimConf)
    binance: BinanceConf = Field(default_factory=BinanceConf)
    kraken: KrakenConf = Field(default_factory=KrakenConf)

    def backend(self, name: str) -> BackendConf:
        """Return the validated settings of backend `name` (defaults if absent)."""
        if name == 'sim':
            return self.sim
        if name == 'binance':
            return self.binance
        if name == 'kraken':
            return self.kraken
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
    # the chart greys its prices after this long without a word from brokerd
    # (quotes or its 0.25 s heartbeat); None: the chart's default (2 s)
    stale_after_s: float | None = Field(None, gt=0)
    # shift+f / shift+d stage a bracket: its take-profit and stop-loss this
    # many price ticks from the entry (drag them after placing to adjust)
    bracket_tp_ticks: int = Field(50, ge=1)
    bracket_sl_ticks: int = Field(25, ge=1)
    # desktop notifications for fills and triggered alerts (`piker.ui._notify`)
    notify: bool = False


TradingStateName = Literal['active', 'reduce_only', 'halted']


def _check_fqme_key(key: str) -> str:
    unpack_fqme(key)  # ValueError saying what an fqme looks like
    return key


def _check_account_key(key: str) -> str:
    broker, dot, account = key.rpartition('.')
    if not account.strip() or (dot and not broker.strip()) or key != key.strip():
        raise ValueError(
            f'{key!r} is not an account key: use "<account>" or "<broker>.<account>"'
        )
    return key


FqmeKey = Annotated[str, AfterValidator(_check_fqme_key)]
AccountKey = Annotated[str, AfterValidator(_check_account_key)]


DEFAULT_PRICE_BAND = 0.5
DEFAULT_DARK_PRICE_BAND = 9.0


class RiskLimits(_Model):
    """One scope's pre-trade limits; unset means "inherit the default".

    A float limit of `inf` (TOML `inf`) lifts an inherited default.
    """

    max_order_size: float | None = Field(None, gt=0, description='units per order')
    max_notional: float | None = Field(None, gt=0, description='price * size per order')
    max_open_orders: int | None = Field(
        None, ge=0, description='working orders (dark + live, not alerts) at once',
    )
    price_band: float | None = Field(
        None, gt=0, description=(
            "a live order's price at most this fraction away from the market "
            '(0.5: within 50% of it)'
        ),
    )
    dark_price_band: float | None = Field(
        None, gt=0, description=(
            "a dark order's or alert's level at most this fraction away from "
            'the market (9: up to 10 times it)'
        ),
    )


def _flatten_keys(table: Any, what: str) -> Any:
    """Turn TOML's nesting of an unquoted dotted key back into one key.

    `[ems.risk.fqmes.btcusdt.sim]` parses as `{'btcusdt': {'sim': {...}}}`:
    a table whose values are all tables and which holds no limit field is
    such a namespace, and becomes `{'btcusdt.sim': {...}}`. Keys are lower
    cased; two spellings of one key are an error naming it.
    """
    if not isinstance(table, dict):
        return table
    fields = set(RiskLimits.model_fields)
    out: dict[str, Any] = {}

    def walk(prefix: str, sub: dict) -> None:
        for key, val in sub.items():
            name = f'{prefix}.{key}' if prefix else str(key)
            if (
                isinstance(val, dict) and val and not (val.keys() & fields)
                and all(isinstance(v, dict) for v in val.values())
            ):
                walk(name, val)
                continue
            low = name.lower()
            if low in out:
                raise ValueError(f'{what} {low!r} is given twice')
            out[low] = val

    walk('', table)
    return out


class RiskConf(RiskLimits):
    """`[ems.risk]`: emsd's pre-trade checks (all off by default).

    The three limits of `RiskLimits` set here are the defaults; each is
    checked once per scope - the order's account and its market - with the
    scope's override from `accounts` / `fqmes` taking precedence.
    """

    state: TradingStateName = Field(
        'active', description='trading state at emsd start-up',
    )
    # the price bands are on by default: a price far from the market is a
    # typo (or 1e308) that no limit above would catch when none is set
    price_band: float | None = Field(
        DEFAULT_PRICE_BAND, gt=0, description=RiskLimits.model_fields['price_band'].description,
    )
    dark_price_band: float | None = Field(
        DEFAULT_DARK_PRICE_BAND, gt=0,
        description=RiskLimits.model_fields['dark_price_band'].description,
    )
    max_orders_per_sec: float = Field(
        0.0, ge=0, allow_inf_nan=False,
        description='new orders + modifies per client session; 0 = no throttle',
    )
    order_burst: int | None = Field(
        None, ge=1, description='token bucket size (default: rate rounded up)',
    )
    accounts: dict[AccountKey, RiskLimits] = Field(default_factory=dict)
    fqmes: dict[FqmeKey, RiskLimits] = Field(default_factory=dict)

    @field_validator('accounts', mode='before')
    @classmethod
    def _flat_accounts(cls, value: Any) -> Any:
        return _flatten_keys(value, 'account')

    @field_validator('fqmes', mode='before')
    @classmethod
    def _flat_fqmes(cls, value: Any) -> Any:
        return _flatten_keys(value, 'fqme')


class EMSConf(_Model):
    dark_pad_ticks: int = Field(5, ge=0, description='price ticks added to a triggered dark order')
    relay_idle_s: float = Field(
        30.0, ge=0, allow_inf_nan=False,
        description='seconds a trades relay with no client and no working order stays open',
    )
    journal_keep_days: float = Field(
        90.0, ge=0, allow_inf_nan=False,
        description='days the EMS journal keeps finished dialogs (0: forever)',
    )
    journal_linger_ms: float = Field(
        2.0, ge=0, le=10_000, allow_inf_nan=False,
        description=('ms a journal commit nobody waits on (open, fills, ends, a plain '
                     "live order's pending) waits to share its transaction; longer: fewer "
                     'commits, and a longer span in which only the venue remembers them'),
    )
    risk: RiskConf = Field(default_factory=RiskConf)


class StorageConf(_Model):
    """The local market-data store (`[storage]`, see `piker.storage`)."""

    # fqmes whose every L1 quote and trade brokerd records while it streams them
    record: list[FqmeKey] = Field(default_factory=list)


class NetworkConf(_Model):
    """`[network]`: running across machines (`piker pikerd` flags win)."""

    host: str | None = Field(None, description="this host's routable address")
    join: str | None = Field(None, description="'MAIN:PORT': join that pikerd")
    serve: list[str] = Field(default_factory=list,
                             description='daemons a joined host runs (brokerd.sim, ...)')
    insecure: bool = Field(False, description='allow non-loopback plain TCP (no TLS)')


class IndicatorChoice(_Model):
    """One indicator on a chart: `{name = "sma", length = 50}`; every key
    but `name` is a parameter (the indicator checks them: `piker.fsp`)."""

    model_config = ConfigDict(extra='allow', validate_assignment=True)
    name: str = Field(pattern=r'^[A-Za-z_][A-Za-z0-9_]*$')

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _choice(value: Any) -> Any:
    # a bare name is the indicator with its default parameters
    return {'name': value} if isinstance(value, str) else value


Choice = Annotated[IndicatorChoice, BeforeValidator(_choice)]


class IndicatorsConf(_Model):
    """`[indicators]`: what each chart computes (in its own actor, see
    docs/indicators.md). `default` applies to every chart without an entry
    in `fqmes`; `modules` are user indicator modules (file paths or dotted
    module names) loaded before the names are looked up."""

    default: list[Choice] = Field(default_factory=list)
    fqmes: dict[FqmeKey, list[Choice]] = Field(default_factory=dict)
    modules: list[str] = Field(default_factory=list)

    def for_fqme(self, fqme: str) -> tuple[str, list[IndicatorChoice]]:
        """The key naming where `fqme`'s choice comes from, and the choice."""
        if fqme in self.fqmes:
            return f'indicators.fqmes."{fqme}"', self.fqmes[fqme]
        return 'indicators.default', self.default


class Conf(_Model):
    """`conf.toml`: UI, EMS, storage and network settings."""

    ui: UIConf = Field(default_factory=UIConf)
    ems: EMSConf = Field(default_factory=EMSConf)
    storage: StorageConf = Field(default_factory=StorageConf)
    network: NetworkConf = Field(default_factory=NetworkConf)
    indicators: IndicatorsConf = Field(default_factory=IndicatorsConf)


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
#
# [binance]            # Binance spot; without keys: market data + paper only
# accounts = ["paper", "spot"]   # "spot" is the live account (--mode live)
# testnet = false      # true: Binance's spot testnet (testnet.binance.vision)
# rest_url = "https://api.binance.com"     # defaults: production (or testnet)
# ws_url = "wss://stream.binance.com:9443"
# recv_window_ms = 5000
# # API keys (only for live trading), first found of: api_key = "..." and
# # api_secret = "..."; api_key_file = "~/.config/piker/binance.key" and
# # api_secret_file (chmod 600 them); or the environment variables
# # PIKER_BINANCE_API_KEY and PIKER_BINANCE_API_SECRET
#
# [kraken]             # Kraken spot; without keys: market data + paper only
# accounts = ["paper", "spot"]   # "spot" is the live account (--mode live)
# rest_url = "https://api.kraken.com"
# ws_url = "wss://ws.kraken.com/v2"            # public websocket v2
# ws_auth_url = "wss://ws-auth.kraken.com/v2"  # private websocket v2
# # API keys as for [binance]: api_key/api_secret, api_key_file/api_secret_file,
# # or PIKER_KRAKEN_API_KEY and PIKER_KRAKEN_API_SECRET
''',
    'conf.toml': '''\
# piker settings.
#
# [ui]
# theme = "dark"
# default_size_unit = "currency"   # or "units"
# default_limit = 5000.0
# default_slots = 4
# stale_after_s = 2.0   # grey the prices after this long without a word from
#                       # brokerd (quotes or its 0.25 s heartbeat)
# bracket_tp_ticks = 50 # shift+f / shift+d brackets: take-profit and stop-loss
# bracket_sl_ticks = 25 # this many price ticks from the entry
# notify = false        # desktop notifications for fills and triggered alerts
#
# [ems]
# dark_pad_ticks = 5   # price ticks a triggered dark order is padded by
# relay_idle_s = 30.0  # a venue dialogue nobody uses (no client of that broker
#                      # and mode, no working order there) is closed after this
# journal_keep_days = 90.0  # finished dialogs older than this leave the EMS
#                           # journal when emsd starts (0 = keep forever)
#
# [ems.risk]              # emsd's pre-trade checks; every limit is off unless set
# state = "active"        # at emsd start: "active", "reduce_only" (only orders that
#                         # shrink a position) or "halted" (no new orders or modifies;
#                         # cancels always work). `piker ems halt|resume|reduce-only`
#                         # switches it at runtime and the switch survives restarts.
# max_order_size = 10.0   # units per order          } defaults, checked per account
# max_notional = 50000.0  # price * size per order   } and per market; alerts are
# max_open_orders = 100   # working dark+live orders } exempt from all three
# max_orders_per_sec = 20.0   # new orders + modifies per client session, 0 = off
# order_burst = 40        # token-bucket size (default: the rate rounded up)
# price_band = 0.5        # ON by default: a live order's price within 50% of the
#                         # market (its last price); inf = off
# dark_price_band = 9.0   # ON by default: a dark order's or alert's level within
#                         # 900% of the market (up to 10 times it); inf = off
#
# [ems.risk.accounts."sim.paper"]   # one account: "<broker>.<account>", or
# max_notional = 10000.0            # "<account>" for that name at every broker
#
# [ems.risk.fqmes."btcusdt.sim"]    # one market: quote the fqme, it has dots
# max_order_size = 5.0              # (inf lifts a default for this scope)
#
# [storage]               # the local bar and tick store (<config dir>/storage/)
# record = ["btcusdt.sim"]  # markets whose every quote and trade brokerd records
#                         # while it streams them (see also `piker record FQME`)
#
# [network]               # several machines (README "Running on several machines")
# host = "10.0.0.2"       # this host's routable address (pikerd --host)
# join = "10.0.0.1:6116"  # a joined host: the main pikerd (pikerd --join)
# serve = ["brokerd.binance", "paperboi.binance"]   # what a joined host runs
# insecure = false        # true: plain TCP off loopback, NO authentication
#
# [indicators]            # computed per chart in its own actor (docs/indicators.md)
# default = ["vwap", {name = "sma", length = 50}, "rsi"]   # on every chart
# modules = ["~/.config/piker/my_indicators.py"]            # your own indicators
#
# [indicators.fqmes]      # one market's choice instead of the default
# "btcusdt.sim" = ["ema", {name = "rsi", length = 7}]
''',
}


def _explain(err: ValidationError, fname: str, prefix: str = '') -> str:
    parts = []
    for e in err.errors():
        loc = ((prefix,) if prefix else ()) + tuple(e['loc'])
        # pydantic marks a bad dict key with a trailing '[key]'
        is_key = bool(loc) and loc[-1] == '[key]'
        loc = loc[:-1] if is_key else loc
        # a key with dots is quoted, as TOML needs it: fqmes."btcusdt.sim"
        key = '.'.join(f'"{p}"' if '.' in str(p) else str(p) for p in loc)
        got = e.get('input')
        if e['type'] == 'extra_forbidden':
            parts.append(f'unknown key {key!r}')
        elif e['type'] == 'missing':
            parts.append(f'missing key {key!r}')
        elif is_key:
            parts.append(f'bad key {key!r}: {e["msg"]}')
        elif isinstance(got, dict | list):
            parts.append(f'key {key!r}: {e["msg"]}')
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
