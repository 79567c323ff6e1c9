"""The chart outlives its daemons: emsd or brokerd SIGKILLed under it.

Order mode goes *disconnected* (banner, input refused, lines unknown)
when its EMS session is lost and redraws from the new handshake; prices
go stale when the feed is lost or silent and live again when it is back.
The unit tests drive `OrderMode` with a fake client and the link watch
with a fake feed on trio's mock clock; the end-to-end tests run the real
`ChartApp` (trio as a guest of Qt) over a paper simulation and kill the
daemons with `PaperSim.kill`. Reconnects wait on a `Gate` the test opens,
so the disconnected state is held as long as the test needs it.
"""
from __future__ import annotations

import os
import time
from contextlib import asynccontextmanager as acm

import pytest
import trio
import trio.testing

from piker.service import Backoff
from tests import test_ui_order_mode as base
from tests.test_ui_order_mode import (
    FQME,
    K_C,
    K_D,
    K_F,
    FakeClient,
    _click_at,
    _confirmed,
    _key,
    mid_price,
    mk_history,
    mk_mkt,
    move,
    press,
    status,
    until,
)

pytestmark = pytest.mark.timeout(90)

DOCS = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'docs')


# --- order mode, disconnected (fake client) -----------------------------------------

# an `OrderMode` on a shown window with a fake client (test_ui_order_mode's)
om = base.om


def _place(mode, action: str, price: float, resp: str = 'dark_open'):
    order = mode.client.mk_order(action, round(price, 1), 0.01, exec_mode='dark')
    mode.client.orders[order.oid] = order
    mode.on_status(status(order, resp))
    return order


def test_disconnected_order_mode_refuses_input_greys_lines_and_says_why(qtbot, om):
    from piker.clearing._messages import BrokerdPosition
    from piker.ui._order_mode import LineState
    from tests.test_ui_order_mode import drag

    p = mid_price(om, 0.3)
    a = _place(om, 'buy', p)
    kept = _place(om, 'buy', mid_price(om, 0.2))
    om.on_position(BrokerdPosition(broker='sim', account='paper', symbol=FQME,
                                   size=0.5, avg_price=p))
    client = om.client
    om.disconnect('lost emsd: connection broken')

    banner = om.chart.banner
    assert banner.text('ems') == (
        'EMS disconnected: reconnecting... order entry is off (lost emsd: connection broken)'
    )
    assert not banner.isHidden()
    assert {ol.state for ol in om.lines.values()} == {LineState.UNKNOWN}
    ol = om.lines[a.oid]
    assert ol.line.text().endswith('(unknown)')
    assert ol.line.colour == om.theme.stale and not ol.line.movable
    assert om.positions.lines['paper'].colour == om.theme.stale

    # keys, clicks and drags do nothing but say why
    move(qtbot, om, mid_price(om, 0.6))
    press(qtbot, om, K_F)
    assert om.staged is None
    assert any('buy refused: EMS disconnected' in t for t in om.win.status.texts())
    press(qtbot, om, K_C)
    drag(qtbot, om, ol.price, ol.price + 20)
    assert ol.line.price == a.price
    assert (client.sent, client.cancels, client.updates) == ([], [], [])

    # a new session whose handshake no longer has `a`, has `kept` (partly
    # filled meanwhile) and a new `b`; the position is flat
    new = FakeClient()
    b = new.mk_order('sell', round(mid_price(om, 0.7), 1), 0.02, exec_mode='dark')
    new.orders.update({b.oid: b, kept.oid: kept})
    om.reconnect(new, {
        b.oid: status(b, 'dark_open'), kept.oid: status(kept, 'fill', filled=0.004),
    }, {})
    assert set(om.lines) == {b.oid, kept.oid}
    for ol in om.lines.values():
        assert ol.state is LineState.OPEN and ol.line.movable and not ol.line.pending
    assert om.lines[kept.oid].remaining == pytest.approx(0.006)
    assert not om.positions.holdings
    assert banner.text('ems') is None and banner.isHidden()
    assert any(t.startswith('not open after the EMS reconnect: buy') for t in om.win.status.texts())
    press(qtbot, om, K_F)
    assert om.staged is not None


