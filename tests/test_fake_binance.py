"""The fake Binance, exercised directly over HTTP and websockets."""
from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import urlencode

import httpx
import trio

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
    a, b, other = run(rows, seed=7), run(rows, seed=7), run(rows, seed=8)
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
