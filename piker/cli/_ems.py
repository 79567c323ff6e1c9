"""`piker ems ...`: emsd's kill switch and risk status.

    piker ems halt [--reason R] [--cancel-all]   refuse every new order/modify
    piker ems reduce-only [--reason R]           only orders that shrink a position
    piker ems resume                             back to active
    piker ems status [--json]                    state, limits, counts, refusals

The switch is an RPC to the running emsd (spawned under pikerd if it is not
up yet), effective for the very next order, and recorded in the config dir
so a restarted emsd keeps it. With no pikerd running, `halt`/`resume`/
`reduce-only` record the switch only, and emsd starts in that state.
Limits are configured in `conf.toml` (`[ems.risk]`, see
`piker.clearing._risk`).
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import typer

from ._app import app

ems_app = typer.Typer(
    name='ems',
    help='Trading state (kill switch) and risk limits of emsd.',
    no_args_is_help=True,
)
app.add_typer(ems_app, name='ems')

# spawning emsd on first use takes ~1 s; a loaded box may need more
RPC_TIMEOUT = 30.0

_STATE_STYLE = {'active': 'bold green', 'reduce_only': 'bold yellow', 'halted': 'bold red'}


def _call_emsd(rpc: str, **kwargs: Any) -> Any:
    """Run `piker.clearing._ems_admin.<rpc>(**kwargs)` in emsd; its result.

    Raises `PikerdNotRunning` when no pikerd answers, `RuntimeError` with
    the remote reason when emsd refuses.
    """
    import tractor
    import trio

    from ..clearing import _ems_admin
    from ..clearing._client import remote_reason
    from ..clearing._daemons import EMSD
    from ..service import connect_pikerd, open_daemon

    func: Callable[..., Awaitable[Any]] = getattr(_ems_admin, rpc)

    async def main() -> Any:
        async with connect_pikerd():
            with trio.fail_after(RPC_TIMEOUT):
                async with open_daemon(EMSD.spec()) as portal:
                    try:
                        return await portal.run(func, **kwargs)
                    except tractor.RemoteActorError as err:
                        reason = remote_reason(err)
                        if 'ModuleNotExposed' in reason or 'ModuleNotExposed' in str(err):
                            reason = ('the running emsd was started without its admin '
                                      'module (an old piker?): restart pikerd')
                        raise RuntimeError(reason) from None

    return trio.run(main)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f'error: {message}', err=True)
    raise typer.Exit(code)


def _switch(state: str, reason: str, cancel_all: bool = False) -> None:
    import trio

    from ..config import ConfigError
    from ..service import PikerdNotRunning, ServiceError

    try:
        result = _call_emsd('set_trading_state', state=state, reason=reason,
                            cancel_all=cancel_all)
    except PikerdNotRunning as err:
        if cancel_all:
            _fail(f'{err}: nothing to cancel, and --cancel-all needs a running emsd')
        _record_offline(state, reason)
        return
    except trio.TooSlowError:
        _fail(f'no answer from emsd within {RPC_TIMEOUT:.0f}s')
    except (RuntimeError, ServiceError, ConfigError, ValueError) as err:
        _fail(str(err))
    previous, now = result['previous'], result['state']
    change = f'{previous} -> {now}' if previous != now else f'{now} (unchanged)'
    typer.echo(f'trading state: {change}', err=True)
    if cancel_all:
        typer.echo(f'cancel requested for {len(result["canceled"])} working order(s)',
                   err=True)


def _record_offline(state: str, reason: str) -> None:
    """No pikerd: record the switch; emsd starts in it."""
    from ..clearing._risk import TradingState
    from ..clearing._risk_state import SavedState, save_state
    from ..config import ConfigError, load_conf

    try:
        conf_state = TradingState(load_conf().ems.risk.state)
    except ConfigError as err:
        _fail(str(err))
    save_state(SavedState(state=TradingState(state), conf_state=conf_state,
                          since=time.time(), reason=reason))
    typer.echo(f'no pikerd running: recorded {state}; emsd will start {state}', err=True)


def _offline_report() -> dict[str, Any]:
    """No emsd: the state and limits it would start with."""
    from ..clearing._risk_state import STATE_FILE, open_risk_gate
    from ..config import ConfigError, load_conf

    try:
        gate = open_risk_gate(load_conf().ems.risk)
    except ConfigError as err:
        _fail(str(err))
    report = gate.report().to_builtins()
    report['state_file'] = STATE_FILE
    report['working'] = 0
    return report


def _reason_opt() -> Any:
    return typer.Option('', '--reason', '-r', help='why (shown by `piker ems status` '
                        'and in refusals)')


@ems_app.command()
def halt(
    reason: str = _reason_opt(),
    cancel_all: bool = typer.Option(
        False, '--cancel-all', help='also cancel every working order (alerts stay)',
    ),
) -> None:
    """Kill switch: refuse every new order and modify (cancels still work)."""
    _switch('halted', reason, cancel_all)


@ems_app.command('reduce-only')
def reduce_only(reason: str = _reason_opt()) -> None:
    """Only accept orders that shrink a position."""
    _switch('reduce_only', reason)


@ems_app.command()
def resume(reason: str = _reason_opt()) -> None:
    """Back to normal trading (the configured limits still apply)."""
    _switch('active', reason)


def _num(value: Any) -> str:
    if value is None:
        return '-'
    if isinstance(value, float):
        if not math.isfinite(value):
            return 'no limit' if value > 0 else str(value)
        return f'{value:.10f}'.rstrip('0').rstrip('.')
    return str(value)


def render_status(report: dict[str, Any]) -> list[Any]:
    """The rich renderables `piker ems status` prints."""
    from rich.markup import escape
    from rich.table import Table

    state = report['state']
    style = _STATE_STYLE.get(state, 'white')
    since = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(report['since']))
    head = Table.grid(padding=(0, 2))
    head.add_row('state', f'[{style}]{state}[/{style}] since {since}')
    if report.get('reason'):
        head.add_row('reason', escape(report['reason']))
    head.add_row('working orders', str(report.get('working', 0)))
    lim = report['limits']
    rate = lim.get('max_orders_per_sec') or 0
    burst = lim.get('order_burst') or max(1, math.ceil(rate))
    head.add_row('order rate', f'{_num(rate)}/s per session, burst {burst}' if rate
                 else 'no throttle')

    limits = Table(title='limits (checked per account and per market)', title_justify='left')
    for col in ('scope', 'max_order_size', 'max_notional', 'max_open_orders'):
        limits.add_column(col, justify='left' if col == 'scope' else 'right')
    fields = ('max_order_size', 'max_notional', 'max_open_orders')
    limits.add_row('default', *(_num(lim.get(f)) for f in fields))
    for name, table in sorted(lim.get('accounts', {}).items()):
        limits.add_row(f'account {escape(name)}', *(_num(table.get(f)) for f in fields))
    for name, table in sorted(lim.get('fqmes', {}).items()):
        limits.add_row(escape(name), *(_num(table.get(f)) for f in fields))

    out: list[Any] = [head, limits]
    counts = Table(title='working orders', title_justify='left')
    counts.add_column('scope')
    counts.add_column('orders', justify='right')
    for name, n in report.get('open_by_account', {}).items():
        counts.add_row(f'account {escape(name)}', str(n))
    for name, n in report.get('open_by_fqme', {}).items():
        counts.add_row(escape(name), str(n))
    if counts.row_count:
        out.append(counts)
    if report.get('refused'):
        refused = Table(title='refusals since emsd start', title_justify='left')
        refused.add_column('limit')
        refused.add_column('count', justify='right')
        for name, n in sorted(report['refused'].items()):
            refused.add_row(name, str(n))
        out.append(refused)
    return out


@ems_app.command()
def status(
    as_json: bool = typer.Option(False, '--json', help='print the raw report as JSON'),
) -> None:
    """Show the trading state, the limits, working-order counts and refusals."""
    import trio
    from rich.console import Console

    from ..service import PikerdNotRunning, ServiceError

    try:
        report = _call_emsd('risk_status')
    except PikerdNotRunning as err:
        typer.echo(f'{err}\nshowing what emsd would start with:', err=True)
        report = _offline_report()
    except trio.TooSlowError:
        _fail(f'no answer from emsd within {RPC_TIMEOUT:.0f}s')
    except (RuntimeError, ServiceError) as err:
        _fail(str(err))
    if as_json:
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    console = Console(highlight=False)
    for part in render_status(report):
        console.print(part)


__all__ = ['ems_app', 'render_status']
