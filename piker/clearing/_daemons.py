"""The clearing daemons, each defined once: emsd and the paper venues.

Everything that spawns one (a client's `open_ems()`, the `piker ems` CLI,
emsd's venue relays, a joined host's supervisor, benches and tests) takes
its spec from here, so pikerd respawns and stops the same daemon whoever
asked for it first. Names and modules only: importing this module loads
neither daemon.
"""
from __future__ import annotations

from ..service import STOP_EARLY, STOP_FIRST, DaemonKind

__all__ = ['EMSD', 'PAPERBOI']

# emsd: one per registry; consumes the venues, so it stops first. Its
# start-up hook restores the journal's dialogs and re-arms dark orders.
EMSD = DaemonKind(
    prefix='emsd',
    modules=('piker.clearing._ems', 'piker.clearing._ems_admin'),
    startup='piker.clearing._ems:startup',
    stop_order=STOP_FIRST,
)

# paperboi.<broker>: the paper venue of one broker; consumes brokerd's
# quotes. Its start-up hook reloads its working orders and their feeds.
PAPERBOI = DaemonKind(
    prefix='paperboi',
    modules=('piker.clearing._paper_engine',),
    startup='piker.clearing._paper_engine:startup',
    stop_order=STOP_EARLY,
)
