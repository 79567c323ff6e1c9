"""piker.storage: bar and tick round trips, partitions, atomicity, errors."""
from __future__ import annotations

import errno
import math
import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from piker.data import OHLC_DTYPE
from piker.storage import (
    BarStore,
    Gap,
    StorageError,
    TickStore,
    _files,
    quotes_to_rows,
    rows_to_quotes,
)
from piker.storage._bars import BAR_DTYPE

DAY = 86_400
# a base time on a month boundary (2026-01-01T00:00Z)
T0 = 1_767_225_600


def bars_at(times, tf=60, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = np.zeros(len(times), dtype=OHLC_DTYPE)
    arr['time'] = times
    close = 100 + rng.normal(0, 1, len(times)).cumsum()
    arr['open'] = close - 0.1
    arr['close'] = close
    arr['high'] = np.maximum(arr['open'], close) + 0.5
    arr['low'] = np.minimum(arr['open'], close) - 0.5
    arr['volume'] = rng.integers(0, 100, len(times))
    return arr


def test_bar_dtype_is_the_feed_dtype():
    assert BAR_DTYPE == OHLC_DTYPE


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=st.lists(
    st.lists(st.integers(0, 100 * 24 * 60), min_size=0, max_size=40),  # minutes in ~100 days
    min_size=1, max_size=5,
), seed=st.integers(0, 1000))
def test_bars_round_trip(tmp_path_factory, writes, seed):
    store = BarStore(tmp_path_factory.mktemp('bars'))
    model: dict[int, tuple] = {}
    for i, minutes in enumerate(writes):
        times = T0 + 60 * np.asarray(minutes, dtype=np.int64)
        bars = bars_at(times, seed=seed + i)
        store.write('btcusdt.sim', 60, bars)
        for row in bars:  # later rows of the same time win, like the store
            model[int(row['time'])] = tuple(row)
    got = store.read('btcusdt.sim', 60)
    assert got.dtype == OHLC_DTYPE
    assert list(got['time']) == sorted(model)
    assert [tuple(r) for r in got] == [model[t] for t in sorted(model)]
    # no duplicate times, ever
    assert len(np.unique(got['time'])) == len(got)
    # a range read equals the slice of the whole
    if len(got) > 2:
        lo, hi = int(got['time'][1]), int(got['time'][-1])
        part = store.read('btcusdt.sim', 60, lo, hi)
        assert np.array_equal(part, got[(got['time'] >= lo) & (got['time'] < hi)])


def test_bars_partitioned_by_month_and_range_reads_touch_only_their_months(
        tmp_path, monkeypatch):
    store = BarStore(tmp_path)
    times = T0 + 3600 * np.arange(24 * 90)  # 90 days of hourly bars
    store.write('btcusdt.sim', 3600, bars_at(times, tf=3600))
    d = tmp_path / 'bars' / 'btcusdt.sim' / '3600'
    assert sorted(p.name for p in d.iterdir()) == [
        '2026-01.parquet', '2026-02.parquet', '2026-03.parquet']
    opened: list = []
    real = _files.read_parquet

    def spy(paths, columns=None):
        opened.extend(p.name for p in paths)
        return real(paths, columns)

    monkeypatch.setattr('piker.storage._bars.read_parquet', spy)
    feb = T0 + 31 * DAY
    got = store.read('btcusdt.sim', 3600, feb + DAY, feb + 2 * DAY)
    assert opened == ['2026-02.parquet']
    assert len(got) == 24
    # an append of one closed bar rewrites only its month
    opened.clear()
    mtimes = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    store.write('btcusdt.sim', 3600, bars_at([int(times[-30])], tf=3600, seed=5))
    assert opened == ['2026-03.parquet']
    after = {p.name: p.stat().st_mtime_ns for p in d.iterdir()}
    assert after['2026-01.parquet'] == mtimes['2026-01.parquet']
    assert after['2026-02.parquet'] == mtimes['2026-02.parquet']


def test_layout_reads_with_a_plain_glob(tmp_path):
    store = BarStore(tmp_path)
    times = T0 + 60 * np.arange(0, 60 * 24 * 45, 7)
    store.write('btcusdt.binance', 60, bars_at(times))
    df = pl.scan_parquet(str(tmp_path / 'bars/btcusdt.binance/60/*.parquet')).collect()
    assert df.columns == ['time', 'open', 'high', 'low', 'close', 'volume']
    assert df.schema['time'] == pl.Int64
    assert df.sort('time')['time'].to_list() == times.tolist()


