"""open_feed() against a real service tree: pikerd + brokerd.sim.

Each test boots its own tree on the private registry/config of the
autouse isolation fixture, has a tight timeout, and checks that the
processes it started are gone afterwards.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trio

from piker.accounting import MktPair
from piker.brokers import FeedError, NoSuchBackend, SymbolNotFound, _brokerd
from piker.brokers.sim import open_market_control
from piker.data import OHLC_DTYPE, _hub, open_feed
from piker.service import find_service, list_services, maybe_open_pikerd
from piker.testing._proc import alive


def write_sim_conf(confdir: Path, **kw) -> None:
    body = '\n'.join(f'{k} = {v!r}' for k, v in kw.items())
    (confdir / 'brokers.toml').write_text(f'[sim]\n{body}\n')


def assert_all_dead(pids: list[int], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f'leaked processes: {[p for p in pids if alive(p)]}'
        time.sleep(0.02)


async def daemon_pids() -> dict[str, int]:
    return {name: info.pid for name, info in (await list_services()).items()}


def trades(batch: dict, fqme: str) -> list[float]:
    quote = batch.get(fqme)
    if quote is None:
        return []
    return [t['price'] for t in quote['ticks'] if t['type'] == 'trade']


# a second client process: prints 'ready', then the btc trade prices it
# sees as JSON lines until it has seen `last`
CLIENT = '''
import json, sys, trio
from piker.data import open_feed

async def main(last):
    async with open_feed(['btcusdt.sim']) as feed:
        print('ready', flush=True)
        async for batch in feed.stream:
            q = batch.get('btcusdt.sim')
            if q is None:
                continue
            prices = [t['price'] for t in q['ticks'] if t['type'] == 'trade']
            print(json.dumps(prices), flush=True)
            if last in prices:
                return

if __name__ == '__main__':
    trio.run(main, float(sys.argv[1]))
'''


@pytest.mark.timeout(30)
def test_open_feed_basics(piker_env):
    confdir, _ = piker_env
    write_sim_conf(confdir, seed=3, quote_rate=100.0)

    async def main():
        async with open_feed(['btcusdt.sim', 'SIMCO.sim']) as feed:
            pids = await daemon_pids()
            assert set(pids) == {'brokerd.sim'}
            assert feed.fqmes == ['btcusdt.sim', 'simco.sim']
            assert all(isinstance(m, MktPair) for m in feed.mkts.values())
            assert feed.mkts['simco.sim'].size_tick == 1
            for fqme, q in feed.first_quotes.items():
                assert q['symbol'] == fqme and q['bid'] < q['ask']
            seen: set[str] = set()
            with trio.fail_after(10):
                while seen != {'btcusdt.sim', 'simco.sim'}:
                    batch = await feed.stream.receive()
                    for fqme, q in batch.items():
                        assert q['symbol'] == fqme
                        assert set(q) >= {'last', 'bid', 'ask', 'bsize', 'asize',
                                          'volume', 'time_ns', 'ticks'}
                        assert q['bid'] < q['ask']
                        seen.add(fqme)
            for tf in (1, 60):
                bars = await feed.history('btcusdt.sim', tf)
                assert bars.dtype == OHLC_DTYPE and len(bars) > 1000
                assert np.all(np.diff(bars['time']) == tf)
            with pytest.raises(ValueError, match='timeframes'):
                await feed.history('btcusdt.sim', 7)

        # market info only, no live stream
        async with open_feed('ethusdt.sim', start_stream=False) as feed:
            assert feed.mkts['ethusdt.sim'].fqme == 'ethusdt.sim'
            assert feed.first_quotes == {}
            with pytest.raises(FeedError, match='start_stream=False'):
                await feed.stream.receive()
        return list(pids.values())

    pids = trio.run(main)
    assert_all_dead(pids)


@pytest.mark.timeout(45)
def test_pushes_reach_every_consumer_in_order(piker_env):
    """Two consumers in this process and one in another process all see
    every pushed quote, in order, and the walk stays paused after."""
    confdir, _ = piker_env
    write_sim_conf(confdir, seed=9, quote_rate=50.0)
    fqme = 'btcusdt.sim'
    pushed = [50_000.5, 50_001.5, 49_999.5, 50_002.5, 50_003.5]

    async def consume_until(feed, last: float) -> list[float]:
        got: list[float] = []
        with trio.fail_after(10):
            while last not in got:
                got += trades(await feed.stream.receive(), fqme)
        return got

    async def main():
        async with maybe_open_pikerd():
            async with (
                open_feed([fqme, 'ethusdt.sim']) as a,
                open_feed(fqme) as b,
                await trio.lowlevel.open_process(
                    [sys.executable, '-c', CLIENT, str(pushed[-1])],
                    stdout=subprocess.PIPE,
                ) as proc,
            ):
                with trio.fail_after(15):
                    line = b''
                    while b'ready' not in line:
                        chunk = await proc.stdout.receive_some()
                        assert chunk, 'client process died'
                        line += chunk
                # one shared session (IPC stream) for both local consumers
                hubs, _ = _hub._registry()
                assert list(hubs) == ['sim'] and len(hubs['sim'].consumers) == 2
                async with open_market_control(fqme, resume_on_exit=False) as ctl:
                    assert ctl.mkt.fqme == fqme
                    for i, price in enumerate(pushed):
                        quote = await ctl.push(
                            last=price, bid=price - 0.5, ask=price + 0.5, size=i + 1,
                        )
                        assert quote['symbol'] == fqme and quote['last'] == price
                    for feed in (a, b):
                        got = await consume_until(feed, pushed[-1])
                        # walk trades may precede the first push, none follow
                        assert got[-len(pushed):] == pushed
                    # paused: nothing new for btc; eth keeps walking
                    with trio.move_on_after(0.3):
                        while True:
                            batch = await a.stream.receive()
                            assert fqme not in batch, 'walk not paused'
                    # the client process saw the same sequence
                    out = line  # everything read so far, 'ready' included
                    with trio.fail_after(15):
                        await proc.wait()
                        while chunk := await proc.stdout.receive_some():
                            out += chunk
                    assert proc.returncode == 0
                    seen = [
                        p for ln in out.decode().splitlines() if ln != 'ready'
                        for p in json.loads(ln)
                    ]
                    assert seen[-len(pushed):] == pushed

                    await ctl.resume()
                    with trio.fail_after(5):
                        while fqme not in (await b.stream.receive()):
                            pass
            return list((await daemon_pids()).values())

    pids = trio.run(main)
    assert_all_dead(pids)


@pytest.mark.timeout(30)
def test_unknown_backend_and_symbol_errors(piker_env):
    async def main():
        # checked before anything is spawned
        with pytest.raises(NoSuchBackend, match=r"no broker backend 'nope'.*sim"):
            async with open_feed('btcusdt.nope'):
                pass
        with pytest.raises(ValueError, match='no broker suffix'):
            async with open_feed('btcusdt'):
                pass
        async with maybe_open_pikerd():
            with pytest.raises(SymbolNotFound, match='did you mean btcusdt.sim'):
                async with open_feed(['ethusdt.sim', 'btcusd.sim']):
                    pass
            with pytest.raises(SymbolNotFound, match='did you mean'):
                async with open_feed('btcusd.sim', start_stream=False):
                    pass
            with pytest.raises(SymbolNotFound):
                async with open_market_control('nope.sim'):
                    pass
            # the failed subscription left nothing behind: a good one works
            async with open_feed('ethusdt.sim') as feed:
                with trio.fail_after(5):
                    await feed.stream.receive()
            return list((await daemon_pids()).values())

    pids = trio.run(main)
    assert_all_dead(pids)


@pytest.mark.timeout(30)
def test_slow_consumer_does_not_stall_fast_one(piker_env):
    confdir, _ = piker_env
    write_sim_conf(confdir, seed=1, quote_rate=200.0)
    fqme = 'solusdt.sim'

    async def main():
        async with maybe_open_pikerd():
            async with open_feed(fqme) as fast, open_feed(fqme) as slow:
                # `slow` reads nothing for a second while `fast` keeps going
                gaps, last, n = [], time.monotonic(), 0
                with trio.move_on_after(1.0):
                    while True:
                        await fast.stream.receive()
                        now = time.monotonic()
                        gaps.append(now - last)
                        last, n = now, n + 1
                assert n > 50, n
                assert max(gaps) < 0.5, max(gaps)
                # the slow consumer's buffer stayed bounded (one conflated
                # quote) and lost no ticks
                assert len(slow.stream) == 1
                merged = (await slow.stream.receive())[fqme]
                assert slow.stream.conflated > 50
                assert len(merged['ticks']) > 150
                assert slow.stream.dropped_ticks == 0
            return list((await daemon_pids()).values())

    pids = trio.run(main)
    assert_all_dead(pids)


@pytest.mark.timeout(40)
def test_dead_brokerd_raises_feed_error(piker_env):
    confdir, _ = piker_env
    write_sim_conf(confdir, quote_rate=20.0)

    async def main():
        async with maybe_open_pikerd():
            async with open_feed('btcusdt.sim') as feed:
                pid = (await daemon_pids())['brokerd.sim']
                os.kill(pid, signal.SIGKILL)
                t0 = time.monotonic()
                with pytest.raises(FeedError):
                    with trio.fail_after(15):
                        async for _ in feed.stream:
                            pass
                noticed = time.monotonic() - t0
            # pikerd respawns brokerd: a new feed works
            with trio.fail_after(15):
                async with open_feed('btcusdt.sim') as feed:
                    await feed.stream.receive()
                    new_pid = (await daemon_pids())['brokerd.sim']
            return noticed, pid, new_pid

    noticed, pid, new_pid = trio.run(main)
    assert noticed < 6.0
    assert new_pid != pid
    assert_all_dead([pid, new_pid])


@pytest.mark.timeout(30)
def test_brokerd_drops_sigkilled_subscriber(piker_env):
    """Sessions from two processes share one upstream per fqme; a SIGKILLed
    client's session is dropped (rule 2)."""
    confdir, _ = piker_env
    write_sim_conf(confdir, quote_rate=20.0)

    async def status() -> dict:
        async with find_service('brokerd.sim') as portal:
            return await portal.run(_brokerd.feed_status, broker='sim')

    async def main():
        async with maybe_open_pikerd():
            async with open_feed(['ethusdt.sim', 'btcusdt.sim']):
                proc = await trio.lowlevel.open_process(
                    [sys.executable, '-c', CLIENT, '1.0'], stdout=subprocess.PIPE,
                )
                async with proc:
                    with trio.fail_after(15):
                        out = b''
                        while b'ready' not in out:
                            chunk = await proc.stdout.receive_some()
                            assert chunk, 'client process died'
                            out += chunk
                    st = await status()
                    # one upstream per fqme, btc shared by both processes
                    assert st == {'sessions': 2,
                                  'upstreams': {'ethusdt.sim': 1, 'btcusdt.sim': 2}}
                    proc.kill()
                    t0 = time.monotonic()
                    with trio.fail_after(5):
                        while (await status())['sessions'] != 1:
                            await trio.sleep(0.02)
                    noticed = time.monotonic() - t0
                    assert (await status())['upstreams'] == {
                        'ethusdt.sim': 1, 'btcusdt.sim': 1,
                    }
            return noticed, list((await daemon_pids()).values())

    noticed, pids = trio.run(main)
    assert noticed < 2.0
    assert_all_dead(pids)


