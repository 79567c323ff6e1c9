"""The live account's fills in piker's trade ledger
(`accounting/ledgers/trades_binance_<account>.toml`, see DESIGN.md
section 8), so `piker ledger binance spot` shows what traded.

Binance is the record of truth: fills are reported to emsd first and
written here right after, in batches, off the event loop (the file is
fsync'd). A fill this misses (a crash in between) comes back with the
next order report (`myTrades`); the ledger drops repeats by tid.
"""
from __future__ import annotations

from datetime import UTC, datetime

import trio

from ...accounting import Transaction, TransactionLedger
from ...clearing._messages import BrokerdFill
from ...log import get_logger
from ._markets import BROKER, Market

log = get_logger('brokers.binance.ledger')


class LedgerSink:
    """Batches fills into one account's ledger (one writer task: `run`)."""

    def __init__(self, account: str) -> None:
        self.ledger = TransactionLedger.load(BROKER, account)
        self._pending: list[Transaction] = []
        self._wake = trio.Event()

    def add(self, fill: BrokerdFill, market: Market) -> None:
        self._pending.append(Transaction(
            fqme=market.mkt.fqme, tid=fill.tid,
            size=fill.size if fill.action == 'buy' else -fill.size,
            price=fill.price, cost=fill.cost,
            dt=datetime.fromtimestamp(fill.broker_time, UTC), bs_mktid=market.symbol,
        ))
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            batch, self._pending = self._pending, []
            if self.ledger.update_from_txns(batch):
                try:
                    await trio.to_thread.run_sync(self.ledger.write)
                except OSError as err:
                    log.error('cannot write the binance ledger (%s); its fills come '
                              'back with the next order report', err)


__all__ = ['LedgerSink']
