"""The REST endpoints: `(fake, params) -> JSON body` functions and their
routes, weights and security (`ROUTES`, served by `_app.endpoint`)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import _errors as err
from ._errors import BinanceError
from ._fmt import parse_int
from ._klines import MAX_LIMIT, interval_seconds
from ._symbols import rate_limits

if TYPE_CHECKING:
    from ._fake import FakeBinance


def _symbol_list(fake: FakeBinance, params: dict[str, str]) -> list[str] | None:
    """`symbol=X` or `symbols=["X","Y"]` as market names; None: all."""
    if 'symbol' in params and 'symbols' in params:
        raise BinanceError(-1128, 'Combination of optional parameters invalid.')
    if params.get('symbol'):
        return [fake.market(params['symbol']).symbol]
    if params.get('symbols'):
        try:
            names = json.loads(params['symbols'])
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
            raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'; "
                                      "legal range is '^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$'.")
        return [fake.market(n).symbol for n in names]
    return None


def ping(fake: FakeBinance, params: dict[str, str]) -> dict:
    return {}


def server_time(fake: FakeBinance, params: dict[str, str]) -> dict:
    return {'serverTime': fake.now_ms()}


def exchange_info(fake: FakeBinance, params: dict[str, str]) -> dict:
    names = _symbol_list(fake, params) or list(fake.markets)
    lim = fake.limiter
    return {
        'timezone': 'UTC',
        'serverTime': fake.now_ms(),
        'rateLimits': rate_limits(lim.weight_limit, lim.orders_10s, lim.orders_1d),
        'exchangeFilters': [],
        'symbols': [fake.markets[n].spec.info() for n in names],
    }


def klines(fake: FakeBinance, params: dict[str, str]) -> list:
    if not params.get('symbol'):
        raise err.mandatory('symbol')
    if not params.get('interval'):
        raise err.mandatory('interval')
    mkt = fake.market(params['symbol'])
    interval = params['interval']
    interval_seconds(interval)
    start = parse_int('startTime', params.get('startTime'), required=False)
    end = parse_int('endTime', params.get('endTime'), required=False)
    limit = parse_int('limit', params.get('limit'), required=False)
    limit = 500 if limit is None else min(max(limit, 1), MAX_LIMIT)
    if start is not None and end is not None and start > end:
        raise BinanceError(-1023, 'Start time is greater than end time.')
    return mkt.klines.klines(interval, start, end, limit, fake.now_ms())


def book_ticker(fake: FakeBinance, params: dict[str, str]) -> Any:
    names = _symbol_list(fake, params)
    if params.get('symbol'):
        return fake.markets[names[0]].book_ticker()  # type: ignore[index]
    return [fake.markets[n].book_ticker() for n in (names or fake.markets)]


def _book_weight(params: dict[str, str]) -> int:
    if params.get('symbol'):
        return 2
    if params.get('symbols'):
        return 4
    return 4


def new_order(fake: FakeBinance, params: dict[str, str]) -> dict:
    return fake.engine.place(params)


def cancel_order(fake: FakeBinance, params: dict[str, str]) -> dict:
    return fake.engine.cancel(params)


def cancel_replace(fake: FakeBinance, params: dict[str, str]) -> dict:
    return fake.engine.cancel_replace(params)


def query_order(fake: FakeBinance, params: dict[str, str]) -> dict:
    if not params.get('symbol'):
        raise err.mandatory('symbol')
    o = fake.engine.find(params)
    if o is None:
        raise err.order_not_exist()
    return o.query()


def open_orders(fake: FakeBinance, params: dict[str, str]) -> list:
    return fake.engine.order_list(params.get('symbol') or None, open_only=True)


def my_trades(fake: FakeBinance, params: dict[str, str]) -> list:
    if not params.get('symbol'):
        raise err.mandatory('symbol')
    trades = fake.engine.trade_list(params['symbol'])
    order_id = parse_int('orderId', params.get('orderId'), required=False)
    start = parse_int('startTime', params.get('startTime'), required=False)
    end = parse_int('endTime', params.get('endTime'), required=False)
    from_id = parse_int('fromId', params.get('fromId'), required=False)
    limit = parse_int('limit', params.get('limit'), required=False)
    limit = 500 if limit is None else min(max(limit, 1), MAX_LIMIT)
    if from_id is not None and (start is not None or end is not None):
        raise BinanceError(-1128, 'Combination of optional parameters invalid.')
    out = [t for t in trades
           if (order_id is None or t['orderId'] == order_id)
           and (start is None or t['time'] >= start) and (end is None or t['time'] <= end)
           and (from_id is None or t['id'] >= from_id)]
    return out[:limit] if from_id is not None or start is not None else out[-limit:]


def account(fake: FakeBinance, params: dict[str, str]) -> dict:
    return fake.engine.account(omit_zero=params.get('omitZeroBalances') == 'true')


def listen_key_new(fake: FakeBinance, params: dict[str, str]) -> dict:
    return {'listenKey': fake.user_stream.create()}


def listen_key_keepalive(fake: FakeBinance, params: dict[str, str]) -> dict:
    if not params.get('listenKey'):
        raise err.mandatory('listenKey')
    fake.user_stream.keepalive(params['listenKey'])
    return {}


def listen_key_close(fake: FakeBinance, params: dict[str, str]) -> dict:
    if not params.get('listenKey'):
        raise err.mandatory('listenKey')
    fake.user_stream.close(params['listenKey'])
    return {}


def _open_orders_weight(params: dict[str, str]) -> int:
    return 6 if params.get('symbol') else 80


# (method, path, function, weight, security, kind: 'order' | 'cancel' | '')
ROUTES: list[tuple[str, str, Any, Any, str, str]] = [
    ('GET', '/api/v3/ping', ping, 1, 'NONE', ''),
    ('GET', '/api/v3/time', server_time, 1, 'NONE', ''),
    ('GET', '/api/v3/exchangeInfo', exchange_info, 20, 'NONE', ''),
    ('GET', '/api/v3/klines', klines, 2, 'NONE', ''),
    ('GET', '/api/v3/ticker/bookTicker', book_ticker, _book_weight, 'NONE', ''),
    ('POST', '/api/v3/order', new_order, 1, 'SIGNED', 'order'),
    ('DELETE', '/api/v3/order', cancel_order, 1, 'SIGNED', 'cancel'),
    ('GET', '/api/v3/order', query_order, 4, 'SIGNED', ''),
    ('POST', '/api/v3/order/cancelReplace', cancel_replace, 1, 'SIGNED', 'order'),
    ('GET', '/api/v3/openOrders', open_orders, _open_orders_weight, 'SIGNED', ''),
    ('GET', '/api/v3/myTrades', my_trades, 20, 'SIGNED', ''),
    ('GET', '/api/v3/account', account, 20, 'SIGNED', ''),
    ('POST', '/api/v3/userDataStream', listen_key_new, 2, 'USER_STREAM', ''),
    ('PUT', '/api/v3/userDataStream', listen_key_keepalive, 2, 'USER_STREAM', ''),
    ('DELETE', '/api/v3/userDataStream', listen_key_close, 2, 'USER_STREAM', ''),
]
