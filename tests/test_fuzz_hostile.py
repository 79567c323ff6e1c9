"""Hostile input never crashes or wedges a daemon (DESIGN.md sections 5, 11).

hypothesis throws random and malformed messages straight onto the raw
streams of emsd's client endpoint (`open_ems_dialog`, via
`EMSSession.send_raw`) and of paperboi's trades dialogue
(`open_trade_dialog`, opened as a second dialogue beside emsd's): wrong
types, missing and extra fields, 1e308, NaN/inf, negatives, unknown tags,
actions, exec modes and oids, 100k-character strings, deep nesting, maps
with non-string keys and non-map values (lists, ints, None, bytes).

Checked, per example:

- every message is answered: a message with a usable oid gets at least
  one reply naming it (an error, or the normal flow of a message that
  happens to be valid), every other one gets its own oid-less error;
- a well-behaved client places, sees open, cancels and sees cancelled
  an order *while* the garbage flows;
- whatever the garbage made real (orders that happened to be valid) is
  cancelled again and ends.

And once per test: the daemons' pids are unchanged and pikerd never
restarted one (nothing crashed), and a marketable order still fills.

One service tree per test; hypothesis drives from a worker thread and
each example runs in the tree's trio loop (`trio.from_thread.run`).
Below the streams, tests/test_fuzz_wire.py throws raw bytes, frames and
RPCs at every daemon's port with the same garbage (`junk`).
"""
from __future__ import annotations

import itertools
import math
import os
import uuid
from collections import Counter
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from piker.clearing import TERMINAL_RESPS, Status
from piker.testing import EMSSession, PaperSim
from tests._ems_helpers import BASE, FQME, RawDialogue, check_dialog, start

pytestmark = pytest.mark.timeout(90)

# more for a bug hunt: PIKER_FUZZ_EXAMPLES=500 uv run pytest tests/test_fuzz_hostile.py
EXAMPLES = int(os.environ.get('PIKER_FUZZ_EXAMPLES', '30'))
INTERNAL = 'internal error'  # the reply to a message that raised unexpectedly
REPLY_TIMEOUT = 20.0
BURST = 3_000

# ---- garbage ----------------------------------------------------------------

I64 = st.integers(-(2**63), 2**64 - 1)  # all msgpack can carry
EXTREMES = [1e308, -1e308, math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324,
            1e-300, -1.0, -1e-9, 2.0**63, 2**64 - 1, -(2**63)]
numbers = st.one_of(st.sampled_from(EXTREMES), st.floats(), I64)
long_texts = st.builds(
    lambda ch, n: ch * n,
    st.sampled_from(['x', 'é', '\x00', '.', ' ', '\U0001f980']),
    st.integers(1_000, 100_000),
)
WORDS = ['', ' ', '\t\n', 'buy', 'sell', 'alert', 'dark', 'live', 'order', 'cancel',
         'paper', 'sim', FQME, 'nan', 'None', 'status', 'fill', '../../etc/passwd']
texts = st.one_of(st.text(max_size=16), st.sampled_from(WORDS), long_texts)
keys = st.one_of(
    st.text(max_size=8), I64, st.none(), st.booleans(),
    st.floats(allow_nan=False), st.binary(max_size=4), st.tuples(I64),
)
scalars = st.one_of(
    st.none(), st.booleans(), numbers, texts, st.binary(max_size=64),
    st.builds(lambda n: b'\xff' * n, st.integers(1_000, 100_000)),
)


def _nest(depth: int, leaf: Any, as_map: bool) -> Any:
    for _ in range(depth):
        leaf = {'k': leaf} if as_map else [leaf]
    return leaf


junk = st.one_of(
    st.recursive(
        scalars,
        lambda kids: st.one_of(st.lists(kids, max_size=5), st.dictionaries(keys, kids, max_size=5)),
        max_leaves=10,
    ),
    st.builds(_nest, st.integers(20, 300), scalars, st.booleans()),
)
non_str_junk = junk.filter(lambda v: not isinstance(v, str))

# ---- message templates with mutations ----------------------------------------

FRESH = '<fresh oid>'          # replaced by a unique oid when sent
FRESH_LONG = '<fresh long oid>'  # a unique 50k-character oid

