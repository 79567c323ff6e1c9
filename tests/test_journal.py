"""The EMS journal (piker.clearing._journal): schema, every query, restore
fidelity (a restored dialog table behaves exactly like the original), the
repair of a corrupt db, and a torn-write test that SIGKILLs a writer in the
middle of its transactions."""
from __future__ import annotations

import itertools
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from piker.clearing import (
    Arm,
    BrokerdError,
    BrokerdFill,
    BrokerdOrderAck,
    BrokerdStatus,
    Cancel,
    Dialog,
    DialogTable,
    Order,
    Phase,
    Status,
    Triggered,
)
from piker.clearing._journal import (
    SCHEMA_VERSION,
    Journal,
    JournalEntry,
    JournalError,
    entries_from_changes,
    journal_path,
    restore_dialogs,
)

FQME = 'btcusdt.sim'


def mk_order(oid: str = 'o1', **kw: Any) -> Order:
    fields = dict(oid=oid, symbol=FQME, action='buy', exec_mode='live',
                  price=100.0, size=2.0, account='paper')
    fields.update(kw)
    return Order(**fields)


class Ems:
    """A DialogTable that journals every input, the way emsd does."""

    def __init__(self, journal: Journal, clock: Any = None, **kw: Any) -> None:
        self.now = itertools.count(1_000)
        self.table = DialogTable(
            clock=clock or (lambda: next(self.now)), track_changes=True, **kw,
        )
        self.journal = journal
        self.routes: dict[str, str] = {}
        # the direction the dark book arms each oid's trigger with
        self.book_says: dict[str, str] = {}

    def commit(self, effects: list) -> list:
        for eff in effects:
            if isinstance(eff, Arm):  # as emsd's dark book does
                self.table[eff.oid].armed(eff.direction or self.book_says.get(eff.oid, 'down'))
        self.journal.record(entries_from_changes(self.table.drain_changes()))
        return effects

    def order(self, oid: str = 'o1', **kw: Any) -> list:
        route = self.routes.get(oid, 'paper')
        return self.commit(self.table.on_order(mk_order(oid, **kw), route=route))  # type: ignore[arg-type]

    def cancel(self, oid: str = 'o1') -> list:
        return self.commit(self.table.on_cancel(Cancel(oid=oid)))

    def trigger(self, oid: str = 'o1', price: float = 100.0) -> list:
        d = self.table[oid]
        return self.commit(self.table.on_trigger(Triggered(
            oid=oid, fqme=d.fqme, action=d.req.action, level=d.req.price,
            direction='down', price=price, tick_type='ask', size=d.req.size,
            submit_price=price,
        )))

    def broker(self, msg: Any) -> list:
        return self.commit(self.table.on_broker_msg(msg, 'sim'))

    def ack(self, oid: str = 'o1', reqid: Any = 'r1') -> list:
        return self.broker(BrokerdOrderAck(oid=oid, reqid=reqid, account='paper'))

    def status(self, status: str, reqid: Any = 'r1', filled: float = 0.0) -> list:
        return self.broker(BrokerdStatus(reqid=reqid, status=status, account='paper',
                                         time_ns=1, filled=filled))

    def fill(self, size: float, reqid: Any = 'r1', tid: str = 't1') -> list:
        return self.broker(BrokerdFill(reqid=reqid, tid=tid, action='buy', size=size,
                                       price=100.0, broker_time=1.0, time_ns=1))


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / 'ems' / 'journal.sqlite'


@pytest.fixture
def journal(jpath: Path):
    j = Journal.open(jpath)
    yield j
    j.close()


# ---- opening and schema ---------------------------------------------------------

def test_open_creates_versioned_wal_db(journal: Journal, jpath: Path):
    assert jpath.exists()
    conn = journal._conn
    assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    assert conn.execute('PRAGMA synchronous').fetchone()[0] == 1  # NORMAL
    assert conn.execute('PRAGMA user_version').fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {'dialogs', 'events'}
    assert journal.counts() == (0, 0)


def test_journal_path_follows_config_dir(piker_env):
    confdir, _ = piker_env
    assert journal_path() == confdir / 'ems' / 'journal.sqlite'
    with Journal.open() as j:
        assert j.path == confdir / 'ems' / 'journal.sqlite'


def test_reopen_keeps_data(jpath: Path):
    with Journal.open(jpath) as j:
        Ems(j).order(exec_mode='dark')
    with Journal.open(jpath) as j:
        assert [r.oid for r in j.active_dialogs()] == ['o1']


def test_background_checkpoint(jpath: Path):
    j = Journal.open(jpath, checkpoint_interval=0.02)
    assert j._conn.execute('PRAGMA wal_autocheckpoint').fetchone()[0] == 0
    ems = Ems(j)
    for i in range(50):
        ems.order(f'o{i}', exec_mode='dark')
    size = jpath.stat().st_size
    checkpointer = j._checkpointer
    assert checkpointer is not None
    runs = checkpointer.runs
    deadline = time.monotonic() + 10
    while checkpointer.runs < runs + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jpath.stat().st_size > size  # the WAL made it into the db file
    j.close()
    assert not checkpointer.is_alive()


