"""The EMS message protocol (DESIGN.md section 5), as typed msgspec structs.

Three conversations use these types:

- client -> emsd: `Order`, `Cancel`;
- emsd -> client: `Status`, `BrokerdPosition`;
- emsd <-> backend (brokerd / paperboi): `BrokerdOrder`, `BrokerdCancel`
  one way, `BrokerdOrderAck`, `BrokerdStatus`, `BrokerdFill`,
  `BrokerdError`, `BrokerdPosition` the other.

tractor delivers structs as plain dicts, so every message carries a
msgspec *tag* in its `name` field and each receiver decodes with one of the
`decode_*()` functions below: a tagged-union `msgspec.convert` that picks
the right type without guessing from the field set.

Validation beyond types (positive finite sizes, finite prices, non-empty
ids, a parseable fqme) lives in each struct's `__post_init__`, so it runs
both when a struct is built in-process and when it is decoded off the
wire. Anything wrong surfaces as one exception type, `MessageError`, whose
`.reason` says exactly what; a daemon replies with `error_status()` and
carries on.
"""
from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ..accounting import unpack_fqme
from ..types import Struct

__all__ = [
    'Action',
    'BrokerdCancel',
    'BrokerdError',
    'BrokerdFill',
    'BrokerdOrder',
    'BrokerdOrderAck',
    'BrokerdOrdersSynced',
    'BrokerdPosition',
    'BrokerdStatus',
    'Cancel',
    'ExecMode',
    'MessageError',
    'Order',
    'OrderType',
    'Resp',
    'Status',
    'TERMINAL_RESPS',
    'TRIGGER_TYPES',
    'TimeInForce',
    'Trail',
    'BATCH_NAME',
    'batch_frame',
    'commands_of',
    'decode_backend_cmd',
    'decode_broker_msg',
    'decode_client_msg',
    'decode_ems_msg',
    'error_status',
    'reply_oid',
]

Action = Literal['buy', 'sell', 'alert']
VenueAction = Literal['buy', 'sell']
ExecMode = Literal['dark', 'live']
# limit: today's order (a dark limit's trigger direction comes from the
# last price); the others are held in emsd's dark book until their trigger
# (`Order.price`) is touched, with a direction fixed by type and side
OrderType = Literal['limit', 'stop', 'stop_limit', 'take_profit', 'trailing_stop']
TRIGGER_TYPES: frozenset[str] = frozenset(
    {'stop', 'stop_limit', 'take_profit', 'trailing_stop'}
)
# gtd: good till `Order.expires_ns`, enforced by emsd (sent on as gtc)
TimeInForce = Literal['gtc', 'ioc', 'fok', 'gtd']
VenueTimeInForce = Literal['gtc', 'ioc', 'fok']
ReqId = int | str
# held: a bracket child waiting for its entry to fill (nothing armed yet);
# expired: a gtd order whose expiry passed (docs/protocol.md has the table)
Resp = Literal[
    'pending',
    'open',
    'held',
    'dark_open',
    'dark_triggered',
    'alert_triggered',
    'fill',
    'closed',
    'canceled',
    'expired',
    'error',
]
BrokerdStatusKind = Literal['open', 'canceled', 'closed', 'pending']

# a dialog ends with exactly one Status whose resp is one of these
TERMINAL_RESPS: frozenset[str] = frozenset(
    {'alert_triggered', 'closed', 'canceled', 'expired', 'error'}
)


