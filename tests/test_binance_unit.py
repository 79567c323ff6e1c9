"""`piker.brokers.binance` without a network: parsing, ids, order event
translation, REST signing/rate limits/errors, and the `[binance]` config.
Fixtures are small hand-written samples of Binance's documented shapes."""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from decimal import Decimal
from urllib.parse import parse_qsl

import httpx
import pytest
import trio
from pydantic import SecretStr

from piker.brokers import SymbolNotFound
from piker.brokers.binance._feed import L1, stream_url
from piker.brokers.binance._history import fetch_bars, rows_to_bars
from piker.brokers.binance._markets import MarketCache, parse_exchange_info, search_keys
from piker.brokers.binance._orders import (
    ExecReport,
    LiveOrder,
    Tracker,
    client_id,
    fee_in_quote,
    parse_client_id,
)
from piker.brokers.binance._rest import (
    AuthError,
    BinanceError,
    Client,
    IPBanned,
    RateLimited,
)
from piker.clearing._messages import (
    BrokerdError,
    BrokerdFill,
    BrokerdOrderAck,
    BrokerdStatus,
)
from piker.config import BinanceConf, ConfigError, load_brokers_conf

EXCHANGE_INFO = {
    'timezone': 'UTC',
    'serverTime': 1700000000000,
    'rateLimits': [
        {'rateLimitType': 'ORDERS', 'interval': 'SECOND', 'intervalNum': 10, 'limit': 50},
        {'rateLimitType': 'REQUEST_WEIGHT', 'interval': 'MINUTE', 'intervalNum': 1,
         'limit': 1200},
    ],
    'someNewTopLevelField': {'x': 1},
    'symbols': [
        {
            'symbol': 'BTCUSDT', 'status': 'TRADING', 'baseAsset': 'BTC',
            'baseAssetPrecision': 8, 'quoteAsset': 'USDT', 'quoteAssetPrecision': 8,
            'isSpotTradingAllowed': True, 'aBrandNewFlag': True,
            'filters': [
                {'filterType': 'PRICE_FILTER', 'minPrice': '0.01000000',
                 'maxPrice': '1000000.00000000', 'tickSize': '0.01000000'},
                {'filterType': 'LOT_SIZE', 'minQty': '0.00001000',
                 'maxQty': '9000.00000000', 'stepSize': '0.00001000'},
                {'filterType': 'NOTIONAL', 'minNotional': '5.00000000',
                 'applyMinToMarket': True},
                {'filterType': 'SOME_FUTURE_FILTER', 'whatever': 3},
            ],
        },
        {
            'symbol': 'ETHBTC', 'status': 'BREAK', 'baseAsset': 'ETH',
            'baseAssetPrecision': 8, 'quoteAsset': 'BTC', 'quoteAssetPrecision': 8,
            'filters': [
                {'filterType': 'PRICE_FILTER', 'tickSize': '0.00001000'},
                {'filterType': 'LOT_SIZE', 'minQty': '0.0001', 'stepSize': '0.0001'},
                {'filterType': 'MIN_NOTIONAL', 'minNotional': '0.0001'},
            ],
        },
        # no filters at all: ticks fall back to the asset precisions
        {'symbol': 'DOGEUSDT', 'baseAsset': 'DOGE', 'quoteAsset': 'USDT',
         'baseAssetPrecision': 0, 'quoteAssetPrecision': 5},
        # margin-only: not a spot market
        {'symbol': 'XYZUSDT', 'baseAsset': 'XYZ', 'quoteAsset': 'USDT',
         'isSpotTradingAllowed': False},
    ],
}


# -- markets ------------------------------------------------------------------

