"""emsd's trades relays: one per (broker, mode), shared, and closed once
nothing uses it (`[ems] relay_idle_s`); the next user opens it again."""
from __future__ import annotations

import pytest
import trio

from piker.testing import PaperSim
from tests._ems_helpers import FQME, start

pytestmark = pytest.mark.timeout(60)

VENUE = 'paperboi.sim'


def test_unused_relay_is_closed_and_reopened(paper_sim):
    async def main(sim: PaperSim):
        a = await start(sim)
        b = await sim.open_ems(FQME)
        state = await sim.ems_state()
        assert state['venues'] == {VENUE: 'up'}  # one relay for both sessions
        oid = await a.place('buy', 90.0, 1.0)
        await a.wait(oid, 'open')
        await a.close()
        await b.close()
        # no client, but an order works there: the relay stays
        await trio.sleep(1.0)
        assert (await sim.ems_state())['venues'] == {VENUE: 'up'}
        # the order ends (cancel-all from the admin side): nothing uses it
        from piker.clearing import _ems_admin
        from piker.service import find_service
        async with find_service('emsd') as portal:
            assert await portal.run(_ems_admin.cancel_all_orders) == [oid]
        await sim.until_ems(lambda st: VENUE not in st['venues'], timeout=10)
        # the next session opens it again; orders flow as before
        c = await sim.open_ems(FQME)
        assert (await sim.ems_state())['venues'] == {VENUE: 'up'}
        again = await c.place('buy', 90.0, 1.0)
        await c.wait(again, 'open')
        await c.client.cancel(again)
        await c.wait(again, 'canceled')

    paper_sim(main, conf={'ems': {'relay_idle_s': 0.3}})
