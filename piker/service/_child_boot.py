"""Sub-actor entry point: piker's tractor fixes first, then `tractor._child`.

tractor starts a child as `python -m tractor._child`, which connects to
its parent *before* loading any module of the child's `enable_modules`:
that first connection would run without piker's transport (no TLS for a
parent on a non-loopback address, so the parent refuses it). Children are
started through this module instead (`_tls` rewrites tractor's spawn
command), so the patches are in place before the first byte.

Importing piker.service here also imports `_child_init` before the child
is an actor, so its start-up hook (parent-death signal, log level) runs
again right after tractor loads the child's modules.
"""
import os
import runpy
import sys

from tractor._actor import Actor

from piker.service import _child_init

# `python -m` imported piker.service (and so `_child_init`, which records
# *this* process as the spawner) before this line: the real spawner's pid
# comes first on the command line (`_tls._Lowlevel.open_process`)
_SPAWNER = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1].isdigit() else None

_orig_load_modules = Actor.load_modules


def _load_modules(self: Actor) -> None:
    _orig_load_modules(self)
    if _SPAWNER is not None:
        os.environ[_child_init.ENV_SPAWNER_PID] = _SPAWNER
    _child_init._init()


if __name__ == '__main__':
    Actor.load_modules = _load_modules  # type: ignore[method-assign]
    runpy.run_module('tractor._child', run_name='__main__', alter_sys=True)
