"""Binance's error replies: `{"code": <negative int>, "msg": "..."}`.

Codes, messages and HTTP statuses as Binance sends them (4XX for a bad
request, 401 for a bad API key, 429/418 for rate limits, 5XX for the
venue's own trouble), so a client's error mapping is tested for real.
"""
from __future__ import annotations


class BinanceError(Exception):
    """An error reply; `status` is its HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400,
                 headers: dict[str, str] | None = None, data: dict | None = None) -> None:
        super().__init__(f'{code}: {msg}')
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}
        self.data = data

    def body(self) -> dict:
        body: dict = {'code': self.code, 'msg': self.msg}
        if self.data is not None:
            body['data'] = self.data
        return body


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def bad_param(name: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, 'Invalid symbol.')


def invalid_interval() -> BinanceError:
    return BinanceError(-1120, 'Invalid interval.')


def bad_signature() -> BinanceError:
    return BinanceError(-1022, 'Signature for this request is not valid.')


def bad_key_format() -> BinanceError:
    return BinanceError(-2014, 'API-key format invalid.', status=401)


def bad_key() -> BinanceError:
    return BinanceError(-2015, 'Invalid API-key, IP, or permissions for action.', status=401)


def timestamp_outside() -> BinanceError:
    return BinanceError(-1021, 'Timestamp for this request is outside of the recvWindow.')


def timestamp_ahead() -> BinanceError:
    return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def filter_failure(name: str) -> BinanceError:
    return BinanceError(-1013, f'Filter failure: {name}')


def insufficient_balance() -> BinanceError:
    return BinanceError(-2010, 'Account has insufficient balance for requested action.')


def unknown_order() -> BinanceError:
    return BinanceError(-2011, 'Unknown order sent.')


def order_not_exist() -> BinanceError:
    return BinanceError(-2013, 'Order does not exist.')


def duplicate_order() -> BinanceError:
    return BinanceError(-2010, 'Duplicate order sent.')


def unknown_listen_key() -> BinanceError:
    return BinanceError(-1125, 'This listenKey does not exist.')


def internal_error() -> BinanceError:
    return BinanceError(
        -1001, 'Internal error; unable to process your request. Please try again.', status=503)
