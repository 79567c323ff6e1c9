"""The replay backend: a recorded span as a market, through the paper engine."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

from piker.brokers.replay._control import open_replay_control
from piker.data import open_feed
from piker.testing import PaperSim
from tests._ems_helpers import fill_prices
from tests.data.make_recording import quotes

pytestmark = pytest.mark.timeout(90)

RECORDING = Path(__file__).parent / 'data' / 'recording'
FQME = 'btcusdt.sim.replay'


def test_shipped_recording_is_what_make_recording_makes():
    from piker.storage import TickStore, rows_to_quotes
    got = rows_to_quotes(TickStore(RECORDING).read('btcusdt.sim'), symbol='btcusdt.sim')
    assert got == [{**q, 'symbol': 'btcusdt.sim'} for q in quotes()]


def test_replay_feed_emits_the_recording_in_order(recorded_market):
    assert recorded_market(RECORDING, speed=0, paused=True) == FQME
    sent = quotes()

    async def main():
        async with open_feed(FQME) as feed:
            mkt = feed.mkts[FQME]
            assert mkt.fqme == FQME and str(mkt.price_tick) == '0.1'
            assert feed.first_quotes[FQME]['last'] == sent[0]['last']
            async with open_replay_control('btcusdt.sim') as ctl:
                await ctl.play()
                trades = []
                with trio.fail_after(20):
                    while len(trades) < len(sent) - 1:
                        batch = await feed.stream.receive()
                        q = batch.get(FQME)
                        if q:
                            trades += [t['price'] for t in q['ticks'] if t['type'] == 'trade']
                assert trades == [q['last'] for q in sent[1:]]
                assert await ctl.wait_done() == len(sent) - 1

    trio.run(main)


def test_a_replayed_span_gives_identical_paper_fills_twice(recorded_market, paper_sim):
    recorded_market(RECORDING, speed=10.0, paused=True)  # 2 s of replay

    async def main(sim: PaperSim):
        ems = await sim.open_ems(FQME)
        oids = [
            await ems.place('buy', 99.0, 0.5, symbol=FQME),
            await ems.place('sell', 101.5, 0.3, symbol=FQME),
            await ems.place('buy', 98.7, 1.0, symbol=FQME),
            await ems.place('buy', 50.0, 1.0, symbol=FQME),  # never reached
        ]
        for oid in oids:
            await ems.wait(oid, 'open')
        async with open_replay_control('btcusdt.sim') as ctl:
            await ctl.play()
            await ctl.wait_done()
        for oid in oids[:3]:
            await ems.wait(oid, 'closed', timeout=10)
        return [fill_prices(ems, oid) for oid in oids]

    first = paper_sim(main, brokers=None)
    assert all(first[:3]) and first[3] == []
    second = paper_sim(main, brokers=None)
    assert second == first


def test_replay_span_from_env_and_config(piker_env, monkeypatch):
    from piker.brokers import replay
    confdir, _ = piker_env
    (confdir / 'brokers.toml').write_text(
        '[replay]\nstart = "2026-11-30T14:00"\nend = "2026-11-30T15:00"\nspeed = 4.0\n')
    assert replay.span() == (1_796_047_200, 1_796_050_800, 4.0, False)
    monkeypatch.setenv(replay.ENV_SPAN, '2026-11-30T14:00:05/2026-11-30T14:00:10')
    monkeypatch.setenv(replay.ENV_SPEED, '0')
    assert replay.span() == (1_796_047_205, 1_796_047_210, 0.0, False)
    # the span bounds what is replayed
    monkeypatch.setattr(replay, 'TickStore', lambda: __import__(
        'piker.storage', fromlist=['TickStore']).TickStore(RECORDING))
    got = replay.load_quotes('btcusdt.sim')
    assert len(got) == 100 and got[0]['time_ns'] == 1_796_047_205 * 10**9


def test_chart_replay_option(recorded_market):
    import os
    import subprocess
    import sys

    from pyqtgraph.Qt import QtGui

    recorded_market(RECORDING)
    exe = os.path.join(os.path.dirname(sys.executable), 'piker')
    env = dict(os.environ, QT_QPA_PLATFORM='offscreen')
    for span, words in (('14:00', 'give START/END as ISO times'),
                        ('2026-11-30T14:00/13:00', 'END must come after START')):
        bad = subprocess.run([exe, 'chart', 'btcusdt.sim', '--replay', span], env=env,
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and words in bad.stderr, bad.stderr
    shot = Path(os.environ['PIKER_CONFIG_DIR']) / 'replay.png'
    proc = subprocess.run(
        [exe, 'chart', 'btcusdt.sim', '-t', '1', '--replay', '2026-11-30T14:00:05/14:00:15',
         '--speed', '0', '--screenshot', str(shot), '--after', '0.5'],
        env=env, capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    assert not QtGui.QImage(str(shot)).isNull()


def test_unpaced_replay_gives_the_fills_of_a_paced_one(recorded_market, paper_sim):
    async def main(sim: PaperSim):
        ems = await sim.open_ems(FQME)
        oids = [await ems.place('buy', 99.0, 0.5, symbol=FQME),
                await ems.place('sell', 101.5, 0.3, symbol=FQME),
                await ems.place('buy', 98.7, 1.0, symbol=FQME)]
        for oid in oids:
            await ems.wait(oid, 'open')
        async with open_replay_control('btcusdt.sim') as ctl:
            await ctl.play()
            await ctl.wait_done()
        for oid in oids:
            await ems.wait(oid, 'closed', timeout=10)
        return [fill_prices(ems, oid) for oid in oids]

    recorded_market(RECORDING, speed=10.0, paused=True)
    paced = paper_sim(main, brokers=None)
    recorded_market(RECORDING, speed=0.0, paused=True)
    assert paper_sim(main, brokers=None) == paced
    assert paper_sim(main, brokers=None) == paced
