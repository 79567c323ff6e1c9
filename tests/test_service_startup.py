"""`DaemonSpec.startup`: the hook pikerd runs in a daemon right after every
(re)spawn, so a crashed daemon resumes its work with nobody asking."""
from __future__ import annotations

import os
import signal

import pytest
import trio

import tests._startup_fixtures as fx
from piker.service import maybe_spawn_daemon, open_pikerd

MODS = ['tests._startup_fixtures']
HOOK = 'tests._startup_fixtures:startup'


@pytest.mark.timeout(30)
def test_startup_hook_runs_after_spawn_and_every_respawn(piker_env):
    async def main():
        async with open_pikerd() as services:
            async with maybe_spawn_daemon('hookd', enable_modules=MODS, startup=HOOK) as p:
                pid = await p.run(fx.getpid)
                # ran once, in the daemon, before anyone got it
                assert await p.run(fx.runs) == [pid]
            os.kill(pid, signal.SIGKILL)
            with trio.fail_after(15):
                while services.daemon_pid('hookd') in (None, pid) or (
                        services._daemons['hookd'].state != 'running'):
                    await trio.sleep(0.02)
            # nobody asked for it: pikerd respawned it and ran the hook
            new = services.daemon_pid('hookd')
            async with maybe_spawn_daemon('hookd', enable_modules=MODS) as p:
                assert await p.run(fx.runs) == [new]

    trio.run(main)


@pytest.mark.timeout(30)
def test_a_failing_startup_hook_leaves_the_daemon_serving(piker_env):
    async def main():
        async with open_pikerd():
            async with maybe_spawn_daemon(
                'hookd', enable_modules=MODS, startup='tests._startup_fixtures:broken_startup',
            ) as p:
                assert await p.run(fx.getpid) > 0
                assert await p.run(fx.runs) == []

    trio.run(main)
