"""`piker order buy|sell` with order types, time in force and reduce-only."""
from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from piker.cli._order_opts import OptionError, order_fields, parse_tif, parse_trail
from tests.test_cli_orders import pikerd, run_all  # noqa: F401  (the fixture)


def test_price_reads_naturally_per_type():
    assert order_fields('buy', 100.0) == (100.0, {'type': 'limit'})
    assert order_fields('sell', 95.0, kind='stop') == (95.0, {'type': 'stop'})
    assert order_fields('sell', None, kind='stop', trigger=95.0) == (95.0, {'type': 'stop'})
    # --trigger with PRICE: a stop_limit, PRICE its limit
    assert order_fields('sell', 94.5, trigger=95.0) == (
        95.0, {'type': 'stop_limit', 'limit': 94.5})
    assert order_fields('sell', None, trigger=95.0) == (95.0, {'type': 'stop'})
    assert order_fields('sell', 105.0, kind='take_profit') == (105.0, {'type': 'take_profit'})
    # --trail alone: a trailing stop from the market
    assert order_fields('sell', None, trail='0.5%') == (
        0.0, {'type': 'trailing_stop', 'trail': {'amount': 0.5, 'unit': 'pct'}})
    assert order_fields('sell', None, trail='5', trigger=98.0)[0] == 98.0
    price, fields = order_fields('buy', 100.0, tif='ioc', reduce_only=True)
    assert fields == {'type': 'limit', 'tif': 'ioc', 'reduce_only': True}


@pytest.mark.parametrize('args,why', [
    (dict(price=100.0, trigger=95.0, kind='limit'), 'a limit order has no trigger'),
    (dict(price=None), 'needs PRICE'),
    (dict(price=None, kind='stop_limit', trigger=95.0), 'needs --trigger (the trigger) and PRICE'),
    (dict(price=95.0, kind='stop', trigger=94.0), 'PRICE or --trigger, not both'),
    (dict(price=None, kind='take_profit'), 'needs its trigger'),
    (dict(price=None, kind='trailing_stop'), 'needs --trail'),
    (dict(price=100.0, kind='stop', trail='5'), '--trail is for a trailing_stop'),
    (dict(price=100.0, kind='market'), '--type must be one of'),
    (dict(price=100.0, tif='day'), '--tif must be gtc, ioc, fok or gtd'),
    (dict(price=100.0, tif='gtd:yesterday'), 'not an ISO time'),
    (dict(price=100.0, tif='gtd:2020-01-01T00:00Z'), 'is in the past'),
    (dict(price=None, trail='0%'), '--trail must be > 0'),
    (dict(price=None, trail='150%'), 'below 100%'),
    (dict(price=None, trail='x'), "--trail must be a number of ticks"),
])
def test_bad_combinations_say_why(args, why):
    price = args.pop('price')
    with pytest.raises(OptionError, match=None) as err:
        order_fields('sell', price, **args)
    assert why in str(err.value)


def test_parse_tif_and_trail():
    now = datetime(2026, 12, 1, tzinfo=UTC)
    tif, ns = parse_tif('gtd:2026-12-31T00:00Z', now=now)
    assert tif == 'gtd' and ns == int(datetime(2026, 12, 31, tzinfo=UTC).timestamp() * 1e9)
    # no zone: UTC; an offset is honoured
    assert parse_tif('gtd:2026-12-31T00:00', now=now)[1] == ns
    assert parse_tif('gtd:2026-12-31T01:00+01:00', now=now)[1] == ns
    assert parse_tif('IOC') == ('ioc', None)
    assert parse_trail('5') == {'amount': 5.0, 'unit': 'ticks'}
    assert parse_trail(' 0.25 %') == {'amount': 0.25, 'unit': 'pct'}


@pytest.mark.timeout(30)
def test_bad_combos_refused_before_any_process(piker_env):
    combo, tif, alert = run_all(
        ('sell', 'btcusdt.sim', '1', '95', '--type', 'stop', '--trigger', '94'),
        ('buy', 'btcusdt.sim', '1', '60000', '--tif', 'gtd:2001-01-01'),
        ('alert', 'btcusdt.sim', '60000'),  # unchanged
    )
    assert combo.returncode == 2 and 'not both' in combo.stderr
    assert tif.returncode == 2 and 'in the past' in tif.stderr
    assert alert.returncode == 1 and 'no pikerd answers' in alert.stderr


@pytest.mark.timeout(200)
def test_types_placed_and_listed(pikerd):  # noqa: F811
    # the sim's btcusdt walks around 65,000 with a 0.1 tick
    stop, stop_limit, trail, gtd, ioc = run_all(
        ('sell', 'btcusdt.sim', '0.01', '50000', '--type', 'stop'),
        ('buy', 'btcusdt.sim', '0.01', '90500', '--trigger', '90000'),
        ('sell', 'btcusdt.sim', '0.01', '--trail', '0.5%'),
        ('buy', 'btcusdt.sim', '0.01', '50000', '--tif', 'gtd:2099-12-31T00:00Z',
         '--dark', '--type', 'take_profit'),
        ('buy', 'btcusdt.sim', '0.01', '50000', '--tif', 'ioc'),
        timeout=90,  # the first commands start emsd, the paper engine, brokerd
    )
    for res in (stop, stop_limit, trail, gtd):
        assert res.returncode == 0 and 'dark_open' in res.stderr, res.stderr
    assert 'stop_limit 90,500 trigger 90,000' in stop_limit.stderr
    assert re.search(r'trailing_stop 0.5% trigger 6\d,\d{3}', trail.stderr), trail.stderr
    # an ioc buy far under the market: nothing to take, cancelled
    assert ioc.returncode == 0 and 'canceled' in ioc.stderr and 'ioc' in ioc.stderr
    (ls,) = run_all(('ls',), timeout=60)
    assert ls.returncode == 0, ls.stderr
    for word in ('stop_limit 90,500', 'trailing_stop 0.5%', 'take_profit', 'gtd 2099-12-31',
                 'type', 'trigger', 'tif'):
        assert word in ls.stdout, ls.stdout
