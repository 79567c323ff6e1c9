"""`piker order history` / `piker order show`: what happened to my orders.

    piker order history [--fqme F] [--since T] [--limit N] [--brief]
    piker order show OID [--json]

Both read emsd's journal (`<PIKER_CONFIG_DIR>/ems/journal.sqlite`, see
`piker.clearing._journal`) directly and read-only: they work with or
without a running pikerd/emsd and never change anything. `--since` takes
an ISO date/time (`2026-11-23`, `2026-11-23T09:30`, local time unless it
names a zone) or a span back from now (`90s`, `15m`, `2h`, `1d`, `1w`).
`show` accepts a unique oid prefix (the 8 characters other commands
print).
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import typer

from ._orders import fmt_num, order_app, status_line

if TYPE_CHECKING:
    from rich.console import Console

    from ..clearing import Status
    from ..clearing._journal import DialogRecord, Journal

_SPAN = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$', re.IGNORECASE)
_UNIT = {'s': 'seconds', 'm': 'minutes', 'h': 'hours', 'd': 'days', 'w': 'weeks'}
_PHASE_STYLE = {
    'closed': 'bold green', 'canceled': 'bold yellow', 'error': 'bold red',
    'alert_triggered': 'magenta', 'dark_open': 'cyan', 'open': 'cyan',
}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2h`, `30m`, `1.5d`... back from `now`, or an ISO date/time.

    Raises `ValueError` saying what is accepted.
    """
    now = now or datetime.now().astimezone()
    match = _SPAN.match(text)
    if match:
        value, unit = float(match[1]), match[2].lower()
        return now - timedelta(**{_UNIT[unit]: value})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f'cannot read {text!r} as a time: give an ISO date/time '
            '(2026-11-23, 2026-11-23T09:30) or a span back from now '
            '(90s, 15m, 2h, 1d, 1w)'
        ) from None
    return when if when.tzinfo else when.astimezone()  # naive: local time


def fmt_time(time_ns: int) -> str:
    """Local wall-clock time with milliseconds."""
    return datetime.fromtimestamp(time_ns / 1e9).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]


def dialog_header(rec: DialogRecord) -> str:
    """One line summing a dialog up (rich markup)."""
    from rich.markup import escape

    req = rec.req
    what = 'alert' if req.action == 'alert' else f'{req.action} {fmt_num(req.size)}'
    style = _PHASE_STYLE.get(rec.phase, 'yellow')
    line = (f'[bold]{rec.oid}[/bold]  {escape(what)} {escape(req.symbol)} @ '
            f'{fmt_num(req.price)} {req.exec_mode} {escape(f"[{req.account}]")}')
    if rec.route:
        line += f' via {rec.route}'
    line += f'  [{style}]{rec.phase}[/{style}]'
    if rec.filled:
        line += f' filled {fmt_num(rec.filled)}'
    return line


def event_line(st: Status) -> str:
    """One timeline line: the time, then the status as `piker order` shows it."""
    return f'  [dim]{fmt_time(st.time_ns)}[/dim]  {status_line(st)}'


def _console() -> Console:
    from rich.console import Console
    return Console(highlight=False, soft_wrap=True)


def _open_journal() -> Journal:
    """The journal, read-only; exit 1 with the reason if it cannot be read."""
    from ..clearing._journal import Journal, JournalError

    try:
        return Journal.open(readonly=True)
    except JournalError as err:
        typer.echo(f'error: {err}', err=True)
        raise typer.Exit(1) from None


@order_app.command()
def history(
    fqme: str = typer.Option(None, '--fqme', '-f', help='only orders on this market'),
    since: str = typer.Option(
        None, '--since', '-s',
        help='only orders with events since: ISO date/time or 90s/15m/2h/1d/1w ago',
    ),
    limit: int = typer.Option(50, '--limit', '-n', min=1, help='at most this many orders'),
    brief: bool = typer.Option(False, '--brief', '-b', help='one line per order, no timeline'),
) -> None:
    """Past (and active) orders from emsd's journal, latest first, with their events."""
    from ..clearing._journal import journal_path

    when = None
    if since:
        try:
            when = parse_since(since)
        except ValueError as err:
            typer.echo(f'error: --since: {err}', err=True)
            raise typer.Exit(2) from None
    if not journal_path().exists():
        typer.echo('no order history yet (emsd has not run with this config dir)', err=True)
        return
    with _open_journal() as journal:
        records = journal.history(
            fqme=fqme.strip().lower() if fqme else None, since=when, limit=limit,
            events=not brief,
        )
    if not records:
        scope = f' on {fqme}' if fqme else ''
        scope += f' since {when:%Y-%m-%d %H:%M:%S}' if when else ''
        typer.echo(f'no orders{scope}', err=True)
        return
    console = _console()
    for i, rec in enumerate(records):
        if i and not brief:
            console.print()
        console.print(dialog_header(rec))
        for st in rec.events:
            console.print(event_line(st))


@order_app.command()
def show(
    oid: str = typer.Argument(..., help='the order id, or a unique prefix of it'),
    as_json: bool = typer.Option(False, '--json', help='print the raw record as JSON'),
) -> None:
    """One order in full from emsd's journal: its state and every event."""
    import msgspec
    from rich.markup import escape
    from rich.table import Table

    oid = oid.strip()
    with _open_journal() as journal:
        rec = journal.dialog(oid)
        if rec is None:
            matches = journal.match_oids(oid, limit=6)
            if len(matches) == 1:
                rec = journal.dialog(matches[0])
            elif matches:
                shown = ', '.join(matches[:5]) + (', ...' if len(matches) > 5 else '')
                typer.echo(f'error: {oid!r} is ambiguous: {shown}', err=True)
                raise typer.Exit(1)
    if rec is None:
        typer.echo(f'error: no order {oid!r} in the journal (see `piker order history`)',
                   err=True)
        raise typer.Exit(1)
    if as_json:
        print(json.dumps(msgspec.to_builtins(rec), indent=2))
        return
    console = _console()
    req = rec.req
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style='bold')
    table.add_column()
    rows = [
        ('oid', rec.oid),
        ('market', rec.fqme),
        ('order', f'{req.action} {fmt_num(req.size)} @ {fmt_num(req.price)} {req.exec_mode}'),
        ('account', rec.account),
        ('route', rec.route or '-'),
        ('phase', f'{rec.phase}{"" if rec.active else " (ended)"}'),
        ('filled', f'{fmt_num(rec.filled)} of {fmt_num(req.size)}'),
        ('venue id', '-' if rec.reqid is None else str(rec.reqid)),
    ]
    if rec.direction:
        rows.append(('trigger', f'fires when the price goes {rec.direction} '
                                f'to {fmt_num(req.price)}'))
    rows += [('created', fmt_time(rec.created_ns)), ('updated', fmt_time(rec.updated_ns))]
    for key, value in rows:
        table.add_row(key, escape(value))
    console.print(table)
    console.print(f'[bold]events[/bold] ({len(rec.events)})')
    for st in rec.events:
        console.print(event_line(st))
        details = []
        if st.src:
            details.append(f'from {st.src}')
        if st.reason and st.resp not in ('error',):
            details.append(f'reason: {st.reason}')
        venue = {k: v for k, v in st.brokerd_msg.items()
                 if k != 'name' and v not in (None, '', {}, [])}
        if venue:
            details.append(json.dumps(venue, sort_keys=True, default=str))
        if details:
            console.print(f'      [dim]{escape("; ".join(details))}[/dim]')


__all__ = ['dialog_header', 'event_line', 'fmt_time', 'history', 'parse_since', 'show']
