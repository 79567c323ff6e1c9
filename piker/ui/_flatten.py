"""Flatten and market orders from the chart: `x`, `alt+f`, `alt+d`.

Both send ordinary orders through the market's order mode, so they go
through emsd and its risk checks like any other, draw a line, and report
in the status bar as the order progresses (pending, filled, or the risk
check's refusal):

- `x` (or a positions-blotter row's button) *flattens*: after a
  confirmation dialog, a live reduce-only order for the whole position of
  the pane's account in the chart's market, on the closing side, priced
  at the touch when the trader said yes. Flat, declined, or the position
  changed while the dialog was open: nothing is sent (a note says why).
- `alt+f` / `alt+d` buy / sell the allocator's current size (what a
  staged order would send) as a *marketable* order.

"Marketable" is a live limit through the touch: the ask (buy) or bid
(sell), padded by `[ems] dark_pad_ticks` price ticks with the very
function emsd releases a triggered dark order with (`pad_price`), so a
chart market order and a dark order's release behave the same way. No
touch quoted yet: the last price is the reference; no price at all:
nothing is sent.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ..clearing._dark import pad_price
from ._numbers import fmt_size

if TYPE_CHECKING:
    from ._order_mode import OrderMode

K = QtCore.Qt.Key
Mod = QtCore.Qt.KeyboardModifier
FLATTEN_KEY = K.Key_X
MARKET_KEYS = {K.Key_F: 'buy', K.Key_D: 'sell'}   # with alt
DEFAULT_PAD_TICKS = 5


def ask_user(parent: QtWidgets.QWidget | None) -> Callable[[str, str], bool]:
    """A yes/no dialog (default: no) asking before an order goes out."""
    def confirm(title: str, text: str) -> bool:
        box = QtWidgets.QMessageBox(parent)
        box.setIcon(QtWidgets.QMessageBox.Icon.Question)
        box.setWindowTitle(title)
        box.setText(text)
        yes = QtWidgets.QMessageBox.StandardButton.Yes
        no = QtWidgets.QMessageBox.StandardButton.No
        box.setStandardButtons(yes | no)
        box.setDefaultButton(no)
        run = box.exec if hasattr(box, 'exec') else box.exec_
        return run() == yes
    return confirm


class Flattener(QtCore.QObject):
    """Flatten and market-order keys of one chart's order mode.

    `confirm(title, text) -> bool` asks before flattening (default: a
    dialog; tests inject an answer); `pad_ticks` is emsd's dark pad.
    """

    def __init__(
        self,
        mode: OrderMode,
        *,
        pad_ticks: int = DEFAULT_PAD_TICKS,
        confirm: Callable[[str, str], bool] | None = None,
    ) -> None:
        super().__init__(mode)
        self.mode = mode
        self.pad_ticks = int(pad_ticks)
        self.confirm = confirm or ask_user(mode.chart.window())
        mode.chart.view.sig_key_press.connect(self._on_key)

    def marketable_price(self, action: str) -> float | None:
        """The live limit that crosses the touch for `action` (or None)."""
        prices = self.mode.chart.l1.prices
        touch = prices.get('ask' if action == 'buy' else 'bid') or prices.get('last')
        if not touch:
            touch = self.mode._last_price()
        if not touch:
            return None
        return pad_price(float(touch), action, self.mode.mkt.price_tick, self.pad_ticks)

    def flatten(self, account: str | None = None) -> str | None:
        """Close `account`'s (default: the pane's) position in this market
        after confirmation; returns the closing order's oid."""
        mode = self.mode
        account = account or mode.account()
        held = mode.positions.holding(account)
        if held is None or not held.size:
            mode._note(f'flatten: {account} is flat in {mode.fqme}, nothing sent')
            return None
        action = 'sell' if held.size > 0 else 'buy'
        size = abs(held.size)
        price = self.marketable_price(action)
        if price is None:
            mode._note(f'flatten: no price for {mode.fqme} yet, nothing sent')
            return None
        what = (f'{action} {fmt_size(size, mode.mkt.size_tick_digits)} {mode.fqme} '
                f'at up to {mode.chart.format_price(price)} (live, {account})')
        if not self.confirm('flatten', f'Flatten {account} in {mode.fqme}?\n\n{what}'):
            mode._note(f'flatten {mode.fqme} declined: nothing sent')
            return None
        # the market moved on while the dialog was open; the position may have
        now = mode.positions.holding(account)
        if now is None or now.size != held.size:
            mode._note(f'flatten {mode.fqme}: the position changed while asking, nothing '
                       'sent (press x again)')
            return None
        price = self.marketable_price(action) or price
        oid = mode.place(action, price, size, exec_mode='live', account=account, reduce_only=True)
        if oid is not None:
            mode._note(f'flatten sent: {what}')
        return oid

    def market(self, action: str) -> str | None:
        """Buy or sell the allocator's current size, marketable."""
        mode = self.mode
        price = self.marketable_price(action)
        if price is None:
            mode._note(f'market {action}: no price for {mode.fqme} yet, nothing sent')
            return None
        try:
            info = mode.order_info(action, price)
        except ValueError as err:
            mode._note(f'market {action}: {err}')
            return None
        size = float(info['size'])
        if size <= 0:
            mode._note(f'market {action}: position limit reached for {info["account"]}, nothing sent')
            return None
        return mode.place(action, price, size, exec_mode='live', account=info['account'])

    def _on_key(self, ev: QtGui.QKeyEvent) -> None:
        if ev.isAutoRepeat():
            return
        mods = ev.modifiers() & (Mod.ShiftModifier | Mod.ControlModifier | Mod.AltModifier
                                 | Mod.MetaModifier)
        key = ev.key()
        if key == FLATTEN_KEY and not mods:
            self.flatten()
        elif key in MARKET_KEYS and mods == Mod.AltModifier:
            self.market(MARKET_KEYS[key])
