"""`piker order buy ... --tp X --sl Y` and `piker order ls` with groups."""
from __future__ import annotations

import os

import pytest
from rich.console import Console

from piker.clearing import Order, Status
from piker.cli._order_groups import bracket_problem, grouped_rows
from piker.cli._orders import dialogs_table
from tests.test_cli_orders import pikerd, run_all  # noqa: F401  (fixture)


def mk(oid: str, t: int, **kw) -> Status:
    fields = dict(oid=oid, symbol='btcusdt.sim', action='buy', exec_mode='live',
                  price=100.0, size=1.0, account='paper')
    fields.update(kw)
    armed = 0.0 if fields.get('parent') else None
    return Status(oid=oid, resp='held' if armed is not None else 'open', time_ns=t,
                  req=Order(**fields), armed=armed)


def test_bracket_problem_says_which_side_is_wrong():
    assert bracket_problem('buy', 100, 110, 90) == ''
    assert bracket_problem('sell', 100, 90, 110) == ''
    assert bracket_problem('buy', 100, None, None) == ''
    assert '--tp 95 must be above the buy price 100' in bracket_problem('buy', 100, 95, 90)
    assert '--sl 105 must be below' in bracket_problem('buy', 100, 110, 105)
    assert '--tp 105 must be below the sell price' in bracket_problem('sell', 100, 105, 110)
    assert 'alert' in bracket_problem('alert', 100, 110, None)


def test_ls_lists_children_under_their_entry():
    kids = dict(action='sell', exec_mode='dark', parent='entry-1', oco='grp-1234567890')
    dialogs = {
        'tp-1': mk('tp-1', 2, price=110.0, **kids),
        'other': mk('other', 3),
        'entry-1': mk('entry-1', 1),
        'sl-1': mk('sl-1', 4, price=90.0, **kids),
    }
    assert [(s.oid, d) for s, d in grouped_rows(dialogs)] == [
        ('entry-1', 0), ('tp-1', 1), ('sl-1', 1), ('other', 0)]
    console = Console(width=200, record=True, file=open(os.devnull, 'w'))
    console.print(dialogs_table(dialogs))
    lines = console.export_text().splitlines()
    row = {name: next(ln for ln in lines if name in ln) for name in ('entry-1', 'tp-1', 'sl-1')}
    assert '└ tp-1' in row['tp-1'] and '└' not in row['entry-1']
    assert 'held' in row['sl-1'] and 'grp-1234' in row['sl-1'] and 'armed' in lines[2] + lines[1]
    # no group: the table is as it was (no armed/oco columns)
    console = Console(width=200, record=True, file=open(os.devnull, 'w'))
    console.print(dialogs_table({'other': dialogs['other']}))
    assert 'armed' not in console.export_text()


def test_bad_bracket_refused_locally(piker_env):
    (res,) = run_all(('buy', 'btcusdt.sim', '1', '100', '--tp', '90', '--sl', '80'))
    assert res.returncode == 2 and 'bad bracket: --tp 90 must be above' in res.stderr


@pytest.mark.timeout(60)
def test_bracket_from_the_cli(pikerd):  # noqa: F811
    # the sim's btcusdt walks around 65,000: the entry rests, its children held
    (res,) = run_all(('buy', 'btcusdt.sim', '0.01', '60000', '--tp', '70000', '--sl', '55000'))
    assert res.returncode == 0, res.stderr
    entry, tp, sl = res.stdout.split()
    assert res.stderr.count('held') == 2 and 'open' in res.stderr
    (ls,) = run_all(('ls',))
    assert ls.returncode == 0, ls.stderr
    lines = ls.stdout.splitlines()
    at = {oid: next(i for i, ln in enumerate(lines) if oid[:8] in ln) for oid in (entry, tp, sl)}
    assert at[entry] < at[tp] < at[sl] or at[entry] < at[sl] < at[tp]
    assert '└' in lines[at[tp]] and 'held' in lines[at[sl]] and 'armed' in ls.stdout
    # cancelling the entry cancels its children
    (cancel,) = run_all(('cancel', entry[:8]))
    assert cancel.returncode == 0, cancel.stderr
    (empty,) = run_all(('ls',))
    assert 'no active orders' in empty.stderr, empty.stdout
