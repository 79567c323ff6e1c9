"""The scripts in examples/ run: against a running `piker pikerd`, and alone.

The sim market quotes 10x faster than by default so a short run sees
fills, re-centring modifies and the final cancels. Each example runs as
its own process (it must keep working with its `__main__` guard re-run in
every sub-actor), as a client of a pikerd subprocess.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from piker.accounting import TransactionLedger
from tests._pikerd_proc import running_pikerd, with_registry

EXAMPLES = Path(__file__).resolve().parent.parent / 'examples'


def grid_bot(*args: str) -> tuple[str, dict[str, int]]:
    res = subprocess.run(
        [sys.executable, str(EXAMPLES / 'grid_bot.py'), *args],
        capture_output=True, text=True, timeout=50, env=dict(os.environ),
    )
    assert res.returncode == 0, res.stdout + res.stderr
    done = re.search(
        r'done: (\d+) fills .*?, (\d+) orders placed, (\d+) modified, (\d+) cancelled, '
        r'(\d+) errors, (\d+) still working', res.stdout,
    )
    assert done, res.stdout
    keys = ('fills', 'placed', 'modified', 'cancelled', 'errors', 'working')
    return res.stdout, dict(zip(keys, map(int, done.groups()), strict=True))


@pytest.mark.timeout(90)
def test_grid_bot(piker_env, tmp_path):
    confdir, addr = piker_env
    (confdir / 'brokers.toml').write_text('[sim]\nseed = 3\nquote_rate = 200\n')
    with running_pikerd(addr, tmp_path / 'pikerd.log') as pikerd:
        # time-bound run: the market leaves a tight grid many times
        out, stats = grid_bot('--seconds', '3', '--fills', '100000',
                              '--levels', '2', '--step-ticks', '10')
        assert stats['fills'] > 0 and stats['modified'] > 0, out
        assert 'recentred' in out and 'cancelling' in out
        assert stats['working'] == 0
        assert out.count('FILL ') == stats['fills']
        # every fill the bot saw is in the paper ledger, on disk
        ledger = TransactionLedger.load('sim', 'paper')
        assert len(ledger) == stats['fills']

        # fill-bound run: stops at the first fills, cancels the rest
        out, stats = grid_bot('--seconds', '30', '--fills', '2', '--step-ticks', '10')
        assert stats['fills'] >= 2 and stats['working'] == 0, out
        assert stats['placed'] >= 6

        pikerd.stop()
        assert not pikerd.leftovers()


@pytest.mark.timeout(60)
def test_grid_bot_standalone(piker_env):
    """No pikerd running: the script starts the tree in-process and takes
    it down with it, leaving no process behind."""
    confdir, addr = piker_env
    (confdir / 'brokers.toml').write_text('[sim]\nseed = 3\nquote_rate = 200\n')
    out, stats = grid_bot('--seconds', '30', '--fills', '2', '--step-ticks', '10')
    assert stats['fills'] >= 2 and stats['working'] == 0, out
    deadline = time.monotonic() + 5
    while with_registry(addr) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not with_registry(addr)


RECORDING = Path(__file__).resolve().parent / 'data' / 'recording'


def _fills(out: str) -> list[str]:
    """The bot's fills as it printed them, without its clock and oids."""
    return [re.sub(r'\s+\(order \w+, ', ' (', line.split('FILL ', 1)[1]).strip()
            for line in out.splitlines() if 'FILL ' in line]


async def _grid_bot_on_replay(fqme: str, seconds: float) -> str:
    """The grid bot, unchanged, as a client of this process's tree, on the
    paused replay `fqme` (played by `_play_when_all_listen`)."""
    import trio

    from piker.service import maybe_open_pikerd

    async with maybe_open_pikerd():
        proc = await trio.lowlevel.open_process(
            [sys.executable, str(EXAMPLES / 'grid_bot.py'), '--fqme', fqme,
             '--seconds', str(seconds), '--fills', '100000', '--levels', '2',
             '--step-ticks', '3', '--size', '0.1'],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        out = bytearray()

        async def read() -> None:
            while chunk := await proc.stdout.receive_some():
                out.extend(chunk)

        async with proc, trio.open_nursery() as n:
            n.start_soon(read)
            try:
                await _play_when_all_listen(fqme, proc, out)
                with trio.fail_after(seconds + 30):
                    await proc.wait()
            finally:
                if proc.returncode is None:
                    proc.kill()     # never wait on a bot that waits on us
        assert proc.returncode == 0, out.decode()
    return out.decode()


async def _play_when_all_listen(fqme: str, proc, out: bytearray) -> None:
    """Start the tape once every consumer listens: the bot's feed
    (brokerd's subscriber count) and the paper engine's, which opens with
    a market's first order (a far-off order placed here warms it up); so
    every run sees the whole tape from its first quote. Returns when the
    tape is over."""
    import trio

    from piker.brokers import _brokerd
    from piker.brokers.replay._control import open_replay_control
    from piker.clearing import Status, open_ems
    from piker.service import find_service

    async def subscribers() -> int:
        async with find_service('brokerd.replay') as portal:
            if portal is None:
                return 0
            st = await portal.run(_brokerd.feed_status, broker='replay')
        return st['upstreams'].get(fqme, 0)

    with trio.fail_after(40):
        while await subscribers() < 1:       # the bot's feed
            assert proc.returncode is None, out.decode()
            await trio.sleep(0.05)
        async with open_ems(fqme, mode='paper') as (client, trades, *_):
            # inside the price band, far below the tape (90..110)
            warm = client.mk_order('buy', 60.0, 0.1)
            await client.send(warm)
            async for msg in trades:
                if isinstance(msg, Status) and msg.oid == warm.oid and (
                        msg.resp in ('open', 'error', 'canceled')):
                    break
            if msg.resp == 'open':
                await client.cancel(warm.oid)
        assert msg.resp == 'open', msg
        while await subscribers() < 2:       # + the paper engine's
            await trio.sleep(0.05)
    async with open_replay_control(fqme.removesuffix('.replay')) as ctl:
        await ctl.play()
        await ctl.wait_done()


@pytest.mark.timeout(150)
def test_grid_bot_replays_a_recorded_span_with_the_same_fills_twice(piker_env, recorded_market):
    """examples/grid_bot.py, unchanged, on 6 s of the shipped recording
    replayed in real time: the same fills, in the same order, both runs."""
    import trio
    confdir, _ = piker_env
    fqme = recorded_market(RECORDING, speed=1.0, paused=True)
    conf = confdir / 'brokers.toml'
    conf.write_text(conf.read_text()
                    + 'start = "2026-11-30T14:00:00"\nend = "2026-11-30T14:00:06"\n')
    runs = [trio.run(_grid_bot_on_replay, fqme, 8.0) for _ in range(2)]
    fills = [_fills(out) for out in runs]
    assert len(fills[0]) >= 4, runs[0]
    assert fills[0] == fills[1], runs
    done = [re.search(r'done: .*', out)[0] for out in runs]
    assert re.sub(r'; account.*', '', done[0]) == re.sub(r'; account.*', '', done[1])
