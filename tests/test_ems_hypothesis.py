"""Random order programs against the real service tree.

hypothesis generates *programs* (place / modify / cancel / quote ops, run
back to back with no waiting, so requests race fills, triggers and each
other); each one runs against one long-lived tree (booted once for all
examples: hypothesis drives from a worker thread, every example runs in the
tree's trio loop through `trio.from_thread.run`). After a program every
order still working is cancelled, and the invariants are checked:

- every dialog ends in exactly one terminal state;
- `filled + remaining == size` in every status, and the fills of a dialog
  add up to its final `filled`;
- a fill never breaks the order's limit;
- no dialog ever creates more than one venue order (the paper venue's
  audit);
- the ledger holds every reported fill, and the positions file, the
  ledger and the positions stream agree.
"""
from __future__ import annotations

import math

import pytest
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from piker.clearing import TERMINAL_RESPS, OrderFinishedError, Status
from piker.testing import EMSSession, PaperSim
from tests._ems_helpers import BASE, FQME, start

STEP = 0.5  # price grid of the programs (a multiple of the 0.1 tick)
MID = 100.0


def _price(off: int) -> float:
    return round(MID + off * STEP, 1)


place = st.tuples(
    st.just('place'),
    st.sampled_from(['buy', 'sell']),
    st.sampled_from(['live', 'live', 'dark']),
    st.integers(-4, 4),
    st.sampled_from([0.1, 0.25, 0.5, 1.0]),
)
modify = st.tuples(st.just('modify'), st.integers(0, 15), st.integers(-4, 4),
                   st.sampled_from([None, None, 0.5, 1.5]))
cancel = st.tuples(st.just('cancel'), st.integers(0, 15))
quote = st.tuples(
    st.just('quote'),
    st.integers(-4, 3),            # bid
    st.integers(1, 3),             # spread, in steps
    st.sampled_from([0.2, 0.5, 2.0]),
    st.sampled_from([0.2, 0.5, 2.0]),
    st.booleans(),                 # also print a trade at the mid
)
programs = st.lists(st.one_of(place, place, modify, cancel, quote, quote), min_size=3, max_size=20)


def _finished(ems: EMSSession, oid: str, since: int) -> bool:
    return any(
        isinstance(m, Status) and m.oid == oid and m.resp in TERMINAL_RESPS
        for m in ems.msgs[since:]
    )


async def run_program(sim: PaperSim, ems: EMSSession, program: list[tuple]) -> None:
    mark = ems.mark()
    client = ems.client
    oids: list[str] = []
    # every limit price the program asked for, per order (a fill may come
    # at any of them: a modify can cross a fill at the old price)
    limits: dict[str, list[float]] = {}
    for op in program:
        kind = op[0]
        if kind == 'place':
            _, action, mode, off, size = op
            oid = await ems.place(action, _price(off), size, exec_mode=mode)
            oids.append(oid)
            limits[oid] = [_price(off)]
        elif kind == 'quote':
            _, bid_off, spread, bsize, asize, trade = op
            bid = _price(bid_off)
            ask = round(bid + spread * STEP, 1)
            extra = {'last': round((bid + ask) / 2, 1)} if trade else {}
            await sim.push(FQME, bid=bid, ask=ask, bsize=bsize, asize=asize, **extra)
        elif oids:
            oid = oids[op[1] % len(oids)]
            if _finished(ems, oid, mark):
                continue  # like a UI: no requests for orders known to be done
            try:
                if kind == 'cancel':
                    await client.cancel(oid)
                else:
                    _, _, off, size = op
                    limits[oid].append(_price(off))
                    await client.update(oid, price=_price(off), size=size)
            except OrderFinishedError:  # an update: the client heard the
                continue  # end before this recorder did

    # wind down: cancel what still works, then every dialog must end
    for oid in oids:
        if not _finished(ems, oid, mark):
            await client.cancel(oid)
    for oid in oids:
        await ems.wait(oid, TERMINAL_RESPS, timeout=10, since=mark)

    await check_invariants(sim, ems, oids, limits, mark)


async def check_invariants(
    sim: PaperSim,
    ems: EMSSession,
    oids: list[str],
    asked: dict[str, list[float]],
    mark: int,
) -> None:
    audit = await sim.venue_orders()
    tids: set[str] = set()
    for oid in oids:
        sts = [m for m in ems.msgs[mark:] if isinstance(m, Status) and m.oid == oid]
        story = [(s.resp, s.reason) for s in sts]
        # a request that raced its dialog's end gets no second end
        ends = [i for i, s in enumerate(sts) if s.resp in TERMINAL_RESPS]
        assert len(ends) == 1, story
        after = sts[ends[0] + 1:]
        assert all(s.resp == 'fill' for s in after), story
        limits = list(asked[oid])
        fills = 0.0
        for s in sts:
            if s.req is None:
                continue
            assert math.isclose(s.filled + s.remaining, s.req.size, abs_tol=1e-9), s
            if 'submit_price' in s.brokerd_msg:  # the trigger (not a refusal)
                limits.append(s.brokerd_msg['submit_price'])
            if s.resp == 'fill':
                fills += s.brokerd_msg['size']
                tids.add(s.brokerd_msg['tid'])
                price = s.brokerd_msg['price']
                if s.req.action == 'buy':
                    assert price <= max(limits) + 1e-9, story
                else:
                    assert price >= min(limits) - 1e-9, story
        last = [s for s in sts if s.req is not None][-1]
        assert math.isclose(fills, last.filled, abs_tol=1e-9), story
        assert len(audit.get(oid, [])) <= 1, (audit.get(oid), story)

    ledger = sim.ledger()
    assert tids <= set(ledger)
    net = sim.ledger_size(FQME)
    assert math.isclose(sim.position_size(FQME), net, abs_tol=1e-9)
    await ems.until(lambda: math.isclose(ems.position(FQME), net, abs_tol=1e-9))


# a slow venue (acks late) puts modifies and cancels before the ack
@pytest.mark.parametrize('latency_ms', [0, 15])
@pytest.mark.timeout(170)
def test_random_programs_keep_the_invariants(paper_sim, latency_ms):
    async def main(sim: PaperSim):
        ems = await start(sim, **BASE)

        @settings(
            max_examples=20, deadline=None, database=None, derandomize=True,
            phases=(Phase.explicit, Phase.generate),  # no shrinking: each run costs
            suppress_health_check=list(HealthCheck),
        )
        @given(program=programs)
        def check(program: list[tuple]) -> None:
            trio.from_thread.run(run_program, sim, ems, program)

        await trio.to_thread.run_sync(check)
        assert len(sim.ledger()) > 0, 'no program ever traded: a useless test'

    paper_sim(main, timeout=160, brokers={'sim': {'paper': {'latency_ms': latency_ms}}})