def test_exchange_info_exact_ticks_and_filters():
    markets = parse_exchange_info(json.dumps(EXCHANGE_INFO).encode())
    assert sorted(markets) == ['btcusdt', 'dogeusdt', 'ethbtc']
    btc = markets['btcusdt']
    assert btc.mkt.fqme == 'btcusdt.binance'
    assert btc.mkt.price_tick == Decimal('0.01')
    assert btc.mkt.size_tick == Decimal('0.00001')
    assert btc.min_notional == Decimal('5') and btc.min_qty == Decimal('0.00001')
    assert btc.mkt.bs_mktid == 'BTCUSDT' and btc.trading
    eth = markets['ethbtc']
    assert eth.min_notional == Decimal('0.0001')  # older MIN_NOTIONAL filter
    assert not eth.trading
    doge = markets['dogeusdt']
    assert doge.mkt.size_tick == Decimal(1) and doge.mkt.price_tick == Decimal('0.00001')


def test_exchange_info_garbage_is_a_clear_error():
    with pytest.raises(ValueError, match='exchangeInfo did not parse'):
        parse_exchange_info(b'{"symbols": 3}')


def test_search_ranks_exact_then_prefix_then_substring():
    markets = parse_exchange_info(json.dumps(EXCHANGE_INFO).encode())
    assert search_keys(markets, 'btcusdt')[0] == 'btcusdt'
    assert search_keys(markets, 'BTC') == ['btcusdt', 'ethbtc']
    assert search_keys(markets, 'usdt.binance') == ['btcusdt', 'dogeusdt']


class _InfoClient:
    def __init__(self) -> None:
        self.calls = 0
        self.weight_limit = 6000

    async def exchange_info(self) -> bytes:
        self.calls += 1
        return json.dumps(EXCHANGE_INFO).encode()


def test_market_cache_refreshes_on_unknown_symbol_at_most_every_few_seconds():
    async def main():
        cache, client = MarketCache(), _InfoClient()
        assert (await cache.get(client, 'btcusdt.binance')).symbol == 'BTCUSDT'
        assert client.calls == 1
        assert client.weight_limit == 1200  # as exchangeInfo announces it
        with pytest.raises(SymbolNotFound, match="no Binance spot market 'btcuss'"):
            await cache.get(client, 'btcuss')
        assert client.calls == 1  # fetched just now: no refetch
        cache.fetched_at -= 60
        with pytest.raises(SymbolNotFound, match='close matches: btcusdt.binance'):
            await cache.get(client, 'btcuss')
        assert client.calls == 2

    trio.run(main)


# -- history ----------------------------------------------------------------------

def _kline(t_s: int, price: float) -> list:
    p = str(price)
    return [t_s * 1000, p, str(price + 1), str(price - 1), p, '1.5',
            t_s * 1000 + 59_999, '0', 3, '0', '0', '0']


class _KlineClient:
    """Serves minute bars for [first, last] except the `missing` ones, like
    Binance: at most `limit` bars from the first at or after startTime."""

    def __init__(self, first: int, last: int, missing: set[int]) -> None:
        self.times = [t for t in range(first, last + 1, 60) if t not in missing]
        self.requests: list[int] = []

    async def klines(self, symbol, interval, start_ms, limit=1000, end_ms=None):
        assert interval == '1m' and limit == 1000
        self.requests.append(start_ms)
        rows = [_kline(t, 100.0 + i) for i, t in enumerate(self.times)
                if t * 1000 >= start_ms and (end_ms is None or t * 1000 <= end_ms)]
        return rows[:limit]


def test_history_pages_by_start_time_and_keeps_gaps():
    first = 1_700_000_040 // 60 * 60
    last = first + 2499 * 60
    missing = {first + 60 * 10, first + 60 * 1500}
    client = _KlineClient(first, last, missing)
    bars = trio.run(lambda: fetch_bars(client, 'BTCUSDT', 60, start=first, end=last))
    assert len(client.requests) == 3  # 1000 + 1000 + 498 bars
    assert len(bars) == 2500 - 2
    assert not (set(bars['time'].tolist()) & missing)  # gaps stay gaps
    assert (bars['time'][1:] > bars['time'][:-1]).all()
    assert bars['time'][0] == first and bars['time'][-1] == last
    assert (bars['low'] <= bars['open']).all() and (bars['high'] >= bars['close']).all()


def test_history_rejects_other_timeframes_and_skips_bad_rows():
    with pytest.raises(ValueError, match='not 5'):
        trio.run(lambda: fetch_bars(_KlineClient(0, 0, set()), 'X', 5))
    bars = rows_to_bars([_kline(60, 1.0), ['bad'], [120, 'x', 1, 1, 1, 1]])
    assert bars['time'].tolist() == [60]