oids = st.one_of(
    st.sampled_from(['', ' ', '\t', FRESH_LONG]),
    st.text(min_size=1, max_size=6).map(lambda s: f'fz-{s}'),  # re-used across examples
    non_str_junk,
)


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any], values: dict[str, st.SearchStrategy]) -> dict:
    """`template` with a few fields dropped or replaced, plus extra fields."""
    msg = dict(template)
    for field in draw(st.sets(st.sampled_from(sorted(values)), max_size=3)):
        if draw(st.booleans()):
            msg.pop(field, None)
        else:
            msg[field] = draw(values[field])
    for key, val in draw(st.dictionaries(st.text(max_size=10), junk, max_size=2)).items():
        msg.setdefault(key, val)
    return msg


def _field(*words: Any) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(list(words)), junk)


# client -> emsd: Order / Cancel, and anything else
CLIENT_FIELDS = {
    'name': _field('order', 'cancel', 'status', 'brokerd_order', 'teleport', '', 'ORDER'),
    'oid': oids,
    'symbol': st.one_of(
        st.sampled_from([FQME, 'BTCUSDT.SIM', 'ethusdt.sim', 'btcusdt', 'btcusdt.nope',
                         'zzz.sim', '.sim', '...', 'btcusdt.sim.sim', 'simco.sim']),
        texts, junk,
    ),
    'action': _field('buy', 'sell', 'alert', 'hodl', 'BUY', ''),
    'exec_mode': _field('dark', 'live', 'ghost', ''),
    'price': st.one_of(numbers, junk),
    'size': st.one_of(numbers, junk),
    'account': _field('paper', 'nope', '', ' '),
    'brokers': _field(['sim'], [], ['nope'], 'sim'),
}
order_msgs = st.builds(
    dict,
    action=st.sampled_from(['buy', 'sell', 'alert']),
    exec_mode=st.sampled_from(['live', 'dark']),
    price=st.sampled_from([90.0, 95.0, 99.0, 100.0, 120.0]),
    size=st.sampled_from([0.1, 1.0, 2.5]),
).flatmap(lambda base: mutated(
    dict(name='order', oid=FRESH, symbol=FQME, account='paper', brokers=['sim'], **base),
    CLIENT_FIELDS,
))
cancel_msgs = mutated(dict(name='cancel', oid=FRESH, symbol=FQME), CLIENT_FIELDS)
client_ops = st.lists(
    st.one_of(
        st.tuples(st.just('msg'), order_msgs),
        st.tuples(st.just('msg'), order_msgs),
        st.tuples(st.just('msg'), cancel_msgs),
        st.tuples(st.just('msg'), junk),
        st.tuples(st.just('recancel'), st.integers(0, 50)),  # an earlier oid
    ),
    min_size=1, max_size=25,
)

# emsd -> backend: BrokerdOrder / BrokerdCancel, and anything else
BACKEND_FIELDS = {
    'name': _field('brokerd_order', 'brokerd_cancel', 'order', 'ack', '', 'teleport'),
    'oid': oids,
    'symbol': st.one_of(st.sampled_from(['btcusdt', FQME, 'BTCUSDT', 'zzz', '', 'ethusdt']),
                        texts, junk),
    'action': _field('buy', 'sell', 'alert', 'hodl'),
    'price': st.one_of(numbers, junk),
    'size': st.one_of(numbers, junk),
    'account': _field('paper', 'nope', '', ' '),
    'time_ns': st.one_of(I64, junk),
    'reqid': st.one_of(st.sampled_from(['', ' ', 'nope', 0, -1]), I64, junk),
}
backend_order_msgs = st.builds(
    dict,
    action=st.sampled_from(['buy', 'sell']),
    price=st.sampled_from([90.0, 95.0, 99.0, 100.0, 120.0]),
    size=st.sampled_from([0.1, 1.0, 2.5]),
).flatmap(lambda base: mutated(
    dict(name='brokerd_order', oid=FRESH, symbol='btcusdt', account='paper',
         time_ns=1, reqid=None, **base),
    BACKEND_FIELDS,
))
backend_cancel_msgs = mutated(
    dict(name='brokerd_cancel', oid=FRESH, reqid='<acked>', account='paper', time_ns=1),
    BACKEND_FIELDS,
)
backend_ops = st.lists(
    st.one_of(
        st.tuples(st.just('msg'), backend_order_msgs),
        st.tuples(st.just('msg'), backend_order_msgs),
        st.tuples(st.just('msg'), backend_cancel_msgs),
        st.tuples(st.just('msg'), junk),
    ),
    min_size=1, max_size=25,
)

_seq = itertools.count()


