"""Blotters: the tables of active orders, fills and positions/accounts.

Each blotter is a plain widget fed typed messages (`Status`,
`BrokerdPosition`, ledger `Transaction`s) by the `Cockpit`; what a trader
does in a row (cancel, edit a price or size, flatten) leaves as a Qt
signal, and the cockpit sends it through the order mode of that market,
so a row and a chart line are one order with one state.

Blotters must never slow the chart, so no message touches a table
directly: it records what changed and asks the shared `FrameBatch` for a
flush, which runs at most once per frame (`FRAME_MS`) and applies every
change at once with the table's repaints suspended. Quotes only mark the
P&L cells of their market dirty. Rows are bounded: the fills blotter
shows the newest `page` fills and loads older ones a page at a time.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable
from typing import Any

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ..accounting import Transaction
from ..clearing._messages import BrokerdPosition, Order, Status
from ..types import Struct
from ._numbers import fmt_num
from ._position import Holding
from ._theme import DARK, Theme

FRAME_MS = 16           # a flush at most this often (one 60 Hz frame)
FILLS_PAGE = 200        # fills shown at first, and loaded per "older" click
ROW_HEIGHT = 20
CELL_PAD = 10           # px around a cell's text

Align = QtCore.Qt.AlignmentFlag
_RIGHT = Align.AlignRight | Align.AlignVCenter
_LEFT = Align.AlignLeft | Align.AlignVCenter
_EDITABLE = (QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsSelectable
             | QtCore.Qt.ItemFlag.ItemIsEditable)
_READONLY = QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsSelectable
_DISABLED = QtCore.Qt.ItemFlag.ItemIsSelectable
_COLOUR = QtCore.Qt.ItemDataRole.UserRole + 1
_BUTTON = QtCore.Qt.ItemDataRole.UserRole + 2


class FrameBatch(QtCore.QObject):
    """Runs queued table work at most once per frame, each job once."""

    def __init__(self, parent: QtCore.QObject | None = None, frame_ms: int = FRAME_MS) -> None:
        super().__init__(parent)
        self._jobs: dict[Callable[[], None], None] = {}
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(frame_ms)
        self._timer.timeout.connect(self.flush)
        self.flushes = 0

    def request(self, job: Callable[[], None]) -> None:
        self._jobs[job] = None
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        """Run every queued job now (tests call this instead of waiting)."""
        self._timer.stop()
        jobs, self._jobs = list(self._jobs), {}
        if jobs:
            self.flushes += 1
        for job in jobs:
            job()


def fmt_qty(value: float) -> str:
    """A size with its own precision (`0.015`, `2`, `1,250`)."""
    return f'{value:,.8f}'.rstrip('0').rstrip('.') if value != int(value) else f'{value:,.0f}'


def parse_num(text: str) -> float:
    """A number a trader typed (`30,120.5`); ValueError saying why not."""
    try:
        value = float(text.replace(',', '').replace('_', '').strip())
    except ValueError:
        raise ValueError(f'{text.strip()!r} is not a number') from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f'{text.strip()!r} must be a positive number')
    return value


def fmt_time(t: float) -> str:
    """Local `MM-DD HH:MM:SS` (the year is in the cell's tooltip)."""
    return dt.datetime.fromtimestamp(t).strftime('%m-%d %H:%M:%S')


class _Table(QtWidgets.QTableWidget):
    """A compact read-mostly table.

    Cheap to keep live: a cell is only touched when its text, colour or
    flags change (so a flush repaints just those cells), and row buttons
    are painted cells, not widgets: a click on one is `sig_button(key,
    column)`.
    """

    sig_button = QtCore.Signal(object, str)

    def __init__(
        self, columns: Iterable[str], parent: QtWidgets.QWidget | None = None,
        theme: Theme = DARK,
    ) -> None:
        cols = list(columns)
        super().__init__(0, len(cols), parent)
        self.setHorizontalHeaderLabels(cols)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(False)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)
        self.horizontalHeader().setHighlightSections(False)
        self.horizontalHeader().setStretchLastSection(True)
        self.horizontalHeader().setMinimumSectionSize(24)
        # a size smaller than the chrome's: more columns in a narrow dock
        self.setStyleSheet(f'* {{ font-size: {theme.font_size - 1}pt; }}')
        self.ensurePolished()
        self.columns = cols
        # the widest text seen per column (px): a wider one widens its column
        # (measured here, not by Qt's fit, which only sees the rows in view)
        self._fm = self.fontMetrics()
        header = self.horizontalHeader()
        self._widths = [header.sectionSizeHint(i) for i in range(len(cols))]
        self._grown = set(range(len(cols)))
        self._button_bg = QtGui.QBrush(QtGui.QColor(theme.grid))
        self.cellClicked.connect(self._on_click)

    def col(self, name: str) -> int:
        return self.columns.index(name)

    def put(self, row: int, col: int, text: str, *, right: bool = False,
            editable: bool = False, colour: str | None = None, key: Any = None,
            button: bool = False) -> None:
        item = self.item(row, col)
        if item is None:
            item = QtWidgets.QTableWidgetItem()
            item.setTextAlignment(Align.AlignCenter if button else _RIGHT if right else _LEFT)
            if button:
                item.setBackground(self._button_bg)
            item.setData(_BUTTON, button)
            self.setItem(row, col, item)
        if item.text() != text:
            item.setText(text)
            self.widen(col, self._fm.horizontalAdvance(text) + CELL_PAD + (12 if button else 0))
        flags = _EDITABLE if editable else _READONLY
        if item.flags() != flags:
            item.setFlags(flags)
        if item.data(_COLOUR) != colour:
            item.setData(_COLOUR, colour)
            item.setForeground(QtGui.QBrush(QtGui.QColor(colour)) if colour else QtGui.QBrush())
        if key is not None and item.data(QtCore.Qt.ItemDataRole.UserRole) != key:
            item.setData(QtCore.Qt.ItemDataRole.UserRole, key)

    def cell_rect(self, key: Any, column: str) -> QtCore.QRect:
        """Where a row's cell is in the viewport (to click its button)."""
        return self.visualItemRect(self.item(self.row_of(key), self.col(column)))

    def _on_click(self, row: int, col: int) -> None:
        item = self.item(row, col)
        if item is not None and item.data(_BUTTON) and item.flags() & QtCore.Qt.ItemFlag.ItemIsEnabled:
            self.sig_button.emit(self.key_of(row), self.columns[col])

    def key_of(self, row: int) -> Any:
        item = self.item(row, 0)
        return item.data(QtCore.Qt.ItemDataRole.UserRole) if item is not None else None

    def row_of(self, key: Any) -> int:
        for row in range(self.rowCount()):
            if self.key_of(row) == key:
                return row
        return -1

    def text(self, key: Any, column: str) -> str:
        row = self.row_of(key)
        if row < 0:
            raise KeyError(f'no row {key!r}')
        item = self.item(row, self.col(column))
        return item.text() if item is not None else ''

    def widen(self, col: int, px: int) -> None:
        if px > self._widths[col]:
            self._widths[col] = px
            self._grown.add(col)

    def fit(self) -> None:
        """Widen the columns whose contents grew since the last fit."""
        header = self.horizontalHeader()
        for col in self._grown:
            header.resizeSection(col, self._widths[col])
        self._grown.clear()

    def content_width(self) -> int:
        """The width that shows every column whole."""
        self.fit()
        cols = sum(self._widths)
        return cols + 2 * self.frameWidth() + self.verticalScrollBar().sizeHint().width()


