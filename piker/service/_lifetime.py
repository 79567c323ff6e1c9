"""Tasks that live as long as their actor.

tractor 0.1.0a5 has no public per-actor nursery: an RPC function's tasks
die with its call. A daemon whose state outlives every client (emsd's
relays and journal, a feed hub) starts it here, in the actor's own
service nursery - the one private tractor attribute this needs is
touched only in this module.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import tractor
import trio

__all__ = ['actor_nursery', 'exit_actor_soon', 'start_actor_task']


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
