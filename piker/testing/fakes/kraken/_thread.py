"""`FakeKrakenThread`: a fake Kraken in a background thread (for sync
tests and tests whose own `trio.run` boots an actor tree); control calls
run inside the fake's loop, as with `FakeBinanceThread`."""
from __future__ import annotations

from typing import Any

from .._harness import ThreadRunner
from ..binance._thread import _Proxy
from ._fake import FakeKraken, open_fake_kraken


class FakeKrakenThread(_Proxy):
    """`with FakeKrakenThread(quote_rate=0) as fake: ...` (kwargs as `FakeKraken`)."""

    def __init__(self, port: int = 0, **kwargs: Any) -> None:
        runner: ThreadRunner[FakeKraken] = ThreadRunner(
            lambda: open_fake_kraken(port=port, **kwargs), name='fake-kraken')
        super().__init__(runner, None)
        self.faults: Any = None

    def start(self) -> FakeKrakenThread:
        self._obj = self._runner.start()
        self.faults = _Proxy(self._runner, self._obj.faults)
        return self

    def stop(self) -> None:
        self._runner.stop()

    def __enter__(self) -> FakeKrakenThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f'<FakeKrakenThread {self._obj!r}>'