def test_a_loss_is_told_in_one_line_even_inside_exception_groups(caplog):
    """A lost connection is one line; a bug (not a link error) also logs
    its traceback, so a reconnect loop never hides it."""
    from piker.service import PeerLost
    from piker.ui._app import _lost

    async def main() -> list[str]:
        lost = PeerLost('emsd', 'connection broken (BrokenResourceError)')
        nested = BaseExceptionGroup('x', [ExceptionGroup('y', [lost])])
        return [await _lost(lost), await _lost(nested), await _lost(OSError())]

    assert trio.run(main) == [
        'lost emsd: connection broken (BrokenResourceError)',
        'lost emsd: connection broken (BrokenResourceError)',
        'OSError',
    ]
    assert not caplog.records
    assert trio.run(_lost, AttributeError('no attribute x')) == 'no attribute x'
    (rec,) = caplog.records
    assert rec.exc_info and rec.getMessage() == 'unexpected AttributeError (reconnecting anyway)'


# --- the link watch (fake feed, mock clock) ----------------------------------------------

class FakeFeed:
    """`Feed.last_heard` as the test sets it."""

    def __init__(self) -> None:
        self.fqmes = [FQME]
        self.heard = 0.0

    def last_heard(self, fqme: str) -> float:
        return self.heard


def test_link_watch_marks_a_silent_feed_stale_and_a_quiet_one_never(qtbot):
    """Stale = nothing heard from brokerd (not even its heartbeat) for
    `stale_after`; a market without quotes but with heartbeats stays live."""
    from piker.ui import get_qapp
    from piker.ui._app import ChartApp
    get_qapp()
    app = ChartApp([FQME], stale_after=2.0, handle_signals=False)
    qtbot.addWidget(app.win)
    chart = app.win.add_chart(FQME, mk_history(50), mk_mkt(), 60)
    feed = FakeFeed()
    seen = {}

    async def main() -> None:
        async with trio.open_nursery() as n:
            feed.heard = trio.current_time()
            n.start_soon(app._watch_link, feed)
            # a quiet market: only heartbeats, every 0.25 s, for a minute
            for _ in range(240):
                await trio.sleep(0.25)
                feed.heard = trio.current_time()
                assert chart.stale_since is None
            # brokerd goes silent
            await trio.sleep(1.9)
            seen['early'] = chart.stale_since
            await trio.sleep(0.5)
            seen['late'] = chart.stale_since
            seen['banner'] = chart.banner.text('feed')
            seen['l1'] = chart.l1.stale
            feed.heard = trio.current_time()
            await trio.sleep(0.3)
            seen['back'] = chart.stale_since
            n.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert seen['early'] is None and seen['late'] is not None and seen['l1']
    assert seen['banner'].startswith('quotes stale since ')
    assert seen['banner'].endswith(': nothing heard from brokerd.sim for 2s')
    assert seen['back'] is None and not chart.l1.stale and chart.banner.isHidden()


# --- end to end: SIGKILL a daemon under a running chart ------------------------------------

class Gate:
    """Backoffs whose waits block until the test calls `open()`."""

    def __init__(self) -> None:
        self.opened = trio.Event()
        self.waiting = 0

    def open(self) -> None:
        self.opened.set()

    def backoff(self) -> Backoff:
        return _GatedBackoff(self)


class _GatedBackoff(Backoff):
    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    async def sleep(self) -> float:
        if self.gate.opened.is_set():
            return await super().sleep()
        self.step()
        self.gate.waiting += 1
        try:
            await self.gate.opened.wait()
        finally:
            self.gate.waiting -= 1
        return 0.0