def test_checkpointer_bounds_the_wal_under_sustained_writes(jpath: Path):
    j = Journal.open(jpath, checkpoint_interval=0.01)
    checkpointer = j._checkpointer
    assert checkpointer is not None
    checkpointer._max_wal_frames = 64
    ems = Ems(j)
    deadline = time.monotonic() + 20
    i = 0
    # a writer that never pauses: passive checkpoints can never catch up
    while checkpointer.truncations == 0 and time.monotonic() < deadline:
        ems.order(f'o{i}', exec_mode='dark')
        i += 1
    assert checkpointer.truncations >= 1
    assert j.write_errors == 0
    j.close()
    with Journal.open(jpath) as again:
        assert again.counts()[0] == i


# ---- record and the queries ---------------------------------------------------

def test_live_dialog_timeline(journal: Journal):
    ems = Ems(journal)
    ems.order()
    rec = journal.dialog('o1')
    assert rec is not None and rec.phase == 'pending' and rec.active
    assert rec.route == 'paper' and rec.reqid is None
    ems.ack()  # no Status: the state (reqid) is recorded all the same
    rec = journal.dialog('o1')
    assert rec.phase == 'acked' and rec.reqid == 'r1' and len(rec.events) == 1
    ems.status('open')
    ems.fill(0.5, tid='t1')
    assert journal.dialog('o1').filled == 0.5
    ems.fill(1.5, tid='t2')
    rec = journal.dialog('o1')
    assert [s.resp for s in rec.events] == ['pending', 'open', 'fill', 'fill', 'closed']
    assert rec.phase == 'closed' and not rec.active and rec.filled == 2.0
    assert rec.events[2].brokerd_msg['size'] == 0.5
    # fill tids are not rewritten with every batch: the fill events name them
    assert rec.state is not None and rec.state.fill_tids == set()
    assert Dialog.from_state(rec.state, rec.events).fill_tids == {'t1', 't2'}
    assert rec.created_ns <= rec.updated_ns
    assert rec.events == ems.table['o1'].history
    assert journal.active_dialogs() == []


def test_a_lot_with_several_batches_of_a_dialog_writes_its_row_once(journal: Journal):
    """Several batches of the same dialogs in one lot (a group commit):
    each dialog's row is written once, with its last state; the events
    keep their emission order across dialogs."""
    ems = Ems(journal)
    lot = []
    for batch in (lambda: ems.table.on_order(mk_order('a'), route='paper'),
                  lambda: ems.table.on_order(mk_order('b'), route='paper'),
                  lambda: ems.table.on_broker_msg(
                      BrokerdOrderAck(oid='a', reqid='ra', account='paper'), 'sim'),
                  lambda: ems.table.on_broker_msg(
                      BrokerdStatus(reqid='ra', status='open', account='paper', time_ns=1),
                      'sim')):
        batch()
        lot += entries_from_changes(ems.table.drain_changes())
    assert [e.oid for e in lot] == ['a', 'b', 'a', 'a']
    assert journal.record(lot) == 3
    a, b = journal.dialog('a'), journal.dialog('b')
    assert a.phase == 'open' and a.reqid == 'ra' and a.route == 'paper'
    assert [st.resp for st in a.events] == ['pending', 'open']
    assert b.phase == 'pending' and [st.resp for st in b.events] == ['pending']
    order = [oid for (oid,) in journal._conn.execute('SELECT oid FROM events ORDER BY id')]
    assert order == ['a', 'b', 'a']
    # the batches' entries are left as they were
    assert [len(e.events) for e in lot] == [1, 1, 0, 1]


def test_int_and_str_reqids_round_trip(journal: Journal):
    ems = Ems(journal)
    ems.order('a')
    ems.ack('a', reqid=7)
    ems.order('b')
    ems.ack('b', reqid='7')
    assert journal.dialog('a').reqid == 7
    assert journal.dialog('b').reqid == '7'


def test_active_dialogs(journal: Journal):
    ems = Ems(journal)
    ems.order('dark', exec_mode='dark', price=90.0)
    ems.order('alert', action='alert', price=120.0, size=0.0)
    ems.order('live')
    ems.order('gone', exec_mode='dark')
    ems.cancel('gone')
    ems.order('fired', action='alert', price=100.0, size=0.0)
    ems.trigger('fired')
    active = journal.active_dialogs()
    assert [r.oid for r in active] == ['dark', 'alert', 'live']  # oldest first
    by = {r.oid: r for r in active}
    assert by['dark'].phase == 'dark_open' and by['dark'].direction == 'down'
    assert by['alert'].req.action == 'alert'
    assert by['live'].direction is None and by['live'].phase == 'pending'
    assert all(r.state is not None and r.events for r in active)
    assert journal.dialog('gone').phase == 'canceled'
    assert journal.dialog('fired').phase == 'alert_triggered'


