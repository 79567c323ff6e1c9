"""emsd's effects executor (`piker.clearing._effects`): when a Status is told.

A `pending` says the order went to the venue, so it is told once the
venue command is written, never before, and never for a command that
could not be sent (only the `error` that ends the dialog); a promise
that only emsd keeps (a gtd order) is told once the journal has it too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from piker.clearing._dialogs import DialogTable, ToVenue
from piker.clearing._effects import Effects
from piker.clearing._fanout import ClientConn, Clients
from piker.clearing._journal import Journal, JournalWriter
from piker.clearing._messages import Order, Status
from piker.clearing._risk import RiskGate

pytestmark = pytest.mark.timeout(30)

FQME = 'btcusdt.sim'


def trio_test(fn):
    def run() -> None:
        trio.run(fn)
    run.__name__ = fn.__name__
    return run


class Venue:
    """A venue relay that records what it was sent, and what the client
    had been told by then; `problem` makes every send fail."""

    def __init__(self, client: ClientConn, problem: str = '', reports: bool = True) -> None:
        self.client = client
        self.problem = problem
        self.reports = reports
        self.sent: list[Any] = []
        self.told_before_send: list[str] = []

    async def send(self, effs: list[ToVenue], mode: str) -> str:
        await trio.lowlevel.checkpoint()  # a write takes a moment
        self.told_before_send += [st.resp for st in drain(self.client)]
        if self.problem:
            return self.problem
        self.sent += [eff.msg for eff in effs]
        return ''

    def reports_orders(self, broker: str, mode: str) -> bool:
        return self.reports


class NoDark:
    def arm(self, eff: Any) -> None:
        raise AssertionError('no dark orders here')

    def disarm(self, oid: str) -> None:
        pass

    def news(self) -> list:
        return []


def drain(client: ClientConn) -> list[Status]:
    out = []
    while True:
        try:
            out.append(client.recv_ch.receive_nowait())
        except trio.WouldBlock:
            return out


def order(oid: str, **kw: Any) -> Order:
    return Order(oid=oid, symbol=FQME, action='buy', exec_mode='live', price=100.0,
                 size=1.0, account='paper', **kw)


def setup(problem: str = '', reports: bool = True):
    dialogs = DialogTable(track_changes=True)
    clients = Clients(dialogs)
    fx = Effects(dialogs, RiskGate(), clients)
    return dialogs, clients, fx, problem, reports


@trio_test
async def test_pending_is_told_once_the_order_is_written_to_the_venue() -> None:
    dialogs, clients, fx, _, _ = setup()
    with clients.session(FQME, 'paper') as client:
        venue = Venue(client)
        fx.connect(venue, NoDark())
        await fx.execute(dialogs.on_order(order('a'), owner=client.id, route='paper'), client)
        assert [m.oid for m in venue.sent] == ['a']
        assert venue.told_before_send == []
        assert [st.resp for st in drain(client)] == ['pending']


@trio_test
async def test_an_order_that_cannot_be_sent_is_never_told_pending() -> None:
    dialogs, clients, fx, _, _ = setup()
    with clients.session(FQME, 'paper') as client:
        venue = Venue(client, problem='venue sim (paper) is not connected: not sent')
        fx.connect(venue, NoDark())
        await fx.execute(dialogs.on_order(order('a'), owner=client.id, route='paper'), client)
        told = drain(client)
        assert [st.resp for st in told] == ['error']
        assert 'not connected' in told[0].reason
        assert venue.told_before_send == [] and not venue.sent
        assert dialogs['a'].terminal


@trio_test
async def test_a_gtd_pending_waits_for_the_send_and_the_commit() -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.open(Path(tmp) / 'journal.sqlite')
        dialogs, clients, fx, _, _ = setup()
        commits: list[int] = []

        def on_commit(ticket: int) -> None:
            commits.append(ticket)
            fx.release(ticket)

        writer = JournalWriter(journal, on_commit=on_commit)
        async with trio.open_nursery() as n:
            n.start_soon(writer.run)
            fx.attach(writer)
            with clients.session(FQME, 'paper') as client:
                venue = Venue(client)
                fx.connect(venue, NoDark())
                gtd = order('g', tif='gtd', expires_ns=2**62)
                await fx.execute(dialogs.on_order(gtd, owner=client.id, route='paper'), client)
                assert venue.told_before_send == [] and [m.oid for m in venue.sent] == ['g']
                with trio.fail_after(5):
                    while not commits:
                        await trio.sleep(0.001)
                await trio.testing.wait_all_tasks_blocked()
                assert [st.resp for st in drain(client)] == ['pending']
                assert journal.dialog('g') is not None
            fx.attach(None)
            n.cancel_scope.cancel()
        journal.close()
