"""The binance backend through the real actor tree, against the fake
Binance (`piker.testing.binance_sim`): every order flow of DESIGN.md
section 5 in live mode, history, feed reconnects, the order report after
a brokerd crash, rate limits, bad keys, and paper trading on its quotes."""
from __future__ import annotations

import pytest
import trio

FQME = 'btcusdt.binance'


def test_live_fill_partial_and_cancel(binance_sim, capfd):
    keys: list[str] = []

    async def main(sim):
        keys.extend([sim.fake.api_key, sim.fake.api_secret])
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=0.3)
        ems = await sim.open_ems(FQME)
        assert 'spot' in ems.accounts
        # marketable: fills at the touch, 0.3 then (after a new ask) the rest
        oid = await ems.place('buy', 101.0, 0.5, account='spot')
        fill = await ems.wait(oid, 'fill')
        assert fill.brokerd_msg['price'] == 101.0 and fill.brokerd_msg['size'] == 0.3
        assert fill.filled == pytest.approx(0.3) and fill.remaining == pytest.approx(0.2)
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        await ems.wait(oid, 'closed')
        resps = ems.resps(oid)
        assert resps[0] == 'pending' and resps.count('fill') == 2, resps
        # both fills in piker's ledger, by Binance trade id
        tids = {t['id'] for t in sim.fake.trades('BTCUSDT')}
        with trio.fail_after(5):  # written just after the fills are reported
            while len(sim.ledger('binance', 'spot')) < 2:
                await trio.sleep(0.02)
        assert set(sim.ledger('binance', 'spot')) == {f'BTCUSDT:{t}' for t in tids}
        # resting, then cancelled
        rest = await ems.place('buy', 90.0, 0.1, account='spot')
        await ems.wait(rest, 'open')
        await ems.client.cancel(rest)
        await ems.wait(rest, 'canceled')
        assert not sim.orders(FQME, open_only=True)
        await ems.wait_position(FQME, 0.5, account='spot')

    binance_sim(main, fake={'balances': {'USDT': 10_000}}, loglevel='info')
    out, err = capfd.readouterr()
    assert 'brokerd.binance' in out + err  # the daemons' logs were captured
    assert not [k for k in keys if k in out + err]  # and hold no key or secret


def _chain(sim, oid: str) -> list[dict]:
    """The fake's Binance orders whose client id carries dialog `oid`."""
    hexid = oid.replace('-', '')
    return [o for o in sim.orders(FQME) if o['clientOrderId'][2:34] == hexid]


def test_live_modify_keeps_one_venue_order_and_cancel_before_ack(binance_sim):
    async def main(sim):
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        ems = await sim.open_ems(FQME)
        oid = await ems.place('buy', 90.0, 0.2, account='spot')
        opened = await ems.wait(oid, 'open')
        mark = ems.mark()
        await ems.client.update(oid, price=95.0)
        st = await ems.wait_for(
            lambda m: getattr(m, 'oid', None) == oid and m.resp == 'open'
            and m.req.price == 95.0, since=mark)
        assert st.reqid == opened.reqid  # one dialog, one venue order id
        chain = _chain(sim, oid)
        assert [o['status'] for o in chain] == ['CANCELED', 'NEW']
        assert chain[1]['price'].startswith('95.')
        assert len(sim.orders(FQME, open_only=True)) == 1
        # it still fills as the one order it is
        sim.push(FQME, bid=94, ask=95, bsize=1, asize=1)
        await ems.wait(oid, 'closed')
        assert ems.resps(oid).count('closed') == 1

        # a modify Binance refuses after cancelling the old order (the new
        # one is too big for the balance): the dialog ends, saying why
        big = await ems.place('buy', 90.0, 0.1, account='spot')
        await ems.wait(big, 'open')
        await ems.client.update(big, size=1000.0)
        gone = await ems.wait(big, 'canceled', timeout=10)
        assert 'insufficient balance' in gone.reason, gone.reason
        assert [o['status'] for o in _chain(sim, big)] == ['CANCELED']

        # a cancel sent before Binance answered the order is honoured
        sim.fake.faults.delay_acks(0.5)
        late = await ems.place('buy', 80.0, 0.1, account='spot')
        await ems.client.cancel(late)
        await ems.wait(late, 'canceled', timeout=10)
        sim.fake.faults.delay_acks(0)
        assert not sim.orders(FQME, open_only=True)
        assert 'error' not in ems.resps(late)

    binance_sim(main, fake={'balances': {'USDT': 10_000}})


