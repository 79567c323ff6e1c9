"""Market info and symbol search over a backend's cached market table.

The request/response endpoints every venue backend with a session-wide
market cache serves the same way (binance, kraken: their `_api`): a
market by its broker-native key (`SymbolNotFound` from the cache if the
venue has none), its `MktPair`, and a search ranked by the backend's own
`search_keys`.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..accounting import MktPair

__all__ = ['SEARCH_LIMIT', 'MarketApi']

# symbol_search answers at most this many markets
SEARCH_LIMIT = 50


class MarketApi:
    """`get_market`, `get_mkt_info`, `symbol_search` of one backend.

    `get_session()` returns the backend's session (`.client`, and
    `.markets` with `get(client, key)` and `load(client)`); `search_keys`
    ranks the keys of a market table for a pattern, best first.
    """

    def __init__(
        self,
        get_session: Callable[[], Any],
        search_keys: Callable[[Mapping[str, Any], str], Sequence[str]],
        limit: int = SEARCH_LIMIT,
    ) -> None:
        self._session = get_session
        self._search_keys = search_keys
        self.limit = limit

    async def get_market(self, key: str) -> Any:
        """The backend's market of `key` (its own `Market`)."""
        sess = self._session()
        return await sess.markets.get(sess.client, key)

    async def get_mkt_info(self, bs_fqme: str) -> MktPair:
        """The market's `MktPair`; `SymbolNotFound` if the venue has none."""
        return (await self.get_market(bs_fqme)).mkt

    async def symbol_search(self, pattern: str) -> dict[str, MktPair]:
        """Markets matching `pattern`, best first, keyed by fqme."""
        sess = self._session()
        markets = await sess.markets.load(sess.client)
        keys = self._search_keys(markets, pattern)[:self.limit]
        return {markets[k].mkt.fqme: markets[k].mkt for k in keys}
