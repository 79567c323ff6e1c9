"""OHLC bar storage for one chart: history plus the live last bar.

History arrives as a numpy structured array (the layout `open_history()` /
`Feed.history()` return: `OHLC_DTYPE`) and is kept column by column so
graphics items can slice and reduce it without copying. Live quotes only
ever touch the last bar or append one, so both are O(1): the columns grow
by doubling and `column(name)` is a view of the filled part.

This module is Qt-free on purpose: the bar logic is testable and reusable
without a display.
"""
from __future__ import annotations

import math

import numpy as np

from ._decimate import Decimated, decimate_ohlc

# same layout as `piker.data.OHLC_DTYPE` (kept here so the UI model imports
# without the feed stack; a test checks they agree)
OHLC_FIELDS: tuple[str, ...] = ('time', 'open', 'high', 'low', 'close', 'volume')
OHLC_DTYPE = np.dtype([
    ('time', 'i8'),
    ('open', 'f8'),
    ('high', 'f8'),
    ('low', 'f8'),
    ('close', 'f8'),
    ('volume', 'f8'),
])

_MIN_CAPACITY = 1024


class BarsModel:
    """A growable, columnar OHLC buffer: set history, append, update the last bar.

    Each field is its own contiguous array (`column(name)`): reductions over
    a million highs or lows then stream 8 MB instead of striding through a
    48-byte-per-row record array, which is what keeps re-decimation cheap.

    `version` changes whenever bars other than the last one may have changed
    (history reset or append); graphics caches key on it. `last_version`
    changes on every mutation, including last-bar updates.
    """

    def __init__(self, timeframe: float = 60.0, history: np.ndarray | None = None) -> None:
        if timeframe <= 0:
            raise ValueError(f'timeframe must be > 0 seconds, got {timeframe!r}')
        self.timeframe = float(timeframe)
        self._cols: dict[str, np.ndarray] = _alloc(_MIN_CAPACITY)
        self._len = 0
        self.version = 0
        self.last_version = 0
        self._dec_key: tuple[int, int, int, int] | None = None
        self._dec: Decimated | None = None
        if history is not None:
            self.set_history(history)

    # --- reading ---------------------------------------------------------

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, name: str) -> np.ndarray:
        """`model['high']`: the filled part of a column (a view; see `column`)."""
        return self.column(name)

    def column(self, name: str) -> np.ndarray:
        """Contiguous view of field `name` over the filled bars.

        Do not keep it across appends: the buffer may be reallocated.
        """
        return self._cols[name][:self._len]

    def to_array(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Copy bars `[start, stop)` out as an `OHLC_DTYPE` record array (O(stop-start))."""
        stop = self._len if stop is None else min(stop, self._len)
        start = max(0, min(start, stop))
        out = np.empty(stop - start, dtype=OHLC_DTYPE)
        for f in OHLC_FIELDS:
            out[f] = self._cols[f][start:stop]
        return out

    @property
    def array(self) -> np.ndarray:
        """All bars as an `OHLC_DTYPE` record array (a copy: O(n))."""
        return self.to_array()

    def bar(self, index: int) -> dict[str, float]:
        """Bar `index` (negative counts from the end) as a field -> value dict."""
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(f'bar {index} out of range (have {self._len})')
        return {f: self._cols[f][index].item() for f in OHLC_FIELDS}

    @property
    def last(self) -> dict[str, float] | None:
        """The last bar as a dict, or None when empty."""
        return self.bar(-1) if self._len else None

    def time_at(self, index: float | np.ndarray) -> float | np.ndarray:
        """Epoch seconds of bar `index`, extrapolated by `timeframe` outside data.

        The chart's x axis is the bar index (so gaps in trading never show as
        holes); this maps it back to wall-clock time for labels and clicks.
        """
        idx = np.round(np.asarray(index, dtype=float))
        if self._len == 0:
            out = idx * self.timeframe
        else:
            times = self._cols['time']
            i = np.clip(idx, 0, self._len - 1).astype(np.int64)
            out = times[i] + (idx - i) * self.timeframe
        return float(out) if out.ndim == 0 else out

    def decimated(self, start: int, stop: int, step_num: int) -> Decimated:
        """`decimate_ohlc(self, start, stop, step_num)`, memoised for the last call.

        The candle and volume items of a chart ask for the same columns of
        the same range each frame; they share one reduction.
        """
        # a range holding the live bar changes with every tick
        ver = self.last_version if stop >= self._len else self.version
        key = (start, stop, step_num, ver)
        if key != self._dec_key or self._dec is None:
            self._dec = decimate_ohlc(self, start, stop, step_num)
            self._dec_key = key
        return self._dec

    def index_of_time(self, t: float) -> int:
        """Index of the bar covering epoch time `t` (clamped to the data)."""
        if self._len == 0:
            return 0
        i = int(np.searchsorted(self.column('time'), t, side='right')) - 1
        return max(0, min(i, self._len - 1))

    # --- writing ---------------------------------------------------------

    def set_history(self, history: np.ndarray, timeframe: float | None = None) -> None:
        """Replace all bars with `history` (any structured array with OHLC fields)."""
        if timeframe is not None:
            if timeframe <= 0:
                raise ValueError(f'timeframe must be > 0 seconds, got {timeframe!r}')
            self.timeframe = float(timeframe)
        names = history.dtype.names or ()
        missing = [f for f in OHLC_FIELDS if f not in names]
        if missing:
            raise ValueError(
                f'OHLC history lacks field(s) {missing}; expected {list(OHLC_FIELDS)}'
            )
        n = len(history)
        cap = max(_MIN_CAPACITY, 1 << math.ceil(math.log2(n + 1) + 1))
        self._cols = _alloc(cap)
        for f in OHLC_FIELDS:
            self._cols[f][:n] = history[f]
        self._len = n
        self.version += 1
        self.last_version += 1

    def merge_history(self, history: np.ndarray) -> int:
        """Merge bars fetched later (a backfill) into the model in place.

        Bars of times the model lacks are inserted where they belong; for
        times both have, `history`'s bar wins, except the model's last bar
        (the live one, fed by trades since). Returns how many bars landed
        before the model's first bar (a view keyed on indices shifts by
        that much to keep showing the same bars).
        """
        n = self._len
        if not len(history):
            return 0
        if not n:
            self.set_history(history)
            return 0
        cols = self._cols
        mine = np.empty(n, dtype=[(f, cols[f].dtype) for f in OHLC_FIELDS])
        for f in OHLC_FIELDS:
            mine[f] = cols[f][:n]
        theirs = np.empty(len(history), dtype=mine.dtype)
        for f in OHLC_FIELDS:
            theirs[f] = history[f]
        theirs = theirs[theirs['time'] < mine['time'][-1]]
        before = int(np.count_nonzero(theirs['time'] < mine['time'][0]))
        both = np.concatenate([mine, theirs])
        order = np.argsort(both['time'], kind='stable')  # mine first per time
        both = both[order]
        keep = np.ones(len(both), dtype=bool)
        keep[:-1] = both['time'][1:] != both['time'][:-1]  # last (theirs) wins
        self.set_history(both[keep])
        return before

    def append(
        self,
        time: int,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float = 0.0,
    ) -> int:
        """Append a bar; returns its index. Amortised O(1)."""
        n = self._len
        cols = self._cols
        if n == len(cols['time']):
            grown = _alloc(2 * n)
            for f in OHLC_FIELDS:
                grown[f][:n] = cols[f][:n]
            self._cols = cols = grown
        cols['time'][n] = int(time)
        cols['open'][n] = open
        cols['high'][n] = high
        cols['low'][n] = low
        cols['close'][n] = close
        cols['volume'][n] = volume
        self._len = n + 1
        self.version += 1
        self.last_version += 1
        return n

    def update_last(self, **fields: float) -> None:
        """Overwrite fields of the last bar in place (e.g. `close=`, `volume=`)."""
        if not self._len:
            raise IndexError('no bars to update')
        unknown = set(fields) - set(OHLC_FIELDS)
        if unknown:
            raise ValueError(f'unknown OHLC field(s) {sorted(unknown)}')
        i = self._len - 1
        for k, v in fields.items():
            self._cols[k][i] = v
        self.last_version += 1

    def set_live(self, bars: list[list[float]]) -> int:
        """Apply brokerd's live bars (`quote['bars'][str(timeframe)]`: the
        last closed bar, then the one in progress; see
        `piker.brokers._livebars`): a bar of the last bar's time replaces
        it, a later one is appended, an older one is ignored. Returns how
        many bars were appended.

        This is how a chart fed by brokerd shows its live bar: exactly the
        bar brokerd builds and stores, never one of its own.
        """
        added = 0
        cols = self._cols
        for t, o, h, lo, c, v in bars:
            i = self._len - 1
            last_t = int(cols['time'][i]) if i >= 0 else None
            if last_t is None or t > last_t:
                self.append(int(t), o, h, lo, c, v)
                added += 1
            elif t == last_t:
                cols['open'][i], cols['high'][i], cols['low'][i] = o, h, lo
                cols['close'][i], cols['volume'][i] = c, v
                self.last_version += 1
        return added

    def apply_trade(self, price: float, size: float, time_s: float) -> bool:
        """Fold one trade print into the bars; returns True if a bar was added.

        Only for quotes that carry no brokerd bars (`set_live`): a chart
        fed by hand (tests, benchmarks, a replayed tape outside brokerd).

        The trade lands in the bar whose period contains `time_s`; once that
        is past the last bar's period a new bar opens at `price`, on the
        history's own period grid (`last + k * timeframe`; an empty model
        aligns to epoch multiples). Late prints (older than the last bar)
        update the last bar, which is what a trader watching the tape
        expects to see.
        """
        tf = self.timeframe
        i = self._len - 1
        cols = self._cols
        if i < 0:
            self.append(int(math.floor(time_s / tf) * tf), price, price, price, price, size)
            return True
        last_t = int(cols['time'][i])
        if time_s >= last_t + tf:
            start = last_t + int(math.floor((time_s - last_t) / tf) * tf)
            self.append(start, price, price, price, price, size)
            return True
        cols['close'][i] = price
        if price > cols['high'][i]:
            cols['high'][i] = price
        if price < cols['low'][i]:
            cols['low'][i] = price
        cols['volume'][i] += size
        self.last_version += 1
        return False


def _alloc(capacity: int) -> dict[str, np.ndarray]:
    return {f: np.zeros(capacity, dtype=OHLC_DTYPE[f]) for f in OHLC_FIELDS}
