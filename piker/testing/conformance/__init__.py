"""The backend conformance kit: one parametrised pytest suite that checks
a backend against the contract of `piker.brokers` (and, with a trades
dialogue, DESIGN.md section 5) through a venue `Harness`.

    uv run pytest --pyargs piker.testing.conformance --backend NAME

`--backend` is repeatable (default: every built-in backend: sim,
binance, kraken); `NAME=pkg.module:factory` names a harness of your own,
or register it under the `piker.conformance` entry point group.

Two levels of checks:
- `test_endpoints`: the backend module's endpoints called directly, in
  process (market info and tick quantizing, search, history shape,
  `stream_quotes`' prompt `started()` and its quotes, `SymbolNotFound`);
- `test_orders`: the whole tree through emsd in the harness's mode (live
  against a venue; paper for the sim, whose venue is the paper engine):
  flows 1-8, the order report after the trading daemon's SIGKILL,
  duplicate fills dropped, a modify keeps one venue order.

See docs/backends.md for writing a backend and its harness.
"""
from ._harness import Harness, Quotes, Venue, VenueOrder, default_backends, get_harness

__all__ = ['Harness', 'Quotes', 'Venue', 'VenueOrder', 'default_backends', 'get_harness']
