"""The fake Binance, exercised directly over HTTP and websockets."""
from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import urlencode

import httpx
import pytest
import trio
import trio_websocket

from piker.testing.fakes.binance import open_fake_binance, sign
from piker.testing.fakes.binance._klines import INTERVALS


class Client:
    """A minimal signed Binance client (what a backend does)."""

    def __init__(self, fake, http: httpx.AsyncClient) -> None:
        self.fake = fake
        self.http = http
        self.h = {'X-MBX-APIKEY': fake.api_key}

    def signed_query(self, params: dict, ts: int | None = None, secret: str | None = None) -> str:
        q = urlencode({**params, 'timestamp': self.fake.now_ms() if ts is None else ts})
        return q + '&signature=' + sign(secret or self.fake.api_secret, q)

    async def signed(self, method: str, path: str, **params) -> httpx.Response:
        return await self.http.request(method, f'{path}?{self.signed_query(params)}', headers=self.h)

    async def order(self, **params) -> httpx.Response:
        base = {'symbol': 'BTCUSDT', 'type': 'LIMIT', 'timeInForce': 'GTC'}
        return await self.signed('POST', '/api/v3/order', **{**base, **params})


def run(fn, **kwargs):
    """Run `await fn(fake, client)` against a fresh fake (walk paused)."""
    async def main():
        kwargs.setdefault('quote_rate', 0)
        async with open_fake_binance(**kwargs) as fake, \
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


async def no_frame(ws, wait: float = 0.1) -> None:
    with trio.move_on_after(wait):
        msg = await ws.get_message()
        raise AssertionError(f'unexpected frame {msg}')


# -- public REST -------------------------------------------------------------


def test_ping_time_and_weight_header():
    async def main(fake, c):
        r = await c.http.get('/api/v3/ping')
        assert r.status_code == 200 and r.json() == {}
        assert r.headers['X-MBX-USED-WEIGHT-1M'] == '1'
        r = await c.http.get('/api/v3/time')
        assert abs(r.json()['serverTime'] - fake.now_ms()) < 2000
        assert r.headers['X-MBX-USED-WEIGHT-1M'] == '2'
    run(main)


