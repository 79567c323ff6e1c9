"""Order types, time in force and reduce-only through the real tree.

Every test runs twice: on the sim paper venue (`paper_sim`) and live on
the fake Binance (`binance_sim`): the types are emsd's, so they behave the
same on both. Prices are driven by market control, never by sleeps.
"""
from __future__ import annotations

import time
from typing import Any

import pytest

from piker.clearing import Status, Trail
from piker.clearing._journal import Journal

# on the price grid of both markets (sim 0.1, Binance 0.01)
BASE = dict(bid=99.9, ask=100.0, last=100.0, bsize=5.0, asize=5.0)
PAD = 5  # emsd's default dark pad ticks


class Venue:
    """One venue's market, account and market control, behind one face."""

    def __init__(self, kind: str, sim: Any) -> None:
        self.kind, self.sim = kind, sim
        self.fqme = 'btcusdt.sim' if kind == 'paper' else 'btcusdt.binance'
        self.account = 'paper' if kind == 'paper' else 'spot'
        self.mode = 'paper' if kind == 'paper' else 'live'
        self.broker = 'sim' if kind == 'paper' else 'binance'
        self.relay = 'paperboi.sim' if kind == 'paper' else 'brokerd.binance'
        self.tick = 0.1 if kind == 'paper' else 0.01

    def pad(self, price: float, action: str) -> float:
        """A stop's release price: padded by the dark pad ticks."""
        return round(price + (PAD if action == 'buy' else -PAD) * self.tick, 2)

    def trail(self, amount: float) -> Trail:
        """A trail of `amount` in price, in this market's ticks."""
        return Trail(round(amount / self.tick))

    async def push(self, **quote: float) -> None:
        if self.kind == 'paper':
            await self.sim.push(self.fqme, **quote)
        else:
            self.sim.push(self.fqme, **quote)

    async def open(self) -> Any:
        return await self.sim.open_ems(self.fqme, mode=self.mode)

    async def place(self, ems: Any, action: str, price: float, size: float, **kw: Any) -> str:
        return await ems.place(action, price, size, account=self.account, **kw)

    def position(self, ems: Any) -> float:
        return ems.position(self.fqme, broker=self.broker, account=self.account)


@pytest.fixture(params=['paper', 'binance'])
def venue_run(request):
    """`run(main)`: `await main(Venue)` in a fresh tree of that venue."""
    kind = request.param
    runner = request.getfixturevalue('paper_sim' if kind == 'paper' else 'binance_sim')

    def run(main, **kw: Any) -> Any:
        async def body(sim: Any) -> Any:
            return await main(Venue(kind, sim))
        if kind == 'binance':
            kw.setdefault('fake', {'balances': {'USDT': 100_000, 'BTC': 1}})
        return runner(body, **kw)

    return run


def trigger_of(ems: Any, oid: str) -> float | None:
    """The current trigger of `oid` as this client last heard it."""
    st = ems.dialogs.get(oid)
    return None if st is None else st.trigger


def triggered(ems: Any, oid: str) -> Status:
    (st,) = [s for s in ems.statuses(oid) if s.resp == 'dark_triggered']
    return st


