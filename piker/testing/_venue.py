"""Venue-neutral part of a live-mode simulation against a fake venue.

`run_venue_sim(async_fn, open_fake, broker, wrap, ...)` serves a fresh
fake (`open_fake(**fake_kwargs)`) in the test's trio loop, writes the
`[<broker>]` table of `brokers.toml` that points at it (`venue_conf`,
keys left out with `keys=False`), boots the tree like `run_sim()` and
calls `async_fn(wrap(sim, fake))`. `piker.testing._kraken` is built on
it (`_binance` predates it and has the same shape).
"""
from __future__ import annotations

import tomllib
from collections.abc import Awaitable, Callable
from typing import Any


def venue_conf(fake: Any, broker: str, keys: bool = True,
               extra: dict[str, Any] | None = None) -> str:
    """`brokers.toml` text with the fake's `[broker]` table (`extra`
    tables added, `extra[broker]` merged into it)."""
    import tomli_w

    data = tomllib.loads(fake.config_toml())
    table = data[broker]
    if not keys:
        table.pop('api_key', None)
        table.pop('api_secret', None)
    for name, value in (extra or {}).items():
        if name == broker:
            table.update(value)
        else:
            data[name] = value
    return tomli_w.dumps(data)


def run_venue_sim(
    async_fn: Callable[[Any], Awaitable[Any]],
    open_fake: Callable[..., Any],
    broker: str,
    wrap: Callable[[Any, Any], Any],
    *,
    fake: dict[str, Any] | None = None,
    keys: bool = True,
    brokers: dict[str, Any] | None = None,
    conf: dict[str, Any] | str | None = None,
    loglevel: str | None = None,
    timeout: float = 60.0,
    check_leaks: bool = True,
) -> Any:
    """See the module docstring; `fake` defaults to a paused walk."""
    import trio

    from ._sim import _write_toml, check_gone, isolated_config_dir, run_tree

    confdir = isolated_config_dir(f'run_{broker}_sim()')
    _write_toml(confdir / 'conf.toml', conf)
    opts = {'quote_rate': 0.0, **(fake or {})}

    async def main() -> tuple[Any, set[int]]:
        async with open_fake(**opts) as venue:
            (confdir / 'brokers.toml').write_text(venue_conf(venue, broker, keys, brokers))
            return await run_tree(lambda sim: async_fn(wrap(sim, venue)), confdir,
                                  loglevel, timeout)

    result, pids = trio.run(main)
    if check_leaks:
        check_gone(pids)
    return result


__all__ = ['run_venue_sim', 'venue_conf']
