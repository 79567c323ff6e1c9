"""The order client API: `open_ems()` and `OrderClient` (DESIGN.md section 6).

```python
async with open_ems('btcusdt.sim', mode='paper') as (
    client, trades, positions, accounts, dialogs,
):
    oid = await client.send(Order(...))
    await client.update(oid, price=...)
    await client.cancel(oid)
    async for msg in trades:   # Status / BrokerdPosition structs
        ...
```

Works from any process: without a piker runtime it connects to (or
starts) pikerd, spawns emsd on demand and opens one watched dialogue.
Commands go out through an unbounded queue, so the `*_nowait` variants can
be called from Qt callbacks; events come in through a drain task, so a
script that reads `trades` slowly never stalls emsd's connection.
"""
from __future__ import annotations

import math
import re
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager as acm
from typing import Any, Literal, NamedTuple

import tractor
import trio

from ..accounting import unpack_fqme
from ..buffers import with_queued
from ..log import get_logger
from ._messages import (
    BrokerdPosition,
    Cancel,
    MessageError,
    Order,
    Status,
    batch_frame,
    decode_ems_msg,
)

log = get_logger(__name__)

Mode = Literal['live', 'paper']
# how long emsd may leave a heartbeat unanswered before the session is
# declared lost (generous: a loaded machine must not look like a dead one)
WATCHDOG_TIMEOUT = 2.0
# finished orders a session remembers, to refuse requests for them locally
MAX_FINISHED = 10_000
# commands queued while one is sent leave together, as one batch frame
# (`_messages.batch_frame`) of at most this many
SEND_BATCH = 256


class EMSError(RuntimeError):
    """The EMS refused a session or a request (reason in the message)."""


