"""`piker order ...`: place, cancel and list orders from the shell.

    piker order buy   FQME SIZE PRICE [--dark] [--account A] [--mode M]
    piker order sell  FQME SIZE PRICE [--dark] [--account A] [--mode M]
          [--type stop|stop_limit|take_profit|trailing_stop] [--trigger P]
          [--trail 0.5%|5] [--tif ioc|fok|gtd:2026-12-31T00:00Z] [--reduce-only]
          (how PRICE reads with each type: `_order_opts`)
          [--tp P] [--sl P]   (a bracket: take-profit/stop-loss children)
    piker order alert FQME PRICE
    piker order cancel OID... | --all [--fqme F]    (OID: a unique prefix will do)
    piker order ls [--fqme F] [--full]               (oids by 8-char prefix)

Every command talks to a **running** pikerd (`piker pikerd` in another
terminal) and never starts one in-process: an order outlives the command
that placed it only because emsd and the paper engine live under pikerd,
so starting a private tree here would silently kill the order on exit.
With no pikerd the commands say so and how to start one.

`buy`/`sell`/`alert` print the dialog's statuses (stderr) until the order
rests (`open`, `dark_open`) or ends, then print the oid alone on stdout
(`OID=$(piker order buy ...)` works; a bracket prints `ENTRY TP SL`, and
waits for its children to be `held` too); the exit code is 1 on an `error`
status or a timeout. The EMS handshake needs a market, so `cancel` and
`ls` open their session on `--fqme` (default `btcusdt.sim`); the handshake
returns every active dialog whatever its market, and `cancel` opens one
more session per market of the dialogs it cancels so it sees their
results.
"""
from __future__ import annotations

import math
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack
from contextlib import asynccontextmanager as acm
from typing import TYPE_CHECKING, Any, Literal

import typer

from ._app import app
from ._order_opts import (
    REDUCE_HELP,
    TIF_HELP,
    TRAIL_HELP,
    TRIGGER_HELP,
    TYPE_HELP,
    OptionError,
    order_fields,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ..clearing import Status

order_app = typer.Typer(
    name='order',
    help='Place, cancel and list orders through emsd (needs `piker pikerd`).',
    no_args_is_help=True,
)
app.add_typer(order_app, name='order')

DEFAULT_FQME = 'btcusdt.sim'
# statuses after which `buy`/`sell`/`alert` stop watching: the order rests
RESTING = frozenset({'open', 'dark_open', 'held'})
# a session that cannot be opened in this long means something is wrong
# (first use spawns emsd, the paper engine and brokerd: ~2 s)
CONNECT_TIMEOUT = 30.0

_STYLE = {
    'pending': 'yellow', 'open': 'cyan', 'dark_open': 'cyan',
    'dark_triggered': 'magenta', 'alert_triggered': 'magenta',
    'fill': 'green', 'closed': 'bold green', 'canceled': 'bold yellow',
    'expired': 'bold yellow', 'error': 'bold red',
}

Outcome = tuple[int, str]  # (exit code, message for stderr; '' = none)


# ---- formatting (pure) -------------------------------------------------

def fmt_num(value: float | None) -> str:
    """A float without float noise or trailing zeros: 65000.1, 0.01, 3."""
    if value is None or not math.isfinite(value):
        return '-'
    text = f'{value:,.10f}'.rstrip('0').rstrip('.')
    return '0' if text in ('-0', '') else text


def status_line(st: Status) -> str:
    """One human line per `Status` (rich markup)."""
    from rich.markup import escape

    style = _STYLE.get(st.resp, 'white')
    head = f'[{style}]{st.resp:<15}[/{style}]'
    req = st.req
    if st.resp == 'fill':
        fill = st.brokerd_msg or {}
        body = (f'{fmt_num(fill.get("size"))} @ {fmt_num(fill.get("price"))}  '
                f'(filled {fmt_num(st.filled)}, remaining {fmt_num(st.remaining)})')
    elif st.resp == 'error':
        body = st.reason or 'rejected'
    elif req is not None:
        what = 'alert' if req.action == 'alert' else f'{req.action} {fmt_num(req.size)}'
        body = (f'{what} {req.symbol} @ {fmt_num(req.price)} {req.exec_mode} '
                f'[{req.account}]')
        if req.type != 'limit':
            body += f'  {type_text(req)} trigger {fmt_num(st.trigger)}'
        if req.tif != 'gtc' or req.reduce_only:
            body += f'  {tif_text(req)}'
        if st.filled:
            body += f'  filled {fmt_num(st.filled)}'
        if st.reason:
            body += f'  ({st.reason})'
    else:
        body = st.reason
    return f'{head} {st.oid[:8]}  {escape(body)}'


def type_text(req: Any) -> str:
    """An order's type, with its limit or trail: 'stop_limit 94.5', 'trailing_stop 0.5%'."""
    if req.type == 'stop_limit':
        return f'stop_limit {fmt_num(req.limit)}'
    if req.type == 'trailing_stop' and req.trail is not None:
        unit = '%' if req.trail.unit == 'pct' else ' ticks'
        return f'trailing_stop {fmt_num(req.trail.amount)}{unit}'
    return req.type


def tif_text(req: Any) -> str:
    """An order's time in force (gtd with its UTC expiry) and reduce-only."""
    import time

    tif = req.tif
    if tif == 'gtd' and req.expires_ns:
        tif = 'gtd ' + time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime(req.expires_ns / 1e9))
    return tif + (' reduce-only' if req.reduce_only else '')