def test_direction_cleared_when_leaving_the_dark_book(journal: Journal):
    ems = Ems(journal)
    ems.order(exec_mode='dark')
    assert journal.dialog('o1').direction == 'down'
    ems.trigger()
    rec = journal.dialog('o1')
    assert rec.phase == 'dark_triggered' and rec.direction is None


def test_history_filters_and_order(journal: Journal):
    for i, fqme in enumerate(['btcusdt.sim', 'ethusdt.sim', 'btcusdt.sim']):
        ems = Ems(journal, clock=lambda i=i: (i + 1) * 1_000_000_000)
        ems.order(f'o{i}', symbol=fqme)
    assert [r.oid for r in journal.history()] == ['o2', 'o1', 'o0']  # newest first
    assert [r.oid for r in journal.history(fqme='BTCUSDT.sim')] == ['o2', 'o0']
    assert [r.oid for r in journal.history(since=2_000_000_000)] == ['o2', 'o1']
    assert [r.oid for r in journal.history(since=datetime.fromtimestamp(3))] == ['o2']
    assert [r.oid for r in journal.history(limit=1)] == ['o2']
    assert len(journal.history(limit=None)) == 3
    assert all(r.events for r in journal.history())
    assert all(not r.events for r in journal.history(events=False))
    assert journal.history(fqme='nope.sim') == []


def test_history_since_uses_last_activity(journal: Journal):
    now = [1_000]
    ems = Ems(journal, clock=lambda: now[0])
    ems.order(exec_mode='dark')
    now[0] = 5_000
    ems.cancel()
    assert [r.oid for r in journal.history(since=4_000)] == ['o1']
    rec = journal.dialog('o1')
    assert (rec.created_ns, rec.updated_ns) == (1_000, 5_000)


def test_dialog_unknown_and_prefix_match(journal: Journal):
    ems = Ems(journal)
    ems.order('abc-1')
    ems.order('abc-2')
    ems.order('abd-1')
    assert journal.dialog('nope') is None
    assert journal.match_oids('abc') == ['abc-1', 'abc-2']
    assert journal.match_oids('abd') == ['abd-1']
    assert journal.match_oids('x') == []
    assert journal.match_oids('ab', limit=2) == ['abc-1', 'abc-2']


def test_refused_request_is_journaled(journal: Journal):
    order = mk_order('bad', account='nope')
    refusal = Status(oid='bad', resp='error', time_ns=5, req=order, src='emsd',
                     reason='unknown account')
    assert journal.record([JournalEntry(oid='bad', events=[refusal])]) == 1
    rec = journal.dialog('bad')
    assert rec.phase == 'error' and not rec.active and rec.state is None
    assert rec.events == [refusal]
    assert journal.active_dialogs() == []


def test_refused_modify_keeps_the_dialog_state(journal: Journal):
    ems = Ems(journal)
    ems.order(exec_mode='dark')
    snap = ems.table['o1'].snapshot().copy({'reason': 'modify refused: x'})
    journal.record([JournalEntry(oid='o1', events=[snap])])
    rec = journal.dialog('o1')
    assert rec.phase == 'dark_open' and rec.active and rec.state is not None
    assert [s.reason for s in rec.events] == ['', 'modify refused: x']


def test_nothing_to_file_is_skipped(journal: Journal):
    # a reply to a message too broken to decode has no order to file under
    st_ = Status(oid='', resp='error', time_ns=1, reason='bad')
    assert journal.record([JournalEntry(oid='', events=[st_]), JournalEntry(oid='x')]) == 0
    assert journal.counts() == (0, 0)


def test_write_errors_are_logged_not_raised(journal: Journal, caplog):
    ems = Ems(journal)
    journal._conn.close()
    with caplog.at_level(logging.ERROR):
        ems.order()  # must not raise
    assert journal.write_errors == 1
    assert 'EMS journal write failed' in caplog.text


def test_failed_batch_is_rolled_back_whole(journal: Journal):
    ems = Ems(journal)
    ems.order('ok')
    good = JournalEntry(oid='x', events=[], state=Dialog(mk_order('x')).state())
    # a dialog row violating NOT NULL (a broker-less fqme cannot be built,
    # so break the SQL instead): the whole batch must vanish
    journal._conn.execute('CREATE TRIGGER boom BEFORE INSERT ON events '
                          "WHEN NEW.oid = 'y' BEGIN SELECT RAISE(ABORT, 'boom'); END")
    bad_status = Status(oid='y', resp='pending', time_ns=1, req=mk_order('y'))
    bad = JournalEntry(oid='y', events=[bad_status], state=Dialog(mk_order('y')).state())
    assert journal.record([good, bad]) == 0
    assert journal.write_errors == 1
    assert journal.dialog('x') is None and journal.dialog('y') is None
    assert journal.dialog('ok') is not None
    assert not journal._conn.in_transaction


