"""Raw bytes on every daemon's port never cost more than that connection.

tests/test_fuzz_hostile.py fuzzes through valid streams (message level);
this fuzzes below them, at the wire (`piker.service._wire`): hypothesis
opens raw TCP connections to the listening port of pikerd (the registry),
emsd, brokerd.sim and paperboi.sim and writes, with or without a valid
handshake first:

- random bytes; random msgpack (test_fuzz_hostile's `junk`) as frames and
  as the handshake;
- hostile frames: nesting 5,000 deep and just around msgspec's recursion
  limit, invalid UTF-8, huge and zero length prefixes, frames cut short,
  malformed tractor messages (responses, errors, crash reports);
- RPCs into the daemon's own endpoints (every async function of its
  `enable_modules`) with junk arguments, under their real parameter names
  or random ones, and into the actor runtime (`ns='self'`).

Per example a well-behaved client places, sees open, cancels and sees
cancelled an order meanwhile, and every daemon still accepts a new
connection. Once per test: the same daemons (same pids, no restart) and a
marketable order fills end to end.
"""
from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

import msgspec
import pytest
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from piker.service import DAEMON_MODULES, _wire, list_services
from piker.service._pikerd import PIKERD_MODULES
from piker.service._registry import listener_gone
from piker.testing import PaperSim
from tests._ems_helpers import BASE, FQME, check_dialog, start
from tests._raw_peer import (
    HEADER,
    HTTP_GET,
    INVALID_UTF8,
    deep,
    exchange,
    frame,
)
from tests.test_fuzz_hostile import REPLY_TIMEOUT, daemon_pids, junk, keys, round_trip

pytestmark = pytest.mark.timeout(120)

EXAMPLES = int(os.environ.get('PIKER_FUZZ_EXAMPLES', '40'))
DAEMONS = ('pikerd', 'emsd', 'brokerd.sim', 'paperboi.sim')
# endpoints a *valid* peer may call to change state on purpose (tractor has
# no authentication; loopback-only binds are the boundary): only ever
# called with a parameter they do not have (refused), as any valid call
# (`cancel_all_orders()`) would do what it says
STATEFUL = frozenset({
    '_ensure', '_rpc_ensure', 'cancel_service', '_rpc_cancel', 'startup',
    'cancel_all_orders', 'set_trading_state',
})
SELF = sorted(_wire.SELF_RPC - {'cancel'}) + ['cancel_server', '_async_main', '__init__', '']


def endpoints(modules: list[str]) -> list[tuple[str, str, list[str]]]:
    """(module, function, parameter names) of every RPC target in `modules`."""
    out = []
    for name in dict.fromkeys(modules):
        mod = importlib.import_module(name)
        for fname, fn in sorted(vars(mod).items()):
            if getattr(fn, '__module__', None) == name and (
                inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
            ):
                params = [p for p in inspect.signature(fn).parameters if p != 'ctx']
                out.append((name, fname, params))
    return out


def pack(value: Any) -> bytes:
    try:
        return msgspec.msgpack.encode(value)
    except (TypeError, OverflowError, ValueError):
        return b'\xc0'


text = st.text(max_size=12)
good_cid = text.map(lambda s: f'fz-{s}')
cids = st.sampled_from(['good', 'good', 'good', 'junk']).flatmap(
    lambda kind: good_cid if kind == 'good' else junk)


@st.composite
def rpc(draw: st.DrawFn, targets: list[tuple[str, str, list[str]]]) -> bytes:
    if draw(st.sampled_from([False] * 5 + [True])):  # into the actor runtime
        ns, func, params = 'self', draw(st.sampled_from(SELF)), ['uid', 'name', 'sockaddr', 'cid']
    else:
        ns, func, params = draw(st.sampled_from(targets))
    if func in STATEFUL:
        kwargs = draw(st.dictionaries(text.map(lambda k: f'fz_{k}'), junk, min_size=1, max_size=2))
    elif draw(st.sampled_from([False, False, True])):
        kwargs = draw(st.dictionaries(keys, junk, max_size=3))
    else:
        kwargs = {p: draw(junk) for p in params if draw(st.sampled_from([True] * 4 + [False]))}
    cmd = [ns, func, kwargs, draw(st.one_of(st.just(['fz', 'x']), junk)), draw(cids)]
    if draw(st.sampled_from([False] * 4 + [True])):  # a mangled cmd
        cmd = draw(st.one_of(st.lists(junk, max_size=6), junk))
    return frame(pack({'cmd': cmd}))


