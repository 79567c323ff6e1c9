"""The trade ledger: every fill of one broker account, keyed by trade id.

The ledger is the source of truth for what was traded; positions are
derived from it (`Account.from_ledger()`). It lives in
`<config dir>/accounting/ledgers/trades_<broker>_<account>.toml`, one TOML
table per tid, and a tid seen twice is ignored - venues replay fills on
reconnect and a replayed fill must never move a position twice.

The file is append-only (`_tablelog`): writing new fills appends their
tables and fsyncs once, whatever the size of the ledger. Each table ends
with its `dt` (tz-aware), so a table torn by a crash mid-append is
recognised on load and dropped, with a log line. A tid is appended at
most once: only fills new to the ledger in memory are ever written.
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
    toml_text,
)
from ._mktinfo import unpack_fqme
from ._tablelog import TableLog

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
        """The ledger table body (the tid is the table's key).

        `dt` comes last: a table cut anywhere before the end of its dt is
        invalid TOML, lacks the dt or has a naive one - a torn append is
        always recognised (see `_whole()`).
        """
        table: dict[str, Any] = {
            'fqme': self.fqme,
            'size': self.size,
            'price': self.price,
            'cost': self.cost,
        }
        if self.bs_mktid:
            table['bs_mktid'] = self.bs_mktid
        if self.expiry:
            table['expiry'] = self.expiry
        table['dt'] = self.dt
        return table

    def render(self) -> str:
        """This trade's TOML table, as a ledger file holds it."""
        return tomli_w.dumps({self.tid: self.to_toml()})


# the header line that marks a ledger file as append-only (`_tablelog`)
APPEND_MARK = ('append-only: each fill appends its table (dt last) with one fsync; '
               'a torn last table is dropped on load.')


def _convert(tid: str, table: Any, path: Path) -> Transaction:
    if not isinstance(table, dict):
        raise AccountingError(f'invalid {path}: entry {tid!r} is not a table')
    try:
        return msgspec.convert({**table, 'tid': tid}, Transaction)
    except (msgspec.ValidationError, ValueError) as err:
        raise AccountingError(f'invalid {path}: trade {tid!r}: {err}') from None


def _whole(tid: str, table: Any, newline_at_end: bool) -> bool:
    """Is the last table of an append-only ledger complete?

    A valid trade whose dt is tz-aware, or (a hand edit) naive but with
    its line ended: a dt cut short is naive (or a date, an int, not TOML)
    and the file then ends inside it, without a newline.
    """
    try:
        _convert(tid, table, Path())
    except AccountingError:
        return False
    dt = table['dt']
    return newline_at_end or (isinstance(dt, datetime) and dt.tzinfo is not None)


def _dt(txn: Transaction) -> datetime:
    return txn.dt


class TransactionLedger(Mapping[str, Transaction]):
    """The fills of one broker account: a read-only mapping tid -> txn.

    Add fills with `update_from_txns()` (duplicates by tid are dropped and
    only the new ones are returned), persist with `write()` (which appends
    them). Iteration is in time order for a loaded ledger, in insertion
    order for fills added since.
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
        # fills added since the last load/write, in insertion order: the
        # next write appends exactly these (each tid once, see update_from_txns)
        self._pending: list[Transaction] = []
        self._file = TableLog(self.path, APPEND_MARK)
        self.update_from_txns(txns)

    @classmethod
    def load(
        cls, broker: str, account: str, path: Path | None = None,
    ) -> TransactionLedger:
        """Read the ledger file; a missing file gives an empty ledger."""
        ledger = cls(broker, account, path=path)
        data = ledger._file.read(_whole)
        txns = [_convert(tid, table, ledger.path) for tid, table in data.items()]
        # appends come in arrival order: iterate a loaded ledger in time order
        txns.sort(key=_dt)
        ledger.update_from_txns(txns)
        ledger._pending.clear()
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
        return bool(self._pending)

    @property
    def appendable(self) -> bool:
        """The file is append-only (False: missing, or written whole by an
        older piker or by hand: the next `write()` rewrites it whole)."""
        return self._file.appendable

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
        self._pending += new
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
        """The whole ledger's TOML body in time order, as a file written
        whole holds it (`tomli_w.dumps(self.to_toml())`)."""
        return join_tables(txn.render() for txn in self._by_time)

    def write(self) -> None:
        """Record the fills added since the last load/write.

        On an append-only file: append their tables (in time order) with
        one fsync - O(new fills), whatever the ledger's size. A missing
        file (or one in the old format, or replaced under us) is written
        whole, atomically. On failure (OSError) the file is as it was and
        the fills stay pending: the next write records each exactly once.
        """
        if self._file.appendable and not self._pending:
            return
        if self._file.appendable:
            body = join_tables(t.render() for t in sorted(self._pending, key=_dt))
            if self._file.append(body):
                self._pending.clear()
                return
        header = (
            f'piker trade ledger: broker {self.broker!r}, account '
            f'{self.account!r}.\nOne table per trade id (tid); size is '
            f'signed (> 0 bought, < 0 sold), dt in UTC.\n{APPEND_MARK}'
        )
        self._file.rewrite(toml_text(self.render(), header))
        self._pending.clear()


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