def test_bad_bars_are_refused_with_the_reason(tmp_path):
    store = BarStore(tmp_path)
    with pytest.raises(ValueError, match='not a multiple of the 60s'):
        store.write('btcusdt.sim', 60, bars_at([T0 + 30]))
    with pytest.raises(ValueError, match='not a valid fqme|fqme'):
        store.write('../etc', 60, bars_at([T0]))
    assert not (tmp_path / 'bars').exists()


def test_gaps_found_and_closed_spans_not_reported_again(tmp_path):
    store = BarStore(tmp_path)
    times = T0 + 60 * np.arange(100)
    keep = (times < T0 + 60 * 40) | (times >= T0 + 60 * 55)
    keep &= times != T0 + 60 * 80
    store.write('btcusdt.sim', 60, bars_at(times[keep]))
    gaps = store.gaps('btcusdt.sim', 60)
    assert gaps == [Gap(T0 + 60 * 40, T0 + 60 * 55), Gap(T0 + 60 * 80, T0 + 60 * 81)]
    assert gaps[0].bars(60) == 15
    store.mark_closed('btcusdt.sim', 60, gaps[:1])
    assert store.gaps('btcusdt.sim', 60) == gaps[1:]
    assert store.gaps('btcusdt.sim', 60, include_closed=True)[0].closed
    span = store.span('btcusdt.sim', 60)
    assert (span.first, span.last, span.bars, span.gaps) == (
        T0, T0 + 60 * 99, int(keep.sum()), 1)


def test_delete_range_and_all(tmp_path):
    store = BarStore(tmp_path)
    times = T0 + 3600 * np.arange(24 * 40)
    store.write('btcusdt.sim', 3600, bars_at(times, tf=3600))
    gone = store.delete('btcusdt.sim', 3600, T0 + 10 * DAY, T0 + 35 * DAY)
    assert gone == 25 * 24
    assert len(store.read('btcusdt.sim', 3600)) == 15 * 24
    store.delete('btcusdt.sim')
    assert store.markets() == []


# --- crash safety -----------------------------------------------------------

_CRASHER = textwrap.dedent('''
    import os, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_storage import bars_at, T0
    import piker.atomicfile as af
    from piker.storage import BarStore

    real_fsync = os.fsync
    def die(fd):
        # the temp file is written but not yet renamed: the process dies
        os._exit(17)
    store = BarStore({root!r})
    os.fsync = die
    store.write('btcusdt.sim', 60, bars_at(T0 + 60 * np.arange(1000, 2000), seed=9))
''')


def test_a_crash_during_a_partition_write_leaves_the_previous_data(tmp_path):
    store = BarStore(tmp_path)
    before = bars_at(T0 + 60 * np.arange(1000))
    store.write('btcusdt.sim', 60, before)
    code = _CRASHER.format(tests=str(__import__('pathlib').Path(__file__).parent),
                           root=str(tmp_path))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=60)
    assert proc.returncode == 17, proc.stderr.decode()[-2000:]
    d = tmp_path / 'bars/btcusdt.sim/60'
    assert any(p.name.endswith('.tmp') for p in d.iterdir())  # the torn temp file
    assert np.array_equal(store.read('btcusdt.sim', 60), before)
    # the glob of the documented layout does not see the temp file either
    assert pl.scan_parquet(str(d / '*.parquet')).collect().height == 1000
    # and the store keeps working
    store.write('btcusdt.sim', 60, bars_at([T0 + 60 * 1000]))
    assert len(store.read('btcusdt.sim', 60)) == 1001


@pytest.mark.parametrize('code, words', [
    (errno.ENOSPC, 'the disk is full'),
    (errno.EROFS, 'read-only file system'),
    (errno.EACCES, 'read-only'),
])
def test_a_full_or_read_only_store_is_a_clear_error_and_loses_nothing(
        tmp_path, monkeypatch, code, words):
    store = BarStore(tmp_path)
    before = bars_at(T0 + 60 * np.arange(10))
    store.write('btcusdt.sim', 60, before)

    def refuse(path, data):
        raise OSError(code, 'boom')

    monkeypatch.setattr(_files, 'write_atomic', refuse)
    with pytest.raises(StorageError, match=words) as info:
        store.write('btcusdt.sim', 60, bars_at([T0 + 600]))
    assert '2026-01.parquet' in str(info.value)
    assert np.array_equal(store.read('btcusdt.sim', 60), before)
    with pytest.raises(StorageError, match=words):
        TickStore(tmp_path).append('btcusdt.sim', quotes_to_rows([_quote(1, 0)]))