def realise(raw: Any) -> Any:
    """Replace the oid markers with unique oids."""
    if isinstance(raw, dict) and raw.get('oid') in (FRESH, FRESH_LONG):
        oid = f'fz-{next(_seq)}-{uuid.uuid4().hex[:8]}'
        raw = dict(raw, oid=oid if raw['oid'] == FRESH else oid + 'y' * 50_000)
    return raw


def reply_key(raw: Any) -> str:
    """The oid a reply to `raw` carries ('' when it has none)."""
    oid = raw.get('oid') if isinstance(raw, dict) else None
    return oid if isinstance(oid, str) else ''


class Expect:
    """Which replies a batch of hostile messages must draw."""

    def __init__(self, blank_as: str | None = None) -> None:
        # at least one reply matching one of the (field, value) pairs each
        self.named: list[set[tuple[str, Any]]] = []
        # this many error replies per blank oid
        self.blank: dict[str, int] = {}
        self._blank_as = blank_as  # the oid a blank one is answered with

    def add(self, key: str, *also: tuple[str, Any]) -> None:
        if key.strip():
            self.named.append({('oid', key), *also})
        else:
            key = self._blank_as if self._blank_as is not None else key
            self.blank[key] = self.blank.get(key, 0) + 1

    def met(self, replies: list[tuple[str, Any, bool]]) -> bool:
        """`replies`: (oid, reqid, is_error) of every reply so far."""
        seen: set[tuple[str, Any]] = set()
        errors: dict[str, int] = {}
        for oid, reqid, is_error in replies:
            seen.add(('oid', oid))
            if isinstance(reqid, str | int):
                seen.add(('reqid', reqid))
            if is_error:
                errors[oid] = errors.get(oid, 0) + 1
        return (all(alts & seen for alts in self.named)
                and all(errors.get(k, 0) >= c for k, c in self.blank.items()))

    def keys(self) -> set[str]:
        return {v for alts in self.named for f, v in alts if f == 'oid'}


# ---- the bugs the fuzz found, pinned down ----------------------------------------

def test_error_reply_to_a_map_with_odd_keys_decodes():
    # the reply echoes the bad message; a client must be able to decode it
    import msgspec

    from piker.clearing._messages import decode_ems_msg, error_status

    raw = {1: 'x', 'oid': 'k', 'nested': {2: 3}, 'bad': {None: 1}, (1,): 2, 'b': b'\x00'}
    st = error_status(raw, 'bad message')
    back = decode_ems_msg(msgspec.msgpack.decode(msgspec.msgpack.encode(st)))
    assert back.oid == 'k' and back.resp == 'error' and back.reason == 'bad message'
    assert back.brokerd_msg == {'oid': 'k', 'nested': {'2': 3}, 'b': 'AA=='}


def test_a_gone_client_never_breaks_the_fanout():
    from piker.clearing._fanout import ClientConn

    gone, live = ClientConn(FQME, 'paper'), ClientConn(FQME, 'paper')
    gone.recv_ch.close()  # its sender task ended: the client went away
    for client in (gone, live):
        client.push('status')  # must not raise for the gone one
    assert gone.dropped and not live.dropped
    assert live.recv_ch.receive_nowait() == 'status'


def test_garbage_cancels_leave_no_trace_in_emsd():
    from piker.clearing._ems import open_emsd
    from piker.config import load_conf

    async def main():
        async with open_emsd(load_conf().ems) as emsd:
            with emsd.clients.session(FQME, 'paper') as client:
                for i in range(100):
                    await emsd.intake.on_client_msg(
                        client, {'name': 'cancel', 'oid': f'ghost-{i}' * 1000})
                errors = [client.recv_ch.receive_nowait() for _ in range(100)]
            assert all(e.resp == 'error' and 'unknown oid' in e.reason for e in errors)
            assert len(emsd.dialogs) == 0  # nothing kept for a ghost

    trio.run(main)


# ---- emsd ---------------------------------------------------------------------

async def daemon_pids() -> dict[str, tuple[int | None, int]]:
    from piker.service import list_services
    return {name: (info.pid, info.restarts) for name, info in (await list_services()).items()}


async def round_trip(good: EMSSession) -> None:
    """The well-behaved client: a resting order, open, cancel, cancelled."""
    oid = await good.place('buy', 95.0, 1.0)
    await good.wait(oid, 'open', timeout=REPLY_TIMEOUT)
    await good.client.cancel(oid)
    await good.wait(oid, 'canceled', timeout=REPLY_TIMEOUT)
    check_dialog(good, oid)


