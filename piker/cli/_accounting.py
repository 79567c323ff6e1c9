"""`piker ledger` and `piker positions`: look at the accounting files.

Read-only views of `<config dir>/accounting/...` printed as `rich` tables;
nothing is created or changed, so it is safe next to a running paperboi.
"""
from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.table import Table

from ..accounting import Account, AccountingError, TransactionLedger, tick_digits
from ._app import app


def _fail(err: Exception) -> NoReturn:
    """An error goes to stderr (stdout is the table), exit 1."""
    typer.echo(f'error: {err}', err=True)
    raise typer.Exit(1)


def _check_backend(broker: str) -> None:
    """Nothing recorded: say so if that is because `broker` is no backend
    (a typo), rather than show an empty view."""
    from ..brokers import BrokerError, get_brokermod
    try:
        get_brokermod(broker)
    except BrokerError as err:
        _fail(err)


def _fmt(value: float) -> str:
    return f'{value:,.10g}'


@app.command()
def ledger(
    broker: str = typer.Argument(..., help='broker backend, e.g. sim'),
    account: str = typer.Argument(..., help='account name, e.g. paper'),
) -> None:
    """Print the trade ledger (every fill) of BROKER ACCOUNT."""
    console = Console(soft_wrap=True)
    try:
        led = TransactionLedger.load(broker, account)
    except AccountingError as err:
        _fail(err)
    if not led:
        _check_backend(broker)
        console.print(
            f'no trades recorded for {broker}/{account} (ledger {led.path})',
            highlight=False,
        )
        return
    table = Table(title=f'trades {broker}/{account}', caption=str(led.path))
    for col in ('tid', 'time (UTC)', 'fqme'):
        table.add_column(col, overflow='fold')
    for col in ('size', 'price', 'cost'):
        table.add_column(col, justify='right')
    for txn in led.iter_txns():
        table.add_row(
            txn.tid,
            txn.dt.strftime('%Y-%m-%d %H:%M:%S'),
            txn.fqme,
            f'[green]{_fmt(txn.size)}[/]' if txn.size > 0 else f'[red]{_fmt(txn.size)}[/]',
            _fmt(txn.price),
            _fmt(txn.cost),
        )
    console.print(table)


@app.command()
def positions(
    broker: str = typer.Argument(..., help='broker backend, e.g. sim'),
    account: str = typer.Argument(..., help='account name, e.g. paper'),
) -> None:
    """Print the open positions of BROKER ACCOUNT."""
    console = Console(soft_wrap=True)
    try:
        acct = Account.load(broker, account)
    except AccountingError as err:
        _fail(err)
    pps = acct.open_positions()
    if not pps:
        _check_backend(broker)
        console.print(
            f'no open positions for {broker}/{account} (file {acct.path})',
            highlight=False,
        )
        return
    table = Table(title=f'positions {broker}/{account}', caption=str(acct.path))
    table.add_column('fqme', overflow='fold')
    table.add_column('side')
    table.add_column('size', justify='right')
    table.add_column('ppu', justify='right')
    table.add_column('clears', justify='right')
    table.add_column('bs_mktid', overflow='fold')
    for fqme, pos in sorted(pps.items()):
        if pos.price_tick is not None:
            ppu_s = f'{pos.ppu:,.{tick_digits(pos.price_tick)}f}'
        else:
            ppu_s = _fmt(pos.ppu)
        table.add_row(
            fqme,
            f'[green]{pos.side}[/]' if pos.size > 0 else f'[red]{pos.side}[/]',
            _fmt(pos.size),
            ppu_s,
            str(pos.open_count),
            pos.bs_mktid,
        )
    console.print(table)
