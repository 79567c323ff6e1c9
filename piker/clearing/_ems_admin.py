"""emsd's admin RPC: the kill switch and risk status (`piker ems ...`).

These functions run inside emsd (it is spawned with this module in its
`enable_modules`, see `_daemons.EMSD`) and act on its one `Emsd`:

- `set_trading_state(state, reason='', cancel_all=False)`: switch to
  `active`, `reduce_only` or `halted`, effective for the very next order,
  modify or dark trigger, and recorded so a restarted emsd keeps it;
  `cancel_all=True` also cancels every working order (alerts stay: they
  trade nothing).
- `cancel_all_orders(fqme=None)`: cancel every working order (of `fqme`).
- `risk_status()`: the state, limits, counts and refusals.
- `flush_journal()`: wait until every event so far is in the journal
  (emsd commits it a moment after publishing, see `JournalWriter`).

Every client subscribed to an affected market sees the resulting
`Status` messages as usual.
"""
from __future__ import annotations

from typing import Any

from ..log import get_logger
from ._ems import current
from ._risk_state import STATE_FILE, switch_state

__all__ = [
    'cancel_all_orders', 'ems_state', 'flush_journal',
    'risk_status', 'set_trading_state',
]

log = get_logger(__name__)



async def cancel_all_orders(fqme: str | None = None) -> list[str]:
    """RPC: cancel every working buy/sell dialog (of `fqme`); their oids."""
    emsd = await current()
    fqme = fqme.lower() if fqme else None
    oids: list[str] = []
    effects: list[Any] = []
    for dialog in emsd.dialogs.active(fqme):
        if dialog.req.action == 'alert':
            continue
        oids.append(dialog.oid)
        effects += emsd.dialogs.on_cancel(dialog.oid)
    if effects:
        await emsd.fx.execute(effects)
    log.warning('cancelled %d working order(s)%s', len(oids), f' of {fqme}' if fqme else '')
    return oids


async def set_trading_state(
    state: str,
    reason: str = '',
    cancel_all: bool = False,
) -> dict[str, Any]:
    """RPC: switch the trading state now; see the module doc.

    Returns `{'state', 'previous', 'canceled'}`. An unknown state raises
    `ValueError` naming the valid ones.
    """
    risk = (await current()).risk
    previous = switch_state(risk, state, reason)
    log.warning('trading state %s -> %s%s', previous.value, risk.state.value,
                f' ({reason})' if reason else '')
    canceled = await cancel_all_orders() if cancel_all else []
    return {
        'state': risk.state.value,
        'previous': previous.value,
        'canceled': canceled,
    }


async def risk_status() -> dict[str, Any]:
    """RPC: the gate's `RiskReport` plus where the state is recorded."""
    risk = (await current()).risk
    report = risk.report().to_builtins()
    report['state_file'] = STATE_FILE
    report['working'] = risk.working()
    return report


async def flush_journal() -> int:
    """RPC: return once everything emsd published is committed to its
    journal (readers of the db then see it all); the batches written so far."""
    writer = (await current()).fx.writer
    if writer is None:
        return 0
    await writer.flush()
    return writer.batches


async def ems_state() -> dict[str, Any]:
    """RPC: what emsd is doing now, for tests, benchmarks and the curious.

    `restored`: the journal's dialogs are back and re-armed (set after a
    (re)spawn without waiting for any client); `armed`: oids in the dark
    book; `clients`: the order clients connected now (a vanished one,
    SIGKILL included, leaves within ~0.1 s; its orders stay working);
    `venues`: each trades relay's state ('up', 'syncing' or 'down: why').
    """
    emsd = await current()
    writer = emsd.fx.writer
    return {
        'restored': emsd.restored.is_set(),
        'armed': sorted(e.oid for e in emsd.dark.book.entries()),
        'clients': [
            {'id': c.id, 'mode': c.mode, 'fqmes': sorted(c.fqmes),
             'queued': c.send_ch.statistics().current_buffer_used}
            for c in emsd.clients.conns.values()
        ],
        'venues': {r.venue: r.state for r in emsd.relays.relays.values()},
        'journal_backlog': writer.backlog if writer is not None else 0,
    }