def test_a_damaged_partition_is_named(tmp_path):
    store = BarStore(tmp_path)
    store.write('btcusdt.sim', 60, bars_at(T0 + 60 * np.arange(10)))
    (tmp_path / 'bars/btcusdt.sim/60/2026-01.parquet').write_bytes(b'not parquet')
    with pytest.raises(StorageError, match='2026-01.parquet.*not a valid parquet'):
        store.read('btcusdt.sim', 60)


# --- ticks --------------------------------------------------------------------

def _quote(i: int, t_ns: int, ticks=None) -> dict:
    p = 100.0 + i
    return {
        'symbol': 'btcusdt.sim', 'time_ns': t_ns, 'last': p, 'bid': p - 0.5,
        'ask': p + 0.5, 'bsize': 1.0 + i, 'asize': 2.0, 'volume': 10.0 * i,
        'ticks': [{'type': 'trade', 'price': p, 'size': 0.25}] if ticks is None else ticks,
    }


finite = st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)
tick_st = st.fixed_dictionaries({
    'type': st.sampled_from(['bid', 'ask', 'trade', 'last']),
    'price': finite, 'size': finite,
})
quote_st = st.fixed_dictionaries({
    'symbol': st.just('btcusdt.sim'),
    'time_ns': st.integers(T0 * 10**9, (T0 + 3 * DAY) * 10**9),
    **{k: finite for k in ('last', 'bid', 'ask', 'bsize', 'asize', 'volume')},
    'ticks': st.lists(tick_st, max_size=3),
})


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(quote_st, max_size=20), min_size=1, max_size=4),
       compact=st.booleans())
def test_ticks_round_trip(tmp_path_factory, batches, compact):
    store = TickStore(tmp_path_factory.mktemp('ticks'))
    sent: list[dict] = []
    seq = 0
    for batch in batches:
        batch = sorted(batch, key=lambda q: q['time_ns'])
        store.append('btcusdt.sim', quotes_to_rows(batch, seq0=seq))
        seq += len(batch)
        sent += batch
    if compact:
        for day in store.days('btcusdt.sim'):
            store.compact('btcusdt.sim', day)
    got = rows_to_quotes(store.read('btcusdt.sim').sort('time_ns', 'seq',
                                                         maintain_order=True),
                         symbol='btcusdt.sim')
    assert got == sorted(sent, key=lambda q: q['time_ns'])


def test_quote_without_ticks_and_missing_fields(tmp_path):
    store = TickStore(tmp_path)
    q = {'time_ns': T0 * 10**9, 'bid': 1.0, 'ask': 2.0, 'ticks': []}
    store.append('btcusdt.sim', quotes_to_rows([q]))
    (got,) = rows_to_quotes(store.read('btcusdt.sim'))
    assert got['ticks'] == [] and got['bid'] == 1.0 and math.isnan(got['last'])


def test_ticks_by_day_compaction_and_range_reads(tmp_path):
    store = TickStore(tmp_path)
    base = T0 * 10**9
    for k in range(5):  # five batches over two days
        qs = [_quote(i, base + (k * 8 + i) * 3600 * 10**9) for i in range(3)]
        store.append('btcusdt.sim', quotes_to_rows(qs, seq0=3 * k))
    assert store.days('btcusdt.sim') == ['2026-01-01', '2026-01-02']
    whole = store.read('btcusdt.sim')
    assert whole.height == 15
    assert store.compact('btcusdt.sim', '2026-01-01') >= 2
    assert store.read('btcusdt.sim').equals(whole)
    day2 = store.read('btcusdt.sim', base + DAY * 10**9, base + 2 * DAY * 10**9)
    assert day2.height == whole.filter(pl.col('time_ns') >= base + DAY * 10**9).height
    # appends after a compaction go on numbering past it
    store.append('btcusdt.sim', quotes_to_rows([_quote(9, base + 60 * 10**9)], seq0=99))
    assert store.read('btcusdt.sim').height == 16
    glob = pl.scan_parquet(str(tmp_path / 'ticks/btcusdt.sim/*/*.parquet')).collect()
    assert glob.height == 16
    assert store.delete('btcusdt.sim', end_ns=base + DAY * 10**9) == 10
    assert store.read('btcusdt.sim').height == 6


def test_one_second_bars_are_kept_a_day_a_file(tmp_path):
    store = BarStore(tmp_path)
    times = T0 + np.arange(0, 3 * DAY, 30)
    store.write('btcusdt.sim', 1, bars_at(times, tf=1))
    d = tmp_path / 'bars/btcusdt.sim/1'
    assert sorted(p.name for p in d.iterdir()) == [
        '2026-01-01.parquet', '2026-01-02.parquet', '2026-01-03.parquet']
    assert np.array_equal(store.read('btcusdt.sim', 1, T0 + DAY, T0 + 2 * DAY)['time'],
                          times[(times >= T0 + DAY) & (times < T0 + 2 * DAY)])


