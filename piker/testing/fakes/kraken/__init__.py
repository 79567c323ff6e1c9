"""A fake Kraken spot venue for offline tests (docs/fake_kraken.md).

A real HTTP + websocket server on loopback, built on the same harness as
the fake Binance (`piker.testing.fakes._harness`) and reusing its
scripted markets and websocket hub: Kraken's REST envelopes and names,
`API-Key`/`API-Sign` signing with nonces, the API and trading rate
counters, websocket v2 (`ticker`, `trade`, `executions`, `add_order`,
`amend_order`, `cancel_order`, `ping`, `heartbeat`), and fault injection.

Module map: `_pairs` (listing), `_auth` (keys, signatures, counters),
`_engine` (account, matching, executions), `_rest` / `_app` (HTTP and
websocket surface), `_faults`, `_control` (control API), `_fake` (the
state object, `open_fake_kraken`), `_thread` (thread runner).
"""
from ._auth import sign
from ._errors import KrakenError
from ._fake import FakeKraken, open_fake_kraken
from ._pairs import PAIRS, PairSpec
from ._thread import FakeKrakenThread

__all__ = ['PAIRS', 'FakeKraken', 'FakeKrakenThread', 'KrakenError', 'PairSpec',
           'open_fake_kraken', 'sign']