def _suspended(table: QtWidgets.QTableWidget):
    """Context for a flush: no edit signals until it ends (a flush is the
    EMS speaking, not the trader editing)."""
    class _Ctx:
        def __enter__(self) -> None:
            table.blockSignals(True)

        def __exit__(self, *_) -> None:
            table.blockSignals(False)
    return _Ctx()


class _Blotter(QtWidgets.QWidget):
    """What every blotter has: the frame batch, theme and price format
    (`fmt_price(fqme, price)`, the chart's when the market is charted)."""

    def __init__(
        self, batch: FrameBatch, theme: Theme = DARK,
        fmt_price: Callable[[str, float], str] | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.batch, self.theme = batch, theme
        self.fmt_price = fmt_price or (lambda _fqme, p: fmt_num(p, 2))


# --- active orders ------------------------------------------------------------------

ORDER_COLUMNS = ('market', 'source', 'side', 'type', 'mode', 'account', 'price', 'size',
                 'filled', 'state', '')
_STATE_WORDS = {'dark_open': 'open (dark)', 'dark_triggered': 'triggered', 'fill': 'part filled'}


class OrderRow(Struct):
    """One active dialog as the blotter shows it."""

    req: Order
    resp: str
    source: str
    filled: float = 0.0
    reason: str = ''


class OrdersBlotter(_Blotter):
    """Every active order on the charted markets, whoever placed it.

    `source` says who: `this chart`, `other client` (another window, a
    script, the CLI) or `venue` (an order found at the venue, entered
    elsewhere). Price and size cells are editable (double-click, type,
    Enter): `sig_modify(oid, price, size)`; the cancel button or Delete on
    selected rows: `sig_cancel(oid)`; `sig_note(text)` says why an edit
    was refused.
    """

    sig_cancel = QtCore.Signal(str)
    sig_modify = QtCore.Signal(str, float, float)
    sig_note = QtCore.Signal(str)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.setObjectName('blotter_orders_widget')
        theme = self.theme
        self.table = _Table(ORDER_COLUMNS, self, theme)
        self.table.setEditTriggers(
            QtWidgets.QAbstractItemView.EditTrigger.DoubleClicked
            | QtWidgets.QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.itemChanged.connect(self._on_edit)
        self.table.sig_button.connect(lambda oid, _col: self.sig_cancel.emit(oid))
        self.table.installEventFilter(self)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table)
        self.rows: dict[str, OrderRow] = {}
        self._dirty: dict[str, None] = {}      # in arrival order: new rows go below

    # --- feeding -----------------------------------------------------------------

    def upsert(self, st: Status, source: str) -> None:
        """Show (or refresh) the dialog of a non-terminal `st`."""
        if st.req is None:
            return
        old = self.rows.get(st.oid)
        self.rows[st.oid] = OrderRow(
            req=st.req, resp=st.resp, source=old.source if old else source,
            filled=st.filled, reason=st.reason,
        )
        self._touch(st.oid)

    def set_state(self, oid: str, resp: str, req: Order | None = None) -> None:
        """A state this window knows before the EMS says it (`modifying`)."""
        row = self.rows.get(oid)
        if row is not None:
            row.resp = resp
            if req is not None:
                row.req = req
        self._touch(oid)

    def remove(self, oid: str) -> None:
        if self.rows.pop(oid, None) is not None:
            self._touch(oid)

    def oids(self) -> list[str]:
        """The oids shown, top to bottom (after the pending flush)."""
        return [self.table.key_of(r) for r in range(self.table.rowCount())]

    def cell(self, oid: str, column: str) -> str:
        return self.table.text(oid, column)

    def edit(self, oid: str, column: str, text: str) -> None:
        """Type `text` into a price or size cell, as a trader would."""
        row = self.table.row_of(oid)
        self.table.item(row, self.table.col(column)).setText(text)

    def cancel_rect(self, oid: str) -> QtCore.QRect:
        """The row's cancel button, in the table's viewport."""
        return self.table.cell_rect(oid, '')

    # --- internals ---------------------------------------------------------------

    def _touch(self, oid: str) -> None:
        self._dirty[oid] = None
        self.batch.request(self._flush)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        t = self.table
        with _suspended(t):
            for oid in dirty:
                row = t.row_of(oid)
                data = self.rows.get(oid)
                if data is None:
                    if row >= 0:
                        t.removeRow(row)
                    continue
                if row < 0:
                    row = t.rowCount()
                    t.insertRow(row)
                self._render(row, oid, data)
            t.fit()

    def _render(self, row: int, oid: str, data: OrderRow) -> None:
        t, req = self.table, data.req
        colour = {'buy': self.theme.buy, 'sell': self.theme.sell}.get(req.action, self.theme.alert)
        state = _STATE_WORDS.get(data.resp, data.resp)
        if data.reason:
            state = f'{state}: {data.reason}'
        t.put(row, t.col('market'), req.symbol, key=oid)
        t.put(row, t.col('source'), data.source)
        t.put(row, t.col('side'), req.action, colour=colour)
        t.put(row, t.col('type'), req.type)
        t.put(row, t.col('mode'), req.exec_mode)
        t.put(row, t.col('account'), req.account)
        t.put(row, t.col('price'), self.fmt_price(req.symbol, req.price), right=True, editable=True)
        t.put(row, t.col('size'), fmt_qty(req.size), right=True, editable=req.action != 'alert')
        t.put(row, t.col('filled'), fmt_qty(data.filled), right=True)
        t.put(row, t.col('state'), state)
        t.put(row, t.col(''), 'cancel', button=True)

    def _on_edit(self, item: QtWidgets.QTableWidgetItem) -> None:
        t = self.table
        oid = t.key_of(item.row())
        data = self.rows.get(oid)
        column = t.columns[item.column()]
        if data is None or column not in ('price', 'size'):
            return
        try:
            value = parse_num(item.text())
        except ValueError as err:
            self.sig_note.emit(f'{column} of {data.req.symbol} {data.req.action} not changed: {err}')
            self._touch(oid)      # back to what the EMS says
            return
        price = value if column == 'price' else data.req.price
        size = value if column == 'size' else data.req.size
        self._touch(oid)
        self.sig_modify.emit(oid, price, size)

    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:  # noqa: N802
        if (obj is self.table and ev.type() == QtCore.QEvent.Type.KeyPress
                and ev.key() in (QtCore.Qt.Key.Key_Delete, QtCore.Qt.Key.Key_Backspace)
                and self.table.state() != QtWidgets.QAbstractItemView.State.EditingState):
            rows = {i.row() for i in self.table.selectedItems()}
            for row in sorted(rows):
                self.sig_cancel.emit(self.table.key_of(row))
            return bool(rows)
        return super().eventFilter(obj, ev)


# --- fills ------------------------------------------------------------------------

FILL_COLUMNS = ('time', 'market', 'account', 'side', 'size', 'price', 'fee')


class Fill(Struct, frozen=True):
    """One execution, from the ledger or a live `fill` Status."""

    time: float
    fqme: str
    account: str
    side: str
    size: float
    price: float
    fee: float
    tid: str

    @classmethod
    def from_txn(cls, txn: Transaction, account: str) -> Fill:
        return cls(
            time=txn.dt.timestamp(), fqme=txn.fqme, account=account,
            side='buy' if txn.size > 0 else 'sell', size=abs(txn.size), price=txn.price,
            fee=txn.cost, tid=txn.tid,
        )

    @classmethod
    def from_status(cls, st: Status) -> Fill | None:
        """The fill of a `fill` Status (None if its venue message lacks one)."""
        f, req = st.brokerd_msg, st.req
        if st.resp != 'fill' or req is None:
            return None
        try:
            price, size, tid = float(f['price']), float(f['size']), str(f['tid'])
        except (KeyError, TypeError, ValueError):
            return None
        t = f.get('broker_time') or (f.get('time_ns') or st.time_ns) / 1e9
        return cls(
            time=float(t), fqme=req.symbol, account=req.account,
            side=str(f.get('action') or req.action), size=size, price=price,
            fee=float(f.get('cost') or 0.0), tid=tid,
        )

    @property
    def signed(self) -> float:
        return self.size if self.side == 'buy' else -self.size


class FillsBlotter(_Blotter):
    """Fills newest first: the ledger's at start-up, then live ones.

    Bounded: the newest `page` fills are rows; `load_older()` (the button)
    adds a page. A fill is shown once per (account, tid), however it came.
    """

    def __init__(self, *args: Any, page: int = FILLS_PAGE, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.setObjectName('blotter_fills_widget')
        theme, self.page = self.theme, int(page)
        self.visible = self.page
        self.table = _Table(FILL_COLUMNS, self, theme)
        self.info = QtWidgets.QLabel('no fills', self)
        self.info.setStyleSheet(f'color: {theme.muted};')
        self.older = QtWidgets.QPushButton(f'load {self.page} older', self)
        self.older.setObjectName('load_older_fills')
        self.older.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.older.clicked.connect(self.load_older)
        foot = QtWidgets.QHBoxLayout()
        foot.setContentsMargins(4, 0, 4, 2)
        foot.addWidget(self.info, 1)
        foot.addWidget(self.older)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.table, 1)
        lay.addLayout(foot)
        self.fills: list[Fill] = []          # oldest first
        self._seen: set[tuple[str, str]] = set()
        self._shown: list[Fill] = []          # the rows, newest first
        self.errors: list[str] = []
        self._refresh_foot()

    def add(self, fills: Iterable[Fill]) -> list[Fill]:
        """Add fills (any order); returns those not seen before."""
        new = []
        for f in fills:
            key = (f.account, f.tid)
            if key in self._seen:
                continue
            self._seen.add(key)
            new.append(f)
        if new:
            newest = self.fills[-1].time if self.fills else -math.inf
            self.fills.extend(new)
            if min(f.time for f in new) < newest:
                self.fills.sort(key=lambda f: f.time)
            self.batch.request(self._flush)
        return new

    def add_error(self, text: str) -> None:
        """A ledger that could not be read: said in the footer."""
        self.errors.append(text)
        self._refresh_foot()

    def load_older(self) -> None:
        self.visible += self.page
        self.batch.request(self._flush)

    def shown(self) -> list[Fill]:
        return list(self._shown)

    def _flush(self) -> None:
        want = self.fills[-self.visible:][::-1]
        t = self.table
        with _suspended(t):
            # live fills on top of what is shown: insert them, trim the tail
            k = want.index(self._shown[0]) if self._shown and self._shown[0] in want else -1
            if k > 0 and want[k:] == self._shown[:len(want) - k]:
                for i, f in enumerate(want[:k]):
                    t.insertRow(i)
                    self._render(i, f)
            elif want != self._shown:
                t.setRowCount(len(want))
                for i, f in enumerate(want):
                    self._render(i, f)
            while t.rowCount() > len(want):
                t.removeRow(t.rowCount() - 1)
            t.fit()
        self._shown = want
        self._refresh_foot()

    def _render(self, row: int, f: Fill) -> None:
        t = self.table
        colour = self.theme.buy if f.side == 'buy' else self.theme.sell
        t.put(row, 0, fmt_time(f.time), key=(f.account, f.tid))
        t.item(row, 0).setToolTip(dt.datetime.fromtimestamp(f.time).isoformat(' ', 'seconds'))
        t.put(row, 1, f.fqme)
        t.put(row, 2, f.account)
        t.put(row, 3, f.side, colour=colour)
        t.put(row, 4, fmt_qty(f.size), right=True)
        t.put(row, 5, self.fmt_price(f.fqme, f.price), right=True)
        t.put(row, 6, fmt_num(f.fee, 4).rstrip('0').rstrip('.') if f.fee else '0', right=True)

    def _refresh_foot(self) -> None:
        n, shown = len(self.fills), len(self._shown)
        text = 'no fills' if not n else f'showing {shown:,} of {n:,} fills'
        if self.errors:
            text = f'{text}; ' + '; '.join(self.errors)
        self.info.setText(text)
        self.older.setEnabled(n > shown)


# --- positions and accounts ----------------------------------------------------------

POSITION_COLUMNS = ('market', 'account', 'size', 'ppu', 'last', 'P&L', 'realised', '')
ACCOUNT_COLUMNS = ('account', 'positions', 'P&L', 'realised', 'balances')


class PosRow(Struct):
    """One (account, market) row: the EMS's position, the market's last
    price and what its fills realised."""

    fqme: str
    broker: str
    account: str
    size: float = 0.0
    ppu: float = 0.0
    last: float | None = None
    realised: float = 0.0
    quote_ccy: str = ''
    # the venue reports balances, not positions (spot): size is a balance
    balance_ccy: str = ''

    def pnl(self) -> float | None:
        if self.last is None or not self.size:
            return None
        return Holding(account=self.account, size=self.size, ppu=self.ppu).pnl(self.last)


class PositionsBlotter(_Blotter):
    """Positions per account and market (size, ppu, live and realised
    P&L, a flatten button) above a per-account summary (open positions,
    P&L and realised P&L per currency, balances where the venue reports
    them). `sig_flatten(fqme, account)` from a row's button."""

    sig_flatten = QtCore.Signal(str, str)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.setObjectName('blotter_positions_widget')
        theme = self.theme
        self.table = _Table(POSITION_COLUMNS, self, theme)
        self.accounts = _Table(ACCOUNT_COLUMNS, self, theme)
        self.table.sig_button.connect(lambda key, _col: self.sig_flatten.emit(key[1], key[0]))
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical, self)
        split.addWidget(self.table)
        split.addWidget(self.accounts)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 1)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)
        self.rows: dict[tuple[str, str], PosRow] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._accounts_dirty = False

    # --- feeding -------------------------------------------------------------------

    def set_position(self, msg: BrokerdPosition, quote_ccy: str = '') -> None:
        key = (msg.account, msg.symbol)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = PosRow(fqme=msg.symbol, broker=msg.broker, account=msg.account)
        row.size, row.ppu = float(msg.size), float(msg.avg_price)
        row.quote_ccy = quote_ccy or msg.currency or row.quote_ccy
        row.balance_ccy = msg.currency
        self._touch(key)

    def set_flat(self, account: str, fqme: str) -> None:
        row = self.rows.get((account, fqme))
        if row is not None:
            row.size = row.ppu = 0.0
            self._touch((account, fqme))

    def set_realised(self, account: str, fqme: str, broker: str, realised: float,
                     quote_ccy: str = '') -> None:
        key = (account, fqme)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = PosRow(fqme=fqme, broker=broker, account=account)
        row.realised = realised
        row.quote_ccy = row.quote_ccy or quote_ccy
        self._touch(key)

    def on_price(self, fqme: str, last: float) -> None:
        """A quote: the P&L cells of `fqme`'s held rows go dirty."""
        for key, row in self.rows.items():
            if row.fqme == fqme and row.last != last:
                row.last = last
                if row.size:
                    self._touch(key)

    def row(self, account: str, fqme: str) -> PosRow | None:
        return self.rows.get((account, fqme))

    def cell(self, account: str, fqme: str, column: str) -> str:
        return self.table.text((account, fqme), column)

    def account_cell(self, account: str, column: str) -> str:
        return self.accounts.text(account, column)

    def flatten_rect(self, account: str, fqme: str) -> QtCore.QRect:
        """The row's flatten button, in the table's viewport."""
        return self.table.cell_rect((account, fqme), '')

    # --- internals ----------------------------------------------------------------------

    def _touch(self, key: tuple[str, str]) -> None:
        self._dirty.add(key)
        self._accounts_dirty = True
        self.batch.request(self._flush)

    def _visible(self, row: PosRow) -> bool:
        return bool(row.size) or bool(row.realised)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        t = self.table
        with _suspended(t):
            for key in sorted(dirty):
                data = self.rows.get(key)
                r = t.row_of(key)
                if data is None or not self._visible(data):
                    if r >= 0:
                        t.removeRow(r)
                    continue
                if r < 0:
                    r = t.rowCount()
                    t.insertRow(r)
                self._render(r, key, data)
            t.fit()
        if self._accounts_dirty:
            self._accounts_dirty = False
            self._flush_accounts()

    def _render(self, r: int, key: tuple[str, str], row: PosRow) -> None:
        t, th = self.table, self.theme
        pnl = row.pnl()
        t.put(r, t.col('market'), row.fqme, key=key)
        t.put(r, t.col('account'), row.account)
        t.put(r, t.col('size'), fmt_qty(row.size) if row.size else 'flat', right=True,
              colour=th.up if row.size > 0 else th.down if row.size < 0 else th.muted)
        t.put(r, t.col('ppu'), self.fmt_price(row.fqme, row.ppu) if row.size else '', right=True)
        t.put(r, t.col('last'), self.fmt_price(row.fqme, row.last) if row.last else '', right=True)
        t.put(r, t.col('P&L'), fmt_num(pnl, 2, signed=True), right=True, colour=_pnl_colour(pnl, th))
        t.put(r, t.col('realised'), fmt_num(row.realised, 2, signed=True), right=True,
              colour=_pnl_colour(row.realised, th))
        t.put(r, t.col(''), 'flatten', button=True, colour=None if row.size else th.muted)
        item = t.item(r, t.col(''))
        want = _READONLY if row.size else _DISABLED
        if item.flags() != want:
            item.setFlags(want)

    def _flush_accounts(self) -> None:
        per: dict[str, list[PosRow]] = {}
        for row in self.rows.values():
            per.setdefault(f'{row.broker}.{row.account}', []).append(row)
        t, th = self.accounts, self.theme
        with _suspended(t):
            t.setRowCount(len(per))
            for r, (name, rows) in enumerate(sorted(per.items())):
                held = [x for x in rows if x.size]
                pnl = _by_ccy((x.quote_ccy, x.pnl()) for x in held)
                realised = _by_ccy((x.quote_ccy, x.realised) for x in rows if x.realised)
                balances = ', '.join(
                    f'{fmt_qty(x.size)} {x.fqme.split(".")[0]}' for x in held if x.balance_ccy
                ) or 'not reported'
                t.put(r, 0, name, key=name)
                t.put(r, 1, str(len(held)), right=True)
                t.put(r, 2, pnl, right=True)
                t.put(r, 3, realised, right=True)
                t.put(r, 4, balances, colour=None if balances != 'not reported' else th.muted)
            t.fit()


def _pnl_colour(value: float | None, theme: Theme) -> str | None:
    if value is None or not round(value, 2):
        return None
    return theme.up if value > 0 else theme.down


def _by_ccy(pairs: Iterable[tuple[str, float | None]]) -> str:
    """`+12.50 usdt, -3.00 eur`: amounts summed per currency (never across)."""
    sums: dict[str, float] = {}
    for ccy, value in pairs:
        if value is not None:
            sums[ccy] = sums.get(ccy, 0.0) + value
    return ', '.join(f'{fmt_num(v, 2, signed=True)} {c}'.strip() for c, v in sorted(sums.items()))