# -- quotes -------------------------------------------------------------------------

def test_combined_stream_frames_to_quotes():
    l1 = L1('btcusdt')
    q = l1.on_frame(json.dumps({'stream': 'btcusdt@bookTicker', 'data': {
        'u': 7, 's': 'BTCUSDT', 'b': '100.10', 'B': '2.5', 'a': '100.20', 'A': '1.0',
        'newField': 1}}))
    assert q['bid'] == 100.1 and q['asize'] == 1.0 and q['symbol'] == 'btcusdt'
    assert [t['type'] for t in q['ticks']] == ['bid', 'ask']
    q = l1.on_frame(json.dumps({'stream': 'btcusdt@trade', 'data': {
        'e': 'trade', 'E': 1, 's': 'BTCUSDT', 't': 12, 'p': '100.15', 'q': '0.3',
        'T': 1, 'm': True, 'M': True}}))
    assert q['last'] == 100.15 and q['volume'] == 0.3 and q['bid'] == 100.1
    assert q['ticks'] == [{'type': 'trade', 'price': 100.15, 'size': 0.3}]
    assert l1.on_frame('{"stream": "btcusdt@depth", "data": {}}') is None
    with pytest.raises(ValueError):
        l1.on_frame('{"stream": "btcusdt@trade", "data": {"p": 1}}')
    assert stream_url('wss://x:9443/', 'BTCUSDT') == (
        'wss://x:9443/stream?streams=btcusdt@bookTicker/btcusdt@trade')


# -- ids and order events -----------------------------------------------------------------

def test_client_id_carries_the_oid():
    oid = str(uuid.uuid4())
    cid = client_id(oid, 3)
    assert cid is not None and len(cid) == 36 and cid.isalnum()
    assert parse_client_id(cid) == (oid, cid[:-2], 3)
    assert client_id(oid, 256) == client_id(oid, 0)
    assert client_id('not-a-uuid') is None
    assert parse_client_id('web_8f3e2a') is None
    assert parse_client_id('pk' + 'z' * 34) is None


def _ev(order_id, cid, x, status, **kw) -> ExecReport:
    base = dict(s='BTCUSDT', c=cid, S='BUY', q='1.0', p='100.0', x=x, X=status, i=order_id)
    base.update(kw)
    return ExecReport(**base)


def _tracked(oid: str) -> tuple[Tracker, LiveOrder, str]:
    tr = Tracker('spot')
    cid = client_id(oid)
    assert cid
    order = LiveOrder(reqid=cid[:-2], oid=oid, symbol='BTCUSDT', key='btcusdt',
                      action='buy', price=100.0, size=1.0, account='spot', time_ns=1)
    tr.add(order)
    return tr, order, cid


def _free(_ev):
    return 0.0


def test_exec_reports_new_partial_fill_closed_and_duplicates():
    oid = str(uuid.uuid4())
    tr, order, cid = _tracked(oid)
    out = tr.on_exec(_ev(11, cid, 'NEW', 'NEW'), 'btcusdt', _free)
    assert [type(m) for m in out] == [BrokerdOrderAck, BrokerdStatus]
    assert out[0].reqid == cid[:-2] and out[1].status == 'open'
    assert tr.on_exec(_ev(11, cid, 'NEW', 'NEW'), 'btcusdt', _free) == []
    part = _ev(11, cid, 'TRADE', 'PARTIALLY_FILLED', l='0.4', z='0.4', L='100.0', t=5,
               n='0.1', N='USDT', T=1_700_000_000_000)
    out = tr.on_exec(part, 'btcusdt', lambda ev: 0.1)
    fill, st = out
    assert isinstance(fill, BrokerdFill) and fill.tid == 'BTCUSDT:5' and fill.size == 0.4
    assert fill.cost == 0.1 and fill.broker_time == 1_700_000_000.0 and fill.oid == oid
    assert st.status == 'open' and st.filled == 0.4 and st.remaining == pytest.approx(0.6)
    assert tr.on_exec(part, 'btcusdt', _free) == []  # same trade id: once
    out = tr.on_exec(_ev(11, cid, 'TRADE', 'FILLED', l='0.6', z='1.0', L='100.0', t=6),
                     'btcusdt', _free)
    assert [m.status for m in out if isinstance(m, BrokerdStatus)] == ['closed']
    assert tr.find(order.reqid) is None


