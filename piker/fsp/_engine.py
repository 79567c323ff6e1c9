"""The indicator actor: one per chart, computing that chart's indicators.

Why an actor: an indicator is user code over up to millions of bars; run
in the chart's process, a slow one would freeze the window. Here the
chart only sends bar deltas and draws the output deltas it gets back.

`Engine` is the pure part (bars in, outputs out, no I/O). `serve` is the
endpoint the chart opens (`open_indicators()`): it reads its inbound bar
deltas through a conflating drain buffer (a burst of ticks while an
indicator computes folds into one delta: latest state, nothing lost),
computes in a worker thread (the actor's trio loop stays free for the
drain and the heartbeat) and streams the output deltas back.

An indicator that raises is switched off with its error reported to the
chart (`Delta.errors`); the others carry on. The actor ends itself when
its chart goes away.
"""
from __future__ import annotations

import traceback
from typing import Any

import msgspec
import numpy as np
import tractor
import trio

from ..log import get_logger
from ..ohlc import OHLC_DTYPE
from ._api import IndicatorError
from ._delta import Delta, Growing, merge
from ._select import Selected, load_module

log = get_logger('fsp')

BARS = 'ohlc'


class Engine:
    """The bars of one chart and the outputs of its indicators."""

    def __init__(self, selected: list[Selected]) -> None:
        self.selected = list(selected)
        self.ohlc = Growing(OHLC_DTYPE)
        self.outs: dict[str, Growing] = {
            s.key: Growing(s.indicator.dtype) for s in self.selected
        }
        self.params = {s.key: s.indicator.params(s.params) for s in self.selected}
        self.errors: dict[str, str] = {}
        self.updates = 0

    def describe(self) -> list[dict[str, Any]]:
        """What the chart needs to draw each indicator."""
        return [
            {
                'key': s.key, 'name': s.name, 'pane': s.indicator.pane,
                'outputs': list(s.indicator.outputs), 'levels': list(s.indicator.levels),
            }
            for s in self.selected
        ]

    def apply(self, bars: Delta) -> Delta:
        """Apply a bar delta; return the output delta it causes."""
        rows = bars.arrays[BARS]
        ohlc = self.ohlc.apply(np.asarray(rows, dtype=OHLC_DTYPE), bars.start)
        n, start = len(ohlc), min(bars.start, len(ohlc))
        arrays: dict[str, np.ndarray] = {}
        new_errors: dict[str, str] = {}
        for sel in self.selected:
            key = sel.key
            out_buf = self.outs[key]
            ind = sel.indicator
            if key in self.errors:
                continue
            out = out_buf.resize(n)
            try:
                ind.fn(ohlc, out, start, **self.params[key])
            except Exception as err:  # noqa: BLE001 - user code: switch it off, keep the rest
                msg = f'{type(err).__name__}: {err}'
                log.error('indicator %s failed, switched off: %s\n%s',
                          key, msg, traceback.format_exc())
                self.errors[key] = new_errors[key] = msg
                continue
            # the plotted outputs only (state stays here), as a packed copy
            rows = np.empty(n - start, dtype=[(o, 'f8') for o in ind.outputs])
            for o in ind.outputs:
                rows[o] = out[o][start:n]
            arrays[key] = rows
        self.updates += 1
        return Delta(start, arrays, new_errors)


def _bars_key(_: Delta) -> str:
    return BARS


async def _decoded(stream: Any) -> Any:
    """The stream's bar deltas, decoded once; a malformed one is logged and skipped."""
    async for msg in stream:
        try:
            delta = Delta.from_msg(msg)
            rows = delta.arrays[BARS]
            if rows.dtype.names != OHLC_DTYPE.names:
                raise ValueError(f'bars with fields {rows.dtype.names}, not {OHLC_DTYPE.names}')
        except (msgspec.ValidationError, ValueError, KeyError) as err:
            log.warning('dropped a malformed bar delta: %s', err)
            continue
        yield delta


@tractor.context
async def serve(
    ctx: tractor.Context,
    fqme: str,
    selected: list[dict],
    modules: list[str] | None = None,
) -> None:
    """Compute `selected` over the bars the chart of `fqme` streams."""
    from ..service import exit_actor_soon, open_drained_stream, watch_peer

    try:
        for ref in modules or ():
            load_module(ref)
        sels = [msgspec.convert(s, Selected) for s in selected]
        engine = Engine(sels)
        # check every parameter before saying yes
        for s in sels:
            s.indicator.params(s.params)
    except (IndicatorError, msgspec.ValidationError) as err:
        await ctx.started({'error': str(err)})
        return
    await ctx.started({'indicators': engine.describe()})
    async with watch_peer(ctx, cancel_endpoint=False) as watch:
        async with (
            ctx.open_stream() as stream,
            open_drained_stream(
                _decoded(stream), policy='conflate', maxlen=1, key=_bars_key, merge=merge,
            ) as inbox,
        ):
            async for bars in inbox:
                try:
                    out = await trio.to_thread.run_sync(engine.apply, bars, cancellable=True)
                except (ValueError, TypeError, IndexError) as err:
                    log.warning('bar delta not applied (%s): skipped', err)
                    continue
                await stream.send(out.to_msg())
    if watch.lost:
        log.info('the chart of %s went away: indicator actor exits', fqme)
        exit_actor_soon()
