"""`piker.config`: config dir, registry address, validated config files."""
from __future__ import annotations

import tomllib

import pytest

from piker import config
from piker.config import (
    BackendConf,
    BrokersConf,
    Conf,
    ConfigError,
    get_config_dir,
    get_registry_addr,
    load_brokers_conf,
    load_conf,
    parse_addr,
)

# --- config dir ------------------------------------------------------------

def test_config_dir_from_env(piker_env):
    confdir, _ = piker_env
    assert get_config_dir() == confdir


def test_config_dir_env_is_created_and_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('PIKER_CONFIG_DIR', '~/deep/piker')
    path = get_config_dir()
    assert path == tmp_path / 'deep' / 'piker'
    assert path.is_dir()


def test_config_dir_default_is_platform_dir(tmp_path, monkeypatch):
    monkeypatch.delenv('PIKER_CONFIG_DIR')
    seen = []

    def fake_user_config_dir(appname):
        seen.append(appname)
        return str(tmp_path / 'platform' / appname)

    # never touch the real user config dir from a test
    monkeypatch.setattr(config.platformdirs, 'user_config_dir', fake_user_config_dir)
    assert get_config_dir() == tmp_path / 'platform' / 'piker'
    assert seen == ['piker']


@pytest.mark.parametrize('sub', ['', 'sub/piker'])
def test_config_dir_on_a_file_is_a_clear_error(tmp_path, monkeypatch, sub):
    afile = tmp_path / 'afile'
    afile.write_text('mine')
    path = afile / sub if sub else afile
    monkeypatch.setenv('PIKER_CONFIG_DIR', str(path))
    with pytest.raises(ConfigError) as exc:
        get_config_dir()
    msg = str(exc.value)
    assert msg.startswith(f'PIKER_CONFIG_DIR={str(path)!r} ')
    if sub:
        assert f'cannot be created: {str(afile)!r} is a file, not a directory' in msg
    else:
        assert 'is a file, not a directory' in msg
    assert msg.endswith('point PIKER_CONFIG_DIR at a directory (created if missing)')
    assert afile.read_text() == 'mine'  # nothing lost


def test_default_config_dir_on_a_file_names_it(tmp_path, monkeypatch):
    monkeypatch.delenv('PIKER_CONFIG_DIR')
    (tmp_path / 'piker').write_text('')
    monkeypatch.setattr(config.platformdirs, 'user_config_dir',
                        lambda appname: str(tmp_path / appname))
    with pytest.raises(ConfigError, match=(
        rf"the config dir '{tmp_path}/piker' is a file, not a directory: "
        'remove it or set PIKER_CONFIG_DIR to a directory'
    )):
        get_config_dir()


# every command that needs the config dir, and a few that do not (they
# talk to a pikerd, which has its own): none may crash with a traceback
COMMANDS = [
    ('ledger', 'sim', 'paper'), ('positions', 'sim', 'paper'), ('search', 'btc'),
    ('quote', 'btcusdt.sim'), ('ems', 'status'), ('ems', 'halt'),
    ('order', 'history'), ('order', 'show', 'abc'), ('pikerd',),
    ('chart', 'btcusdt.sim'), ('services',), ('order', 'ls'),
]


