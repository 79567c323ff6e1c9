"""The kraken backend through the real actor tree, against the fake
Kraken (`piker.testing.kraken_sim`): fills, partials, cancel, cancel
before ack, modify as one amended order, feed reconnects, history around
the 720-bar limit, a pair whose base is not three letters, a bad key, and
paper trading on its quotes. Dark orders, alerts and the order report
after a brokerd SIGKILL are checked by the conformance kit
(`piker.testing.conformance --backend kraken`, run by `.ci/run`)."""
from __future__ import annotations

import pytest

FQME = 'btcusd.kraken'
USD = {'balances': {'ZUSD': 10_000}}


def _orders(sim, oid: str) -> list[dict]:
    return [o for o in sim.orders() if o.get('cl_ord_id') == oid]


def test_live_fill_partial_and_cancel(kraken_sim):
    async def main(sim):
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=0.3)
        ems = await sim.open_ems(FQME)
        assert 'spot' in ems.accounts
        sim.fake.faults.duplicate_reports(10)  # every event twice: applied once
        oid = await ems.place('buy', 101.0, 0.5, account='spot')
        fill = await ems.wait(oid, 'fill')
        assert fill.brokerd_msg['price'] == 101.0 and fill.brokerd_msg['size'] == 0.3
        assert fill.filled == pytest.approx(0.3) and fill.remaining == pytest.approx(0.2)
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        await ems.wait(oid, 'closed')
        resps = ems.resps(oid)
        assert resps[0] == 'pending' and resps.count('fill') == 2, resps
        (order,) = _orders(sim, oid)
        assert order['order_status'] == 'filled'
        # both fills in piker's ledger, by Kraken's trade exec_id
        import trio
        with trio.fail_after(5):  # written just after the fills are reported
            while len(sim.ledger('kraken', 'spot')) < 2:
                await trio.sleep(0.02)
        assert set(sim.ledger('kraken', 'spot')) == {t['exec_id'] for t in sim.fake.trades()}
        rest = await ems.place('buy', 90.0, 0.1, account='spot')
        opened = await ems.wait(rest, 'open')
        assert opened.reqid == _orders(sim, rest)[0]['order_id']
        await ems.client.cancel(rest)
        await ems.wait(rest, 'canceled')
        assert not sim.orders(open_only=True)
        await ems.wait_position(FQME, 0.5, account='spot')

    kraken_sim(main, fake=USD)


def test_live_modify_is_one_amended_order_and_cancel_before_ack(kraken_sim):
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
        assert st.reqid == opened.reqid
        (order,) = _orders(sim, oid)  # one Kraken order, amended in place
        assert order['limit_price'] == 95.0 and order['order_id'] == opened.reqid
        assert [r['path'] for r in sim.fake.request_log() if r['method'] == 'WS'] == [
            'add_order', 'amend_order']
        sim.push(FQME, bid=94, ask=95, bsize=1, asize=1)
        await ems.wait(oid, 'closed')
        assert ems.resps(oid).count('closed') == 1

        # a cancel sent before Kraken answered the order is honoured
        sim.fake.faults.delay_acks(0.5)
        late = await ems.place('buy', 80.0, 0.1, account='spot')
        await ems.client.cancel(late)
        await ems.wait(late, 'canceled', timeout=10)
        sim.fake.faults.delay_acks(0)
        assert not sim.orders(open_only=True)
        assert 'error' not in ems.resps(late)

    kraken_sim(main, fake=USD)


def test_feed_reconnects_and_tells_dark_orders(kraken_sim):
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
            with trio.fail_after(10):
                async for batch in feed.stream:
                    q = batch.get(FQME)
                    if q and q.get('bid') == 99.0:
                        break
                    sim.push(FQME, bid=99, ask=101, bsize=1, asize=1)
        sim.push(FQME, bid=89, ask=90, bsize=1, asize=1)
        await ems.wait(dark, 'closed', timeout=10)

    kraken_sim(main, keys=False)