def test_dark_alert_cancel_during_trigger_and_multi_client(binance_sim):
    async def main(sim):
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1, last=100.5, size=0.01)
        a = await sim.open_ems(FQME)
        b = await sim.open_ems(FQME)
        dark = await a.place('buy', 95.0, 0.1, exec_mode='dark', account='spot')
        await a.wait(dark, 'dark_open')
        await b.wait(dark, 'dark_open')  # every client sees every dialog
        alert = await b.place('alert', 110.0, 1.0, exec_mode='dark', account='spot')
        await a.wait(alert, 'dark_open')
        sim.push(FQME, bid=94, ask=95, bsize=1, asize=1)
        await a.wait(dark, 'dark_triggered')
        closed = await b.wait(dark, 'closed')
        assert closed.filled == pytest.approx(0.1)
        (order,) = _chain(sim, dark)
        assert order['price'].startswith('95.05')  # padded by 5 ticks of 0.01
        sim.push(FQME, last=110.0, size=0.01)
        await a.wait(alert, 'alert_triggered')
        assert len(_chain(sim, alert)) == 0  # nothing sent to the venue

        # cancel while the triggered order is on its way to Binance
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        slow = await a.place('buy', 96.0, 0.1, exec_mode='dark', account='spot')
        await a.wait(slow, 'dark_open')
        sim.fake.faults.delay_acks(0.5)
        sim.push(FQME, bid=95.5, ask=96, bsize=1, asize=0.0001)
        await a.wait(slow, 'dark_triggered')
        await a.client.cancel(slow)
        await a.wait(slow, 'canceled', timeout=10)
        sim.fake.faults.delay_acks(0)
        assert not sim.orders(FQME, open_only=True)

    binance_sim(main, fake={'balances': {'USDT': 10_000}})


def test_history_pages_and_keeps_gaps(binance_sim):
    async def main(sim):
        from piker.data import open_feed
        now_ms = sim.fake.now_ms()
        gap = (now_ms // 60_000 * 60_000 - 1500 * 60_000, now_ms // 60_000 * 60_000 - 1490 * 60_000)
        sim.fake.set_gaps('BTCUSDT', [gap])
        async with open_feed([FQME], start_stream=False) as feed:
            bars = await feed.history(FQME, 60)
            secs = await feed.history(FQME, 1)
        times = bars['time'].tolist()
        assert (bars['time'][1:] > bars['time'][:-1]).all()
        assert not [t for t in times if gap[0] <= t * 1000 < gap[1]]  # no invented bars
        assert len(times) == 2880 + 1 - 10
        assert len(secs) >= 3600
        pages = sim.fake.request_log('/api/v3/klines')
        assert len(pages) >= 3 + 4  # 1,000 bars a request, paged by startTime
        starts = [int(p['params']['startTime']) for p in pages if p['params']['interval'] == '1m']
        assert starts == sorted(starts)

    binance_sim(main, keys=False)


def test_feed_reconnects_and_tells_dark_orders(binance_sim):
    async def main(sim):
        import trio

        from piker.data import open_feed
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1, last=100.5, size=0.01)
        ems = await sim.open_ems(FQME, mode='paper')
        dark = await ems.place('buy', 90.0, 0.1, exec_mode='dark')
        await ems.wait(dark, 'dark_open')
        async with open_feed([FQME]) as feed:
            assert sim.fake.faults.disconnect_streams('market') >= 1
            lost = await ems.wait_for(lambda m: getattr(m, 'oid', '') == dark
                                      and 'lost' in m.reason, timeout=10)
            assert lost.resp == 'dark_open'
            await ems.wait_for(lambda m: getattr(m, 'oid', '') == dark
                               and 'is back' in m.reason, timeout=10)
            # quotes resume on the same feed: no dead subscription
            with trio.fail_after(10):
                async for batch in feed.stream:
                    q = batch.get(FQME)
                    if q and q.get('bid') == 99.0:
                        break
                    sim.push(FQME, bid=99, ask=101, bsize=1, asize=1)
        # and the dark order still triggers on them
        sim.push(FQME, bid=89, ask=90, bsize=1, asize=1)
        await ems.wait(dark, 'closed', timeout=10)

    binance_sim(main, keys=False)