# ---- restore -----------------------------------------------------------------

def test_restore_rebuilds_active_dialogs(journal: Journal):
    ems = Ems(journal)
    ems.order('dark', exec_mode='dark', price=90.0, size=3.0)
    ems.book_says['dark'] = 'up'  # the market is below it now
    ems.order('dark', exec_mode='dark', price=95.0, size=3.0)  # a modify
    ems.order('alert', action='alert', price=120.0, size=0.0)
    ems.order('live')
    ems.ack('live', reqid='r1')
    ems.status('open', reqid='r1')
    ems.fill(0.5, reqid='r1', tid='t1')
    ems.order('done', exec_mode='dark')
    ems.cancel('done')

    table = DialogTable(track_changes=True)
    effects = restore_dialogs(table, journal.active_dialogs())
    assert sorted(d.oid for d in table) == ['alert', 'dark', 'live']
    assert sorted((e.oid, e.level, e.direction) for e in effects) == [
        ('alert', 120.0, 'down'), ('dark', 95.0, 'up'),
    ]
    assert all(isinstance(e, Arm) for e in effects)
    for d in table:
        assert d.state() == ems.table[d.oid].state()
        assert d.history == ems.table[d.oid].history
    assert table.by_reqid('sim', 'r1') is table['live']
    assert table.drain_changes() == []  # a restore is not a change
    # restoring twice never duplicates
    assert restore_dialogs(table, journal.active_dialogs()) == []
    assert len(table) == 3


def test_restored_dialog_carries_on(journal: Journal):
    ems = Ems(journal)
    ems.order(size=2.0)
    ems.ack()
    ems.status('open')
    ems.fill(0.5, tid='t1')
    table = DialogTable(track_changes=True)
    restore_dialogs(table, journal.active_dialogs())
    # a replayed fill is still a duplicate; the rest closes the order
    assert table.on_broker_msg(BrokerdFill(
        reqid='r1', tid='t1', action='buy', size=0.5, price=100.0,
        broker_time=1.0, time_ns=1), 'sim') == []
    effects = table.on_broker_msg(BrokerdFill(
        reqid='r1', tid='t2', action='buy', size=1.5, price=100.0,
        broker_time=1.0, time_ns=1), 'sim')
    assert [e.resp for e in effects] == ['fill', 'closed']
    (change,) = table.drain_changes()
    assert [s.resp for s in change.new] == ['fill', 'closed']


def test_restore_skips_refusals_and_unreadable_rows(journal: Journal, caplog):
    ems = Ems(journal)
    ems.order('good', exec_mode='dark')
    ems.order('bad', exec_mode='dark')
    journal._conn.execute("UPDATE dialogs SET state = '{\"broken\": 1}' WHERE oid = 'bad'")
    with caplog.at_level(logging.ERROR):
        active = journal.active_dialogs()
    assert [r.oid for r in active] == ['good']
    assert 'bad is unreadable' in caplog.text


# a random walk of client commands and venue events; at a random point the
# table is journaled and rebuilt, and from then on the rebuilt table must
# answer every input exactly like the original
_ops = st.sampled_from([
    ('order', 'live'), ('order', 'dark'), ('modify', None), ('cancel', None),
    ('trigger', None), ('ack', None), ('open', None), ('pending', None),
    ('canceled', None), ('closed', None), ('fill', 't1'), ('fill', 't2'),
    ('fill', 't3'), ('error', None),
])


def _apply(table: DialogTable, op: tuple[str, Any], oid: str, n: int) -> list:
    kind, arg = op
    reqid = f'r-{oid}'
    if kind == 'order':
        return table.on_order(mk_order(oid, exec_mode=arg, size=2.0))
    if kind == 'modify':
        d = table.get(oid)
        mode = d.req.exec_mode if d else 'live'
        return table.on_order(mk_order(oid, exec_mode=mode, price=99.0 - n, size=3.0))
    if kind == 'cancel':
        return table.on_cancel(Cancel(oid=oid))
    if kind == 'trigger':
        d = table.get(oid)
        if d is None or d.phase is not Phase.DARK_OPEN:
            return []
        return table.on_trigger(Triggered(
            oid=oid, fqme=FQME, action='buy', level=d.req.price, direction='down',
            price=d.req.price, tick_type='ask', size=d.req.size, submit_price=d.req.price,
        ))
    if kind == 'ack':
        msg: Any = BrokerdOrderAck(oid=oid, reqid=reqid, account='paper')
    elif kind == 'fill':
        msg = BrokerdFill(reqid=reqid, oid=oid, tid=f'{oid}-{arg}', action='buy',
                          size=1.0, price=99.0, broker_time=1.0, time_ns=1)
    elif kind == 'error':
        msg = BrokerdError(oid=oid, reqid=reqid, reason='no')
    else:
        msg = BrokerdStatus(reqid=reqid, oid=oid, status=kind, account='paper',
                            time_ns=1, filled=1.0 if kind == 'closed' else 0.0)
    return table.on_broker_msg(msg, 'sim')


