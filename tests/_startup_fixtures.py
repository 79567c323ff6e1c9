"""Test-only daemon start-up hooks for tests/test_service_startup.py.

Sub-actors import this as `tests._startup_fixtures`; keep it importable and
free of side effects beyond its counters.
"""
from __future__ import annotations

import os

# how many times the hook ran in this process
_runs: list[int] = []


async def startup() -> None:
    """A start-up hook: records that it ran (and where)."""
    _runs.append(os.getpid())


async def broken_startup() -> None:
    """A start-up hook that fails."""
    raise RuntimeError('this hook is broken on purpose')


async def runs() -> list[int]:
    """RPC: the pids the hook recorded in this process."""
    return list(_runs)


async def getpid() -> int:
    """RPC: this actor's pid."""
    return os.getpid()
