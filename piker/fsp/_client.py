"""`open_indicators()`: the chart's end of an indicator session.

Spawns the chart's own indicator actor under pikerd (`fsp.<fqme>.<id>`,
one per chart, supervised like any daemon), opens its `serve` context
under a heartbeat, and gives the chart a session that never blocks it:

- `push(delta)` is synchronous: bar deltas wait in a one-slot conflating
  outbox (`Conflator` + `merge`) that a sender task empties, so a chart
  that changes faster than the actor keeps up sends the latest bars, not
  a backlog;
- `results` is a conflating drain buffer of output deltas: the chart
  reads the latest outputs whenever it gets to them (TRACTOR.md rule 9).

Leaving the block cancels the actor (`cancel_service`).
"""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager as acm
from typing import Any

import msgspec
import trio

from ..buffers import Conflator, DrainBuffer
from ..log import get_logger
from ._api import IndicatorError
from ._delta import Delta, merge
from ._select import Selected

log = get_logger('fsp')

MODULE = 'piker.fsp._engine'


class IndicatorSession:
    """What `open_indicators()` yields (see the module doc)."""

    def __init__(self, name: str, info: list[dict[str, Any]], results: DrainBuffer) -> None:
        self.name = name            # the actor's name
        self.info = info            # per indicator: key, name, pane, outputs, levels
        self.results = results
        self._outbox = Conflator(maxlen=1, merge=merge)
        self.pushed = 0

    def push(self, delta: Delta) -> None:
        """Queue a bar delta (`{'ohlc': rows}`); never blocks."""
        self.pushed += 1
        self._outbox.put('ohlc', delta)

    async def _send_loop(self, stream: Any) -> None:
        while await self._outbox.wait():
            await stream.send(self._outbox.pop_oldest().to_msg())


def actor_name(fqme: str) -> str:
    return f'fsp.{fqme}.{uuid.uuid4().hex[:8]}'


async def _decoded(stream: Any) -> AsyncIterator[Delta]:
    async for msg in stream:
        try:
            delta = Delta.from_msg(msg)
        except (msgspec.ValidationError, ValueError) as err:
            log.warning('dropped a malformed indicator delta: %s', err)
            continue
        yield delta


def _out_key(_: Delta) -> str:
    return 'out'


@acm
async def open_indicators(
    fqme: str,
    selected: list[Selected],
    *,
    modules: list[str] | None = None,
    loglevel: str | None = None,
) -> AsyncIterator[IndicatorSession]:
    """An indicator session for the chart of `fqme` (needs a piker runtime:
    `maybe_open_pikerd()`). `IndicatorError` if the actor refuses the
    selection (unknown name, bad parameter, broken user module)."""
    from ..service import (
        DAEMON_MODULES,
        cancel_service,
        maybe_spawn_daemon,
        open_drained_stream,
        open_watched_context,
    )
    from ._engine import serve

    name = actor_name(fqme)
    try:
        async with (
            maybe_spawn_daemon(name, enable_modules=[MODULE, *DAEMON_MODULES],
                               loglevel=loglevel) as portal,
            open_watched_context(
                portal, serve, fqme=fqme,
                selected=[s.to_dict() for s in selected], modules=list(modules or ()),
            ) as (ctx, first),
        ):
            if 'error' in first:
                raise IndicatorError(first['error'])
            async with (
                ctx.open_stream() as stream,
                open_drained_stream(
                    _decoded(stream), policy='conflate', maxlen=1, key=_out_key, merge=merge,
                ) as results,
                trio.open_nursery() as n,
            ):
                session = IndicatorSession(name, first['indicators'], results)
                n.start_soon(session._send_loop, stream)
                try:
                    yield session
                finally:
                    session._outbox.close()
                    n.cancel_scope.cancel()
    finally:
        with trio.move_on_after(5) as cs:
            cs.shield = True
            try:
                await cancel_service(name)
            except Exception as err:  # noqa: BLE001 - best effort: it exits with its chart anyway
                log.info('could not cancel %s: %s', name, err)