def test_exec_reports_modify_keeps_one_dialog():
    oid = str(uuid.uuid4())
    tr, order, cid = _tracked(oid)
    tr.on_exec(_ev(11, cid, 'NEW', 'NEW'), 'btcusdt', _free)
    tr.on_exec(_ev(11, cid, 'TRADE', 'PARTIALLY_FILLED', l='0.25', z='0.25', L='100', t=1),
               'btcusdt', _free)
    # cancelReplace in flight: the old order's cancel is not the dialog's
    order.replacing = 11
    new_cid = order.next_client_id()
    assert tr.on_exec(_ev(11, 'auto', 'CANCELED', 'CANCELED', C=cid, z='0.25'),
                      'btcusdt', _free) == []
    out = tr.on_exec(_ev(12, new_cid, 'NEW', 'NEW', q='0.75', p='101.0'), 'btcusdt', _free)
    assert out == []  # already open: the same dialog, no second order
    assert order.order_id == 12 and order.replaced == {11} and order.filled == 0.25
    out = tr.on_exec(_ev(12, new_cid, 'TRADE', 'FILLED', q='0.75', l='0.75', z='0.75',
                         L='101', t=2), 'btcusdt', _free)
    assert out[-1].status == 'closed' and out[-1].filled == 1.0 and out[-1].reqid == order.reqid


def test_exec_reports_cancel_reject_and_external_orders():
    oid = str(uuid.uuid4())
    tr, order, cid = _tracked(oid)
    tr.on_exec(_ev(11, cid, 'NEW', 'NEW'), 'btcusdt', _free)
    out = tr.on_exec(_ev(11, 'x', 'CANCELED', 'CANCELED', C=cid), 'btcusdt', _free)
    assert [m.status for m in out] == ['canceled']
    tr2, _, cid2 = _tracked(str(uuid.uuid4()))
    out = tr2.on_exec(_ev(3, cid2, 'REJECTED', 'REJECTED', r='INSUFFICIENT_BALANCE'),
                      'btcusdt', _free)
    assert isinstance(out[-1], BrokerdError) and 'INSUFFICIENT_BALANCE' in out[-1].reason
    # an order from Binance's web UI: announced with its request
    out = tr.on_exec(_ev(99, 'web_abc', 'NEW', 'NEW', q='2', p='90'), 'btcusdt', _free)
    (ann,) = out
    assert ann.reqid == '99' and ann.req.size == 2.0 and ann.req.symbol == 'btcusdt'


def test_fee_conversion_to_quote():
    assert fee_in_quote(0.1, 'USDT', 'btc', 'usdt', 100.0, None) == 0.1
    assert fee_in_quote(0.001, 'BTC', 'btc', 'usdt', 100.0, None) == pytest.approx(0.1)
    assert fee_in_quote(0.01, 'BNB', 'btc', 'usdt', 100.0, 300.0) == pytest.approx(3.0)
    assert fee_in_quote(0.01, 'BNB', 'btc', 'usdt', 100.0, None) is None
    assert fee_in_quote(0.0, 'BNB', 'btc', 'usdt', 100.0, None) == 0.0


# -- REST -------------------------------------------------------------------------------------

KEY, SECRET = 'k3y-for-tests', 's3cret-for-tests'


def _client(handler) -> Client:
    return Client('http://binance.test', SecretStr(KEY), SecretStr(SECRET),
                  transport=httpx.MockTransport(handler))


