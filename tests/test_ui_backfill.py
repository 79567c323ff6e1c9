"""A chart drawn from stored bars grows in place when the backfill lands."""
from __future__ import annotations

import numpy as np

from tests.test_ui_render import mk_history


def test_backfilled_bars_prepend_in_place(qtbot):
    from piker.ui import ChartWidget, get_qapp

    get_qapp()
    full = mk_history(3000)
    stored = full[2000:2900].copy()       # what the store had
    w = ChartWidget('btcusdt.sim', stored, timeframe=60)
    qtbot.addWidget(w)
    w.resize(1200, 700)
    w.show()
    qtbot.waitExposed(w)
    # the store was stale: live trades opened a bar 90 bars later
    live = full[2990]
    w.model.append(int(live['time']), 1.0, 2.0, 0.5, 1.5, 3.0)
    live_close = 1.5
    w.show_bars(100)
    x0, x1 = w.view.x_range()
    first_shown = int(w.model['time'][int(np.ceil(x0))])

    added = w.merge_history(full[:2950])  # older bars, and 50 the store missed
    assert added == 2000
    assert len(w.model) == 2951
    assert np.array_equal(w.model['time'], np.r_[full['time'][:2950], live['time']])
    # the same bars are in view: the view moved with the prepended ones
    nx0, nx1 = w.view.x_range()
    assert int(w.model['time'][int(np.ceil(nx0))]) == first_shown
    assert abs((nx1 - nx0) - (x1 - x0)) < 1e-6
    # the hole between store and live bar is filled; the live bar stays ours
    assert w.model['close'][-1] == live_close
    assert w.model['close'][2920] == full['close'][2920]
    assert w.model['close'][0] == full['close'][0]