def test_exchange_info_shape():
    async def main(fake, c):
        r = await c.http.get('/api/v3/exchangeInfo')
        body = r.json()
        assert r.headers['X-MBX-USED-WEIGHT-1M'] == '20'
        assert {s['symbol'] for s in body['symbols']} == {'BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'BNBUSDT', 'ETHBTC'}
        assert body['rateLimits'][0] == {'rateLimitType': 'REQUEST_WEIGHT', 'interval': 'MINUTE',
                                         'intervalNum': 1, 'limit': 6000}
        one = (await c.http.get('/api/v3/exchangeInfo', params={'symbol': 'BTCUSDT'})).json()
        (btc,) = one['symbols']
        assert (btc['baseAsset'], btc['quoteAsset'], btc['status']) == ('BTC', 'USDT', 'TRADING')
        filters = {f['filterType']: f for f in btc['filters']}
        assert filters['PRICE_FILTER']['tickSize'] == '0.01000000'
        assert filters['LOT_SIZE'] == {'filterType': 'LOT_SIZE', 'minQty': '0.00001000',
                                       'maxQty': '9000.00000000', 'stepSize': '0.00001000'}
        assert filters['NOTIONAL']['minNotional'] == '5.00000000'
        assert {'ICEBERG_PARTS', 'MAX_NUM_ORDERS', 'TRAILING_DELTA'} <= set(filters)
        two = (await c.http.get('/api/v3/exchangeInfo',
                                params={'symbols': '["ETHBTC","SOLUSDT"]'})).json()
        assert [s['symbol'] for s in two['symbols']] == ['ETHBTC', 'SOLUSDT']
        bad = await c.http.get('/api/v3/exchangeInfo', params={'symbol': 'NOPE'})
        assert bad.status_code == 400 and bad.json() == {'code': -1121, 'msg': 'Invalid symbol.'}
    run(main)


def test_book_ticker_single_and_all():
    async def main(fake, c):
        fake.push('ETHUSDT', bid=3000.5, ask=3000.51, bsize=2, asize=3)
        r = await c.http.get('/api/v3/ticker/bookTicker', params={'symbol': 'ETHUSDT'})
        assert r.json() == {'symbol': 'ETHUSDT', 'bidPrice': '3000.50000000', 'bidQty': '2.00000000',
                            'askPrice': '3000.51000000', 'askQty': '3.00000000'}
        assert r.headers['X-MBX-USED-WEIGHT-1M'] == '2'
        every = (await c.http.get('/api/v3/ticker/bookTicker')).json()
        assert len(every) == 5 and all(Decimal(t['bidPrice']) < Decimal(t['askPrice']) for t in every)
    run(main)


def _check_rows(rows, interval):
    iv = INTERVALS[interval] * 1000
    for prev, row in zip(rows, rows[1:], strict=False):
        assert row[0] > prev[0]
    for row in rows:
        assert len(row) == 12 and row[11] == '0'
        assert row[0] % iv == 0 if interval != '1w' else (row[0] - 4 * 86_400_000) % iv == 0
        assert row[6] == row[0] + iv - 1
        o, h, lo, cl = (Decimal(x) for x in row[1:5])
        assert lo <= min(o, cl) and max(o, cl) <= h
        assert isinstance(row[8], int)


def test_klines_alignment_paging_and_consistency():
    async def main(fake, c):
        now = fake.now_ms()
        get = lambda **p: c.http.get('/api/v3/klines', params={'symbol': 'BTCUSDT', **p})  # noqa: E731
        latest = (await get(interval='1m')).json()
        assert len(latest) == 500
        assert latest[-1][0] <= now < latest[-1][0] + 60_000
        _check_rows(latest, '1m')
        # paging forward from startTime continues exactly where a page ended
        start = latest[0][0] + 7  # not aligned: the first bar opens after it
        page1 = (await get(interval='1m', startTime=start, limit=100)).json()
        assert page1[0][0] == latest[1][0] and len(page1) == 100
        page2 = (await get(interval='1m', startTime=page1[-1][0] + 1, limit=100)).json()
        assert page2[0][0] == page1[-1][0] + 60_000
        assert page1 + page2 == latest[1:201]
        # the same bar is the same in every request; bars open at the last close
        assert all(a[4] == b[1] for a, b in zip(latest, latest[1:], strict=False))
        # endTime only: the last `limit` bars opening at or before it
        back = (await get(interval='1m', endTime=latest[100][0] + 5, limit=10)).json()
        assert back == latest[91:101]
        # a 1m bar is the aggregate of its 1s bars
        m = latest[-10]
        secs = (await get(interval='1s', startTime=m[0], endTime=m[0] + 59_999, limit=1000)).json()
        assert len(secs) == 60
        assert secs[0][1] == m[1] and secs[-1][4] == m[4]
        assert max(Decimal(s[2]) for s in secs) == Decimal(m[2])
        assert min(Decimal(s[3]) for s in secs) == Decimal(m[3])
        assert sum(Decimal(s[5]) for s in secs) == Decimal(m[5])
        assert sum(s[8] for s in secs) == m[8]
        for interval in ('1s', '5m', '1h', '1d', '1w'):
            _check_rows((await get(interval=interval, limit=50)).json(), interval)
        assert (await get(interval='1m', limit=5000)).json().__len__() == 1000
        bad = await get(interval='7m')
        assert bad.status_code == 400 and bad.json()['code'] == -1120
        bad = await get(interval='1m', startTime=now, endTime=now - 1)
        assert bad.json()['code'] == -1023
        assert (await get(interval='1m', startTime=now + 3_600_000)).json() == []
    run(main)


def test_klines_deterministic_per_seed():
    async def rows(fake, c):
        r = await c.http.get('/api/v3/klines', params={
            'symbol': 'ETHUSDT', 'interval': '1m', 'startTime': 1_700_000_000_000, 'limit': 5})
        return r.json()
    clock = lambda: 1_800_000_000.25  # noqa: E731  (history is anchored at the start)
    a, b, other = run(rows, seed=7, clock=clock), run(rows, seed=7, clock=clock), run(rows, seed=8, clock=clock)
    assert a == b and a != other


def test_klines_gaps_are_skipped():
    gap = (1_700_000_000_000 // 60_000 * 60_000 + 10 * 60_000, 1_700_000_000_000 // 60_000 * 60_000 + 70 * 60_000)

    async def main(fake, c):
        get = lambda **p: c.http.get('/api/v3/klines', params={'symbol': 'BTCUSDT', 'interval': '1m', **p})  # noqa: E731
        rows = (await get(startTime=gap[0] - 5 * 60_000, limit=10)).json()
        times = [r[0] for r in rows]
        assert times[:5] == [gap[0] - k * 60_000 for k in range(5, 0, -1)]
        assert times[5] == gap[1]  # the gap's bars do not exist
        inside = (await get(startTime=gap[0] + 60_000, limit=3)).json()
        assert inside[0][0] == gap[1]
        before = (await get(endTime=gap[1] - 1, limit=3)).json()
        assert [r[0] for r in before] == [gap[0] - 3 * 60_000, gap[0] - 2 * 60_000, gap[0] - 60_000]
        secs = (await c.http.get('/api/v3/klines', params={
            'symbol': 'BTCUSDT', 'interval': '1s', 'startTime': gap[0] - 2000, 'limit': 3})).json()
        assert [r[0] for r in secs] == [gap[0] - 2000, gap[0] - 1000, gap[1]]
    run(main, gaps={'BTCUSDT': [gap]})


def test_live_trades_make_the_current_bar():
    async def main(fake, c):
        fake.push('SOLUSDT', bid=150, ask=150.01, bsize=5, asize=5)
        fake.push('SOLUSDT', last=151.5, size=2)
        fake.push('SOLUSDT', last=149.25, size=3)
        (bar,) = (await c.http.get('/api/v3/klines', params={
            'symbol': 'SOLUSDT', 'interval': '1m', 'limit': 1})).json()
        assert Decimal(bar[2]) >= Decimal('151.5') and Decimal(bar[3]) <= Decimal('149.25')
        assert bar[4] == '149.25000000' and Decimal(bar[5]) >= 5 and bar[8] >= 2
    run(main)


# -- market streams ----------------------------------------------------------


def test_combined_and_raw_stream_frames_after_push():
    async def main(fake, c):
        url = f'{fake.ws_url}/stream?streams=btcusdt@bookTicker/btcusdt@trade'
        async with trio_websocket.open_websocket_url(url) as comb, \
                trio_websocket.open_websocket_url(f'{fake.ws_url}/ws/btcusdt@trade') as raw:
            out = fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1.5, asize=0.25,
                            last=64000.01, size=0.1)
            book, trade = await frames(comb, 2)
            assert book == {'stream': 'btcusdt@bookTicker', 'data': {
                'u': out['book']['u'], 's': 'BTCUSDT', 'b': '64000.00000000', 'B': '1.50000000',
                'a': '64000.01000000', 'A': '0.25000000'}}
            assert trade['stream'] == 'btcusdt@trade'
            t = trade['data']
            assert {k: t[k] for k in ('e', 's', 'p', 'q', 'm', 'M')} == {
                'e': 'trade', 's': 'BTCUSDT', 'p': '64000.01000000', 'q': '0.10000000',
                'm': False, 'M': True}
            assert isinstance(t['t'], int) and t['E'] == t['T']
            (raw_trade,) = await frames(raw, 1)
            assert raw_trade == t
            fake.push('BTCUSDT', last=63999.5, size=0.2)
            (t2,) = await frames(raw, 1)
            assert t2['t'] == t['t'] + 1 and t2['m'] is True  # a sell: the buyer made it
            fake.push('ETHUSDT', bid=3000, ask=3001)
            await no_frame(raw)
    run(main)


def test_subscribe_unsubscribe_and_list_on_the_socket():
    async def main(fake, c):
        async with trio_websocket.open_websocket_url(f'{fake.ws_url}/ws') as ws:
            await ws.send_message(json.dumps({'method': 'SUBSCRIBE', 'params': ['ethusdt@bookTicker'], 'id': 1}))
            assert await frames(ws, 1) == [{'result': None, 'id': 1}]
            fake.push('ETHUSDT', bid=3000, ask=3000.01)
            (book,) = await frames(ws, 1)
            assert book['s'] == 'ETHUSDT' and 'stream' not in book  # raw endpoint
            await ws.send_message(json.dumps({'method': 'LIST_SUBSCRIPTIONS', 'id': 'x'}))
            assert await frames(ws, 1) == [{'result': ['ethusdt@bookTicker'], 'id': 'x'}]
            await ws.send_message(json.dumps({'method': 'UNSUBSCRIBE', 'params': ['ethusdt@bookTicker'], 'id': 2}))
            assert await frames(ws, 1) == [{'result': None, 'id': 2}]
            fake.push('ETHUSDT', bid=3000, ask=3000.02)
            await no_frame(ws)
            await ws.send_message('not json')
            assert (await frames(ws, 1))[0]['error']['code'] == 3
            await ws.send_message(json.dumps({'method': 'SUBSCRIBE', 'params': ['bad'], 'id': 3}))
            (err,) = await frames(ws, 1)
            assert err['id'] == 3 and err['error']['code'] == 2
        async with trio_websocket.open_websocket_url(f'{fake.ws_url}/stream') as ws:
            await ws.send_message(json.dumps({'method': 'SUBSCRIBE', 'params': ['ethusdt@trade'], 'id': 9}))
            assert await frames(ws, 1) == [{'result': None, 'id': 9}]
            fake.push('ETHUSDT', last=3000.01)
            (t,) = await frames(ws, 1)
            assert t['stream'] == 'ethusdt@trade'
    run(main)


def test_same_seed_same_frames():
    async def main(fake, c):
        async with trio_websocket.open_websocket_url(
                f'{fake.ws_url}/stream?streams=btcusdt@bookTicker/btcusdt@trade') as ws:
            emitted = fake.step('BTCUSDT', n=30)
            got = await frames(ws, len([e for e in emitted if e is not None]))
            for f in got:
                f['data'].pop('E', None)
                f['data'].pop('T', None)
            return got
    a, b, c = run(main, seed=5), run(main, seed=5), run(main, seed=6)
    assert a == b and a != c
    assert any(f['stream'] == 'btcusdt@trade' for f in a)


# -- signed requests -----------------------------------------------------------


def test_signature_key_and_timestamp_checks():
    async def main(fake, c):
        path = '/api/v3/account'
        ok = await c.signed('GET', path)
        assert ok.status_code == 200 and ok.json()['accountType'] == 'SPOT'
        # signed over the body too (form-encoded POST body, timestamp in the body)
        body = c.signed_query({'symbol': 'BTCUSDT'})
        r = await c.http.request('GET', '/api/v3/openOrders', content=body, headers={
            **c.h, 'Content-Type': 'application/x-www-form-urlencoded'})
        assert r.status_code == 200 and r.json() == []
        # query + body concatenated
        q = urlencode({'symbol': 'BTCUSDT'})
        b = urlencode({'timestamp': fake.now_ms()})
        r = await c.http.request('GET', f'/api/v3/openOrders?{q}',
                                 content=f'{b}&signature={sign(fake.api_secret, q + b)}',
                                 headers={**c.h, 'Content-Type': 'application/x-www-form-urlencoded'})
        assert r.status_code == 200
        bad = await c.http.get(f'{path}?{c.signed_query({}, secret="x" * 64)}', headers=c.h)
        assert (bad.status_code, bad.json()) == (400, {
            'code': -1022, 'msg': 'Signature for this request is not valid.'})
        tampered = c.signed_query({'symbol': 'BTCUSDT'}).replace('BTCUSDT', 'ETHUSDT')
        assert (await c.http.get(f'/api/v3/openOrders?{tampered}', headers=c.h)).json()['code'] == -1022
        nokey = await c.http.get(f'{path}?{c.signed_query({})}')
        assert (nokey.status_code, nokey.json()['code']) == (401, -2014)
        wrong = await c.http.get(f'{path}?{c.signed_query({})}', headers={'X-MBX-APIKEY': 'k' * 64})
        assert (wrong.status_code, wrong.json()) == (401, {
            'code': -2015, 'msg': 'Invalid API-key, IP, or permissions for action.'})
        old = await c.http.get(f'{path}?{c.signed_query({}, ts=fake.now_ms() - 6000)}', headers=c.h)
        assert (old.status_code, old.json()['code']) == (400, -1021)
        q = urlencode({'recvWindow': 10000, 'timestamp': fake.now_ms() - 6000})
        wide = await c.http.get(f'{path}?{q}&signature={sign(fake.api_secret, q)}', headers=c.h)
        assert wide.status_code == 200
        ahead = await c.http.get(f'{path}?{c.signed_query({}, ts=fake.now_ms() + 5000)}', headers=c.h)
        assert ahead.json()['code'] == -1021
        unsigned = await c.http.get(f'{path}?timestamp={fake.now_ms()}', headers=c.h)
        assert unsigned.json()['code'] == -1102
        assert 'signature' not in json.dumps(fake.request_log())
    run(main)


async def open_user(fake, c, nursery):
    key = (await c.http.post('/api/v3/userDataStream', headers=c.h)).json()['listenKey']
    return key, await trio_websocket.connect_websocket_url(nursery, f'{fake.ws_url}/ws/{key}')


def reports(events):
    return [e for e in events if e['e'] == 'executionReport']


def test_limit_order_partial_fill_then_rest_then_cross():
    async def main(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=0.004)
        async with trio.open_nursery() as n:
            _, ws = await open_user(fake, c, n)
            r = await c.order(side='BUY', quantity='0.01', price='64000.02', newClientOrderId='mine1')
            body = r.json()
            assert r.status_code == 200, body
            assert r.headers['X-MBX-ORDER-COUNT-10S'] == '1'
            assert (body['status'], body['executedQty'], body['clientOrderId']) == (
                'PARTIALLY_FILLED', '0.00400000', 'mine1')
            (fill,) = body['fills']
            assert fill['price'] == '64000.01000000' and fill['commissionAsset'] == 'USDT'
            assert Decimal(fill['commission']) == Decimal('0.004') * Decimal('64000.01') * Decimal('0.001')
            new, trade, pos = await frames(ws, 3)
            assert (new['x'], new['X'], new['c'], new['i']) == ('NEW', 'NEW', 'mine1', body['orderId'])
            assert (trade['x'], trade['X'], trade['l'], trade['L'], trade['m']) == (
                'TRADE', 'PARTIALLY_FILLED', '0.00400000', '64000.01000000', False)
            assert trade['t'] == fill['tradeId'] and trade['n'] == fill['commission']
            assert pos['e'] == 'outboundAccountPosition'
            bal = fake.balances()
            assert Decimal(bal['BTC']['free']) == Decimal('1.004')
            locked = Decimal(bal['USDT']['locked'])
            assert locked == (Decimal('0.006') * Decimal('64000.02') * Decimal('1.001')).quantize(Decimal('1e-8'))
            # the ask comes down through the resting buy: it fills at its limit, as maker
            fake.push('BTCUSDT', bid=63999, ask=64000.02, bsize=1, asize=0.002)
            (t2,) = reports(await frames(ws, 2))
            assert (t2['X'], t2['l'], t2['L'], t2['m']) == ('PARTIALLY_FILLED', '0.00200000', '64000.02000000', True)
            # a public trade through it fills the rest
            fake.push('BTCUSDT', last=64000.0, size=1)
            (t3,) = reports(await frames(ws, 2))
            assert (t3['X'], t3['z'], t3['w']) == ('FILLED', '0.01000000', False)
            assert Decimal(t3['Z']) == Decimal('0.004') * Decimal('64000.01') + Decimal('0.006') * Decimal('64000.02')
            assert fake.balances()['USDT']['locked'] == '0.00000000'
            q = (await c.signed('GET', '/api/v3/order', symbol='BTCUSDT', origClientOrderId='mine1')).json()
            assert (q['status'], q['executedQty'], q['cummulativeQuoteQty']) == ('FILLED', '0.01000000', t3['Z'])
            mine = (await c.signed('GET', '/api/v3/myTrades', symbol='BTCUSDT')).json()
            assert [t['qty'] for t in mine] == ['0.00400000', '0.00200000', '0.00400000']
            assert [t['isMaker'] for t in mine] == [False, True, True]
            assert mine[0]['id'] < mine[1]['id'] < mine[2]['id']
            assert (await c.signed('GET', '/api/v3/myTrades', symbol='BTCUSDT', fromId=mine[1]['id'])).json() == mine[1:]
            await ws.aclose()
            n.cancel_scope.cancel()
    run(main)


def test_cancel_open_orders_and_account():
    async def main(fake, c):
        fake.push('ETHUSDT', bid=3000, ask=3000.5, bsize=10, asize=10)
        async with trio.open_nursery() as n:
            _, ws = await open_user(fake, c, n)
            a = (await c.order(symbol='ETHUSDT', side='BUY', quantity='1', price='2900', newOrderRespType='ACK')).json()
            assert set(a) == {'symbol', 'orderId', 'orderListId', 'clientOrderId', 'transactTime'}
            b = (await c.order(symbol='ETHUSDT', side='SELL', quantity='2', price='3100', newOrderRespType='RESULT')).json()
            assert b['status'] == 'NEW' and 'fills' not in b
            await frames(ws, 4)
            acct = (await c.signed('GET', '/api/v3/account')).json()
            bal = {x['asset']: x for x in acct['balances']}
            assert bal['ETH'] == {'asset': 'ETH', 'free': '8.00000000', 'locked': '2.00000000'}
            assert bal['USDT']['locked'] == '2902.90000000'  # 2900 + its commission
            assert acct['takerCommission'] == 10 and acct['commissionRates']['taker'] == '0.00100000'
            opened = (await c.signed('GET', '/api/v3/openOrders', symbol='ETHUSDT')).json()
            assert [o['orderId'] for o in opened] == [a['orderId'], b['orderId']]
            r = await c.signed('DELETE', '/api/v3/order', symbol='ETHUSDT', orderId=a['orderId'],
                               newClientOrderId='cxl1')
            body = r.json()
            assert (body['status'], body['origClientOrderId'], body['clientOrderId']) == (
                'CANCELED', a['clientOrderId'], 'cxl1')
            rep, pos = await frames(ws, 2)
            assert (rep['x'], rep['X'], rep['c'], rep['C']) == ('CANCELED', 'CANCELED', 'cxl1', a['clientOrderId'])
            assert pos['B'] == [{'a': 'USDT', 'f': '10000.00000000', 'l': '0.00000000'}]
            again = await c.signed('DELETE', '/api/v3/order', symbol='ETHUSDT', orderId=a['orderId'])
            assert (again.status_code, again.json()) == (400, {'code': -2011, 'msg': 'Unknown order sent.'})
            r = await c.signed('DELETE', '/api/v3/order', symbol='ETHUSDT', origClientOrderId=b['clientOrderId'])
            assert r.json()['status'] == 'CANCELED'
            assert (await c.signed('GET', '/api/v3/openOrders')).json() == []
            nope = await c.signed('GET', '/api/v3/order', symbol='ETHUSDT', orderId=999)
            assert nope.json() == {'code': -2013, 'msg': 'Order does not exist.'}
            assert fake.balances()['ETH'] == {'free': '10.00000000', 'locked': '0.00000000'}
            await ws.aclose()
            n.cancel_scope.cancel()
    run(main)


def test_order_rejections():
    async def main(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)

        async def code(**p):
            r = await c.order(**p)
            assert r.status_code == 400
            return r.json()

        assert await code(side='BUY', quantity='0.01', price='64000.005') == {
            'code': -1013, 'msg': 'Filter failure: PRICE_FILTER'}
        assert (await code(side='BUY', quantity='0.000015', price='64000'))['msg'] == 'Filter failure: LOT_SIZE'
        assert (await code(side='BUY', quantity='0.00005', price='64000'))['msg'] == 'Filter failure: NOTIONAL'
        assert await code(side='BUY', quantity='1', price='64000') == {
            'code': -2010, 'msg': 'Account has insufficient balance for requested action.'}
        assert (await code(side='SELL', quantity='2', price='65000'))['code'] == -2010
        assert (await code(side='BUY', quantity='0.01'))['code'] == -1102
        assert (await code(side='BUY', type='LIMIT_MAKER', timeInForce='', quantity='0.01',
                           price='64000.01'))['msg'] == 'Order would immediately match and take.'
        assert (await code(symbol='XYZ', side='BUY', quantity='1', price='1'))['code'] == -1121
        assert fake.orders() == [] and fake.balances()['USDT']['locked'] == '0.00000000'
    run(main)


def test_cancel_replace():
    async def main(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
        first = (await c.order(side='BUY', quantity='0.01', price='63000', newClientOrderId='a')).json()
        r = await c.signed('POST', '/api/v3/order/cancelReplace', symbol='BTCUSDT', side='BUY',
                           type='LIMIT', timeInForce='GTC', quantity='0.02', price='63500',
                           cancelReplaceMode='STOP_ON_FAILURE', cancelOrderId=first['orderId'],
                           newClientOrderId='b')
        body = r.json()
        assert r.status_code == 200, body
        assert (body['cancelResult'], body['newOrderResult']) == ('SUCCESS', 'SUCCESS')
        assert body['cancelResponse']['status'] == 'CANCELED'
        assert body['cancelResponse']['origClientOrderId'] == 'a'
        assert (body['newOrderResponse']['clientOrderId'], body['newOrderResponse']['origQty']) == ('b', '0.02000000')
        assert [o['clientOrderId'] for o in fake.orders(open_only=True)] == ['b']
        # the order to cancel is gone: nothing is placed
        r = await c.signed('POST', '/api/v3/order/cancelReplace', symbol='BTCUSDT', side='BUY',
                           type='LIMIT', timeInForce='GTC', quantity='0.02', price='63600',
                           cancelReplaceMode='STOP_ON_FAILURE', cancelOrderId=first['orderId'])
        assert r.status_code == 400
        assert r.json() == {'code': -2022, 'msg': 'Order cancel-replace failed.', 'data': {
            'cancelResult': 'FAILURE', 'newOrderResult': 'NOT_ATTEMPTED',
            'cancelResponse': {'code': -2011, 'msg': 'Unknown order sent.'}, 'newOrderResponse': None}}
        # cancelled, but the new order fails a filter
        r = await c.signed('POST', '/api/v3/order/cancelReplace', symbol='BTCUSDT', side='BUY',
                           type='LIMIT', timeInForce='GTC', quantity='0.02', price='63600.001',
                           cancelReplaceMode='STOP_ON_FAILURE', cancelOrigClientOrderId='b')
        body = r.json()
        assert (body['code'], body['data']['cancelResult'], body['data']['newOrderResult']) == (
            -2021, 'SUCCESS', 'FAILURE')
        assert body['data']['newOrderResponse'] == {'code': -1013, 'msg': 'Filter failure: PRICE_FILTER'}
        assert fake.orders(open_only=True) == []
    run(main)


def test_commission_in_bnb_and_in_the_received_asset():
    async def bnb(fake, c):
        fake.push('BNBUSDT', bid=599.99, ask=600.01, bsize=100, asize=100)
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
        fill = (await c.order(side='SELL', quantity='0.01', price='64000')).json()['fills'][0]
        assert fill['commissionAsset'] == 'BNB'
        expect = (Decimal('640') * Decimal('0.001') * Decimal('0.75') / Decimal('600')).quantize(Decimal('1e-8'))
        assert Decimal(fill['commission']) == expect
        assert Decimal(fake.balances()['BNB']['free']) == 10 - expect
        assert Decimal(fake.balances()['USDT']['free']) == 10000 + 640

    async def received(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
        fill = (await c.order(side='BUY', quantity='0.01', price='64000.01')).json()['fills'][0]
        assert (fill['commissionAsset'], fill['commission']) == ('BTC', '0.00001000')
        assert fake.balances()['BTC']['free'] == '1.00999000'

    run(bnb, commission_asset='BNB')
    run(received, commission_asset='received')


# -- user data stream ------------------------------------------------------------


def test_listen_key_keepalive_close_and_expiry():
    now = [1_800_000_000.0]

    async def main(fake, c):
        key = (await c.http.post('/api/v3/userDataStream', headers=c.h)).json()['listenKey']
        assert len(key) == 60
        nokey = await c.http.post('/api/v3/userDataStream')
        assert (nokey.status_code, nokey.json()['code']) == (401, -2014)
        # the same key while it lives
        assert (await c.http.post('/api/v3/userDataStream', headers=c.h)).json()['listenKey'] == key
        async with trio_websocket.open_websocket_url(f'{fake.ws_url}/ws/{key}') as ws:
            now[0] += 50
            r = await c.http.put('/api/v3/userDataStream', params={'listenKey': key}, headers=c.h)
            assert (r.status_code, r.json()) == (200, {})
            now[0] += 50  # 100 s since creation, 50 since the keepalive
            assert fake.user_stream.is_live(key)
            fake.deposit('USDT', '5')
            upd, pos = await frames(ws, 2)
            assert {k: upd[k] for k in ('e', 'a', 'd')} == {'e': 'balanceUpdate', 'a': 'USDT', 'd': '5.00000000'}
            assert pos['B'] == [{'a': 'USDT', 'f': '10005.00000000', 'l': '0.00000000'}]
            now[0] += 60
            assert fake.user_stream.expire() == [key]
            (expired,) = await frames(ws, 1)
            assert expired == {'e': 'listenKeyExpired', 'E': int(now[0] * 1000), 'listenKey': key}
            with pytest.raises(trio_websocket.ConnectionClosed):
                await ws.get_message()
        r = await c.http.put('/api/v3/userDataStream', params={'listenKey': key}, headers=c.h)
        assert r.json() == {'code': -1125, 'msg': 'This listenKey does not exist.'}
        key2 = (await c.http.post('/api/v3/userDataStream', headers=c.h)).json()['listenKey']
        assert key2 != key
        r = await c.http.delete('/api/v3/userDataStream', params={'listenKey': key2}, headers=c.h)
        assert r.json() == {}
        assert not fake.user_stream.is_live(key2)
    run(main, clock=lambda: now[0], listen_key_ttl=100)


# -- rate limits -------------------------------------------------------------------


def test_weight_limit_429_retry_after_then_418():
    now = [1_800_000_000.0]  # a minute boundary

    async def main(fake, c):
        for k in range(1, 4):
            r = await c.http.get('/api/v3/klines', params={'symbol': 'BTCUSDT', 'interval': '1m', 'limit': 1})
            assert r.headers['X-MBX-USED-WEIGHT-1M'] == str(2 * k)
        now[0] += 15
        r = await c.http.get('/api/v3/exchangeInfo')  # 6 + 20 > 25
        assert r.status_code == 429
        assert r.headers['Retry-After'] == '45'
        assert r.json()['code'] == -1003 and 'request weight is 25 per 1 MINUTE' in r.json()['msg']
        r = await c.http.get('/api/v3/ping')  # still limited
        assert (r.status_code, r.headers['Retry-After']) == (429, '45')
        r = await c.http.get('/api/v3/ping')
        assert r.status_code == 429
        r = await c.http.get('/api/v3/ping')  # the third while limited: banned
        assert r.status_code == 418
        assert r.headers['Retry-After'] == '120' and 'banned until' in r.json()['msg']
        now[0] += 60
        assert (await c.http.get('/api/v3/ping')).status_code == 418
        now[0] += 61
        r = await c.http.get('/api/v3/ping')
        assert (r.status_code, r.headers['X-MBX-USED-WEIGHT-1M']) == (200, '1')
    run(main, clock=lambda: now[0], weight_limit=25)


def test_order_count_limit():
    async def main(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
        for _ in range(3):
            assert (await c.order(side='BUY', quantity='0.001', price='60000')).status_code == 200
        r = await c.order(side='BUY', quantity='0.001', price='60000')
        assert (r.status_code, r.json()['code']) == (429, -1015)
        assert r.headers['X-MBX-ORDER-COUNT-10S'] == '4'
    run(main, orders_10s=3)


# -- faults ----------------------------------------------------------------------


def test_fault_rate_limit_and_server_errors():
    async def main(fake, c):
        fake.faults.rate_limit(2, retry_after=3)
        for _ in range(2):
            r = await c.http.get('/api/v3/ping')
            assert (r.status_code, r.headers['Retry-After']) == (429, '3')
        assert (await c.http.get('/api/v3/ping')).status_code == 200
        fake.faults.server_errors(1)
        r = await c.http.get('/api/v3/time')
        assert (r.status_code, r.json()['code']) == (503, -1001)
        assert (await c.http.get('/api/v3/time')).status_code == 200
        assert [x['status'] for x in fake.request_log('/api/v3/ping')] == [429, 429, 200]
    run(main)


def test_fault_disconnect_streams():
    async def main(fake, c):
        async with trio.open_nursery() as n:
            _, user = await open_user(fake, c, n)
            market = await trio_websocket.connect_websocket_url(n, f'{fake.ws_url}/ws/btcusdt@trade')
            assert fake.faults.disconnect_streams('market') == 1
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await market.get_message()
            assert info.value.reason.code == 1001
            fake.deposit('BTC', 1)
            assert len(await frames(user, 2)) == 2  # the user stream is still up
            assert fake.faults.disconnect_streams('user') == 1
            with pytest.raises(trio_websocket.ConnectionClosed):
                await user.get_message()
            # clients reconnect and get frames again
            async with trio_websocket.open_websocket_url(f'{fake.ws_url}/ws/btcusdt@trade') as again:
                fake.push('BTCUSDT', last=64000)
                assert (await frames(again, 1))[0]['e'] == 'trade'
            n.cancel_scope.cancel()
    run(main)


def test_fault_delayed_ack_report_comes_first():
    async def main(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
        fake.faults.delay_acks(0.3)
        seen: list[str] = []
        async with trio.open_nursery() as n:
            _, ws = await open_user(fake, c, n)

            async def place():
                r = await c.order(side='BUY', quantity='0.001', price='60000')
                seen.append('ack:' + r.json()['status'])

            n.start_soon(place)
            (new,) = reports(await frames(ws, 2))
            seen.append('report:' + new['x'])
            await trio.sleep(0.5)
            assert seen == ['report:NEW', 'ack:NEW']
            n.cancel_scope.cancel()
    run(main)


def test_fault_duplicate_and_reordered_reports():
    async def main(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=0.001)
        async with trio.open_nursery() as n:
            _, ws = await open_user(fake, c, n)
            fake.faults.duplicate_reports(1)
            await c.order(side='BUY', quantity='0.001', price='60000')
            got = reports(await frames(ws, 3))
            assert [r['x'] for r in got] == ['NEW', 'NEW'] and got[0] == got[1]
            fake.faults.reorder_reports(1)
            r = (await c.order(side='BUY', quantity='0.002', price='64000.01')).json()
            assert r['status'] == 'PARTIALLY_FILLED'
            got = reports(await frames(ws, 3))
            assert [(x['x'], x['X']) for x in got] == [('TRADE', 'PARTIALLY_FILLED'), ('NEW', 'NEW')]
            n.cancel_scope.cancel()
    run(main)


def test_fill_while_away_is_only_seen_over_rest():
    async def main(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
        async with trio.open_nursery() as n:
            key, ws = await open_user(fake, c, n)
            oid = (await c.order(side='BUY', quantity='0.001', price='60000')).json()['orderId']
            await frames(ws, 2)
            fills = fake.fill_while_away(oid)
            assert [f['qty'] for f in fills] == ['0.00100000']
            with pytest.raises(trio_websocket.ConnectionClosed):
                while True:  # nothing after the fill reaches the old socket
                    msg = json.loads(await ws.get_message())
                    assert msg['e'] != 'executionReport', msg
            again = await trio_websocket.connect_websocket_url(n, f'{fake.ws_url}/ws/{key}')
            await no_frame(again)
            q = (await c.signed('GET', '/api/v3/order', symbol='BTCUSDT', orderId=oid)).json()
            assert q['status'] == 'FILLED'
            n.cancel_scope.cancel()
    run(main)


# -- thread runner, control API, CLI ----------------------------------------------


def test_thread_runner_and_http_control(fake_binance):
    from piker.testing import ControlClient
    fake = fake_binance
    toml = fake.config_toml()
    assert f'rest_url = "{fake.rest_url}"' in toml and 'accounts = ["paper", "spot"]' in toml
    assert fake.api_secret not in repr(fake)
    out = fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=1)
    assert out['book']['b'] == '64000.00000000'
    fake.faults.delay_acks(0.01)
    with ControlClient(fake.rest_url) as ctl:
        ctl.push('BTCUSDT', bid=63000, ask=63000.01)
        r = httpx.get(f'{fake.rest_url}/api/v3/ticker/bookTicker', params={'symbol': 'BTCUSDT'})
        assert r.json()['bidPrice'] == '63000.00000000'
        assert ctl.fault('state')['ack_delay'] == 0.01
        ctl.fault('server_errors', n=1)
        assert httpx.get(f'{fake.rest_url}/api/v3/ping').status_code == 503
        assert ctl.get('orders') == [] and ctl.get('balances')['USDT']['free'] == '10000.00000000'
        with pytest.raises(ValueError, match='bid must be a finite number'):
            ctl.push('BTCUSDT', bid=-1)
        with pytest.raises(ValueError, match='Invalid symbol'):
            ctl.push('NOPE', bid=1)
        with pytest.raises(ValueError, match='no control'):
            ctl.call('api_secret')


def test_cli_prints_the_brokers_toml_lines():
    import signal
    import subprocess
    import sys
    proc = subprocess.Popen(
        [sys.executable, '-c', 'from piker.cli import main; main()', 'fake', 'binance',
         '--port', '0', '--quote-rate', '0'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while len(lines) < 8:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        text = ''.join(lines)
        assert '[binance]' in text and 'api_secret = "' in text
        rest = text.split('rest_url = "', 1)[1].split('"', 1)[0]
        assert httpx.get(f'{rest}/api/v3/ping').json() == {}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_walk_runs_at_quote_rate_and_push_pauses_it():
    async def main(fake, c):
        async with trio_websocket.open_websocket_url(f'{fake.ws_url}/ws/btcusdt@bookTicker') as ws:
            got = await frames(ws, 3)
            assert [f['u'] for f in got] == sorted({f['u'] for f in got})
            fake.push('BTCUSDT', bid=64000, ask=64000.01)
            with trio.move_on_after(0.3):
                while (await frames(ws, 1))[0]['b'] != '64000.00000000':
                    pass
            await no_frame(ws, 0.2)  # paused
            fake.resume('BTCUSDT')
            (moved,) = await frames(ws, 1)
            assert abs(Decimal(moved['b']) - 64000) < 100  # resumed from the pushed prices
    run(main, quote_rate=50, symbols=['BTCUSDT'])


def test_an_emptied_touch_shows_the_next_level():
    async def main(fake, c):
        fake.push('BTCUSDT', bid=64000, ask=64000.01, bsize=1, asize=0.003)
        async with trio_websocket.open_websocket_url(f'{fake.ws_url}/ws/btcusdt@bookTicker') as ws:
            r = (await c.order(side='BUY', quantity='0.005', price='64000.01')).json()
            assert (r['status'], r['executedQty']) == ('PARTIALLY_FILLED', '0.00300000')
            (book,) = await frames(ws, 1)
            assert (book['a'], book['A']) == ('64000.02000000', '0.80000000')
            # the rest waits at its limit, below the new ask
            assert fake.orders(open_only=True)[0]['executedQty'] == '0.00300000'
    run(main)


def test_server_sends_ping_frames():
    import wsproto
    from wsproto.events import AcceptConnection, Ping, Request

    async def main(fake, c):
        stream = await trio.open_tcp_stream(fake.host, fake.port)
        ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host='localhost', target='/ws/btcusdt@trade')))
        events = []
        with trio.fail_after(3):
            while not any(isinstance(e, Ping) for e in events):
                ws.receive_data(await stream.receive_some(4096))
                events += list(ws.events())
        assert isinstance(events[0], AcceptConnection)
        await stream.aclose()
    run(main, ping_interval=0.1)


def test_slow_consumer_is_disconnected(monkeypatch):
    from piker.testing.fakes.binance import _streams
    monkeypatch.setattr(_streams, 'OUTBOX', 5)

    async def main(fake, c):
        async with trio_websocket.open_websocket_url(f'{fake.ws_url}/ws/btcusdt@trade') as ws:
            for k in range(20):  # no await in between: the outbox overflows
                fake.push('BTCUSDT', last=64000 + k)
            got = []
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                while True:
                    got.append(await ws.get_message())
            assert 5 <= len(got) <= 6 and info.value.reason.code == 1008  # + one in hand
    run(main)


def test_unknown_stream_or_listen_key_is_refused():
    async def main(fake, c):
        for path in ('/ws/notakey', '/stream?streams=btcusdt@nope'):
            with pytest.raises(trio_websocket.HandshakeError):
                async with trio_websocket.open_websocket_url(fake.ws_url + path):
                    pass
    run(main)


@pytest.mark.parametrize('commission_asset', ['quote', 'received', 'BNB'])
def test_engine_conserves_balances_under_a_random_script(commission_asset):
    """Every unit is accounted for: balances move by exactly the fills and
    commissions, locked funds are exactly what open orders hold, and
    nothing goes negative, whatever the order/quote sequence."""
    import random

    from piker.testing.fakes.binance import BinanceError, FakeBinance
    fake = FakeBinance(seed=3, quote_rate=0, commission_asset=commission_asset,
                       symbols=['BTCUSDT', 'BNBUSDT'])
    eng = fake.engine
    start = {a: eng.free[a] + eng.locked[a] for a in eng.free}
    rng = random.Random(11)
    fake.push('BNBUSDT', bid=600, ask=600.02, bsize=50, asize=50)
    mid = 64000.0
    for _ in range(400):
        act = rng.random()
        if act < 0.4:
            mid += rng.choice((-1, 1)) * rng.randrange(0, 300) / 100
            fake.push('BTCUSDT', bid=round(mid, 2), ask=round(mid + 0.01 * rng.randrange(1, 4), 2),
                      bsize=rng.randrange(1, 50) / 1000, asize=rng.randrange(1, 50) / 1000)
        elif act < 0.55:
            fake.push('BTCUSDT', last=round(mid + rng.randrange(-200, 200) / 100, 2),
                      size=rng.randrange(1, 30) / 1000)
        elif act < 0.9:
            price = round(mid + rng.randrange(-300, 300) / 100, 2)
            try:
                eng.place({'symbol': 'BTCUSDT', 'side': rng.choice(('BUY', 'SELL')),
                           'type': 'LIMIT', 'timeInForce': rng.choice(('GTC', 'GTC', 'IOC', 'FOK')),
                           'quantity': str(rng.randrange(1, 40) / 1000), 'price': f'{price:.2f}'})
            except BinanceError as e:
                assert e.code == -2010  # only balance can refuse these
        else:
            live = fake.orders('BTCUSDT', open_only=True)
            if live:
                eng.cancel({'symbol': 'BTCUSDT', 'orderId': str(rng.choice(live)['orderId'])})
        for a in eng.free:
            assert eng.free[a] >= 0 and eng.locked[a] >= 0, (a, eng.free[a], eng.locked[a])
        held: dict[str, Decimal] = {}
        for o in eng.orders.values():
            if o.is_open:
                held[o.lock_asset] = held.get(o.lock_asset, Decimal(0)) + o.locked
        assert all(eng.locked[a] == held.get(a, 0) for a in eng.locked)
    trades = fake.trades()
    assert len(trades) > 20
    delta = {a: Decimal(0) for a in eng.free}
    for t in trades:
        qty, quote = Decimal(t['qty']), Decimal(t['quoteQty'])
        delta['BTC'] += qty if t['isBuyer'] else -qty
        delta['USDT'] += -quote if t['isBuyer'] else quote
        delta[t['commissionAsset']] -= Decimal(t['commission'])
    for a in eng.free:
        assert eng.free[a] + eng.locked[a] == start[a] + delta[a], a
    if commission_asset == 'BNB':
        assert {t['commissionAsset'] for t in trades} == {'BNB'}
