"""The fake's symbols and `GET /api/v3/exchangeInfo`.

Each `SymbolSpec` holds what Binance publishes about a spot pair (its
filters) and the parameters of the scripted market behind it, which is
`piker.brokers.sim`'s seeded L1 walk (`Walk`, driven by a sim
`MarketSpec`). Filter values are Binance's real ones for these pairs;
besides PRICE_FILTER, LOT_SIZE and NOTIONAL the listing carries the other
filters Binance sends (ICEBERG_PARTS, MARKET_LOT_SIZE, TRAILING_DELTA,
PERCENT_PRICE_BY_SIDE, MAX_NUM_ORDERS, MAX_NUM_ALGO_ORDERS) so a client
learns to skip what it does not use.
"""
from __future__ import annotations

from decimal import Decimal

from ....accounting import Asset
from ....brokers.sim import MarketSpec
from ....types import Struct
from ._fmt import d8

ORDER_TYPES = ['LIMIT', 'LIMIT_MAKER', 'MARKET', 'STOP_LOSS', 'STOP_LOSS_LIMIT',
               'TAKE_PROFIT', 'TAKE_PROFIT_LIMIT']


class SymbolSpec(Struct, frozen=True):
    """One spot pair: its public listing and its market's walk."""

    symbol: str          # 'BTCUSDT'
    base: str            # 'BTC'
    quote: str           # 'USDT'
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    start_price: float   # the history path's level
    step_vol: float      # relative stdev of one walk step
    book_size: float     # typical size at the touch
    lot: float           # typical trade size
    status: str = 'TRADING'

    def walk_spec(self, start_price: float) -> MarketSpec:
        """The sim market spec whose walk drives this pair live."""
        return MarketSpec(
            dst=Asset(name=self.base.lower(), atype='crypto', tx_tick=Decimal('0.00000001')),
            src=Asset(name=self.quote.lower(), atype='crypto', tx_tick=Decimal('0.00000001')),
            price_tick=self.tick_size, size_tick=self.step_size,
            start_price=start_price, step_vol=self.step_vol,
            book_size=self.book_size, lot=self.lot,
        )

    def info(self) -> dict:
        """This pair's entry of `exchangeInfo.symbols`, as Binance sends it."""
        return {
            'symbol': self.symbol,
            'status': self.status,
            'baseAsset': self.base,
            'baseAssetPrecision': 8,
            'quoteAsset': self.quote,
            'quotePrecision': 8,
            'quoteAssetPrecision': 8,
            'baseCommissionPrecision': 8,
            'quoteCommissionPrecision': 8,
            'orderTypes': ORDER_TYPES,
            'icebergAllowed': True,
            'ocoAllowed': True,
            'otoAllowed': True,
            'quoteOrderQtyMarketAllowed': True,
            'allowTrailingStop': True,
            'cancelReplaceAllowed': True,
            'amendAllowed': True,
            'isSpotTradingAllowed': True,
            'isMarginTradingAllowed': True,
            'filters': [
                {'filterType': 'PRICE_FILTER', 'minPrice': d8(self.tick_size),
                 'maxPrice': '1000000.00000000',
                 'tickSize': d8(self.tick_size)},
                {'filterType': 'LOT_SIZE', 'minQty': d8(self.min_qty),
                 'maxQty': d8(self.max_qty), 'stepSize': d8(self.step_size)},
                {'filterType': 'ICEBERG_PARTS', 'limit': 10},
                {'filterType': 'MARKET_LOT_SIZE', 'minQty': d8(0),
                 'maxQty': d8(self.max_qty / 10), 'stepSize': d8(0)},
                {'filterType': 'TRAILING_DELTA', 'minTrailingAboveDelta': 10,
                 'maxTrailingAboveDelta': 2000, 'minTrailingBelowDelta': 10,
                 'maxTrailingBelowDelta': 2000},
                {'filterType': 'PERCENT_PRICE_BY_SIDE', 'bidMultiplierUp': '5',
                 'bidMultiplierDown': '0.2', 'askMultiplierUp': '5',
                 'askMultiplierDown': '0.2', 'avgPriceMins': 5},
                {'filterType': 'NOTIONAL', 'minNotional': d8(self.min_notional),
                 'applyMinToMarket': True, 'maxNotional': '9000000.00000000',
                 'applyMaxToMarket': False, 'avgPriceMins': 5},
                {'filterType': 'MAX_NUM_ORDERS', 'maxNumOrders': 200},
                {'filterType': 'MAX_NUM_ALGO_ORDERS', 'maxNumAlgoOrders': 5},
            ],
            'permissions': [],
            'permissionSets': [['SPOT', 'MARGIN']],
            'defaultSelfTradePreventionMode': 'EXPIRE_MAKER',
            'allowedSelfTradePreventionModes': ['EXPIRE_TAKER', 'EXPIRE_MAKER', 'EXPIRE_BOTH'],
        }


def _spec(symbol: str, base: str, quote: str, tick: str, step: str, max_qty: str,
          min_notional: str, price: float, vol: float, book: float, lot: float) -> SymbolSpec:
    return SymbolSpec(
        symbol=symbol, base=base, quote=quote, tick_size=Decimal(tick),
        step_size=Decimal(step), min_qty=Decimal(step), max_qty=Decimal(max_qty),
        min_notional=Decimal(min_notional), start_price=price, step_vol=vol,
        book_size=book, lot=lot,
    )


SYMBOLS: dict[str, SymbolSpec] = {s.symbol: s for s in (
    _spec('BTCUSDT', 'BTC', 'USDT', '0.01', '0.00001', '9000', '5', 65_000.0, 1e-5, 0.8, 0.01),
    _spec('ETHUSDT', 'ETH', 'USDT', '0.01', '0.0001', '9000', '5', 3_200.0, 1.5e-5, 12.0, 0.1),
    _spec('SOLUSDT', 'SOL', 'USDT', '0.01', '0.001', '90000', '5', 150.0, 2e-5, 300.0, 1.0),
    _spec('BNBUSDT', 'BNB', 'USDT', '0.01', '0.001', '9000', '5', 600.0, 1.5e-5, 40.0, 0.5),
    _spec('ETHBTC', 'ETH', 'BTC', '0.00001', '0.0001', '100000', '0.0001', 0.05, 1.5e-5, 12.0, 0.1),
)}


def rate_limits(weight_limit: int, orders_10s: int, orders_1d: int) -> list[dict]:
    return [
        {'rateLimitType': 'REQUEST_WEIGHT', 'interval': 'MINUTE', 'intervalNum': 1,
         'limit': weight_limit},
        {'rateLimitType': 'ORDERS', 'interval': 'SECOND', 'intervalNum': 10,
         'limit': orders_10s},
        {'rateLimitType': 'ORDERS', 'interval': 'DAY', 'intervalNum': 1,
         'limit': orders_1d},
        {'rateLimitType': 'RAW_REQUESTS', 'interval': 'MINUTE', 'intervalNum': 5,
         'limit': 61000},
    ]