class UnknownOrderError(KeyError):
    """An update or cancel named an oid this client has never seen."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else 'unknown oid'


class OrderFinishedError(UnknownOrderError):
    """An update or re-send named an order whose dialog has ended.

    `status` is the dialog's terminal Status. A `KeyError` like
    `UnknownOrderError`: there is no working order by that oid.
    """

    def __init__(self, status: Status, what: str) -> None:
        super().__init__(
            f'order {status.oid} is already {status.resp}: {what}'
        )
        self.status = status


class Bracket(NamedTuple):
    """The oids of a bracket: its entry and children (None: not asked for)."""

    entry: str
    tp: str | None
    sl: str | None


class OrderClient:
    """Sends orders, modifies and cancels to emsd for one session.

    `dialogs` is the live table of active dialogs (oid -> latest Status),
    shared with the caller of `open_ems()`; update/cancel accept any oid in
    it, including orders placed by other clients or found at start-up.
    """

    def __init__(
        self,
        fqme: str,
        send_ch: trio.MemorySendChannel,
        dialogs: dict[str, Status],
        accounts: list[str],
    ) -> None:
        self.fqme = fqme
        self._send_ch = send_ch
        self.dialogs = dialogs
        self.accounts = accounts
        # this session's requests emsd has not answered yet, as last
        # requested (an update right after another builds on it); once a
        # Status answers, `dialogs` has the order (bounded by what is in flight)
        self._orders: dict[str, Order] = {}
        # terminal Status of the dialogs seen ending, newest last (bounded)
        self._finished: OrderedDict[str, Status] = OrderedDict()

    # -- new orders ---------------------------------------------------------

    def send_nowait(self, order: Order) -> str:
        """Queue `order` (new, or a modify if its oid exists); returns the oid."""
        if not isinstance(order, Order):
            raise TypeError(f'expected an Order, got {type(order).__name__}')
        self._check_working(order.oid, 'a new order needs a new oid')
        self._orders[order.oid] = order
        self._send_ch.send_nowait(order)
        return order.oid

    async def send(self, order: Order) -> str:
        """Send `order`; returns its oid."""
        oid = self.send_nowait(order)
        await trio.lowlevel.checkpoint()
        return oid

    def mk_order(
        self,
        action: Literal['buy', 'sell', 'alert'],
        price: float,
        size: float,
        *,
        symbol: str | None = None,
        exec_mode: Literal['dark', 'live'] = 'live',
        account: str = 'paper',
        oid: str | None = None,
        **fields: Any,
    ) -> Order:
        """Build a validated `Order` for this session's market (or `symbol`).

        `fields`: the order's other fields (docs/protocol.md), e.g.
        `type='stop'`, `trail=Trail(0.5, 'pct')`, `tif='ioc'`,
        `reduce_only=True`."""
        symbol = symbol or self.fqme
        return Order(
            oid=oid or str(uuid.uuid4()), symbol=symbol, action=action,
            exec_mode=exec_mode, price=price, size=size, account=account,
            brokers=[unpack_fqme(symbol)[0]], **fields,
        )

    # -- groups (held by emsd: `piker.clearing._groups`) --------------------

    def bracket_nowait(
        self, entry: Order, tp: float | None = None, sl: float | None = None,
    ) -> Bracket:
        """Send `entry` with a take-profit at `tp` and a stop-loss at `sl`.

        The children close the entry (other side, its size, reduce-only),
        share one oco id and are held by emsd, armed only for what the
        entry has filled; cancelling the entry before it fills cancels
        them (`client.cancel`).
        """
        if tp is None and sl is None:
            raise ValueError('a bracket needs a take-profit and/or a stop-loss price')
        if entry.action == 'alert':
            raise ValueError('an alert opens no position to bracket')
        side = 'sell' if entry.action == 'buy' else 'buy'
        group = str(uuid.uuid4())
        children: list[Order | None] = []
        for kind, price in (('take_profit', tp), ('stop', sl)):
            if price is None:
                children.append(None)
                continue
            try:
                children.append(entry.copy({
                    'oid': str(uuid.uuid4()), 'action': side, 'exec_mode': 'dark',
                    'type': kind, 'price': float(price), 'limit': None, 'trail': None,
                    'tif': 'gtc', 'expires_ns': None, 'reduce_only': True,
                    'parent': entry.oid, 'oco': group,
                }))
            except MessageError as err:
                raise ValueError(f'bad bracket {kind}: {err.reason}') from None
        self.send_nowait(entry)
        for order in children:
            if order is not None:
                self.send_nowait(order)
        tp_order, sl_order = children
        return Bracket(entry.oid, tp_order and tp_order.oid, sl_order and sl_order.oid)

    async def bracket(
        self, entry: Order, tp: float | None = None, sl: float | None = None,
    ) -> Bracket:
        """`bracket_nowait()`; returns `(entry, tp, sl)` oids."""
        oids = self.bracket_nowait(entry, tp=tp, sl=sl)
        await trio.lowlevel.checkpoint()
        return oids

    def oco_nowait(self, *orders: Order, group: str | None = None) -> list[str]:
        """Send new `orders` as one OCO group: a fill of one shrinks or
        cancels the others. Returns their oids."""
        if len(orders) < 2:
            raise ValueError('an oco group needs two or more orders')
        group = group or str(uuid.uuid4())
        grouped = [o.copy({'oco': group}) for o in orders]
        return [self.send_nowait(o) for o in grouped]

    async def oco(self, *orders: Order, group: str | None = None) -> list[str]:
        oids = self.oco_nowait(*orders, group=group)
        await trio.lowlevel.checkpoint()
        return oids

    # -- modify / cancel ----------------------------------------------------

    def _check_working(self, oid: str, what: str) -> None:
        """Refuse a request for an order this session saw end: emsd would
        only drop it (its dialog has had its one terminal Status)."""
        end = self._finished.get(oid)
        if end is not None:
            raise OrderFinishedError(end, what)

    def _known(self, oid: str, what: str) -> Order:
        self._check_working(oid, what)
        order = self._orders.get(oid)
        if order is None:
            st = self.dialogs.get(oid)
            order = st.req if st is not None else None
        if order is None:
            raise UnknownOrderError(
                f'unknown oid {oid!r}: not an order of this session or an '
                'active dialog'
            )
        return order

    def update_nowait(
        self, oid: str, price: float | None = None, size: float | None = None,
    ) -> Order:
        """Modify `oid`'s price and/or size; returns the new request."""
        old = self._known(oid, 'nothing to modify')
        changes: dict[str, Any] = {}
        if price is not None:
            changes['price'] = float(price)
        if size is not None:
            changes['size'] = float(size)
        if not changes:
            raise ValueError('update needs a new price and/or size')
        try:
            new = old.copy(changes)
        except MessageError as err:
            raise ValueError(f'bad update of {oid}: {err.reason}') from None
        return self.send_nowait(new) and new

    async def update(
        self, oid: str, price: float | None = None, size: float | None = None,
    ) -> Order:
        new = self.update_nowait(oid, price=price, size=size)
        await trio.lowlevel.checkpoint()
        return new

    def cancel_nowait(self, oid: str) -> bool:
        """Request cancellation of `oid`; False if it has ended already.

        Cancelling an ended order is not an error (nothing works there any
        more, which is what a cancel wants; scripts cancelling what they
        think still works race the ends): nothing is sent, and its terminal
        Status, in `trades`, says how it ended.
        """
        end = self._finished.get(oid)
        if end is not None:
            log.info('cancel of %s: nothing sent, it is already %s', oid, end.resp)
            return False
        order = self._known(oid, 'nothing to cancel')
        self._send_ch.send_nowait(Cancel(oid=oid, symbol=order.symbol))
        return True

    async def cancel(self, oid: str) -> bool:
        sent = self.cancel_nowait(oid)
        await trio.lowlevel.checkpoint()
        return sent

    def cancel_all_nowait(self, fqme: str | None = None) -> list[str]:
        """Cancel every active dialog (of `fqme`); returns their oids."""
        oids = [
            oid for oid, st in self.dialogs.items()
            if fqme is None or (st.req is not None and st.req.symbol == fqme)
        ]
        for oid in oids:
            self.cancel_nowait(oid)
        return oids

    async def cancel_all(self, fqme: str | None = None) -> list[str]:
        oids = self.cancel_all_nowait(fqme)
        await trio.lowlevel.checkpoint()
        return oids

    def on_status(self, msg: Status) -> None:
        """A Status from emsd: keep `dialogs` and what requests need."""
        self._orders.pop(msg.oid, None)
        if msg.terminal:
            self.dialogs.pop(msg.oid, None)
            self._finished[msg.oid] = msg
            while len(self._finished) > MAX_FINISHED:
                self._finished.popitem(last=False)
        elif msg.req is not None and msg.oid not in self._finished:
            # (a fill after the end does not revive it)
            self.dialogs[msg.oid] = msg