@settings(max_examples=200, deadline=None)
@given(
    ops=st.lists(st.tuples(st.sampled_from(['a', 'b']), _ops), min_size=1, max_size=25),
    split=st.integers(min_value=0, max_value=25),
)
def test_restored_table_is_indistinguishable(ops, split):
    with Journal.open(Path(':memory:')) as journal:
        clock = lambda: 7  # noqa: E731  (statuses compare equal across tables)
        orig = DialogTable(clock=clock, track_changes=True)
        split = min(split, len(ops))
        for n, (oid, op) in enumerate(ops[:split]):
            _apply(orig, op, oid, n)
            journal.record(entries_from_changes(orig.drain_changes()))
        # events held for a reqid nobody knows yet live only in memory: their
        # ack went to the same (now dead) venue session, it cannot come later
        assume(orig.orphans() == 0)
        # every dialog, finished ones too: late events must match as well
        records = [r for r in journal.history(limit=None) if r.state is not None]
        copy = DialogTable(clock=clock, track_changes=True)
        restore_dialogs(copy, records)
        assert {d.oid: d.state() for d in copy} == {d.oid: d.state() for d in orig}
        for n, (oid, op) in enumerate(ops[split:], start=split):
            assert _apply(copy, op, oid, n) == _apply(orig, op, oid, n)
        assert {d.oid: d.state() for d in copy} == {d.oid: d.state() for d in orig}


# ---- repair of a bad db ---------------------------------------------------------

def _asides(jpath: Path) -> list[Path]:
    return sorted(p for p in jpath.parent.iterdir() if '.corrupt-' in p.name)


def test_garbage_file_is_moved_aside(jpath: Path, caplog):
    jpath.parent.mkdir(parents=True)
    jpath.write_bytes(b'this is not a database' * 100)
    with caplog.at_level(logging.ERROR), Journal.open(jpath) as j:
        assert j.counts() == (0, 0)
        Ems(j).order()
        assert j.dialog('o1') is not None
    assert 'IS UNREADABLE' in caplog.text
    (aside,) = _asides(jpath)
    assert aside.read_bytes().startswith(b'this is not a database')


def test_corrupt_pages_are_moved_aside(jpath: Path, caplog):
    with Journal.open(jpath) as j:
        ems = Ems(j)
        for i in range(200):
            ems.order(f'o{i}', exec_mode='dark')
        j._conn.execute('PRAGMA wal_checkpoint(TRUNCATE)')
    data = bytearray(jpath.read_bytes())
    assert len(data) > 8192
    data[4096:8192] = os.urandom(4096)  # trash a b-tree page
    jpath.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR), Journal.open(jpath) as j:
        assert j.counts() == (0, 0)
    assert 'IS UNREADABLE' in caplog.text
    assert len(_asides(jpath)) == 1


@pytest.mark.parametrize('setup', [
    'PRAGMA user_version = 99',
    'CREATE TABLE foreign_stuff (x)',
])
def test_unknown_schema_is_moved_aside(jpath: Path, caplog, setup: str):
    jpath.parent.mkdir(parents=True)
    conn = sqlite3.connect(jpath)
    conn.execute(setup)
    conn.commit()
    conn.close()
    with caplog.at_level(logging.ERROR), Journal.open(jpath) as j:
        assert j._conn.execute('PRAGMA user_version').fetchone()[0] == SCHEMA_VERSION
    assert 'IS UNREADABLE' in caplog.text
    assert len(_asides(jpath)) == 1


def test_unwritable_dir_raises_journal_error(tmp_path: Path):
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    with pytest.raises(JournalError, match='cannot create the journal dir'):
        Journal.open(blocker / 'ems' / 'journal.sqlite')


# ---- read-only access (the CLI) -----------------------------------------------

def test_readonly_missing_and_garbage(jpath: Path):
    with pytest.raises(JournalError, match='no EMS journal'):
        Journal.open(jpath, readonly=True)
    assert not jpath.exists()  # a reader creates nothing
    jpath.parent.mkdir(parents=True)
    jpath.write_bytes(b'garbage' * 1000)
    with pytest.raises(JournalError, match='cannot read'):
        Journal.open(jpath, readonly=True)
    assert jpath.read_bytes().startswith(b'garbage')  # and moves nothing


