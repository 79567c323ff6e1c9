"""`Delta`: a change to growing arrays, and the conflation of two of them.

Both directions of an indicator session carry deltas: the chart sends
its bars (`{'ohlc': rows}`), the indicator actor sends its outputs (one
array per indicator). A delta says "keep rows `[0, start)`, replace
everything from `start` on with these rows" (a history reload is simply
`start == 0`), so:

- a live bar's tick is one row, an append two, a reload everything;
- two pending deltas fold into one (`merge`): a slow reader gets the
  latest state, never a queue of stale frames (TRACTOR.md rule 9), and
  nothing is lost, because the fold keeps the earliest `start`.

On the wire a delta is a `DeltaMsg` (arrays packed by `piker.ohlc.
pack_array`, tractor's codec carries no numpy).
"""
from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from ..ohlc import pack_array, unpack_array
from ..types import Struct


class DeltaMsg(Struct):
    start: int
    arrays: dict[str, dict[str, Any]]
    errors: dict[str, str] = {}


class Delta:
    """Rows from `start` on, per array name; `errors` per name (sticky)."""

    __slots__ = ('start', 'arrays', 'errors')

    def __init__(
        self,
        start: int,
        arrays: dict[str, np.ndarray],
        errors: dict[str, str] | None = None,
    ) -> None:
        if start < 0:
            raise ValueError(f'delta start must be >= 0, got {start}')
        self.start = int(start)
        self.arrays = arrays
        self.errors = dict(errors or {})

    def __repr__(self) -> str:
        lens = {k: len(v) for k, v in self.arrays.items()}
        return f'Delta(start={self.start}, rows={lens}, errors={list(self.errors)})'

    @property
    def stop(self) -> int:
        """Length of the arrays after this delta (of its longest array)."""
        return self.start + max((len(a) for a in self.arrays.values()), default=0)

    def to_msg(self) -> dict[str, Any]:
        return DeltaMsg(
            self.start, {k: pack_array(v) for k, v in self.arrays.items()}, self.errors,
        ).to_dict()

    @classmethod
    def from_msg(cls, msg: Any) -> Delta:
        """Decode a wire message (`msgspec.ValidationError` if malformed)."""
        m = msgspec.convert(msg, DeltaMsg)
        try:
            arrays = {k: unpack_array(v) for k, v in m.arrays.items()}
        except (KeyError, TypeError, ValueError) as err:
            raise msgspec.ValidationError(f'bad packed array in delta: {err}') from None
        return cls(m.start, arrays, m.errors)


def merge(prev: Delta, new: Delta) -> Delta:
    """One delta equal to applying `prev` then `new`.

    Both carry the same arrays (a session's deltas always carry every
    array; a changed set of arrays starts over at 0, which needs no fold).
    """
    if new.start <= prev.start:
        arrays = {**prev.arrays, **new.arrays} if new.start == prev.start else new.arrays
        return Delta(new.start, arrays, {**prev.errors, **new.errors})
    missing = new.arrays.keys() - prev.arrays.keys()
    if missing:
        raise ValueError(f'cannot fold arrays {sorted(missing)} into a delta without them')
    arrays = dict(prev.arrays)
    for name, rows in new.arrays.items():
        keep = prev.arrays[name][:new.start - prev.start]
        arrays[name] = np.concatenate([keep, rows])
    return Delta(prev.start, arrays, {**prev.errors, **new.errors})


class Growing:
    """An array that grows by doubling; `view` is its filled part.

    `apply(rows, start)` is `view[:start] ++ rows` in amortised O(rows):
    a live bar's tick must not copy a million-bar history.
    """

    __slots__ = ('_buf', 'n')

    def __init__(self, dtype: np.dtype, capacity: int = 1024) -> None:
        self._buf = np.empty(capacity, dtype=dtype)
        self.n = 0

    @property
    def view(self) -> np.ndarray:
        return self._buf[:self.n]

    def resize(self, n: int) -> np.ndarray:
        """Make the filled part `n` rows long (new rows uninitialised)."""
        if n > len(self._buf):
            grown = np.empty(max(n, 2 * len(self._buf)), dtype=self._buf.dtype)
            grown[:self.n] = self._buf[:self.n]
            self._buf = grown
        self.n = n
        return self.view

    def apply(self, rows: np.ndarray, start: int) -> np.ndarray:
        start = min(start, self.n)
        out = self.resize(start + len(rows))
        out[start:] = rows
        return out
