"""`piker pikerd` network flags and `conf.toml [network]` (no actors booted:
every case is refused before anything binds)."""
from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from piker.cli import app
from piker.config import ConfigError, load_conf


def _cli(*argv: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(argv))
    return r.exit_code, r.output


def test_exposed_pikerd_without_tls_is_refused_with_instructions(piker_env) -> None:
    code, out = _cli('pikerd', '--host', '10.255.255.1', '--port', '1')
    assert code == 1
    assert 'without TLS' in out and 'piker certs init' in out and '--insecure' in out


def test_join_flags_are_checked(piker_env) -> None:
    code, out = _cli('pikerd', '--serve', 'brokerd.sim')
    assert code == 2 and '--join' in out
    code, out = _cli('pikerd', '--join', '10.0.0.1:6116')
    assert code == 2 and '--host' in out
    code, out = _cli('pikerd', '--join', '10.0.0.1:6116', '--host', '10.0.0.2',
                     '--serve', 'emsd')
    assert code == 2 and 'cannot serve' in out
    code, out = _cli('pikerd', '--join', 'nonsense', '--host', '10.0.0.2')
    assert code == 2


def test_network_section(piker_env) -> None:
    confdir: Path = piker_env[0]
    (confdir / 'conf.toml').write_text(
        '[network]\nhost = "10.0.0.2"\njoin = "10.0.0.1:6116"\n'
        'serve = ["brokerd.sim", "paperboi.sim"]\n')
    net = load_conf().network
    assert (net.host, net.join, net.serve, net.insecure) == (
        '10.0.0.2', '10.0.0.1:6116', ['brokerd.sim', 'paperboi.sim'], False)
    (confdir / 'conf.toml').write_text('[network]\nhots = "x"\n')
    try:
        load_conf()
    except ConfigError as err:
        assert "unknown key 'network.hots'" in str(err)
    else:
        raise AssertionError('a misspelt key must be refused')
    # the CLI reads it: --serve from conf.toml without a join is refused
    (confdir / 'conf.toml').write_text('[network]\nserve = ["brokerd.sim"]\n')
    code, out = _cli('pikerd')
    assert code == 2 and '--join' in out