def test_rolling_compaction_and_a_crash_mid_compaction_never_doubles_rows(tmp_path):
    store = TickStore(tmp_path)
    base = T0 * 10**9
    for k in range(6):
        store.append('btcusdt.sim', quotes_to_rows([_quote(k, base + k)], seq0=k))
    whole = store.read('btcusdt.sim')
    assert store.pending_batches('btcusdt.sim', '2026-01-01') == 6
    assert store.compact('btcusdt.sim', '2026-01-01', full=False) == 6
    for k in range(6, 9):
        store.append('btcusdt.sim', quotes_to_rows([_quote(k, base + k)], seq0=k))
    assert store.compact('btcusdt.sim', '2026-01-01', full=False) == 3
    d = tmp_path / 'ticks/btcusdt.sim/2026-01-01'
    assert sorted(p.name for p in d.iterdir()) == ['c-0-5.parquet', 'c-6-8.parquet']
    assert store.read('btcusdt.sim').head(6).equals(whole)
    assert store.read('btcusdt.sim').height == 9
    # a crash after writing the full compaction, before removing what it replaced
    everything = store.read('btcusdt.sim')
    from piker.storage._files import write_parquet
    write_parquet(d / 'c-0-8.parquet', everything)
    assert store.read('btcusdt.sim').equals(everything)
    assert store.compact('btcusdt.sim', '2026-01-01') == 2
    assert sorted(p.name for p in d.iterdir()) == ['c-0-8.parquet']
    store.append('btcusdt.sim', quotes_to_rows([_quote(9, base + 9)], seq0=9))
    assert (d / '9.parquet').exists() and store.read('btcusdt.sim').height == 10


# --- one writer at a time per market ------------------------------------------

def _race_a_delete(monkeypatch, module, change, delete) -> None:
    """Run `change()` in a thread that stalls right after its first read of
    a partition (`module.read_parquet`), run `delete()` meanwhile, then let
    the change finish. Without the market's write lock the delete lands
    between the change's read and its rewrite."""
    import threading

    read_done, go_on = threading.Event(), threading.Event()
    real = module.read_parquet

    def read_then_stall(paths, columns=None):
        df = real(paths, columns)
        if threading.current_thread().name == 'change':
            read_done.set()
            go_on.wait(10)
        return df

    monkeypatch.setattr(module, 'read_parquet', read_then_stall)
    changer = threading.Thread(target=change, name='change')
    changer.start()
    assert read_done.wait(10)
    deleter = threading.Thread(target=delete)
    deleter.start()
    deleter.join(0.3)           # an unlocked delete is done by now
    go_on.set()
    changer.join(10)
    deleter.join(10)


def test_a_delete_waits_for_a_writer_mid_rewrite(tmp_path, monkeypatch):
    """brokerd appending a bar while `piker store delete` runs: unlocked,
    the append's rewrite of the month brings the deleted bars back."""
    from piker.storage import _bars

    store = BarStore(tmp_path)
    store.write('btcusdt.sim', 60, bars_at(T0 + 60 * np.arange(100)))
    deleted: list[int] = []
    _race_a_delete(
        monkeypatch, _bars,
        lambda: store.write('btcusdt.sim', 60, bars_at([T0 + 60 * 100])),
        lambda: deleted.append(BarStore(tmp_path).delete('btcusdt.sim')))
    assert deleted == [101]     # it waited for the append and took it too
    assert len(store.read('btcusdt.sim', 60)) == 0
    assert store.markets() == []


def test_a_tick_delete_waits_for_a_compaction(tmp_path, monkeypatch):
    """A recorder compacting a day while its ticks are deleted: unlocked,
    the compacted file brings the day back."""
    from piker.storage import _ticks

    ticks = TickStore(tmp_path)
    for i in range(3):
        ticks.append('btcusdt.sim', quotes_to_rows([_quote(i, T0 * 10**9 + i)], seq0=i))
    day = ticks.days('btcusdt.sim')[0]
    _race_a_delete(monkeypatch, _ticks, lambda: ticks.compact('btcusdt.sim', day),
                   lambda: TickStore(tmp_path).delete('btcusdt.sim'))
    assert TickStore(tmp_path).read('btcusdt.sim').height == 0
