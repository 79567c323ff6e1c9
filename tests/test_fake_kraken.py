"""The fake Kraken, exercised directly over HTTP and websockets."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import httpx
import pytest
import trio
import trio_websocket

from piker.testing.fakes.kraken import FakeKrakenThread, open_fake_kraken, sign

USD = {'ZUSD': 10_000}


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Client:
    """A minimal signed Kraken client (what a backend does)."""

    def __init__(self, fake, http: httpx.AsyncClient) -> None:
        self.fake = fake
        self.http = http
        self.nonce = 1_000

    async def public(self, name: str, **params) -> dict:
        return (await self.http.get(f'/0/public/{name}', params=params)).json()

    async def private(self, name: str, nonce: int | None = None, secret: str | None = None,
                      key: str | None = None, **params) -> dict:
        if nonce is None:
            self.nonce += 1
            nonce = self.nonce
        body = urlencode({'nonce': nonce, **params})
        path = f'/0/private/{name}'
        resp = await self.http.post(path, content=body, headers={
            'API-Key': key or self.fake.api_key,
            'API-Sign': sign(secret or self.fake.api_secret, path, str(nonce), body),
            'Content-Type': 'application/x-www-form-urlencoded'})
        return resp.json()

    async def token(self) -> str:
        return (await self.private('GetWebSocketsToken'))['result']['token']


def run(fn, **kwargs):
    async def main():
        kwargs.setdefault('quote_rate', 0)
        async with open_fake_kraken(**kwargs) as fake, \
                httpx.AsyncClient(base_url=fake.rest_url) as http:
            with trio.fail_after(20):
                return await fn(fake, Client(fake, http))
    return trio.run(main)


async def frames(ws, n: int, timeout: float = 2.0) -> list[dict]:
    out = []
    with trio.fail_after(timeout):
        for _ in range(n):
            out.append(json.loads(await ws.get_message()))
    return out


async def until(ws, cond, timeout: float = 2.0) -> dict:
    with trio.fail_after(timeout):
        while True:
            msg = json.loads(await ws.get_message())
            if cond(msg):
                return msg


async def call(ws, method: str, req_id: int, **params) -> dict:
    return (await exchange(ws, method, req_id, **params))[1]


async def exchange(ws, method: str, req_id: int, **params) -> tuple[list[dict], dict]:
    """Send one request; the `executions` updates before its response, and it."""
    await ws.send_message(json.dumps({'method': method, 'req_id': req_id, 'params': params}))
    events: list[dict] = []
    with trio.fail_after(2):
        while True:
            msg = json.loads(await ws.get_message())
            if msg.get('req_id') == req_id and msg.get('method') == method:
                return events, msg
            if msg.get('channel') == 'executions' and msg.get('type') == 'update':
                events += msg['data']


def test_signature_matches_krakens_documented_example():
    secret = ('kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa9'
              '9HAZtuZuj6F1huXg==')
    body = 'nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25'
    assert sign(secret, '/0/private/AddOrder', '1616492376594', body) == (
        '4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ==')


def test_asset_pairs_ticker_and_errors():
    async def main(fake, c):
        pairs = await c.public('AssetPairs')
        assert pairs['error'] == []
        btc = pairs['result']['XXBTZUSD']
        assert (btc['altname'], btc['wsname'], btc['base'], btc['quote']) == (
            'XBTUSD', 'XBT/USD', 'XXBT', 'ZUSD')
        assert (btc['pair_decimals'], btc['lot_decimals'], btc['tick_size']) == (1, 8, '0.1')
        assert btc['ordermin'] == '0.00005' and btc['costmin'] == '0.5'
        assert pairs['result']['XDGUSD']['wsname'] == 'XDG/USD'
        assert pairs['result']['PEPEUSD']['wsname'] == 'PEPE/USD'
        one = await c.public('AssetPairs', pair='XBTUSD')
        assert list(one['result']) == ['XXBTZUSD']
        assert await c.public('AssetPairs', pair='NOPEUSD') == {
            'error': ['EQuery:Unknown asset pair']}
        fake.push('BTC/USD', bid=100, ask=100.5, bsize=2, asize=3)
        t = (await c.public('Ticker', pair='XBTUSD'))['result']['XXBTZUSD']
        assert t['b'][0] == '100.0' and t['a'][0] == '100.5' and t['a'][2] == '3.00000000'
        assert 'XXBT' in (await c.public('Assets'))['result']

    run(main)


def test_ohlc_serves_only_the_last_720_bars():
    async def main(fake, c):
        res = (await c.public('OHLC', pair='XBTUSD', interval=1))['result']
        rows = res['XXBTZUSD']
        assert len(rows) == 720
        times = [r[0] for r in rows]
        assert times == sorted(times) and times[1] - times[0] == 60
        t, o, h, lo, cl, vwap, vol, n = rows[0]
        assert float(lo) <= float(o) <= float(h) and float(lo) <= float(cl) <= float(h)
        assert isinstance(n, int) and float(vol) >= 0
        assert res['last'] == rows[-2][0]  # the last committed bar
        old = (await c.public('OHLC', pair='XBTUSD', interval=1, since=times[0] - 86_400))
        assert [r[0] for r in old['result']['XXBTZUSD']] == times  # no older bars at all
        later = (await c.public('OHLC', pair='XBTUSD', interval=1, since=times[-10]))
        assert len(later['result']['XXBTZUSD']) == 9
        assert (await c.public('OHLC', pair='XBTUSD', interval=2))['error'] == [
            'EGeneral:Invalid arguments']

    run(main, clock=Clock())


def test_trades_page_forward_by_last():
    async def main(fake, c):
        now = fake.clock()
        since = int((now - 2500) * 1e9)
        seen = []
        for _ in range(4):
            res = (await c.public('Trades', pair='XBTUSD', since=since))['result']
            rows = res['XXBTZUSD']
            assert len(rows) <= 1000
            seen += rows
            if len(rows) < 1000:
                break
            assert int(res['last']) > since
            since = int(res['last'])
        times = [r[2] for r in seen]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert times[0] > now - 2500
        price, vol, t, side, kind, misc, tid = seen[0]
        assert side in ('b', 's') and kind == 'l' and isinstance(tid, int)
        fake.push('BTC/USD', last=100.0, size=0.5)
        res = (await c.public('Trades', pair='XBTUSD', since=int((now - 1) * 1e9)))['result']
        assert res['XXBTZUSD'][-1][:2] == ['100.0', '0.50000000']

    run(main, clock=Clock())


def test_signing_nonce_and_keys():
    async def main(fake, c):
        ok = await c.private('Balance')
        assert ok == {'error': [], 'result': {'ZUSD': '10000.0000000000'}}
        assert (await c.private('Balance', nonce=c.nonce))['error'] == ['EAPI:Invalid nonce']
        assert (await c.private('Balance', nonce=5))['error'] == ['EAPI:Invalid nonce']
        bad = 'bm90LXRoZS1zZWNyZXQ='
        assert (await c.private('Balance', secret=bad))['error'] == ['EAPI:Invalid signature']
        assert (await c.private('Balance', key='nope'))['error'] == ['EAPI:Invalid key']
        # a body changed after signing is refused
        path = '/0/private/Balance'
        body = 'nonce=999999'
        resp = await c.http.post(path, content=body + '&x=1', headers={
            'API-Key': fake.api_key, 'API-Sign': sign(fake.api_secret, path, '999999', body)})
        assert resp.json()['error'] == ['EAPI:Invalid signature']
        assert (await c.http.get(path)).json()['error'] == ['EGeneral:Invalid arguments']
        assert fake.api_secret not in repr(fake)

    run(main, balances=USD)


def test_api_counter_refuses_then_decays():
    clock = Clock()

    async def main(fake, c):
        for _ in range(3):
            assert (await c.private('Balance'))['error'] == []
        assert (await c.private('Balance'))['error'] == ['EAPI:Rate limit exceeded']
        clock.t += 3.1  # 0.33/s: one point back
        assert (await c.private('Balance'))['error'] == []
        fake.faults.rate_limit(2)
        assert (await c.private('Balance'))['error'] == ['EAPI:Rate limit exceeded']
        assert (await c.private('Balance'))['error'] == ['EAPI:Rate limit exceeded']
        clock.t += 10
        assert (await c.private('Balance'))['error'] == []

    run(main, clock=clock, api_limit=3)


def test_public_websocket_ticker_trade_ping_heartbeat():
    async def main(fake, c):
        fake.push('BTC/USD', bid=100, ask=101, bsize=1, asize=2)
        async with trio_websocket.open_websocket_url(fake.ws_url) as ws:
            (status,) = await frames(ws, 1)
            assert status['channel'] == 'status' and status['data'][0]['api_version'] == 'v2'
            sub = await call(ws, 'subscribe', 1, channel='ticker', symbol=['BTC/USD', 'XBT/EUR'],
                             event_trigger='bbo')
            assert sub['success'] and sub['result']['symbol'] == 'BTC/USD'
            snap, refused = await frames(ws, 2)
            assert snap['type'] == 'snapshot' and snap['data'][0]['ask_qty'] == 2.0
            assert refused['success'] is False and 'XBT/EUR' in refused['error']
            await call(ws, 'subscribe', 2, channel='trade', symbol=['BTC/USD'])
            fake.push('BTC/USD', bid=100.5)
            tick = await until(ws, lambda m: m.get('channel') == 'ticker')
            assert tick['type'] == 'update' and tick['data'][0]['bid'] == 100.5
            fake.push('BTC/USD', last=101.0, size=0.25)
            trade = await until(ws, lambda m: m.get('channel') == 'trade')
            (t,) = trade['data']
            assert (t['symbol'], t['price'], t['qty'], t['side']) == ('BTC/USD', 101.0, 0.25, 'buy')
            await ws.send_message(json.dumps({'method': 'ping', 'req_id': 7}))
            pong = await until(ws, lambda m: m.get('method') == 'pong')
            assert pong == {'method': 'pong', 'req_id': 7, 'time_in': pong['time_in'],
                            'time_out': pong['time_out']}
            await until(ws, lambda m: m.get('channel') == 'heartbeat', timeout=3)
            refused = await call(ws, 'add_order', 3, symbol='BTC/USD')
            assert refused['success'] is False  # no orders on the public endpoint

    run(main)


def test_private_websocket_orders_and_executions():
    async def main(fake, c):
        fake.push('BTC/USD', bid=100, ask=101, bsize=1, asize=0.3)
        token = await c.token()
        async with trio_websocket.open_websocket_url(fake.ws_auth_url) as ws:
            bad = await call(ws, 'subscribe', 1, channel='executions', token='nope')
            assert bad['error'] == 'ESession:Invalid session'
            sub = await call(ws, 'subscribe', 2, channel='executions', token=token,
                             snap_trades=True)
            assert sub['success']
            snap = await until(ws, lambda m: m.get('channel') == 'executions')
            assert snap['type'] == 'snapshot' and snap['data'] == []
            base = {'order_type': 'limit', 'symbol': 'BTC/USD', 'token': token}
            poor = await call(ws, 'add_order', 3, side='buy', order_qty=1000, limit_price=90, **base)
            assert poor['error'] == 'EOrder:Insufficient funds'
            small = await call(ws, 'add_order', 4, side='buy', order_qty=0.00001,
                               limit_price=90, **base)
            assert small['error'] == 'EOrder:Order minimum not met'
            odd = await call(ws, 'add_order', 5, side='buy', order_qty=0.1, limit_price=90.05, **base)
            assert odd['error'].startswith('EOrder:Invalid price')
            cl = '6f1c2b4e-8f0a-4c39-9d65-2d1f3b5a7c90'
            events, placed = await exchange(ws, 'add_order', 6, side='buy', order_qty=0.5,
                                            limit_price=101, cl_ord_id=cl, **base)
            assert placed['success'] and placed['result']['cl_ord_id'] == cl
            order_id = placed['result']['order_id']
            assert [e['exec_type'] for e in events] == ['pending_new', 'new', 'trade']
            assert {e['order_id'] for e in events} == {order_id}
            assert [e['exec_type'] for e in fake.trades()] == ['trade']
            (fill,) = fake.trades()
            assert events[-1] == fill
            assert (fill['last_qty'], fill['last_price'], fill['liquidity_ind']) == (0.3, 101.0, 't')
            assert fill['order_status'] == 'partially_filled' and fill['cl_ord_id'] == cl
            events, amended = await exchange(ws, 'amend_order', 7, order_id=order_id,
                                             limit_price=99.5, token=token)
            assert amended['success'] and amended['result']['order_id'] == order_id
            assert [(e['exec_type'], e['limit_price']) for e in events] == [('amended', 99.5)]
            (o,) = fake.orders(open_only=True)
            assert o['limit_price'] == 99.5 and o['order_id'] == order_id
            events, canceled = await exchange(ws, 'cancel_order', 8, order_id=[order_id],
                                              token=token)
            assert canceled['success'] and [e['order_status'] for e in events] == ['canceled']
            assert fake.orders(open_only=True) == []
            again = await call(ws, 'cancel_order', 9, order_id=[order_id], token=token)
            assert again['error'] == 'EOrder:Unknown order'
        # a new connection's snapshot: no open orders, the fill
        async with trio_websocket.open_websocket_url(fake.ws_auth_url) as ws:
            await call(ws, 'subscribe', 1, channel='executions', token=token, snap_trades=True)
            snap = await until(ws, lambda m: m.get('type') == 'snapshot')
            assert [e['exec_type'] for e in snap['data']] == ['trade']
        usd = float(fake.balances()['ZUSD'])
        assert usd == pytest.approx(10_000 - 0.3 * 101 * 1.0026)

    run(main, balances=USD)


def test_trading_counter_penalises_young_amends_and_cancels():
    clock = Clock()

    async def main(fake, c):
        fake.push('BTC/USD', bid=100, ask=101, bsize=1, asize=1)
        token = await c.token()
        async with trio_websocket.open_websocket_url(fake.ws_auth_url) as ws:
            base = {'order_type': 'limit', 'symbol': 'BTC/USD', 'token': token, 'side': 'buy'}
            placed = await call(ws, 'add_order', 1, order_qty=0.1, limit_price=90, **base)
            oid = placed['result']['order_id']
            ok = await call(ws, 'amend_order', 2, order_id=oid, limit_price=91, token=token)
            assert ok['success']  # 1 + 3 points: at the limit
            fast = await call(ws, 'amend_order', 3, order_id=oid, limit_price=92, token=token)
            assert fast['error'] == 'EOrder:Rate limit exceeded'
            clock.t += 3.0  # 1 point a second: 3 of the 4 back
            assert (await call(ws, 'amend_order', 4, order_id=oid, limit_price=92,
                               token=token))['success']
            clock.t += 20.0  # an older order's cancel costs less (4 points)
            assert (await call(ws, 'cancel_order', 5, order_id=[oid], token=token))['success']

    run(main, clock=clock, balances=USD, trade_limit=4, trade_decay=1)


def test_faults():
    async def main(fake, c):
        fake.push('BTC/USD', bid=100, ask=101, bsize=1, asize=1)
        fake.faults.server_errors(1)
        resp = await c.http.get('/0/public/AssetPairs')
        assert resp.status_code == 503 and resp.json()['error'] == ['EService:Unavailable']
        assert (await c.public('AssetPairs'))['error'] == []
        token = await c.token()
        async with trio_websocket.open_websocket_url(fake.ws_auth_url) as ws:
            fake.faults.reject_tokens(1)
            assert (await call(ws, 'subscribe', 1, channel='executions', token=token))[
                'error'] == 'ESession:Invalid session'
            await call(ws, 'subscribe', 2, channel='executions', token=token)
            fake.faults.delay_acks(0.3)
            base = {'order_type': 'limit', 'symbol': 'BTC/USD', 'token': token, 'side': 'buy'}
            events, placed = await exchange(ws, 'add_order', 3, order_qty=0.1, limit_price=90,
                                            **base)
            assert [e['exec_type'] for e in events] == ['pending_new', 'new']  # before the ack
            fake.faults.delay_acks(0)
            fake.faults.duplicate_reports(1)
            events, _ = await exchange(ws, 'cancel_order', 4,
                                       order_id=[placed['result']['order_id']], token=token)
            assert [e['exec_type'] for e in events] == ['canceled', 'canceled']
            assert fake.faults.disconnect_streams('user') == 1
            with pytest.raises(trio_websocket.ConnectionClosed):
                with trio.fail_after(2):
                    while True:
                        await ws.get_message()
        assert fake.faults.state()['duplicate_reports'] == 0

    run(main, balances=USD)


def test_thread_runner_and_control_api():
    from piker.testing.fakes.binance import ControlClient
    with FakeKrakenThread(quote_rate=0, balances=USD) as fake:
        fake.push('BTC/USD', bid=100, ask=101, bsize=1, asize=1)
        with ControlClient(fake.rest_url) as ctl:
            book = ctl.push('XBTUSD', bid=99.5)
            assert book['book']['bid'] == 99.5
            ctl.fault('delay_acks', seconds=0.2)
            assert ctl.get('fault/state')['ack_delay'] == 0.2
            assert ctl.get('info')['pairs'] == ['BTC/USD', 'ETH/USD', 'DOGE/USD', 'PEPE/USD']
            with pytest.raises(ValueError, match='Unknown asset pair'):
                ctl.push('NOPE/USD', bid=1)
        assert httpx.get(fake.rest_url + '/0/public/Ticker?pair=XBTUSD').json()[
            'result']['XXBTZUSD']['b'][0] == '99.5'


def test_cli_fake_kraken_help():
    from typer.testing import CliRunner

    from piker.cli import app
    out = CliRunner().invoke(app, ['fake', 'kraken', '--help'])
    assert out.exit_code == 0 and '--port' in out.output


def test_fake_kraken_fixture(fake_kraken, piker_env):
    (piker_env[0] / 'brokers.toml').write_text(fake_kraken.config_toml())
    from piker.config import load_brokers_conf
    conf = load_brokers_conf().kraken
    assert conf.ws_auth_url == fake_kraken.ws_auth_url and conf.has_keys
    fake_kraken.push('BTC/USD', bid=64000, ask=64000.1, bsize=1, asize=1)
    body = httpx.get(fake_kraken.rest_url + '/0/public/Ticker', params={'pair': 'XBTUSD'}).json()
    assert body['result']['XXBTZUSD']['a'][0] == '64000.1'
