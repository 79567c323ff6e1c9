"""Binance's user data stream: a listenKey and its websocket.

`POST /api/v3/userDataStream` gives a listenKey; `<ws_url>/ws/<key>`
then streams the account's events (`executionReport`,
`outboundAccountPosition`, `balanceUpdate`, `listenKeyExpired`). The key
expires after 60 minutes without a keepalive (`PUT`, every
`KEEPALIVE_S`); Binance cuts the connection after 24 h.

`run_user_stream()` keeps it up by itself (`piker.service.reconnecting`,
same ping/pong watchdog as the market feed) and calls `on_connect()`
after every reconnect (not the first connection): events sent while it
was down are lost, so the caller re-reads the orders it tracks.
`started()` is called once the first connection is up, so a caller that
reads its state after that misses no event.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from ...log import get_logger
from ...service import Backoff, reconnecting
from ._feed import _keepalive, messages
from ._rest import AuthError, BinanceError, Client, IPBanned, NoKeys

log = get_logger('brokers.binance.user')

KEEPALIVE_S = 30 * 60.0


async def _keep_key(client: Client, key: str) -> None:
    while True:
        await trio.sleep(KEEPALIVE_S)
        try:
            await client.keepalive_listen_key(key)
        except BinanceError as err:
            log.warning('listenKey keepalive failed (%s): reconnecting', err)
            return


async def _connect_once(
    client: Client,
    ws_url: str,
    on_event: Callable[[str | bytes], Awaitable[None]],
    on_connect: Callable[[], Awaitable[None]],
    state: dict[str, Any],
) -> None:
    key = await client.new_listen_key()
    url = f'{ws_url.rstrip("/")}/ws/{key}'
    async with open_websocket_url(url) as ws:
        async with trio.open_nursery() as n:
            n.start_soon(_keepalive, ws, 'binance user data')
            keeper = trio.CancelScope()

            async def keep() -> None:
                with keeper:
                    await _keep_key(client, key)
                await ws.aclose()  # a key we cannot extend: start over

            n.start_soon(keep)
            if state['connected']:
                await on_connect()
            else:
                state['connected'] = True
                state['task_status'].started()
            async for raw in messages(ws):
                if '"listenKeyExpired"' in (raw if isinstance(raw, str) else raw.decode()):
                    log.warning('binance listenKey expired: reconnecting')
                    break
                await on_event(raw)
            n.cancel_scope.cancel()
    with trio.CancelScope(shield=True), trio.move_on_after(2):
        try:
            await client.close_listen_key(key)
        except BinanceError:
            pass


async def run_user_stream(
    client: Client,
    ws_url: str,
    on_event: Callable[[str | bytes], Awaitable[None]],
    on_connect: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the user data stream until cancelled (see module doc).

    Key problems (`AuthError`, `NoKeys`, `IPBanned`) are not retried: they
    propagate (before `started()` if the first connection fails so).
    """
    state: dict[str, Any] = {'connected': False, 'task_status': task_status}

    async def once() -> None:
        try:
            await _connect_once(client, ws_url, on_event, on_connect, state)
        except (AuthError, NoKeys, IPBanned):
            raise
        except (BinanceError, OSError, HandshakeError, ConnectionClosed) as err:
            if not state['connected']:
                # the first connection: fail the dialogue, clearly
                raise BinanceError(
                    f'cannot open the Binance user data stream: {type(err).__name__}: {err}'
                ) from None
            raise ConnectionError(str(err)) from None

    await reconnecting(
        once, 'binance user data',
        backoff=Backoff(first=0.1, cap=5.0),
        retry_on=(OSError, HandshakeError, ConnectionClosed),
    )


__all__ = ['KEEPALIVE_S', 'run_user_stream']
