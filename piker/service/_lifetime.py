"""Tasks that live as long as their actor; endpoints that end cancelled.

tractor 0.1.0a5 has no public per-actor nursery: an RPC function's tasks
die with its call. A daemon whose state outlives every client (emsd's
relays and journal, a feed hub, a paper venue) starts it here, in the
actor's own service nursery. Nor has it a public way for an endpoint
whose client vanished to end as cancelled. The private tractor
attributes these need are touched only in this module.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import tractor
import trio

__all__ = [
    'actor_nursery',
    'end_endpoint_cancelled',
    'exit_actor_soon',
    'forget_actor_runtime',
    'start_actor_task',
]


def actor_nursery() -> trio.Nursery:
    """The nursery that lives as long as the current actor."""
    nursery = tractor.current_actor()._service_n
    if nursery is None:
        raise RuntimeError('this actor has no service nursery (not running?)')
    return nursery


def start_actor_task(fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """Run `fn(*args)` for the rest of the actor's life (or until it returns)."""
    actor_nursery().start_soon(fn, *args)


def exit_actor_soon() -> None:
    """End the current actor gracefully (exit code 0: pikerd forgets it
    rather than respawning it), e.g. a per-client daemon whose client left."""
    tractor.current_actor().cancel_soon()


def end_endpoint_cancelled(ctx: tractor.Context) -> None:
    """End the endpoint running `ctx` as cancelled (from its next checkpoint).

    For an endpoint whose client is gone: nobody is left to receive a
    result, and returning would make tractor log a crash on the dead
    socket; ending as cancelled leaves a single "failed to ship" line.
    """
    scope_n = ctx._scope_nursery
    if scope_n is not None:
        scope_n.cancel_scope.cancel()


def forget_actor_runtime() -> bool:
    """Forget an actor runtime left behind by an interrupted `trio.run`
    (a test killed by pytest-timeout never ran its teardown): True if
    there was one. Its processes are the caller's to end."""
    import sys

    state = sys.modules.get('tractor._state')
    if state is None or state._current_actor is None:
        return False
    from . import _mngr

    state._current_actor = None
    state._runtime_vars.update(_is_root=False, _root_mailbox=(None, None), _debug_mode=False)
    _mngr._services = None
    return True
