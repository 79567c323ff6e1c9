"""Order clearing: the EMS client API, message protocol, dialogs, dark book.

Scripts, the CLI and the UI need only the client API (DESIGN.md section
6): `open_ems()` yields an `OrderClient` plus the `trades` stream of
`Status` / `BrokerdPosition` messages; `wait_for_status()` is the usual
way to await one dialog's progress.

The pure core: `_messages` is the wire protocol (section 5), `_dialogs`
the per-order state machine emsd runs every message through (`Dialog`,
its data `DialogState`, the `TRANSITIONS` table, `DialogTable`), `_dark`
the trigger index of resting dark orders and alerts, `_reconcile` a
venue's order report applied to the table, `_risk` the pre-trade checks
and trading state (kill switch) over `_risk_limits` (which limit applies)
and `_risk_book` (the table's working orders, positions; `_risk_state`
persists the switch), `_journal` emsd's SQLite journal of every dialog
(restore and history).

emsd (RPC modules, not API): `_ems` is its wiring (`open_emsd()`, the
client session), made of `_fanout` (client queues: who hears what),
`_relays` (venue trades dialogues: connect, reconnect, reconcile, send),
`_dark_feeds` (the dark book's market feeds and triggers), `_intake`
(client commands in) and `_effects` (the executor of the core's effects
that joins them); `_ems_admin` is its `piker ems` RPC; `_daemons` defines
emsd and paperboi for spawning and supervision. `_paper_engine`
is paperboi, the paper venue: its order entry and endpoint, with
`_paper_rules` (keys, ticks, band, fees), `_paper_feeds` (quotes in),
`_paper_fills` (fills recorded, booked, reported), `_paper_dialogues`
(emsd dialogues: report, commands, events), `_paper_restore` (start-up
from disk), `_paper_accounts`/`_paper_store` (its files).
"""
from ._client import (
    Bracket,
    EMSError,
    OrderClient,
    OrderFinishedError,
    UnknownOrderError,
    open_ems,
    wait_for_status,
)
from ._dark import DarkBook, DarkEntry, Triggered, pad_price
from ._dialogs import (
    TRANSITIONS,
    Arm,
    Dialog,
    DialogChange,
    DialogState,
    DialogTable,
    Disarm,
    Effect,
    Event,
    PendingRequest,
    Phase,
    ToVenue,
)
from ._journal import DialogRecord, Journal, JournalEntry, JournalError, journal_path
from ._messages import (
    TERMINAL_RESPS,
    BrokerdCancel,
    BrokerdError,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdOrdersSynced,
    BrokerdPosition,
    BrokerdStatus,
    Cancel,
    MessageError,
    Order,
    Status,
    Trail,
    batch_frame,
    commands_of,
    decode_backend_cmd,
    decode_broker_msg,
    decode_client_msg,
    decode_ems_msg,
    error_status,
)
from ._risk import Refusal, RiskGate, RiskReport, TradingState

__all__ = [
    'Arm',
    'BrokerdCancel',
    'BrokerdError',
    'BrokerdFill',
    'BrokerdOrder',
    'BrokerdOrderAck',
    'BrokerdOrdersSynced',
    'BrokerdPosition',
    'BrokerdStatus',
    'Cancel',
    'DarkBook',
    'DarkEntry',
    'Dialog',
    'DialogChange',
    'DialogRecord',
    'DialogState',
    'DialogTable',
    'Disarm',
    'EMSError',
    'Effect',
    'Event',
    'Journal',
    'JournalEntry',
    'JournalError',
    'MessageError',
    'Order',
    'OrderClient',
    'Bracket',
    'PendingRequest',
    'Phase',
    'Refusal',
    'RiskGate',
    'RiskReport',
    'Status',
    'TERMINAL_RESPS',
    'TRANSITIONS',
    'TradingState',
    'ToVenue',
    'Trail',
    'Triggered',
    'OrderFinishedError',
    'UnknownOrderError',
    'batch_frame',
    'commands_of',
    'decode_backend_cmd',
    'decode_broker_msg',
    'decode_client_msg',
    'decode_ems_msg',
    'error_status',
    'journal_path',
    'open_ems',
    'pad_price',
    'wait_for_status',
]
