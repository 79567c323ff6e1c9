"""emsd's intake of client commands: decode, check, then the dialog table.

Every command is decoded once, here. An order (new, or a modify) is
checked before its dialog sees it - a known backend and account, a
reachable venue, the market's feed for a dark order (or its price for a
live one), then the risk gate last, with no checkpoint between the gate
and the table, so an accepted order is counted at once. A reduce-only
order is sized down to the position here (or refused: flat, or it would
grow or flip it; `_order_types.reduce_only_fit`; a bracket child's is
sized at release instead), a group member must fit its group
(`_groups.GroupBook.check`), and a time in force the
order's live venue cannot honour is refused before anything is sent
(`TIME_IN_FORCE` of the backend; the paper engine honours all). A refusal is an
`error` Status (a refused modify leaves the order working as it was) and
is kept in the journal's history. Cancels are never checked.
"""
from __future__ import annotations

import math
import time
from typing import Any

from ..brokers import get_brokermod
from ..log import get_logger
from ._dark_feeds import DarkFeeds
from ._dialogs import Dialog, DialogTable, Effect
from ._effects import Effects
from ._fanout import ClientConn, Clients
from ._messages import (
    Cancel,
    MessageError,
    Order,
    Status,
    decode_client_msg,
    error_status,
)
from ._order_types import reduce_only_fit
from ._relays import Relays
from ._risk import RiskGate

__all__ = ['Intake']

log = get_logger(__name__)


class Intake:
    """Client commands into the dialog table."""

    def __init__(
        self,
        dialogs: DialogTable,
        risk: RiskGate,
        clients: Clients,
        fx: Effects,
        relays: Relays,
        dark: DarkFeeds,
    ) -> None:
        self.dialogs = dialogs
        self.risk = risk
        self.clients = clients
        self.fx = fx
        self.relays = relays
        self.dark = dark

    async def on_client_msg(self, client: ClientConn, raw: Any) -> None:
        """Validate, route and apply one client command."""
        await self.on_client_msgs(client, [raw])

    async def on_client_msgs(self, client: ClientConn, raws: list[Any]) -> None:
        """Validate, route and apply a client's commands (one frame: a
        batch), in order, as one batch of effects: one journal batch, one
        frame per venue, one publish. A command answered here (bad,
        refused, or for an ended dialog) first lets the batch so far go
        out, so the client hears each dialog's news in order."""
        batch = _Batch(self.fx, client)
        for raw in raws:
            try:
                await self._take(batch, raw)
            except Exception:
                log.exception('failed to handle client message %r', raw)
                await batch.answer(error_status(raw, 'internal error handling this message'))
        await batch.flush()

    async def _take(self, batch: _Batch, raw: Any) -> None:
        """One command into `batch` (or answered)."""
        client = batch.client
        try:
            msg = decode_client_msg(raw)
        except MessageError as err:
            log.warning('bad message from client %s: %s', client.id, err.reason)
            await batch.answer(error_status(raw, err.reason))
            return
        ended = self.dialogs.get(msg.oid)
        if ended is not None and ended.terminal:
            await batch.flush()
            self._on_finished(client, msg, ended)
            return
        note = ''
        if isinstance(msg, Order):
            accepted = await self._accept(batch, msg)
            if accepted is None:
                return
            msg, note = accepted
        # a new dialog is the client's, at its mode's venue; a restored one
        # is claimed by its first modifier or canceller (who hears the end)
        effects = self.dialogs.on_client_msg(msg, owner=client.id, route=client.mode)
        if note:  # e.g. sized down: the order's first Status says so
            first = next((e for e in effects if isinstance(e, Status) and e.oid == msg.oid), None)
            if first is not None and not first.reason:
                first.reason = note
        # even with no effects: a stashed modify/cancel changed the dialog
        batch.add(raw, effects)

    async def _accept(self, batch: _Batch, order: Order) -> tuple[Order, str] | None:
        """Check `order`: `(order as taken, note)`, or None if refused (and
        answered here). A bracket child (`parent` set) is reduce-only
        checked and sized at release, not here: its entry may not have
        filled yet (`DarkFeeds._release_problem`)."""
        client = batch.client
        problem = await self._check(client, order) or self.fx.groups.check(order, client.mode)
        note = ''
        if not problem and order.reduce_only and order.parent is None:
            size, note = reduce_only_fit(
                order, *self.risk.position(order.broker, order.account, order.symbol),
            )
            if size <= 0:
                problem, note = note, ''
            elif size != order.size:
                order = order.copy({'size': size})
        if not problem:
            # last, and with no checkpoint before the dialog table:
            # an accepted order is counted at once
            live = self.dialogs.get(order.oid)
            refusal = self.risk.check(
                order, existing=live.req if live is not None else None,
                session=client.id, mark=self.dark.mark(order.symbol),
            )
            problem = refusal.reason if refusal is not None else ''
        if not problem:
            return order, note
        log.warning('order %s refused: %s', order.oid, problem)
        live = self.dialogs.get(order.oid)
        if live is not None and not live.terminal:
            # a refused modify: the order works on as it was
            reply = live.snapshot().copy({'reason': f'modify refused: {problem}'})
        else:
            reply = error_status(order, problem)
        await batch.flush()
        self.fx.journal_refusal(reply, client.mode)
        client.push(reply)
        return None

    async def _check(self, client: ClientConn, order: Order) -> str:
        """Why emsd cannot take `order` ('' if it can)."""
        broker = order.broker
        try:
            get_brokermod(broker)
        except Exception as err:  # NoSuchBackend: lists the known ones
            return str(err)
        existing = self.dialogs.get(order.oid)
        if existing is not None and existing.fqme != order.symbol:
            return (f'modify of {order.oid} cannot change its market '
                    f'{existing.fqme!r} to {order.symbol!r}')
        mode = (existing.route if existing is not None else None) or client.mode
        if problem := _tif_problem(order, mode, broker):
            return problem
        if order.action != 'alert':
            try:
                relay = await self.relays.ensure(broker, mode)
            except Exception as err:
                return str(err)
            if order.account not in relay.accounts:
                return (f'unknown account {order.account!r} for {broker} '
                        f'({mode}): use one of {relay.accounts}')
        if order.exec_mode == 'dark' or order.action == 'alert':
            try:
                feed = await self.dark.ensure(order.symbol)
            except Exception as err:
                return str(err)
            if order.type == 'trailing_stop' and order.price == 0 and not math.isfinite(feed.last):
                return (f'a trailing_stop from the market (price 0) needs a market price: '
                        f'{order.symbol} has none yet; give a trigger price')
        else:
            await self.dark.await_mark(order)
        return ''

    def _on_finished(self, client: ClientConn, msg: Order | Cancel, dialog: Dialog) -> None:
        """A modify, re-send or cancel of a dialog that has ended.

        Never a second terminal Status: a client that hears the dialog (it
        placed it, or watches its market) has its answer in the dialog's
        terminal Status, sent already or on its way (the request raced the
        end; `OrderClient` sends none for orders it saw end). Any
        other client gets an `error`: the first and only end it hears of
        that oid, kept out of the dialog's journal history.
        """
        what = 'cancel' if isinstance(msg, Cancel) else 'order'
        if self.clients.hears(client, dialog.oid, dialog.fqme):
            log.info('%s for finished dialog %s (%s) from client %s dropped: '
                     'its end answers it', what, dialog.oid, dialog.phase.value, client.id)
            return
        log.warning('%s for finished dialog %s (%s) refused', what, dialog.oid,
                    dialog.phase.value)
        client.push(error_status(msg, (
            f'order {dialog.oid} is already {dialog.phase.value}: '
            + ('nothing to cancel' if what == 'cancel' else 'a new order needs a new oid')
        )))


