"""Order settings pane: account, sizing (allocator) and position read-out.

One `SettingsPane` per market: the account orders go to, the allocator's
size unit (units of the asset or quote currency), the position limit in
that unit and the number of slots it is split into, plus a bar showing how
many slots the live position uses. Order mode asks `allocator()` for the
size of every staged order, so what the pane says is what gets sent.

`SettingsDock` stacks the panes of every open market in one dock and
shows the pane of the chart tab in front.
"""
from __future__ import annotations

import math

from pyqtgraph.Qt import QtCore, QtWidgets

from ..accounting import Allocator, MktPair, mk_allocator
from ._theme import DARK, Theme

MAX_LIMIT = 1e12
SLOTS_BAR_STEPS = 1000   # progress-bar resolution
DOCK_MIN_WIDTH = 200
DOCK_MAX_WIDTH = 240


class SettingsPane(QtWidgets.QWidget):
    """Account + allocator settings of one market (`sig_changed` on any edit)."""

    sig_changed = QtCore.Signal()

    def __init__(
        self,
        mkt: MktPair,
        accounts: list[str],
        *,
        size_unit: str = 'currency',
        limit: float = 5000.0,
        slots: int = 4,
        theme: Theme = DARK,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.mkt = mkt
        self.theme = theme
        self.setObjectName('order_pane')
        # per-unit limits: switching unit keeps each unit's own number
        self._limits: dict[str, float | None] = {'currency': None, 'units': None}
        self._limits[size_unit] = float(limit)
        self._ref_price: float | None = None
        self._building = True

        self.title = QtWidgets.QLabel(mkt.fqme.upper(), self)
        self.title.setStyleSheet('font-weight: bold;')
        self.account = QtWidgets.QComboBox(self)
        self.account.addItems(list(accounts) or ['paper'])
        self.size_unit = QtWidgets.QComboBox(self)
        self.size_unit.addItems(['currency', 'units'])
        self.size_unit.setCurrentText(size_unit)
        self.limit = QtWidgets.QDoubleSpinBox(self)
        self.limit.setRange(0.0, MAX_LIMIT)
        self.limit.setGroupSeparatorShown(True)
        self.limit.setKeyboardTracking(False)
        self.slots = QtWidgets.QSpinBox(self)
        self.slots.setRange(1, 100)
        self.slots.setValue(int(slots))
        self.slots_bar = QtWidgets.QProgressBar(self)
        self.slots_bar.setRange(0, SLOTS_BAR_STEPS)
        self.slots_bar.setTextVisible(True)
        self.position = QtWidgets.QLabel('flat', self)
        self.position.setWordWrap(True)
        self.pnl = QtWidgets.QLabel('', self)
        self.hint = QtWidgets.QLabel(
            'hold f buy · d sell · a alert\n'
            '+ctrl live · click submit\n'
            '+shift bracket · t/s tp/sl\n'
            'drag to modify · c cancel\n'
            'c c cancel all · x flatten\n'
            'alt+f/d market · i indicators\n'
            'ctrl+l markets · p hide pane', self,
        )
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet(f'color: {theme.muted};')
        for w in (self.account, self.size_unit, self.limit, self.slots):
            w.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)

        form = QtWidgets.QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow('account', self.account)
        form.addRow('size unit', self.size_unit)
        form.addRow('limit', self.limit)
        form.addRow('slots', self.slots)
        form.addRow('used', self.slots_bar)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addWidget(self.title)
        lay.addLayout(form)
        lay.addWidget(self.position)
        lay.addWidget(self.pnl)
        lay.addStretch(1)
        lay.addWidget(self.hint)

        self._show_limit()
        self._building = False
        self.account.currentTextChanged.connect(self._changed)
        self.size_unit.currentTextChanged.connect(self._on_unit)
        self.limit.valueChanged.connect(self._on_limit)
        self.slots.valueChanged.connect(self._changed)
        self.set_slots_used(0.0)

    # --- reading ------------------------------------------------------------

    def current_account(self) -> str:
        return self.account.currentText()

    def current_size_unit(self) -> str:
        return self.size_unit.currentText()

    def allocator(self) -> Allocator:
        """An `Allocator` for the settings shown now."""
        unit = self.current_size_unit()
        self._ensure_limit(unit)
        return mk_allocator(
            self.mkt,
            account=self.current_account(),
            size_unit=unit,  # type: ignore[arg-type]
            units_limit=self._limits['units'],
            currency_limit=self._limits['currency'],
            slots=int(self.slots.value()),
        )

    # --- writing ------------------------------------------------------------

    def set_accounts(self, accounts: list[str]) -> None:
        """Replace the account choices, keeping the current one if still there."""
        current = self.current_account()
        self.account.blockSignals(True)
        self.account.clear()
        self.account.addItems(list(accounts) or ['paper'])
        if current in accounts:
            self.account.setCurrentText(current)
        self.account.blockSignals(False)
        self._changed()

    def set_account(self, account: str) -> None:
        if self.account.findText(account) < 0:
            raise ValueError(f'unknown account {account!r}; known: {self._accounts()}')
        self.account.setCurrentText(account)

    def set_sizing(
        self,
        size_unit: str | None = None,
        limit: float | None = None,
        slots: int | None = None,
    ) -> None:
        """Set the allocator settings (as a trader would in the widgets)."""
        if size_unit is not None:
            self.size_unit.setCurrentText(size_unit)
        if limit is not None:
            self.limit.setValue(float(limit))
        if slots is not None:
            self.slots.setValue(int(slots))

    def set_ref_price(self, price: float | None) -> None:
        """The market price, used to seed a units limit from the currency one."""
        if price is not None and math.isfinite(price) and price > 0:
            self._ref_price = float(price)

    def set_slots_used(self, used: float) -> None:
        slots = int(self.slots.value())
        frac = min(max(used / slots, 0.0), 1.0) if slots else 0.0
        self.slots_bar.setValue(int(round(frac * SLOTS_BAR_STEPS)))
        self.slots_bar.setFormat(f'{used:.2f} / {slots} slots')

    def set_position_text(self, text: str, pnl: str = '', colour: str | None = None) -> None:
        self.position.setText(text)
        self.pnl.setText(pnl)
        self.pnl.setStyleSheet(f'color: {colour};' if colour else '')

    def slots_text(self) -> str:
        return self.slots_bar.format()

    # --- internals ------------------------------------------------------------

    def _accounts(self) -> list[str]:
        return [self.account.itemText(i) for i in range(self.account.count())]

    def _ensure_limit(self, unit: str) -> None:
        if self._limits[unit] is not None:
            return
        other = 'units' if unit == 'currency' else 'currency'
        base = self._limits[other]
        price = self._ref_price
        if base is not None and price:
            value = base / price if unit == 'units' else base * price
        else:
            value = 1.0 if unit == 'units' else 5000.0
        if unit == 'units':
            value = max(
                self.mkt.quantize(value, 'size'), float(self.mkt.size_tick),
            )
        self._limits[unit] = float(value)

    def _show_limit(self) -> None:
        unit = self.current_size_unit()
        self._ensure_limit(unit)
        digits = self.mkt.size_tick_digits if unit == 'units' else 2
        step = float(self.mkt.size_tick) if unit == 'units' else 100.0
        self.limit.blockSignals(True)
        self.limit.setDecimals(digits)
        self.limit.setSingleStep(step)
        self.limit.setMinimum(float(self.mkt.size_tick) if unit == 'units' else 0.01)
        self.limit.setSuffix(f' {self.mkt.dst.name}' if unit == 'units' else f' {self.mkt.src.name}')
        self.limit.setValue(float(self._limits[unit] or 0.0))
        self.limit.blockSignals(False)

    def _on_unit(self, _unit: str) -> None:
        self._show_limit()
        self._changed()

    def _on_limit(self, value: float) -> None:
        if value > 0:
            self._limits[self.current_size_unit()] = float(value)
        self._changed()

    def _changed(self, *_) -> None:
        if not self._building:
            self.sig_changed.emit()


class SettingsDock(QtWidgets.QDockWidget):
    """A dock holding one `SettingsPane` per market, showing the current chart's."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, theme: Theme = DARK) -> None:
        super().__init__('orders', parent)
        self.setObjectName('order_dock')
        self.setFeatures(
            QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.stack = QtWidgets.QStackedWidget(self)
        self.empty = QtWidgets.QLabel('order mode: connecting…', self.stack)
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.stack.addWidget(self.empty)
        self.setWidget(self.stack)
        # narrow: at a 650 px window the chart keeps ~2/3 of the width
        self.setMinimumWidth(DOCK_MIN_WIDTH)
        self.setMaximumWidth(DOCK_MAX_WIDTH)
        self._panes: dict[str, SettingsPane] = {}

    def add(self, fqme: str, pane: SettingsPane) -> None:
        self._panes[fqme] = pane
        self.stack.addWidget(pane)

    def pane(self, fqme: str) -> SettingsPane | None:
        return self._panes.get(fqme)

    def show_for(self, fqme: str | None) -> None:
        pane = self._panes.get(fqme) if fqme else None
        self.stack.setCurrentWidget(pane if pane is not None else self.empty)
