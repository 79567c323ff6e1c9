"""The local market-data store: OHLC bars and recorded ticks as Parquet.

Layout (under `<config dir>/storage/`, see `store_root()`), readable by
polars, pandas and DuckDB as is:

    bars/<fqme>/<timeframe>/<YYYY-MM>.parquet      one month of bars
    bars/<fqme>/<timeframe>/<YYYY-MM-DD>.parquet   one UTC day (timeframe < 60)
    bars/<fqme>/<timeframe>/closed.json            spans the venue has no
                                                   bars for (market closed)
    ticks/<fqme>/<YYYY-MM-DD>/<n>.parquet          one recorded batch
    ticks/<fqme>/<YYYY-MM-DD>/c-<lo>-<hi>.parquet  batches lo..hi compacted
    ticks/<fqme>/mkt.json                          the market's MktPair
    locks/bars.<fqme>.lock, locks/ticks.<fqme>.lock  write locks (below)

e.g. `duckdb.sql("select * from '<dir>/bars/btcusdt.binance/60/*.parquet'")`
or `polars.scan_parquet('<dir>/ticks/btcusdt.binance/*/*.parquet')`.

Bars: columns `time` (int64, bar open, UTC epoch seconds, a multiple of
the timeframe), `open`, `high`, `low`, `close`, `volume` (float64): the
`OHLC_DTYPE` of `piker.data`. A month file is sorted by `time` with no
duplicate times; writing bars merges them into the partitions they fall
in (a new bar replaces a stored one of the same time), rewriting only
those.

Ticks: one row per tick of a recorded L1 quote: `time_ns` (int64, UTC
epoch ns), `seq` (int64, the quote's number in the recording: the rows
of one quote share it), `type` ('bid', 'ask', 'trade', 'last', or
'quote' for a quote with no ticks), `price`, `size`, then the quote's L1
state after it: `bid`, `ask`, `bsize`, `asize`, `last`, `volume`
(float64). A quote is the rows of one `seq`, in file order.

Every file is written whole to a temp file (dot-prefixed, `.tmp`, so no
`*.parquet` glob sees it), fsynced and renamed: a crash leaves the
previous file intact. Every change to a market (a write, a compaction, a delete) holds that
market's `flock()` write lock for its whole read-merge-rewrite, so
brokerd appending live bars and `piker store delete` in a shell never
interleave (a delete waits for the append in flight, then removes it
too); readers take no lock. Polars writes and reads: it is one self-contained
wheel (no pandas), reads a list of files in parallel straight into
numpy-convertible columns, and globs like DuckDB.
"""
from ._bars import BarStore, Gap
from ._errors import StorageError
from ._layout import store_root
from ._record import TickRecorder
from ._ticks import TICK_SCHEMA, TickStore, quotes_to_rows, rows_to_quotes

__all__ = [
    'TICK_SCHEMA',
    'BarStore',
    'Gap',
    'StorageError',
    'TickRecorder',
    'TickStore',
    'quotes_to_rows',
    'rows_to_quotes',
    'store_root',
]
