"""Positions of a Binance spot account, as piker shows them.

Spot has balances, not positions: the position of a market is its base
asset's balance (free + locked), for each market this account trades
through piker (`_state`). Binance keeps no cost basis, so the average
price is that of the fills piker knows: the last 23 h of `myTrades` at
each order report, moved by every buy since (a sell leaves it).
"""
from __future__ import annotations

from typing import Any

from ...clearing._messages import BrokerdPosition
from ._markets import BROKER, Market
from ._orders import TradeRow
from ._rest import Client


class Positions:
    """Sizes and average prices per symbol, and the messages saying them."""

    def __init__(self, client: Client, account: str, symbols: set[str]) -> None:
        self.client = client
        self.account = account
        self.symbols = symbols  # shared with the venue: markets traded
        self.ppus: dict[str, float] = {}
        self.sizes: dict[str, float] = {}   # balances
        self.known: dict[str, float] = {}   # what the known fills leave held

    def position(self, market: Market, size: float) -> BrokerdPosition:
        self.sizes[market.symbol] = size
        return BrokerdPosition(
            broker=BROKER, account=self.account, symbol=market.mkt.fqme,
            size=size, avg_price=self.ppus.get(market.symbol, 0.0),
            currency=market.mkt.src.name,
        )

    async def balances(self) -> dict[str, float]:
        """`{asset: free + locked}` from `GET /api/v3/account`."""
        acct = await self.client.account()
        out: dict[str, float] = {}
        for bal in acct.get('balances', []):
            try:
                out[str(bal['asset']).lower()] = float(bal['free']) + float(bal['locked'])
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def of_balances(self, markets: list[Market], balances: dict[str, float]) -> list[BrokerdPosition]:
        return [self.position(m, balances.get(m.mkt.dst.name, 0.0)) for m in markets]

    def of_event(self, event: dict[str, Any], lookup: Any) -> list[BrokerdPosition]:
        """The positions an `outboundAccountPosition` event changes
        (`lookup(symbol)` gives a known `Market` or None)."""
        out = []
        for bal in event.get('B', []):
            try:
                asset, size = str(bal['a']).lower(), float(bal['f']) + float(bal['l'])
            except (KeyError, TypeError, ValueError):
                continue
            for symbol in self.symbols:
                market = lookup(symbol)
                if market is not None and market.mkt.dst.name == asset:
                    out.append(self.position(market, size))
        return out

    def on_fill(self, symbol: str, action: str, price: float, qty: float) -> None:
        """Move the average price with a buy (a sell leaves it)."""
        held = self.known.get(symbol, 0.0)
        if action == 'buy':
            ppu = self.ppus.get(symbol, 0.0) if held else 0.0
            self.ppus[symbol] = (ppu * held + price * qty) / (held + qty)
            self.known[symbol] = held + qty
        else:
            self.known[symbol] = max(held - qty, 0.0)
            if not self.known[symbol]:
                self.ppus[symbol] = 0.0

    def from_trades(self, symbol: str, trades: list[TradeRow]) -> None:
        """Start over from these fills (oldest first)."""
        self.known[symbol] = self.ppus[symbol] = 0.0
        for t in sorted(trades, key=lambda t: (t.time, t.id)):
            self.on_fill(symbol, 'buy' if t.isBuyer else 'sell', float(t.price), float(t.qty))


__all__ = ['Positions']