def remote_reason(err: BaseException) -> str:
    """The last line of a remote traceback, `ErrType: message` (the type
    without its module path: `SymbolNotFound`, not `piker.brokers...`)."""
    text = str(err.args[0] if err.args else err).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return repr(err)
    return _MODULE_PATH.sub('', lines[-1].strip(), count=1)


# `pkg.mod.` before the error type on a traceback's last line
_MODULE_PATH = re.compile(r'^(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*:)')


def _check_session(fqme: str, mode: str) -> str:
    from ..brokers import get_brokermod
    if mode not in ('live', 'paper'):
        raise ValueError(f"mode must be 'live' or 'paper', got {mode!r}")
    broker = unpack_fqme(fqme)[0]
    get_brokermod(broker)  # unknown backend: clear error, lists the known ones
    return fqme.lower()


@acm
async def open_ems(
    fqme: str,
    mode: Mode = 'paper',
    loglevel: str | None = None,
) -> AsyncIterator[tuple[
    OrderClient,
    trio.MemoryReceiveChannel,
    dict[tuple[str, str], list[BrokerdPosition]],
    list[str],
    dict[str, Status],
]]:
    """Open an order session on `fqme`; see the module doc.

    Yields `(client, trades, positions, accounts, dialogs)`: `positions`
    maps `(broker, account)` to a list of `BrokerdPosition`, `dialogs` oid ->
    latest `Status` of each active dialog; both are kept up to date as
    messages arrive. Every call builds a fresh `OrderClient`.
    """
    from ..service import (
        maybe_open_pikerd,
        open_daemon,
        open_drained_stream,
        open_watched_context,
    )
    from ._daemons import EMSD
    from ._ems import open_ems_dialog

    fqme = _check_session(fqme, mode)
    started = False
    async with maybe_open_pikerd(loglevel=loglevel):
        async with open_daemon(EMSD.spec(loglevel=loglevel)) as portal:
            try:
                # emsd's endpoint returns when our stream closes, so the
                # context ends cleanly without a cancel request (whose
                # ContextCancelled reply tractor logs as an error)
                cm = open_watched_context(
                    portal, open_ems_dialog, fqme=fqme, mode=mode, loglevel=loglevel,
                    timeout=WATCHDOG_TIMEOUT, cancel_on_exit=False,
                )
                async with cm as (ctx, (raw_pps, accounts, raw_dialogs)):
                    positions: dict[tuple[str, str], list[BrokerdPosition]] = {}
                    for key, pps in raw_pps.items():
                        broker, _, account = key.partition('.')
                        positions[(broker, account)] = [decode_ems_msg(p) for p in pps]
                    dialogs: dict[str, Status] = {
                        oid: decode_ems_msg(st) for oid, st in raw_dialogs.items()
                    }
                    async with (
                        ctx.open_stream() as stream,
                        open_drained_stream(stream, policy='never_drop', maxlen=100_000) as inbox,
                        trio.open_nursery() as n,
                    ):
                        out_send, out_recv = trio.open_memory_channel(math.inf)
                        trades_send, trades_recv = trio.open_memory_channel(math.inf)
                        client = OrderClient(fqme, out_send, dialogs, list(accounts))

                        sent_all = trio.Event()

                        async def _outbox() -> None:
                            # commands queued meanwhile leave as one list
                            # (emsd unpacks it): a burst costs a frame per
                            # batch, not one per command
                            async for cmd in out_recv:
                                batch = with_queued(cmd, out_recv, SEND_BATCH)
                                await stream.send(batch_frame(batch))
                            sent_all.set()

                        async def _inbox() -> None:
                            async with trades_send:
                                async for frame in inbox:
                                    # emsd sends what queued up as one list
                                    for raw in frame if isinstance(frame, list) else (frame,):
                                        on_msg(raw)

                        def on_msg(raw: Any) -> None:
                            try:
                                msg = decode_ems_msg(raw)
                            except MessageError as err:
                                log.warning('bad message from emsd: %s', err.reason)
                                return
                            if isinstance(msg, Status):
                                client.on_status(msg)
                            else:
                                table = positions.setdefault(
                                    (msg.broker, msg.account), [],
                                )
                                table[:] = [p for p in table if p.symbol != msg.symbol]
                                if msg.size:
                                    table.append(msg)
                            trades_send.send_nowait(msg)

                        n.start_soon(_outbox)
                        n.start_soon(_inbox)
                        started = True
                        try:
                            yield client, trades_recv, positions, client.accounts, dialogs
                            # let queued commands (a last cancel...) leave,
                            # the one being sent included, before tearing down
                            out_send.close()
                            with trio.move_on_after(2):
                                await sent_all.wait()
                        finally:
                            n.cancel_scope.cancel()
            except* tractor.RemoteActorError as eg:
                err = eg.exceptions[0]
                if started:
                    raise EMSError(
                        f'the emsd session of {fqme} failed: {remote_reason(err)}'
                    ) from None
                raise EMSError(f'emsd refused the session: {remote_reason(err)}') from None


async def wait_for_status(
    trades: trio.MemoryReceiveChannel,
    oid: str,
    resps: set[str] | str,
    timeout: float = 10.0,
) -> Status:
    """Read `trades` until `oid` reports one of `resps`; return that Status.

    A convenience for scripts and tests; other messages are skipped.
    """
    want = {resps} if isinstance(resps, str) else set(resps)
    with trio.fail_after(timeout):
        async for msg in trades:
            if isinstance(msg, Status) and msg.oid == oid and msg.resp in want:
                return msg
    raise EMSError(f'trades stream ended before {oid} reached {want}')


__all__ = [
    'Bracket', 'EMSError', 'OrderClient', 'OrderFinishedError', 'UnknownOrderError', 'open_ems',
    'wait_for_status',
]
