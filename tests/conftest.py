"""Every test runs isolated: private config dir and registry address."""
import os

import pytest

os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')


@pytest.fixture(autouse=True)
def _isolated(piker_env):
    return piker_env
