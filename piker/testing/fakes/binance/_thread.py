"""`FakeBinanceThread`: a fake Binance in a background thread.

For sync tests, and for tests whose own `trio.run` boots an actor tree
(the fake must keep answering while that loop blocks in a subprocess
wait). Control calls made from any thread run inside the fake's loop:
`thread.push(...)`, `thread.faults.delay_acks(...)`, `thread.orders()`;
plain attributes (`rest_url`, `api_key`, ...) are read directly.
"""
from __future__ import annotations

from typing import Any

from .._harness import ThreadRunner
from ._fake import FakeBinance, open_fake_binance


class _Proxy:
    """Calls on `obj`'s methods run in the runner's loop."""

    def __init__(self, runner: ThreadRunner, obj: Any) -> None:
        self._runner = runner
        self._obj = obj

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._obj, name)
        if callable(attr):
            return lambda *a, **kw: self._runner.call(attr, *a, **kw)
        return attr


class FakeBinanceThread(_Proxy):
    """`with FakeBinanceThread(seed=1) as fake: ...` (kwargs as `FakeBinance`)."""

    def __init__(self, port: int = 0, **kwargs: Any) -> None:
        runner: ThreadRunner[FakeBinance] = ThreadRunner(
            lambda: open_fake_binance(port=port, **kwargs), name='fake-binance')
        super().__init__(runner, None)
        self.faults: Any = None

    def start(self) -> FakeBinanceThread:
        self._obj = self._runner.start()
        self.faults = _Proxy(self._runner, self._obj.faults)
        return self

    def stop(self) -> None:
        self._runner.stop()

    def __enter__(self) -> FakeBinanceThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f'<FakeBinanceThread {self._obj!r}>'
