"""The cockpit: blotters, log pane, flatten keys and notifications of a chart window.

`ChartApp` hands the cockpit what its EMS sessions and quote feed hear
(`attach()` / `resync()` with each session's handshake, `on_msg()` with
every trades message, `on_quote()` with every quote) and the cockpit
keeps the blotters true to it:

- orders: every active dialog of the charted markets, whoever placed it
  (`this chart` for the oids this window sent, `venue` for an external
  order, `other client` for the rest); a row's cancel and edits go
  through that market's `OrderMode` (`cancel()` / `modify()`), so the row
  and the chart line are one order;
- fills: the trade ledgers of each session's accounts at start-up (read
  off the UI thread) and every live `fill`, once per tid;
- positions: the EMS's positions with P&L at the last quote and the P&L
  their fills realised (`PnlBook`), and a per-account summary;
- the log pane repeats every status-bar message.

It also gives each market's order mode its `Flattener` (`x`, `alt+f`,
`alt+d`) and sends desktop notifications for fills and triggered alerts
when `[ui] notify` is on.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyqtgraph.Qt import QtCore

from ..accounting import AccountingError, PnlBook, TransactionLedger
from ..clearing._messages import TERMINAL_RESPS, BrokerdPosition, Status
from ..log import get_logger
from ._blotters import (
    Fill,
    FillsBlotter,
    FrameBatch,
    OrdersBlotter,
    PositionsBlotter,
)
from ._docks import BlotterDocks
from ._flatten import DEFAULT_PAD_TICKS, Flattener
from ._logpane import LogPane
from ._notify import NotifierLike, notify_for
from ._numbers import fmt_num
from ._theme import DARK, Theme

if TYPE_CHECKING:
    from ..config import UIConf
    from ._order_mode import OrderMode
    from ._window import MainWindow

log = get_logger(__name__)


class Cockpit(QtCore.QObject):
    """Blotter docks on `win`, fed by the app (see the module doc).

    `notifier`: where notifications go (None: none); `confirm`: the
    flatten confirmation (default: a dialog); `layout_path`: the file
    the dock layout is remembered in (None: not remembered).
    """

    def __init__(
        self,
        win: MainWindow,
        *,
        theme: Theme = DARK,
        notifier: NotifierLike | None = None,
        confirm: Callable[[str, str], bool] | None = None,
        pad_ticks: int = DEFAULT_PAD_TICKS,
        layout_path: Path | None = None,
        fills_page: int | None = None,
        extra_docks: Iterable[Any] = (),
    ) -> None:
        super().__init__(win)
        self.win = win
        self.notifier = notifier
        self.confirm = confirm
        self.pad_ticks = pad_ticks
        self.batch = FrameBatch(self)
        fmt = self._fmt_price
        self.orders = OrdersBlotter(self.batch, theme, fmt_price=fmt)
        kw = {} if fills_page is None else {'page': fills_page}
        self.fills = FillsBlotter(self.batch, theme, fmt_price=fmt, **kw)
        self.positions = PositionsBlotter(self.batch, theme, fmt_price=fmt)
        self.log = LogPane(self.batch, theme=theme)
        self.docks = BlotterDocks(
            win, {'orders': self.orders, 'fills': self.fills, 'positions': self.positions,
                  'log': self.log},
            path=layout_path, extra=list(extra_docks),
        )
        self.modes: dict[str, OrderMode] = {}
        self.flatteners: dict[str, Flattener] = {}
        self.pnl = PnlBook()
        self._mine: set[str] = set()
        self._external: set[str] = set()
        self._alerted: set[str] = set()
        self._ledgers: set[tuple[str, str]] = set()
        win.status.sig_message.connect(self.log.add)
        self.orders.sig_cancel.connect(self.cancel)
        self.orders.sig_modify.connect(self.modify)
        self.orders.sig_note.connect(self._note)
        self.positions.sig_flatten.connect(self.flatten)

    def configure(self, ui: UIConf) -> None:
        """Settings from `conf.toml`: notifications (`[ui] notify`) and the
        pad of marketable orders (`[ems] dark_pad_ticks`, emsd's)."""
        from ..config import ConfigError, load_conf

        if ui.notify and self.notifier is None:
            from ._notify import Notifier
            self.notifier = Notifier(self)
            log.info('desktop notifications via %s', self.notifier.backend)
        try:
            self.pad_ticks = load_conf().ems.dark_pad_ticks
        except ConfigError as err:
            log.warning('market orders padded by %d ticks: %s', self.pad_ticks, err)
        for flat in self.flatteners.values():
            flat.pad_ticks = self.pad_ticks

    # --- sessions ---------------------------------------------------------------------

    def attach(
        self,
        mode: OrderMode,
        dialogs: Mapping[str, Status],
        positions: Mapping[tuple[str, str], list[BrokerdPosition]],
    ) -> None:
        """A market's first EMS session: its order mode and handshake."""
        self.modes[mode.fqme] = mode
        mode.sig_submitted.connect(self._mine.add)
        self.flatteners[mode.fqme] = Flattener(
            mode, pad_ticks=self.pad_ticks, confirm=self.confirm,
        )
        self._resync(mode, dialogs, positions)

    def resync(
        self,
        mode: OrderMode,
        dialogs: Mapping[str, Status],
        positions: Mapping[tuple[str, str], list[BrokerdPosition]],
    ) -> None:
        """A reconnected session: its handshake is the truth, and the next
        `load_ledgers()` reads its broker's ledgers again (fills made while
        the chart could not hear; each fill is still shown once)."""
        broker = mode.mkt.broker
        self._ledgers = {key for key in self._ledgers if key[0] != broker}
        self._resync(mode, dialogs, positions)

    def _resync(
        self,
        mode: OrderMode,
        dialogs: Mapping[str, Status],
        positions: Mapping[tuple[str, str], list[BrokerdPosition]],
    ) -> None:
        """The session's handshake is the truth for its market."""
        fqme = mode.fqme
        active = {oid for oid, st in dialogs.items() if st.req is not None and st.req.symbol == fqme}
        for oid, row in list(self.orders.rows.items()):
            if row.req.symbol == fqme and oid not in active:
                self.orders.remove(oid)
        for oid in active:
            self._upsert(dialogs[oid])
        held = set()
        for pps in positions.values():
            for pp in pps:
                if pp.symbol == fqme:
                    held.add(pp.account)
                    self._position(pp)
        for (account, sym), row in list(self.positions.rows.items()):
            if sym == fqme and account not in held and row.size:
                self.positions.set_flat(account, fqme)

    def on_msg(self, msg: Status | BrokerdPosition) -> None:
        """One message of a session's trades stream."""
        if isinstance(msg, BrokerdPosition):
            self._position(msg)
            return
        if msg.req is None:
            return
        if msg.resp in TERMINAL_RESPS:
            self.orders.remove(msg.oid)
        else:
            self._upsert(msg)
        if msg.resp == 'fill':
            fill = Fill.from_status(msg)
            if fill is not None and self._add_fills([fill]):
                self._notify(msg)       # once per fill, whichever session told
        elif msg.resp == 'alert_triggered' and msg.oid not in self._alerted:
            self._alerted.add(msg.oid)
            self._notify(msg)

    def on_quote(self, fqme: str, quote: Mapping[str, Any]) -> None:
        last = quote.get('last')
        if last is not None:
            self.positions.on_price(fqme, float(last))

    async def load_ledgers(self, broker: str, accounts: Iterable[str]) -> None:
        """Read the trade ledgers of `broker`'s `accounts` (each once, in a
        worker thread: a long ledger never stalls the chart) into the fills
        and positions blotters."""
        import trio

        for account in accounts:
            key = (broker, account)
            if key in self._ledgers:
                continue
            self._ledgers.add(key)
            try:
                ledger = await trio.to_thread.run_sync(TransactionLedger.load, broker, account)
            except (AccountingError, OSError) as err:
                log.warning('fills blotter: %s', err)
                self.fills.add_error(f'ledger {broker}.{account} unreadable: {err}')
                continue
            self.add_ledger(ledger)

    def add_ledger(self, ledger: TransactionLedger) -> None:
        self._add_fills([Fill.from_txn(txn, ledger.account) for txn in ledger.iter_txns()])

    # --- what a trader does in a row ------------------------------------------------------

    def cancel(self, oid: str) -> None:
        row = self.orders.rows.get(oid)
        mode = self.modes.get(row.req.symbol) if row is not None else None
        if mode is None:
            self._note(f'cancel: order {oid} is not on a chart of this window')
            return
        mode.cancel([oid])

    def modify(self, oid: str, price: float, size: float) -> None:
        row = self.orders.rows.get(oid)
        mode = self.modes.get(row.req.symbol) if row is not None else None
        if mode is None:
            self._note(f'modify: order {oid} is not on a chart of this window')
            return
        new = mode.modify(oid, price, size)
        if new is not None:
            self.orders.set_state(oid, 'modifying', new)

    def flatten(self, fqme: str, account: str | None = None) -> str | None:
        flat = self.flatteners.get(fqme)
        if flat is None:
            self._note(f'flatten: {fqme} has no order mode in this window')
            return None
        return flat.flatten(account)

    # --- internals --------------------------------------------------------------------------

    def _upsert(self, st: Status) -> None:
        if 'external order' in st.reason:
            self._external.add(st.oid)
        source = ('this chart' if st.oid in self._mine
                  else 'venue' if st.oid in self._external else 'other client')
        self.orders.upsert(st, source)

    def _position(self, pp: BrokerdPosition) -> None:
        mode = self.modes.get(pp.symbol)
        self.positions.set_position(pp, quote_ccy=mode.mkt.src.name if mode else '')

    def _add_fills(self, fills: list[Fill]) -> list[Fill]:
        from ..accounting import unpack_fqme

        new = self.fills.add(fills)
        for f in new:
            if self.pnl.add(f.account, f.fqme, f.tid, f.signed, f.price, f.fee, f.time):
                mode = self.modes.get(f.fqme)
                self.positions.set_realised(
                    f.account, f.fqme, unpack_fqme(f.fqme)[0],
                    self.pnl.realised(f.account, f.fqme),
                    quote_ccy=mode.mkt.src.name if mode else '',
                )
        return new

    def _notify(self, msg: Status) -> None:
        if self.notifier is None:
            return
        what = notify_for(msg, lambda p: self._fmt_price(msg.req.symbol, p))
        if what is not None:
            self.notifier.notify(*what)

    def _fmt_price(self, fqme: str, price: float) -> str:
        mode = self.modes.get(fqme)
        if mode is not None:
            return mode.chart.format_price(price)
        return fmt_num(price, 2)

    def _note(self, text: str) -> None:
        self.win.status.set_order_status('note:blotters', text, final=True)
