"""Every test runs isolated: private config dir and registry address."""
import os

import pytest

os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')


@pytest.fixture(autouse=True)
def _isolated(piker_env):
    return piker_env


@pytest.fixture
def no_mouse_rate_limit():
    """pyqtgraph drops pointer moves closer than 1/mouseRateLimit s apart:
    synthetic events come microseconds apart, so lift the limit."""
    import pyqtgraph as pg
    old = pg.getConfigOption('mouseRateLimit')
    pg.setConfigOptions(mouseRateLimit=-1)
    yield
    pg.setConfigOptions(mouseRateLimit=old)
