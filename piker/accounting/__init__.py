"""Accounting: markets, the trade ledger, positions and order sizing.

A top-level package with no Qt or tractor dependency, so data feeds, the
EMS, the paper engine, the UI and the CLI can all share it:

- `MktPair`/`Asset` describe markets; the fqme helpers (`unpack_fqme`,
  `mk_fqme`, `strip_broker`) are re-exported from `piker.fqme`;
- `Transaction` + `TransactionLedger`/`open_trade_ledger` record fills;
- `Position` + `Account`/`open_account` derive positions from fills;
- `PnlBook` tells the P&L those fills realised;
- `Allocator`/`mk_allocator` size orders against a position limit.
"""
from ..fqme import mk_fqme, strip_broker, unpack_fqme
from ._allocate import Allocator, SizeUnit, mk_allocator
from ._files import AccountingError, account_path, ledger_path
from ._ledger import Transaction, TransactionLedger, open_trade_ledger
from ._mktinfo import Asset, MktPair, quantize_to_tick, tick_digits, to_decimal
from ._pnl import PnlBook, realised_by
from ._pos import Account, Clear, Position, open_account, replay, step_position

__all__ = [
    'Account',
    'AccountingError',
    'Allocator',
    'Asset',
    'Clear',
    'MktPair',
    'PnlBook',
    'Position',
    'SizeUnit',
    'Transaction',
    'TransactionLedger',
    'account_path',
    'ledger_path',
    'mk_allocator',
    'mk_fqme',
    'open_account',
    'open_trade_ledger',
    'quantize_to_tick',
    'realised_by',
    'replay',
    'step_position',
    'strip_broker',
    'tick_digits',
    'to_decimal',
    'unpack_fqme',
]
