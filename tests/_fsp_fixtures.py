"""The indicator registry, left as a test found it (`tests/test_fsp.py`,
`tests/test_ui_indicators.py`)."""
from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def fsp_registry() -> Iterator[None]:
    """Indicators a test registers (its own, a user module's) leave with it."""
    from piker.fsp import REGISTRY, _select, known

    known()                     # the built-ins are in before the snapshot
    before, loaded = dict(REGISTRY), dict(_select._loaded)
    yield
    REGISTRY.clear()
    REGISTRY.update(before)
    _select._loaded.clear()
    _select._loaded.update(loaded)
