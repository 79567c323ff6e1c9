"""`piker order buy|sell|alert|cancel|ls` against a real `piker pikerd`.

pikerd runs as a subprocess on the test's private config dir and registry
address (the autouse `piker_env` fixture exports both; children inherit
them); every command runs as its own process, like a user's shell. At the
end pikerd gets SIGINT and must exit 0 leaving no process behind.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from piker.clearing import Order, Status
from piker.cli._orders import dialogs_table, fmt_num, resolve_oids, status_line
from tests._pikerd_proc import PIKER, running_pikerd

# ---- helpers -----------------------------------------------------------

def run_all(
    *cmds: tuple[str, ...], timeout: float = 30, root_opts: tuple[str, ...] = (),
) -> list[subprocess.CompletedProcess]:
    """Run `piker [root_opts] order` commands concurrently; results in order."""
    env = {**os.environ, 'COLUMNS': '200'}
    procs = [
        subprocess.Popen([PIKER, *root_opts, 'order', *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
        for args in cmds
    ]
    out = []
    for args, proc in zip(cmds, procs, strict=True):
        stdout, stderr = proc.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(args, proc.returncode, stdout, stderr))
    return out


# ---- pure formatting ---------------------------------------------------

def mk_status(resp: str, **kw) -> Status:
    req = Order(oid='1234abcd-0000', symbol='btcusdt.sim', action='buy',
                exec_mode='live', price=65000.1, size=0.01, account='paper')
    return Status(oid=req.oid, resp=resp, time_ns=1, req=req, **kw)


def test_formatting():
    assert fmt_num(65000.1) == '65,000.1'
    assert fmt_num(0.01) == '0.01'
    assert fmt_num(3.0) == '3'
    assert fmt_num(None) == '-' and fmt_num(float('nan')) == '-'
    assert fmt_num(-0.0) == '0'

    from rich.console import Console

    def render(markup: str) -> str:
        console = Console(width=200, record=True, file=open(os.devnull, 'w'))
        console.print(markup)
        return console.export_text()

    line = render(status_line(mk_status('open')))
    assert 'open' in line and '1234abcd' in line and '65,000.1' in line
    assert '[paper]' in line  # escaped: not swallowed as markup
    fill = render(status_line(mk_status(
        'fill', filled=0.01, brokerd_msg={'price': 64999.9, 'size': 0.01},
    )))
    assert '0.01 @ 64,999.9' in fill and 'remaining 0' in fill
    err = render(status_line(mk_status('error', reason='bad [bold]tick[/bold]')))
    assert 'bad [bold]tick[/bold]' in err

    console = Console(width=200, record=True, file=open(os.devnull, 'w'))
    other = mk_status('dark_open').copy({'oid': 'other-oid', 'req': mk_status('open').req.copy(
        {'oid': 'other-oid', 'symbol': 'ethusdt.sim'})})
    console.print(dialogs_table({'a': mk_status('open'), 'b': other}, 'btcusdt.sim'))
    text = console.export_text()
    assert '1234abcd' in text and '1234abcd-0000' not in text and 'other-o' not in text
    assert 'active orders on btcusdt.sim' in text
    console.print(dialogs_table({'a': mk_status('open')}, full_oids=True))
    assert '1234abcd-0000' in console.export_text()


def test_resolve_oids_takes_unique_prefixes():
    active = ['abc123-1', 'abc456-2', 'def789-3']
    assert resolve_oids(['def', 'abc1', 'abc123-1'], active) == (['def789-3', 'abc123-1'], '')
    targets, err = resolve_oids(['abc'], active)
    assert targets == [] and 'ambiguous' in err and 'abc123-1' in err
    targets, err = resolve_oids(['zzz'], active)
    assert targets == [] and 'no active order zzz' in err


# ---- without pikerd ----------------------------------------------------

@pytest.mark.timeout(30)
def test_no_pikerd_and_bad_input(piker_env):
    nopikerd, size, live, backend, nothing = run_all(
        ('buy', 'btcusdt.sim', '0.01', '60000'),
        ('sell', 'btcusdt.sim', '0', '60000'),
        ('buy', 'btcusdt.sim', '1', '60000', '--mode', 'live'),
        ('buy', 'btcusdt.nope', '1', '60000'),
        ('cancel',),
    )
    assert nopikerd.returncode == 1
    assert 'no pikerd answers' in nopikerd.stderr
    assert 'run `piker pikerd`' in nopikerd.stderr
    assert nopikerd.stdout == ''
    # the rest is rejected locally, before any process is contacted
    assert size.returncode == 2 and 'size must be > 0' in size.stderr
    assert live.returncode == 2 and "backend 'sim' has no live trading" in live.stderr
    assert backend.returncode == 2 and 'nope' in backend.stderr
    assert nothing.returncode == 2
    assert 'give the oid(s) to cancel, or --all' in nothing.stderr


# ---- against a running pikerd ------------------------------------------

@pytest.fixture
def pikerd(piker_env, tmp_path):
    """`piker pikerd`; at the end SIGINT: exit 0, no process left behind."""
    _, addr = piker_env
    with running_pikerd(addr, tmp_path / 'pikerd.log') as proc:
        yield proc
        code = proc.stop()
        assert code == 0, proc.log.read_text()
        assert proc.tree, 'pikerd had no daemons: the test did not use it'
        assert not proc.leftovers()


@pytest.mark.timeout(60)
def test_order_lifecycle(pikerd):
    """Commands of one phase run concurrently (they are independent)."""
    # the sim's btcusdt walks around 65,000 with a 0.1 tick
    resting, marketable, dark, alert, off_tick = run_all(
        ('buy', 'btcusdt.sim', '0.01', '60000'),
        ('buy', 'btcusdt.sim', '0.01', '70000'),
        ('sell', 'btcusdt.sim', '0.02', '80000', '--dark'),
        ('alert', 'ethusdt.sim', '9000'),
        ('buy', 'btcusdt.sim', '0.01', '60000.05'),
    )
    # a resting buy: pending -> open; the oid alone on stdout
    assert resting.returncode == 0, resting.stderr
    assert 'pending' in resting.stderr and 'open' in resting.stderr
    assert '[paper]' in resting.stderr
    oid = resting.stdout.strip()
    assert len(oid) == 36
    # marketable: fills at the ask and closes
    assert marketable.returncode == 0, marketable.stderr
    assert 'fill' in marketable.stderr and 'closed' in marketable.stderr
    # a dark sell and an alert rest in emsd's dark book
    for res in (dark, alert):
        assert res.returncode == 0 and 'dark_open' in res.stderr, res.stderr
    dark_oid, alert_oid = dark.stdout.strip(), alert.stdout.strip()
    # the venue's refusal is an error status: exit 1 with the reason
    assert off_tick.returncode == 1
    assert 'not a multiple of the price tick 0.1' in off_tick.stderr

    # every active dialog of every market; --fqme filters
    every, eth, full = run_all(('ls',), ('ls', '--fqme', 'ethusdt.sim'), ('ls', '--full'))
    assert every.returncode == 0, every.stderr
    for o in (oid, dark_oid, alert_oid):
        assert o[:8] in every.stdout and o in full.stdout
    assert 'dark_open' in every.stdout and 'ethusdt.sim' in every.stdout
    assert alert_oid[:8] in eth.stdout and oid[:8] not in eth.stdout

    # cancel one by its short oid (on another market than the session's
    # default) while cancelling every order of btcusdt.sim
    one, rest = run_all(('cancel', alert_oid[:8]), ('cancel', '--all', '--fqme', 'btcusdt.sim'))
    assert one.returncode == 0, one.stderr
    assert 'canceled' in one.stderr and 'cancelled 1 of 1' in one.stderr
    assert rest.returncode == 0, rest.stderr
    assert 'cancelled 2 of 2' in rest.stderr
    again, empty = run_all(('cancel', alert_oid), ('ls',))
    assert again.returncode == 1 and 'no active order' in again.stderr
    assert empty.returncode == 0 and 'no active orders' in empty.stderr


@pytest.mark.timeout(60)
def test_errors_are_one_line_tracebacks_only_at_debug(pikerd):
    """A refused request prints its one clear line, not tractor's echo of
    the remote traceback; `-l debug` shows the traceback too. The daemon
    that refused it logs one line as well."""
    buy, ls = run_all(('buy', 'foousdt.sim', '1', '1'), ('ls', '--fqme', 'foousdt.sim'))
    for res in (buy, ls):
        assert res.returncode == 1
        assert res.stderr.splitlines() == [
            "error: emsd refused the session: SymbolNotFound: no sim market "
            "'foousdt.sim'; did you mean solusdt.sim, ethusdt.sim, btcusdt.sim? "
            'sim markets: btcusdt.sim, ethusdt.sim, solusdt.sim, simco.sim'
        ], res.stderr
    log = pikerd.log.read_text()
    assert log.count('refused a request: SymbolNotFound') == 2 and 'Traceback' not in log, log
    # the chart (Qt offscreen): a market its backend does not have
    env = {**os.environ, 'QT_QPA_PLATFORM': 'offscreen'}
    chart = subprocess.run([PIKER, 'chart', 'foousdt.sim'], capture_output=True,
                           text=True, env=env, timeout=45)
    assert chart.returncode == 1
    assert chart.stderr.splitlines() == [
        "error: no sim market 'foousdt'; did you mean solusdt.sim, ethusdt.sim, "
        'btcusdt.sim? sim markets: btcusdt.sim, ethusdt.sim, solusdt.sim, simco.sim'
    ], chart.stderr
    # (last: a debug session turns emsd's log level to debug too)
    (debug,) = run_all(('buy', 'foousdt.sim', '1', '1', '-l', 'debug'))
    (root_debug,) = run_all(('buy', 'foousdt.sim', '1', '1'), root_opts=('-l', 'debug'))
    for res in (debug, root_debug):
        assert res.returncode == 1
        assert 'Traceback' in res.stderr and 'raise SymbolNotFound' in res.stderr
        assert res.stderr.rstrip().endswith('simco.sim')
