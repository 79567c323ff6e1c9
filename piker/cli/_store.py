"""`piker store`: the local market-data store (`piker.storage`).

    piker store ls                         markets, timeframes, spans, sizes, gaps
    piker store gaps FQME [-t 60]          missing bar runs (and the venue's own)
    piker store backfill FQME [--since 2d] fetch from the backend into the store
    piker store export FQME -t 60 --format csv|parquet [-o FILE]
    piker store import FILE [--fqme NAME.local] [-t SECONDS]
    piker store delete FQME [-t 60] [--ticks] [--yes]

`ls`, `gaps`, `export`, `import` and `delete` read and write the files
directly (no pikerd needed); `backfill` asks the backend's brokerd
(joining or starting the service tree). Times print in UTC.
"""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ._app import app

if TYPE_CHECKING:
    from rich.console import Console

store_app = typer.Typer(help='the local market-data store: list, backfill, export, import',
                        no_args_is_help=True)
app.add_typer(store_app, name='store')


def _console() -> Console:
    from rich.console import Console
    return Console(highlight=False, soft_wrap=True)


def utc(t: int | None) -> str:
    if t is None:
        return '-'
    return datetime.fromtimestamp(t, UTC).strftime('%Y-%m-%d %H:%M:%S')


def fmt_bytes(n: int) -> str:
    for unit in ('B', 'KiB', 'MiB', 'GiB'):
        if n < 1024 or unit == 'GiB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1024
    return f'{n} B'  # pragma: no cover


def _fail(msg: str, code: int = 1) -> typer.Exit:
    typer.echo(f'error: {msg}', err=True)
    return typer.Exit(code)


def _fqme(text: str) -> str:
    from ..storage._layout import check_fqme
    try:
        return check_fqme(text)
    except ValueError as err:
        raise _fail(str(err), 2) from None


def _record_status() -> dict:
    from ..storage._record import read_status
    return read_status()


@store_app.command('ls')
def ls() -> None:
    """Every stored market: timeframes, spans, sizes, gaps; recorded ticks."""
    from rich.table import Table

    from ..storage import BarStore, StorageError, TickStore

    bars, ticks = BarStore(), TickStore()
    console = _console()
    try:
        markets = bars.markets()
        table = Table(title=f'bars in {bars.root}', title_justify='left')
        for col in ('fqme', 'tf', 'first (UTC)', 'last (UTC)', 'bars', 'size', 'gaps'):
            table.add_column(col, justify='left' if col == 'fqme' else 'right')
        for fqme in markets:
            for tf in bars.timeframes(fqme):
                span = bars.span(fqme, tf)
                if span is None:
                    continue
                closed = len(bars.closed(fqme, tf))
                gaps = str(span.gaps) + (f' (+{closed} closed)' if closed else '')
                table.add_row(fqme, f'{tf}s', utc(span.first), utc(span.last),
                              f'{span.bars:,}', fmt_bytes(span.bytes), gaps)
        if markets:
            console.print(table)
        else:
            console.print(f'no bars stored yet in {bars.root}')
        recorded = ticks.markets()
        status = _record_status()
        if recorded or status:
            t = Table(title='recorded ticks', title_justify='left')
            for col in ('fqme', 'days', 'first day', 'last day', 'size', 'recorder'):
                t.add_column(col, justify='left' if col in ('fqme', 'recorder') else 'right')
            for fqme in sorted(set(recorded) | set(status)):
                days = ticks.days(fqme)
                st = status.get(fqme, {})
                state = st.get('state', '-')
                if st.get('error'):
                    state = f'[bold red]{state}: {st["error"]}[/bold red]'
                t.add_row(fqme, str(len(days)), days[0] if days else '-',
                          days[-1] if days else '-', fmt_bytes(ticks.size(fqme)), state)
            console.print(t)
    except StorageError as err:
        raise _fail(str(err)) from None