def dialogs_table(
    dialogs: dict[str, Status], fqme: str | None = None, full_oids: bool = False,
) -> Table:
    """The active dialogs (of `fqme`) as a rich table, by last update.

    oids are shown by their first 8 characters (as in status lines; `cancel`
    takes any unique prefix) unless `full_oids`."""
    from rich.markup import escape
    from rich.table import Table

    from ._order_groups import grouped, grouped_rows

    groups = grouped(dialogs)
    title = f'active orders{f" on {fqme}" if fqme else ""}'
    table = Table(title=title, title_justify='left')
    table.add_column('oid', no_wrap=True, overflow='fold')
    for col in ('fqme', 'action', 'exec', 'type', 'price', 'trigger', 'size', 'filled',
                'tif', 'status', 'account'):
        justify = 'right' if col in ('price', 'trigger', 'size', 'filled') else 'left'
        table.add_column(col, justify=justify)
    if groups:  # brackets: children under their entry, armed size, oco id
        table.add_column('armed', justify='right')
        table.add_column('oco', no_wrap=True)
    for st, depth in grouped_rows(dialogs):
        req = st.req
        if req is None or (fqme and req.symbol != fqme):
            continue
        style = _STYLE.get(st.resp, 'white')
        oid = st.oid if full_oids else st.oid[:8]
        extra = [fmt_num(st.armed) if st.armed is not None else '',
                 (req.oco if full_oids else req.oco[:8]) if req.oco else ''] if groups else []
        table.add_row(
            f'  └ {oid}' if depth else oid, req.symbol, req.action, req.exec_mode,
            type_text(req), fmt_num(req.price), fmt_num(st.trigger),
            fmt_num(req.size), fmt_num(st.filled), tif_text(req),
            f'[{style}]{st.resp}[/{style}]', escape(req.account), *extra,
        )
    return table


def resolve_oids(given: list[str], active: Iterable[str]) -> tuple[list[str], str]:
    """Full oids for `given` oids or unique prefixes of `active` ones;
    `([], error)` if one matches none or several."""
    active = list(active)
    found: list[str] = []
    unknown: list[str] = []
    for oid in given:
        matches = [oid] if oid in active else [a for a in active if a.startswith(oid)]
        if len(matches) > 1:
            return [], f'error: {oid!r} is ambiguous: {", ".join(m[:13] for m in matches)}...'
        if not matches:
            unknown.append(oid)
        else:
            found.append(matches[0])
    if unknown:
        return [], (f'error: no active order {", ".join(unknown)} '
                    '(already filled or cancelled? see `piker order ls`)')
    return list(dict.fromkeys(found)), ''


