"""The fake's Kraken pairs: `GET /0/public/AssetPairs` and `Assets`.

Each `PairSpec` is what Kraken publishes about a spot pair (its REST key
such as `XXBTZUSD`, `altname`, `wsname`, legacy asset codes `XXBT`/
`ZUSD`, decimals, `tick_size`, `ordermin`, `costmin`) plus the websocket
v2 name (`BTC/USD`: v2 uses the names traders use, REST the legacy
ones). The market behind a pair is the fake Binance's scripted market
(`SymbolMarket` on a `SymbolSpec`: the sim walk and deterministic klines),
reused as is. `DOGE/USD` (`XDGUSD`, base `XXDG`) and `PEPE/USD` have
bases that are not three letters long.
"""
from __future__ import annotations

from decimal import Decimal

from ....types import Struct
from ..binance._symbols import SymbolSpec


class PairSpec(Struct, frozen=True):
    key: str            # REST result key: 'XXBTZUSD'
    altname: str        # 'XBTUSD'
    wsname: str         # v1 name 'XBT/USD'
    symbol: str         # v2 name 'BTC/USD'
    base: str           # asset code 'XXBT'
    quote: str          # asset code 'ZUSD'
    pair_decimals: int
    lot_decimals: int
    cost_decimals: int
    tick_size: Decimal
    ordermin: Decimal
    costmin: Decimal
    market: SymbolSpec  # the walk and klines behind it

    def info(self) -> dict:
        """This pair's `AssetPairs` entry, as Kraken sends it."""
        return {
            'altname': self.altname, 'wsname': self.wsname,
            'aclass_base': 'currency', 'base': self.base,
            'aclass_quote': 'currency', 'quote': self.quote, 'lot': 'unit',
            'cost_decimals': self.cost_decimals, 'pair_decimals': self.pair_decimals,
            'lot_decimals': self.lot_decimals, 'lot_multiplier': 1,
            'leverage_buy': [], 'leverage_sell': [],
            'fees': [[0, 0.26], [50000, 0.24], [100000, 0.22]],
            'fees_maker': [[0, 0.16], [50000, 0.14], [100000, 0.12]],
            'fee_volume_currency': 'ZUSD', 'margin_call': 80, 'margin_stop': 40,
            'ordermin': f'{self.ordermin:f}', 'costmin': f'{self.costmin:f}',
            'tick_size': f'{self.tick_size:f}', 'status': 'online',
        }

    def fmt_price(self, x: Decimal) -> str:
        return f'{x:.{self.pair_decimals}f}'

    def fmt_qty(self, x: Decimal) -> str:
        return f'{x:.{self.lot_decimals}f}'


def _pair(key: str, altname: str, wsname: str, symbol: str, base: str, quote: str,
          pd: int, ld: int, ordermin: str, costmin: str, price: float, vol: float,
          book: float, lot: float) -> PairSpec:
    tick = Decimal(1).scaleb(-pd)
    step = Decimal(1).scaleb(-ld)
    b, q = symbol.split('/')
    return PairSpec(
        key=key, altname=altname, wsname=wsname, symbol=symbol, base=base, quote=quote,
        pair_decimals=pd, lot_decimals=ld, cost_decimals=5, tick_size=tick,
        ordermin=Decimal(ordermin), costmin=Decimal(costmin),
        market=SymbolSpec(
            symbol=altname, base=b, quote=q, tick_size=tick, step_size=step,
            min_qty=Decimal(ordermin), max_qty=Decimal('1e12'),
            min_notional=Decimal(costmin), start_price=price, step_vol=vol,
            book_size=book, lot=lot,
        ),
    )


PAIRS: dict[str, PairSpec] = {p.symbol: p for p in (
    _pair('XXBTZUSD', 'XBTUSD', 'XBT/USD', 'BTC/USD', 'XXBT', 'ZUSD', 1, 8,
          '0.00005', '0.5', 65_000.0, 1e-5, 0.8, 0.01),
    _pair('XETHZUSD', 'ETHUSD', 'ETH/USD', 'ETH/USD', 'XETH', 'ZUSD', 2, 8,
          '0.002', '0.5', 3_200.0, 1.5e-5, 12.0, 0.1),
    _pair('XDGUSD', 'XDGUSD', 'XDG/USD', 'DOGE/USD', 'XXDG', 'ZUSD', 7, 8,
          '30', '0.5', 0.16, 2e-5, 50_000.0, 500.0),
    _pair('PEPEUSD', 'PEPEUSD', 'PEPE/USD', 'PEPE/USD', 'PEPE', 'ZUSD', 9, 2,
          '500000', '0.5', 0.00001, 2e-5, 1e9, 1e7),
)}

# asset code -> (altname, decimals): `GET /0/public/Assets`
ASSETS: dict[str, tuple[str, int]] = {
    'XXBT': ('XBT', 10), 'XETH': ('ETH', 10), 'XXDG': ('XDG', 8),
    'PEPE': ('PEPE', 5), 'ZUSD': ('USD', 4),
}


def find_pair(name: str) -> PairSpec | None:
    """A pair by any of its names (REST key, altname, wsname, v2 symbol)."""
    up = str(name).upper()
    for p in PAIRS.values():
        if up in (p.key, p.altname, p.wsname, p.symbol):
            return p
    return None