@pytest.mark.timeout(90)
def test_every_command_reports_a_config_dir_on_a_file(tmp_path, monkeypatch):
    import os
    import subprocess

    from tests._pikerd_proc import PIKER

    afile = tmp_path / 'afile'
    afile.write_text('')
    env = {**os.environ, 'PIKER_CONFIG_DIR': str(afile), 'QT_QPA_PLATFORM': 'offscreen'}
    procs = [subprocess.Popen([PIKER, *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for cmd in COMMANDS]
    for cmd, proc in zip(COMMANDS, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, (cmd, out, err)
        assert 'Traceback' not in err and out == '', (cmd, out, err)
        last = err.splitlines()[-1]
        if cmd in (('services',), ('order', 'ls')):
            assert last.startswith('`piker order` needs') or 'no pikerd' in last, (cmd, err)
        else:
            assert last == (f"error: PIKER_CONFIG_DIR={str(afile)!r} is a file, not a "
                            'directory: point PIKER_CONFIG_DIR at a directory (created '
                            'if missing)'), (cmd, err)


# --- registry address ------------------------------------------------------

def test_registry_addr_from_env(piker_env):
    _, addr = piker_env
    assert get_registry_addr() == addr


def test_registry_addr_default(monkeypatch):
    monkeypatch.delenv('PIKER_REGISTRY_ADDR')
    assert get_registry_addr() == ('127.0.0.1', 6116)


@pytest.mark.parametrize('bad', [
    'localhost', '127.0.0.1:', ':6116', '127.0.0.1:abc', '127.0.0.1:0',
    '127.0.0.1:65536', '127.0.0.1:-1', 'host:61 16',
])
def test_bad_registry_addr_env(monkeypatch, bad):
    monkeypatch.setenv('PIKER_REGISTRY_ADDR', bad)
    with pytest.raises(ConfigError) as exc:
        get_registry_addr()
    msg = str(exc.value)
    assert 'PIKER_REGISTRY_ADDR' in msg and repr(bad) in msg
    assert 'host:port' in msg


@pytest.mark.parametrize('text, expect', [
    ('127.0.0.1:6116', ('127.0.0.1', 6116)),
    (' 10.0.0.2:1 ', ('10.0.0.2', 1)),
    ('example.org:65535', ('example.org', 65535)),
    ('[::1]:7000', ('::1', 7000)),
])
def test_parse_addr(text, expect):
    assert parse_addr(text) == expect


def test_parse_addr_names_what():
    with pytest.raises(ConfigError, match="--reg='x'"):
        parse_addr('x', what='--reg')


# --- defaults --------------------------------------------------------------

def test_brokers_conf_default_created_with_comments(piker_env):
    confdir, _ = piker_env
    path = confdir / 'brokers.toml'
    assert not path.exists()
    conf = load_brokers_conf()
    assert isinstance(conf, BrokersConf)
    assert conf.sim.seed == 0 and conf.sim.quote_rate == 20.0
    assert conf.sim.accounts == ['paper']
    assert conf.sim.paper.fee_rate == 0.0 and conf.sim.paper.latency_ms == 0.0
    text = path.read_text()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines and all(ln.startswith('#') for ln in lines)  # all commented
    for key in ('seed', 'quote_rate', 'accounts', 'fee_rate', 'latency_ms'):
        assert key in text
    # the commented example is itself valid config once uncommented
    uncommented = '\n'.join(ln[2:].split('#')[0] for ln in text.splitlines()[2:])
    assert BrokersConf.model_validate(tomllib.loads(uncommented)) == BrokersConf()


def test_conf_default_created_with_comments(piker_env):
    confdir, _ = piker_env
    conf = load_conf()
    assert isinstance(conf, Conf)
    assert conf.ui.theme == 'dark' and conf.ui.default_size_unit == 'currency'
    assert conf.ui.default_limit == 5000.0 and conf.ui.default_slots == 4
    assert conf.ems.dark_pad_ticks == 5
    text = (confdir / 'conf.toml').read_text()
    assert 'dark_pad_ticks' in text and text.startswith('#')


def test_existing_file_is_not_overwritten(piker_env):
    confdir, _ = piker_env
    path = confdir / 'conf.toml'
    path.write_text('[ems]\ndark_pad_ticks = 2\n')
    assert load_conf().ems.dark_pad_ticks == 2
    assert path.read_text() == '[ems]\ndark_pad_ticks = 2\n'


def test_values_are_read(piker_env):
    confdir, _ = piker_env
    (confdir / 'brokers.toml').write_text(
        '[sim]\nseed = 7\nquote_rate = 0\naccounts = ["paper", "alt"]\n'
        '[sim.paper]\nfee_rate = 0.001\nlatency_ms = 5\n'
        '[deribit]\naccounts = ["spot"]\napi_key = "k"\n'
    )
    conf = load_brokers_conf()
    assert (conf.sim.seed, conf.sim.quote_rate, conf.sim.accounts) == (7, 0.0, ['paper', 'alt'])
    assert conf.sim.paper.fee_rate == 0.001 and conf.sim.paper.latency_ms == 5.0
    assert conf.backend('sim') is conf.sim
    other = conf.backend('deribit')  # a backend with no model of its own
    assert isinstance(other, BackendConf)
    assert other.accounts == ['spot'] and other.paper.fee_rate == 0.0
    assert other.model_extra == {'api_key': 'k'}  # backend-specific keys allowed
    # an unconfigured backend gets the defaults
    assert conf.backend('ib').accounts == ['paper']


def test_explicit_path(tmp_path):
    path = tmp_path / 'custom.toml'
    path.write_text('[ui]\ntheme = "light"\n')
    assert load_conf(path).ui.theme == 'light'


# --- errors ----------------------------------------------------------------

def test_bad_toml(piker_env):
    confdir, _ = piker_env
    path = confdir / 'brokers.toml'
    path.write_text('[sim\nseed = 1\n')
    with pytest.raises(ConfigError) as exc:
        load_brokers_conf()
    assert str(path) in str(exc.value) and 'not valid TOML' in str(exc.value)


@pytest.mark.parametrize('fname, body, key, expect', [
    ('brokers.toml', '[sim]\nseed = "abc"\n', "'sim.seed'", 'valid integer'),
    ('brokers.toml', '[sim.paper]\nfee_rate = -1\n', "'sim.paper.fee_rate'", 'greater than or equal to 0'),
    ('brokers.toml', '[sim]\naccounts = "paper"\n', "'sim.accounts'", 'valid list'),
    ('conf.toml', '[ui]\ntheme = "pink"\n', "'ui.theme'", "'dark' or 'light'"),
    ('conf.toml', '[ui]\ndefault_slots = 0\n', "'ui.default_slots'", 'greater than or equal to 1'),
    ('conf.toml', '[ems]\ndark_pad_ticks = 1.5\n', "'ems.dark_pad_ticks'", 'valid integer'),
])
def test_wrong_type_names_file_key_and_expectation(piker_env, fname, body, key, expect):
    confdir, _ = piker_env
    path = confdir / fname
    path.write_text(body)
    load = load_brokers_conf if fname == 'brokers.toml' else load_conf
    with pytest.raises(ConfigError) as exc:
        load()
    msg = str(exc.value)
    assert str(path) in msg
    assert key in msg
    assert expect in msg


@pytest.mark.parametrize('fname, body, key', [
    ('conf.toml', '[ui]\nthemes = "dark"\n', "'ui.themes'"),
    ('conf.toml', '[charts]\nx = 1\n', "'charts'"),
    ('brokers.toml', '[sim.paper]\nfee = 1.0\n', "'sim.paper.fee'"),
])
def test_unknown_key(piker_env, fname, body, key):
    confdir, _ = piker_env
    (confdir / fname).write_text(body)
    load = load_brokers_conf if fname == 'brokers.toml' else load_conf
    with pytest.raises(ConfigError, match=f'unknown key {key}'):
        load()


def test_bad_backend_table_names_backend(piker_env):
    confdir, _ = piker_env
    (confdir / 'brokers.toml').write_text('[deribit]\naccounts = 5\n')
    conf = load_brokers_conf()  # other backends' tables are checked on use
    with pytest.raises(ConfigError, match=r"brokers.toml.*'deribit.accounts'"):
        conf.backend('deribit')
    # a modelled one (kraken) at load, naming the table
    (confdir / 'brokers.toml').write_text('[kraken]\napi_key = "k"\n')
    with pytest.raises(ConfigError, match=r"kraken.*give both api_key and api_secret"):
        load_brokers_conf()


def test_unreadable_file(piker_env):
    confdir, _ = piker_env
    (confdir / 'conf.toml').mkdir()  # a directory where the file should be
    with pytest.raises(ConfigError, match='cannot read'):
        load_conf()
