"""The order path's frames (issue 12): what travels together shares one
IPC frame, and every command and event in it is handled as if alone.

- the paper venue sends an order's ack and `open` (a fill with its
  status and position) as one list frame, which emsd's relay unpacks;
- a client sends the commands it queued meanwhile as one batch frame
  (`{'name': 'batch', 'cmds': [...]}`), which emsd unpacks; any other
  frame, a bare list included, stays one (bad) message;
- emsd takes a client's batch as one: its orders go to the venue as one
  batch frame, which the paper venue handles as a batch, answering with
  one frame; a bare list to the venue stays one (bad) message.
"""
from __future__ import annotations

import pytest

from piker.clearing import Status
from piker.clearing._messages import BATCH_NAME, commands_of
from piker.testing import PaperSim
from tests._ems_helpers import BASE, FQME, check_dialog, raw_venue_dialogue, start

pytestmark = pytest.mark.timeout(90)


async def cancel_all(ems, orders: list) -> None:
    """Cancel `orders` in one burst; each ends `canceled` after `open`."""
    for order in orders:
        ems.client.cancel_nowait(order.oid)
    for order in orders:
        await ems.wait(order.oid, 'canceled')
        assert [st.resp for st in check_dialog(ems, order.oid)] == [
            'pending', 'open', 'canceled']


def _venue_order(oid: str, price: float, action: str = 'buy') -> dict:
    return {'name': 'brokerd_order', 'oid': oid, 'symbol': 'btcusdt', 'action': action,
            'price': price, 'size': 1.0, 'account': 'paper', 'time_ns': 1}


def test_the_venue_sends_what_it_emits_at_once_in_one_frame(paper_sim):
    async def main(sim: PaperSim):
        await sim.push(FQME, **BASE)
        async with raw_venue_dialogue() as dlg:
            await dlg.stream.send(_venue_order('rest', 90.0))
            await dlg.reply(lambda m: m.get('oid') == 'rest' and m.get('status') == 'open')
            (frame,) = [f for f in dlg.frames if isinstance(f, list)
                        and any(m.get('oid') == 'rest' for m in f)]
            assert [m['name'] for m in frame] == ['ack', 'brokerd_status']
            await dlg.stream.send(_venue_order('take', 100.0))
            await dlg.reply(lambda m: m.get('oid') == 'take' and m.get('status') == 'closed')
            names = [[m['name'] for m in f] for f in dlg.frames if isinstance(f, list)
                     and any(m.get('oid') == 'take' and m['name'] == 'fill' for m in f)]
            assert names == [['fill', 'brokerd_status', 'position']]
        # emsd's own dialogue unpacks those frames: its order works as always
        ems = await sim.open_ems(FQME)
        oid = await ems.place('buy', 100.0, 1.0)
        await ems.wait(oid, 'closed')
        assert [st.resp for st in check_dialog(ems, oid)] == ['pending', 'fill', 'closed']

    paper_sim(main)


def test_a_batch_of_orders_goes_to_the_venue_and_back_as_one_frame_each(paper_sim):
    async def main(sim: PaperSim):
        await sim.push(FQME, **BASE)
        ems = await start(sim)
        async with raw_venue_dialogue() as dlg:
            # a second dialogue hears every venue event: emsd's frames too
            orders = [ems.client.mk_order('buy', 90.0 - i * 0.1, 1.0) for i in range(20)]
            for order in orders:  # no checkpoint: one batch frame to emsd
                ems.client.send_nowait(order)
            for order in orders:
                await ems.wait(order.oid, 'open')
            last = orders[-1].oid
            await dlg.reply(lambda m: m.get('oid') == last and m.get('status') == 'open')
            oids = {o.oid for o in orders}
            frames = [f for f in dlg.frames if isinstance(f, list)
                      and any(m.get('oid') in oids for m in f)]
            assert len(frames) == 1
            assert [(m['name'], m['oid']) for m in frames[0]] == [
                (name, o.oid) for o in orders for name in ('ack', 'brokerd_status')]
            # a batch frame to the venue, a bad command inside: answered in place
            await dlg.stream.send({'name': BATCH_NAME, 'cmds': [
                _venue_order('r1', 80.0), {'name': 'brokerd_order'}, _venue_order('r2', 80.0)]})
            await dlg.reply(lambda m: m.get('oid') == 'r2' and m.get('status') == 'open')
            (frame,) = [f for f in dlg.frames if isinstance(f, list)
                        and any(m.get('oid') == 'r1' for m in f)]
            assert [m['name'] for m in frame] == [
                'ack', 'brokerd_status', 'error', 'ack', 'brokerd_status']
        await cancel_all(ems, orders)

    paper_sim(main)


def test_commands_of_a_frame():
    order = {'name': 'order', 'oid': 'a'}
    assert commands_of({'name': BATCH_NAME, 'cmds': [order, 1]}) == [order, 1]
    # anything else is one message, answered as such
    for frame in ([order], [], {'name': BATCH_NAME, 'cmds': []},
                  {'name': BATCH_NAME, 'cmds': 'x'}, order, 7):
        assert commands_of(frame) == [frame]


def test_a_burst_of_commands_is_answered_command_by_command(paper_sim):
    async def main(sim: PaperSim):
        ems = await start(sim)
        # 200 orders queued without a checkpoint: they leave in batches
        orders = [ems.client.mk_order('buy', 90.0 - i * 0.1, 1.0) for i in range(200)]
        for order in orders:
            ems.client.send_nowait(order)
        # a bad command in the middle of a batch costs that command only
        ems.send_raw({'name': 'cancel', 'oid': 'no-such-oid', 'symbol': FQME})
        ems.send_raw([{'name': 'order'}])  # a bare list: one bad message
        for order in orders:
            await ems.wait(order.oid, 'open')
        await ems.wait('no-such-oid', 'error')
        errors = [m for m in ems.msgs if isinstance(m, Status) and m.resp == 'error'
                  and m.oid != 'no-such-oid']
        assert len(errors) == 1 and errors[0].oid == ''
        await cancel_all(ems, orders)

    paper_sim(main)
