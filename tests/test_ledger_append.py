"""The append-only ledger (issue #12, item 2): a write appends the new
fills' tables with one fsync, never rewrites the file; a crash mid-append
(the file cut at *any* byte of the append) loses exactly the torn table,
logged, and the next append still gives a valid file; a failed append
leaves nothing a later one could glue onto; a tid is appended once."""
from __future__ import annotations

import logging
import os
import stat
import tomllib
from datetime import UTC, datetime, timedelta, timezone

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from piker.accounting import Transaction, TransactionLedger, ledger_path
from piker.accounting._tablelog import _fast_loads

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def mk_txn(tid: str, i: int = 0, **kw) -> Transaction:
    fields = dict(fqme='btcusdt.sim', tid=tid, size=0.25 if i % 2 else -1.5,
                  price=65001.5 + i, cost=0.01, dt=T0 + timedelta(seconds=i),
                  bs_mktid='BTCUSDT')
    fields.update(kw)
    return Transaction(**fields)


def write(ledger: TransactionLedger, *txns: Transaction) -> None:
    assert ledger.update_from_txns(txns) == list(txns)
    ledger.write()


def torn_logs(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if 'torn last table' in r.getMessage()]


def test_a_write_appends_the_new_tables_and_never_rewrites():
    ledger = TransactionLedger.load('sim', 'paper')
    write(ledger, mk_txn('a', 0), mk_txn('b', 1))
    path = ledger.path
    before, inode = path.read_bytes(), path.stat().st_ino
    renders = []
    real = Transaction.render

    def counting(txn):
        renders.append(txn.tid)
        return real(txn)

    again = TransactionLedger.load('sim', 'paper')
    assert again.appendable and not again.dirty
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Transaction, 'render', counting)
        write(again, mk_txn('c', 2))
    after = path.read_bytes()
    # the old bytes are untouched (no rename: same inode), one table was
    # rendered and added: a write costs O(new fills), whatever the size
    assert path.stat().st_ino == inode and after.startswith(before)
    assert renders == ['c']
    assert after[len(before):] == b'\n' + mk_txn('c', 2).render().encode()
    data = tomllib.loads(after.decode())
    assert list(data) == ['a', 'b', 'c']
    assert data['c'] == {'fqme': 'btcusdt.sim', 'size': -1.5, 'price': 65003.5,
                         'cost': 0.01, 'bs_mktid': 'BTCUSDT', 'dt': T0 + timedelta(seconds=2)}
    assert dict(TransactionLedger.load('sim', 'paper')) == {
        t.tid: t for t in (mk_txn('a', 0), mk_txn('b', 1), mk_txn('c', 2))}


def test_a_duplicate_tid_is_never_appended():
    ledger = TransactionLedger.load('sim', 'paper')
    write(ledger, mk_txn('a', 0))
    before = ledger.path.read_bytes()
    again = TransactionLedger.load('sim', 'paper')
    assert again.update_from_txns([mk_txn('a', 0), mk_txn('a', 5)]) == []
    again.write()
    ledger.write()  # nothing new in either
    assert ledger.path.read_bytes() == before


def test_creating_the_ledger_fsyncs_it_and_its_directory(monkeypatch):
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(os, 'fsync', spy)
    ledger = TransactionLedger.load('sim', 'paper')
    write(ledger, mk_txn('a', 0))
    assert synced == [False, True]  # the new file, then its directory entry
    synced.clear()
    write(ledger, mk_txn('b', 1))
    assert synced == [False]  # an append: the file only


def three_then(extra: list[Transaction]) -> tuple[bytes, bytes]:
    """A ledger of three fills, then `extra` appended in one write: the
    file's bytes before and after that append."""
    ledger = TransactionLedger.load('sim', 'paper')
    write(ledger, mk_txn('a', 0), mk_txn('b', 1))
    write(ledger, mk_txn('c', 2, expiry='20261218'))
    before = ledger.path.read_bytes()
    write(ledger, *extra)
    return before, ledger.path.read_bytes()


