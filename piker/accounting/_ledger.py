"""The trade ledger: every fill of one broker account, keyed by trade id.

The ledger is the source of truth for what was traded; positions are
derived from it (`Account.from_ledger()`). It lives in
`<config dir>/accounting/ledgers/trades_<broker>_<account>.toml`, one TOML
table per tid, and a tid seen twice is ignored - venues replay fills on
reconnect and a replayed fill must never move a position twice.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import tomli_w

from ..log import get_logger
from ..types import Struct
from ._files import (
    AccountingError,
    check_name,
    join_tables,
    ledger_path,
    read_toml,
    write_toml_text,
)
from ._mktinfo import unpack_fqme

log = get_logger(__name__)


def _to_utc(dt: datetime | str) -> datetime:
    """Coerce to a tz-aware UTC datetime (naive values are taken as UTC)."""
    if isinstance(dt, str):
        try:
            dt = datetime.fromisoformat(dt)
        except ValueError:
            raise ValueError(f'dt {dt!r} is not an ISO 8601 datetime') from None
    if not isinstance(dt, datetime):
        raise ValueError(f'dt must be a datetime, got {dt!r}')
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f'{what} must be a number, got {value!r}')
    if not math.isfinite(value):
        raise ValueError(f'{what} must be finite, got {value!r}')
    return float(value)


class Transaction(Struct, kw_only=True):
    """One fill (clear) in a market.

    `size` is signed: > 0 bought, < 0 sold. `cost` is the fee paid for the
    fill in the quote currency (negative for a rebate). `dt` is a
    tz-aware `datetime` in UTC: a naive datetime or an ISO string passed in
    is converted (naive taken as UTC), so every consumer sees one type.
    """

    fqme: str
    tid: str
    size: float
    price: float
    dt: datetime
    cost: float = 0.0
    bs_mktid: str = ''
    expiry: str = ''

    def __post_init__(self) -> None:
        unpack_fqme(self.fqme)  # raises ValueError with help
        self.fqme = self.fqme.lower()
        if not isinstance(self.tid, str) or not self.tid:
            raise ValueError(f'tid must be a non-empty string, got {self.tid!r}')
        self.size = _finite(self.size, 'size')
        if self.size == 0:
            raise ValueError('size must be non-zero (signed: > 0 buy, < 0 sell)')
        self.price = _finite(self.price, 'price')
        if self.price <= 0:
            raise ValueError(f'price must be > 0, got {self.price}')
        self.cost = _finite(self.cost, 'cost')
        self.dt = _to_utc(self.dt)

    def to_toml(self) -> dict[str, Any]:
        """The ledger table body (the tid is the table's key)."""
        table: dict[str, Any] = {
            'fqme': self.fqme,
            'size': self.size,
            'price': self.price,
            'cost': self.cost,
            'dt': self.dt,
        }
        if self.bs_mktid:
            table['bs_mktid'] = self.bs_mktid
        if self.expiry:
            table['expiry'] = self.expiry
        return table


def _dt(txn: Transaction) -> datetime:
    return txn.dt


class TransactionLedger(Mapping[str, Transaction]):
    """The fills of one broker account: a read-only mapping tid -> txn.

    Add fills with `update_from_txns()` (duplicates by tid are dropped and
    only the new ones are returned), persist with `write()`.
    """

    def __init__(
        self,
        broker: str,
        account: str,
        txns: Iterable[Transaction] = (),
        path: Path | None = None,
    ) -> None:
        self.broker = check_name(broker, 'broker')
        self.account = check_name(account, 'account')
        self.path = path or ledger_path(broker, account)
        self._txns: dict[str, Transaction] = {}
        # the fills in time order (ties: insertion order), kept as they come
        self._by_time: list[Transaction] = []
        # tid -> its rendered TOML table: a write re-renders no old trade
        self._text: dict[str, str] = {}
        self._dirty = False
        self.update_from_txns(txns)

    @classmethod
    def load(
        cls, broker: str, account: str, path: Path | None = None,
    ) -> TransactionLedger:
        """Read the ledger file; a missing file gives an empty ledger."""
        ledger = cls(broker, account, path=path)
        data = read_toml(ledger.path)
        txns = []
        for tid, table in data.items():
            if not isinstance(table, dict):
                raise AccountingError(
                    f'invalid {ledger.path}: entry {tid!r} is not a table'
                )
            try:
                txns.append(msgspec.convert({**table, 'tid': tid}, Transaction))
            except msgspec.ValidationError as err:
                raise AccountingError(
                    f'invalid {ledger.path}: trade {tid!r}: {err}'
                ) from None
        ledger.update_from_txns(txns)
        ledger._dirty = False
        return ledger

    # Mapping protocol
    def __getitem__(self, tid: str) -> Transaction:
        return self._txns[tid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._txns)

    def __len__(self) -> int:
        return len(self._txns)

    def __repr__(self) -> str:
        return (
            f'TransactionLedger({self.broker!r}, {self.account!r}, '
            f'{len(self)} txns, path={str(self.path)!r})'
        )

    @property
    def dirty(self) -> bool:
        """True when fills were added since the last load/write."""
        return self._dirty

    def update_from_txns(self, txns: Iterable[Transaction]) -> list[Transaction]:
        """Add fills, ignoring tids already present; return the new ones."""
        new: list[Transaction] = []
        for txn in txns:
            if not isinstance(txn, Transaction):
                raise TypeError(f'expected a Transaction, got {txn!r}')
            old = self._txns.get(txn.tid)
            if old is not None:
                if old != txn:
                    log.warning(
                        'ignoring fill with duplicate tid %r that differs from '
                        'the recorded one: %r != %r', txn.tid, txn, old,
                    )
                continue
            self._txns[txn.tid] = txn
            if self._by_time and txn.dt < self._by_time[-1].dt:
                bisect.insort_right(self._by_time, txn, key=_dt)
            else:
                self._by_time.append(txn)
            new.append(txn)
        if new:
            self._dirty = True
        return new

    def iter_txns(self, fqme: str | None = None) -> Iterator[Transaction]:
        """Fills in time order (ties keep insertion order), optionally one fqme."""
        want = fqme.lower() if fqme else None
        for txn in list(self._by_time):
            if want is None or txn.fqme == want:
                yield txn

    def to_toml(self) -> dict[str, dict[str, Any]]:
        """The whole file's data: one table per tid, in time order."""
        return {txn.tid: txn.to_toml() for txn in self.iter_txns()}

    def render(self) -> str:
        """The file's TOML text (`tomli_w.dumps(self.to_toml())`), from each
        trade's table rendered once: O(new trades) per write, not O(all)."""
        text = self._text
        parts = []
        for txn in self._by_time:
            part = text.get(txn.tid)
            if part is None:
                part = text[txn.tid] = tomli_w.dumps({txn.tid: txn.to_toml()})
            parts.append(part)
        return join_tables(parts)

    def write(self) -> None:
        """Atomically write the ledger file (old file intact on failure)."""
        write_toml_text(
            self.path,
            self.render(),
            header=(
                f'piker trade ledger: broker {self.broker!r}, account '
                f'{self.account!r}.\nOne table per trade id (tid); size is '
                'signed (> 0 bought, < 0 sold), dt in UTC.'
            ),
        )
        self._dirty = False


@contextmanager
def open_trade_ledger(
    broker: str, account: str, *, path: Path | None = None,
) -> Iterator[TransactionLedger]:
    """Load the ledger of `broker`/`account`, yield it, write it on exit.

    The file is written if fills were added, also when the body raised:
    recorded fills are real trades and must not be lost because later
    code failed.
    """
    ledger = TransactionLedger.load(broker, account, path=path)
    try:
        yield ledger
    finally:
        if ledger.dirty:
            ledger.write()
