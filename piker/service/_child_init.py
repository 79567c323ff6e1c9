"""Start-up hook run inside every piker sub-actor (it is in `enable_modules`).

tractor imports each module of `enable_modules` in the child right after the
child has connected back to its parent, inside the child's trio run. Importing
this module there:

- arms a parent-death signal (TRACTOR.md rule 6): a SIGKILLed parent must not
  leave orphaned daemons behind.
- ignores SIGINT, so a terminal Ctrl-C (sent to the whole process group)
  reaches only the root, which then cancels the tree gracefully (rule 5)
  instead of every daemon dying on its own and being mistaken for a crash.
- configures piker's console logging at the actor's level and keeps tractor's
  own logger at `error` (rule 15).

Why not plain `prctl(PR_SET_PDEATHSIG, SIGTERM)`: Linux sends the death signal
when the parent *thread* that forked the child exits, and trio runs
`subprocess.Popen` in a cached worker thread that exits after 10 s idle. A
plain SIGTERM death signal therefore kills every daemon ~10 s after it was
spawned (measured). So the death signal is a dedicated one whose handler
checks `getppid()`: a worker thread exiting re-parents the child to another
thread of the same parent process (same pid, ignore it), a dead parent
re-parents it to init or a subreaper (different pid, shut down).

In a root process importing this module only records this process's pid in
the environment so its children know whom to watch.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from typing import Any

import trio

from ..log import get_console_log, get_logger

log = get_logger('service')

# pid of the process that spawns children, inherited by them through the env
ENV_SPAWNER_PID = 'PIKER_SPAWNER_PID'

# a dedicated signal (not SIGTERM): its handler tells thread exits from deaths
DEATH_SIGNAL: int = getattr(signal, 'SIGUSR2', 0)
_PR_SET_PDEATHSIG = 1

# after a parent death: graceful cancel first, hard exit after this long
HARD_EXIT_AFTER = 2.0

_armed: bool = False
_expected_ppid: int | None = None
_trio_token: trio.lowlevel.TrioToken | None = None


def _orphaned() -> bool:
    return _expected_ppid is not None and os.getppid() != _expected_ppid


def _shutdown_orphan() -> None:
    """Cancel this actor gracefully; hard-exit if that does not finish."""
    timer = threading.Timer(HARD_EXIT_AFTER, os._exit, args=(1,))
    timer.daemon = True
    timer.start()

    def _cancel() -> None:
        import tractor
        actor = tractor.current_actor(err_on_no_runtime=False)
        if actor is not None and actor._service_n is not None:
            actor.cancel_soon()
        else:
            os._exit(1)

    if _trio_token is None:
        os._exit(1)
    try:
        # signal-safe and thread-safe way into the trio loop
        _trio_token.run_sync_soon(_cancel)
    except trio.RunFinishedError:
        os._exit(1)


def _on_death_signal(signum: int, frame: Any) -> None:
    if _orphaned():
        _shutdown_orphan()
    # else: one of the parent's threads exited; the parent is alive.


def _arm(expected_ppid: int) -> bool:
    """Arm the parent-death signal; return False where unsupported."""
    global _armed, _expected_ppid, _trio_token
    if not sys.platform.startswith('linux') or not DEATH_SIGNAL:
        return False
    _expected_ppid = expected_ppid
    try:
        _trio_token = trio.lowlevel.current_trio_token()
    except RuntimeError:
        _trio_token = None
    signal.signal(DEATH_SIGNAL, _on_death_signal)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(DEATH_SIGNAL), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        log.error(f'prctl(PR_SET_PDEATHSIG) failed: {os.strerror(err)}')
        return False
    _armed = True
    # the parent may have died before prctl(): the signal would never come
    if _orphaned():
        os._exit(1)
    return True


def _is_subactor() -> Any:
    """Return the current actor if this process is a tractor sub-actor."""
    try:
        import tractor
    except ImportError:  # pragma: no cover
        return None
    actor = tractor.current_actor(err_on_no_runtime=False)
    if actor is None or getattr(actor, '_parent_chan', None) is None:
        return None
    return actor


def _init() -> None:
    actor = _is_subactor()
    if actor is not None and not _armed:
        from tractor._state import debug_mode
        env_pid = os.environ.get(ENV_SPAWNER_PID, '')
        expected = int(env_pid) if env_pid.isdigit() else os.getppid()
        _arm(expected)
        if not debug_mode() and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        # tractor hands every child its parent's level, 'ERROR' by default:
        # then piker's level comes from PIKER_LOGLEVEL (exported by pikerd)
        level = actor.loglevel
        get_console_log(None if not level or level.upper() == 'ERROR' else level)
    # whoever imports this spawns children (or is about to): they watch us
    os.environ[ENV_SPAWNER_PID] = str(os.getpid())


async def status() -> dict[str, Any]:
    """RPC: report this actor's pid and whether the death signal is armed.

    pikerd calls it right after spawning a daemon: the reply proves the
    start-up hook ran in the child and that the child has registered.
    """
    import tractor
    actor = tractor.current_actor(err_on_no_runtime=False)
    return {
        # where it listens: a joined supervisor's registry is remote
        'addr': list(actor.accept_addr) if actor and actor.accept_addr else None,
        'pid': os.getpid(),
        'ppid': os.getppid(),
        'armed': _armed,
        'expected_ppid': _expected_ppid,
    }


_init()
