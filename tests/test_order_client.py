"""`OrderClient`'s memory stays bounded (issue #11, item 7): it keeps only
this session's requests emsd has not answered yet, the active dialogs, and
a bounded list of ended ones - not every order it ever heard of."""
from __future__ import annotations

import uuid

import pytest
import trio

from piker.clearing._client import MAX_FINISHED, OrderClient, UnknownOrderError
from piker.clearing._messages import Cancel, Order, Status

FQME = 'btcusdt.sim'


def client() -> tuple[OrderClient, trio.MemoryReceiveChannel]:
    send, recv = trio.open_memory_channel(10**6)
    return OrderClient(FQME, send, {}, ['paper']), recv


def status(order: Order, resp: str, **kw) -> Status:
    return Status(oid=order.oid, resp=resp, time_ns=1, req=order, **kw)


def test_known_orders_stay_bounded_over_many_orders():
    c, _ = client()
    for _ in range(3 * MAX_FINISHED):
        mine = c.mk_order('buy', 100.0, 1.0)
        c.send_nowait(mine)
        c.on_status(status(mine, 'pending'))
        c.on_status(status(mine, 'open'))
        c.on_status(status(mine, 'closed', filled=1.0))
        # another session's order this one only heard end (it subscribed late)
        theirs = c.mk_order('sell', 101.0, 1.0, oid=str(uuid.uuid4()))
        c.on_status(status(theirs, 'canceled'))
    assert len(c._orders) == 0 and len(c.dialogs) == 0
    assert len(c._finished) == MAX_FINISHED


def test_cancel_and_update_of_known_oids_still_work():
    c, recv = client()
    order = c.mk_order('buy', 100.0, 1.0)
    c.send_nowait(order)
    # in flight (no Status yet): an update builds on the last request
    first = c.update_nowait(order.oid, price=99.0)
    second = c.update_nowait(order.oid, size=2.0)
    assert (second.price, second.size) == (99.0, 2.0) and first.size == 1.0
    assert len(c._orders) == 1
    # answered: the order lives in `dialogs`, not twice
    c.on_status(status(second, 'open'))
    assert not c._orders and c.dialogs[order.oid].req == second
    assert c.update_nowait(order.oid, price=98.0).size == 2.0
    assert c.cancel_nowait(order.oid) is True
    # another session's active order can be cancelled too
    theirs = c.mk_order('sell', 101.0, 1.0)
    c.on_status(status(theirs, 'open'))
    assert c.cancel_nowait(theirs.oid) is True and list(c._orders) == [order.oid]
    sent = [recv.receive_nowait() for _ in range(6)]
    assert isinstance(sent[-1], Cancel) and sent[-1].oid == theirs.oid
    # ended: nothing more is sent for it
    c.on_status(status(theirs, 'canceled'))
    assert c.cancel_nowait(theirs.oid) is False
    with pytest.raises(UnknownOrderError, match='unknown oid'):
        c.cancel_nowait('nope')
