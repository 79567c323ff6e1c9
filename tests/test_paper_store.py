"""The paper venue's state file (`VenueStore`): what it keeps, how it
survives a crash mid-write, and that it stays small."""
from __future__ import annotations

from piker.clearing import BrokerdFill, BrokerdStatus
from piker.clearing._matching import RestingOrder
from piker.clearing._paper_store import StoredEvent, VenueStore, store_path


def mk_order(reqid: str, filled: float = 0.0) -> RestingOrder:
    return RestingOrder(reqid=reqid, oid=f'oid-{reqid}', fqme='btcusdt.sim', action='buy',
                        price=90.0, size=2.0, account='paper', filled=filled)


def mk_fill(reqid: str, tid: str) -> StoredEvent:
    return StoredEvent(
        msg=BrokerdFill(reqid=reqid, oid=f'oid-{reqid}', tid=tid, action='buy', size=1.0,
                        price=90.0, broker_time=1.0, time_ns=1),
        fqme='btcusdt.sim', account='paper', bs_mktid='btcusdt',
    )


def test_orders_and_events_survive_a_reopen():
    store = VenueStore('sim')
    assert store.path == store_path('sim') and store.orders == {}
    store.record(resting=[mk_order('a'), mk_order('b')])
    store.record(resting=[mk_order('a', filled=1.0)], events=[mk_fill('a', 't1')])
    done = BrokerdStatus(reqid='b', oid='oid-b', status='canceled', account='paper', time_ns=1)
    store.record(gone=['b'], events=[StoredEvent(msg=done)])
    store.close()

    again = VenueStore('sim')
    assert list(again.orders) == ['a'] and again.orders['a'].filled == 1.0
    assert again.replay() == [mk_fill('a', 't1').msg, done]
    assert [ev.msg.tid for ev in again.fills()] == ['t1']
    # the reopen compacted it: one line per live record
    assert len(again.path.read_text().splitlines()) == 3


def test_a_torn_last_line_is_skipped():
    store = VenueStore('sim')
    store.record(resting=[mk_order('a')])
    store.close()
    with store.path.open('ab') as f:
        f.write(b'{"op": "rest", "order": {"reqid": "b", "oi')  # a crash mid-write
    again = VenueStore('sim')
    assert list(again.orders) == ['a']


def test_the_file_is_compacted_and_the_replay_log_bounded(tmp_path):
    path = tmp_path / 'state.jsonl'
    store = VenueStore('sim', path, replay_max=10, compact_min=20, compact_ratio=2)
    for i in range(200):
        if store.record(resting=[mk_order('a', filled=i / 1000)],
                        events=[mk_fill('a', f't{i}')]):
            store.compact()
        assert not store.compaction_due
    assert len(store.events) == 10
    assert len(path.read_text().splitlines()) <= 20 + 2 * 11
    store.close()
    again = VenueStore('sim', path, replay_max=10)
    assert [ev.msg.tid for ev in again.fills()] == [f't{i}' for i in range(190, 200)]
    assert again.orders['a'].filled == 0.199


def test_a_damaged_record_quarantines_the_file_and_revives_nothing(caplog):
    """A damaged record mid-file (here: the one that ended order `a`) must
    not bring `a` back: the file is moved aside intact, and only orders
    whose last record follows the damage are restored (issue #9, item 7)."""
    store = VenueStore('sim')
    store.record(resting=[mk_order('a'), mk_order('b')])
    done = BrokerdStatus(reqid='a', oid='oid-a', status='canceled', account='paper', time_ns=1)
    store.record(gone=['a'], events=[StoredEvent(msg=done)])
    store.record(resting=[mk_order('c')], events=[mk_fill('c', 't1')])
    store.close()
    lines = store.path.read_bytes().splitlines(keepends=True)
    (gone,) = [i for i, ln in enumerate(lines) if b'"gone"' in ln]
    lines[gone] = lines[gone][:9] + b'\xff#garbage\n'  # a flipped block
    damaged = b''.join(lines)
    store.path.write_bytes(damaged)

    again = VenueStore('sim')
    # a is not revived; b's record predates the damage: unproven, dropped;
    # c was rested after it: proven working
    assert list(again.orders) == ['c']
    dropped = [m for m in again.replay() if isinstance(m, BrokerdStatus)
               and 'damaged' in m.reason]
    assert {(m.oid, m.status) for m in dropped} == {('oid-a', 'canceled'), ('oid-b', 'canceled')}
    # the fill is a fact: still there for the ledger and the replay
    assert [ev.msg.tid for ev in again.fills()] == ['t1']
    (aside,) = store.path.parent.glob('paper_orders.sim.jsonl.corrupt-*')
    assert aside.read_bytes() == damaged
    assert 'PAPER VENUE STATE' in caplog.text and 'DAMAGED' in caplog.text
    assert str(aside) in caplog.text
    # the rebuilt file reads back clean, with the same state
    again.close()
    third = VenueStore('sim')
    assert list(third.orders) == ['c'] and third.replay() == again.replay()
    assert len(list(store.path.parent.glob('*.corrupt-*'))) == 1


def test_a_torn_last_line_is_not_damage(caplog):
    store = VenueStore('sim')
    store.record(resting=[mk_order('a')])
    store.close()
    with store.path.open('ab') as f:
        f.write(b'{"op": "gone", "req')  # a crash mid-append: no newline
    again = VenueStore('sim')
    assert list(again.orders) == ['a']
    assert not list(store.path.parent.glob('*.corrupt-*'))


def test_a_failed_append_leaves_nothing_the_next_one_glues_onto(monkeypatch, caplog):
    """Disk full mid-append: the half-written line is cut back off, so the
    next record does not glue onto it (which would read as damage and
    quarantine the file, cancelling every working order)."""
    import os

    store = VenueStore('sim')
    store.record(resting=[mk_order('a')])
    real = os.write

    def half(fd, data):
        real(fd, bytes(data[:len(data) // 2]))
        raise OSError(28, 'No space left on device')

    with monkeypatch.context() as m:
        m.setattr(os, 'write', half)
        store.record(resting=[mk_order('b')])  # logged, not raised
    assert 'NOT SAVED' in caplog.text
    store.record(resting=[mk_order('c')], events=[mk_fill('c', 't1')])
    store.close()
    again = VenueStore('sim')
    assert not list(store.path.parent.glob('*.corrupt-*'))
    assert list(again.orders) == ['a', 'c'] and [e.msg.tid for e in again.fills()] == ['t1']


def test_a_torn_tail_left_by_a_failed_compaction_is_cut_off_before_appending():
    store = VenueStore('sim')
    store.record(resting=[mk_order('a')])
    store.close()
    with store.path.open('ab') as f:
        f.write(b'{"op": "gone", "req')  # torn; say the compaction at load failed
    store._fd = None
    store.record(resting=[mk_order('b')])
    store.close()
    again = VenueStore('sim')
    assert not list(store.path.parent.glob('*.corrupt-*'))
    assert list(again.orders) == ['a', 'b']
