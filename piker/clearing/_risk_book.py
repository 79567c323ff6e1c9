"""What the risk gate knows of orders and positions.

Working orders are the dialog table's: the gate counts and sums the
table's active buy/sell dialogs (`working()`), so there is one owner of
"which orders work, how much of each is left", and an order the table
has taken is counted at once (emsd checks and applies an order with no
checkpoint between). An order's share of the gate's bookkeeping - how
much of its fills the position estimate has counted - is its `Hold`, kept
on the dialog itself (`Dialog.risk`) and gone with it.

Positions are the gate's own fact: a venue's last position report plus
the fills seen since (`observe()`), per (broker, account, fqme).
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from ._dialogs import Dialog, DialogTable
from ._messages import TERMINAL_RESPS, BrokerdPosition, Order, Status

__all__ = ['Hold', 'PosKey', 'RiskBook', 'exposes']

PosKey = tuple[str, str, str]  # (broker, account, fqme)


class Hold:
    """A dialog's reservation with the risk gate (`Dialog.risk`).

    `counted`: how much of the order's fills the position estimate holds
    (the published `filled` it last saw); `released`: its end was seen, a
    later fill (after a cancel) counts by its own size.
    """

    __slots__ = ('counted', 'released')

    def __init__(self, counted: float) -> None:
        self.counted = counted
        self.released = False


def exposes(order: Order) -> bool:
    """Whether `order` may add exposure: a reduce-only order (emsd sizes it
    to the position) or a bracket child (its group book bounds it and its
    siblings together by the entry's fills) never does, so neither is
    checked against nor counted toward the open-order and size limits."""
    return not order.reduce_only and order.parent is None


def pos_key(order: Order) -> PosKey:
    return order.broker, order.account, order.symbol


class RiskBook:
    """The gate's view of the working orders (the table's) and positions."""

    def __init__(self, dialogs: DialogTable) -> None:
        self.dialogs = dialogs
        # (broker, account, fqme) -> last reported size / fills since then
        self._reported: dict[PosKey, float] = {}
        self._unreported: dict[PosKey, float] = {}

    # ---- working orders (the table's) ---------------------------------------

    def working(self, fqme: str | None = None) -> list[Dialog]:
        """The working buy/sell dialogs (of `fqme`): alerts trade nothing."""
        return [d for d in self.dialogs.active(fqme) if d.req.action != 'alert']

    def exposing(self, fqme: str | None = None) -> list[Dialog]:
        """The working dialogs that count toward the open-order limits."""
        return [d for d in self.working(fqme) if exposes(d.req)]

    def count(self, scope: str, order: Order) -> int:
        """Working orders in `order`'s account ('account') or market ('fqme')
        that count toward the open-order limits."""
        if scope == 'account':
            acct = (order.broker, order.account)
            return sum(1 for d in self.exposing() if (d.req.broker, d.req.account) == acct)
        return len(self.exposing(order.symbol))

    def resting(self, key: PosKey, action: str, but: str, oco: str | None) -> float:
        """What the working `action`s at `key` other than `but` have left.

        Bracket children are left out (their group book bounds them by the
        entry's fills: a held TP is not a resting sell beside its SL). The
        members of a client OCO group fill at most the largest of them
        together, so a group counts once, at its largest; `but`'s own
        group (`oco`) not at all: `but` and its siblings exclude each
        other, a take-profit and a stop-loss for one position are not two.
        """
        broker, account, fqme = key
        plain = 0.0
        groups: dict[str, float] = {}
        for d in self.working(fqme):
            req = d.req
            if (d.oid == but or req.action != action or req.parent is not None
                    or req.broker != broker or req.account != account):
                continue
            if req.oco is None:
                plain += d.remaining
            elif req.oco != oco:
                groups[req.oco] = max(groups.get(req.oco, 0.0), d.remaining)
        return plain + sum(groups.values())

    def counts(self) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        """Working orders per (broker, account) and per fqme."""
        by_acct: Counter[tuple[str, str]] = Counter()
        by_fqme: Counter[str] = Counter()
        for d in self.exposing():
            by_acct[(d.req.broker, d.req.account)] += 1
            by_fqme[d.fqme] += 1
        return by_acct, by_fqme

    # ---- positions ------------------------------------------------------------

    def position(self, broker: str, account: str, fqme: str) -> tuple[float, float]:
        """`(reported, estimate)`: the venue's last position report and that
        plus the fills seen since."""
        key = (broker, account, fqme)
        reported = self._reported.get(key, 0.0)
        return reported, reported + self._unreported.get(key, 0.0)

    def positions(self) -> dict[PosKey, float]:
        """Every known position's estimate."""
        return {
            key: self.position(*key)[1] for key in set(self._reported) | set(self._unreported)
        }

    def _fill_delta(self, key: PosKey, action: str, size: float) -> None:
        if size > 0:
            sign = 1.0 if action == 'buy' else -1.0
            self._unreported[key] = self._unreported.get(key, 0.0) + sign * size

    def observe(self, msg: Status | BrokerdPosition) -> None:
        """Learn from a Status emsd published or a position a venue reported."""
        if isinstance(msg, BrokerdPosition):
            key = (msg.broker, msg.account, msg.symbol)
            self._reported[key] = msg.size
            self._unreported.pop(key, None)
            return
        req = msg.req
        if req is None or req.action == 'alert':
            return
        dialog = self.dialogs.get(msg.oid)
        hold: Hold | None = dialog.risk if dialog is not None else None
        if dialog is None or (hold is not None and hold.released):
            # an ended (or forgotten) dialog: a late fill still moves the position
            fill = msg.brokerd_msg or {}
            size = fill.get('size')
            if msg.resp == 'fill' and isinstance(size, int | float):
                self._fill_delta(pos_key(req), str(fill.get('action', req.action)), float(size))
            return
        if hold is None:
            # first sight (e.g. a venue's external order): its fills so far
            # are in the venue's position report already
            hold = dialog.risk = Hold(msg.filled)
        elif msg.filled > hold.counted:
            self._fill_delta(pos_key(req), req.action, msg.filled - hold.counted)
            hold.counted = msg.filled
        if msg.resp in TERMINAL_RESPS:
            hold.released = True

    def sync(self, statuses: Iterable[Status]) -> None:
        """Take the dialogs of a snapshot (e.g. restored from the journal)
        as they are: their fills so far are in the venues' position reports."""
        for st in statuses:
            dialog = self.dialogs.get(st.oid)
            if dialog is not None:
                dialog.risk = Hold(st.filled)