@pytest.mark.timeout(120)
def test_each_type_fires_its_way_on_both_sides(venue_run):
    async def main(v: Venue):
        await v.push(**BASE)
        ems = await v.open()
        stop_buy = await v.place(ems, 'buy', 101.0, 0.1, type='stop')
        stop_sell = await v.place(ems, 'sell', 98.0, 0.1, type='stop')
        tp_sell = await v.place(ems, 'sell', 100.5, 0.1, type='take_profit')
        tp_buy = await v.place(ems, 'buy', 98.5, 0.1, type='take_profit')
        sl_sell = await v.place(ems, 'sell', 97.0, 0.1, type='stop_limit', limit=96.5)
        for oid in (stop_buy, stop_sell, tp_sell, tp_buy, sl_sell):
            st = await ems.wait(oid, 'dark_open')
            assert st.trigger == st.req.price and st.req.exec_mode == 'dark'
        # up: the stop buy and the take-profit sell, nothing else
        await v.push(bid=100.9, ask=101.0, last=101.0, bsize=5.0, asize=5.0)
        await ems.wait(stop_buy, 'closed', timeout=10)
        await ems.wait(tp_sell, 'closed', timeout=10)
        assert triggered(ems, stop_buy).brokerd_msg['submit_price'] == v.pad(101.0, 'buy')
        assert triggered(ems, tp_sell).brokerd_msg['submit_price'] == 100.5  # at the trigger
        # down: the stop sell and the take-profit buy
        await v.push(bid=97.9, ask=98.0, last=98.0, bsize=5.0, asize=5.0)
        await ems.wait(stop_sell, 'closed', timeout=10)
        await ems.wait(tp_buy, 'closed', timeout=10)
        assert triggered(ems, stop_sell).brokerd_msg['submit_price'] == v.pad(97.9, 'sell')
        assert triggered(ems, tp_buy).brokerd_msg['submit_price'] == 98.5
        assert ems.dialogs[sl_sell].resp == 'dark_open'
        await v.push(bid=96.9, ask=97.0, last=96.9, bsize=5.0, asize=5.0)
        await ems.wait(sl_sell, 'closed', timeout=10)
        assert triggered(ems, sl_sell).brokerd_msg['submit_price'] == 96.5  # its limit

    venue_run(main)


@pytest.mark.timeout(120)
def test_trailing_stops_follow_and_never_retreat(venue_run):
    async def main(v: Venue):
        await v.push(**BASE)
        ems = await v.open()
        # a sell trailing 0.50 (in ticks) from the market
        sell = await v.place(ems, 'sell', 0.0, 0.1, type='trailing_stop', trail=v.trail(0.5))
        await ems.until(lambda: trigger_of(ems, sell) == 99.5, timeout=10)
        await v.push(bid=102.0, ask=102.1, last=102.0, bsize=5.0, asize=5.0)
        await ems.until(lambda: trigger_of(ems, sell) == 101.5, timeout=10)
        # pulls back, but not to the trigger: the trigger stays where it was
        await v.push(bid=101.6, ask=101.7, last=101.6, bsize=5.0, asize=5.0)
        await v.push(bid=101.5, ask=101.6, last=101.5, bsize=5.0, asize=5.0)
        st = await ems.wait(sell, 'dark_triggered', timeout=10)
        assert st.brokerd_msg['price'] == 101.5 and st.trigger == 101.5
        await ems.wait(sell, 'closed', timeout=10)
        moves = [s.trigger for s in ems.statuses(sell) if s.resp == 'dark_open']
        assert moves == sorted(moves, key=lambda t: t or 0)  # never moved back
        # a buy trailing 1 %: follows the market down, fires on the way up
        buy = await v.place(ems, 'buy', 0.0, 0.1, type='trailing_stop',
                            trail=Trail(1.0, 'pct'))
        start = 102.6 if v.tick == 0.1 else 102.52  # 101.5 * 1.01, rounded up
        await ems.until(lambda: trigger_of(ems, buy) == start, timeout=10)
        await v.push(bid=99.9, ask=100.0, last=100.0, bsize=5.0, asize=5.0)
        await ems.until(lambda: trigger_of(ems, buy) == 101.0, timeout=10)
        await v.push(bid=100.4, ask=100.5, last=100.5, bsize=5.0, asize=5.0)
        await v.push(bid=100.9, ask=101.0, last=101.0, bsize=5.0, asize=5.0)
        st = await ems.wait(buy, 'dark_triggered', timeout=10)
        assert st.brokerd_msg['price'] == 101.0 and st.trigger == 101.0
        await ems.wait(buy, 'closed', timeout=10)

    venue_run(main)


