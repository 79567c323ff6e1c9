"""Positions and the per-account positions table.

Cost-basis rules (piker's "ppu", price per unit):

- ppu moves only when |size| grows:
  `ppu' = (ppu*|prev| + price*|clear| + sign*cost) / |new|`
  where `sign` is the sign of the position (+1 long, -1 short). A fee
  therefore always moves ppu *against* the holder: up for a long, down for
  a short. With this choice ppu is the breakeven price on both sides (a
  long profits above it, a short below it) and the maths of a short is
  the exact mirror of a long.
- a reduction keeps ppu (what it realises is PnL, not basis);
- crossing zero restarts from the residual: `ppu' = price + sign*cost/|new|`
  (the whole fee of the flipping fill is charged to the new position);
  opening from flat is the same formula (the blend above with prev = 0);
- flat is `size == 0` and `ppu == 0`.

Each fill updates a position in O(1) (`step_position()`); the fills are
kept keyed by tid so a replayed fill is ignored and the file can show
where the current size and ppu came from (the fills since the position
was last flat: finding them costs O(those fills), not O(all)).

The positions file is derived: the paper venue rebuilds it from the
ledger at every start, so it is replaced whole (it only holds open
positions) and, on the fill path, without fsync (`Account.write`). It
stays small whatever the history: per position it keeps the last
`FILE_CLEARS` fills since flat, and the position the earlier ones made
(`carried_*`; the ledger has them all), so a position built over 20,000
fills costs a fill the same write as one built over 20.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import msgspec
import tomli_w

from ..atomicfile import quarantine
from ..log import get_logger
from ..types import Struct
from ._files import (
    AccountingError,
    account_path,
    check_name,
    join_tables,
    read_toml,
    write_toml_text,
)
from ._ledger import Transaction, TransactionLedger, _to_utc
from ._mktinfo import MktPair, to_decimal, unpack_fqme

log = get_logger(__name__)

# the open fills a positions file keeps per position: the last ones, after
# the position the earlier ones made (`Position.carried_*`)
FILE_CLEARS = 100


def step_position(
    size: float, ppu: float, clear_size: float, price: float, cost: float = 0.0,
) -> tuple[float, float]:
    """Apply one fill to `(size, ppu)` and return the new `(size, ppu)`.

    Sizes are summed as exact decimals so a sequence of fills that nets to
    zero really lands on flat (floats would leave `5.5e-17` behind).
    """
    prev = to_decimal(size, 'size')
    new = prev + to_decimal(clear_size, 'clear size')
    if new == 0:
        return 0.0, 0.0
    new_size = float(new)
    sign = 1.0 if new > 0 else -1.0
    if prev == 0 or (prev > 0) != (new > 0):
        # opened from flat, or crossed zero: the (residual) position was
        # opened at this fill's price (the blend below with prev=0, minus
        # its float round-off)
        return new_size, price + sign * cost / abs(new_size)
    if abs(new) > abs(prev):
        # adding: blend the fill (and its fee) into the basis
        return new_size, (
            ppu * abs(float(prev)) + price * abs(clear_size) + sign * cost
        ) / abs(new_size)
    # reduction: the basis of what is left is unchanged
    return new_size, ppu


def _check_tick(tick: Decimal | float | str | None, what: str) -> Decimal | None:
    if tick is None:
        return None
    dec = to_decimal(tick, what)
    if dec <= 0:
        raise ValueError(f'{what} must be > 0, got {tick}')
    return dec


class Clear(Struct, frozen=True, kw_only=True):
    """One fill as recorded in a position (its tid is the key)."""

    size: float
    price: float
    dt: datetime
    cost: float = 0.0

    def __post_init__(self) -> None:
        msgspec.structs.force_setattr(self, 'dt', _to_utc(self.dt))

    @classmethod
    def from_txn(cls, txn: Transaction) -> Clear:
        return cls(size=txn.size, price=txn.price, dt=txn.dt, cost=txn.cost)

    def to_toml(self) -> dict[str, Any]:
        return {'size': self.size, 'price': self.price, 'cost': self.cost, 'dt': self.dt}


class Position(Struct, kw_only=True, dict=True):
    """The net holding in one market of one account.

    `size` is signed (> 0 long, < 0 short), `ppu` is the breakeven price
    per unit (see the module doc). Ticks are `None` when unknown (e.g. a
    position rebuilt from a ledger without market info).

    `clears` are the fills applied, keyed by tid, in order, after the
    position `carried_size` @ `carried_ppu` that `carried_clears` earlier
    open fills made: all zero unless it was loaded from a positions file
    that left those fills to the ledger (`FILE_CLEARS`).

    Not fields (`dict=True`): `_flat_n` counts the clears up to the last
    flat point; `_tail` holds the last `FILE_CLEARS` open clears and
    `_tail_base` `(fills, size, ppu)`: the position before them, both
    kept in step fill by fill, so writing the file costs O(FILE_CLEARS).
    """

    fqme: str
    bs_mktid: str = ''
    expiry: str = ''
    price_tick: Decimal | None = None
    size_tick: Decimal | None = None
    size: float = 0.0
    ppu: float = 0.0
    clears: dict[str, Clear] = msgspec.field(default_factory=dict)
    carried_clears: int = 0
    carried_size: float = 0.0
    carried_ppu: float = 0.0

    def __post_init__(self) -> None:
        unpack_fqme(self.fqme)
        self.fqme = self.fqme.lower()
        self.price_tick = _check_tick(self.price_tick, 'price_tick')
        self.size_tick = _check_tick(self.size_tick, 'size_tick')
        for what in ('size', 'ppu', 'carried_size', 'carried_ppu'):
            val = getattr(self, what)
            if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
                raise ValueError(f'position {what} must be a finite number, got {val!r}')
            setattr(self, what, float(val))
        if self.carried_clears < 0:
            raise ValueError(f'position carried_clears must be >= 0, got {self.carried_clears}')
        if self.size == 0:
            self.ppu = 0.0
        self._flat_n = 0
        self._tail: deque[tuple[str, Clear]] = deque()
        self._tail_base = (self.carried_clears, self.carried_size, self.carried_ppu)
        net = to_decimal(self.carried_size)
        for i, (tid, clear) in enumerate(self.clears.items(), 1):
            net += to_decimal(clear.size)
            if net == 0:
                self._flat_n = i
                self._went_flat()
            else:
                self._keep(tid, clear)

    def _keep(self, tid: str, clear: Clear) -> None:
        """An open clear: into the tail; the oldest leaves it into the base."""
        tail = self._tail
        tail.append((tid, clear))
        if len(tail) > FILE_CLEARS:
            _, old = tail.popleft()
            n, size, ppu = self._tail_base
            self._tail_base = (n + 1, *step_position(size, ppu, old.size, old.price, old.cost))

    def _went_flat(self) -> None:
        self._tail.clear()
        self._tail_base = (0, 0.0, 0.0)

    @classmethod
    def from_mkt(cls, mkt: MktPair) -> Position:
        """A flat position in `mkt`, carrying its ticks and ids."""
        return cls(
            fqme=mkt.fqme, bs_mktid=mkt.bs_mktid, expiry=mkt.expiry,
            price_tick=mkt.price_tick, size_tick=mkt.size_tick,
        )

    @property
    def is_flat(self) -> bool:
        return self.size == 0

    @property
    def side(self) -> Literal['long', 'short', 'flat']:
        return 'long' if self.size > 0 else 'short' if self.size < 0 else 'flat'

    def add_clear(self, txn: Transaction) -> bool:
        """Apply one fill in O(1); return False (no change) for a known tid."""
        if txn.fqme != self.fqme:
            raise ValueError(
                f'fill {txn.tid!r} is for {txn.fqme!r}, not this position {self.fqme!r}'
            )
        if txn.tid in self.clears:
            return False
        self.size, self.ppu = step_position(
            self.size, self.ppu, txn.size, txn.price, txn.cost,
        )
        clear = self.clears[txn.tid] = Clear.from_txn(txn)
        if self.size == 0:
            self._flat_n = len(self.clears)
            self._went_flat()
        else:
            self._keep(txn.tid, clear)
        if not self.bs_mktid and txn.bs_mktid:
            self.bs_mktid = txn.bs_mktid
        if not self.expiry and txn.expiry:
            self.expiry = txn.expiry
        return True

    def open_clears(self) -> dict[str, Clear]:
        """The fills since the position was last flat (of those applied:
        see `carried_clears`).

        Replaying exactly these from flat (or from the carried position,
        if it never went flat since) reproduces `size` and `ppu`.
        """
        n = len(self.clears) - self._flat_n
        if n <= 0:
            return {}
        return dict(reversed(list(islice(reversed(self.clears.items()), n))))

    @property
    def open_count(self) -> int:
        """How many fills since the position was last flat, the carried
        ones included."""
        n = len(self.clears) - self._flat_n
        return n + (self.carried_clears if self._flat_n == 0 else 0)

    def file_clears(self) -> list[tuple[str, Clear]]:
        """The open clears the positions file keeps: the last `FILE_CLEARS`."""
        return list(self._tail)

    def to_toml(self, clears: bool = True) -> dict[str, Any]:
        """The positions-file table of this position (`clears=False`:
        without its `clears` sub-table): the last `FILE_CLEARS` open
        clears, after the position the earlier ones made."""
        table: dict[str, Any] = {'size': self.size, 'ppu': self.ppu}
        if self.bs_mktid:
            table['bs_mktid'] = self.bs_mktid
        if self.expiry:
            table['expiry'] = self.expiry
        if self.price_tick is not None:
            table['price_tick'] = str(self.price_tick)
        if self.size_tick is not None:
            table['size_tick'] = str(self.size_tick)
        carried, size, ppu = self._tail_base
        if carried or size:  # what the fills before the kept ones made
            table.update(carried_clears=carried, carried_size=size, carried_ppu=ppu)
        if clears:
            table['clears'] = {tid: c.to_toml() for tid, c in self._tail}
        return table


def replay(
    fqme: str, clears: Iterable[tuple[str, Clear]], size: float = 0.0, ppu: float = 0.0,
) -> Position:
    """Rebuild a position by applying `(tid, clear)` in order, from flat
    or from `size` @ `ppu` (what earlier fills made)."""
    pos = Position(fqme=fqme, size=size, ppu=ppu, carried_size=size, carried_ppu=ppu)
    for tid, c in clears:
        pos.add_clear(Transaction(
            fqme=fqme, tid=tid, size=c.size, price=c.price, cost=c.cost, dt=c.dt,
        ))
    return pos


class Account:
    """The positions table of one broker account.

    Positions are keyed by fqme. Flat positions stay in memory (their
    clears still de-duplicate replayed fills) but are dropped from the
    file at `<config dir>/accounting/account.<broker>.<account>.toml`.
    """

    def __init__(
        self,
        broker: str,
        account: str,
        pps: Mapping[str, Position] | None = None,
        path: Path | None = None,
    ) -> None:
        self.broker = check_name(broker, 'broker')
        self.account = check_name(account, 'account')
        self.path = path or account_path(broker, account)
        self.pps: dict[str, Position] = dict(pps or {})
        # (fqme, tid) -> the clear's rendered TOML table: see `render()`
        self._text: dict[tuple[str, str], str] = {}
        self._dirty = False

    def __repr__(self) -> str:
        return (
            f'Account({self.broker!r}, {self.account!r}, '
            f'{len(self.open_positions())} open, path={str(self.path)!r})'
        )

    @property
    def dirty(self) -> bool:
        """True when positions changed since the last load/write."""
        return self._dirty

    @classmethod
    def load(cls, broker: str, account: str, path: Path | None = None) -> Account:
        """Read the positions file; a missing file gives an empty account."""
        acct = cls(broker, account, path=path)
        for fqme, table in read_toml(acct.path).items():
            if not isinstance(table, dict):
                raise AccountingError(
                    f'invalid {acct.path}: entry {fqme!r} is not a table'
                )
            try:
                pos = msgspec.convert({**table, 'fqme': fqme}, Position)
            except msgspec.ValidationError as err:
                raise AccountingError(
                    f'invalid {acct.path}: position {fqme!r}: {err}'
                ) from None
            try:
                check = replay(pos.fqme, pos.clears.items(), pos.carried_size, pos.carried_ppu)
            except ValueError as err:
                raise AccountingError(
                    f'invalid {acct.path}: position {fqme!r}: bad clear: {err}'
                ) from None
            if pos.clears and (
                check.size != pos.size or not math.isclose(check.ppu, pos.ppu)
            ):
                log.warning(
                    '%s: position %r says size=%s ppu=%s but its clears give '
                    'size=%s ppu=%s; keeping the recorded values',
                    acct.path, fqme, pos.size, pos.ppu, check.size, check.ppu,
                )
            acct.pps[pos.fqme] = pos
        return acct

    @classmethod
    def load_or_set_aside(
        cls, broker: str, account: str, path: Path | None = None,
    ) -> Account:
        """`load()`, for an owner that rebuilds positions from the ledger.

        The ledger is the source of truth and the positions file derived
        from it: one that cannot be read or is invalid must not stop its
        owner (the paper venue), so it is renamed aside with its bytes
        intact (`<name>.corrupt-<time>`), loudly, and an empty account,
        marked dirty, is returned to be rebuilt from the ledger and written.
        """
        try:
            return cls.load(broker, account, path=path)
        except AccountingError as err:
            acct = cls(broker, account, path=path)
            aside = quarantine(acct.path)
            log.error('POSITIONS FILE %s IS UNUSABLE (%s): moved it to %s; '
                      'positions are rebuilt from the trade ledger', acct.path, err, aside)
            acct._dirty = True
            return acct

    @classmethod
    def from_ledger(
        cls,
        ledger: TransactionLedger,
        mkts: Mapping[str, MktPair] | None = None,
        path: Path | None = None,
    ) -> Account:
        """Derive the positions table of `ledger`'s account from its fills."""
        acct = cls(ledger.broker, ledger.account, path=path)
        acct.rebuild_from_ledger(ledger, mkts)
        return acct

    def rebuild_from_ledger(
        self,
        ledger: TransactionLedger,
        mkts: Mapping[str, MktPair] | None = None,
    ) -> dict[str, Position]:
        """Replace every position by a replay of `ledger` (in time order).

        Market info (ticks, ids) comes from `mkts` or is kept from the
        positions already known. Returns the open positions.
        """
        if (ledger.broker, ledger.account) != (self.broker, self.account):
            raise ValueError(
                f'ledger of {ledger.broker}/{ledger.account} cannot rebuild '
                f'account {self.broker}/{self.account}'
            )
        known = {
            fqme: Position(
                fqme=fqme, bs_mktid=p.bs_mktid, expiry=p.expiry,
                price_tick=p.price_tick, size_tick=p.size_tick,
            )
            for fqme, p in self.pps.items()
        }
        for fqme, mkt in (mkts or {}).items():
            known[fqme.lower()] = Position.from_mkt(mkt)
        self.pps = {}
        for txn in ledger.iter_txns():
            pos = self.pps.get(txn.fqme)
            if pos is None:
                pos = self.pps[txn.fqme] = known.get(txn.fqme) or Position(fqme=txn.fqme)
            pos.add_clear(txn)
        self._dirty = True
        return self.open_positions()

    def get(self, fqme: str) -> Position | None:
        """The position in `fqme` (flat ones included), or None."""
        return self.pps.get(fqme.lower())

    def open_positions(self) -> dict[str, Position]:
        """Non-flat positions by fqme."""
        return {fqme: p for fqme, p in self.pps.items() if not p.is_flat}

    def __iter__(self) -> Iterator[Position]:
        return iter(self.open_positions().values())

    def apply(self, txn: Transaction, mkt: MktPair | None = None) -> Position:
        """Apply one fill and return the (updated) position.

        A fill whose tid the position already has changes nothing. `mkt`
        supplies ticks/ids when the position is new or lacks them.
        """
        broker, *_ = unpack_fqme(txn.fqme)
        if broker != self.broker:
            raise ValueError(
                f'fill {txn.tid!r} for {txn.fqme!r} is not a {self.broker!r} market'
            )
        if mkt is not None and mkt.fqme != txn.fqme:
            raise ValueError(f'market {mkt.fqme!r} does not match fill fqme {txn.fqme!r}')
        pos = self.pps.get(txn.fqme)
        if pos is None:
            pos = Position.from_mkt(mkt) if mkt else Position(fqme=txn.fqme)
            self.pps[txn.fqme] = pos
        elif mkt is not None and pos.price_tick is None:
            pos.price_tick, pos.size_tick = mkt.price_tick, mkt.size_tick
            pos.bs_mktid = pos.bs_mktid or mkt.bs_mktid
        if pos.add_clear(txn):
            self._dirty = True
        return pos

    def update_from_txns(
        self, txns: Iterable[Transaction], mkts: Mapping[str, MktPair] | None = None,
    ) -> dict[str, Position]:
        """Apply many fills in order; return the touched positions by fqme."""
        mkts = {k.lower(): v for k, v in (mkts or {}).items()}
        touched: dict[str, Position] = {}
        for txn in txns:
            touched[txn.fqme] = self.apply(txn, mkts.get(txn.fqme))
        return touched

    def to_toml(self) -> dict[str, dict[str, Any]]:
        """The whole file's data: one table per open position."""
        return {fqme: p.to_toml() for fqme, p in sorted(self.open_positions().items())}

    def render(self) -> str:
        """The file's TOML text (`tomli_w.dumps(self.to_toml())`), with each
        clear's table rendered once: a write re-renders no old fill."""
        parts = []
        cache: dict[tuple[str, str], str] = {}  # only the open clears stay cached
        for fqme, pos in sorted(self.open_positions().items()):
            clears = pos.file_clears()
            if not clears:
                parts.append(tomli_w.dumps({fqme: pos.to_toml()}))
                continue
            parts.append(tomli_w.dumps({fqme: pos.to_toml(clears=False)}))
            for tid, clear in clears:
                part = self._text.get((fqme, tid))
                if part is None:
                    part = tomli_w.dumps({fqme: {'clears': {tid: clear.to_toml()}}})
                parts.append(cache.setdefault((fqme, tid), part))
        self._text = cache
        return join_tables(parts)

    def write(self, *, durable: bool = True) -> None:
        """Atomically write the positions file (flat positions dropped).

        `durable=False` skips the fsyncs (a process crash still leaves the
        old or the new file): for an owner that rebuilds the file from the
        ledger at start-up (the paper venue), so an OS crash costs nothing.
        """
        write_toml_text(
            self.path,
            self.render(),
            header=(
                f'piker positions: broker {self.broker!r}, account '
                f'{self.account!r}.\nOne table per fqme: signed size, ppu '
                '(breakeven price per unit) and the fills since it was last flat.'
            ),
            durable=durable,
        )
        self._dirty = False


@contextmanager
def open_account(
    broker: str, account: str, *, path: Path | None = None,
) -> Iterator[Account]:
    """Load the positions table of `broker`/`account`, yield it, write on exit.

    Written whenever positions changed, also if the body raised: every
    applied fill was real and its position must not be lost.
    """
    acct = Account.load(broker, account, path=path)
    try:
        yield acct
    finally:
        if acct.dirty:
            acct.write()
