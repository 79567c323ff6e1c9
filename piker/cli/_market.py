"""`piker quote FQME...` (live quote table) and `piker search PATTERN`.

Both join the running service tree or start one in-process
(`maybe_open_pikerd()`), like every piker client. `quote` redraws a
`rich` table until Ctrl-C (handled inside trio, so an in-process pikerd
shuts its daemons down cleanly); `--count N` / `--once` make it finite
and `--json` prints one JSON object per line for scripts.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer

from ._app import app

_COLS = ('fqme', 'bid', 'ask', 'last', 'bsize', 'asize', 'volume', 'age ms')


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, int | float):
        return f'{value:,.{digits}f}'
    return '-'


def _quote_table(
    quotes: dict[str, dict],
    mkts: dict[str, Any],
    now_ns: int,
) -> Any:
    from rich.table import Table

    table = Table(title='piker quotes', title_justify='left')
    for col in _COLS:
        table.add_column(col, justify='left' if col == 'fqme' else 'right')
    for fqme, q in quotes.items():
        mkt = mkts[fqme]
        pd, sd = mkt.price_tick_digits, mkt.size_tick_digits
        age = (now_ns - q['time_ns']) / 1e6 if q.get('time_ns') else None
        table.add_row(
            fqme,
            _fmt(q.get('bid'), pd), _fmt(q.get('ask'), pd), _fmt(q.get('last'), pd),
            _fmt(q.get('bsize'), sd), _fmt(q.get('asize'), sd),
            _fmt(q.get('volume'), sd),
            f'{age:,.0f}' if age is not None else '-',
        )
    return table


def _fail(err: BaseException) -> typer.Exit:
    typer.echo(f'error: {err}', err=True)
    return typer.Exit(1)


def _user_errors() -> tuple[type[BaseException], ...]:
    from ..brokers import BrokerError
    from ..config import ConfigError
    from ..service import ServiceError
    return (BrokerError, ServiceError, ConfigError, ValueError)


@app.command()
def quote(
    fqmes: list[str] = typer.Argument(..., help='markets, e.g. btcusdt.sim simco.sim'),
    count: int = typer.Option(
        None, '--count', '-n', min=0, help='exit after this many quote updates',
    ),
    once: bool = typer.Option(False, '--once', help='show the first quotes and exit'),
    as_json: bool = typer.Option(
        False, '--json', help='print JSON lines (first quotes, then each batch)',
    ),
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """Show live quotes for FQMEs in a table until Ctrl-C."""
    import signal
    import time

    import trio
    from rich.console import Console
    from rich.live import Live

    from ..data import open_feed

    limit = 0 if once else count
    console = Console() if sys.stdout.isatty() else Console(width=120)

    def emit_json(obj: dict) -> bool:
        try:
            sys.stdout.write(json.dumps(obj) + '\n')
            sys.stdout.flush()
        except BrokenPipeError:
            # the reader went away (`| head`): stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return False
        return True

    async def main() -> None:
        async with open_feed(fqmes, loglevel=loglevel) as feed:
            latest = dict(feed.first_quotes)
            if as_json and not emit_json(latest):
                return
            seen = 0
            live = None if as_json or not console.is_terminal else Live(
                _quote_table(latest, feed.mkts, time.time_ns()),
                console=console, refresh_per_second=10,
            )
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                async with trio.open_nursery() as n:

                    async def _on_signal() -> None:
                        async for _ in sigs:
                            n.cancel_scope.cancel()
                            return

                    n.start_soon(_on_signal)
                    try:
                        if live is not None:
                            live.start()
                        while limit is None or seen < limit:
                            batch = await feed.stream.receive()
                            seen += 1
                            latest.update(batch)
                            if as_json:
                                if not emit_json(batch):
                                    break
                            elif live is not None:
                                live.update(
                                    _quote_table(latest, feed.mkts, time.time_ns())
                                )
                        n.cancel_scope.cancel()
                    finally:
                        if live is not None:
                            live.stop()
            if live is None and not as_json:
                console.print(_quote_table(latest, feed.mkts, time.time_ns()))

    try:
        trio.run(main)
    except _user_errors() as err:
        raise _fail(err) from None


@app.command()
def search(
    pattern: str = typer.Argument('', help='part of a symbol, e.g. btc'),
    brokers: list[str] = typer.Option(
        None, '--broker', '-b', help='backend(s) to search (default: all)',
    ),
    as_json: bool = typer.Option(False, '--json', help='print JSON'),
    loglevel: str = typer.Option(None, '--loglevel', '-l', help='piker log level'),
) -> None:
    """Search the backends' markets for PATTERN."""
    import trio
    from rich.console import Console
    from rich.table import Table

    from ..accounting import MktPair
    from ..brokers import _brokerd, available_backends, get_brokermod
    from ..service import maybe_open_pikerd

    names = [b.lower() for b in brokers] if brokers else available_backends()
    try:
        for name in names:
            get_brokermod(name)
    except _user_errors() as err:
        raise _fail(err) from None

    async def main() -> dict[str, dict]:
        found: dict[str, dict] = {}
        async with maybe_open_pikerd(loglevel=loglevel):
            for name in names:
                async with _brokerd.maybe_spawn_brokerd(name, loglevel) as portal:
                    try:
                        found.update(await _brokerd.call(
                            portal, _brokerd.search, broker=name, pattern=pattern,
                        ))
                    except _user_errors() as err:
                        if len(names) == 1:
                            raise
                        # one unreachable venue must not hide the others
                        typer.echo(f'warning: {name}: {err}', err=True)
        return found

    try:
        found = trio.run(main)
    except _user_errors() as err:
        raise _fail(err) from None

    if as_json:
        typer.echo(json.dumps(found))
        return
    if not found:
        typer.echo(f'no market matches {pattern!r}', err=True)
        raise typer.Exit(1)
    table = Table(title=f'markets matching {pattern!r}', title_justify='left')
    for col in ('fqme', 'type', 'base', 'quote', 'price tick', 'size tick'):
        table.add_column(col)
    for fqme, raw in found.items():
        mkt = MktPair.from_msg(raw)
        table.add_row(
            fqme, mkt.dst.atype, mkt.dst.name, mkt.src.name,
            str(mkt.price_tick), str(mkt.size_tick),
        )
    Console(width=100).print(table)
