"""piker's service tree: pikerd, on-demand daemons, and their supervision.

pikerd is the root actor and the tractor registry. Daemons (`brokerd.<b>`,
`emsd`, `paperboi.<b>`) are spawned on demand under pikerd by whoever first
needs them (`maybe_spawn_daemon`). tractor 0.1.0a5 has no supervision, so
this package supplies it (see TRACTOR.md): pikerd respawns crashed daemons
and drops their stale registry entries, every sub-actor dies with its parent,
long-lived contexts run under heartbeats (`watch_peer`, `watchdog`,
`open_watched_context`), consumers read streams through bounded drain
buffers (`open_drained_stream`) and reconnect loops wait with `Backoff`.
"""
from . import _tls, _tractor_fixes, _wire  # noqa: F401  (first: every actor runs with them)
from ._buffer import DrainBuffer, Policy, open_drained_stream
from ._daemon import (
    cancel_service,
    find_service,
    list_services,
    maybe_spawn_daemon,
    open_daemon,
    open_pikerd_portal,
)
from ._heartbeat import (
    PeerLost,
    PeerWatch,
    open_watched_context,
    ping,
    watch_peer,
    watchdog,
)
from ._lifetime import (
    actor_nursery,
    end_endpoint_cancelled,
    exit_actor_soon,
    forget_actor_runtime,
    start_actor_task,
)
from ._mngr import (
    DAEMON_MODULES,
    STOP_EARLY,
    STOP_FIRST,
    STOP_LAST,
    STOP_NORMAL,
    DaemonInfo,
    DaemonKind,
    DaemonSpec,
    Services,
    current_services,
)
from ._pikerd import connect_pikerd, maybe_open_pikerd, open_pikerd, serve_pikerd
from ._reconnect import Backoff, leave_if_cancelled, reconnecting
from ._registry import PikerdNotRunning, RegistryBusy, ServiceError

__all__ = [
    'Backoff',
    'DAEMON_MODULES',
    'DaemonInfo',
    'DaemonKind',
    'DaemonSpec',
    'DrainBuffer',
    'PeerLost',
    'PeerWatch',
    'PikerdNotRunning',
    'Policy',
    'RegistryBusy',
    'STOP_EARLY',
    'STOP_FIRST',
    'STOP_LAST',
    'STOP_NORMAL',
    'ServiceError',
    'Services',
    'cancel_service',
    'connect_pikerd',
    'current_services',
    'exit_actor_soon',
    'find_service',
    'actor_nursery',
    'end_endpoint_cancelled',
    'forget_actor_runtime',
    'leave_if_cancelled',
    'list_services',
    'maybe_open_pikerd',
    'maybe_spawn_daemon',
    'open_daemon',
    'open_drained_stream',
    'open_pikerd',
    'open_pikerd_portal',
    'open_watched_context',
    'ping',
    'reconnecting',
    'serve_pikerd',
    'start_actor_task',
    'watch_peer',
    'watchdog',
]
