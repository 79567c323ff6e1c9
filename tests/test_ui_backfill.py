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


def test_the_chart_shows_the_bars_brokerd_stores(piker_env, qtbot):
    """The chart's live bars are brokerd's: each 1 s bar the chart shows
    equals the bar brokerd stored for that second, the one in progress
    when the chart opened (the backend's own version of it in the
    history) included."""
    import trio

    from piker.data import open_feed
    from piker.storage import BarStore
    from piker.ui import ChartWidget, get_qapp

    confdir, _ = piker_env
    (confdir / 'brokers.toml').write_text('[sim]\nseed = 5\nquote_rate = 100.0\n')
    get_qapp()
    fqme = 'btcusdt.sim'
    out = {}

    async def main():
        store = BarStore()
        async with open_feed(fqme) as feed:
            w = ChartWidget(fqme, await feed.history(fqme, 1), timeframe=1)
            qtbot.addWidget(w)
            first = int(w.model['time'][-1])    # in progress as the chart opened
            with trio.fail_after(20):
                while int(w.model['time'][-1]) < first + 3:
                    for quote in (await feed.stream.receive()).values():
                        w.update_quote(quote)
            shown = w.model.to_array()
            # brokerd writes a bar 1 s (grace) after it ends, every 2 s
            with trio.fail_after(20):
                while not len(store.read(fqme, 1, first + 3)):
                    await trio.sleep(0.1)
        out['shown'] = shown[(shown['time'] >= first) & (shown['time'] < first + 3)]
        out['stored'] = store.read(fqme, 1, first, first + 3)

    trio.run(main)
    shown, stored = out['shown'], out['stored']
    assert len(stored) >= 2
    assert shown.tolist() == stored.tolist()


def test_a_second_piker_chart_paints_from_the_store_before_the_feed(piker_env, tmp_path):
    """`piker chart` of a market with stored bars paints them before pikerd,
    brokerd and the backend's history are up (FIRST_FRAME before any
    FEED_CHARTS); with an empty store the first frame waits for the feed."""
    import os
    import subprocess
    import sys
    import time

    from piker.storage import BarStore

    exe = os.path.join(os.path.dirname(sys.executable), 'piker')

    def chart() -> list[str]:
        proc = subprocess.run([exe, 'chart', 'btcusdt.sim', '--first-frame-t0', repr(time.time())],
                              capture_output=True, text=True, timeout=90,
                              env=dict(os.environ, QT_QPA_PLATFORM='offscreen'))
        assert proc.returncode == 0, proc.stderr[-3000:]
        return [ln.split()[0] for ln in proc.stdout.splitlines()
                if ln.startswith(('FIRST_FRAME', 'FEED_CHARTS'))]

    assert chart() == ['FEED_CHARTS', 'FIRST_FRAME']     # nothing stored yet
    stored = BarStore().read('btcusdt.sim', 60)
    assert len(stored) > 1000                            # the first run filled it
    assert chart() == ['FIRST_FRAME']                    # painted, then closed at once
