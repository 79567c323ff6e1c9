"""Chart rendering benchmark: 1,000,000 bars, offscreen.

Measures (and prints) with `QT_QPA_PLATFORM=offscreen`:

- full view: render the whole 1M-bar chart into a 1600x900 QImage;
- pan / zoom: per-frame time (view change + render) while panning and
  zooming the full 1M view and a 2,000-bar view, p50/p99 over N frames
  (target <= 16 ms);
- last-bar update: `update_quote()` with a trade tick + the repaint it
  causes (target <= 2 ms), measured as the repaint the window system would
  do (process events on the shown window) and as a full offscreen render;
- cold start to the first painted frame of a fresh process
  (`measure_cold_start_first_frame`): a chart window from a script
  (rendering only), and `piker chart btcusdt.sim` in a private environment
  (fresh config dir, free registry port: it starts pikerd and brokerd.sim
  itself, loads history, paints, then closes cleanly).

With `--indicators sma,rsi` the same figures are taken with those
indicators drawn (an SMA overlay and an RSI subplot), each tick also
updating them (the engine's live-bar step plus the chart's redraw).

Usage: `uv run python bench/chart.py [--bars N] [--frames N] [--indicators NAMES] [--blotters]`
(`--blotters`: the same figures with the blotter docks open and full),
`--cold-start-only`, `--store-cold-start` (first run of `piker chart`
on an empty store vs later runs from the store, sim and fake Binance),
`--screenshot PNG` (docs/chart.png),
`--indicators-screenshot PNG` (docs/chart_indicators.png), `--linked-screenshot
PNG` (docs/chart_linked.png) and
`--order-mode-screenshot PNG` (docs/order_mode.png, a real session driven
by the sim market control) and `--blotters-screenshot PNG`
(docs/chart_blotters.png, likewise).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault('QT_QPA_PLATFORM', 'offscreen')

import numpy as np  # noqa: E402

W, H = 1600, 900


def random_ohlc(n: int, seed: int = 0, start: int = 1_600_000_000, tf: int = 60) -> np.ndarray:
    """A random-walk OHLC history in the `open_history()` layout."""
    from piker.ui import OHLC_DTYPE

    rng = np.random.default_rng(seed)
    close = 30_000 + np.cumsum(rng.normal(0, 15, n))
    open_ = np.empty(n)
    open_[0] = close[0]
    open_[1:] = close[:-1]
    wick = np.abs(rng.normal(0, 8, (2, n)))
    arr = np.empty(n, dtype=OHLC_DTYPE)
    arr['time'] = start + np.arange(n, dtype=np.int64) * tf
    arr['open'] = open_
    arr['close'] = close
    arr['high'] = np.maximum(open_, close) + wick[0]
    arr['low'] = np.minimum(open_, close) - wick[1]
    arr['volume'] = rng.gamma(2.0, 50.0, n)
    return arr


def _stats(ms: list[float]) -> str:
    a = np.asarray(ms)
    return f'p50 {np.percentile(a, 50):6.2f} ms  p99 {np.percentile(a, 99):6.2f} ms  max {a.max():6.2f} ms'


class _Bench:
    def __init__(self, bars: int, blotters: bool = False,
                 indicators: list[str] | None = None) -> None:
        from pyqtgraph.Qt import QtGui

        from piker.ui import MainWindow, get_qapp

        self.app = get_qapp()
        t0 = time.perf_counter()
        self.history = random_ohlc(bars)
        self.gen_s = time.perf_counter() - t0
        self.cockpit = None
        if blotters:
            from piker.ui._app import ChartWindow
            self.win = ChartWindow()
        else:
            self.win = MainWindow()
        t0 = time.perf_counter()
        self.chart = self.win.add_chart('btcusdt.sim', self.history)
        self.load_s = time.perf_counter() - t0
        if blotters:
            self.cockpit = fill_blotters(self.win, float(self.history['close'][-1]))
        self.fsp = None
        if indicators:
            self._add_indicators(indicators)
        self.win.resize(W, H)
        self.win.show()
        self._flush()
        self.img = QtGui.QImage(W, H, QtGui.QImage.Format.Format_ARGB32_Premultiplied)
        self.QPainter = QtGui.QPainter

    def _add_indicators(self, names: list[str]) -> None:
        """Draw `names` on the chart from a full compute (what the chart's
        indicator actor sends first); ticks then go through the same
        engine (`Engine.apply` of the live bar: the actor's share) and
        the chart applies its output delta (the UI's share)."""
        from piker.fsp import Delta, Engine, select
        from piker.ui._indicators import ChartIndicators

        self.engine = Engine([select(n) for n in names])
        t0 = time.perf_counter()
        out = self.engine.apply(Delta(0, {'ohlc': self.history}))
        self.fsp_compute_s = time.perf_counter() - t0
        self.fsp = ChartIndicators(self.chart)
        self.fsp.set_info(self.engine.describe())
        t0 = time.perf_counter()
        self.fsp.apply(out)
        self.fsp_apply_s = time.perf_counter() - t0
        self.fsp_names = [s.key for s in self.engine.selected]

    def tick_indicators(self) -> None:
        if self.fsp is None:
            return
        delta = self.fsp.bars_delta()
        if delta is not None:
            self.fsp.apply(self.engine.apply(delta))

    def _flush(self) -> None:
        for _ in range(3):
            self.app.processEvents()

    def render(self) -> None:
        """Paint the whole window into the offscreen image (a full frame)."""
        p = self.QPainter(self.img)
        self.win.render(p)
        p.end()

    def timed(
        self, step: Callable[[], None], frames: int, repaint: bool = False,
    ) -> list[float]:
        """ms per frame of `step` + a full window render, or (`repaint`) +
        the repaint a display does: only the regions that changed (the
        chart; docks only where a cell changed)."""
        out = []
        for _ in range(frames):
            t0 = time.perf_counter()
            step()
            if repaint:
                self._flush()
            else:
                self.render()
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    def full_view(self) -> None:
        n = len(self.chart.model)
        self.chart.view.setXRange(-0.5, n - 0.5, padding=0)
        self._flush()

    def run(self, frames: int) -> None:
        chart, view = self.chart, self.chart.view
        n = len(chart.model)
        print(f'bars: {n:,}  window: {W}x{H}  Qt platform: {os.environ["QT_QPA_PLATFORM"]}')
        if self.cockpit is not None:
            cp = self.cockpit
            print(f'blotters open: {len(cp.orders.rows)} orders, {len(cp.fills.shown())} of '
                  f'{len(cp.fills.fills):,} fills shown, {len(cp.positions.rows)} positions; '
                  f'chart pane {self.chart.width()}x{self.chart.height()}')
        print(f'history generate {self.gen_s * 1e3:.1f} ms, load into chart {self.load_s * 1e3:.1f} ms')
        if self.fsp is not None:
            self.fsp.bars_delta()       # the full history was sent: only ticks from now on
            print(f'indicators {", ".join(self.fsp_names)}: full compute (actor side) '
                  f'{self.fsp_compute_s * 1e3:.0f} ms, drawn in {self.fsp_apply_s * 1e3:.1f} ms')

        self.full_view()
        self.render()  # warm caches, fonts
        full = self.timed(lambda: None, frames)
        # force a re-decimation + bulk rebuild each frame: drop the caches
        def rebuild() -> None:
            chart.model._dec_key = None
            chart.ohlc_item._key = None
            chart.volume_item._key = None
        cold = self.timed(rebuild, max(10, frames // 5))
        print(f'full view render (1M bars, cached decimation): {_stats(full)}')
        print(f'full view render (1M bars, re-decimated):      {_stats(cold)}')

        def pan_step(frac: float) -> Callable[[], None]:
            state = {'dir': 1.0, 'i': 0}

            def step() -> None:
                state['i'] += 1
                if state['i'] % 20 == 0:
                    state['dir'] *= -1
                view.pan(frac * state['dir'])
            return step

        def zoom_step() -> Callable[[], None]:
            state = {'i': 0}

            def step() -> None:
                state['i'] += 1
                view.zoom(1.1 if (state['i'] // 10) % 2 else 1 / 1.1, anchor=n / 2)
            return step

        self.full_view()
        view.zoom(0.9, anchor=n / 2)
        pan_full = self.timed(pan_step(0.01), frames)
        self.full_view()
        zoom_full = self.timed(zoom_step(), frames)
        view.show_bars(2000)
        self._flush()
        pan_2k = self.timed(pan_step(0.02), frames)
        zoom_2k = self.timed(zoom_step(), frames)
        view.show_bars(200)
        self._flush()
        pan_200 = self.timed(pan_step(0.05), frames)
        print(f'pan  (~900k bars in view): {_stats(pan_full)}')
        print(f'zoom (1M <-> 400k bars):   {_stats(zoom_full)}')
        print(f'pan  (2,000 bars):         {_stats(pan_2k)}')
        print(f'zoom (2,000 bars):         {_stats(zoom_2k)}')
        print(f'pan  (200 bars):           {_stats(pan_200)}')
        view.show_bars(2000)
        self._flush()
        pan_2k_r = self.timed(pan_step(0.02), frames, repaint=True)
        zoom_2k_r = self.timed(zoom_step(), frames, repaint=True)
        print(f'pan  (2,000 bars) + window repaint: {_stats(pan_2k_r)}')
        print(f'zoom (2,000 bars) + window repaint: {_stats(zoom_2k_r)}')

        self.last_bar_update(frames)

    def last_bar_update(self, frames: int) -> None:
        chart = self.chart
        self.full_view()
        chart.view.show_bars(300)
        self._flush()
        last = chart.model.last
        t_ns = int(last['time']) * 1_000_000_000 + 1
        base = float(last['close'])
        rng = np.random.default_rng(1)
        prices = base + rng.normal(0, 2, frames)

        def quote(p: float) -> dict:
            return {
                'symbol': chart.fqme, 'last': p, 'bid': p - 0.5, 'ask': p + 0.5,
                'bsize': 1.0, 'asize': 1.0, 'volume': 0.0, 'time_ns': t_ns,
                'ticks': [{'type': 'trade', 'price': p, 'size': 0.1}],
            }

        cp = self.cockpit

        def apply(p: float) -> None:
            q = quote(p)
            chart.update_quote(q)
            self.tick_indicators()
            if cp is not None:
                # worst case: the P&L cells of every held row change every
                # frame, and the frame's batch is flushed at once
                cp.on_quote(chart.fqme, q)
                cp.batch.flush()

        for p in prices[:5]:  # warm up
            apply(p)
            self._flush()
        apply_ms, repaint_ms, render_ms = [], [], []
        for p in prices:
            t0 = time.perf_counter()
            apply(p)
            t1 = time.perf_counter()
            self._flush()
            t2 = time.perf_counter()
            apply_ms.append((t1 - t0) * 1e3)
            repaint_ms.append((t2 - t0) * 1e3)
        for p in prices:
            t0 = time.perf_counter()
            apply(p)
            self.render()
            render_ms.append((time.perf_counter() - t0) * 1e3)
        print(f'last-bar update, apply only:              {_stats(apply_ms)}')
        print(f'last-bar update + window repaint:         {_stats(repaint_ms)}')
        print(f'last-bar update + full {W}x{H} render:  {_stats(render_ms)}')


def fill_blotters(win, price: float, orders: int = 40, fills: int = 5000, markets: int = 6):
    """Open the blotter docks on `win` with a trader's day in them: resting
    orders of several clients, `fills` fills (one page shown) and positions
    in `markets` markets, one of them the chart's (its P&L follows quotes)."""
    import uuid
    from datetime import UTC, datetime
    from pathlib import Path

    from piker.accounting import Transaction, TransactionLedger
    from piker.clearing._messages import BrokerdPosition, Order, Status
    from piker.ui._cockpit import Cockpit

    cp = Cockpit(win, extra_docks=[win.dock])
    rng = np.random.default_rng(5)
    for i in range(orders):
        side = 'buy' if i % 2 else 'sell'
        off = (1 + i) * (-4.0 if side == 'buy' else 4.0)
        req = Order(oid=str(uuid.uuid4()), symbol='btcusdt.sim', action=side,
                    exec_mode='live' if i % 3 else 'dark', price=round(price + off, 1),
                    size=0.01 * (1 + i % 4), account='paper', brokers=['sim'])
        cp.on_msg(Status(oid=req.oid, resp='open', time_ns=time.time_ns(), req=req))
    t0 = time.time() - fills * 30
    # a ledger in memory (its file, never written, in a scratch dir)
    scratch = Path(tempfile.mkdtemp(prefix='piker-bench-ledger-'))
    ledger = TransactionLedger('sim', 'paper', [
        Transaction(fqme='btcusdt.sim', tid=f'b{i}', size=float(rng.choice([-0.01, 0.01])),
                    price=price + float(rng.normal(0, 50)), cost=0.05,
                    dt=datetime.fromtimestamp(t0 + 30 * i, UTC))
        for i in range(fills)
    ], path=scratch / 'trades.toml')
    cp.add_ledger(ledger)
    syms = ['btcusdt.sim'] + [f'm{i}usdt.sim' for i in range(1, markets)]
    for i, sym in enumerate(syms):
        cp.on_msg(BrokerdPosition(broker='sim', account='paper', symbol=sym,
                                  size=0.05 * (i + 1), avg_price=price - 20 * i))
        cp.on_quote(sym, {'last': price - 20 * i + 5})
    cp.batch.flush()
    return cp


_COLD_START_SCRIPT = '''
import os, sys, time
t_spawn = float(sys.argv[1])
sys.path.insert(0, os.getcwd())
from bench.chart import random_ohlc
from piker.ui import MainWindow, get_qapp
app = get_qapp()
win = MainWindow()
def done():
    print(f'FIRST_FRAME {time.time() - t_spawn:.6f}', flush=True)
    app.quit()
win.sig_first_frame.connect(done)
win.add_chart('btcusdt.sim', random_ohlc(5000))
win.resize(1600, 900)
win.show()
app.exec() if hasattr(app, 'exec') else app.exec_()
'''


def measure_cold_start_first_frame(
    cmd: list[str] | None = None,
    runs: int = 3,
    env: dict[str, str] | None = None,
    marks: list[dict[str, float]] | None = None,
) -> list[float]:
    """Seconds from process spawn to the first painted chart frame, per run.

    `cmd` must print `FIRST_FRAME <seconds since the epoch time in argv[-1]>`
    (MainWindow.sig_first_frame gives the moment) and exit. Default: a fresh
    Python process that opens a chart window on 5,000 bars (rendering
    only). `env` is merged over `os.environ` (a callable is called per run
    for a fresh private environment).
    """
    cmd = cmd or [sys.executable, '-c', _COLD_START_SCRIPT]
    out = []
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for _ in range(runs):
        run_env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get('QT_QPA_PLATFORM', 'offscreen'))
        run_env.update(env() if callable(env) else (env or {}))
        t0 = time.time()
        proc = subprocess.run(
            [*cmd, repr(t0)], capture_output=True, text=True, env=run_env, cwd=root, timeout=90,
        )
        got = {line.split()[0]: float(line.split()[1]) for line in proc.stdout.splitlines()
               if line.startswith(('FIRST_FRAME ', 'FEED_CHARTS '))}
        if marks is not None:
            marks.append(got)
        if 'FIRST_FRAME' in got:
            out.append(got['FIRST_FRAME'])
        else:
            raise RuntimeError(f'no FIRST_FRAME from {cmd[:3]}...: {proc.stderr[-2000:]}')
    return out


def private_env() -> dict[str, str]:
    """A fresh config dir and a free registry port: nothing shared with a user's pikerd."""
    import tempfile

    from piker.testing import free_port

    return {
        'PIKER_CONFIG_DIR': tempfile.mkdtemp(prefix='piker-bench-'),
        'PIKER_REGISTRY_ADDR': f'127.0.0.1:{free_port()}',
    }


def piker_chart_cmd(fqme: str = 'btcusdt.sim') -> list[str]:
    """`piker chart FQME` reporting its first frame (then closing cleanly)."""
    exe = os.path.join(os.path.dirname(sys.executable), 'piker')
    return [exe, 'chart', fqme, '--first-frame-t0']


INDICATORS_CONF = '''[indicators]
default = [{name = "sma", length = 20}, "vwap", "rsi"]
'''


def indicators_screenshot(path: str, conf: str = INDICATORS_CONF, extra: list[str] | None = None) -> None:
    """`piker chart btcusdt.sim --screenshot` in a private environment whose
    conf.toml picks indicators (an SMA and VWAP overlay, an RSI subplot),
    computed by the chart's indicator actor as in any session."""
    env = dict(os.environ, **private_env())
    with open(os.path.join(env['PIKER_CONFIG_DIR'], 'conf.toml'), 'w') as f:
        f.write(conf)
    exe = os.path.join(os.path.dirname(sys.executable), 'piker')
    subprocess.run(
        [exe, 'chart', 'btcusdt.sim', *(extra or []), '--screenshot', os.path.abspath(path),
         '--after', '4'],
        env=env, check=True, timeout=120,
    )


def screenshot(path: str, bars: int = 5000, show: int = 240) -> None:
    """Save a screenshot of a live-looking chart: `bars` of history, the last
    `show` in view, bid/ask/last markers, the crosshair and a status line."""
    from piker.ui import MainWindow, get_qapp

    app = get_qapp()
    win = MainWindow()
    hist = random_ohlc(bars, seed=7)
    chart = win.add_chart('btcusdt.sim', hist)
    win.add_chart('ethusdt.sim', random_ohlc(bars, seed=8))
    win.add_chart('simco.sim', random_ohlc(bars, seed=9))
    win.set_current('btcusdt.sim')
    win.resize(W, H)
    win.show()
    chart.show_bars(show)
    last = chart.model.last
    p = last['close'] + 6.0
    chart.update_quote({
        'symbol': chart.fqme, 'last': p, 'bid': p - 2.5, 'ask': p + 2.5,
        'bsize': 3.0, 'asize': 1.2, 'volume': 0.0,
        'time_ns': int(last['time'] + 20) * 1_000_000_000,
        'ticks': [{'type': 'trade', 'price': p, 'size': 40.0}],
    })
    n = len(chart.model)
    i = n - max(3, show // 4)
    chart.move_cursor(i, float(chart.model['high'][i]) + 10)
    win.status.set_order_status('3f2a', 'open: buy 0.5 @ 30,120.00 (paper)')
    win.status.begin_group('cancelling 3 orders')
    win.status.end_group('cancelled 3 orders')
    for _ in range(5):
        app.processEvents()
    if not win.grab().save(path):
        raise OSError(f'could not write {path}')
    print(f'saved {path}')


ORDER_MODE_FQME = 'btcusdt.sim'


async def _order_mode_scene(app, shot: str, env_note: list[str]) -> None:
    """Drive a real chart session for `docs/order_mode.png`.

    The sim market control takes the wheel between stretches of random
    walk: a marketable live buy fills (up arrow, position line), resting
    dark and live orders and an alert are placed through order mode, part
    of the position is sold (down arrow), then a staged buy follows the
    cursor while the screenshot is taken.
    """
    import trio

    from piker.brokers.sim import open_market_control

    await app.ready.wait()
    with trio.fail_after(30):
        await app.ems_ready[ORDER_MODE_FQME].wait()
    mode = app.modes[ORDER_MODE_FQME]
    chart = app.win.chart(ORDER_MODE_FQME)
    tick = float(mode.mkt.price_tick)

    async def until(pred, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not pred():
                await trio.sleep(0.02)

    def place(action: str, price: float, live: bool) -> str:
        mode.stage(action, live=live)
        oid = mode.submit(price)
        mode.unstage()
        assert oid is not None, f'{action} @ {price} not sent'
        return oid

    async with open_market_control(ORDER_MODE_FQME, resume_on_exit=False) as ctl:
        await trio.sleep(4.0)                      # let the walk print a few bars
        q = await ctl.push(bsize=3, asize=3)
        p0 = float(q['last'])
        ask = float(q['ask'])
        buy = place('buy', ask + 5 * tick, live=True)   # marketable: fills at the ask
        await until(lambda: buy not in mode.lines and mode.positions.holdings)
        await ctl.resume()
        await trio.sleep(2.5)
        q = await ctl.push(bsize=3, asize=3)
        p1 = float(q['last'])
        place('buy', p1 - 14.0, live=False)              # dark buy below
        place('sell', p1 + 16.0, live=False)             # dark sell above
        place('sell', p1 + 9.0, live=True)               # live sell resting above
        place('alert', p1 + 22.0, live=False)
        await until(lambda: all(not ol.line.pending for ol in mode.lines.values()))
        await ctl.resume()
        await trio.sleep(2.5)
        q = await ctl.push(bsize=3, asize=3)
        # sell half the position at the bid: a down arrow
        held = mode.positions.holdings['paper'].size
        mode.pane.set_sizing(slots=8)
        sell = place('sell', float(q['bid']) - 5 * tick, live=True)
        await until(lambda: sell not in mode.lines and mode.positions.holdings['paper'].size < held)
        mode.pane.set_sizing(slots=4)
        await ctl.resume()
        await trio.sleep(2.0)
        q = await ctl.push(bsize=3, asize=3)
        await trio.sleep(0.3)
        # frame the orders: manual price scale around every line
        prices = [ol.price for ol in mode.lines.values()]
        prices += [ln.price for ln in mode.positions.lines.values()]
        lo, hi = min(prices + [p0]) - 6.0, max(prices + [p0]) + 6.0
        chart.show_bars(90)
        chart.view.auto_y = False
        chart.view.setYRange(lo, hi, padding=0)
        # a staged buy at the cursor, as while holding `f`
        n = len(chart.model)
        cursor = float(q['last']) - 6.0
        chart.move_cursor(n - 25, cursor)
        mode.stage('buy', live=False)
        await trio.sleep(0.5)
        app.save_screenshot(shot)
        mode.unstage()
        await mode_cancel_all(mode, until)
    env_note.append('ok')


async def mode_cancel_all(mode, until) -> None:
    """Leave no orders behind in the private tree (tidy teardown)."""
    if mode.lines:
        mode.cancel_all()
        await until(lambda: not mode.lines)


def order_mode_screenshot(path: str) -> None:
    """Render `docs/order_mode.png` from a real session in a private tree."""
    session_screenshot(_order_mode_scene, path, (W, H))


def session_screenshot(scene, path: str, size: tuple[int, int]) -> None:
    """Run a chart session in a private tree, driven by `scene(app, path,
    note)`, which saves the screenshot and appends 'ok' to `note`."""
    from piker.testing import free_port
    from piker.ui._app import run_chart

    env = {
        'PIKER_CONFIG_DIR': tempfile.mkdtemp(prefix='piker-shot-'),
        'PIKER_REGISTRY_ADDR': f'127.0.0.1:{free_port()}',
    }
    os.environ.update(env)
    # the sim's 1s history is flat from the minute boundary before its
    # market starts until the walk runs: start just after a boundary
    time.sleep((60.0 - time.time() % 60.0 + 0.2) % 60.0)
    note: list[str] = []
    run_chart(
        [ORDER_MODE_FQME], driver=lambda app: scene(app, path, note),
        timeframe=1, handle_signals=False, size=size,
    )
    if note != ['ok']:
        raise RuntimeError(f'{scene.__name__} did not complete')


async def _blotters_scene(app, shot: str, note: list[str]) -> None:
    """Drive a real session for `docs/chart_blotters.png`: a script (another
    client) rests orders, the chart buys and sells at the market with
    alt+f / alt+d between stretches of random walk (fills, a position with
    live and realised P&L), rests a dark order of its own, and a fill and
    a refusal leave lines in the log pane."""
    import trio

    from piker.brokers.sim import open_market_control
    from piker.clearing import open_ems, wait_for_status

    await app.ready.wait()
    with trio.fail_after(30):
        await app.ems_ready[ORDER_MODE_FQME].wait()
    mode, cp = app.modes[ORDER_MODE_FQME], app.cockpit
    flat = cp.flatteners[ORDER_MODE_FQME]
    chart = app.win.chart(ORDER_MODE_FQME)

    async def until(pred, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not pred():
                await trio.sleep(0.02)

    async with (
        open_market_control(ORDER_MODE_FQME, resume_on_exit=False) as ctl,
        open_ems(ORDER_MODE_FQME) as (sc, strades, _pps, _accts, _dialogs),
    ):
        await trio.sleep(3.0)
        for action, slots in (('buy', 4), ('buy', 8), ('sell', 8), ('buy', 4)):
            await ctl.push(bsize=3, asize=3)
            mode.pane.set_sizing(slots=slots)
            n = len(cp.fills.fills)
            assert flat.market(action) is not None
            await until(lambda n=n: len(cp.fills.fills) > n and not mode.lines)
            await ctl.resume()
            await trio.sleep(2.0)
        mode.pane.set_sizing(slots=4)
        q = await ctl.push(bsize=3, asize=3)
        last = float(q['last'])
        for side, off, size, ex in (('buy', -18.0, 0.01, 'live'), ('sell', 24.0, 0.02, 'dark'),
                                    ('buy', -31.0, 0.015, 'dark')):
            o = sc.mk_order(side, round(last + off, 1), size, exec_mode=ex)
            await sc.send(o)
            await wait_for_status(strades, o.oid, {'open', 'dark_open'})
        mode.stage('sell')
        mode.submit(round(last + 12.0, 1))
        mode.unstage()
        await until(lambda: len(cp.orders.rows) == 4 and all(
            not ol.line.pending for ol in mode.lines.values()))
        await ctl.resume()
        await trio.sleep(1.5)
        q = await ctl.push(bsize=3, asize=3)
        await trio.sleep(0.5)
        chart.show_bars(90)
        cp.batch.flush()
        app.save_screenshot(shot)
        mode.cancel_all()
        await until(lambda: not mode.lines)
        held = mode.positions.holdings.get('paper')
        if held is not None:
            flat.confirm = lambda *_: True
            flat.flatten()
            await until(lambda: not mode.positions.holdings)
    note.append('ok')


def blotters_screenshot(path: str) -> None:
    """Render `docs/chart_blotters.png` from a real session in a private tree."""
    session_screenshot(_blotters_scene, path, (1920, 1080))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bars', type=int, default=1_000_000)
    ap.add_argument('--frames', type=int, default=50)
    ap.add_argument('--no-cold-start', action='store_true')
    ap.add_argument('--indicators', default='', metavar='NAMES',
                    help='comma-separated indicators drawn during the frame bench, '
                         'e.g. sma,rsi (an overlay and a subplot)')
    ap.add_argument('--cold-start-only', action='store_true',
                    help='only measure cold start to the first painted frame')
    ap.add_argument('--store-cold-start', action='store_true',
                    help='only: first vs later runs of `piker chart` in one env (store warm)')
    ap.add_argument('--screenshot', metavar='PNG', help='only save a screenshot to PNG')
    ap.add_argument('--order-mode-screenshot', metavar='PNG',
                    help='only save a screenshot of order mode in a real session to PNG')
    ap.add_argument('--indicators-screenshot', metavar='PNG',
                    help='only save a screenshot of a session with indicators to PNG')
    ap.add_argument('--linked-screenshot', metavar='PNG',
                    help='only save a screenshot of a --linked session to PNG')
    ap.add_argument('--shot-bars', type=int, default=5000, help='screenshot: bars of history')
    ap.add_argument('--shot-show', type=int, default=240, help='screenshot: bars in view')
    ap.add_argument('--blotters', action='store_true',
                    help='frame times with the blotter docks open and full (40 orders, '
                         '5,000 fills, 6 positions whose P&L follows every quote)')
    ap.add_argument('--blotters-screenshot', metavar='PNG',
                    help='only save a screenshot of the blotters in a real session to PNG')
    args = ap.parse_args()
    if args.screenshot:
        screenshot(args.screenshot, args.shot_bars, args.shot_show)
        return
    if args.indicators_screenshot:
        indicators_screenshot(args.indicators_screenshot)
        return
    if args.linked_screenshot:
        indicators_screenshot(args.linked_screenshot, '', ['--linked'])
        return
    if args.order_mode_screenshot:
        order_mode_screenshot(args.order_mode_screenshot)
        return
    if args.blotters_screenshot:
        blotters_screenshot(args.blotters_screenshot)
        return
    if args.cold_start_only:
        cold_start_report()
        return
    if args.store_cold_start:
        store_cold_start_report()
        return
    names = [n.strip() for n in args.indicators.split(',') if n.strip()]
    _Bench(args.bars, blotters=args.blotters, indicators=names).run(args.frames)
    if not args.no_cold_start:
        cold_start_report()


def cold_start_report(runs: int = 3) -> None:
    cold = measure_cold_start_first_frame(runs=runs)
    print(f'cold start to first painted frame (script, 5k bars): '
          f'min {min(cold) * 1e3:.0f} ms  runs {[round(c * 1e3) for c in cold]}')
    cold = measure_cold_start_first_frame(piker_chart_cmd(), runs=runs, env=private_env)
    print(f'cold start `piker chart btcusdt.sim` (private env: starts pikerd + '
          f'brokerd.sim, 1,441 bars) to first painted frame: '
          f'min {min(cold) * 1e3:.0f} ms  median {sorted(cold)[len(cold) // 2] * 1e3:.0f} ms  '
          f'runs {[round(c * 1e3) for c in cold]}')


def store_cold_start_report(runs: int = 3) -> None:
    """`piker chart FQME` run after run in one private env: the first run
    opens on an empty store (its history comes from the backend, through
    brokerd), the later ones on the store the first one filled."""
    from piker.testing.fakes.binance import FakeBinanceThread

    for fqme in ('btcusdt.sim', 'btcusdt.binance'):
        env = private_env()
        fake = None
        if fqme.endswith('.binance'):
            fake = FakeBinanceThread(seed=1, quote_rate=10.0).start()
            with open(os.path.join(env['PIKER_CONFIG_DIR'], 'brokers.toml'), 'w') as f:
                f.write(fake.config_toml(accounts=('paper',)))
        marks: list[dict[str, float]] = []
        try:
            measure_cold_start_first_frame(piker_chart_cmd(fqme), runs=runs, env=env,
                                           marks=marks)
        finally:
            if fake is not None:
                fake.stop()
        # first frame, and when the feed (pikerd, brokerd, history) had drawn
        # the charts: from the store the frame comes first, before any daemon
        def fmt(m: dict[str, float]) -> str:
            feed = (f'{m["FEED_CHARTS"] * 1e3:.0f} ms' if 'FEED_CHARTS' in m
                    else 'not yet: painted from the store before any daemon answered')
            return f'{m["FIRST_FRAME"] * 1e3:.0f} ms (charts from the feed: {feed})'

        print(f'`piker chart {fqme}` first painted frame: first run (empty store) '
              f'{fmt(marks[0])}; later runs ' + '; '.join(fmt(m) for m in marks[1:]))


if __name__ == '__main__':
    main()
