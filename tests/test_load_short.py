"""A short run of the EMS load generator (`piker.testing._load`, whose
command line is `bench/load.py`): a few clients in two client processes,
trading on three busy sim markets.

The full run (20 clients x 250 orders over 30 s at 1,000 quotes/s per
market) is `uv run python bench/load.py`; this one checks the same
invariants at a size a test run can afford: no lost or duplicated
dialogs (journal and paper venue audit agree with what was placed), every
dialog ended after the cancel-all, each client's statuses consistent, and
emsd's memory bounded.
"""
from __future__ import annotations

import math

import pytest

from piker.testing import _load as load

pytestmark = pytest.mark.timeout(90)


def test_short_load_loses_nothing():
    cfg = load.Config(clients=4, orders=30, duration=5.0, procs=2)
    report = load.run(cfg)
    print(report.table())

    assert not report.problems, report.problems
    assert len(report.clients) == cfg.clients
    assert len({c.pid for c in report.clients}) == cfg.procs  # two client processes
    placed = sum(c.placed for c in report.clients)
    assert placed == cfg.clients * cfg.orders
    # the warm-up's orders are in the journal too
    assert report.journal_dialogs == placed + 2 * len(load.FQMES)
    for c in report.clients:
        assert sum(c.ends.values()) == c.placed, c
        assert c.modifies and c.cancels, c
        # a client sees the statuses of every dialog of its market
        assert c.statuses >= 2 * c.placed, c
    assert sum(c.fills for c in report.clients) > 0
    assert report.clients[0].open_ms and all(math.isfinite(x) for x in report.clients[0].open_ms)
    # the market really ran at its configured rate while the clients traded
    assert all(rate > 0.5 * cfg.quote_rate for rate in report.quotes_per_s.values())
    start, peak, end = report.rss_kb
    assert 0 < start and end - start < 64 * 1024, report.rss_kb  # kB