async def emsd_example(bad: EMSSession, good: EMSSession, ops: list[tuple], sent: list[str]) -> None:
    mark = bad.mark()
    expect = Expect()
    # an oid's dialog that ended in an earlier example: a command for it
    # is dropped (logged), its end answered it already - no reply due
    ended = {m.oid for m in bad.msgs if isinstance(m, Status) and m.resp in TERMINAL_RESPS}
    async with trio.open_nursery() as n:
        n.start_soon(round_trip, good)
        for kind, arg in ops:
            if kind == 'recancel':
                if not sent:
                    continue
                raw: Any = {'name': 'cancel', 'oid': sent[arg % len(sent)]}
                # a finished dialog's cancel is dropped (logged): no reply due
            else:
                raw = realise(arg)
                key = reply_key(raw)
                if not key.strip() or key not in ended:
                    expect.add(key)
                if key.strip():
                    sent.append(key)
            bad.send_raw(raw)
            await trio.sleep(0)

        def answered() -> bool:
            return expect.met([
                (m.oid, m.reqid, m.resp == 'error')
                for m in bad.msgs[mark:] if isinstance(m, Status)
            ])

        await bad.until(answered, timeout=REPLY_TIMEOUT)
    # A barrier: one reply per oid is not all the replies (a cancel of an
    # unknown oid is answered before an order under the same oid later
    # makes a dialog). An order of the bad client's own goes behind all
    # its garbage on the same stream, batch order and publish path; once
    # it has ended, every status the garbage drew has arrived.
    await round_trip(bad)
    crashed = [m for m in bad.msgs[mark:] if isinstance(m, Status) and INTERNAL in m.reason]
    assert not crashed, crashed[0].brokerd_msg

    # whatever the garbage made real is cancelled again, and every dialog ends
    mine = expect.keys()
    live = [oid for oid in list(bad.dialogs) if oid in mine]
    for oid in live:
        await bad.client.cancel(oid)
    for oid in live:
        await bad.wait(oid, TERMINAL_RESPS, timeout=REPLY_TIMEOUT, since=mark)


def test_emsd_survives_hostile_clients(paper_sim):
    async def main(sim: PaperSim):
        good = await start(sim, **BASE)
        bad = await sim.open_ems(FQME)
        before = await daemon_pids()
        assert {'emsd', 'paperboi.sim'} <= before.keys()
        sent: list[str] = []

        @settings(
            max_examples=EXAMPLES, deadline=None, database=None,
            phases=(Phase.explicit, Phase.generate),  # no shrinking: each run costs
            suppress_health_check=list(HealthCheck),
        )
        @given(ops=client_ops)
        def check(ops: list[tuple]) -> None:
            trio.from_thread.run(emsd_example, bad, good, ops, sent)

        await trio.to_thread.run_sync(check)

        # a burst: thousands of bad messages at once, a 2 MB one among them
        mark = bad.mark()
        async with trio.open_nursery() as n:
            n.start_soon(round_trip, good)
            bad.send_raw({'name': 'order', 'oid': 'fz-big', 'symbol': 'x' * 2_000_000})
            bad.send_raw({'name': 'order', 'oid': 'fz-keys', 1: 2, (3,): {None: 4}})
            for i in range(BURST):
                bad.send_raw([i] if i % 2 else {'name': 'cancel', 'oid': None})
        await bad.until(lambda: sum(
            isinstance(m, Status) and m.resp == 'error' and m.oid in ('', 'fz-big', 'fz-keys')
            for m in bad.msgs[mark:]
        ) >= BURST + 2, timeout=REPLY_TIMEOUT)

        # nothing crashed or was respawned, and trading goes on
        assert await daemon_pids() == before
        # a useful fuzz: some garbage decoded into real orders, some did not
        resps = Counter(m.resp for m in bad.msgs if isinstance(m, Status))
        assert resps['error'] and resps['pending'] and resps['dark_open'], resps
        await sim.push(FQME, **BASE)
        oid = await good.place('buy', 100.0, 1.0)
        await good.wait(oid, 'closed', timeout=REPLY_TIMEOUT)
        check_dialog(good, oid)
        assert not [o for o in good.dialogs if o in sent]

    paper_sim(main, timeout=80)


# ---- paperboi -----------------------------------------------------------------

