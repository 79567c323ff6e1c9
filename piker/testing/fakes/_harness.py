"""Generic harness for fake venues: an ASGI app on loopback, inside trio.

A fake venue is a Starlette app (routes, websockets) served by hypercorn's
trio worker in the caller's own trio loop (`serve_asgi`), so a test's
client code, the fake's market and its fault switches all share one event
loop and need no locks. `ThreadRunner` runs such a server in a thread of
its own (with its own trio loop) for sync tests and for tests that boot
an actor tree under `trio.run` themselves; its `call()` runs a function
inside the fake's loop and returns the result.

Nothing here knows about any particular venue: a later fake Kraken reuses
it as is.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from contextlib import asynccontextmanager as acm
from typing import Any, Generic, TypeVar

import trio

log = logging.getLogger('piker.testing.fakes')

T = TypeVar('T')


@acm
async def serve_asgi(
    app: Any,
    host: str = '127.0.0.1',
    port: int = 0,
    ping_interval: float | None = None,
) -> AsyncIterator[tuple[str, int]]:
    """Serve `app` on `host:port` (0: any free port) until the block exits.

    Yields the bound `(host, port)`. Websocket ping frames go out every
    `ping_interval` seconds (None: never). On exit the server stops
    accepting and closes what is left within a short grace period.
    """
    from hypercorn.config import Config
    from hypercorn.trio import serve

    if not host.startswith('127.') and host not in ('localhost', '::1'):
        raise ValueError(f'fake venues bind loopback only, not {host!r}')
    cfg = Config()
    cfg.bind = [f'{host}:{port}']
    cfg.accesslog = None
    cfg.errorlog = log
    cfg.graceful_timeout = 0.5
    cfg.websocket_ping_interval = ping_interval
    shutdown = trio.Event()
    async with trio.open_nursery() as n:
        binds = await n.start(_serve, serve, app, cfg, shutdown)
        bound = binds[0].rsplit(':', 1)
        try:
            yield bound[0].split('//', 1)[1], int(bound[1])
        finally:
            shutdown.set()


async def _serve(serve: Callable, app: Any, cfg: Any, shutdown: trio.Event,
                 task_status: trio.TaskStatus = trio.TASK_STATUS_IGNORED) -> None:
    await serve(app, cfg, shutdown_trigger=shutdown.wait, task_status=task_status)


class ThreadRunner(Generic[T]):
    """Run `async with factory() as obj` in a background thread's trio loop.

    `start()` returns `obj` once it is up (re-raising a start-up error);
    `call(fn, *args)` runs sync `fn(*args)` in that loop and returns its
    result, `acall(afn, *args)` likewise for an async function; `stop()`
    exits the context and joins the thread. From inside another trio loop
    use `trio.to_thread.run_sync(runner.call, fn, ...)` so that loop is
    not blocked.
    """

    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[T]], name: str) -> None:
        self._factory = factory
        self._name = name
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._obj: T | None = None
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> T:
        if self._thread is not None:
            raise RuntimeError(f'{self._name} already started')
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f'{self._name} did not start within {timeout}s')
        if self._error is not None:
            self._thread.join()
            raise self._error
        assert self._obj is not None
        return self._obj

    def _run(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = trio.Event()
            async with self._factory() as obj:
                self._obj = obj
                self._ready.set()
                await self._stop.wait()

        try:
            trio.run(main)
        except BaseException as err:  # reported to start() or stop()
            self._error = err
        finally:
            self._ready.set()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run sync `fn(*args, **kwargs)` inside the fake's loop."""
        return trio.from_thread.run_sync(lambda: fn(*args, **kwargs), trio_token=self._live_token())

    def acall(self, afn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `await afn(*args, **kwargs)` inside the fake's loop."""
        return trio.from_thread.run(lambda: afn(*args, **kwargs), trio_token=self._live_token())

    def _live_token(self) -> trio.lowlevel.TrioToken:
        if self._token is None or self._thread is None or not self._thread.is_alive():
            raise RuntimeError(f'{self._name} is not running')
        return self._token

    def stop(self, timeout: float = 10.0) -> None:
        thread = self._thread
        if thread is None:
            return
        if thread.is_alive() and self._stop is not None and self._token is not None:
            try:
                trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f'{self._name} did not stop within {timeout}s')
        self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err
