"""The fake's REST endpoints: plain functions of `(fake, params)` that
return the envelope's `result` or raise `KrakenError` (see `_app`)."""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ._errors import KrakenError
from ._pairs import ASSETS

if TYPE_CHECKING:
    from ._fake import FakeKraken

# OHLC `interval` (minutes) -> the kline interval of the markets
OHLC_INTERVALS = {1: '1m', 5: '5m', 15: '15m', 30: '30m', 60: '1h', 240: '4h',
                  1440: '1d', 10080: '1w'}
OHLC_MAX = 720
TRADES_MAX = 1000


def _pairs(fake: FakeKraken, params: dict) -> list:
    raw = params.get('pair')
    if not raw:
        return list(fake.pairs.values())
    return [fake.pair(n) for n in str(raw).split(',')]


def asset_pairs(fake: FakeKraken, params: dict) -> dict:
    return {p.key: p.info() for p in _pairs(fake, params)}


def assets(fake: FakeKraken, params: dict) -> dict:
    return {code: {'aclass': 'currency', 'altname': alt, 'decimals': d,
                   'display_decimals': min(d, 5), 'status': 'enabled'}
            for code, (alt, d) in ASSETS.items()}


def server_time(fake: FakeKraken, params: dict) -> dict:
    now = fake.clock()
    return {'unixtime': int(now), 'rfc1123': ''}


def ticker(fake: FakeKraken, params: dict) -> dict:
    out = {}
    for p in _pairs(fake, params):
        t = fake.ticker(p.symbol)
        fp, fq = p.fmt_price, p.fmt_qty
        out[p.key] = {
            'a': [fp(Decimal(repr(t['ask']))), '1', fq(Decimal(repr(t['ask_qty'])))],
            'b': [fp(Decimal(repr(t['bid']))), '1', fq(Decimal(repr(t['bid_qty'])))],
            'c': [fp(Decimal(repr(t['last']))), fq(Decimal(0))],
            'v': [fq(Decimal(repr(t['volume'])))] * 2,
            'p': [fp(Decimal(repr(t['vwap'])))] * 2, 't': [0, 0],
            'l': [fp(Decimal(repr(t['low'])))] * 2, 'h': [fp(Decimal(repr(t['high'])))] * 2,
            'o': fp(Decimal(repr(t['last']))),
        }
    return out


def _one_pair(fake: FakeKraken, params: dict):
    if not params.get('pair'):
        raise KrakenError('EGeneral:Invalid arguments')
    return fake.pair(params['pair'])


def _int(params: dict, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ''):
        return default
    try:
        return int(str(raw))
    except ValueError:
        raise KrakenError('EGeneral:Invalid arguments') from None


def ohlc(fake: FakeKraken, params: dict) -> dict:
    """The most recent 720 bars (the last one still forming) opening
    after `since`: as on Kraken, older bars are not served at all."""
    p = _one_pair(fake, params)
    interval = _int(params, 'interval', 1)
    if interval not in OHLC_INTERVALS:
        raise KrakenError('EGeneral:Invalid arguments')
    since = _int(params, 'since', 0)
    now_ms = int(fake.clock() * 1000)
    rows = fake.markets[p.symbol].klines.klines(OHLC_INTERVALS[interval], None, None,
                                                OHLC_MAX, now_ms)
    out = []
    for r in rows:
        t = int(r[0]) // 1000
        if t <= since:
            continue
        vol, qv = Decimal(r[5]), Decimal(r[7])
        vwap = qv / vol if vol else Decimal(r[4])
        out.append([t, *(p.fmt_price(Decimal(x)) for x in r[1:5]),
                    p.fmt_price(vwap), p.fmt_qty(vol), int(r[8])])
    last = out[-2][0] if len(out) > 1 else since
    return {p.key: out, 'last': last}


def trades(fake: FakeKraken, params: dict) -> dict:
    """Public trades after `since` (ns, or s), oldest first, at most
    `count` (1000): `[price, volume, time, b|s, l|m, misc, trade_id]`.
    Before the fake started, one trade per second of the history (at the
    1 s bar's close, with its volume); after, the trades it printed."""
    p = _one_pair(fake, params)
    raw_since = _int(params, 'since', 0)
    since = raw_since / 1e9 if raw_since > 10**12 else float(raw_since)
    count = min(max(_int(params, 'count', TRADES_MAX), 1), TRADES_MAX)
    now = fake.clock()
    if since <= 0:
        since = now - 3600
    mkt = fake.markets[p.symbol]
    out: list[list[Any]] = []
    sec = int(since)
    while sec < fake.t0 and len(out) < count:
        rows = mkt.klines.klines('1s', sec * 1000, (fake.t0 - 1) * 1000, TRADES_MAX, int(now * 1000))
        if not rows:
            break
        for r in rows:
            t = int(r[0]) // 1000 + 0.5
            vol = Decimal(r[5])
            if t <= since or vol <= 0:
                continue
            side = 'b' if Decimal(r[4]) >= Decimal(r[1]) else 's'
            out.append([p.fmt_price(Decimal(r[4])), p.fmt_qty(vol), t, side, 'l', '',
                        int(t)])
            if len(out) >= count:
                break
        sec = int(rows[-1][0]) // 1000 + 1
    for t, price, qty, side, tid in fake.live_trades[p.symbol]:
        if len(out) >= count:
            break
        if t > since:
            out.append([p.fmt_price(price), p.fmt_qty(qty), round(t, 4), side[0], 'l', '', tid])
    last = int(out[-1][2] * 1e9) if out else int(since * 1e9)
    return {p.key: out, 'last': str(last)}


# -- private ------------------------------------------------------------------

def balance(fake: FakeKraken, params: dict) -> dict:
    return fake.balances()


def ws_token(fake: FakeKraken, params: dict) -> dict:
    return {'token': fake.new_token(), 'expires': 900}


def open_orders(fake: FakeKraken, params: dict) -> dict:
    return {'open': {o['order_id']: {
        'status': 'open', 'cl_ord_id': o.get('cl_ord_id'),
        'descr': {'pair': o['symbol'], 'type': o['side'], 'ordertype': 'limit',
                  'price': str(o['limit_price'])},
        'vol': str(o['order_qty']), 'vol_exec': str(o['cum_qty'])}
        for o in fake.orders(open_only=True)}}


# (path, handler, private, API counter cost)
ROUTES = [
    ('/0/public/AssetPairs', asset_pairs, False, 0),
    ('/0/public/Assets', assets, False, 0),
    ('/0/public/Time', server_time, False, 0),
    ('/0/public/Ticker', ticker, False, 0),
    ('/0/public/OHLC', ohlc, False, 0),
    ('/0/public/Trades', trades, False, 0),
    ('/0/private/Balance', balance, True, 1),
    ('/0/private/GetWebSocketsToken', ws_token, True, 1),
    ('/0/private/OpenOrders', open_orders, True, 1),
]