def test_readonly_while_writer_is_open_and_after(jpath: Path):
    writer = Journal.open(jpath)
    ems = Ems(writer)
    ems.order(exec_mode='dark')
    with Journal.open(jpath, readonly=True) as reader:
        assert [r.oid for r in reader.history()] == ['o1']
        ems.cancel()
        assert reader.dialog('o1').phase == 'canceled'  # sees new commits
        with pytest.raises(JournalError, match='read-only'):
            reader.record([])
    writer.close()
    # the last writer's close removed the -wal/-shm files
    with Journal.open(jpath, readonly=True) as reader:
        assert reader.dialog('o1').phase == 'canceled'


# ---- torn writes: SIGKILL a writer mid-transaction ----------------------------

_WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from piker.clearing import Order, Status
    from piker.clearing._dialogs import Dialog
    from piker.clearing._journal import Journal, JournalEntry

    journal = Journal.open(Path(sys.argv[1]))
    per_batch, block_at = int(sys.argv[2]), int(sys.argv[3])
    # a tiny page cache spills uncommitted pages into the WAL mid-transaction
    journal._conn.execute('PRAGMA cache_size=2')
    wal = Path(sys.argv[1] + '-wal')
    batch, committed_wal = 0, 0

    def trace(sql):
        if batch == block_at and sql.startswith('INSERT INTO events'):
            # dialog rows written, not committed
            print('mid', wal.stat().st_size, committed_wal, flush=True)
            time.sleep(60)

    journal._conn.set_trace_callback(trace)
    while True:
        entries = []
        for i in range(per_batch):
            oid = f'b{batch}-{i}'
            order = Order(oid=oid, symbol='btcusdt.sim', action='buy',
                          exec_mode='dark', price=100.0, size=1.0, account='paper',
                          brokers=['x' * 200])
            status = Status(oid=oid, resp='dark_open', time_ns=batch, req=order,
                            reason=f'batch {batch}')
            entries.append(JournalEntry(oid=oid, events=[status, status],
                                        state=Dialog(order).state()))
        journal.record(entries)
        committed_wal = wal.stat().st_size
        print(batch, flush=True)  # committed
        batch += 1