@pytest.mark.parametrize('n_extra', [1, 2])
def test_a_torn_append_at_every_byte_loses_exactly_the_torn_table(caplog, n_extra):
    """Cut the file at every byte of the last append (one or two tables):
    the load keeps every whole table - values intact, never a trade with a
    cut-short price or dt - drops exactly the torn one with a log line,
    and the next append gives a valid file with it cut off."""
    extra = [mk_txn('d', 3, dt=T0 + timedelta(seconds=3, microseconds=1)),
             mk_txn('e', 4, dt=T0 + timedelta(seconds=4))][:n_extra]
    before, after = three_then(extra)
    path = ledger_path('sim', 'paper')
    want = {t.tid: t for t in (mk_txn('a', 0), mk_txn('b', 1),
                               mk_txn('c', 2, expiry='20261218'), *extra)}
    # where each extra table's bytes end (its dt line's newline excluded)
    ends, at = [], len(before) + 1
    for t in extra:
        at += len(t.render().encode()) + (1 if ends else 0)
        ends.append(at - 1)
    for cut in range(len(before), len(after) + 1):
        caplog.clear()
        path.write_bytes(after[:cut])
        with caplog.at_level(logging.WARNING):
            ledger = TransactionLedger.load('sim', 'paper')
        whole = [t.tid for t, end in zip(extra, ends, strict=True) if cut >= end]
        expect = ['a', 'b', 'c', *whole]
        assert list(ledger) == expect, f'cut at byte {cut}'
        assert dict(ledger) == {tid: want[tid] for tid in expect}, f'cut at byte {cut}'
        started = after[len(before):cut].count(b'[')
        torn = started > len(whole)  # a table header began, its dt did not end
        assert len(torn_logs(caplog)) == torn, f'cut at byte {cut}: {caplog.text}'
        # the next fill is appended onto the last whole table
        write(ledger, mk_txn('z', 9))
        data = tomllib.loads(path.read_text())  # valid TOML, one table per tid
        assert list(data) == [*expect, 'z'], f'cut at byte {cut}'
        assert list(TransactionLedger.load('sim', 'paper')) == [*expect, 'z']