@pytest.mark.timeout(120)
def test_ioc_fok_and_gtd(venue_run):
    async def main(v: Venue):
        await v.push(bid=99.9, ask=100.0, last=100.0, bsize=5.0, asize=0.05)
        ems = await v.open()
        ioc = await v.place(ems, 'buy', 100.0, 0.1, tif='ioc')
        end = await ems.wait(ioc, {'canceled', 'closed'}, timeout=10)
        assert end.resp == 'canceled' and end.filled == pytest.approx(0.05)
        fok = await v.place(ems, 'buy', 100.0, 0.1, tif='fok')
        end = await ems.wait(fok, {'canceled', 'closed'}, timeout=10)
        assert end.resp == 'canceled' and end.filled == 0
        assert 'fill' not in ems.resps(fok)
        # gtd: a live order is cancelled at its venue, a dark one leaves the book
        soon = time.time_ns() + 2_000_000_000
        live = await v.place(ems, 'buy', 90.0, 0.1, tif='gtd', expires_ns=soon)
        dark = await v.place(ems, 'sell', 50.0, 0.1, type='stop', tif='gtd', expires_ns=soon)
        await ems.wait(live, 'open', timeout=10)
        for oid in (live, dark):
            end = await ems.wait(oid, 'expired', timeout=15)
            assert 'gtd: expired' in end.reason and end.terminal
        assert time.time_ns() >= soon
        # an expiry in the past is refused before anything is sent
        late = await v.place(ems, 'buy', 90.0, 0.1, tif='gtd', expires_ns=soon - 10**10)
        err = await ems.wait(late, 'error')
        assert 'in the past' in err.reason

    venue_run(main)


@pytest.mark.timeout(120)
def test_reduce_only_sizes_down_and_refuses_a_flip(venue_run):
    async def main(v: Venue):
        await v.push(**BASE)
        ems = await v.open()
        buy = await v.place(ems, 'buy', 100.0, 0.2)
        await ems.wait(buy, 'closed', timeout=10)
        # (Binance: the account's BTC balance, reported after its first order)
        await ems.until(lambda: v.position(ems) >= 0.2 - 1e-9, timeout=15)
        pos = v.position(ems)
        # a reduce-only buy would grow the long: refused
        grow = await v.place(ems, 'buy', 90.0, 0.1, reduce_only=True)
        err = await ems.wait(grow, 'error')
        assert 'increase or flip' in err.reason
        # a reduce-only sell bigger than the position is sized down to it
        big = round(pos + 1.0, 6)
        stop = await v.place(ems, 'sell', 95.0, big, type='stop', reduce_only=True)
        st = await ems.wait(stop, 'dark_open')
        assert st.req.size == pytest.approx(pos) and 'sized down' in st.reason
        await v.push(bid=94.9, ask=95.0, last=95.0, bsize=50.0, asize=50.0)
        await ems.wait(stop, 'closed', timeout=10)
        await ems.until(lambda: abs(v.position(ems)) < 1e-9, timeout=15)
        # flat now: a reduce-only order has nothing to reduce
        flat = await v.place(ems, 'sell', 90.0, 0.1, reduce_only=True)
        err = await ems.wait(flat, 'error')
        assert 'no position' in err.reason

    venue_run(main)


