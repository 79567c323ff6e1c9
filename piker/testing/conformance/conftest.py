"""Parametrise the kit by `--backend` (the piker pytest plugin's option)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._harness import Harness, Quotes, default_backends, get_harness


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if 'harness' in metafunc.fixturenames:
        names = metafunc.config.getoption('backend') or default_backends()
        ids = [n.partition('=')[0] for n in names]
        metafunc.parametrize('harness', names, ids=ids, indirect=True, scope='module')


@pytest.fixture(scope='module')
def harness(request: pytest.FixtureRequest) -> Harness:
    return get_harness(request.param)


@pytest.fixture(scope='module')
def endpoints(harness: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quotes]:
    """The backend's endpoints working in process, in a private config dir."""
    confdir: Path = tmp_path_factory.mktemp(f'{harness.broker}-conf')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('PIKER_CONFIG_DIR', str(confdir))
        with harness.endpoints() as quotes:
            yield quotes


@pytest.fixture
def world(harness: Harness, piker_env: tuple[Path, tuple[str, int]]) -> Harness:
    """The harness, in the test's isolated environment (`piker_env`)."""
    return harness
