"""Order mode: stage, submit, modify and cancel orders with keys and the mouse.

The trader's loop (DESIGN.md section 10):

- hold `f` (buy), `d` (sell) or `a` (alert): a *staged* line follows the
  cursor, snapped to the price tick and labelled with what would be sent
  (`account: size ~ notional`, size from the allocator of the settings
  pane). Holding `ctrl` too makes it *live* (sent to the venue); without it
  the order is *dark* (held in emsd's dark book until its price trades).
- left-click submits at the staged price (`client.send_nowait`); the new
  line starts *pending* and is confirmed by the EMS (`open`/`dark_open`).
- drag an order line to modify it: on release the price (snapped) and a
  fresh allocator size go out as `client.update_nowait`.
- `c` cancels the orders under the cursor (within `PICK_PX` pixels),
  `c c` (a second press within `DOUBLE_PRESS_S`) cancels every order of
  the market; several cancels show as one group status in the status bar.
- brackets, stops, take-profits and trailing stops (`shift+f` / `shift+d`,
  `t` / `s`, their labels, rails and group statuses): `_brackets` and
  `_bracket_keys`, hooked in through `self.brackets`.

The EMS is the source of truth: every `Status` of this market updates,
creates (orders of other windows and scripts) or removes (`closed`,
`canceled`, `error`, `alert_triggered`) a line; fills draw arrows and
positions draw a line at the ppu with live PnL. `load()` draws what the
`open_ems()` handshake returned, so a new window shows the book as it is.

Disconnected (emsd died, `disconnect()`): what the chart shows may no
longer be true, so order entry refuses every key, click and drag with a
note, a persistent banner says why, and every order line turns grey
(`unknown`) and stops being draggable. `reconnect()` takes the new
session's client and redraws everything from its handshake (`resync()`):
orders that ended meanwhile disappear, orders other clients placed
appear, positions are what emsd says now.

All handlers are plain Qt slots and call the client's `*_nowait` methods:
in `piker chart` they run on the thread that hosts trio (guest mode), so
those calls are safe; tests drive the same code with a fake client.
"""
from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pyqtgraph.Qt import QtCore, QtGui

from ..accounting import MktPair, Position
from ..clearing._messages import TERMINAL_RESPS, BrokerdPosition, Order, Status
from ..log import get_logger
from ._brackets import Brackets, type_text
from ._lines import LevelLine
from ._markers import ExecMarkers
from ._numbers import fmt_size
from ._pane import SettingsPane
from ._position import PositionTracker
from ._theme import DARK, Theme

if TYPE_CHECKING:
    from ..config import UIConf
    from ._chart import ChartWidget
    from ._statusbar import StatusBar

log = get_logger(__name__)

Action = Literal['buy', 'sell', 'alert']

K = QtCore.Qt.Key
KEY_ACTIONS: dict[int, Action] = {K.Key_F: 'buy', K.Key_D: 'sell', K.Key_A: 'alert'}
DOUBLE_PRESS_S = 0.4     # second `c` within this long: cancel all
PICK_PX = 6              # `c` cancels lines this close to the cursor


class OrderClientLike(Protocol):
    """What order mode needs of `piker.clearing.OrderClient`."""

    def mk_order(
        self, action: Action, price: float, size: float, *,
        exec_mode: Literal['dark', 'live'] = 'live', account: str = 'paper',
    ) -> Order: ...
    def send_nowait(self, order: Order) -> str: ...
    def update_nowait(
        self, oid: str, price: float | None = None, size: float | None = None,
    ) -> Order: ...
    def cancel_nowait(self, oid: str) -> None: ...


class LineState(enum.Enum):
    """Where an order line's dialog is, as far as this window knows."""

    PENDING = 'pending'        # sent (new or modified), not yet confirmed
    OPEN = 'open'              # resting at the venue or in the dark book
    TRIGGERED = 'triggered'    # dark trigger fired; the live order is going out
    CANCELLING = 'cancelling'  # cancel sent, waiting for `canceled`
    UNKNOWN = 'unknown'        # the EMS is disconnected: may have changed since


_CONFIRMED = {'open': LineState.OPEN, 'dark_open': LineState.OPEN, 'held': LineState.OPEN,
              'pending': LineState.PENDING, 'dark_triggered': LineState.TRIGGERED}