def test_history_pages_around_the_720_bar_limit(kraken_sim):
    async def main(sim):
        from piker.data import open_feed
        async with open_feed([FQME], start_stream=False) as feed:
            bars = await feed.history(FQME, 60)
            secs = await feed.history(FQME, 1)
        assert len(bars) == 720  # what Kraken's OHLC serves, in one request
        assert len(sim.fake.request_log('/0/public/OHLC')) == 1
        assert (bars['time'][1:] - bars['time'][:-1] == 60).all()
        assert len(secs) >= 3600 and (secs['time'][1:] - secs['time'][:-1] == 1).all()
        assert len(sim.fake.request_log('/0/public/Trades')) >= 4  # 1,000 trades a page
        assert (secs['low'] <= secs['close']).all() and (secs['close'] <= secs['high']).all()

    kraken_sim(main, keys=False)


def test_pairs_with_long_bases(kraken_sim):
    async def main(sim):
        from piker.data import open_feed
        async with open_feed(['dogeusd.kraken', 'pepeusd.kraken']) as feed:
            doge = feed.mkts['dogeusd.kraken']
            pepe = feed.mkts['pepeusd.kraken']
        assert (doge.dst.name, doge.src.name) == ('doge', 'usd')
        assert (pepe.dst.name, pepe.src.name) == ('pepe', 'usd')
        assert str(pepe.price_tick) == '1E-9' and str(pepe.size_tick) == '0.01'
        sim.push('dogeusd.kraken', bid=0.16, ask=0.1601, bsize=1000, asize=1000)
        ems = await sim.open_ems('dogeusd.kraken')
        oid = await ems.place('buy', 0.1601, 100.0, account='spot')
        await ems.wait(oid, 'closed')
        (order,) = _orders(sim, oid)
        assert order['symbol'] == 'DOGE/USD'
        await ems.wait_position('dogeusd.kraken', 100.0, account='spot')

    kraken_sim(main, fake=USD)


def test_bad_key_is_a_clear_error(kraken_sim):
    async def main(sim):
        from piker.clearing import EMSError
        with pytest.raises(EMSError, match='EAPI:Invalid signature'):
            ems = await sim.open_ems(FQME)
            await ems.place('buy', 90.0, 0.1, account='spot')

    kraken_sim(main, brokers={'kraken': {'api_secret': 'bm90LXRoZS1zZWNyZXQ='}})


def test_paper_fills_at_kraken_touch(kraken_sim):
    async def main(sim):
        sim.push(FQME, bid=100.5, ask=101.2, bsize=1, asize=1)
        ems = await sim.open_ems(FQME, mode='paper')
        oid = await ems.place('buy', 102.0, 0.1)
        fill = await ems.wait(oid, 'fill', timeout=10)
        assert fill.brokerd_msg['price'] == 101.2
        await ems.wait(oid, 'closed')
        assert not sim.orders()

    kraken_sim(main, keys=False)


def test_rate_counters_are_waited_out(kraken_sim):
    async def main(sim):
        import time
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        sim.fake.faults.rate_limit(1)  # the API counter: the first private call
        t0 = time.monotonic()
        ems = await sim.open_ems(FQME)
        assert time.monotonic() - t0 >= 1.0
        errors = [r for r in sim.fake.request_log() if r['error']]
        assert [e['error'] for e in errors] == [['EAPI:Rate limit exceeded']]
        oid = await ems.place('buy', 90.0, 0.1, account='spot')
        await ems.wait(oid, 'open')
        # amends of a young order cost 3 points: the second is "too fast"
        for price in (91.0, 92.0):
            mark = ems.mark()
            await ems.client.update(oid, price=price)
            await ems.wait_for(lambda m, p=price: getattr(m, 'oid', None) == oid
                               and m.resp == 'open' and m.req.price == p,
                               since=mark, timeout=10)
        ws = [(r['path'], r['error']) for r in sim.fake.request_log() if r['method'] == 'WS']
        assert ('amend_order', ['EOrder:Rate limit exceeded']) in ws
        assert ws[-1] == ('amend_order', [])
        (order,) = sim.orders(open_only=True)
        assert order['limit_price'] == 92.0
        assert 'error' not in ems.resps(oid)

    kraken_sim(main, fake={**USD, 'trade_limit': 4, 'trade_decay': 2})


