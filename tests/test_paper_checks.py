"""The paper venue's pure order checks (issue #9, items 5 and 6): what it
accepts as a broker-native key, and the bounds a price and a notional
must keep before an order rests in a book."""
from __future__ import annotations

import pytest

from piker.clearing._paper_engine import native_fqme


@pytest.mark.parametrize('symbol, fqme', [
    ('btcusdt', 'btcusdt.sim'),
    ('mnq.cme', 'mnq.cme.sim'),  # a venue part is fine: the feed resolves it
])
def test_native_keys(symbol, fqme):
    assert native_fqme(symbol, 'sim') == (fqme, '')


@pytest.mark.parametrize('symbol, why', [
    ('BTCUSDT', "keys are lower case ('btcusdt')"),
    ('BTCUSDT.SIM', 'lower case'),
    ('a.b.c.d', 'at most 4'),
    ('a..b', 'not a broker-native key of sim'),
])
def test_bad_native_keys_say_why(symbol, why):
    fqme, problem = native_fqme(symbol, 'sim')
    assert fqme == '' and why in problem and repr(symbol) in problem
