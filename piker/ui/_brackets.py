"""Brackets, stops and take-profits on the chart (issue 15, item 5).

emsd holds the trigger types and the groups (`Order.type`, `parent`,
`oco`, `reduce_only`; `Status.resp == 'held'`, `Status.trigger`,
`Status.armed`); this module draws what it says, and moves them with the
requests order mode already sends (its keys: `_bracket_keys`):

- a *bracket* is an entry plus reduce-only children (`parent` = the
  entry's oid, one `oco` id): a take-profit (`take_profit`) and a
  stop-loss (`stop`, `stop_limit` or `trailing_stop`). Its lines are
  linked by a *rail* in the right margin of the price pane: faint zones
  from the entry to the TP (reward, up colour) and to the SL (risk, down
  colour). Child labels say their role, type and the P&L at their price
  for the size they are armed for (the entry's size while `held`); a
  held child is dashed.
- dragging a child or an attached exit moves its price (the trigger)
  and keeps its size; dragging a bracket's entry moves only the entry.
- a trailing stop's line sits at emsd's current trigger and moves with
  it; it is not draggable (emsd owns the trail).
- the status bar tells what a group did, from its members' statuses
  (`TP filled: SL cancelled`, `entry filled 0.5: TP/SL armed 0.5`).

`OrderMode` owns one `Brackets` and calls it from a few places (see the
`brackets.` calls there): `record`/`report` around each status,
`decorate` after a line's state is set, `fixed_size`/`update` in a
modify, `unstage`, `line_removed`, `relabel`.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtWidgets

from ..clearing._messages import TERMINAL_RESPS, TRIGGER_TYPES, Order, Status
from ._lines import LevelLine
from ._numbers import fmt_num, fmt_size
from ._position import Holding
from ._theme import qcolor

if TYPE_CHECKING:
    from ._order_mode import OrderLine, OrderMode

Role = Literal['entry', 'TP', 'SL']

STOP_TYPES = TRIGGER_TYPES - {'take_profit'}
ENDED = TERMINAL_RESPS | {'closed'}

RAIL_W = 26         # px, width of a bracket's reward/risk zones
RAIL_GAP = 4        # px between the rails of two brackets
RAIL_PAD = 2        # px from the right edge of the price pane
RAIL_ALPHA = 55     # the zones are faint: candles show through
RAIL_Z = 540        # under the order lines (600) and the position line (550)


def type_text(req: Order, fmt) -> str:
    """What kind of order a line is: `take-profit`, `stop`,
    `stop-limit 29,900.0 lmt 29,890.0`, `trail 0.5%` / `trail 5t`."""
    kind = req.type
    if kind == 'stop_limit':
        return f'stop-limit {fmt(req.price)} lmt {fmt(req.limit or 0.0)}'
    if kind == 'trailing_stop' and req.trail is not None:
        unit = '%' if req.trail.unit == 'pct' else 't'
        return f'trail {req.trail.amount:g}{unit}'
    return {'take_profit': 'take-profit'}.get(kind, kind)


def exit_role(req: Order) -> Role | None:
    """TP or SL for an exit (bracket child or reduce-only order), else None."""
    if req.parent is None and not req.reduce_only:
        return None
    return 'SL' if req.type in STOP_TYPES else 'TP'


def wrong_side(role: Role, action: str, price: float, last: float | None, fmt) -> str | None:
    """Why an exit (`action` closes the position) at `price` would fire at
    once against the market `last`, or None: a take-profit closes above the
    market for a long (a sell), below it for a short; a stop-loss the other
    way round."""
    if last is None:
        return None
    above = (role == 'TP') == (action == 'sell')
    if price > last if above else price < last:
        return None
    side = 'long' if action == 'sell' else 'short'
    word = 'take-profit' if role == 'TP' else 'stop-loss'
    where = 'above' if above else 'below'
    return f'{word} of a {side} position goes {where} the market ({fmt(last)}), not at {fmt(price)}'


def qty(size: float, digits: int) -> str:
    """A size without trailing zeros (`0.5`, `1`): short group texts."""
    text = fmt_size(size, digits)
    return text.rstrip('0').rstrip('.') if '.' in text else text


@dataclass(slots=True)
class Member:
    """What the statuses of one order said, kept while its group lives."""

    req: Order
    resp: str = 'pending'
    filled: float = 0.0
    armed: float | None = None
    trigger: float | None = None
    avg_fill: float | None = None
    reason: str = ''
    triggered: bool = False   # its trigger fired: it works at the venue now
    seq: int = 0          # when it last filled (orders the group's fills)

    @property
    def oid(self) -> str:
        return self.req.oid

    @property
    def ended(self) -> bool:
        return self.resp in ENDED


class Rail:
    """What links a bracket's lines, in the right margin of the price pane:
    a faint zone from the entry up/down to the TP (up colour: the reward)
    and to the SL (down colour: the risk), a spine joining TP and SL along
    its right side and a tick at the entry (the long/short-position tool
    traders know from other charts)."""

    def __init__(self, mode: OrderMode) -> None:
        self.chart = mode.chart
        theme = mode.theme
        self.reward = QtWidgets.QGraphicsRectItem()
        self.risk = QtWidgets.QGraphicsRectItem()
        for item, colour in ((self.reward, theme.up), (self.risk, theme.down)):
            item.setBrush(pg.mkBrush(qcolor(colour, RAIL_ALPHA)))
            item.setPen(pg.mkPen(None))
        self.spine = QtWidgets.QGraphicsLineItem()
        self.spine.setPen(pg.mkPen(qcolor(theme.muted), width=2))
        self.entry_tick = QtWidgets.QGraphicsLineItem()
        self.entry_tick.setPen(pg.mkPen(qcolor(theme.foreground), width=2))
        for item in self.items:
            item.setZValue(RAIL_Z)
            self.chart.price_plot.addItem(item, ignoreBounds=True)
        self.prices: tuple[float | None, float | None, float | None] = (None, None, None)
        self.slot = 0

    @property
    def items(self) -> tuple[QtWidgets.QGraphicsItem, ...]:
        return (self.reward, self.risk, self.spine, self.entry_tick)

    def set(self, entry: float | None, tp: float | None, sl: float | None, slot: int) -> None:
        self.prices, self.slot = (entry, tp, sl), slot
        self.layout()

    def layout(self) -> None:
        view = self.chart.view
        width = view.width()
        entry, tp, sl = self.prices
        if width <= 0 or entry is None:
            for item in self.items:
                item.setVisible(False)
            return
        (x0, x1), _ = view.viewRange()
        px = (x1 - x0) / width          # bars per pixel
        right = x1 - (RAIL_PAD + self.slot * (RAIL_W + RAIL_GAP)) * px
        left = right - RAIL_W * px
        for item, target in ((self.reward, tp), (self.risk, sl)):
            item.setVisible(target is not None)
            if target is not None:
                item.setRect(QtCore.QRectF(left, min(entry, target), right - left, abs(target - entry)))
        ends = [p for p in (tp, sl) if p is not None] or [entry]
        self.spine.setLine(right, max(ends + [entry]), right, min(ends + [entry]))
        self.spine.setVisible(True)
        self.entry_tick.setLine(left, entry, right, entry)
        self.entry_tick.setVisible(True)

    def remove(self) -> None:
        for item in self.items:
            self.chart.price_plot.removeItem(item)


class Brackets(QtCore.QObject):
    """The bracket / stop / take-profit side of one chart's order mode."""

    def __init__(self, mode: OrderMode, tp_ticks: int, sl_ticks: int) -> None:
        super().__init__(mode)
        self.mode = mode
        self.members: dict[str, Member] = {}
        self.rails: dict[str, Rail] = {}
        self._said: dict[str, str] = {}
        self.placing: dict[str, str] = {}     # bracket -> what was sent, until confirmed
        self._seq = 0
        self._in_status = False
        self._armed_moved = False
        self._watched: weakref.WeakSet[LevelLine] = weakref.WeakSet()
        view = mode.chart.view
        view.sigRangeChanged.connect(self._layout_rails)
        view.sigResized.connect(self._layout_rails)
        from ._bracket_keys import BracketKeys  # it builds on this module
        self.keys = BracketKeys(self, tp_ticks, sl_ticks)

    # --- groups --------------------------------------------------------------

    @staticmethod
    def group_of(req: Order) -> str | None:
        """The group an order belongs to: its entry's oid, else its oco id."""
        return req.parent or req.oco

    def children(self, key: str) -> list[Member]:
        return [
            m for m in self.members.values()
            if m.oid != key and self.group_of(m.req) == key
        ]

    def is_entry(self, oid: str) -> bool:
        return any(m.req.parent == oid for m in self.members.values())

    def role(self, req: Order) -> Role | None:
        if self.is_entry(req.oid):
            return 'entry'
        return exit_role(req)

    def name(self, m: Member) -> str:
        """How the group texts call a member: entry / TP / SL, else its
        type and side (`stop buy`: a client's OCO group of entries)."""
        return self.role(m.req) or f'{type_text(m.req, self.mode.chart.format_price)} {m.req.action}'

    # --- hooks called by order mode -----------------------------------------

    def fixed_size(self, req: Order) -> bool:
        """Whether a modify keeps the order's size (not the allocator's):
        exits are sized to their entry or position, and moving a bracket's
        entry must not outgrow its children."""
        return bool(req.parent or req.reduce_only or req.oco or self.is_entry(req.oid))

    def update(self, oid: str, price: float, size: float) -> Order:
        """Send the modify of `oid`: a stop-limit's limit moves with its
        trigger (the gap the trader chose stays). An exit dragged past the
        market (it would fire at once) raises `ValueError` saying so."""
        ol = self.mode.lines[oid]
        req = ol.req
        m = self.members.get(oid)
        if m is not None:
            m.trigger = None        # emsd's next status says the new one
        role = exit_role(req)
        if role is not None:
            why = wrong_side(role, req.action, price, self.mode._last_price(), self.mode.chart.format_price)
            if why:
                raise ValueError(why)
        client = self.mode.client
        if req.type == 'stop_limit' and req.limit is not None:
            limit = self.mode.quantize(req.limit + price - req.price)
            try:
                new = req.copy({'price': price, 'size': size, 'limit': limit})
            except ValueError as err:
                raise ValueError(f'bad update of {oid}: {err}') from None
            client.send_nowait(new)
            return new
        return client.update_nowait(oid, price=price, size=size)

    def record(self, msg: Status) -> None:
        """Keep what a status of this market says (before order mode draws it)."""
        req = msg.req
        if req is None or req.symbol != self.mode.fqme:
            return
        self._in_status = True
        m = self.members.get(msg.oid)
        if m is None:
            m = self.members[msg.oid] = Member(req=req)
        elif msg.trigger is None and req.price != m.req.price:
            m.trigger = None
        m.req, m.resp, m.filled, m.reason = req, msg.resp, msg.filled, msg.reason
        self._armed_moved = msg.armed is not None and msg.armed != (m.armed or 0.0)
        if msg.armed is not None:
            m.armed = msg.armed
        if msg.trigger is not None:
            m.trigger = msg.trigger
        if msg.resp == 'dark_triggered':
            m.triggered = True
        if msg.resp in ('fill', 'closed') and msg.filled:
            self._seq += 1
            m.seq = self._seq

    def report(self, msg: Status, replay: bool = False) -> None:
        """After order mode drew a status: fills, group text, rails, labels."""
        self._in_status = False
        m = self.members.get(msg.oid)
        if m is not None and msg.req is not None and msg.req.symbol == self.mode.fqme:
            ol = self.mode.lines.get(msg.oid)
            if ol is not None and ol.fill_size:
                m.avg_fill = ol.fill_cost / ol.fill_size
            key = self.group_of(m.req) or (m.oid if self.is_entry(m.oid) else None)
            event = msg.resp in ENDED or msg.resp in ('fill', 'dark_triggered') or self._armed_moved
            if key is not None and not replay and event:
                self.placing.pop(key, None)
                self._say(key, msg)
            elif key in self.placing:
                self._placed(key)
            if self.group_of(m.req) is not None and ol is not None:
                self._quiet(ol, msg)
        self.refresh()

    def decorate(self, ol: OrderLine) -> None:
        """Style and label an exit, an entry or a trigger order's line
        (called after order mode styled it as a plain order)."""
        req = ol.req
        role = self.role(req)
        if role is None and req.type == 'limit':
            return
        from ._order_mode import LineState
        m = self.members.get(req.oid)
        line = ol.line
        if m is not None and m.trigger is not None and not line.dragging:
            line.set_price(m.trigger)
        held = req.parent is not None and not (m is not None and m.armed)
        if held:
            line.set_style(dash='held')
        if req.type == 'trailing_stop':
            line.setMovable(False)
            # trailing from the market: no trigger until emsd has a price
            waiting = (m is None or m.trigger is None) and req.price <= 0
            line.setVisible(not waiting)
            if waiting:
                line.tag.set_value(None)
        fmt = self.mode.chart.format_price
        default = self.mode.label_for(req.action, req.account, ol.remaining, req.price)
        if role == 'entry':
            text = f'entry {default}'
        elif role is None:
            text = f'{type_text(req, fmt)} {default}'
        else:
            text = self._exit_text(req, m, line.price, held)
        if ol.state is not LineState.OPEN:
            text = f'{text} ({ol.state.value})'
        line.set_text(text)

    def unstage(self) -> None:
        self.keys.unstage()

    def line_removed(self, _oid: str) -> None:
        if not self._in_status:
            self.refresh()

    def relabel(self) -> None:
        """Re-label every exit (a position's ppu is their P&L basis)."""
        for ol in self.mode.lines.values():
            if exit_role(ol.req) is not None:
                self.mode._set_state(ol, ol.state)

    # --- labels and P&L -----------------------------------------------------

    def basis(self, req: Order) -> float | None:
        """The price an exit's P&L is counted from: its entry's average fill
        (its price while unfilled), else the position's ppu."""
        if req.parent is not None:
            entry = self.members.get(req.parent)
            if entry is not None:
                ol = self.mode.lines.get(entry.oid)
                if entry.avg_fill is not None:
                    return entry.avg_fill
                return ol.line.price if ol is not None else entry.req.price
        h = self.mode.positions.holding(req.account)
        return h.ppu if h is not None else None

    def pnl_at(self, req: Order, price: float, size: float) -> float | None:
        """P&L of closing `size` at `price` (`req` is the closing order)."""
        basis = self.basis(req)
        if basis is None or not basis:
            return None
        held = size if req.action == 'sell' else -size
        return Holding(account=req.account, size=held, ppu=basis).pnl(price)

    def _exit_text(self, req: Order, m: Member | None, price: float, held: bool) -> str:
        digits = self.mode.mkt.size_tick_digits
        role = exit_role(req)
        size = req.size
        if req.parent is None:
            size = max(req.size - (m.filled if m else 0.0), 0.0)
            amount = fmt_size(size, digits)
        elif held:
            amount = f'held {fmt_size(size, digits)}'
        else:
            armed = m.armed if m is not None and m.armed else 0.0
            amount = f'armed {fmt_size(armed, digits)}'
            if armed < req.size:
                amount = f'{amount} of {fmt_size(req.size, digits)}'
            size = armed
        text = f'{role} {type_text(req, self.mode.chart.format_price)} {amount}'
        pnl = self.pnl_at(req, price, size)
        return text if pnl is None else f'{text}  pnl {fmt_num(pnl, 2, signed=True)}'

    # --- the status bar -------------------------------------------------------

    def _word(self, m: Member, role: str) -> str:
        digits = self.mode.mkt.size_tick_digits
        filled = qty(m.filled, digits)
        if m.resp == 'closed':
            return f'filled {filled}' if role == 'entry' else 'filled'
        if m.resp == 'canceled':
            return f'cancelled ({filled} filled)' if m.filled else 'cancelled'
        if m.resp == 'error':
            return f'error ({m.reason})' if m.reason else 'error'
        if m.resp in ENDED:
            return {'alert_triggered': 'triggered'}.get(m.resp, m.resp)
        if m.filled:
            return f'filled {filled}'
        if m.triggered:
            return 'triggered'
        if m.armed:
            return f'armed {qty(m.armed, digits)}'
        if m.req.parent is not None:
            return 'held'
        return 'open'

    def group_text(self, key: str, oid: str | None = None) -> str:
        """What group `key` did, from its members: the member that acted
        (a child that filled, else the entry once it filled or ended, else
        `oid`), then what the others are now."""
        kids = self.children(key)
        entry = self.members.get(key) if any(k.req.parent == key for k in kids) else None
        filled = [k for k in kids if k.seq]
        if filled:
            lead = max(filled, key=lambda k: k.seq)
        elif entry is not None and (entry.filled or entry.ended):
            lead = entry
        else:
            lead = self.members.get(oid or '') or (kids[0] if kids else entry)
        if lead is None:
            return ''
        rest = [k for k in kids if k is not lead]
        if lead is not entry and entry is not None and not entry.ended:
            rest.append(entry)
        lead_name = self.name(lead)
        text = f'{lead_name} {self._word(lead, lead_name)}'
        words = [(self.name(r), self._word(r, self.name(r))) for r in rest]
        if len(words) > 1 and len({w for _, w in words}) == 1:
            return f'{text}: {"/".join(n for n, _ in words)} {words[0][1]}'
        if words:
            return f'{text}: {", ".join(f"{n} {w}" for n, w in words)}'
        return text

    def _say(self, key: str, msg: Status) -> None:
        text = self.group_text(key, msg.oid)
        if not text or self._said.get(key) == text:
            return
        self._said[key] = text
        status = self.mode.status
        status.set_order_status(f'group:{key}', text, final=True)
        # the group line tells the cancels (as order mode's cancel groups do)
        for m in [*self.children(key), self.members.get(key)]:
            if m is not None and m.resp == 'canceled':
                status.clear_order_status(m.oid)

    def _placed(self, key: str) -> None:
        """emsd confirmed every member of a bracket sent from here: the
        `pending` group line becomes `placed` (and lingers, then goes)."""
        from ._order_mode import LineState
        lines = self.mode.lines
        oids = [key, *(k.oid for k in self.children(key))]
        if any(o in lines and lines[o].state is LineState.PENDING for o in oids):
            return
        what = self.placing.pop(key)
        self.mode.status.set_order_status(f'group:{key}', f'bracket placed: {what}', final=True)

    def _quiet(self, ol: OrderLine, msg: Status) -> None:
        """A group member's confirmation (held, open) leaves no entry of
        its own in the status bar: its line shows it, the group line tells
        what matters. Fills and in-flight requests keep theirs."""
        from ._order_mode import LineState
        if msg.resp in ('held', 'open', 'dark_open') and ol.state is LineState.OPEN:
            self.mode.status.clear_order_status(msg.oid)

    # --- drawing ------------------------------------------------------------------

    def refresh(self) -> None:
        """Forget orders nobody draws; rails for the live groups; relabel them."""
        lines = self.mode.lines
        live: dict[str, list[Member]] = {}
        for m in list(self.members.values()):
            key = self.group_of(m.req)
            if key is not None and m.oid in lines:
                live.setdefault(key, [])
        for key in live:
            live[key] = self.children(key)
        keep = set(lines) | set(live) | {m.oid for kids in live.values() for m in kids}
        for oid in [o for o in self.members if o not in keep]:
            del self.members[oid]
        for key in [k for k in self._said if k not in live]:
            del self._said[key]
        for key in [k for k in self.placing if k not in live]:
            del self.placing[key]
        for key in [k for k in self.rails if k not in live]:
            self.rails.pop(key).remove()
            ol = lines.get(key)
            if ol is not None:          # an entry left without children: a plain order
                self.mode._set_state(ol, ol.state)
        for slot, key in enumerate(sorted(live)):
            self._draw_rail(key, live[key], slot)

    def _draw_rail(self, key: str, kids: list[Member], slot: int) -> None:
        lines = self.mode.lines
        prices: dict[str, float] = {}
        for k in kids:
            ol = lines.get(k.oid)
            role = exit_role(k.req)
            if ol is not None and role is not None:
                prices.setdefault(role, ol.line.price)
                self._watch(ol.line)
        entry_ol = lines.get(key)
        if entry_ol is not None:
            self._watch(entry_ol.line)
            if not self._in_status:
                # labels: the entry's says it is one, its children's P&L
                # count from its price
                for ol in (entry_ol, *filter(None, (lines.get(k.oid) for k in kids))):
                    self.decorate(ol)
        entry = self.basis(kids[0].req) if kids else None
        if not prices:          # an OCO group of entries: nothing to link
            entry = None
        rail = self.rails.get(key)
        if rail is None:
            rail = self.rails[key] = Rail(self.mode)
        rail.set(entry, prices.get('TP'), prices.get('SL'), slot)

    def _watch(self, line: LevelLine) -> None:
        if line not in self._watched:
            self._watched.add(line)
            line.sigPositionChanged.connect(self._layout_live)

    def _layout_live(self, *_) -> None:
        """A line of a group moved (drag, trail): the rails follow."""
        if not self._in_status:
            self.refresh()

    def _layout_rails(self, *_) -> None:
        for rail in self.rails.values():
            rail.layout()