class _Batch:
    """The effects of one client frame's commands, carried out together."""

    def __init__(self, fx: Effects, client: ClientConn) -> None:
        self.fx = fx
        self.client = client
        self.effects: list[Effect] = []
        self.raws: list[Any] = []

    def add(self, raw: Any, effects: list[Effect]) -> None:
        self.effects += effects
        self.raws.append(raw)

    async def flush(self) -> None:
        """Carry out what the batch holds so far (a failure, a bug, is
        answered for each of its commands)."""
        effects, raws = self.effects, self.raws
        self.effects, self.raws = [], []
        if not raws:
            return
        try:
            await self.fx.execute(effects, origin=self.client)
        except Exception:
            log.exception('failed to carry out client commands %r', raws)
            for raw in raws:
                self.client.push(error_status(raw, 'internal error handling this message'))

    async def answer(self, status: Status) -> None:
        """Tell the client `status`, after the batch so far."""
        await self.flush()
        self.client.push(status)


def _tif_problem(order: Order, mode: str, broker: str) -> str:
    """Why `order`'s time in force cannot be had ('' if it can).

    gtd is emsd's own (any venue); ioc/fok are the venue's: the paper
    engine honours both, a live backend what its `TIME_IN_FORCE` lists
    (gtc only if it says nothing).
    """
    if order.tif == 'gtd':
        if order.expires_ns is not None and order.expires_ns <= time.time_ns():
            when = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(order.expires_ns / 1e9))
            return f'gtd expiry {when} is in the past'
        return ''
    if order.tif == 'gtc' or mode != 'live':
        return ''
    tifs = getattr(get_brokermod(broker), 'TIME_IN_FORCE', ('gtc',))
    if order.tif not in tifs:
        return (f'{broker} (live) cannot honour time in force {order.tif!r}: '
                f'it supports {", ".join(tifs)} (and emsd\'s gtd)')
    return ''