def _console(stderr: bool = False) -> Console:
    from rich.console import Console
    # soft_wrap: a status line is one line, however narrow the terminal
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


# ---- running a command in a client of the running pikerd ----------------

def _user_errors() -> tuple[type[BaseException], ...]:
    from ..brokers import BrokerError
    from ..clearing import EMSError, UnknownOrderError
    from ..config import ConfigError
    from ..service import ServiceError
    return (BrokerError, ConfigError, EMSError, ServiceError, UnknownOrderError,
            ValueError)


def _run(body: Callable[[], Awaitable[Outcome]], loglevel: str | None) -> None:
    """Run `body` as a client of the running pikerd; exit with its outcome.

    Errors the user can act on become `error: ...` and exit 1; they are
    caught *inside* the actor runtime so tractor does not log them as a
    crashed root actor. Ctrl-C / SIGTERM stop the wait (exit 130); orders
    already sent keep working in emsd. A failure while *disconnecting*, once
    the command is done, is a warning: the user's request already happened.
    """
    import trio

    from ..service import PikerdNotRunning, connect_pikerd

    done: list[Outcome] = []

    async def main() -> Outcome:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
            async with connect_pikerd(loglevel=loglevel):
                outcome: Outcome = (130, 'interrupted: orders already sent keep '
                                    'working (`piker order ls`)')
                async with trio.open_nursery() as n:

                    async def _on_signal() -> None:
                        async for _ in sigs:
                            n.cancel_scope.cancel()
                            return

                    n.start_soon(_on_signal)
                    try:
                        outcome = await body()
                    except _user_errors() as err:
                        outcome = (1, f'error: {err}')
                    except trio.TooSlowError:
                        outcome = (1, f'error: no answer from emsd within '
                                   f'{CONNECT_TIMEOUT:.0f}s')
                    n.cancel_scope.cancel()
                done.append(outcome)
                return outcome

    try:
        code, message = trio.run(main)
    except PikerdNotRunning as err:
        code, message = 1, (
            f'error: {err}.\n`piker order` needs a running pikerd so that orders '
            'outlive this command: run `piker pikerd` in another terminal.'
        )
    except _user_errors() as err:
        code, message = 1, f'error: {err}'
    except Exception as err:
        if not done:
            raise
        code, message = done[0]
        lines = [ln for ln in str(err).splitlines() if ln.strip()]
        typer.echo(f'warning: the command completed but disconnecting from pikerd '
                   f'failed: {lines[-1].strip() if lines else repr(err)}', err=True)
    if message:
        typer.echo(message, err=True)
    if code:
        raise typer.Exit(code)


def _check_mode(mode: str, fqme: str) -> None:
    """Fail early (exit 2) on a mode the market's backend cannot serve."""
    from ..accounting import unpack_fqme
    from ..brokers import get_brokermod

    if mode not in ('paper', 'live'):
        typer.echo(f"error: --mode must be 'paper' or 'live', got {mode!r}", err=True)
        raise typer.Exit(2)
    try:
        broker = unpack_fqme(fqme)[0]
        mod = get_brokermod(broker)
    except _user_errors() as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(2) from None
    if mode == 'live' and not hasattr(mod, 'trades_dialogue'):
        typer.echo(f'error: backend {broker!r} has no live trading: use --mode paper',
                   err=True)
        raise typer.Exit(2)
    # a live backend that cannot trade now (e.g. no API keys) says why
    why = getattr(mod, 'live_unavailable', lambda: None)() if mode == 'live' else None
    if why:
        typer.echo(f'error: {why}; use --mode paper', err=True)
        raise typer.Exit(2)


