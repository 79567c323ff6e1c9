"""The sim market catalogue: which markets exist and how each one behaves.

Each `MarketSpec` is both the static market description (turned into a
`MktPair` for the rest of piker) and the parameters of its random walk:
start price, per-quote volatility and typical sizes. Keys are the
broker-native names (`btcusdt`, `simco`); fqmes add `.sim`.
"""
from __future__ import annotations

import difflib
from decimal import Decimal

from ...accounting import Asset, MktPair, strip_broker
from ...types import Struct
from .._errors import SymbolNotFound

BROKER = 'sim'


class MarketSpec(Struct, frozen=True):
    """One sim market and its walk parameters."""

    dst: Asset
    src: Asset
    price_tick: Decimal
    size_tick: Decimal
    # walk: starting price, relative stdev of one quote step's mid move
    start_price: float
    step_vol: float
    # typical resting size at the touch and typical trade size, in units
    book_size: float
    lot: float
    fqme_without_src: bool = False
    description: str = ''

    @property
    def mkt(self) -> MktPair:
        return MktPair(
            dst=self.dst,
            src=self.src,
            price_tick=self.price_tick,
            size_tick=self.size_tick,
            broker=BROKER,
            bs_mktid=self.key,
            fqme_without_src=self.fqme_without_src,
        )

    @property
    def key(self) -> str:
        """The broker-native key (`btcusdt`, `simco`)."""
        if self.fqme_without_src:
            return self.dst.name
        return f'{self.dst.name}{self.src.name}'


def _crypto(name: str, tx_tick: str) -> Asset:
    return Asset(name=name, atype='crypto', tx_tick=Decimal(tx_tick))


_USDT = _crypto('usdt', '0.000001')
_USD = Asset(name='usd', atype='fiat', tx_tick=Decimal('0.01'))

_SPECS: tuple[MarketSpec, ...] = (
    MarketSpec(
        dst=_crypto('btc', '0.00000001'), src=_USDT,
        price_tick=Decimal('0.1'), size_tick=Decimal('0.00001'),
        start_price=65_000.0, step_vol=1e-5, book_size=0.8, lot=0.01,
        description='simulated bitcoin / tether',
    ),
    MarketSpec(
        dst=_crypto('eth', '0.00000001'), src=_USDT,
        price_tick=Decimal('0.01'), size_tick=Decimal('0.0001'),
        start_price=3_200.0, step_vol=1.5e-5, book_size=12.0, lot=0.1,
        description='simulated ether / tether',
    ),
    MarketSpec(
        dst=_crypto('sol', '0.000000001'), src=_USDT,
        price_tick=Decimal('0.001'), size_tick=Decimal('0.01'),
        start_price=150.0, step_vol=2e-5, book_size=300.0, lot=1.0,
        description='simulated solana / tether',
    ),
    MarketSpec(
        dst=Asset(name='simco', atype='stock', tx_tick=Decimal('1')), src=_USD,
        price_tick=Decimal('0.01'), size_tick=Decimal('1'),
        start_price=100.0, step_vol=1e-4, book_size=400.0, lot=100.0,
        fqme_without_src=True,
        description='Sim Co. common stock (integer lots)',
    ),
)

MARKETS: dict[str, MarketSpec] = {spec.key: spec for spec in _SPECS}


def to_key(symbol: str) -> str:
    """Accept a broker-native key (`btcusdt`) or an fqme (`btcusdt.sim`)."""
    symbol = symbol.strip().lower()
    if symbol.endswith(f'.{BROKER}'):
        return strip_broker(symbol, BROKER)
    return symbol


def get_spec(symbol: str) -> MarketSpec:
    """Return the spec of `symbol` or raise `SymbolNotFound` with hints."""
    key = to_key(symbol)
    spec = MARKETS.get(key)
    if spec is not None:
        return spec
    close = difflib.get_close_matches(key, list(MARKETS), n=3, cutoff=0.4)
    hint = (
        f'did you mean {", ".join(c + "." + BROKER for c in close)}? '
        if close else ''
    )
    raise SymbolNotFound(
        f'no sim market {symbol!r}; {hint}'
        f'sim markets: {", ".join(k + "." + BROKER for k in MARKETS)}'
    )


def search(pattern: str) -> list[MarketSpec]:
    """Markets matching `pattern`, best first.

    Ranking: exact key, key prefix, substring of key / asset names /
    description, then fuzzy (difflib) matches. An empty pattern lists all.
    """
    pat = to_key(pattern)
    if not pat:
        return list(MARKETS.values())
    scored: list[tuple[float, str]] = []
    for key, spec in MARKETS.items():
        text = f'{key} {spec.dst.name} {spec.src.name} {spec.description}'.lower()
        if key == pat:
            score = 0.0
        elif key.startswith(pat):
            score = 1.0
        elif pat in text:
            score = 2.0
        else:
            ratio = difflib.SequenceMatcher(None, pat, key).ratio()
            if ratio < 0.5:
                continue
            score = 3.0 + (1.0 - ratio)
        scored.append((score, key))
    scored.sort()
    return [MARKETS[key] for _, key in scored]