@dataclass(slots=True)
class OrderLine:
    """One order dialog drawn on the chart."""

    req: Order
    line: LevelLine
    state: LineState
    filled: float = 0.0
    # fills seen by this window (price * size, size): the "filled" status
    # tells their average, never the limit price
    fill_cost: float = 0.0
    fill_size: float = 0.0

    @property
    def oid(self) -> str:
        return self.req.oid

    @property
    def price(self) -> float:
        return self.line.price

    @property
    def remaining(self) -> float:
        return max(self.req.size - self.filled, 0.0)


@dataclass(slots=True)
class Staged:
    """The line following the cursor while an action key is held."""

    action: Action
    live: bool
    key: int
    line: LevelLine

    @property
    def exec_mode(self) -> Literal['dark', 'live']:
        return 'live' if self.live and self.action != 'alert' else 'dark'


@dataclass(slots=True)
class CancelGroup:
    """A multi-order cancel tracked until every order has ended."""

    gid: int
    total: int
    waiting: set[str] = field(default_factory=set)
    cancelled: int = 0


def _plural(n: int, word: str = 'order') -> str:
    return f'{n} {word}' if n == 1 else f'{n} {word}s'


class OrderMode(QtCore.QObject):
    """Order entry and the order/position overlay of one chart (see module doc)."""

    sig_submitted = QtCore.Signal(str)   # oid

    def __init__(
        self,
        chart: ChartWidget,
        client: OrderClientLike,
        mkt: MktPair,
        status: StatusBar,
        *,
        accounts: Iterable[str] = ('paper',),
        ui: UIConf | None = None,
        theme: Theme = DARK,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(chart)
        self.chart = chart
        self.client = client
        self.mkt = mkt
        self.fqme = mkt.fqme
        self.status = status
        self.theme = theme
        self._clock = clock
        if ui is None:
            from ..config import UIConf
            ui = UIConf()
        self.pane = SettingsPane(
            mkt, list(accounts), size_unit=ui.default_size_unit,
            limit=ui.default_limit, slots=ui.default_slots, theme=theme,
        )
        self.positions = PositionTracker(chart, mkt, theme)
        self.markers = ExecMarkers(chart, theme)
        self.lines: dict[str, OrderLine] = {}
        self.staged: Staged | None = None
        self.groups: list[CancelGroup] = []
        self._startup: dict[str, Position | None] = {}
        self._last_c: float | None = None
        self._active = True
        self.connected = True
        self.disconnected_why = ''

        view = chart.view
        view.sig_key_press.connect(self._on_key_press)
        view.sig_key_release.connect(self._on_key_release)
        view.sig_click.connect(self._on_click)
        view.sig_cursor_moved.connect(self._on_cursor_moved)
        self.pane.sig_changed.connect(self._on_settings_changed)
        # brackets, stops, take-profits (its slots run after the ones above)
        self.brackets = Brackets(self, ui.bracket_tp_ticks, ui.bracket_sl_ticks)
        self._refresh_pane()

    # --- prices and sizes -----------------------------------------------------

    def quantize(self, price: float) -> float:
        return float(self.mkt.quantize(price, 'price'))

    def account(self) -> str:
        return self.pane.current_account()

    def order_info(self, action: Action, price: float) -> dict[str, Any]:
        """The allocator's next order at `price` for the pane's account."""
        alloc = self.pane.allocator()
        account = alloc.account
        return alloc.next_order_info(
            self._startup.get(account), self.positions.position(account), price, action,
        )

    def label_for(self, action: Action, account: str, size: float, price: float) -> str:
        """`account: size ~ notional` (alerts: `alert`)."""
        if action == 'alert':
            return 'alert'
        size_txt = fmt_size(size, self.mkt.size_tick_digits)
        return f'{account}: {size_txt} ~ {size * price:,.2f}'

    def describe(self, req: Order, size: float | None = None) -> str:
        """`buy 0.035 @ 28,500.00 (dark, paper)` / `alert @ 28,500.00`."""
        price = self.chart.format_price(req.price)
        if req.action == 'alert':
            return f'alert @ {price}'
        size_txt = fmt_size(req.size if size is None else size, self.mkt.size_tick_digits)
        kind = '' if req.type == 'limit' else f'{type_text(req, self.chart.format_price)} '
        return f'{kind}{req.action} {size_txt} @ {price} ({req.exec_mode}, {req.account})'

    # --- staging ----------------------------------------------------------------

    def stage(self, action: Action, live: bool = False, key: int | None = None) -> Staged | None:
        """Show the staged line of `action` at the cursor (or the last price);
        None (and a note) while the EMS is disconnected."""
        if self.staged is not None:
            self.unstage()
        if not self._entry_on(action):
            return None
        price = self.chart.cursor_price()
        if price is None:
            price = self._last_price()
        line = LevelLine(
            self.chart, self._colour(action), price=price or 0.0,
            quantize=self.quantize, theme=self.theme, z=650,
        )
        self.staged = Staged(action=action, live=live, key=key or 0, line=line)
        self._restyle_staged()
        return self.staged

    def unstage(self) -> None:
        self.brackets.unstage()
        if self.staged is not None:
            self.staged.line.remove()
            self.staged = None

    def set_live(self, live: bool) -> None:
        if self.staged is not None and self.staged.live != live:
            self.staged.live = live
            self._restyle_staged()

    def _restyle_staged(self) -> None:
        st = self.staged
        if st is None:
            return
        st.line.set_style(dash=st.exec_mode, pending=False)
        price = st.line.price
        if price <= 0:
            st.line.set_text(f'{st.action}: no price')
            return
        try:
            info = self.order_info(st.action, price)
        except ValueError as err:
            st.line.set_text(f'{st.action}: {err}')
            return
        if st.action != 'alert' and info['size'] <= 0:
            st.line.set_text(f'{info["account"]}: limit reached')
        else:
            label = self.label_for(st.action, info['account'], info['size'], price)
            st.line.set_text(f'{label} (staged {st.exec_mode})')

    # --- submit / modify / cancel --------------------------------------------------

    def submit(self, price: float | None = None) -> str | None:
        """Send the staged order at `price` (default: the staged line's); returns its oid."""
        st = self.staged
        if st is None or not self._entry_on(st.action):
            return None
        price = self.quantize(st.line.price if price is None else price)
        if not (math.isfinite(price) and price > 0):
            self._note(f'{st.action}: no valid price to submit at')
            return None
        try:
            info = self.order_info(st.action, price)
        except ValueError as err:
            self._note(f'{st.action}: {err}')
            return None
        size = float(info['size'])
        if st.action != 'alert' and size <= 0:
            self._note(f'{st.action}: position limit reached for {info["account"]}, nothing sent')
            return None
        return self.place(st.action, price, size, exec_mode=st.exec_mode, account=info['account'])

    def place(
        self, action: Action, price: float, size: float, *,
        exec_mode: Literal['dark', 'live'], account: str, **fields: Any,
    ) -> str | None:
        """Send one order (extra `Order` `fields`, e.g. `reduce_only`) and
        draw its pending line; None (and a note) if it could not be sent."""
        if not self._entry_on(action):
            return None
        try:
            order = self.client.mk_order(action, price, size, exec_mode=exec_mode, account=account)
            if fields:
                order = order.copy(fields)
            self.client.send_nowait(order)
        except Exception as err:  # noqa: BLE001 - closed session, bad order: tell the trader
            self._note(f'{action} not sent: {err}')
            return None
        self._add_line(order, LineState.PENDING)
        self.status.set_order_status(order.oid, f'pending: {self.describe(order)}')
        self.sig_submitted.emit(order.oid)
        return order.oid

    def modify(self, oid: str, price: float, size: float | None = None) -> Order | None:
        """Move order `oid` to `price` (snapped) with `size`, by default a
        fresh allocator size (a drag)."""
        ol = self.lines.get(oid)
        if ol is None:
            return None
        if not self._entry_on('modify'):
            ol.line.set_price(ol.req.price)
            return None
        price = self.quantize(price)
        req = ol.req
        explicit = size is not None
        size = float(self.mkt.quantize(size, 'size')) if explicit else req.size
        if req.action != 'alert' and not explicit and not self.brackets.fixed_size(req):
            try:
                info = self.order_info(req.action, price)
                if info['size'] > ol.filled:
                    size = float(info['size'])
            except ValueError as err:
                log.warning('allocator: %s; keeping size %s', err, size)
        if price == req.price and size == req.size:
            ol.line.set_price(req.price)
            return None
        try:
            new = self.brackets.update(oid, price, size)
        except Exception as err:  # noqa: BLE001 - unknown oid, bad update, closed session
            ol.line.set_price(req.price)
            self.status.set_order_status(oid, f'modify failed: {err}', final=True)
            return None
        ol.req = new
        ol.line.set_price(new.price)
        self._set_state(ol, LineState.PENDING)
        self.status.set_order_status(oid, f'modifying: {self.describe(new)}')
        return new

    def cancel(self, oids: Iterable[str], group: bool | None = None) -> list[str]:
        """Cancel `oids`; several (or `group=True`) show as one group status."""
        oids = [o for o in dict.fromkeys(oids) if o in self.lines]
        if not oids or not self._entry_on('cancel'):
            return []
        sent: list[str] = []
        for oid in oids:
            ol = self.lines[oid]
            if ol.state is not LineState.CANCELLING:
                try:
                    self.client.cancel_nowait(oid)
                except KeyError:
                    # the EMS has never heard of it: a stale line
                    self._remove_line(oid)
                    continue
                except Exception as err:  # noqa: BLE001 - closed session
                    self.status.set_order_status(oid, f'cancel failed: {err}', final=True)
                    continue
                self._set_state(ol, LineState.CANCELLING)
            sent.append(oid)
        if not sent:
            return []
        if group or (group is None and len(sent) > 1):
            gid = self.status.begin_group(f'cancelling {_plural(len(sent))}')
            self.groups.append(CancelGroup(gid=gid, total=len(sent), waiting=set(sent)))
        else:
            for oid in sent:
                self.status.set_order_status(
                    oid, f'cancelling: {self.describe(self.lines[oid].req)}',
                )
        return sent

    def lines_near(self, price: float, px: float = PICK_PX) -> list[str]:
        """Oids of the order lines within `px` pixels of `price`, nearest first."""
        y = self.chart.price_to_y(price)
        hits = []
        for oid, ol in self.lines.items():
            d = abs(self.chart.price_to_y(ol.price) - y)
            if d <= px:
                hits.append((d, oid))
        return [oid for _, oid in sorted(hits)]

    def cancel_under_cursor(self) -> list[str]:
        ch = self.chart.crosshair
        if ch.pane != 0 or ch.value is None:
            return []
        oids = self.lines_near(float(ch.value))
        if not oids:
            self._note('no order under the cursor')
            return []
        return self.cancel(oids)

    def cancel_all(self) -> list[str]:
        """Cancel every order of this market (one group status)."""
        oids = list(self.lines)
        if not oids:
            self._note('no orders to cancel')
            return []
        return self.cancel(oids, group=True)

    # --- the EMS connection -------------------------------------------------------

    def disconnect(self, why: str) -> None:
        """The EMS session is gone (`why`): order entry off, lines `unknown`.

        Called again while disconnected (a failed retry), it only updates
        the banner.
        """
        self.disconnected_why = why
        self.chart.banner.set(
            'ems', f'EMS disconnected: reconnecting... order entry is off ({why})',
        )
        if not self.connected:
            return
        self.connected = False
        self.unstage()
        for oid, ol in self.lines.items():
            if ol.state in (LineState.PENDING, LineState.CANCELLING):
                self.status.set_order_status(
                    oid, f'{ol.state.value}: {self.describe(ol.req)} - outcome unknown, '
                    'EMS disconnected', final=True,
                )
            self._set_state(ol, LineState.UNKNOWN)
        for g in self.groups:
            self.status.end_group(
                f'cancelling {_plural(g.total)}: EMS disconnected, see the chart '
                'once it reconnects', g.gid,
            )
        self.groups.clear()
        self.positions.set_stale(True)
        self._note('EMS disconnected: order entry is off until it reconnects')

    def reconnect(
        self,
        client: OrderClientLike,
        dialogs: Mapping[str, Status],
        positions: Mapping[tuple[str, str], list[BrokerdPosition]],
    ) -> None:
        """A new EMS session: use `client` and redraw from its handshake."""
        self.client = client
        self.connected = True
        self.disconnected_why = ''
        self.chart.banner.clear('ems')
        self.positions.set_stale(False)
        self.resync(dialogs, positions)
        self._note(f'EMS reconnected: {_plural(len(self.lines))} open')

    def resync(
        self,
        dialogs: Mapping[str, Status],
        positions: Mapping[tuple[str, str], list[BrokerdPosition]],
    ) -> None:
        """Make the chart what a fresh handshake says: lines of dialogs it no
        longer lists go (they ended while we could not hear), the rest are
        redrawn from it, positions it does not list are flat."""
        active = {
            oid for oid, st in dialogs.items()
            if st.req is not None and st.req.symbol == self.fqme
        }
        for oid in [o for o in self.lines if o not in active]:
            ol = self.lines[oid]
            self._remove_line(oid)
            self.status.set_order_status(
                oid, f'not open after the EMS reconnect: {self.describe(ol.req)}', final=True,
            )
        held = {
            pp.account for pps in positions.values() for pp in pps
            if pp.symbol == self.fqme and pp.size
        }
        for account in [a for a in self.positions.holdings if a not in held]:
            self.positions.update(account, 0.0, 0.0)
        self.load(dialogs, positions)
        self._refresh_pane()

    def _entry_on(self, what: str) -> bool:
        """Whether order entry works now; if not, say why in the status bar."""
        if self.connected:
            return True
        self._note(f'{what} refused: EMS disconnected, order entry is off')
        return False

    # --- EMS events ---------------------------------------------------------------

    def load(
        self,
        dialogs: Mapping[str, Status],
        positions: Mapping[tuple[str, str], list[BrokerdPosition]],
    ) -> None:
        """Draw the `open_ems()` handshake: active dialogs and known positions."""
        self._startup.clear()
        for (_broker, _account), pps in positions.items():
            for pp in pps:
                self.on_position(pp)
        for account in self.positions.holdings:
            self._startup[account] = self.positions.position(account)
        for st in dialogs.values():
            self.on_status(st, replay=True)

    def on_msg(self, msg: Status | BrokerdPosition) -> None:
        """Route one message of the `trades` stream."""
        if isinstance(msg, Status):
            self.on_status(msg)
        elif isinstance(msg, BrokerdPosition):
            self.on_position(msg)

    def on_position(self, msg: BrokerdPosition) -> None:
        if msg.symbol != self.fqme:
            return
        self.positions.update(msg.account, msg.size, msg.avg_price)
        self.brackets.relabel()
        self._refresh_pane()
        self._restyle_staged()

    def on_quote(self, quote: Mapping[str, Any]) -> None:
        last = quote.get('last')
        if last is None:
            return
        self.positions.on_price(last)
        self.pane.set_ref_price(last)
        self._refresh_pane()

    def on_status(self, msg: Status, replay: bool = False) -> None:
        """Apply one dialog event; `replay` for handshake state (no arrows)."""
        self.brackets.record(msg)
        try:
            self._apply_status(msg, replay)
        finally:
            self.brackets.report(msg, replay)

    def _apply_status(self, msg: Status, replay: bool) -> None:
        req, oid, resp = msg.req, msg.oid, msg.resp
        if req is None or req.symbol != self.fqme:
            if resp == 'error' and oid in self.lines:
                self._remove_line(oid)
                self.status.set_order_status(oid, f'error: {msg.reason}', final=True)
            return
        if resp == 'fill' and not replay:
            self._draw_fill(msg)
        if resp in TERMINAL_RESPS:
            self._end(msg)
            return
        ol = self.lines.get(oid)
        if ol is None:
            ol = self._add_line(req, _CONFIRMED.get(resp, LineState.OPEN))
        elif not ol.line.dragging:
            ol.req = req
            ol.line.set_price(req.price)
        ol.filled = msg.filled
        if resp == 'fill' and not replay:
            _add_fill(ol, msg.brokerd_msg)
        # a line kept over a reconnect is whatever the handshake says, open by default
        was = LineState.OPEN if ol.state is LineState.UNKNOWN else ol.state
        new_state = _CONFIRMED.get(resp, was)
        if ol.state is LineState.CANCELLING and not msg.reason.startswith('cancel rejected'):
            new_state = LineState.CANCELLING
        self._set_state(ol, new_state)
        if not replay:
            # in-flight states stay up until the next event; the rest linger
            in_flight = ol.state in (LineState.PENDING, LineState.CANCELLING)
            self.status.set_order_status(oid, self._status_text(msg, ol), final=not in_flight)

    # --- internals: lines ------------------------------------------------------------

    def _colour(self, action: str) -> str:
        return {'buy': self.theme.buy, 'sell': self.theme.sell}.get(action, self.theme.alert)

    def _add_line(self, req: Order, state: LineState) -> OrderLine:
        line = LevelLine(
            self.chart, self._colour(req.action), dash=req.exec_mode, price=req.price,
            movable=True, quantize=self.quantize, theme=self.theme,
        )
        ol = OrderLine(req=req, line=line, state=state)
        self.lines[req.oid] = ol
        line.sig_drag_done.connect(self._on_line_dragged)
        self._set_state(ol, state)
        return ol

    def _remove_line(self, oid: str) -> None:
        ol = self.lines.pop(oid, None)
        if ol is not None:
            ol.line.remove()
            self.brackets.line_removed(oid)

    def _set_state(self, ol: OrderLine, state: LineState) -> None:
        ol.state = state
        req = ol.req
        unknown = state is LineState.UNKNOWN
        # unknown: grey, but opaque (a faded grey line is hard to read)
        ol.line.set_style(
            colour=self.theme.stale if unknown else self._colour(req.action),
            dash=req.exec_mode, pending=state not in (LineState.OPEN, LineState.UNKNOWN),
        )
        ol.line.setMovable(not unknown)
        text = self.label_for(req.action, req.account, ol.remaining, req.price)
        if state is not LineState.OPEN:
            text = f'{text} ({state.value})'
        ol.line.set_text(text)
        self.brackets.decorate(ol)

    def _status_text(self, msg: Status, ol: OrderLine) -> str:
        what = self.describe(ol.req, ol.remaining)
        resp = msg.resp
        if resp == 'fill':
            px = msg.brokerd_msg.get('price')
            size = msg.brokerd_msg.get('size')
            if px is not None and size is not None:
                what = (
                    f'{ol.req.action} {fmt_size(size, self.mkt.size_tick_digits)} @ '
                    f'{self.chart.format_price(px)}, '
                    f'{fmt_size(ol.remaining, self.mkt.size_tick_digits)} left'
                )
        label = {'dark_open': 'open', 'dark_triggered': 'triggered'}.get(resp, resp)
        if ol.state is LineState.CANCELLING:
            label = 'cancelling'
        text = f'{label}: {what}'
        return f'{text} - {msg.reason}' if msg.reason else text

    def _end(self, msg: Status) -> None:
        """A terminal status: drop the line, mark alerts, finish cancel groups."""
        oid, resp, req = msg.oid, msg.resp, msg.req
        assert req is not None
        ol = self.lines.get(oid)
        self._remove_line(oid)
        if resp == 'alert_triggered':
            price = msg.brokerd_msg.get('price', req.price)
            self.markers.add_alert(float(price), msg.time_ns / 1e9)
        words = {
            'closed': 'filled', 'canceled': 'cancelled',
            'alert_triggered': 'alert triggered', 'error': 'error',
        }
        text = f'{words.get(resp, resp)}: {self.describe(req)}'
        if resp == 'closed':
            text = f'filled: {self._describe_fills(req, ol, msg)}'
        if msg.reason:
            text = f'{text} - {msg.reason}'
        in_group = False
        for g in list(self.groups):
            if oid in g.waiting:
                in_group = True
                g.waiting.discard(oid)
                if resp == 'canceled':
                    g.cancelled += 1
                if not g.waiting:
                    self.groups.remove(g)
                    done = (
                        f'cancelled {_plural(g.total)}' if g.cancelled == g.total
                        else f'cancelled {g.cancelled} of {_plural(g.total)}'
                    )
                    self.status.end_group(done, g.gid)
        if in_group and resp == 'canceled':
            self.status.clear_order_status(oid)
        else:
            self.status.set_order_status(oid, text, final=True)

    def _describe_fills(self, req: Order, ol: OrderLine | None, msg: Status) -> str:
        """`buy 0.02 @ 29,995.0 avg (live, paper)`: what was filled, at the
        average price of the fills this window saw (the limit is not a fill)."""
        digits = self.mkt.size_tick_digits
        size = msg.filled or (ol.fill_size if ol is not None else 0.0) or req.size
        where = f'({req.exec_mode}, {req.account})'
        if ol is None or not ol.fill_size:
            return (
                f'{req.action} {fmt_size(size, digits)} {where}, limit '
                f'{self.chart.format_price(req.price)}; fill price not seen here'
            )
        avg = self.chart.format_price(ol.fill_cost / ol.fill_size)
        return f'{req.action} {fmt_size(size, digits)} @ {avg} avg {where}'

    def _draw_fill(self, msg: Status) -> None:
        fill = msg.brokerd_msg
        price = fill.get('price')
        if price is None:
            return
        tns = fill.get('time_ns') or msg.time_ns
        action = fill.get('action') or (msg.req.action if msg.req else 'buy')
        self.markers.add_fill(action, float(price), tns / 1e9)

    # --- internals: settings and position pane ----------------------------------------

    def _refresh_pane(self) -> None:
        account = self.account()
        text, pnl, colour = self.positions.describe(account)
        self.pane.set_position_text(text, pnl, colour)
        try:
            used = self.pane.allocator().slots_used(self.positions.position(account))
        except ValueError:
            used = 0.0
        self.pane.set_slots_used(used)

    def _on_settings_changed(self) -> None:
        self._refresh_pane()
        self._restyle_staged()

    def _note(self, text: str) -> None:
        """A transient message in the status bar (not tied to an order)."""
        self.status.set_order_status(f'note:{self.fqme}', text, final=True)

    def _last_price(self) -> float | None:
        last = self.chart.l1.prices.get('last')
        if last is None and len(self.chart.model):
            last = float(self.chart.model.last['close'])
        return self.quantize(last) if last else None

    # --- Qt slots ------------------------------------------------------------------------

    def _on_key_press(self, ev: QtGui.QKeyEvent) -> None:
        key = ev.key()
        if ev.isAutoRepeat() or ev.modifiers() & QtCore.Qt.KeyboardModifier.AltModifier:
            return  # alt+<key>: market orders (`_flatten`), never a stage
        ctrl = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier)
        if not self.connected and (key in KEY_ACTIONS or key == K.Key_C):
            self._entry_on({K.Key_C: 'cancel'}.get(key) or KEY_ACTIONS[key])
            return
        if key in KEY_ACTIONS:
            self.stage(KEY_ACTIONS[key], live=ctrl, key=key)
        elif key == K.Key_Control:
            self.set_live(True)
        elif key == K.Key_Escape:
            self.unstage()
        elif key == K.Key_C:
            now = self._clock()
            if self._last_c is not None and now - self._last_c <= DOUBLE_PRESS_S:
                self._last_c = None
                self.cancel_all()
            else:
                self._last_c = now
                self.cancel_under_cursor()

    def _on_key_release(self, ev: QtGui.QKeyEvent) -> None:
        if ev.isAutoRepeat():
            return
        key = ev.key()
        if key == K.Key_Control:
            self.set_live(False)
        elif self.staged is not None and key == self.staged.key:
            self.unstage()

    def _on_click(self, price: float, _time: float) -> None:
        if self.staged is not None:
            self.submit(price)

    def _on_cursor_moved(self, price: float, _time: float) -> None:
        st = self.staged
        if st is not None:
            st.line.set_price(price)
            self._restyle_staged()

    def _on_line_dragged(self, level: LevelLine) -> None:
        for oid, ol in self.lines.items():
            if ol.line is level:
                self.modify(oid, level.price)
                return


def _add_fill(ol: OrderLine, fill: Mapping[str, Any]) -> None:
    """Count one venue fill (`price`, `size`) into `ol`'s average."""
    price, size = fill.get('price'), fill.get('size')
    if price is None or not size:
        return
    ol.fill_cost += float(price) * float(size)
    ol.fill_size += float(size)