def _check_order(
    action: str, fqme: str, size: float, price: float, dark: bool, account: str,
    mode: str, fields: dict[str, Any] | None = None,
) -> None:
    """Validate the order locally, before any process is contacted."""
    from ..clearing import MessageError, Order

    _check_mode(mode, fqme)
    try:
        Order(
            oid=str(uuid.uuid4()), symbol=fqme, action=action,
            exec_mode='dark' if dark else 'live', price=price, size=size,
            account=account, **(fields or {}),
        )
    except MessageError as err:
        typer.echo(f'error: bad order: {err.reason}', err=True)
        raise typer.Exit(2) from None
    except _user_errors() as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(2) from None


def _place(
    action: Literal['buy', 'sell', 'alert'],
    fqme: str, size: float, price: float, dark: bool, account: str, mode: str,
    timeout: float, loglevel: str | None, fields: dict[str, Any] | None = None,
    tp: float | None = None, sl: float | None = None,
) -> None:
    from ._order_groups import bracket_problem

    fqme = fqme.strip().lower()
    fields = dict(fields or {})
    if isinstance(fields.get('trail'), dict):
        from ..clearing import Trail

        fields['trail'] = Trail(**fields['trail'])
    _check_order(action, fqme, size, price, dark, account, mode, fields)
    if problem := bracket_problem(action, price, tp, sl):
        typer.echo(f'error: bad bracket: {problem}', err=True)
        raise typer.Exit(2)

    async def body() -> Outcome:
        import trio

        from ..clearing import Status

        err_console = _console(stderr=True)
        async with _session(fqme, mode, loglevel) as (client, trades, *_):
            order = client.mk_order(
                action, price, size, exec_mode='dark' if dark else 'live',
                account=account, **fields,
            )
            kids: list[str] = []
            if tp is not None or sl is not None:
                kids = [o for o in await client.bracket(order, tp=tp, sl=sl) if o][1:]
            else:
                await client.send(order)
            last: Status | None = None
            waiting = set(kids)  # a bracket: until each child is held too
            with trio.move_on_after(timeout):
                async for msg in trades:
                    if not isinstance(msg, Status) or msg.oid not in (order.oid, *kids):
                        continue
                    err_console.print(status_line(msg))
                    if msg.oid != order.oid:
                        if msg.resp in RESTING or msg.terminal:
                            waiting.discard(msg.oid)
                    else:
                        last = msg
                    if last is not None and not waiting and (
                            last.terminal or (last.resp in RESTING and not _unarmed(last))):
                        break
            print(' '.join([order.oid, *kids]), flush=True)
            if last is None or not (last.resp in RESTING or last.terminal):
                seen = last.resp if last else 'no status'
                return 1, (f'error: order {order.oid} not resting or done after '
                           f'{timeout:g}s (last: {seen}); it may still be working: '
                           '`piker order ls`')
            if last.resp == 'error':
                return 1, f'error: order {order.oid} failed: {last.reason}'
            return 0, ''

    _run(body, loglevel)


def _unarmed(st: Status) -> bool:
    """A trailing stop from the market: its trigger follows in a moment."""
    req = st.req
    return (st.resp == 'dark_open' and req is not None and req.type == 'trailing_stop'
            and st.trigger is None)


@acm
async def _session(fqme: str, mode: str, loglevel: str | None) -> AsyncIterator[Any]:
    """`open_ems()` whose *opening* must finish within `CONNECT_TIMEOUT`.

    The deadline wraps the context from outside (TRACTOR.md rule 3) and is
    lifted once the handshake is done, so it never limits the body.
    """
    import trio

    from ..clearing import open_ems

    with trio.CancelScope(deadline=trio.current_time() + CONNECT_TIMEOUT) as cs:
        async with open_ems(fqme, mode=mode, loglevel=loglevel) as session:
            cs.deadline = math.inf
            yield session
    if cs.cancelled_caught:
        raise trio.TooSlowError