def test_a_failed_append_is_cut_back_off_and_retried_once(monkeypatch):
    """Disk full mid-append: the half-written table is truncated away at
    once; the fill stays pending and the retry appends it exactly once."""
    ledger = TransactionLedger.load('sim', 'paper')
    write(ledger, mk_txn('a', 0))
    before = ledger.path.read_bytes()
    real = os.pwrite

    def half(fd, data, offset):
        real(fd, bytes(data[:len(data) // 2]), offset)
        raise OSError(28, 'No space left on device')

    ledger.update_from_txns([mk_txn('b', 1)])
    with monkeypatch.context() as m:
        m.setattr(os, 'pwrite', half)
        with pytest.raises(OSError, match='No space'):
            ledger.write()
    assert ledger.path.read_bytes() == before and ledger.dirty
    ledger.write()
    assert ledger.path.read_bytes() == before + b'\n' + mk_txn('b', 1).render().encode()
    assert list(TransactionLedger.load('sim', 'paper')) == ['a', 'b']


def test_a_tail_that_could_not_be_cut_off_is_cut_before_the_next_append(monkeypatch, caplog):
    ledger = TransactionLedger.load('sim', 'paper')
    write(ledger, mk_txn('a', 0))
    real = os.pwrite

    def half(fd, data, offset):
        real(fd, bytes(data[:10]), offset)
        raise OSError(5, 'Input/output error')

    def no_truncate(fd, length):
        raise OSError(5, 'Input/output error')

    ledger.update_from_txns([mk_txn('b', 1)])
    with monkeypatch.context() as m:
        m.setattr(os, 'pwrite', half)
        m.setattr(os, 'ftruncate', no_truncate)
        with pytest.raises(OSError, match='Input/output'):
            ledger.write()
    assert len(ledger.path.read_bytes()) > len(mk_txn('a', 0).render())  # junk left
    ledger.write()
    data = tomllib.loads(ledger.path.read_text())
    assert list(data) == ['a', 'b']


def test_a_ledger_written_whole_by_an_older_piker_loads_and_becomes_append_only(caplog):
    """Today's files (dt before bs_mktid, no append-only marker) read as
    before - strictly: a bad last table there is an error, not a torn
    append - and the first write makes them append-only."""
    path = ledger_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    old = ("# piker trade ledger: broker 'sim', account 'paper'.\n"
           '# One table per trade id (tid); size is signed (> 0 bought, < 0 sold), dt in UTC.\n'
           '\n[a]\nfqme = "btcusdt.sim"\nsize = 1.0\nprice = 10.0\ncost = 0.0\n'
           'dt = 2026-01-01T00:00:00+00:00\nbs_mktid = "BTCUSDT"\n')
    path.write_text(old)
    ledger = TransactionLedger.load('sim', 'paper')
    assert list(ledger) == ['a'] and ledger['a'].bs_mktid == 'BTCUSDT'
    assert not ledger.appendable
    write(ledger, mk_txn('b', 1))
    assert ledger.appendable
    assert list(tomllib.loads(path.read_text())) == ['a', 'b']
    # the old file's last table, cut short, is damage: named, not dropped
    path.write_text(old[:-25])
    with pytest.raises(ValueError, match='invalid'):
        TransactionLedger.load('sim', 'paper')


def test_a_vanished_ledger_is_written_anew_from_memory():
    ledger = TransactionLedger.load('sim', 'paper')
    write(ledger, mk_txn('a', 0))
    ledger.path.unlink()
    write(ledger, mk_txn('b', 1))
    assert list(TransactionLedger.load('sim', 'paper')) == ['a', 'b']


def test_the_paper_venue_records_a_fill_with_one_fsync_of_the_ledger(monkeypatch):
    """Booking a fill (`PaperAccounts.flush`) appends it to the ledger
    with one fsync; the positions file is replaced, not fsync'd (it is
    rebuilt from the ledger at every start); an older piker's ledger is
    made append-only when the venue loads it, not on the fill path."""
    from piker.accounting import Account, account_path
    from piker.brokers.sim import MARKETS
    from piker.clearing._paper_accounts import PaperAccounts

    path = ledger_path('sim', 'paper')
    path.parent.mkdir(parents=True)
    path.write_text('# an older ledger\n\n' + mk_txn('a', 0).render())
    accts = PaperAccounts('sim')
    accts.load('paper')
    assert accts.ledgers['paper'].appendable
    mkt = MARKETS['btcusdt'].mkt
    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(os.readlink(f'/proc/self/fd/{fd}'))
        real(fd)

    monkeypatch.setattr(os, 'fsync', spy)
    before = path.read_bytes()
    accts.book({'paper': [mk_txn('b', 1, size=2.0)]}, {mkt.fqme: mkt})
    assert accts.flush() is None
    assert synced == [str(path)]
    assert path.read_bytes().startswith(before)
    assert list(TransactionLedger.load('sim', 'paper')) == ['a', 'b']
    assert Account.load('sim', 'paper').get('btcusdt.sim').size == 0.5
    assert account_path('sim', 'paper').exists()


# ---- the fast reader (same values as tomllib, or it steps aside) ----------

_values = st.one_of(
    st.text(max_size=8), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
    st.booleans(),
    st.datetimes(timezones=st.one_of(st.just(UTC), st.none(),
                                     st.builds(timezone, st.sampled_from(
                                         [timedelta(hours=-5), timedelta(minutes=330)])))),
)
_tables = st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.dictionaries(st.from_regex(r'[a-z_]{1,6}', fullmatch=True), _values, max_size=5),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(tables=_tables)
def test_the_fast_reader_agrees_with_tomllib_on_what_tomli_w_writes(tables):
    text = tomli_w.dumps(tables)
    fast = _fast_loads(text)
    assert fast is None or fast == tomllib.loads(text)


@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_the_fast_reader_never_accepts_what_tomllib_rejects(data):
    """Any byte of a real ledger changed, dropped or duplicated: either
    both readers give the same tables or the fast one steps aside."""
    text = ''.join(mk_txn(f't{i}', i).render() + '\n' for i in range(3))
    at = data.draw(st.integers(0, len(text) - 1))
    op = data.draw(st.sampled_from(['replace', 'drop', 'insert', 'cut']))
    char = data.draw(st.characters(codec='utf-8'))
    text = {
        'replace': text[:at] + char + text[at + 1:],
        'drop': text[:at] + text[at + 1:],
        'insert': text[:at] + char + text[at:],
        'cut': text[:at],
    }[op]
    fast = _fast_loads(text)
    try:
        slow = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert fast is None
    else:
        assert fast is None or fast == slow


def test_the_fast_reader_reads_a_real_ledger():
    text = ''.join(mk_txn(f't{i}', i, bs_mktid='X-Y').render() + '\n' for i in range(3))
    text += mk_txn('odd tid é', 4).render()
    assert _fast_loads(text) == tomllib.loads(text)
    assert _fast_loads(text) is not None


_APPENDER = '''
import sys
from datetime import UTC, datetime
from piker.accounting import Transaction, TransactionLedger
ledger = TransactionLedger.load('sim', 'paper')
for i in range(10**6):
    ledger.update_from_txns([Transaction(fqme='btcusdt.sim', tid=f'k{i}', size=1.0,
                                         price=100.0 + i, dt=datetime.now(UTC))])
    ledger.write()
    if i == 20:
        print('going', flush=True)
'''


def test_a_writer_killed_while_appending_leaves_a_ledger_that_loads_and_grows():
    """SIGKILL a process appending fills as fast as it can: what it left
    loads (whole trades only, in order, none missing before the last one)
    and takes the next append."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, '-c', _APPENDER], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b'going\n'
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    ledger = TransactionLedger.load('sim', 'paper')
    n = len(ledger)
    assert n > 20 and list(ledger) == [f'k{i}' for i in range(n)]
    assert [t.price for t in ledger.values()] == [100.0 + i for i in range(n)]
    write(ledger, mk_txn('after', 10**7, dt=datetime.now(UTC)))
    assert list(tomllib.loads(ledger.path.read_text())) == [*(f'k{i}' for i in range(n)), 'after']