def test_order_report_after_brokerd_sigkill(binance_sim):
    async def main(sim):
        import os
        import signal

        import trio

        from piker.service import list_services
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        ems = await sim.open_ems(FQME)
        keep = await ems.place('buy', 90.0, 0.1, account='spot')
        fills = await ems.place('buy', 91.0, 0.2, account='spot')
        await ems.wait(keep, 'open')
        await ems.wait(fills, 'open')
        (order,) = _chain(sim, fills)
        info = (await list_services())['brokerd.binance']
        os.kill(info.pid, signal.SIGKILL)
        sim.fake.fill(order['orderId'])  # while nobody listens
        await ems.wait(fills, 'closed', timeout=30)
        await trio.sleep(0.3)  # anything repeated would arrive by now
        assert ems.resps(fills).count('fill') == 1, ems.resps(fills)
        assert 'canceled' not in ems.resps(keep)
        assert ems.resps(keep)[-1] == 'open'
        (working,) = sim.orders(FQME, open_only=True)
        assert working['price'].startswith('90.')
        # the trader can still cancel the working order
        await ems.client.cancel(keep)
        await ems.wait(keep, 'canceled', timeout=10)

    binance_sim(main, fake={'balances': {'USDT': 10_000}})


def test_rate_limit_429_backs_off_and_retries(binance_sim):
    async def main(sim):
        import time
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        ems = await sim.open_ems(FQME)
        sim.fake.faults.rate_limit(n=1, retry_after=1)
        t0 = time.monotonic()
        oid = await ems.place('buy', 90.0, 0.1, account='spot')
        await ems.wait(oid, 'open', timeout=10)
        assert time.monotonic() - t0 >= 1.0
        # a 5XX leaves the order's fate unknown: it is looked up, not guessed
        sim.fake.faults.server_errors(1)
        failed = await ems.place('buy', 89.0, 0.1, account='spot')
        err = await ems.wait(failed, 'error', timeout=10)
        assert 'Internal error' in err.reason
        assert not _chain(sim, failed)
        lookups = [r for r in sim.fake.request_log('/api/v3/order') if r['method'] == 'GET']
        assert lookups and lookups[-1]['params']['origClientOrderId'][2:34] == failed.replace('-', '')

        log = sim.fake.request_log()
        (limited,) = [r for r in log if r['status'] == 429]
        retry = next(r for r in log[log.index(limited) + 1:] if r['path'] == limited['path'])
        assert retry['status'] == 200
        assert retry['time_ms'] - limited['time_ms'] >= 1000  # waited Retry-After

    binance_sim(main, fake={'balances': {'USDT': 10_000}})


@pytest.mark.parametrize('key, why', [
    ('api_secret', 'Signature for this request is not valid'),
    ('api_key', 'Invalid API-key, IP, or permissions for action'),
])
def test_bad_signature_or_key_is_a_clear_error(binance_sim, key, why):
    async def main(sim):
        from piker.clearing import EMSError
        with pytest.raises(EMSError, match=why) as err:
            ems = await sim.open_ems(FQME)
            await ems.place('buy', 90.0, 0.1, account='spot')
        assert sim.fake.api_secret not in str(err.value)

    binance_sim(main, brokers={'binance': {key: 'not-the-right-one'}})


def test_without_keys_live_is_refused_and_paper_fills_at_binance_touch(binance_sim):
    async def main(sim):
        from piker.clearing import EMSError
        with pytest.raises(EMSError, match='binance has no API keys configured'):
            ems = await sim.open_ems(FQME)
            await ems.place('buy', 90.0, 0.1, account='spot')
        sim.push(FQME, bid=100.5, ask=101.25, bsize=1, asize=1)
        ems = await sim.open_ems(FQME, mode='paper')
        oid = await ems.place('buy', 102.0, 0.1)
        fill = await ems.wait(oid, 'fill', timeout=10)
        assert fill.brokerd_msg['price'] == 101.25  # Binance's ask, not the limit
        await ems.wait(oid, 'closed')
        assert not sim.orders(FQME)  # paper: nothing reached Binance

    binance_sim(main, keys=False)


