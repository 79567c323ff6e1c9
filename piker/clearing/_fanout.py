"""emsd's client fan-out: every connected order client and what it hears.

Each client has a bounded queue of outgoing messages and a sender task
that empties it, so a slow or dead client never stalls the others: a
client whose queue overflows is disconnected (it gets the full state
back on reconnect). A client hears the Statuses of every dialog on the
markets it subscribed to, and of the dialogs it owns (`Dialog.owner`)
whatever their market; positions go to every client of their broker.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import tractor
import trio

from ..accounting import unpack_fqme
from ..buffers import with_queued
from ..log import get_logger
from ._dialogs import DialogTable, Mode
from ._messages import BrokerdPosition, Status

__all__ = ['CLIENT_QUEUE', 'SEND_BATCH', 'ClientConn', 'Clients', 'open_clients']

log = get_logger(__name__)

# per-client queue of outgoing messages; a client this far behind is cut
CLIENT_QUEUE = 20_000
# messages to a client queued while one is sent leave together, as a list
# of at most this many (the client unpacks it): under load the fan-out
# costs a frame per batch instead of one per Status
SEND_BATCH = 256


class ClientConn:
    """One connected order client: its subscriptions and outgoing queue."""

    _ids = iter(range(1, 1 << 62))

    def __init__(self, fqme: str, mode: Mode) -> None:
        self.id = next(self._ids)
        self.fqmes = {fqme}
        self.brokers = {unpack_fqme(fqme)[0]}
        self.mode = mode
        self.send_ch, self.recv_ch = trio.open_memory_channel(CLIENT_QUEUE)
        self.dropped = False

    def push(self, msg: Any) -> None:
        """Queue `msg`; a client that fell too far behind is disconnected."""
        if self.dropped:
            return
        try:
            self.send_ch.send_nowait(msg)
        except trio.WouldBlock:
            log.error('client %s is %d messages behind: disconnecting it',
                      self.id, CLIENT_QUEUE)
            self.dropped = True
            self.send_ch.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            # closed here, or its sender task ended (the client went away):
            # never let one gone client break the fan-out to the others
            self.dropped = True

    async def send_all(self, stream: tractor.MsgStream) -> None:
        """Send the queue to the client until it is closed (the client fell
        too far behind). What queued meanwhile goes out as one list
        (`SEND_BATCH` at most): one frame and one socket write, not one each."""
        recv = self.recv_ch
        async with recv:
            async for msg in recv:
                batch = with_queued(msg, recv, SEND_BATCH)
                await stream.send(batch if len(batch) > 1 else msg)


class Clients:
    """Every connected client, and the latest position per market."""

    def __init__(self, dialogs: DialogTable) -> None:
        self._dialogs = dialogs
        self.conns: dict[int, ClientConn] = {}
        # (broker, account) -> fqme -> latest position
        self.positions: dict[tuple[str, str], dict[str, BrokerdPosition]] = defaultdict(dict)

    @contextmanager
    def session(self, fqme: str, mode: Mode) -> Iterator[ClientConn]:
        """A client connected for its session (its queue closed at the end)."""
        client = ClientConn(fqme, mode)
        self.conns[client.id] = client
        try:
            yield client
        finally:
            self.conns.pop(client.id, None)
            client.send_ch.close()

    def uses(self, broker: str, mode: Mode) -> bool:
        """Whether a client trades at `broker` in `mode`."""
        return any(broker in c.brokers and c.mode == mode for c in self.conns.values())

    def hears(self, client: ClientConn, oid: str, fqme: str) -> bool:
        """Whether `client` gets the Statuses of dialog `oid` (on `fqme`)."""
        if fqme in client.fqmes:
            return True
        dialog = self._dialogs.get(oid)
        return dialog is not None and dialog.owner == client.id

    def publish(self, status: Status, origin: ClientConn | None = None) -> None:
        """Fan a Status out to every interested client (and `origin`)."""
        fqme = status.req.symbol if status.req is not None else ''
        sent = False
        for client in self.conns.values():
            if client is origin or self.hears(client, status.oid, fqme):
                client.push(status)
                sent = True
        if not sent:
            log.info('no client listening for %s: %s', status.oid, status.resp)

    def position(self, msg: BrokerdPosition) -> None:
        """Keep a venue's position report and pass it to its broker's clients."""
        self.positions[(msg.broker, msg.account)][msg.symbol] = msg
        for client in self.conns.values():
            if msg.broker in client.brokers:
                client.push(msg)

    def snapshot(self, client: ClientConn) -> tuple[dict, dict]:
        """What a client gets at its handshake: positions, active dialogs."""
        pps: dict[str, list] = {}
        for (broker, account), table in self.positions.items():
            if broker in client.brokers:
                pps[f'{broker}.{account}'] = [p.to_builtins() for p in table.values() if p.size]
        dialogs = {d.oid: d.snapshot().to_builtins() for d in self._dialogs.active()}
        return pps, dialogs


@asynccontextmanager
async def open_clients(dialogs: DialogTable) -> AsyncIterator[Clients]:
    """The fan-out for emsd's lifetime: every client queue closes with it."""
    clients = Clients(dialogs)
    try:
        yield clients
    finally:
        for client in list(clients.conns.values()):
            client.send_ch.close()
