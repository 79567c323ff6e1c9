"""The paper-trading test example shown in README.md, verbatim."""
from piker.testing import PaperSim


def test_my_fill(paper_sim):
    async def scenario(sim: PaperSim):
        await sim.push('btcusdt.sim', bid=99.0, ask=100.0, bsize=5, asize=5)
        sess = await sim.open_ems('btcusdt.sim')
        oid = await sess.place('buy', 101.0, 1.0)        # marketable
        closed = await sess.wait(oid, 'closed')
        assert closed.filled == 1.0
        assert sim.position_size('btcusdt.sim') == 1.0   # read from the positions file

    paper_sim(scenario)
