"""The keys of brackets, stops and take-profits on the chart.

- hold `shift+f` / `shift+d`: order mode's staged buy / sell entry grows
  TP/SL preview lines `tp_ticks` / `sl_ticks` price ticks away (`[ui]
  bracket_tp_ticks`, `bracket_sl_ticks`); the click sends the entry
  (order mode's submit: allocator size, dark or live) and then its two
  children: reduce-only, the entry's size and account, `parent` = the
  entry's oid, one `oco` id, `take_profit` and `stop`. If a child cannot
  be sent, the whole bracket is cancelled: never half a bracket.
- `t` / `s`: a reduce-only `take_profit` / `stop` at the cursor for the
  pane account's whole position, on the closing side, refused when flat
  or on the wrong side of the market (it would fire at once). A
  position's TP and SL share an `oco` id: the one that fills cancels the
  other.

The slots are connected after order mode's, so they run second: order
mode has staged (or refused) the entry when `_on_key_press` sees shift.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyqtgraph.Qt import QtCore, QtGui

from ..clearing._messages import Order
from ._brackets import Member, Role, exit_role, wrong_side
from ._lines import LevelLine
from ._numbers import fmt_num
from ._order_mode import LineState
from ._position import Holding

if TYPE_CHECKING:
    from ._brackets import Brackets
    from ._order_mode import Staged

K = QtCore.Qt.Key
M = QtCore.Qt.KeyboardModifier
BRACKET_KEYS = {K.Key_F: 'buy', K.Key_D: 'sell'}
ATTACH_KEYS: dict[int, Role] = {K.Key_T: 'TP', K.Key_S: 'SL'}


@dataclass(slots=True)
class StagedBracket:
    """The TP/SL preview lines riding on order mode's staged entry."""

    entry: Staged         # order mode's staged entry it rides on
    action: str
    tp: LevelLine
    sl: LevelLine