def test_private_reconnect_reports_what_happened_meanwhile(kraken_sim):
    async def main(sim):
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        ems = await sim.open_ems(FQME)
        filled = await ems.place('buy', 91.0, 0.2, account='spot')
        gone = await ems.place('buy', 90.0, 0.1, account='spot')
        await ems.wait(filled, 'open')
        await ems.wait(gone, 'open')
        (order,) = _orders(sim, filled)
        (other,) = _orders(sim, gone)
        # the private socket drops; meanwhile one order fills, one is cancelled;
        # the first reconnect's token is refused (expired): it tries again
        sim.fake.faults.reject_tokens(1)
        sim.fake.fill_while_away(order['order_id'])
        sim.fake.engine.cancel({'order_id': [other['order_id']]})
        await ems.wait(filled, 'closed', timeout=15)
        st = await ems.wait(gone, 'canceled', timeout=15)
        assert 'after reconnect' in st.reason
        assert ems.resps(filled).count('fill') == 1
        await ems.wait_position(FQME, 0.2, account='spot', timeout=10)
        assert sim.fake.faults.state()['reject_tokens'] == 0
        # and the dialogue still trades
        again = await ems.place('buy', 89.0, 0.1, account='spot')
        await ems.wait(again, 'open')

    kraken_sim(main, fake=USD)


# -- pure parts and the REST client against the fake, no tree -----------------


def _pairs_result() -> dict:
    from piker.testing.fakes.kraken import PAIRS
    return {p.key: p.info() for p in PAIRS.values()}


def test_markets_use_traders_names_and_split_at_the_slash():
    from piker.brokers.kraken._markets import parse_asset_pairs, resolve, search_keys
    markets = parse_asset_pairs(_pairs_result())
    assert sorted(markets) == ['btcusd', 'dogeusd', 'ethusd', 'pepeusd']
    pepe = markets['pepeusd']
    assert (pepe.mkt.dst.name, pepe.mkt.src.name, pepe.symbol) == ('pepe', 'usd', 'PEPE/USD')
    assert (pepe.base_code, pepe.ordermin) == ('PEPE', 500000)
    assert markets['dogeusd'].symbol == 'DOGE/USD' and markets['dogeusd'].base_code == 'XXDG'
    for name in ('btcusd', 'xbtusd', 'XXBTZUSD', 'BTC/USD', 'btcusd.kraken'):
        assert resolve(markets, name) is markets['btcusd'], name
    assert resolve(markets, 'xdgusd') is markets['dogeusd']
    assert search_keys(markets, 'xdg') == ['dogeusd']
    assert search_keys(markets, 'usd')[:1] != []
    # a pair without a usable wsname, or a dark pool, is skipped; junk ignored
    odd = {**_pairs_result(), 'X': {'altname': 'XX.d', 'base': 'A', 'quote': 'B',
                                    'wsname': 'A/B'}, 'Y': {'nope': 1}}
    assert sorted(parse_asset_pairs(odd)) == sorted(markets)


def test_trades_to_bars_fill_quiet_seconds_flat():
    from piker.brokers.kraken._history import trades_to_bars
    bars = trades_to_bars([(100.2, 10.0, 1.0), (100.7, 12.0, 2.0), (103.1, 11.0, 0.5)],
                          1, 100, 104)
    assert bars['time'].tolist() == [100, 101, 102, 103, 104]
    assert tuple(bars[0])[1:] == (10.0, 12.0, 10.0, 12.0, 3.0)
    assert tuple(bars[1])[1:] == (12.0, 12.0, 12.0, 12.0, 0.0)  # quiet: flat
    assert tuple(bars[3])[1:] == (11.0, 11.0, 11.0, 11.0, 0.5)