def test_signed_request_signs_the_query_and_hides_keys():
    seen = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={'ok': 1}, headers={'X-MBX-USED-WEIGHT-1M': '42'})

    async def main():
        async with _client(handler) as c:
            assert await c.new_order(symbol='BTCUSDT', price='100.5', quantity=0.001) == {'ok': 1}
            assert c.used_weight == 42
            assert KEY not in repr(c) and SECRET not in repr(c)

    trio.run(main)
    (req,) = seen
    assert req.headers['X-MBX-APIKEY'] == KEY
    query = req.url.query.decode()
    payload, _, sig = query.rpartition('&signature=')
    assert sig == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    params = dict(parse_qsl(payload))
    assert params['quantity'] == '0.001' and params['price'] == '100.5'
    assert 'timestamp' in params and params['recvWindow'] == '5000'


def test_429_waits_retry_after_then_succeeds_and_418_stops():
    answers = [
        httpx.Response(429, json={'code': -1003, 'msg': 'Too many requests'},
                       headers={'Retry-After': '0.2'}),
        httpx.Response(200, json=[]),
    ]

    async def main():
        async with _client(lambda req: answers.pop(0)) as c:
            t0 = trio.current_time()
            assert await c.open_orders() == []
            assert trio.current_time() - t0 >= 0.2
        always = httpx.Response(429, json={'code': -1003, 'msg': 'Too many'},
                                headers={'Retry-After': '0'})
        async with _client(lambda req: always) as c:
            with pytest.raises(RateLimited, match='HTTP 429'):
                await c.open_orders()
        calls = []

        def banned(req):
            calls.append(req)
            return httpx.Response(418, json={'code': -1003, 'msg': 'IP banned'},
                                  headers={'Retry-After': '120'})
        async with _client(banned) as c:
            with pytest.raises(IPBanned, match='banned this IP'):
                await c.open_orders()
            with pytest.raises(IPBanned):
                await c.open_orders()
            assert len(calls) == 1  # no request while banned

    trio.run(main)


def test_binance_errors_keep_binance_message():
    def handler(req):
        if req.url.path == '/api/v3/order':
            return httpx.Response(400, json={
                'code': -2010, 'msg': 'Account has insufficient balance for requested action.'})
        return httpx.Response(401, json={'code': -2015, 'msg': 'Invalid API-key, IP, or '
                                         'permissions for action.'})

    async def main():
        async with _client(handler) as c:
            with pytest.raises(BinanceError, match='^Account has insufficient balance') as ei:
                await c.new_order(symbol='BTCUSDT')
            assert ei.value.code == -2010
            with pytest.raises(AuthError, match='Invalid API-key'):
                await c.account()

    trio.run(main)


# -- config ------------------------------------------------------------------------------------

def test_config_secrets_are_hidden_and_resolved(piker_env, tmp_path, monkeypatch):
    confdir, _ = piker_env
    monkeypatch.delenv('PIKER_BINANCE_API_KEY', raising=False)
    monkeypatch.delenv('PIKER_BINANCE_API_SECRET', raising=False)
    assert not load_brokers_conf().binance.has_keys
    assert load_brokers_conf().binance.rest_url == 'https://api.binance.com'
    key_file, secret_file = tmp_path / 'k', tmp_path / 's'
    key_file.write_text(KEY + '\n')
    secret_file.write_text(SECRET)
    os.chmod(key_file, 0o600)
    os.chmod(secret_file, 0o644)
    (confdir / 'brokers.toml').write_text(
        f'[binance]\napi_key_file = "{key_file}"\napi_secret_file = "{secret_file}"\n'
        'testnet = true\n')
    with pytest.warns(UserWarning, match='readable by other users'):
        conf = load_brokers_conf().binance
    assert conf.api_key.get_secret_value() == KEY
    assert conf.api_secret.get_secret_value() == SECRET
    assert KEY not in repr(conf) and SECRET not in repr(conf) and SECRET not in str(conf)
    assert conf.rest_url == 'https://testnet.binance.vision'
    assert conf.ws_url.startswith('wss://stream.testnet.binance.vision')
    monkeypatch.setenv('PIKER_BINANCE_API_KEY', 'envkey')
    monkeypatch.setenv('PIKER_BINANCE_API_SECRET', 'envsecret')
    conf = BinanceConf(rest_url='http://127.0.0.1:1')
    assert conf.api_key.get_secret_value() == 'envkey' and conf.rest_url == 'http://127.0.0.1:1'