class BracketKeys(QtCore.QObject):
    """Staging brackets and attaching exits to a position (module doc)."""

    def __init__(self, brackets: Brackets, tp_ticks: int, sl_ticks: int) -> None:
        super().__init__(brackets)
        self.brackets = brackets
        self.mode = mode = brackets.mode
        self.tp_ticks = tp_ticks
        self.sl_ticks = sl_ticks
        self.staged: StagedBracket | None = None
        view = mode.chart.view
        view.sig_key_press.connect(self._on_key_press)
        view.sig_cursor_moved.connect(self._on_cursor_moved)
        mode.sig_submitted.connect(self._on_submitted)

    def unstage(self) -> None:
        st = self.staged
        if st is not None:
            st.tp.remove()
            st.sl.remove()
            self.staged = None

    # --- staging a bracket: shift+f / shift+d ---------------------------------------

    def offsets(self, action: str, price: float) -> tuple[float, float]:
        """(TP, SL) prices of a bracket whose entry `action`s at `price`."""
        tick = float(self.mode.mkt.price_tick)
        up = 1 if action == 'buy' else -1
        q = self.mode.quantize
        return q(price + up * self.tp_ticks * tick), q(price - up * self.sl_ticks * tick)

    def stage_bracket(self, action: str) -> StagedBracket | None:
        """Add TP/SL previews to order mode's staged `action` entry."""
        mode = self.mode
        st = mode.staged
        if st is None or st.action != action:
            return None
        colour = mode._colour('sell' if action == 'buy' else 'buy')
        previews = [
            LevelLine(
                mode.chart, colour, dash='held', quantize=mode.quantize,
                theme=mode.theme, z=640,
            ) for _ in range(2)
        ]
        self.staged = StagedBracket(entry=st, action=action, tp=previews[0], sl=previews[1])
        self._follow()
        return self.staged

    def _follow(self) -> None:
        sb = self.staged
        mode = self.mode
        if sb is None:
            return
        if sb.entry is not mode.staged:
            self.unstage()
            return
        price = mode.staged.line.price
        exit_action = 'sell' if sb.action == 'buy' else 'buy'
        try:
            size = float(mode.order_info(sb.action, price)['size']) if price > 0 else 0.0
        except ValueError:
            size = 0.0
        held = Holding(
            account=mode.account(), size=size if exit_action == 'sell' else -size, ppu=price,
        )
        tp, sl = self.offsets(sb.action, price)
        for line, what, target in (
            (sb.tp, f'TP take-profit {self.tp_ticks}t', tp),
            (sb.sl, f'SL stop {self.sl_ticks}t', sl),
        ):
            line.set_price(target)
            pnl = f'  pnl {fmt_num(held.pnl(target), 2, signed=True)}' if size else ''
            line.set_text(f'{what}{pnl} (staged)')

    def _children_of(self, entry: Order, oco: str) -> list[Order]:
        mode = self.mode
        tp, sl = self.offsets(entry.action, entry.price)
        exit_action = 'sell' if entry.action == 'buy' else 'buy'
        out = []
        for kind, price in (('take_profit', tp), ('stop', sl)):
            base = mode.client.mk_order(
                exit_action, price, entry.size, exec_mode='dark', account=entry.account,
            )
            out.append(base.copy({
                'type': kind, 'parent': entry.oid, 'oco': oco, 'reduce_only': True,
            }))
        return out

    def _on_submitted(self, oid: str) -> None:
        """Order mode sent the staged entry: if it is a bracket's, send the
        TP and SL children (held by emsd until the entry fills)."""
        sb, mode = self.staged, self.mode
        if sb is None or sb.entry is not mode.staged or oid not in mode.lines:
            return
        entry = mode.lines[oid].req
        self.brackets.members.setdefault(oid, Member(req=entry))
        sent: list[Order] = []
        try:
            for child in self._children_of(entry, oco=str(uuid.uuid4())):
                mode.client.send_nowait(child)
                sent.append(child)
                self.brackets.members[child.oid] = Member(req=child)
                mode._add_line(child, LineState.PENDING)
        except Exception as err:  # noqa: BLE001 - no half bracket: take it all back
            mode.cancel([oid, *(c.oid for c in sent)], group=False)
            what = '/'.join(['entry', *(exit_role(c) or c.type for c in sent)])
            mode._note(f'bracket not sent ({err}): cancelling its {what}')
            return
        tp, sl = sent
        fmt = mode.chart.format_price
        what = f'{mode.describe(entry)}, TP {fmt(tp.price)}, SL {fmt(sl.price)}'
        self.brackets.placing[oid] = what
        mode.status.set_order_status(f'group:{oid}', f'bracket pending: {what}')
        self.brackets.refresh()
        for ol in (mode.lines[oid], mode.lines[tp.oid], mode.lines[sl.oid]):
            self.brackets.decorate(ol)

    # --- attaching to the position: t / s -------------------------------------------

    def attach(self, role: Role) -> str | None:
        """Send a reduce-only TP (`role='TP'`) or SL at the cursor for the
        pane account's whole position; None (and a note why) if not."""
        mode = self.mode
        word = 'take-profit' if role == 'TP' else 'stop-loss'
        if not mode._entry_on(word):
            return None
        account = mode.account()
        h = mode.positions.holding(account)
        if h is None:
            mode._note(f'{word}: {account} is flat in {mode.fqme}, nothing to attach it to')
            return None
        price = mode.chart.cursor_price()
        if price is None or price <= 0:
            mode._note(f'{word}: put the cursor on the price to attach it at')
            return None
        price = mode.quantize(price)
        long = h.size > 0
        action = 'sell' if long else 'buy'
        why = wrong_side(role, action, price, mode._last_price(), mode.chart.format_price)
        if why:
            mode._note(f'{why}: nothing sent')
            return None
        oco = next((
            ol.req.oco for ol in mode.lines.values()
            if ol.req.reduce_only and ol.req.parent is None and ol.req.oco
            and ol.req.account == account and exit_role(ol.req) != role
        ), None) or str(uuid.uuid4())
        try:
            base = mode.client.mk_order(
                action, price, abs(h.size), exec_mode='dark', account=account,
            )
            order = base.copy({
                'type': 'take_profit' if role == 'TP' else 'stop',
                'reduce_only': True, 'oco': oco,
            })
            mode.client.send_nowait(order)
        except Exception as err:  # noqa: BLE001 - closed session, bad order: tell the trader
            mode._note(f'{word} not sent: {err}')
            return None
        self.brackets.members[order.oid] = Member(req=order)
        mode._add_line(order, LineState.PENDING)
        mode.status.set_order_status(order.oid, f'pending: {mode.describe(order)}')
        self.brackets.refresh()
        return order.oid

    # --- Qt slots (connected after order mode's: they run second) --------------------

    def _on_key_press(self, ev: QtGui.QKeyEvent) -> None:
        if ev.isAutoRepeat():
            return
        key, mods = ev.key(), ev.modifiers()
        others = M.ControlModifier | M.AltModifier | M.MetaModifier
        if mods & others:
            return
        if key in BRACKET_KEYS and mods & M.ShiftModifier:
            self.stage_bracket(BRACKET_KEYS[key])
        elif key in ATTACH_KEYS and not mods & M.ShiftModifier:
            self.attach(ATTACH_KEYS[key])

    def _on_cursor_moved(self, _price: float, _time: float) -> None:
        self._follow()