def _dark_opt() -> Any:
    return typer.Option(False, '--dark', help='hold in emsd\'s dark book until the '
                        'price trades through, then send it live')


def _account_opt() -> Any:
    return typer.Option('paper', '--account', '-a', help='account to trade')


def _mode_opt() -> Any:
    return typer.Option('paper', '--mode', '-m',
                        help="'paper' (paper engine) or 'live' (the broker)")


def _timeout_opt() -> Any:
    return typer.Option(10.0, '--timeout', '-t', min=0.1,
                        help='seconds to wait for the order to rest or finish')


def _loglevel_opt() -> Any:
    return typer.Option(None, '--loglevel', '-l', help='piker log level')


def _side_command(action: str) -> None:
    """Register `piker order buy|sell`: same options, only the side differs."""

    def command(
        fqme: str = typer.Argument(..., help='market, e.g. btcusdt.sim'),
        size: float = typer.Argument(..., help=f'units to {action}'),
        price: float | None = typer.Argument(
            None, help='limit price (a stop or take_profit: its trigger; see --trigger)',
        ),
        dark: bool = _dark_opt(),
        account: str = _account_opt(),
        mode: str = _mode_opt(),
        kind: str | None = typer.Option(None, '--type', help=TYPE_HELP),
        trigger: float | None = typer.Option(None, '--trigger', help=TRIGGER_HELP),
        trail: str | None = typer.Option(None, '--trail', help=TRAIL_HELP),
        tif: str | None = typer.Option(None, '--tif', help=TIF_HELP),
        reduce_only: bool = typer.Option(False, '--reduce-only', help=REDUCE_HELP),
        timeout: float = _timeout_opt(),
        loglevel: str = _loglevel_opt(),
        tp: float = typer.Option(None, '--tp', help='bracket: take-profit price (a child '
                                 'armed as the entry fills)'),
        sl: float = typer.Option(None, '--sl', help='bracket: stop-loss price'),
    ) -> None:
        try:
            at, fields = order_fields(
                action, price, kind=kind, trigger=trigger, trail=trail, tif=tif,
                reduce_only=reduce_only,
            )
        except OptionError as err:
            typer.echo(f'error: {err}', err=True)
            raise typer.Exit(2) from None
        _place(action, fqme, size, at, dark, account, mode, timeout, loglevel, fields,
               tp, sl)

    command.__doc__ = (
        f'{action.capitalize()} SIZE of FQME at limit PRICE; prints the oid.\n\n'
        'Trigger types: PRICE is the limit when there is one (limit, stop_limit), '
        'else the trigger; --trigger is always the trigger. E.g. '
        f'`{action} FQME 1 95 --type stop`, `{action} FQME 1 94.5 --trigger 95` '
        f'(stop_limit), `{action} FQME 1 --trail 0.5%`.'
    )
    order_app.command(name=action)(command)


_side_command('buy')
_side_command('sell')


@order_app.command()
def alert(
    fqme: str = typer.Argument(..., help='market, e.g. btcusdt.sim'),
    price: float = typer.Argument(..., help='fires when the price trades to here'),
    mode: str = _mode_opt(),
    timeout: float = _timeout_opt(),
    loglevel: str = _loglevel_opt(),
) -> None:
    """Set a price alert on FQME (held by emsd; nothing goes to a venue)."""
    _place('alert', fqme, 0.0, price, True, 'paper', mode, timeout, loglevel)


