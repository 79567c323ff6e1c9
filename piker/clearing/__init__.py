"""Order clearing: the EMS client API, message protocol, dialogs, dark book.

Scripts, the CLI and the UI need only the client API (DESIGN.md section
6): `open_ems()` yields an `OrderClient` plus the `trades` stream of
`Status` / `BrokerdPosition` messages; `wait_for_status()` is the usual
way to await one dialog's progress.

The pure core underneath: `_messages` is the wire protocol (section 5),
`_dialogs` the per-order state machine emsd runs every message through,
`_dark` the trigger index of resting dark orders and alerts. The daemons
(`_ems`: emsd, `_paper_engine`: paperboi) are RPC modules, not API.
"""
from ._dark import DarkBook, DarkEntry, Triggered, pad_price
from ._dialogs import (
    TRANSITIONS,
    Arm,
    Dialog,
    DialogTable,
    Disarm,
    Effect,
    Event,
    Phase,
    ToVenue,
    decode_history,
    encode_history,
)
from ._messages import (
    TERMINAL_RESPS,
    BrokerdCancel,
    BrokerdError,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    Cancel,
    MessageError,
    Order,
    Status,
    decode_backend_cmd,
    decode_broker_msg,
    decode_client_msg,
    decode_ems_msg,
    error_status,
)

__all__ = [
    'Arm',
    'BrokerdCancel',
    'BrokerdError',
    'BrokerdFill',
    'BrokerdOrder',
    'BrokerdOrderAck',
    'BrokerdPosition',
    'BrokerdStatus',
    'Cancel',
    'DarkBook',
    'DarkEntry',
    'Dialog',
    'DialogTable',
    'Disarm',
    'Effect',
    'Event',
    'MessageError',
    'Order',
    'Phase',
    'Status',
    'TERMINAL_RESPS',
    'TRANSITIONS',
    'ToVenue',
    'Triggered',
    'decode_backend_cmd',
    'decode_broker_msg',
    'decode_client_msg',
    'decode_ems_msg',
    'decode_history',
    'encode_history',
    'error_status',
    'pad_price',
]
