"""Binance spot markets from `GET /api/v3/exchangeInfo`.

Parsing is lenient on purpose: only the fields piker uses are declared,
filters are read by `filterType` and unknown ones ignored, so a field or
filter Binance adds tomorrow never breaks the backend. A market without
a `PRICE_FILTER`/`LOT_SIZE` falls back to its asset precisions.

Each market becomes a `Market`: the `MktPair` (exact `Decimal` ticks from
`PRICE_FILTER.tickSize` and `LOT_SIZE.stepSize`, fqme `btcusdt.binance`)
plus the order filters piker checks before sending (minimum quantity
and notional, from `NOTIONAL` or the older `MIN_NOTIONAL`).
"""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import msgspec

from ...accounting import Asset, MktPair
from .._errors import SymbolNotFound

BROKER = 'binance'
# an unknown symbol refetches exchangeInfo at most this often
REFRESH_MIN_S = 10.0


class _Symbol(msgspec.Struct):
    symbol: str
    baseAsset: str
    quoteAsset: str
    status: str = 'TRADING'
    baseAssetPrecision: int = 8
    quoteAssetPrecision: int = 8
    isSpotTradingAllowed: bool = True
    filters: list[dict[str, Any]] = []


class _ExchangeInfo(msgspec.Struct):
    symbols: list[_Symbol] = []
    rateLimits: list[dict[str, Any]] = []


_decoder = msgspec.json.Decoder(_ExchangeInfo)


class Market(msgspec.Struct, frozen=True):
    """One Binance spot market: its `MktPair` and order filters."""

    mkt: MktPair
    symbol: str           # Binance's name: BTCUSDT
    status: str
    min_qty: Decimal
    min_notional: Decimal

    @property
    def trading(self) -> bool:
        return self.status == 'TRADING'


def _dec(value: Any, default: Decimal) -> Decimal:
    try:
        out = Decimal(str(value))
    except Exception:
        return default
    return out if out.is_finite() and out > 0 else default


def _precision_tick(digits: int) -> Decimal:
    return Decimal(1).scaleb(-max(0, min(int(digits), 18)))


def parse_symbol(sym: _Symbol) -> Market | None:
    """A `Market`, or None for a symbol piker cannot represent."""
    filters = {f.get('filterType'): f for f in sym.filters if isinstance(f, dict)}
    price_tick = _dec(filters.get('PRICE_FILTER', {}).get('tickSize'),
                      _precision_tick(sym.quoteAssetPrecision))
    lot = filters.get('LOT_SIZE', {})
    size_tick = _dec(lot.get('stepSize'), _precision_tick(sym.baseAssetPrecision))
    notional = filters.get('NOTIONAL') or filters.get('MIN_NOTIONAL') or {}
    try:
        mkt = MktPair(
            dst=Asset(name=sym.baseAsset, atype='crypto',
                      tx_tick=_precision_tick(sym.baseAssetPrecision)),
            src=Asset(name=sym.quoteAsset, atype='crypto',
                      tx_tick=_precision_tick(sym.quoteAssetPrecision)),
            price_tick=price_tick.normalize(),
            size_tick=size_tick.normalize(),
            broker=BROKER,
            bs_mktid=sym.symbol,
        )
    except ValueError:
        return None  # a name with dots or spaces: not an fqme token
    return Market(
        mkt=mkt, symbol=sym.symbol, status=sym.status,
        min_qty=_dec(lot.get('minQty'), Decimal(0)) if lot.get('minQty') else Decimal(0),
        min_notional=_dec(notional.get('minNotional'), Decimal(0))
        if notional.get('minNotional') else Decimal(0),
    )


def parse_exchange_info(raw: bytes) -> dict[str, Market]:
    """`{bs_fqme: Market}` (e.g. `'btcusdt'`) from exchangeInfo JSON."""
    return _markets_of(_decode(raw))


def _decode(raw: bytes) -> _ExchangeInfo:
    try:
        return _decoder.decode(raw)
    except msgspec.DecodeError as err:
        raise ValueError(f'Binance exchangeInfo did not parse: {err}') from None


def weight_limit(info: _ExchangeInfo) -> int | None:
    """The REQUEST_WEIGHT limit per minute Binance announces, if any."""
    for lim in info.rateLimits:
        if (lim.get('rateLimitType') == 'REQUEST_WEIGHT' and lim.get('interval') == 'MINUTE'
                and lim.get('intervalNum', 1) == 1 and isinstance(lim.get('limit'), int)):
            return lim['limit']
    return None


def _markets_of(info: _ExchangeInfo) -> dict[str, Market]:
    out: dict[str, Market] = {}
    for sym in info.symbols:
        if not sym.isSpotTradingAllowed:
            continue
        market = parse_symbol(sym)
        if market is not None:
            out[market.mkt.bs_fqme] = market
    return out


class MarketCache:
    """exchangeInfo, fetched once and refetched on demand.

    `get(key)` refetches (at most every `REFRESH_MIN_S`) when a key is
    unknown, so a market listed after start-up is found.
    """

    def __init__(self) -> None:
        self.markets: dict[str, Market] = {}
        self.fetched_at: float = 0.0

    async def load(self, client: Any, refresh: bool = False) -> dict[str, Market]:
        if refresh or not self.markets:
            info = _decode(await client.exchange_info())
            self.markets = _markets_of(info)
            self.fetched_at = time.monotonic()
            limit = weight_limit(info)
            if limit and hasattr(client, 'weight_limit'):
                client.weight_limit = limit
        return self.markets

    async def get(self, client: Any, key: str) -> Market:
        key = _native(key)
        markets = await self.load(client)
        market = markets.get(key)
        if market is None and time.monotonic() - self.fetched_at >= REFRESH_MIN_S:
            markets = await self.load(client, refresh=True)
            market = markets.get(key)
        if market is None:
            close = [k for k in search_keys(markets, key[:3])][:5]
            hint = f'; close matches: {", ".join(k + "." + BROKER for k in close)}' if close else ''
            raise SymbolNotFound(f'no Binance spot market {key!r}{hint}')
        return market

    def by_symbol(self, symbol: str) -> Market | None:
        return self.markets.get(symbol.lower())


def _native(key: str) -> str:
    key = key.lower()
    suffix = '.' + BROKER
    return key[: -len(suffix)] if key.endswith(suffix) else key


def search_keys(markets: dict[str, Market], pattern: str) -> list[str]:
    """Keys matching `pattern`: exact, then prefix, then substring;
    trading markets before halted ones, shorter names first."""
    pat = _native(pattern.strip())
    ranked = []
    for key, m in markets.items():
        if not pat:
            rank = 3
        elif key == pat:
            rank = 0
        elif key.startswith(pat) or m.mkt.dst.name == pat:
            rank = 1
        elif pat in key:
            rank = 2
        else:
            continue
        ranked.append((rank, not m.trading, len(key), key))
    return [r[-1] for r in sorted(ranked)]


__all__ = ['BROKER', 'Market', 'MarketCache', 'parse_exchange_info', 'search_keys']
