"""`local`: markets made of bars the user imported (`piker store import`).

Every `<name>.local` market in the store (`bars/<name>.local/`) is a
market: its history is the stored bars (any timeframe that was
imported), its quote stream the last bar's close, once (no live
trading: the bars are all there is). Price and size ticks come from the
import (`meta.json`), so the chart and the paper engine use the file's
own grid.
"""
from __future__ import annotations

import time
from decimal import Decimal

import numpy as np
import trio

from ...accounting import Asset, MktPair, unpack_fqme
from ...storage import BarStore
from ...storage._import import read_meta
from .._errors import SymbolNotFound

# brokerd serves the store as is: nothing to merge back into it
SERVES_STORE = True

Quote = dict


def _fqme(key: str) -> str:
    key = key.strip().lower()
    return key if key.endswith('.local') else f'{key}.local'


def _markets() -> list[str]:
    return [m for m in BarStore().markets() if m.endswith('.local')]


def _mkt(fqme: str) -> MktPair:
    store = BarStore()
    if fqme not in _markets() or not store.timeframes(fqme):
        known = ', '.join(_markets()) or 'none yet'
        raise SymbolNotFound(
            f'no local market {fqme!r} (imported: {known}); import bars with '
            '`piker store import FILE --fqme NAME.local`')
    _, pair, venue, suffix = unpack_fqme(fqme)
    meta = read_meta(store.root / 'bars' / fqme)
    size_tick = Decimal(str(meta.get('size_tick', '1')))
    return MktPair(
        dst=Asset(name=pair, atype='local', tx_tick=size_tick),
        src=Asset(name=str(meta.get('currency', 'usd')), atype='fiat', tx_tick=Decimal('0.01')),
        price_tick=Decimal(str(meta.get('price_tick', '0.01'))),
        size_tick=size_tick, broker='local', venue=venue, expiry=suffix,
        fqme_without_src=True,
    )


async def get_mkt_info(bs_fqme: str) -> MktPair:
    return _mkt(_fqme(bs_fqme))


async def symbol_search(pattern: str) -> dict[str, MktPair]:
    pattern = pattern.strip().lower()
    found = [m for m in _markets() if pattern in m]
    found.sort(key=lambda m: (not m.startswith(pattern), m))
    return {m: _mkt(m) for m in found}


async def open_history(bs_fqme: str, timeframe: int, *, start: int | None = None,
                       end: int | None = None) -> np.ndarray:
    """The imported bars (those opening in `[start, end]` if given)."""
    fqme = _fqme(bs_fqme)
    _mkt(fqme)
    store = BarStore()
    tfs = store.timeframes(fqme)
    if int(timeframe) not in tfs:
        raise ValueError(f'{fqme} has no {timeframe}s bars; stored timeframes: '
                         f'{", ".join(map(str, tfs))} (seconds)')
    return await trio.to_thread.run_sync(store.read, fqme, int(timeframe), start,
                                         None if end is None else end + 1)


async def stream_quotes(
    send_chan: trio.abc.SendChannel[Quote],
    bs_fqmes: list[str],
    *,
    task_status: trio.TaskStatus[dict[str, Quote]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The last stored close of each market, then nothing (no live market)."""
    first = {}
    for key in bs_fqmes:
        fqme = _fqme(key)
        _mkt(fqme)
        store = BarStore()
        tf = min(store.timeframes(fqme))
        t = store.times(fqme, tf)
        last = store.read(fqme, tf, int(t[-1])) if len(t) else np.empty(0)
        px = float(last['close'][-1]) if len(last) else float('nan')
        first[key] = {'symbol': key, 'last': px, 'bid': px, 'ask': px, 'bsize': 0.0,
                      'asize': 0.0, 'volume': 0.0, 'time_ns': time.time_ns(), 'ticks': []}
    task_status.started(first)
    await trio.sleep_forever()