def run_guest_sim(async_fn, timeout: float = 70.0) -> None:
    """`run_sim()` for a chart: the simulation runs as a trio guest of Qt."""
    from piker.config import get_config_dir
    from piker.service import maybe_open_pikerd
    from piker.testing._sim import PaperSim, check_gone
    from piker.ui import get_qapp
    from piker.ui._guest import run_qt_guest

    pids: set[int] = set()

    async def main() -> None:
        async with maybe_open_pikerd() as services:
            async with trio.open_nursery() as n:
                sim = PaperSim(n, services, get_config_dir(), None)
                try:
                    with trio.fail_after(timeout):
                        await async_fn(sim)
                finally:
                    pids.update(sim.child_pids())
                    await sim.aclose()

    run_qt_guest(main, app=get_qapp())
    check_gone(pids)


@acm
async def running_chart(**kw):
    """A `ChartApp` on FQME in this actor tree, with its order mode up."""
    from piker.ui._app import ChartApp
    app = ChartApp([FQME], handle_signals=False, **kw)
    async with trio.open_nursery() as n:
        n.start_soon(app.run)
        try:
            with trio.fail_after(40):
                await app.ems_ready[FQME].wait()
            assert FQME in app.modes, app.ems_errors
            yield app
        finally:
            app.request_close()


def _one_clean_line(err: str, loss: str) -> None:
    """The chart's stderr over a loss: no traceback, one line saying `loss`."""
    assert 'Traceback' not in err and 'MultiError' not in err, err[-3000:]
    said = [ln for ln in err.splitlines() if loss in ln]
    assert len(said) == 1, err[-3000:]


def _save(widget, name: str, tmp_path, docs: bool = False) -> None:
    """Save a screenshot in the test's dir (`docs`: also in docs/ when
    PIKER_DOCS_SHOTS=1, which is how docs/chart_disconnected.png is made)."""
    assert widget.grab().save(str(tmp_path / name))
    if docs and os.environ.get('PIKER_DOCS_SHOTS'):
        assert widget.grab().save(os.path.join(DOCS, name))


def test_e2e_emsd_killed_chart_refuses_orders_then_redraws_from_the_new_handshake(
    qtbot, capfd, tmp_path,
):
    """SIGKILL emsd: order entry refused under a banner, lines unknown; after
    the respawn the chart reconnects and draws the new handshake: an order
    cancelled meanwhile by another client is gone, one placed is drawn."""
    gate = Gate()
    seen: dict = {}

    async def main(sim) -> None:
        q = await sim.push(FQME, bsize=5, asize=5)
        last = float(q['last'])
        script = await sim.open_ems(FQME)
        gone = await script.place('buy', round(last - 40, 1), 0.01, exec_mode='dark')
        await script.wait(gone, 'dark_open')
        async with running_chart(backoff=gate.backoff) as app:
            mode, chart = app.modes[FQME], app.win.chart(FQME)
            await until(lambda: _confirmed(mode, gone))
            capfd.readouterr()

            await sim.kill('emsd')
            await until(lambda: not mode.connected, timeout=15)
            assert chart.banner.text('ems').startswith(
                'EMS disconnected: reconnecting... order entry is off (lost emsd',
            )
            assert f'{FQME}: order mode off: EMS disconnected' in app.win.status.texts()
            assert mode.lines[gone].line.colour == mode.theme.stale
            # keys and clicks place nothing, and say so
            _key(chart, K_F)
            _click_at(chart, round(last - 20, 1))
            _key(chart, K_F, release=True)
            assert mode.staged is None and set(mode.lines) == {gone}
            assert any('buy refused: EMS disconnected' in t for t in app.win.status.texts())
            _save(app.win, 'chart_disconnected.png', tmp_path, docs=True)

            # meanwhile another client cancels one order and places another
            other = await sim.open_ems(FQME)
            await other.client.cancel(gone)
            await other.wait(gone, 'canceled')
            placed = await other.place('sell', round(last + 40, 1), 0.02, exec_mode='dark')
            await other.wait(placed, 'dark_open')
            assert mode.lines.keys() == {gone}          # nothing heard while away

            gate.open()
            await until(lambda: mode.connected and _confirmed(mode, placed), timeout=15)
            assert gone not in mode.lines and app.ems_connects[FQME] == 2
            assert chart.banner.text('ems') is None
            assert f'{FQME}: order mode on (paper)' in app.win.status.texts()
            # order entry works again: a dark sell with keys + click reaches emsd
            target = round(last + 20, 1)
            _key(chart, K_D)
            _click_at(chart, target)
            _key(chart, K_D, release=True)
            (mine,) = [o for o in mode.lines if o != placed]
            st = await other.wait(mine, 'dark_open', timeout=10)
            assert abs(st.req.price - target) < 1.0
            await until(lambda: _confirmed(mode, mine))
            seen['err'] = capfd.readouterr().err

    run_guest_sim(main)
    _one_clean_line(seen['err'], 'EMS session of btcusdt.sim lost')