@pytest.mark.timeout(150)
def test_every_type_restored_after_emsd_sigkill(venue_run):
    """Kill emsd with each type resting (the trailing stop moved first and
    a gtd order due while it is down); the market crosses the triggers
    meanwhile: after the restore each fires exactly once, at the trigger
    it had (the trail's, not the one it was placed with)."""

    async def main(v: Venue):
        await v.push(**BASE)
        ems = await v.open()
        stop = await v.place(ems, 'sell', 98.0, 0.1, type='stop')
        tp = await v.place(ems, 'sell', 101.0, 0.1, type='take_profit')
        sl = await v.place(ems, 'buy', 101.0, 0.1, type='stop_limit', limit=101.5)
        trail = await v.place(ems, 'sell', 0.0, 0.1, type='trailing_stop',
                              trail=v.trail(0.5))
        await ems.until(lambda: trigger_of(ems, trail) == 99.5, timeout=10)
        await v.push(bid=100.4, ask=100.5, last=100.4, bsize=5.0, asize=5.0)
        await ems.until(lambda: trigger_of(ems, trail) == 99.9, timeout=10)
        gtd = await v.place(ems, 'buy', 50.0, 0.1, type='take_profit', tif='gtd',
                            expires_ns=time.time_ns() + 1_000_000_000)
        for oid in (stop, tp, sl, gtd):
            await ems.wait(oid, 'dark_open')
        await v.sim.flush_journal()
        await v.sim.kill('emsd')
        # while emsd is down: the market crosses every trigger (the
        # take-profit's and stop-limit's up, the stop's and the trail's
        # down), and the gtd expiry passes
        await v.push(bid=101.2, ask=101.3, last=101.2, bsize=5.0, asize=5.0)
        await v.push(bid=97.9, ask=98.0, last=98.0, bsize=5.0, asize=5.0)
        await v.push(bid=99.8, ask=99.9, last=99.8, bsize=5.0, asize=5.0)
        state = await v.sim.until_ems(lambda st: st['restored'], timeout=30)
        assert {stop, tp, sl, trail} <= set(state['armed'])
        ems = await v.open()
        # expired at the restore (its expiry passed meanwhile): not in the
        # handshake, or told as it ends (the journal's timeline is checked below)
        await ems.until(lambda: gtd not in ems.dialogs, timeout=15)
        assert trigger_of(ems, trail) == 99.9  # restored where it had trailed to
        # the market still below the trail's trigger (99.90) but above where
        # it started (99.50): it fires on the next quote
        await v.push(bid=99.8, ask=99.9, last=99.8, bsize=5.0, asize=5.0)
        st = await ems.wait(trail, 'dark_triggered', timeout=10)
        assert st.brokerd_msg['price'] == 99.8 and st.trigger == 99.9
        await ems.wait(trail, 'closed', timeout=10)
        await v.push(bid=101.2, ask=101.3, last=101.2, bsize=5.0, asize=5.0)
        await ems.wait(tp, 'closed', timeout=10)
        await ems.wait(sl, 'closed', timeout=10)
        assert ems.dialogs[stop].resp == 'dark_open'  # not reached
        await v.push(bid=97.9, ask=98.0, last=98.0, bsize=5.0, asize=5.0)
        await ems.wait(stop, 'closed', timeout=10)
        await v.sim.flush_journal()
        with Journal.open(readonly=True) as journal:
            assert journal.active_dialogs() == []
            for oid in (stop, tp, sl, trail):
                timeline = [s.resp for s in journal.dialog(oid).events]
                assert timeline.count('dark_triggered') == 1, (oid, timeline)
                assert timeline[-1] == 'closed', (oid, timeline)
            gtd_end = journal.dialog(gtd).events[-1]
            assert gtd_end.resp == 'expired' and 'gtd: expired' in gtd_end.reason

    venue_run(main, timeout=120)


@pytest.mark.timeout(120)
def test_kraken_ioc_and_no_fok(kraken_sim):
    """Kraken spot: ioc is its `time_in_force=ioc`; it has no fok, so emsd
    refuses one before anything reaches Kraken (and a stop released as
    ioc goes out as one)."""
    fqme = 'btcusd.kraken'

    async def main(sim):
        sim.push(fqme, bid=100, ask=101, bsize=1, asize=0.3)
        ems = await sim.open_ems(fqme)
        ioc = await ems.place('buy', 101.0, 0.5, account='spot', tif='ioc')
        end = await ems.wait(ioc, {'canceled', 'closed'}, timeout=10)
        assert end.resp == 'canceled' and end.filled == pytest.approx(0.3)
        (order,) = [o for o in sim.orders() if o.get('cl_ord_id') == ioc]
        assert order['time_in_force'] == 'ioc'
        fok = await ems.place('buy', 101.0, 0.1, account='spot', tif='fok')
        err = await ems.wait(fok, 'error')
        assert "cannot honour time in force 'fok'" in err.reason and 'gtc, ioc' in err.reason
        assert not [o for o in sim.orders() if o.get('cl_ord_id') == fok]
        # a gtc order there is unchanged
        gtc = await ems.place('buy', 90.0, 0.1, account='spot')
        await ems.wait(gtc, 'open')
        (order,) = [o for o in sim.orders() if o.get('cl_ord_id') == gtc]
        assert order['time_in_force'] == 'gtc'
        await ems.client.cancel(gtc)
        await ems.wait(gtc, 'canceled')

    kraken_sim(main, fake={'balances': {'ZUSD': 10_000}})