def test_user_stream_loss_is_made_up_for(binance_sim):
    async def main(sim):
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        ems = await sim.open_ems(FQME)
        oid = await ems.place('buy', 95.0, 0.2, account='spot')
        await ems.wait(oid, 'open')
        (order,) = _chain(sim, oid)
        # the reports of this fill reach nobody: the reconnect finds it
        sim.fake.fill_while_away(order['orderId'], qty='0.05')
        await ems.wait(oid, 'fill', timeout=10)
        # reports out of order and twice are applied once
        sim.fake.faults.reorder_reports(1)
        sim.fake.faults.duplicate_reports(2)
        sim.fake.fill(order['orderId'], qty='0.05')
        sim.fake.fill(order['orderId'])
        closed = await ems.wait(oid, 'closed', timeout=10)
        assert closed.filled == pytest.approx(0.2)
        await ems.wait_position(FQME, 0.2, account='spot')
        await ems.until(lambda: ems.resps(oid).count('fill') == 3)
        assert not sim.orders(FQME, open_only=True)
        # a listen key that expires is replaced
        sim.fake.expire_listen_keys()
        again = await ems.place('buy', 94.0, 0.1, account='spot')
        await ems.wait(again, 'open')
        (order,) = _chain(sim, again)
        sim.fake.fill(order['orderId'])
        await ems.wait(again, 'closed', timeout=10)

    binance_sim(main, fake={'balances': {'USDT': 10_000}})


@pytest.mark.timeout(90)
def test_cli_search_and_quote_on_the_fake(fake_binance, piker_env, monkeypatch):
    import json
    import subprocess
    import sys
    from pathlib import Path

    for var in ('PIKER_BINANCE_API_KEY', 'PIKER_BINANCE_API_SECRET'):
        monkeypatch.delenv(var, raising=False)
    (piker_env[0] / 'brokers.toml').write_text(fake_binance.config_toml())
    fake_binance.push('BTCUSDT', bid=64000, ask=64000.5, bsize=1, asize=1)
    piker = str(Path(sys.executable).parent / 'piker')

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([piker, *args], capture_output=True, text=True, timeout=60)

    found = run('search', 'btc', '--broker', 'binance', '--json')
    assert found.returncode == 0, found.stderr
    mkts = json.loads(found.stdout)
    assert list(mkts)[0] == FQME and mkts[FQME]['price_tick'] == '0.01'
    quote = run('quote', FQME, '--once', '--json')
    assert quote.returncode == 0, quote.stderr
    assert '64000.5' in quote.stdout
    assert fake_binance.api_key not in quote.stderr + found.stderr


@pytest.mark.parametrize('asset', ['BNB', 'received'])
def test_fill_cost_is_the_commission_in_the_quote_asset(binance_sim, asset):
    async def main(sim):
        sim.push('bnbusdt.binance', bid=599.0, ask=601.0, bsize=100, asize=100)
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        ems = await sim.open_ems(FQME)
        oid = await ems.place('buy', 101.0, 0.5, account='spot')
        fill = await ems.wait(oid, 'fill', timeout=10)
        (trade,) = sim.fake.trades('BTCUSDT')
        charged = float(trade['commission'])
        assert trade['commissionAsset'] == ('BNB' if asset == 'BNB' else 'BTC')
        # in USDT: BNB at its mid (600), BTC at the fill price (101)
        price = 600.0 if asset == 'BNB' else 101.0
        assert fill.brokerd_msg['cost'] == pytest.approx(charged * price)
        assert fill.brokerd_msg['cost'] > 0

    binance_sim(main, fake={'balances': {'USDT': 10_000, 'BNB': 10},
                            'commission_asset': asset})


def test_emsd_sigkill_keeps_live_orders(binance_sim):
    async def main(sim):
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        ems = await sim.open_ems(FQME)
        oid = await ems.place('buy', 90.0, 0.1, account='spot')
        await ems.wait(oid, 'open')
        await sim.kill('emsd')
        (order,) = _chain(sim, oid)
        sim.fake.fill(order['orderId'], qty='0.04')  # while emsd restarts
        await sim.until_ems(lambda st: st['venues'].get('brokerd.binance') == 'up')
        again = await sim.open_ems(FQME)

        def seen_fill() -> bool:  # in the handshake, or told since
            sts = [again.dialogs.get(oid), *again.statuses(oid)]
            return any(s is not None and s.filled == pytest.approx(0.04) for s in sts)

        await again.until(seen_fill, timeout=15)
        assert again.dialogs[oid].resp in ('open', 'fill')
        await again.client.cancel(oid)
        await again.wait(oid, 'canceled', timeout=10)
        assert len(_chain(sim, oid)) == 1  # never a second venue order

    binance_sim(main, fake={'balances': {'USDT': 10_000}})
