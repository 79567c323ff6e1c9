"""Start-up and shutdown of `piker chart` (issue #16 items 3 and 4)."""
from __future__ import annotations

import os
import time

import pytest
import trio

FQME = 'btcusdt.sim'


@pytest.mark.timeout(60)
def test_close_during_the_first_daemon_spawn_is_graceful_and_fast(qtbot, capfd):
    """Closing the window while brokerd is still spawning (~0.3 s after
    start-up) used to take 5-6 s: the spawn was abandoned, tractor SIGKILLed
    the child 3 s later and logged `#ZOMBIE_LORD_IS_HERE` at CRITICAL."""
    from piker.testing._sim import descendants
    from piker.ui._app import run_chart

    seen: dict = {}

    async def driver(app) -> None:
        # the event: this process (pikerd) has just started a daemon's process
        with trio.fail_after(20):
            while not descendants(os.getpid()):
                await trio.sleep(0.005)
        seen['ready'] = app.ready.is_set()
        seen['t_close'] = time.monotonic()
        app.win.close()

    run_chart([FQME], driver=driver, handle_signals=False, loglevel='info')
    took = time.monotonic() - seen['t_close']
    err = capfd.readouterr().err
    assert not seen['ready'], 'the close must land before the charts are up'
    assert 'CRITICAL' not in err and 'ZOMBIE' not in err, err[-2000:]
    assert 'exited (rc=0)' in err, err[-2000:]          # brokerd ended by its cancel
    assert 'rc=-9' not in err
    assert descendants(os.getpid()) == set()
    assert took < 2.5, f'close took {took:.2f}s'
