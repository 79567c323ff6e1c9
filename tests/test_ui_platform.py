"""`piker chart` on a Linux without the X11 libraries Qt's xcb plugin needs
(issue #16 item 8): one hint with the apt line, not Qt's abort."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from piker.ui import _platform

pytestmark = pytest.mark.timeout(60)

MISSING = 'libpiker-missing.so.9'


@pytest.fixture
def no_qt_start(monkeypatch):
    """Record chart runs instead of starting Qt (xcb would abort pytest)."""
    import piker.ui._boot as boot
    calls = []
    monkeypatch.setattr(boot, 'run_chart_booted', lambda *a, **kw: calls.append(a))
    return calls


def test_probe_finds_an_injected_missing_library():
    assert _platform.missing_xcb_libs(['libc.so.6', MISSING]) == [MISSING]
    assert _platform.missing_xcb_libs(['libc.so.6']) == []


def test_xcb_is_the_platform_only_when_qt_would_pick_it():
    assert _platform.uses_xcb({}, 'linux')
    assert _platform.uses_xcb({'QT_QPA_PLATFORM': 'xcb'}, 'linux')
    assert _platform.uses_xcb({'QT_QPA_PLATFORM': 'xcb;wayland'}, 'linux')
    assert not _platform.uses_xcb({'QT_QPA_PLATFORM': 'offscreen'}, 'linux')
    assert not _platform.uses_xcb({'QT_QPA_PLATFORM': 'wayland'}, 'linux')
    assert not _platform.uses_xcb({}, 'darwin')


def test_cli_prints_the_apt_hint_before_qt_starts(monkeypatch, no_qt_start):
    from piker.cli import app
    monkeypatch.delenv('QT_QPA_PLATFORM', raising=False)
    monkeypatch.setattr(sys, 'platform', 'linux')
    monkeypatch.setattr(_platform, 'XCB_LIBS', {'libc.so.6': 'libc6', MISSING: 'libpiker-missing9'})
    res = CliRunner().invoke(app, ['chart', 'btcusdt.sim'])
    assert res.exit_code == 3, res.output
    assert 'missing libpiker-missing9' in res.output
    assert _platform.APT_LINE in res.output
    assert 'libxcb-cursor0' in _platform.APT_LINE and 'libxcb-xinerama0' in _platform.APT_LINE
    assert no_qt_start == []
    # offscreen needs none of them: the chart starts
    monkeypatch.setenv('QT_QPA_PLATFORM', 'offscreen')
    res = CliRunner().invoke(app, ['chart', 'btcusdt.sim'])
    assert res.exit_code == 0, res.output
    assert len(no_qt_start) == 1


@pytest.mark.skipif(
    not sys.platform.startswith('linux') or not _platform.missing_xcb_libs(),
    reason='this machine has every library of the xcb plugin',
)
def test_real_missing_libraries_give_the_hint_not_qts_abort():
    """This box lacks some: the real command says which, exits 3, no Qt noise."""
    env = {k: v for k, v in os.environ.items() if k != 'QT_QPA_PLATFORM'}
    env['DISPLAY'] = ':99'
    proc = subprocess.run(
        [sys.executable, '-c', 'from piker.cli import app; app()', 'chart', 'btcusdt.sim'],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 3, proc.stderr
    assert _platform.APT_LINE in proc.stderr
    assert 'Could not load the Qt platform plugin' not in proc.stderr


def test_the_readme_names_the_same_apt_line():
    from pathlib import Path
    readme = Path(__file__).resolve().parent.parent / 'README.md'
    assert _platform.APT_LINE in readme.read_text()