''')


@pytest.mark.timeout(60)
@pytest.mark.parametrize('kill_after, block_at', [
    (3, -1), (40, -1),  # wherever the writer happens to be
    (None, 5),          # certainly inside a transaction, pages spilled to the WAL
])
def test_sigkill_mid_transaction_keeps_every_committed_batch(
    jpath: Path, kill_after: int | None, block_at: int,
):
    per_batch = 50
    jpath.parent.mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, '-c', _WRITER, str(jpath), str(per_batch), str(block_at)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        assert proc.stdout is not None
        committed = -1
        while True:
            line = proc.stdout.readline().strip()
            assert line, 'writer died early'
            if line.startswith('mid'):
                # the open transaction has spilled pages into the WAL
                _, now, before = line.split()
                assert int(now) > int(before)
                break
            committed = int(line)
            if kill_after is not None and committed >= kill_after:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    with Journal.open(jpath) as j:
        assert j._conn.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
        rows = j._conn.execute(
            "SELECT substr(oid, 2, instr(oid, '-') - 2) AS b, count(*) "
            'FROM dialogs GROUP BY b'
        ).fetchall()
        per = {int(b): n for b, n in rows}
        events = dict(j._conn.execute(
            'SELECT time_ns, count(*) FROM events GROUP BY time_ns').fetchall())
        assert len(j.active_dialogs()) == sum(per.values())
    # every batch reported committed is there, whole
    assert all(per.get(b) == per_batch for b in range(committed + 1))
    # and anything later is whole or absent: never a torn batch
    assert set(per.values()) == {per_batch}
    assert set(events.values()) == {2 * per_batch}
    assert sorted(per) == list(range(len(per)))
    if block_at >= 0:
        assert committed == block_at - 1 and block_at not in per


# ---- DialogTable change tracking -------------------------------------------------

def test_drain_changes_needs_tracking():
    with pytest.raises(RuntimeError, match='does not track'):
        DialogTable().drain_changes()


def test_drain_changes_reports_touched_dialogs_once():
    table = DialogTable(track_changes=True)
    table.on_order(mk_order('a'))
    table.on_order(mk_order('b', exec_mode='dark'))
    table.on_broker_msg(BrokerdOrderAck(oid='a', reqid='r', account='paper'), 'sim')
    changes = table.drain_changes()
    assert [(c.dialog.oid, [s.resp for s in c.new]) for c in changes] == [
        ('a', ['pending']), ('b', ['dark_open']),
    ]
    assert table.drain_changes() == []
    table.on_cancel('b')
    ((d, new),) = table.drain_changes()
    assert d.oid == 'b' and [s.resp for s in new] == ['canceled']


def test_drain_changes_skips_evicted():
    table = DialogTable(track_changes=True, keep_finished=0)
    table.on_order(mk_order('a', exec_mode='dark'))
    table.on_cancel('a')  # finished and evicted at once
    assert table.drain_changes() == []


def test_dialog_state_round_trip_with_buffered_and_outstanding():
    table = DialogTable()
    table.on_order(mk_order('a'))
    table.on_order(mk_order('a', price=99.0))  # stashed modify
    # a venue event before the ack is buffered in the dialog
    table.on_broker_msg(BrokerdStatus(reqid='r', oid='a', status='open',
                                      account='paper', time_ns=1), 'sim')
    d = table['a']
    st_ = d.state()
    assert st_.stashed_modify is not None and len(st_.buffered) == 1
    back = Dialog.from_state(st_, d.history)
    assert back.state() == st_
    table2 = DialogTable()
    table2.restore([back])
    e1 = table.on_broker_msg(BrokerdOrderAck(oid='a', reqid='r', account='paper'), 'sim')
    e2 = table2.on_broker_msg(BrokerdOrderAck(oid='a', reqid='r', account='paper'), 'sim')
    assert [type(e).__name__ for e in e1] == [type(e).__name__ for e in e2]
    assert table['a'].state() == table2['a'].state()


def test_since_parsing_helper_types(journal: Journal):
    Ems(journal).order()
    assert journal.history(since=datetime.now() + timedelta(days=1)) == []


# ---- group commit (JournalWriter): emsd's writes, off its event loop -------------

def _entries(table: DialogTable) -> list[JournalEntry]:
    return entries_from_changes(table.drain_changes())


def test_writer_group_commits_and_flushes(journal: Journal):
    import trio

    from piker.clearing._journal import JournalWriter

    committed: list[int] = []

    async def main() -> None:
        writer = JournalWriter(journal, on_commit=committed.append)
        table = DialogTable(track_changes=True)
        async with trio.open_nursery() as n:
            n.start_soon(writer.run)
            # three inputs before the writer runs: one transaction for all
            tickets = []
            for i in range(3):
                table.on_client_msg(mk_order(f'o{i}', exec_mode='dark'))
                tickets.append(writer.submit(_entries(table)))
            assert tickets == [1, 2, 3] and writer.backlog == 3
            await writer.flush(tickets[-1])
            assert writer.batches == 1 and committed == [3]
            assert {r.oid for r in journal.active_dialogs()} == {'o0', 'o1', 'o2'}
            # a flush with nothing new returns at once; `want` of a ticket
            # with an empty batch still brings a commit for what precedes
            await writer.flush()
            table.on_cancel('o0')
            writer.submit(_entries(table))
            writer.want(writer.ticket)
            await writer.flush()
            assert committed[-1] == 4
            # queued at cancellation: written before the writer returns
            table.on_cancel('o1')
            writer.submit(_entries(table))
            n.cancel_scope.cancel()
        assert {r.oid for r in journal.active_dialogs()} == {'o2'}

    trio.run(main)


def test_prune_forgets_only_old_finished_dialogs(journal: Journal):
    ems = Ems(journal)  # its clock: 1000, 1001, ... ns
    ems.order('old', exec_mode='dark')
    ems.cancel('old')
    ems.order('working', exec_mode='dark')  # active: never pruned
    cutoff = next(ems.now)
    ems.order('recent', exec_mode='dark')
    ems.cancel('recent')
    assert journal.prune(before_ns=cutoff) == 1
    assert journal.dialog('old') is None
    assert {r.oid for r in journal.history(limit=None)} == {'working', 'recent'}
    assert len(journal.dialog('recent').events) == 2
    # nothing of 'old' is left behind, and a second prune finds nothing
    assert journal.counts() == (2, 3)
    assert journal.prune(before_ns=cutoff) == 0


def test_writer_survives_a_failing_batch(journal: Journal, monkeypatch, caplog):
    """A batch that cannot be written is logged and dropped: the writer
    goes on, and whoever waits for its commit is released."""
    import trio

    from piker.clearing._journal import JournalWriter

    committed: list[int] = []

    def broken(entries, **kw):
        raise TypeError('cannot encode')

    async def main() -> None:
        writer = JournalWriter(journal, on_commit=committed.append)
        table = DialogTable(track_changes=True)
        async with trio.open_nursery() as n:
            n.start_soon(writer.run)
            monkeypatch.setattr(journal, 'record', broken)
            table.on_client_msg(mk_order('lost', exec_mode='dark'))
            await writer.flush(writer.submit(_entries(table)))
            assert committed == [1] and journal.write_errors == 1
            monkeypatch.undo()
            table.on_client_msg(mk_order('kept', exec_mode='dark'))
            await writer.flush(writer.submit(_entries(table)))
            n.cancel_scope.cancel()
        assert {r.oid for r in journal.active_dialogs()} == {'kept'}

    trio.run(main)
    assert 'was not written' in caplog.text


def test_a_state_journaled_before_route_and_direction_were_in_it_restores(journal: Journal):
    """Older rows keep the route and trigger direction only in their
    columns: the restored dialog takes them from there."""
    ems = Ems(journal)
    ems.book_says['dark'] = 'up'
    ems.order('dark', exec_mode='dark', price=90.0)
    ems.order('live')
    conn = journal._conn
    for oid, state_json in conn.execute('SELECT oid, state FROM dialogs').fetchall():
        old = msgspec.json.decode(state_json)
        del old['route'], old['direction']
        conn.execute('UPDATE dialogs SET state = ? WHERE oid = ?',
                     (msgspec.json.encode(old).decode(), oid))
    table = DialogTable()
    (arm,) = restore_dialogs(table, journal.active_dialogs())
    assert (arm.oid, arm.direction) == ('dark', 'up')
    assert table['dark'].route == table['live'].route == 'paper'
    assert table['dark'].direction == 'up' and table['live'].direction is None


def test_writer_commits_small_lots_in_the_event_loop(journal: Journal, monkeypatch):
    """A small lot is committed in the event loop (a WAL append costs less
    than a worker thread's round trip, which was most of an order's
    `pending` latency); a big one, or any while a checkpoint runs (its
    fsyncs can hold a WAL append), in a worker thread."""
    import threading

    import trio

    from piker.clearing import _journal

    threads: list[bool] = []
    record = journal.record

    def spy(entries, **kw):
        threads.append(threading.current_thread() is threading.main_thread())
        return record(entries, **kw)

    monkeypatch.setattr(journal, 'record', spy)
    checkpointing = [False]
    monkeypatch.setattr(_journal.Journal, 'holds_writes', property(lambda self: checkpointing[0]))

    async def main() -> None:
        writer = _journal.JournalWriter(journal)
        table = DialogTable(track_changes=True)
        async with trio.open_nursery() as n:
            n.start_soon(writer.run)
            table.on_client_msg(mk_order('small', exec_mode='dark'))
            await writer.flush(writer.submit(_entries(table)))
            for i in range(_journal.INLINE_ENTRIES + 1):
                table.on_client_msg(mk_order(f'big{i}', exec_mode='dark'))
            await writer.flush(writer.submit(_entries(table)))
            checkpointing[0] = True
            table.on_cancel('small')
            await writer.flush(writer.submit(_entries(table)))
            n.cancel_scope.cancel()

    trio.run(main)
    assert threads == [True, False, False]
    assert len(journal.active_dialogs()) == _journal.INLINE_ENTRIES + 1


def test_writer_lingers_only_when_nobody_waits(journal: Journal):
    """News nobody waits on (already published) waits up to `LINGER` for
    company, so that under load many batches share one transaction; a
    batch someone waits on (`want`, `flush`) is committed at once and
    takes what lingered along."""
    import trio
    import trio.testing

    from piker.clearing._journal import JournalWriter

    async def main() -> None:
        writer = JournalWriter(journal)
        writer.linger = 10.0
        table = DialogTable(track_changes=True)
        async with trio.open_nursery() as n:
            n.start_soon(writer.run)
            table.on_client_msg(mk_order('a', exec_mode='dark'))
            writer.submit(_entries(table))
            await trio.sleep(5.0)
            assert writer.batches == 0  # lingering
            await trio.sleep(6.0)
            assert writer.batches == 1  # the linger is bounded
            t0 = trio.current_time()
            table.on_client_msg(mk_order('b', exec_mode='dark'))
            writer.submit(_entries(table))
            await trio.sleep(1.0)
            table.on_client_msg(mk_order('c', exec_mode='dark'))
            ticket = writer.submit(_entries(table))
            writer.want(ticket)
            await writer.flush(ticket)
            # b waited for c, and c not at all: one transaction for both
            assert trio.current_time() - t0 == 1.0 and writer.batches == 2
            n.cancel_scope.cancel()
        assert {r.oid for r in journal.active_dialogs()} == {'a', 'b', 'c'}

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_running_checkpoint_sends_commits_to_a_thread(tmp_path):
    """While the checkpointer runs, its fsyncs can hold a WAL append (tens
    of ms on a busy disk): `holds_writes` says so for its whole run, and
    the writer then commits in a worker thread, not in emsd's loop."""
    import sqlite3

    journal = Journal.open(tmp_path / 'journal.sqlite', checkpoint_interval=3600.0)
    real = sqlite3.connect(journal.path, isolation_level=None)
    seen: list[bool] = []

    class Conn:
        def execute(self, sql: str):
            seen.append(journal.holds_writes)
            return real.execute(sql)

    try:
        assert not journal.holds_writes
        journal._checkpointer._checkpoint(Conn())
        assert seen and all(seen)
        assert not journal.holds_writes
    finally:
        real.close()
        journal.close()