def test_e2e_brokerd_killed_prices_go_stale_then_the_feed_resumes(qtbot, capfd, tmp_path):
    """SIGKILL brokerd: the L1 tags and title price go grey under a "quotes
    stale since" banner; once the feed is reopened quotes update the chart
    again and the live bar continues. A quiet market (walk paused, only
    heartbeats) is never stale."""
    gate = Gate()
    seen: dict = {}

    async def main(sim) -> None:
        q = await sim.push(FQME, bsize=5, asize=5)
        last = float(q['last'])
        async with running_chart(backoff=gate.backoff, stale_after=1.0) as app:
            chart = app.win.chart(FQME)
            await sim.push(FQME, last=last + 1, bid=last + 0.9, ask=last + 1.1)
            await until(lambda: chart.l1.prices['last'] == last + 1)
            # quiet: no quotes (the walk is paused) for 2.5x stale_after, only heartbeats
            with trio.move_on_after(2.5):
                await until(lambda: chart.stale_since is not None, timeout=3)
            assert chart.stale_since is None
            n_bars = len(chart.model)
            capfd.readouterr()

            await sim.kill('brokerd.sim')
            await until(lambda: chart.stale_since is not None, timeout=10)
            assert chart.l1.stale
            assert chart.l1.labels['last']._bg.name() == chart.theme.stale
            assert chart.title._price_colour == chart.theme.stale
            assert chart.banner.text('feed').startswith('quotes stale since ')
            await until(lambda: gate.waiting, timeout=10)    # the feed is declared lost
            assert 'reconnecting (attempt 1)' in chart.banner.text('feed')
            _save(app.win, 'chart_stale.png', tmp_path)

            gate.open()
            await until(lambda: app.feed_connects == 2 and chart.stale_since is None, timeout=20)
            assert not chart.l1.stale and chart.banner.text('feed') is None
            # the new brokerd's quotes reach the chart
            await sim.push(FQME, last=last + 7, bid=last + 6.9, ask=last + 7.1)
            await until(lambda: chart.l1.prices['last'] == last + 7)
            assert len(chart.model) >= n_bars and chart.model.last['close'] == last + 7
            assert app.modes[FQME].connected
            seen['err'] = capfd.readouterr().err

    run_guest_sim(main)
    _one_clean_line(seen['err'], 'quote feed lost')


def test_e2e_closing_the_window_while_reconnecting_exits_cleanly(qtbot):
    """Both loops waiting to reconnect (emsd and brokerd killed): a close
    request still ends the session at once, leaving no process behind."""
    gate = Gate()
    seen: dict = {}

    async def main(sim) -> None:
        await sim.push(FQME, bsize=5, asize=5)
        async with running_chart(backoff=gate.backoff, stale_after=1.0) as app:
            mode, chart = app.modes[FQME], app.win.chart(FQME)
            await sim.kill('emsd')
            await sim.kill('brokerd.sim')
            await until(lambda: not mode.connected and gate.waiting == 2, timeout=20)
            assert chart.banner.text('ems').startswith('EMS disconnected')
            assert chart.banner.text('feed').startswith('quotes stale since')
            seen['t0'] = time.monotonic()
        seen['took'] = time.monotonic() - seen['t0']

    run_guest_sim(main)
    assert seen['took'] < 3