@pytest.mark.timeout(30)
def test_market_control_errors_and_resume_on_exit(piker_env):
    confdir, _ = piker_env
    write_sim_conf(confdir, quote_rate=50.0)
    fqme = 'simco.sim'

    async def main():
        async with maybe_open_pikerd():
            async with open_feed(fqme) as feed:
                async with open_market_control(fqme) as ctl:
                    with pytest.raises(ValueError, match='finite number > 0'):
                        await ctl.push(last=-1.0)
                    with pytest.raises(ValueError, match='at least one'):
                        await ctl.push()
                    q = await ctl.push(bid=42.0, ask=42.02, bsize=7, asize=9)
                    assert [t['type'] for t in q['ticks']] == ['bid', 'ask']
                    # the control context survived the bad requests
                    q = await ctl.push(last=42.01, size=3)
                    assert q['ticks'] == [{'type': 'trade', 'price': 42.01, 'size': 3.0}]
                # exiting resumed the walk, from the pushed book
                with trio.fail_after(5):
                    while True:
                        batch = await feed.stream.receive()
                        quote = batch[fqme]
                        if quote['ticks'][-1]['type'] != 'trade' or (
                            quote['ticks'][-1]['price'] != 42.01
                        ):
                            break
                assert abs(quote['bid'] - 42.0) < 1.0
            with pytest.raises(ValueError, match='not a sim market'):
                async with open_market_control('btcusdt.ib'):
                    pass
            return list((await daemon_pids()).values())

    pids = trio.run(main)
    assert_all_dead(pids)