@order_app.command()
def cancel(
    oids: list[str] = typer.Argument(
        None, help='oid(s) to cancel, or unique prefixes (see `piker order ls`)'),
    cancel_all: bool = typer.Option(False, '--all', help='cancel every active order'),
    fqme: str = typer.Option(None, '--fqme', '-f',
                             help='with --all: only orders on this market'),
    mode: str = _mode_opt(),
    timeout: float = _timeout_opt(),
    loglevel: str = _loglevel_opt(),
) -> None:
    """Cancel orders by oid, or all of them (`--all [--fqme F]`)."""
    if bool(oids) == cancel_all:
        typer.echo('error: give the oid(s) to cancel, or --all', err=True)
        raise typer.Exit(2)
    fqme = fqme.strip().lower() if fqme else None
    _check_mode(mode, fqme or DEFAULT_FQME)

    async def body() -> Outcome:
        import trio

        from ..clearing import Status

        err_console = _console(stderr=True)
        async with AsyncExitStack() as stack:
            client, trades, _pps, _accts, dialogs = await stack.enter_async_context(
                _session(fqme or DEFAULT_FQME, mode, loglevel),
            )
            if cancel_all:
                targets = [oid for oid, st in dialogs.items()
                           if st.req is not None and (not fqme or st.req.symbol == fqme)]
                if not targets:
                    return 0, f'no active orders{f" on {fqme}" if fqme else ""}'
            else:
                targets, problem = resolve_oids(oids, dialogs)
                if problem:
                    return 1, problem
            # one session per market: each sees its own dialogs' results
            by_fqme: dict[str, list[str]] = {}
            for oid in targets:
                by_fqme.setdefault(dialogs[oid].req.symbol, []).append(oid)
            sessions = {client.fqme: (client, trades)}
            for market in by_fqme:
                if market not in sessions:
                    c, t, *_ = await stack.enter_async_context(
                        _session(market, mode, loglevel),
                    )
                    sessions[market] = (c, t)
            results: dict[str, Status] = {}

            async def _watch(trades: Any, want: set[str]) -> None:
                async for msg in trades:
                    if isinstance(msg, Status) and msg.oid in want and msg.terminal:
                        results[msg.oid] = msg
                        err_console.print(status_line(msg))
                        want.discard(msg.oid)
                        if not want:
                            return

            with trio.move_on_after(timeout):
                async with trio.open_nursery() as n:
                    for market, market_oids in by_fqme.items():
                        c, t = sessions[market]
                        n.start_soon(_watch, t, set(market_oids))
                        for oid in market_oids:
                            await c.cancel(oid)
        missing = [oid for oid in targets if oid not in results]
        failed = [st for st in results.values() if st.resp != 'canceled']
        problems = [f'{st.oid}: {st.resp}{f" ({st.reason})" if st.reason else ""}'
                    for st in failed]
        problems += [f'{oid}: no result within {timeout:g}s' for oid in missing]
        done = len(targets) - len(failed) - len(missing)
        summary = f'cancelled {done} of {len(targets)} order(s)'
        if problems:
            return 1, f'error: {summary}; ' + '; '.join(problems)
        return 0, summary

    _run(body, loglevel)


@order_app.command('ls')
def ls(
    fqme: str = typer.Option(None, '--fqme', '-f', help='only orders on this market'),
    full: bool = typer.Option(False, '--full', help='show whole oids (not 8-character prefixes)'),
    mode: str = _mode_opt(),
    loglevel: str = _loglevel_opt(),
) -> None:
    """List the active orders (every client's, every market's) in a table."""
    fqme = fqme.strip().lower() if fqme else None
    _check_mode(mode, fqme or DEFAULT_FQME)

    async def body() -> Outcome:
        async with _session(fqme or DEFAULT_FQME, mode, loglevel) as (*_, dialogs):
            shown = {oid: st for oid, st in dialogs.items()
                     if st.req is not None and (not fqme or st.req.symbol == fqme)}
        if not shown:
            return 0, f'no active orders{f" on {fqme}" if fqme else ""}'
        _console().print(dialogs_table(shown, fqme, full_oids=full))
        return 0, ''

    _run(body, loglevel)


__all__ = ['DEFAULT_FQME', 'dialogs_table', 'fmt_num', 'order_app', 'resolve_oids', 'status_line']