async def paperboi_example(
    dlg: RawDialogue,
    good: EMSSession,
    ops: list[tuple],
) -> None:
    mark = len(dlg.msgs)
    expect = Expect(blank_as='<unknown>')
    acked = [(m['oid'], m['reqid']) for m in dlg.msgs if m.get('name') == 'ack']
    async with trio.open_nursery() as n:
        n.start_soon(round_trip, good)
        for _, arg in ops:
            raw = arg
            if isinstance(raw, dict) and raw.get('reqid') == '<acked>':
                # a cancel of a real (earlier) venue order, if there is one
                oid, reqid = acked[-1] if acked else (FRESH, 'never-acked')
                raw = dict(raw, reqid=reqid, oid=oid if raw.get('oid') == FRESH else raw.get('oid'))
            raw = realise(raw)
            reqid = raw.get('reqid') if isinstance(raw, dict) else None
            also = [('reqid', reqid)] if isinstance(reqid, str | int) else []
            expect.add(reply_key(raw), *also)
            await dlg.stream.send(raw)

        await dlg.until(timeout=REPLY_TIMEOUT, cond=lambda: expect.met([
            (m.get('oid'), m.get('reqid'), m.get('name') == 'error') for m in dlg.msgs[mark:]
        ]))

    # cancel every order the garbage left resting; each gets an answer
    mine = expect.keys()
    reqids = {m['reqid'] for m in dlg.msgs[mark:] if m.get('name') == 'ack' and m['oid'] in mine}
    done = {m['reqid'] for m in dlg.msgs[mark:]
            if m.get('name') == 'brokerd_status' and m.get('status') in ('closed', 'canceled')}
    todo = reqids - done
    cmark = len(dlg.msgs)
    for reqid in todo:
        await dlg.stream.send({'name': 'brokerd_cancel', 'oid': 'fz-cleanup', 'reqid': reqid,
                               'account': 'paper', 'time_ns': 1})
    await dlg.until(timeout=REPLY_TIMEOUT, cond=lambda: todo <= {m.get('reqid') for m in dlg.msgs[cmark:]})


def test_paperboi_survives_hostile_dialogues(paper_sim):
    from piker.clearing._daemons import PAPERBOI
    from piker.clearing._paper_engine import open_trade_dialog
    from piker.service import open_daemon, open_watched_context

    async def main(sim: PaperSim):
        good = await start(sim, **BASE)  # emsd's own dialogue with paperboi is up
        before = await daemon_pids()
        async with (
            open_daemon(PAPERBOI.spec('sim')) as portal,
            open_watched_context(portal, open_trade_dialog, broker='sim', timeout=2.0) as (
                ctx, (_positions, accounts),
            ),
            ctx.open_stream() as stream,
            trio.open_nursery() as n,
        ):
            assert 'paper' in accounts
            dlg = RawDialogue(stream)
            n.start_soon(dlg.record)

            @settings(
                max_examples=EXAMPLES, deadline=None, database=None,
                phases=(Phase.explicit, Phase.generate),
                suppress_health_check=list(HealthCheck),
            )
            @given(ops=backend_ops)
            def check(ops: list[tuple]) -> None:
                trio.from_thread.run(paperboi_example, dlg, good, ops)

            await trio.to_thread.run_sync(check)

            # a burst: thousands of bad commands at once, a 2 MB one among them
            mark = len(dlg.msgs)
            async with trio.open_nursery() as burst:
                burst.start_soon(round_trip, good)
                await stream.send({'name': 'brokerd_order', 'oid': 'fz-big', 'symbol': 'x' * 2_000_000})
                await stream.send({'name': 'brokerd_order', 'oid': ' '})  # blank: '<unknown>'
                for i in range(BURST):
                    await stream.send([i] if i % 2 else {'name': 'brokerd_cancel', 'oid': None})
            await dlg.until(timeout=REPLY_TIMEOUT, cond=lambda: sum(
                m.get('name') == 'error' and m.get('oid') in ('<unknown>', 'fz-big')
                for m in dlg.msgs[mark:]
            ) >= BURST + 2)
            n.cancel_scope.cancel()
        # a useful fuzz: some garbage made real venue orders, some did not
        names = Counter(m.get('name') for m in dlg.msgs)
        assert names['ack'] and names['error'], names

        assert await daemon_pids() == before
        await sim.push(FQME, **BASE)
        oid = await good.place('buy', 100.0, 1.0)
        await good.wait(oid, 'closed', timeout=REPLY_TIMEOUT)
        check_dialog(good, oid)

    paper_sim(main, timeout=80)