def test_history_pages_trades_around_the_limit_and_states_what_it_cannot():
    import time

    import trio

    from piker.brokers.kraken import _history
    from piker.brokers.kraken._markets import parse_asset_pairs
    from piker.brokers.kraken._rest import Client
    from piker.testing.fakes.kraken import open_fake_kraken

    # the fake's clock starts 5 s into a minute: its 720 OHLC bars cannot
    # gain a minute during the test (the wall clock did, once in a while:
    # the last bar fell past `end` and 719 came back)
    t0 = time.time()
    base = t0 // 60 * 60 + 5

    def clock() -> float:
        return base + (time.time() - t0)

    async def main():
        async with open_fake_kraken(quote_rate=0, clock=clock) as fake:
            client = Client(fake.rest_url)
            market = parse_asset_pairs(_pairs_result())['btcusd']
            now = clock()
            bars = await _history.fetch_bars(client, market, 60, start=now - 900 * 60, end=now)
            assert bars['time'][0] <= now - 899 * 60  # older than the 720-bar limit
            assert (bars['time'][1:] - bars['time'][:-1] == 60).all()
            assert len(fake.request_log('/0/public/OHLC')) == 1
            pages = fake.request_log('/0/public/Trades')
            assert len(pages) >= 10  # 180 minutes of 1 s trades, 1,000 a page
            # too far back for the page budget: the 720 bars, and a warning
            _history.MAX_TRADE_PAGES, keep = 2, _history.MAX_TRADE_PAGES
            try:
                short = await _history.fetch_bars(client, market, 60, start=now - 2000 * 60,
                                                  end=now)
            finally:
                _history.MAX_TRADE_PAGES = keep
            assert len(short) == 720
            await client.aclose()

    trio.run(main)


def test_rest_client_errors_and_secrets():
    import trio
    from pydantic import SecretStr

    from piker.brokers.kraken._rest import AuthError, Client, NoKeys
    from piker.testing.fakes.kraken import open_fake_kraken

    async def main():
        async with open_fake_kraken(quote_rate=0, balances={'ZUSD': 5}) as fake:
            good = Client(fake.rest_url, SecretStr(fake.api_key), SecretStr(fake.api_secret))
            assert await good.balance() == {'ZUSD': '5.0000000000'}
            assert fake.api_key not in repr(good) and fake.api_secret not in repr(good)
            bad = Client(fake.rest_url, SecretStr('nope'), SecretStr(fake.api_secret))
            with pytest.raises(AuthError, match='EAPI:Invalid key'):
                await bad.balance()
            junk = Client(fake.rest_url, SecretStr(fake.api_key), SecretStr('not base64!'))
            with pytest.raises(AuthError, match='not base64'):
                await junk.balance()
            with pytest.raises(NoKeys, match='brokers.toml'):
                await Client(fake.rest_url).balance()
            fake.faults.server_errors(1)
            assert await good.balance()  # a 503 is retried
            # a concurrent request of the key got a later nonce in first: retried
            other = Client(fake.rest_url, SecretStr(fake.api_key), SecretStr(fake.api_secret))
            other._nonce = 10**17 - 1  # its next nonce: 10**17, which Kraken has seen
            fake.auth.last_nonce = 10**17
            assert await other.balance() == {'ZUSD': '5.0000000000'}
            assert [r['error'] for r in fake.request_log('/0/private/Balance')][-2:] == [
                ['EAPI:Invalid nonce'], []]
            for c in (good, bad, junk, other):
                await c.aclose()

    trio.run(main)


def test_config_keys_from_files_and_env(tmp_path, monkeypatch):
    from piker.config import KrakenConf
    key, secret = tmp_path / 'k', tmp_path / 's'
    key.write_text('KEY\n')
    secret.write_text('c2VjcmV0\n')
    key.chmod(0o600)
    secret.chmod(0o600)
    conf = KrakenConf(api_key_file=key, api_secret_file=secret)
    assert conf.has_keys and conf.api_secret.get_secret_value() == 'c2VjcmV0'
    assert 'c2VjcmV0' not in repr(conf) and 'KEY' not in repr(conf)
    monkeypatch.setenv('PIKER_KRAKEN_API_KEY', 'ENVKEY')
    with pytest.raises(ValueError, match='api_key and api_secret'):
        KrakenConf()
    monkeypatch.setenv('PIKER_KRAKEN_API_SECRET', 'ZW52')
    assert KrakenConf().api_key.get_secret_value() == 'ENVKEY'
    assert KrakenConf(rest_url='http://127.0.0.1:1').rest_url == 'http://127.0.0.1:1'