response = st.builds(
    lambda cid, key, val: frame(pack({'cid': cid, key: val})),
    cids, st.sampled_from(['yield', 'return', 'stop', 'error', 'functype']), junk,
)
error_report = st.builds(lambda err: frame(pack({'error': err})), junk)
hostile = st.one_of(
    st.builds(frame, st.builds(deep, st.sampled_from([5_000, 1_100, 1_000, 990, 970, 900]))),
    st.just(frame(INVALID_UTF8)),
    st.builds(lambda n: frame(b'\x91' * n + INVALID_UTF8), st.integers(0, 50)),
    st.builds(HEADER.pack, st.integers(_wire.MAX_FRAME + 1, 2**32 - 1)),
    st.builds(lambda n, rest: HEADER.pack(n) + rest, st.integers(0, 2**32 - 1), st.binary(max_size=64)),
    st.just(frame(b'')),
    st.just(HTTP_GET),
)
random_frames = st.one_of(
    st.binary(max_size=512),
    st.builds(lambda v: frame(pack(v)), junk),
    st.builds(frame, st.binary(max_size=256)),
    hostile, response, error_report,
)


@st.composite
def attacks(draw: st.DrawFn, daemons: dict[str, list]) -> tuple[str, bool, bytes]:
    """(daemon, handshake first?, bytes to write) of one connection: raw
    bytes instead of a handshake, frames after one, or RPCs (mostly
    well-framed, so they reach the endpoints) then maybe a bad frame."""
    name = draw(st.sampled_from(DAEMONS))
    kind = draw(st.sampled_from(['raw', 'frames', 'rpcs', 'rpcs']))
    if kind == 'rpcs':
        chunks = draw(st.lists(rpc(daemons[name]), min_size=1, max_size=4))
        chunks += draw(st.lists(random_frames, max_size=1))
    else:
        chunks = draw(st.lists(random_frames, min_size=1, max_size=3))
    if kind == 'raw' and draw(st.booleans()):
        chunks.insert(0, frame(pack(draw(st.one_of(junk, st.lists(text, max_size=3))))))
    return name, kind != 'raw', b''.join(chunks)


async def attack_once(
    addrs: dict[str, tuple[str, int]],
    good: Any,
    name: str,
    handshake: bool,
    data: bytes,
) -> None:
    async with trio.open_nursery() as n:
        n.start_soon(round_trip, good)
        await exchange(addrs[name], data, handshake=handshake, wait=0.2)
    for daemon, addr in addrs.items():
        assert not await listener_gone(addr), f'{daemon} stopped listening'


def test_raw_garbage_on_every_daemon_port(paper_sim, piker_env):
    _, registry = piker_env

    async def main(sim: PaperSim) -> None:
        good = await start(sim, **BASE)
        services = sim.services
        infos = await list_services()
        assert set(DAEMONS[1:]) <= infos.keys(), infos
        addrs = {'pikerd': registry, **{n: infos[n].addr for n in DAEMONS[1:]}}
        modules = {'pikerd': PIKERD_MODULES, **{
            n: services._daemons[n].spec.enable_modules + DAEMON_MODULES for n in DAEMONS[1:]
        }}
        daemons = {n: endpoints(m) for n, m in modules.items()}
        before = await daemon_pids()

        @settings(
            max_examples=EXAMPLES, deadline=None, database=None,
            phases=(Phase.explicit, Phase.generate),  # no shrinking: each run costs
            suppress_health_check=list(HealthCheck),
        )
        @given(attack=attacks(daemons))
        def check(attack: tuple[str, bool, bytes]) -> None:
            trio.from_thread.run(attack_once, addrs, good, *attack)

        await trio.to_thread.run_sync(check)

        # every hostile frame once, to every daemon
        for name in DAEMONS:
            for data in (HTTP_GET, frame(deep(5_000)), frame(INVALID_UTF8) * 5,
                         HEADER.pack(2**32 - 1)):
                for handshake in (False, True):
                    reply = await exchange(addrs[name], data, handshake=handshake)
                    assert reply.closed, (name, data[:8])

        # the same daemons, nothing restarted, and trading goes on
        after = await daemon_pids()
        assert {n: after.get(n) for n in before} == before
        assert services.exits == []
        await sim.push(FQME, **BASE)
        oid = await good.place('buy', 100.0, 1.0)
        await good.wait(oid, 'closed', timeout=REPLY_TIMEOUT)
        check_dialog(good, oid)

    paper_sim(main, timeout=100)