def test_config_errors_name_the_key(piker_env, monkeypatch):
    confdir, _ = piker_env
    monkeypatch.delenv('PIKER_BINANCE_API_KEY', raising=False)
    monkeypatch.delenv('PIKER_BINANCE_API_SECRET', raising=False)
    (confdir / 'brokers.toml').write_text('[binance]\napi_key = "only-a-key"\n')
    with pytest.raises(ConfigError, match='api_secret') as ei:
        load_brokers_conf()
    assert 'only-a-key' not in str(ei.value)
    (confdir / 'brokers.toml').write_text('[binance]\napi_kee = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'binance.api_kee'"):
        load_brokers_conf()
    (confdir / 'brokers.toml').write_text('[binance]\napi_key_file = "/nonexistent/k"\n'
                                          'api_secret = "s"\n')
    with pytest.raises(ConfigError, match='cannot read secret file'):
        load_brokers_conf()


# -- CLI ---------------------------------------------------------------------------------------

def test_live_mode_without_keys_says_so(piker_env, monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.delenv('PIKER_BINANCE_API_KEY', raising=False)
    monkeypatch.delenv('PIKER_BINANCE_API_SECRET', raising=False)
    piker = str(Path(sys.executable).parent / 'piker')
    for args in (['order', 'buy', 'btcusdt.binance', '0.001', '60000', '--mode', 'live'],
                 ['chart', 'btcusdt.binance', '--mode', 'live']):
        proc = subprocess.run([piker, *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, proc.stderr
        assert 'binance has no API keys configured' in proc.stderr
        assert 'market data and paper trading only' in proc.stderr


def test_exec_reports_reordered_and_repeated_after_the_end():
    oid = str(uuid.uuid4())
    tr, order, cid = _tracked(oid)
    # the fill overtakes the NEW report; then NEW and the fill come again
    fill = _ev(11, cid, 'TRADE', 'FILLED', l='1.0', z='1.0', L='100', t=9)
    out = tr.on_exec(fill, 'btcusdt', _free)
    assert [type(m).__name__ for m in out] == ['BrokerdOrderAck', 'BrokerdFill', 'BrokerdStatus']
    assert out[-1].status == 'closed'
    assert tr.on_exec(_ev(11, cid, 'NEW', 'NEW'), 'btcusdt', _free) == []
    assert tr.on_exec(fill, 'btcusdt', _free) == []
    assert not tr.by_reqid  # nothing came back as an "external" order


def test_exec_reports_a_fill_overtaken_by_the_final_one_still_counts():
    oid = str(uuid.uuid4())
    tr, order, cid = _tracked(oid)
    tr.on_exec(_ev(11, cid, 'NEW', 'NEW'), 'btcusdt', _free)
    out = tr.on_exec(_ev(11, cid, 'TRADE', 'FILLED', l='0.7', z='1.0', L='100', t=2),
                     'btcusdt', _free)
    assert out[-1].status == 'closed' and out[-1].filled == 1.0
    (late,) = tr.on_exec(_ev(11, cid, 'TRADE', 'PARTIALLY_FILLED', l='0.3', z='0.3',
                             L='100', t=1), 'btcusdt', _free)
    assert isinstance(late, BrokerdFill) and late.tid == 'BTCUSDT:1' and late.size == 0.3
    assert late.reqid == order.reqid


def test_used_weight_near_the_limit_is_warned_once(caplog):
    weights = iter(['4000', '4900', '5000', '5100'])

    def handler(req):
        return httpx.Response(200, json={}, headers={'X-MBX-USED-WEIGHT-1M': next(weights)})

    async def main():
        async with _client(handler) as c:
            for _ in range(4):
                await c.request('GET', '/api/v3/ping')
            assert c.used_weight == 5100

    with caplog.at_level('WARNING', logger='piker.brokers.binance'):
        trio.run(main)
    warned = [r for r in caplog.records if 'request weight used' in r.getMessage()]
    assert len(warned) == 1 and '4900 of 6000' in warned[0].getMessage()


# -- reconnect helpers ------------------------------------------------------------------------

def test_reconnecting_resets_the_backoff_after_a_healthy_connection():
    from piker.service import Backoff, reconnecting
    backoff = Backoff(first=0.01, cap=0.04)
    delays: list[float] = []
    up = iter([0.0, 0.0, 0.0, 0.3, 0.0])  # how long each connection lasts

    async def connect():
        delays.append(backoff.delay)
        try:
            await trio.sleep(next(up))
        except StopIteration:
            raise PermissionError('done') from None
        raise ConnectionResetError('dropped')

    async def main():
        with pytest.raises(PermissionError):
            await reconnecting(connect, 'test', backoff=backoff, healthy_after=0.2,
                               retry_on=(ConnectionResetError,))

    trio.run(main)
    # the next wait as each attempt starts: doubling, capped; after the
    # long-lived 4th connection it waited `first` again (without: 0.04s)
    assert delays == [0.01, 0.02, 0.04, 0.04, 0.02, 0.04]


def test_connection_is_renewed_before_binance_cuts_it(monkeypatch):
    from piker.brokers.binance import _feed

    class QuietWs:
        def __init__(self):
            self.sent = ['a', 'b']

        async def get_message(self):
            if self.sent:
                return self.sent.pop(0)
            await trio.sleep_forever()

    monkeypatch.setattr(_feed, 'MAX_AGE', 0.2)

    async def main():
        t0 = trio.current_time()
        got = [raw async for raw in _feed.messages(QuietWs())]
        assert got == ['a', 'b'] and 0.2 <= trio.current_time() - t0 < 1.0

    trio.run(main)


def test_reconnecting_retries_until_a_permanent_error():
    from piker.service import Backoff, reconnecting
    calls: list[int] = []
    downs: list = []

    async def connect():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError('refused')
        if len(calls) == 3:
            return  # the peer closed it: reconnect too
        raise PermissionError('banned')  # not in retry_on: it propagates

    async def main():
        with pytest.raises(PermissionError):
            await reconnecting(connect, 'test', backoff=Backoff(first=0.01),
                               retry_on=(ConnectionRefusedError,), on_down=downs.append)

    trio.run(main)
    assert len(calls) == 4
    assert [type(d).__name__ for d in downs] == ['ConnectionRefusedError'] * 2 + ['NoneType']


# -- the trades dialogue's venue, in-process against the fake ------------------------------------

def test_resync_reports_what_ended_while_nobody_listened(piker_env):
    from piker.brokers.binance._session import Session, _session
    from piker.brokers.binance._trades import BinanceVenue
    from piker.clearing._messages import BrokerdOrder
    from piker.testing import open_fake_binance

    def order(price: float) -> dict:
        return BrokerdOrder(oid=str(uuid.uuid4()), symbol='btcusdt', action='buy',
                            price=price, size=0.1, account='spot', time_ns=1).to_builtins()

    def drain(venue) -> list:
        out = []
        while True:
            try:
                out.append(venue.out_recv.receive_nowait())
            except trio.WouldBlock:
                return out

    async def main():
        async with open_fake_binance(quote_rate=0, balances={'USDT': 10_000}) as fake:
            fake.push('BTCUSDT', bid=100, ask=101, bsize=1, asize=1)
            conf = BinanceConf(rest_url=fake.rest_url, ws_url=fake.ws_url,
                               api_key=fake.api_key, api_secret=fake.api_secret)
            sess = Session(conf)
            _session.set(sess)
            venue = BinanceVenue(sess, 'spot')  # no user data stream: nothing heard
            await venue.report()
            await venue.release_held()
            # bad user data events are dropped, never fatal
            for bad in ('{not json', '{"e": "executionReport", "s": 3}',
                        json.dumps({'e': 'executionReport', 's': 'NOPEUSDT', 'c': 'x',
                                    'S': 'BUY', 'q': '1', 'p': '1', 'x': 'NEW',
                                    'X': 'NEW', 'i': 1})):
                await venue.on_user_event(bad)
            assert drain(venue) == []
            gone, filled, kept = order(90.0), order(91.0), order(92.0)
            for cmd in (gone, filled, kept):
                await venue.handle(cmd)
            assert [m.status for m in drain(venue) if isinstance(m, BrokerdStatus)] == ['open'] * 3
            ids = {o['clientOrderId'][2:34]: o['orderId'] for o in fake.orders('BTCUSDT')}
            await sess.client.cancel_order('BTCUSDT', ids[gone['oid'].replace('-', '')])
            fake.fill(ids[filled['oid'].replace('-', '')])
            await venue.resync()
            out = drain(venue)
            final = {m.oid: m.status for m in out if isinstance(m, BrokerdStatus)
                     and m.status != 'open'}
            assert final == {gone['oid']: 'canceled', filled['oid']: 'closed'}
            fills = [m for m in out if isinstance(m, BrokerdFill)]
            assert [f.oid for f in fills] == [filled['oid']]
            assert set(venue.tracker.by_oid) == {kept['oid']}
            await venue.resync()  # again: nothing new
            assert not [m for m in drain(venue) if isinstance(m, BrokerdFill)
                        or (isinstance(m, BrokerdStatus) and m.status != 'open')]
            await sess.client.aclose()

    trio.run(main)


def test_average_price_of_known_fills_same_live_and_from_the_report():
    from piker.brokers.binance._orders import TradeRow
    from piker.brokers.binance._positions import Positions

    fills = [('buy', 100.0, 1.0), ('buy', 110.0, 1.0), ('sell', 120.0, 0.5), ('buy', 90.0, 0.5)]
    live = Positions(None, 'spot', set())  # type: ignore[arg-type]
    live.sizes['BTCUSDT'] = 5.0  # the balance holds more than piker saw bought
    for side, price, qty in fills:
        live.on_fill('BTCUSDT', side, price, qty)
    rows = [TradeRow(symbol='BTCUSDT', id=i, orderId=1, price=str(p), qty=str(q),
                     time=i, isBuyer=side == 'buy') for i, (side, p, q) in enumerate(fills)]
    report = Positions(None, 'spot', set())  # type: ignore[arg-type]
    report.from_trades('BTCUSDT', rows)
    assert live.ppus['BTCUSDT'] == pytest.approx(report.ppus['BTCUSDT'])
    assert report.ppus['BTCUSDT'] == pytest.approx((105.0 * 1.5 + 90 * 0.5) / 2.0)


def test_deep_history_paces_itself_under_the_weight_limit():
    """Paging klines never takes more than HISTORY_SHARE of a minute's
    request weight: past it, the next page waits for the next minute."""
    import numpy as np
    import trio
    import trio.testing

    from piker.brokers.binance import _history

    class Stub:
        weight_limit = 20
        used_weight = 0

        def __init__(self):
            self.calls: list[tuple[float, int]] = []

        async def klines(self, symbol, interval, start_ms, limit, end_ms):
            self.used_weight += _history.KLINES_WEIGHT
            self.calls.append((trio.current_time(), self.used_weight))
            n = min(limit, (end_ms - start_ms) // 60_000 + 1)
            return [[start_ms + 60_000 * i, '1', '2', '0.5', '1.5', '3'] for i in range(n)]

    stub = Stub()

    async def main():
        end = 1_800_000_000 // 60 * 60
        return await _history.fetch_bars(stub, 'BTCUSDT', 60, start=end - 60 * 12_000 + 60,
                                         end=end)

    bars = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(bars) == 12_000 and (np.diff(bars['time']) == 60).all()
    assert len(stub.calls) == 12
    assert max(used for _, used in stub.calls) <= _history.HISTORY_SHARE * stub.weight_limit
    # 5 pages a window (10 of 20 weight), then a wait for the next minute
    waits = [b[0] - a[0] for a, b in zip(stub.calls, stub.calls[1:], strict=False)]
    # (the wait runs to the next wall-clock minute, so it may be any length
    # up to 60 s; pages between waits take no mock time at all)
    assert sum(w > 0 for w in waits) == 2
    assert all(w <= 60.1 for w in waits)