@store_app.command()
def gaps(
    fqme: str = typer.Argument(..., help='market, e.g. btcusdt.binance'),
    timeframe: int = typer.Option(None, '--timeframe', '-t', help='bar seconds (default all)'),
) -> None:
    """Runs of missing bars inside the stored span (closed-market ones marked)."""
    from ..storage import BarStore, StorageError

    fqme = _fqme(fqme)
    store = BarStore()
    console = _console()
    try:
        tfs = [timeframe] if timeframe else store.timeframes(fqme)
        if not tfs:
            raise _fail(f'nothing stored for {fqme} (see `piker store ls`)')
        for tf in tfs:
            found = store.gaps(fqme, tf, include_closed=True)
            if not found:
                console.print(f'{fqme} {tf}s: no gaps')
                continue
            console.print(f'[bold]{fqme} {tf}s[/bold]: {len(found)} gap(s)')
            for g in found:
                tag = '  [dim]closed at the venue[/dim]' if g.closed else ''
                console.print(f'  {utc(g.start)} .. {utc(g.end)}  '
                              f'{g.bars(tf):,} bars{tag}')
    except StorageError as err:
        raise _fail(str(err)) from None


@store_app.command()
def backfill(
    fqme: str = typer.Argument(..., help='market, e.g. btcusdt.sim'),
    since: str = typer.Option(
        None, '--since', '-s', help='only bars since: ISO date/time or 2h/1d/1w ago'),
    timeframes: list[int] = typer.Option(
        [1, 60], '--timeframe', '-t', help='bar seconds (repeatable)'),
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """Fetch what the backend serves into the store (gaps re-fetched).

    With --since: every bar from then to now, paged backwards (newest
    first); spans already stored or known closed at the venue are skipped,
    spans the venue has nothing for are recorded so they are not asked
    again.
    """
    import trio
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..brokers._errors import BrokerError
    from ..data import open_feed
    from ._history import parse_since

    fqme = _fqme(fqme)
    start = None
    if since:
        try:
            start = int(parse_since(since).timestamp())
        except ValueError as err:
            raise _fail(f'--since: {err}', 2) from None

    async def main() -> list:
        import time
        reports = []
        with Progress(TextColumn('{task.description}'), BarColumn(),
                      TextColumn('{task.completed:,.0f}/{task.total:,.0f} {task.fields[unit]}'),
                      TimeElapsedColumn(), console=_console(), transient=False) as bar:
            async with open_feed(fqme, loglevel=loglevel, start_stream=False) as feed:
                if start is None:
                    # the backend's default window, one call per timeframe
                    task = bar.add_task(f'backfill {fqme}', total=len(timeframes),
                                        unit='timeframes')
                    for tf in timeframes:
                        bar.update(task, description=f'backfill {fqme} {tf}s')
                        reports += await feed.backfill(fqme, (tf,))
                        bar.advance(task)
                    return reports
                # deep: paged backwards from now to --since, bars as progress
                until = int(time.time())
                for tf in timeframes:
                    task = bar.add_task(f'backfill {fqme} {tf}s',
                                        total=(until - start) // tf + 1, unit='bars')
                    pages = []
                    async for rep in feed.backfill_pages(fqme, tf, start, until):
                        pages.append(rep)
                        bar.advance(task, (rep.end - rep.start) // tf + 1)
                    reports.append(_sum_pages(pages, start, until))
        return reports

    try:
        reports = trio.run(main)
    except (BrokerError, ValueError) as err:
        raise _fail(str(err)) from None
    console = _console()
    for r in reports:
        line = (f'{r.fqme} {r.timeframe}s: {r.fetched:,} fetched, {r.written:,} at or after '
                f'--since; {r.bars:,} stored {utc(r.first)} .. {utc(r.last)}')
        if r.closed:
            line += (f'; {len(r.closed)} span(s) the venue has no bars for, recorded '
                     '(not asked again)')
        if r.gaps:
            line += (f'; [yellow]{len(r.gaps)} gap(s) still open[/yellow]'
                     ' (see `piker store gaps`)')
        console.print(line)


def _sum_pages(pages: list, since: int, until: int):
    """One report for a deep backfill's pages (the store as the last left it)."""
    last = pages[-1]
    return last.copy(update={
        'fetched': sum(p.fetched for p in pages), 'written': sum(p.written for p in pages),
        'closed': [g for p in pages for g in p.closed], 'start': since, 'end': until,
        'skipped': all(p.skipped for p in pages),
    })


@store_app.command('export')
def export(
    fqme: str = typer.Argument(..., help='market'),
    timeframe: int = typer.Option(60, '--timeframe', '-t', help='bar seconds'),
    fmt: str = typer.Option('csv', '--format', '-f', help='csv or parquet'),
    out: Path = typer.Option(None, '--out', '-o', help='file (default <fqme>.<tf>s.<format>)'),
) -> None:
    """Write stored bars to one CSV or Parquet file (time = UTC epoch s)."""
    from ..atomicfile import write_atomic
    from ..storage import BarStore, StorageError
    from ..storage._bars import to_frame

    fqme = _fqme(fqme)
    if fmt not in ('csv', 'parquet'):
        raise _fail(f"--format must be 'csv' or 'parquet', not {fmt!r}", 2)
    try:
        bars = BarStore().read(fqme, timeframe)
    except StorageError as err:
        raise _fail(str(err)) from None
    if not len(bars):
        raise _fail(f'no {timeframe}s bars stored for {fqme} (see `piker store ls`)')
    out = out or Path(f'{fqme}.{timeframe}s.{fmt}')
    import io
    buf = io.BytesIO()
    df = to_frame(bars)
    if fmt == 'csv':
        df.write_csv(buf)
    else:
        df.write_parquet(buf)
    try:
        write_atomic(out, buf.getvalue())
    except OSError as err:
        raise _fail(f'cannot write {out}: {err.strerror or err}') from None
    typer.echo(f'{len(bars):,} bars -> {out}')


@store_app.command('import')
def import_(
    file: Path = typer.Argument(..., help='CSV or Parquet bars: time, open, high, low, close[, volume]'),
    fqme: str = typer.Option(None, '--fqme', help='market to store them as (default <file name>.local)'),
    timeframe: int = typer.Option(None, '--timeframe', '-t', help='bar seconds (default: inferred)'),
) -> None:
    """Store your own bars as a market (`NAME.local` can be charted)."""
    import numpy as np

    from ..storage import BarStore, StorageError
    from ..storage._import import infer_tick, read_bars_file, write_meta

    name = fqme or f'{file.stem.split(".")[0]}.local'
    name = _fqme(name)
    try:
        bars, tf = read_bars_file(file, timeframe)
        store = BarStore()
        store.write(name, tf, bars)
        if name.endswith('.local'):
            price = infer_tick(np.concatenate([bars[c] for c in ('open', 'high', 'low', 'close')]))
            write_meta(store.root / 'bars' / name, {
                'price_tick': str(price), 'size_tick': str(infer_tick(bars['volume'])),
                'source': str(file.resolve()),
            })
    except (ValueError, StorageError) as err:
        raise _fail(str(err)) from None
    typer.echo(f'{len(bars):,} {tf}s bars {utc(int(bars["time"][0]))} .. '
               f'{utc(int(bars["time"][-1]))} UTC -> {name}'
               + (f'  (chart it: piker chart {name} -t {tf})' if name.endswith('.local') else ''))


@store_app.command()
def delete(
    fqme: str = typer.Argument(..., help='market'),
    timeframe: int = typer.Option(None, '--timeframe', '-t', help='only these bars'),
    ticks: bool = typer.Option(False, '--ticks', help='the recorded ticks (not the bars)'),
    yes: bool = typer.Option(False, '--yes', '-y', help='do not ask'),
) -> None:
    """Remove a market's stored bars (or its recorded ticks)."""
    from ..storage import BarStore, StorageError, TickStore

    fqme = _fqme(fqme)
    what = f'recorded ticks of {fqme}' if ticks else (
        f'{timeframe}s bars of {fqme}' if timeframe else f'all bars of {fqme}')
    if not yes and not typer.confirm(f'delete the {what}?'):
        raise typer.Exit(1)
    try:
        if ticks:
            n = TickStore().delete(fqme)
        else:
            n = BarStore().delete(fqme, timeframe)
    except StorageError as err:
        raise _fail(str(err)) from None
    typer.echo(f'deleted {n:,} {"rows" if ticks else "bars"}: the {what}')

__all__ = ['store_app']