class MessageError(msgspec.ValidationError):
    """A message that is malformed or fails validation.

    Subclasses `msgspec.ValidationError` (thus `ValueError`) so callers
    that already catch either keep working; `.reason` is the specific,
    human-readable cause that goes into the error reply.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---- field checks (called from __post_init__) -------------------------

def _check_id(value: str, what: str) -> None:
    if not value or not value.strip():
        raise MessageError(f'{what} must be a non-empty string')


def _check_size(value: float, what: str = 'size', *, allow_zero: bool = False) -> None:
    if not math.isfinite(value):
        raise MessageError(f'{what} must be finite, got {value!r}')
    if value < 0 or (value == 0 and not allow_zero):
        bound = '>= 0' if allow_zero else '> 0'
        raise MessageError(f'{what} must be {bound}, got {value!r}')


def _check_price(value: float, what: str = 'price') -> None:
    if not math.isfinite(value):
        raise MessageError(f'{what} must be finite, got {value!r}')
    if value < 0:
        raise MessageError(f'{what} must be >= 0, got {value!r}')


def _normal_fqme(value: str, what: str = 'symbol') -> str:
    """Return the lower-cased fqme or raise `MessageError` saying why not."""
    try:
        unpack_fqme(value)
    except ValueError as err:
        raise MessageError(f'{what}: {err}') from None
    return value.lower()


def _check_reqid(value: ReqId | None, what: str = 'reqid') -> None:
    if isinstance(value, str) and not value.strip():
        raise MessageError(f'{what} must not be an empty string')


_TAG = 'name'  # the tag field every message carries on the wire
# every message struct is built with `gc=False`: it holds only data (no
# cycles), so the cyclic collector need not track it - emsd makes several
# per order, and each tracked one brings the next collection nearer


# ---- client -> emsd ----------------------------------------------------

class Trail(Struct, frozen=True, gc=False):
    """How far a trailing stop's trigger follows the best price.

    `unit='ticks'`: `amount` price ticks of the market; `unit='pct'`:
    `amount` percent of the best price seen (0.5 = 0.5 %).
    """

    amount: float
    unit: Literal['ticks', 'pct'] = 'ticks'

    def __post_init__(self) -> None:
        if not math.isfinite(self.amount) or self.amount <= 0:
            raise MessageError(f'trail amount must be > 0, got {self.amount!r}')
        if self.unit == 'pct' and self.amount >= 100:
            raise MessageError(f'a trail in percent must be < 100, got {self.amount!r}')


class Order(Struct, tag='order', tag_field=_TAG, gc=False):
    """A client's order request; re-sending an existing `oid` is a modify.

    `symbol` is an fqme (normalised to lower case). Alerts are always held
    in the dark book, so their `exec_mode` is normalised to `'dark'`, and
    their `size` may be 0 (an alert trades nothing).

    `type` (docs/protocol.md): for `limit`, `price` is the limit price;
    for the trigger types it is the trigger, and the order is held in
    emsd's dark book (`exec_mode` normalised to `'dark'`) until it fires:
    `stop` is released as a marketable limit padded by the dark pad ticks,
    `stop_limit` as a limit at `limit`, `take_profit` (limit-if-touched)
    at `price`, `trailing_stop` like `stop` with a trigger that follows the
    best price by `trail` (`price` 0: start from the market).
    `tif`/`expires_ns`: time in force; `reduce_only`: never increases the
    position. `parent`: the entry oid of a bracket child (armed only for
    what the entry has filled); `oco`: a group id, orders sharing it are
    one-cancels-other. Every new field has a default, so the messages of
    older clients stay valid.
    """

    oid: str
    symbol: str
    action: Action
    exec_mode: ExecMode
    price: float
    size: float
    account: str
    brokers: list[str] = []
    type: OrderType = 'limit'
    limit: float | None = None
    trail: Trail | None = None
    tif: TimeInForce = 'gtc'
    expires_ns: int | None = None
    reduce_only: bool = False
    parent: str | None = None
    oco: str | None = None

    def __post_init__(self) -> None:
        _check_id(self.oid, 'oid')
        self.symbol = _normal_fqme(self.symbol)
        _check_id(self.account, 'account')
        _check_price(self.price)
        if self.action == 'alert':
            _check_size(self.size, allow_zero=True)
            self.exec_mode = 'dark'
        else:
            _check_size(self.size)
        self._check_type()
        self._check_tif()
        self._check_group()

    def _check_type(self) -> None:
        kind = self.type
        if self.action == 'alert' and kind != 'limit':
            raise MessageError(f'an alert has no order type, got {kind!r}')
        if kind in TRIGGER_TYPES:
            self.exec_mode = 'dark'
            if self.price == 0 and kind != 'trailing_stop':
                raise MessageError(f'a {kind} order needs a trigger price > 0')
        if kind == 'stop_limit':
            if self.limit is None:
                raise MessageError('a stop_limit order needs a limit price')
            _check_price(self.limit, 'limit')
            if self.limit == 0:
                raise MessageError('limit must be > 0, got 0.0')
        elif self.limit is not None:
            raise MessageError(f'only a stop_limit order has a limit price, not {kind!r}')
        if kind == 'trailing_stop':
            if self.trail is None:
                raise MessageError('a trailing_stop order needs a trail')
        elif self.trail is not None:
            raise MessageError(f'only a trailing_stop order has a trail, not {kind!r}')

    def _check_tif(self) -> None:
        if self.tif == 'gtd':
            if self.expires_ns is None or self.expires_ns <= 0:
                raise MessageError('a gtd order needs expires_ns (UTC epoch ns) > 0')
        elif self.expires_ns is not None:
            raise MessageError(f'only a gtd order has expires_ns, not {self.tif!r}')
        if self.tif in ('ioc', 'fok') and self.action == 'alert':
            raise MessageError(f'an alert cannot be {self.tif}')

    def _check_group(self) -> None:
        if self.action == 'alert' and (self.reduce_only or self.parent):
            raise MessageError('an alert cannot be reduce_only or a bracket child')
        if self.parent is not None:
            _check_id(self.parent, 'parent')
            if self.parent == self.oid:
                raise MessageError('an order cannot be its own parent')
        if self.oco is not None:
            _check_id(self.oco, 'oco')

    @property
    def broker(self) -> str:
        """The backend this order belongs to (the fqme's last token)."""
        return unpack_fqme(self.symbol)[0]


class Cancel(Struct, tag='cancel', tag_field=_TAG, gc=False):
    """Cancel the dialog `oid`; `symbol` (an fqme) is optional context."""

    oid: str
    symbol: str = ''

    def __post_init__(self) -> None:
        _check_id(self.oid, 'oid')
        if self.symbol:
            self.symbol = _normal_fqme(self.symbol)


# ---- emsd -> client ----------------------------------------------------

class Status(Struct, tag='status', tag_field=_TAG, gc=False):
    """One event of an order dialog, as every subscribed client sees it.

    `req` is the order as it currently stands (None only in the reply to
    a client message too broken to decode into an `Order`). `filled +
    remaining == req.size`; `remaining` defaults to that. `brokerd_msg`
    holds the venue message behind the event (a fill's price/size/time).
    """

    oid: str
    resp: Resp
    time_ns: int
    req: Order | None = None
    reqid: ReqId | None = None
    src: str = ''
    filled: float = 0.0
    remaining: float | None = None
    reason: str = ''
    brokerd_msg: dict[str, Any] = {}
    # a trigger type's current trigger (a trailing stop's moves), and the
    # size of a bracket child armed so far (None: not a bracket child)
    trigger: float | None = None
    armed: float | None = None

    def __post_init__(self) -> None:
        if self.remaining is None:
            size = self.req.size if self.req is not None else 0.0
            self.remaining = max(size - self.filled, 0.0)

    @property
    def terminal(self) -> bool:
        """True if this status ends its dialog."""
        return self.resp in TERMINAL_RESPS


class BrokerdPosition(Struct, tag='position', tag_field=_TAG, gc=False):
    """A position as a backend reports it; `size` is signed (short < 0)."""

    broker: str
    account: str
    symbol: str
    size: float
    avg_price: float
    currency: str = ''

    def __post_init__(self) -> None:
        _check_id(self.broker, 'broker')
        _check_id(self.account, 'account')
        self.symbol = _normal_fqme(self.symbol)
        if not math.isfinite(self.size):
            raise MessageError(f'size must be finite, got {self.size!r}')
        _check_price(self.avg_price, 'avg_price')


# ---- emsd -> backend ---------------------------------------------------

class BrokerdOrder(Struct, tag='brokerd_order', tag_field=_TAG, gc=False):
    """Submit (reqid None) or modify (reqid set) an order at the venue.

    `symbol` is the broker-native key (the fqme without `.<broker>`);
    `size` is the order's total size, fills so far included.
    """

    oid: str
    symbol: str
    action: VenueAction
    price: float
    size: float
    account: str
    time_ns: int
    reqid: ReqId | None = None
    tif: VenueTimeInForce = 'gtc'

    def __post_init__(self) -> None:
        _check_id(self.oid, 'oid')
        _check_id(self.symbol, 'symbol')
        _check_id(self.account, 'account')
        _check_reqid(self.reqid)
        _check_price(self.price)
        _check_size(self.size)


class BrokerdCancel(Struct, tag='brokerd_cancel', tag_field=_TAG, gc=False):
    """Cancel the venue order `reqid` of dialog `oid`."""

    oid: str
    reqid: ReqId
    account: str
    time_ns: int

    def __post_init__(self) -> None:
        _check_id(self.oid, 'oid')
        _check_reqid(self.reqid)
        _check_id(self.account, 'account')


# ---- backend -> emsd ---------------------------------------------------

class BrokerdOrderAck(Struct, tag='ack', tag_field=_TAG, gc=False):
    """The venue's first reply to every `BrokerdOrder`: binds oid <-> reqid."""

    oid: str
    reqid: ReqId
    account: str

    def __post_init__(self) -> None:
        _check_id(self.oid, 'oid')
        _check_reqid(self.reqid)


class BrokerdStatus(Struct, tag='brokerd_status', tag_field=_TAG, gc=False):
    """An order state change at the venue.

    `filled`/`remaining` are the venue's cumulative view. `oid` is
    optional (a venue may only know its own `reqid`). `req` describes an
    order emsd did not place (an *external* order, e.g. one entered in the
    broker's own app): emsd then opens a dialog for it.
    """

    reqid: ReqId
    status: BrokerdStatusKind
    account: str
    time_ns: int
    filled: float = 0.0
    remaining: float = 0.0
    reason: str = ''
    oid: str = ''
    req: BrokerdOrder | None = None
    broker_details: dict[str, Any] = {}

    def __post_init__(self) -> None:
        _check_reqid(self.reqid)
        _check_size(self.filled, 'filled', allow_zero=True)
        _check_size(self.remaining, 'remaining', allow_zero=True)


class BrokerdFill(Struct, tag='fill', tag_field=_TAG, gc=False):
    """One execution of venue order `reqid`; `tid` is unique per venue."""

    reqid: ReqId
    tid: str
    action: VenueAction
    size: float
    price: float
    broker_time: float
    time_ns: int
    cost: float = 0.0
    oid: str = ''

    def __post_init__(self) -> None:
        _check_reqid(self.reqid)
        _check_id(self.tid, 'tid')
        _check_size(self.size)
        _check_price(self.price)
        if not math.isfinite(self.cost):
            raise MessageError(f'cost must be finite, got {self.cost!r}')


class BrokerdError(Struct, tag='error', tag_field=_TAG, gc=False):
    """The venue rejected or failed a request of dialog `oid`."""

    oid: str
    reason: str
    reqid: ReqId | None = None
    symbol: str = ''
    broker_details: dict[str, Any] = {}

    def __post_init__(self) -> None:
        _check_id(self.oid, 'oid')
        _check_reqid(self.reqid)


class BrokerdOrdersSynced(Struct, tag='orders_synced', tag_field=_TAG, gc=False):
    """End of a backend's order report at the start of a trades dialogue.

    A backend that knows its working orders (the paper engine does; see
    the backend contract in `piker.brokers`) opens every dialogue with
    the recent fills and final statuses emsd may have missed, then one
    `BrokerdStatus(status='open', req=...)` per working order, then this:
    `reqids` lists every order working at the venue at that moment. emsd
    resolves each of its dialogs at the venue that is not among them.
    """

    reqids: list[ReqId] = []
    time_ns: int = 0

    def __post_init__(self) -> None:
        for reqid in self.reqids:
            _check_reqid(reqid)


# ---- decoding at the boundary -----------------------------------------

ClientMsg = Order | Cancel
EmsMsg = Status | BrokerdPosition
BackendCmd = BrokerdOrder | BrokerdCancel
BrokerMsg = (
    BrokerdOrderAck | BrokerdStatus | BrokerdFill | BrokerdError | BrokerdPosition
    | BrokerdOrdersSynced
)


# union -> {tag: member}: a map is converted to the member its tag names
# (a struct's conversion is cached by msgspec, a union's is rebuilt at
# every call: ~1 us against ~6 us); an unknown tag goes to the union,
# whose error says what is expected
_MEMBERS: dict[Any, dict[str, type]] = {}


def _members(union: Any) -> dict[str, type]:
    found = _MEMBERS.get(union)
    if found is None:
        found = _MEMBERS[union] = {m.__struct_config__.tag: m for m in union.__args__}
    return found


def _decode(raw: Any, union: Any, what: str) -> Any:
    """Decode `raw` (dict, msgpack bytes or struct) into one of `union`."""
    members = union.__args__
    if isinstance(raw, Struct):
        if isinstance(raw, members):
            return raw
        raise MessageError(f'{type(raw).__name__} is not a {what} message')
    try:
        if isinstance(raw, bytes | bytearray | memoryview):
            return msgspec.msgpack.decode(raw, type=union)
        if not isinstance(raw, Mapping):
            raise MessageError(
                f'{what} message must be a map, got {type(raw).__name__}'
            )
        data = raw if type(raw) is dict else dict(raw)
        tag = data.get(_TAG)
        member = _members(union).get(tag) if isinstance(tag, str) else None
        return msgspec.convert(data, member or union)
    except MessageError:
        raise
    except msgspec.MsgspecError as err:
        tag = raw.get(_TAG) if isinstance(raw, Mapping) else None
        kind = f' {tag!r}' if isinstance(tag, str) else ''
        raise MessageError(f'bad {what} message{kind}: {err}') from None


def decode_client_msg(raw: Any) -> Order | Cancel:
    """Decode a client -> emsd message, or raise `MessageError`."""
    return _decode(raw, ClientMsg, 'client')


def decode_ems_msg(raw: Any) -> Status | BrokerdPosition:
    """Decode an emsd -> client message, or raise `MessageError`."""
    return _decode(raw, EmsMsg, 'ems')


def decode_backend_cmd(raw: Any) -> BrokerdOrder | BrokerdCancel:
    """Decode an emsd -> backend command, or raise `MessageError`."""
    return _decode(raw, BackendCmd, 'backend command')


# several commands sent together travel as one batch frame, `{'name':
# 'batch', 'cmds': [...]}` (client -> emsd, emsd -> backend): a map with a
# name of its own, so that any other frame, a bare list included, stays
# one message, answered as such
BATCH_NAME = 'batch'


def batch_frame(cmds: list[Any]) -> Any:
    """The frame that carries `cmds` (one command: itself)."""
    return {_TAG: BATCH_NAME, 'cmds': cmds} if len(cmds) > 1 else cmds[0]


def commands_of(frame: Any) -> list[Any]:
    """The commands in one frame, in order: a batch's, or the frame itself
    (a batch whose `cmds` is no non-empty list is one bad message)."""
    if isinstance(frame, dict) and frame.get(_TAG) == BATCH_NAME:
        cmds = frame.get('cmds')
        if isinstance(cmds, list) and cmds:
            return cmds
    return [frame]


def reply_oid(raw: Any) -> str:
    """The oid a backend answers a command that does not decode with: its
    own if usable, else a marker."""
    oid = raw.get('oid') if isinstance(raw, dict) else None
    return oid if isinstance(oid, str) and oid.strip() else '<unknown>'


def decode_broker_msg(
    raw: Any,
) -> (
    BrokerdOrderAck | BrokerdStatus | BrokerdFill | BrokerdError | BrokerdPosition
    | BrokerdOrdersSynced
):
    """Decode a backend -> emsd message, or raise `MessageError`."""
    return _decode(raw, BrokerMsg, 'broker')


def _echo(raw: Mapping) -> dict[str, Any]:
    """The part of a bad message its error reply can echo back.

    The reply must itself decode as a `Status` (`brokerd_msg` is a
    `dict[str, Any]`), or the client drops it and never hears why: so only
    string-keyed fields, as builtins, with the number keys of nested maps
    turned into strings. A field that cannot be made so (a map keyed by
    None or a tuple, an unknown ext type) is left out.
    """
    out: dict[str, Any] = {}
    for key, val in raw.items():
        if not isinstance(key, str):
            continue
        try:
            out[key] = msgspec.to_builtins(val, str_keys=True)
        except (TypeError, ValueError):
            continue
    return out


def error_status(
    raw: Any,
    reason: str,
    *,
    time_ns: int | None = None,
    src: str = 'emsd',
) -> Status:
    """Build the `Status(resp='error')` reply to a bad client message.

    Salvages what it can from `raw` (its `oid`, and the `Order` itself if
    it decodes) so the client can match the reply to its request.
    """
    req: Order | None = None
    oid = ''
    if isinstance(raw, Order):
        req, oid = raw, raw.oid
    elif isinstance(raw, Cancel):
        oid = raw.oid
    elif isinstance(raw, Mapping):
        val = raw.get('oid')
        oid = val if isinstance(val, str) else ''
        try:
            req = msgspec.convert(dict(raw), Order)
        except (msgspec.MsgspecError, TypeError, ValueError):
            req = None
    details = _echo(raw) if isinstance(raw, Mapping) else {}
    return Status(
        oid=oid,
        resp='error',
        time_ns=time.time_ns() if time_ns is None else time_ns,
        req=req,
        src=src,
        reason=reason,
        brokerd_msg=details,
    )
