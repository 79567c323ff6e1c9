"""The conformance kit's harness lookup (`piker.testing.conformance`):
built-ins, a user's `name=pkg.module:factory`, and clear errors; and the
documented invocation with a user's harness, end to end."""
from __future__ import annotations

import subprocess
import sys

import pytest

from piker.testing.conformance import Harness, default_backends, get_harness
from piker.testing.conformance._builtin import SimHarness


def test_builtins_are_harnesses():
    assert default_backends() == ['sim', 'binance', 'kraken']
    for name in default_backends():
        h = get_harness(name)
        assert isinstance(h, Harness) and h.broker == name


def test_a_user_factory_by_spec():
    h = get_harness('mine=piker.testing.conformance._builtin:SimHarness')
    assert isinstance(h, SimHarness)


def test_unknown_backend_says_how_to_register_one():
    with pytest.raises(LookupError, match=r"no conformance harness for backend 'nope'.*"
                       r"known: binance, kraken, sim.*piker\.conformance"):
        get_harness('nope')


@pytest.mark.parametrize('spec, err', [
    ('mine=piker.testing.conformance', ValueError),   # no :attr
    ('mine=piker.testing.conformance:default_backends', TypeError),  # not a Harness
])
def test_bad_factories_are_clear_errors(spec, err):
    with pytest.raises(err):
        get_harness(spec)


def test_kit_runs_on_a_user_harness(tmp_path):
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '--pyargs', 'piker.testing.conformance', '-v',
         '-p', 'no:cacheprovider', '-k', 'search or ticks_quantize',
         '--backend', 'mine=piker.testing.conformance._builtin:SimHarness'],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert 'test_search_finds_market[mine] PASSED' in out, out
    assert '2 passed' in out, out