def test_tracker_is_idempotent_and_adopts_external_orders():
    from piker.brokers.kraken._orders import Exec, LiveOrder, Tracker
    from piker.clearing._messages import BrokerdFill, BrokerdOrderAck, BrokerdStatus
    oid = '6f1c2b4e-8f0a-4c39-9d65-2d1f3b5a7c90'
    t = Tracker('spot', lambda sym: sym.replace('/', '').lower())
    t.add(LiveOrder(oid, 'btcusd', 'BTC/USD', 'buy', 100.0, 1.0, 'spot', 0))
    base = dict(order_id='OAAAAA-BBBBB-CCCCCC', symbol='BTC/USD', side='buy', order_qty=1.0,
                limit_price=100.0, cl_ord_id=oid)
    new = t.on_exec(Exec(exec_type='new', order_status='new', **base))
    assert [type(m) for m in new] == [BrokerdOrderAck, BrokerdStatus]  # ack from the event
    trade = Exec(exec_type='trade', order_status='partially_filled', cum_qty=1.0, last_qty=1.0,
                 last_price=100.0, exec_id='TX1', **base)
    out = t.on_exec(trade)
    assert [type(m) for m in out] == [BrokerdFill, BrokerdStatus]
    assert out[1].status == 'closed'  # cum_qty reached order_qty: partially_filled says not
    assert t.on_exec(trade) == []  # repeated: nothing
    assert t.on_exec(Exec(exec_type='filled', order_status='filled', **base)) == []
    ext = t.on_exec(Exec(exec_type='new', order_status='new', order_id='OEXT', symbol='ETH/USD',
                         order_qty=2.0, limit_price=3000.0, cl_ord_id='web-ui'))
    (announce,) = ext
    assert announce.req.symbol == 'ethusd' and announce.reqid == 'OEXT'


def test_private_ws_retries_a_refused_session_after_the_first():
    import trio
    from pydantic import SecretStr

    from piker.brokers.kraken._private import PrivateWs
    from piker.brokers.kraken._rest import Client, KrakenError
    from piker.testing.fakes.kraken import open_fake_kraken

    async def main():
        async with open_fake_kraken(quote_rate=0) as fake:
            client = Client(fake.rest_url, SecretStr(fake.api_key), SecretStr(fake.api_secret))
            snaps: list[bool] = []
            again = trio.Event()

            async def on_snapshot(events, first):
                snaps.append(first)
                if len(snaps) == 2:
                    again.set()

            async def on_event(ev):
                pass

            fake.faults.reject_tokens(1)  # the first connection: fatal, clearly
            with pytest.raises(KrakenError, match='ESession:Invalid session'):
                await PrivateWs(client, fake.ws_auth_url, on_snapshot, on_event).run()
            ws = PrivateWs(client, fake.ws_auth_url, on_snapshot, on_event)
            async with trio.open_nursery() as n:
                await n.start(ws.run)
                fake.faults.reject_tokens(1)  # a later one: retried
                fake.faults.disconnect_streams('user')
                with trio.fail_after(10):
                    await again.wait()
                assert snaps == [True, False]
                n.cancel_scope.cancel()
            await client.aclose()

    trio.run(main)


def test_a_bad_executions_event_is_dropped_not_fatal(kraken_sim):
    async def main(sim):
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        ems = await sim.open_ems(FQME)
        oid = await ems.place('buy', 90.0, 0.1, account='spot')
        opened = await ems.wait(oid, 'open')
        # a well-formed but impossible fill (negative price) and junk
        sim.fake.publish_execution({'exec_type': 'trade', 'order_id': opened.reqid,
                                    'symbol': 'BTC/USD', 'last_qty': 0.1,
                                    'last_price': -5.0, 'exec_id': 'TBAD'})
        sim.fake.publish_execution({'exec_type': 7})
        # the dialogue carries on
        await ems.client.cancel(oid)
        await ems.wait(oid, 'canceled', timeout=10)
        assert 'fill' not in ems.resps(oid)

    kraken_sim(main, fake=USD)
