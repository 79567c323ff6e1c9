"""Quote feeds and OHLC history.

`open_feed(fqmes)` gives a script, the UI, the EMS or a test live
batched quotes (`{fqme: quote}`), `MktPair`s and history for any mix of
markets and backends; see `_feed.py`. Quote format (DESIGN.md / CONTRACTS):

    {'symbol': fqme, 'last': float, 'bid': float, 'ask': float,
     'bsize': float, 'asize': float, 'volume': float, 'time_ns': int,
     'ticks': [{'type': 'bid'|'ask'|'trade'|'last', 'price': float,
                'size': float}, ...]}

Consumers read through a `QuoteBuffer` whose overflow policy is
conflation (latest L1 per fqme, tick lists merged, at most
`max_ticks` kept): see `piker.buffers`. History arrays use `OHLC_DTYPE`.
"""
from ..brokers._errors import FeedError
from ..buffers import Batch, BufferClosed, QuoteBuffer
from ..ohlc import OHLC_DTYPE, TIMEFRAMES, pack_array, unpack_array
from ..storage._backfill import BackfillReport
from ._feed import Feed, open_feed, stored_bars

__all__ = [
    'BackfillReport',
    'OHLC_DTYPE',
    'TIMEFRAMES',
    'Batch',
    'BufferClosed',
    'Feed',
    'FeedError',
    'QuoteBuffer',
    'open_feed',
    'stored_bars',
    'pack_array',
    'unpack_array',
]
