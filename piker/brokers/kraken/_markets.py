"""Kraken spot markets from `GET /0/public/AssetPairs`.

Kraken names assets two ways: REST keys and asset codes are legacy
(`XXBTZUSD`, `XXBT`, `ZUSD`, `XXDG`), `wsname` is `XBT/USD`, and
websocket v2 uses the names traders use (`BTC/USD`, `DOGE/USD`). A pair's
base and quote come from splitting `wsname` at its `/` (never at a fixed
character: `PEPE/USD`, `DOGE/USD`), mapped through `ALIASES`
(`XBT` -> `BTC`, `XDG` -> `DOGE`), which gives the v2 symbol and the fqme
(`btcusd.kraken`, `dogeusd.kraken`, `pepeusd.kraken`).

Each pair becomes a `Market`: the `MktPair` (exact ticks: `tick_size`,
else `pair_decimals`; size tick from `lot_decimals`) plus what piker
needs to trade it (`ordermin`, `costmin`, the asset codes of its
balances). Parsing is lenient: unknown fields are ignored, a pair
without a usable `wsname` is skipped, a dark/margin-only pair too.
"""
from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from ...accounting import Asset, MktPair
from .._errors import SymbolNotFound

BROKER = 'kraken'
REFRESH_MIN_S = 10.0
# Kraken's own asset names -> the names traders use (and v2 sends)
ALIASES = {'XBT': 'BTC', 'XDG': 'DOGE'}


class _Pair(msgspec.Struct):
    altname: str
    base: str
    quote: str
    wsname: str = ''
    pair_decimals: int = 8
    lot_decimals: int = 8
    tick_size: str | None = None
    ordermin: str | None = None
    costmin: str | None = None
    status: str = 'online'


class Market(msgspec.Struct, frozen=True):
    """One Kraken spot pair: its `MktPair` and trading facts."""

    mkt: MktPair
    key: str            # REST result key: XXBTZUSD
    altname: str        # XBTUSD
    symbol: str         # websocket v2 name: BTC/USD
    base_code: str      # balance asset code: XXBT
    quote_code: str     # ZUSD
    ordermin: Decimal
    costmin: Decimal
    status: str

    @property
    def trading(self) -> bool:
        return self.status == 'online'


def normalise(asset: str) -> str:
    up = asset.upper()
    return ALIASES.get(up, up)


def _dec(raw: Any) -> Decimal | None:
    try:
        out = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None
    return out if out.is_finite() and out > 0 else None


def parse_pair(key: str, p: _Pair) -> Market | None:
    """A `Market`, or None for a pair piker cannot represent."""
    if p.wsname.count('/') != 1 or p.altname.endswith('.d'):
        return None
    base, quote = (normalise(x) for x in p.wsname.split('/'))
    price_tick = _dec(p.tick_size) or Decimal(1).scaleb(-max(0, min(p.pair_decimals, 18)))
    size_tick = Decimal(1).scaleb(-max(0, min(p.lot_decimals, 18)))
    try:
        mkt = MktPair(
            dst=Asset(name=base, atype='crypto', tx_tick=size_tick),
            src=Asset(name=quote, atype='crypto', tx_tick=Decimal('0.00000001')),
            price_tick=price_tick.normalize(), size_tick=size_tick.normalize(),
            broker=BROKER, bs_mktid=key,
        )
    except ValueError:
        return None
    return Market(
        mkt=mkt, key=key, altname=p.altname, symbol=f'{base}/{quote}',
        base_code=p.base, quote_code=p.quote, ordermin=_dec(p.ordermin) or Decimal(0),
        costmin=_dec(p.costmin) or Decimal(0), status=p.status,
    )


def parse_asset_pairs(result: dict[str, Any]) -> dict[str, Market]:
    """`{bs_fqme: Market}` (e.g. `'btcusd'`) from the AssetPairs result."""
    out: dict[str, Market] = {}
    if not isinstance(result, dict):
        raise ValueError('Kraken AssetPairs did not parse: not an object')
    for key, raw in result.items():
        try:
            pair = msgspec.convert(raw, _Pair)
        except msgspec.ValidationError:
            continue
        market = parse_pair(key, pair)
        if market is not None:
            out[market.mkt.bs_fqme] = market
    return out


def _native(key: str) -> str:
    key = key.lower().replace('/', '')
    suffix = '.' + BROKER
    return key[: -len(suffix)] if key.endswith(suffix) else key


def search_keys(markets: dict[str, Market], pattern: str) -> list[str]:
    """Keys matching `pattern`: exact, then prefix or base, then substring;
    online markets first, shorter names first. Kraken's own names
    (`xbtusd`, `xdg`) find the same markets."""
    pat = _native(pattern.strip())
    pat = _unalias(pat)
    ranked = []
    for key, m in markets.items():
        if not pat:
            rank = 3
        elif key == pat or m.altname.lower() == pat:
            rank = 0
        elif key.startswith(pat) or m.mkt.dst.name == pat:
            rank = 1
        elif pat in key:
            rank = 2
        else:
            continue
        ranked.append((rank, not m.trading, len(key), key))
    return [r[-1] for r in sorted(ranked)]


def _unalias(native: str) -> str:
    for old, new in ALIASES.items():
        if native.startswith(old.lower()):
            return new.lower() + native[len(old):]
    return native


def resolve(markets: dict[str, Market], key: str) -> Market | None:
    """The market named `key`: piker's key (`btcusd`), Kraken's altname
    or REST key (`xbtusd`, `XXBTZUSD`), or its v2 name (`BTC/USD`)."""
    native = _native(key)
    hit = markets.get(native) or markets.get(_unalias(native))
    if hit is not None:
        return hit
    return next((m for m in markets.values()
                 if native in (m.altname.lower(), m.key.lower())), None)


class MarketCache:
    """AssetPairs, fetched once and refetched (at most every
    `REFRESH_MIN_S`) when a key is unknown."""

    def __init__(self) -> None:
        self.markets: dict[str, Market] = {}
        self.fetched_at = 0.0

    async def load(self, client: Any, refresh: bool = False) -> dict[str, Market]:
        if refresh or not self.markets:
            self.markets = parse_asset_pairs(await client.asset_pairs())
            self.fetched_at = time.monotonic()
        return self.markets

    async def get(self, client: Any, key: str) -> Market:
        markets = await self.load(client)
        market = resolve(markets, key)
        if market is None and time.monotonic() - self.fetched_at >= REFRESH_MIN_S:
            markets = await self.load(client, refresh=True)
            market = resolve(markets, key)
        if market is None:
            close = search_keys(markets, _native(key)[:3])[:5]
            hint = f'; close matches: {", ".join(k + "." + BROKER for k in close)}' if close else ''
            raise SymbolNotFound(f'no Kraken spot market {key!r}{hint}')
        return market

    def by_symbol(self, symbol: str) -> Market | None:
        """A market by its websocket v2 name (`BTC/USD`)."""
        return self.markets.get(_native(symbol))


__all__ = ['ALIASES', 'BROKER', 'Market', 'MarketCache', 'normalise',
           'parse_asset_pairs', 'search_keys']
