"""A fake Binance spot venue for offline tests (docs/fake_binance.md).

A real HTTP + websocket server on loopback (Starlette on hypercorn's trio
worker) that speaks Binance's spot REST and websocket protocol: public
market data with a deterministic scripted market and klines, signed
trading endpoints with HMAC-SHA256 and timestamp checks, request weights
and rate limits, a small matching engine, the user data stream, and
fault injection.

Module map: `_symbols` (listing, exchangeInfo), `_klines` (history),
`_market` (L1 book on the sim walk), `_engine` (account, matching,
reports), `_auth` (keys, signatures), `_limits` (weights, 429/418),
`_streams` (websocket fan-out), `_userstream` (listen keys), `_faults`,
`_rest` / `_app` (HTTP surface), `_control` (control API over HTTP),
`_fake` (the state object, `open_fake_binance`), `_thread` (thread runner).
"""
from ._auth import sign
from ._control import ControlClient
from ._errors import BinanceError
from ._fake import FakeBinance, open_fake_binance
from ._symbols import SYMBOLS, SymbolSpec
from ._thread import FakeBinanceThread

__all__ = [
    'SYMBOLS',
    'BinanceError',
    'ControlClient',
    'FakeBinance',
    'FakeBinanceThread',
    'SymbolSpec',
    'open_fake_binance',
    'sign',
]
