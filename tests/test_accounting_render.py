"""The ledger and positions files render each trade once (cached text):
the files must stay exactly what `tomli_w` makes of their data."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from piker.accounting import Account, Transaction, TransactionLedger

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FQMES = ('btcusdt.sim', 'ethusdt.sim', 'aapl.nasdaq.sim')

fills = st.lists(
    st.tuples(
        st.sampled_from(FQMES),
        st.sampled_from([-3.0, -1.0, -0.5, 0.5, 1.0, 2.0]),
        st.floats(1.0, 1000.0, allow_nan=False),
        st.integers(-50, 50),  # seconds: out-of-order arrivals too
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(fills=fills, split=st.integers(0, 40))
def test_cached_rendering_equals_a_fresh_dump(tmp_path_factory, fills, split):
    path = tmp_path_factory.mktemp('acct')
    ledger = TransactionLedger('sim', 'paper', path=path / 'ledger.toml')
    account = Account('sim', 'paper', path=path / 'account.toml')
    txns = [
        Transaction(fqme=f, tid=f't{i}', size=size, price=price,
                    dt=T0 + timedelta(seconds=secs))
        for i, (f, size, price, secs) in enumerate(fills)
    ]
    # in two writes: the second reuses the first's cached tables
    for part in (txns[:split], txns[split:]):
        ledger.update_from_txns(part)
        account.update_from_txns(part)
        assert ledger.render() == tomli_w.dumps(ledger.to_toml())
        assert account.render() == tomli_w.dumps(account.to_toml())
        ledger.write()
        account.write()
    again = TransactionLedger.load('sim', 'paper', path=path / 'ledger.toml')
    assert list(again) == [t.tid for t in ledger.iter_txns()]
    pps = Account.load('sim', 'paper', path=path / 'account.toml')
    assert {p.fqme: (p.size, p.ppu) for p in pps} == {
        p.fqme: (p.size, p.ppu) for p in account
    }
