"""In-app symbol search: `ctrl+l` opens a fuzzy box over every backend's markets.

The catalogue is every market of every backend in use: `sim` (built in,
offline), the backends of the open charts, and those configured in
`brokers.toml`; a backend nobody uses or configured is never asked (it
may be a network venue). Each backend is asked once per window through
its brokerd (`search` with an empty pattern lists its markets); one that
fails is skipped with a status line, the others still answer.

Matching is fzf-like (`fuzzy_score`): the query's characters must appear
in order in the fqme (or its description); consecutive runs and matches
at the start of a word score higher, so `btc` finds `btcusdt.sim` first
and `eth.s` finds `ethusdt.sim`.
"""
from __future__ import annotations

from collections.abc import Iterable

from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from ._theme import DARK, Theme

SEARCH_KEY = QtCore.Qt.Key.Key_L
MAX_ROWS = 50
_SEPS = '._-/ '


def fuzzy_score(query: str, text: str) -> float | None:
    """How well `query` matches `text` (higher is better), None if it does not.

    Greedy in-order match of the query's characters (case-insensitive,
    spaces ignored): each matched character scores 1, plus 2 if it follows
    the previous match directly, plus 3 at the start of `text` or a word;
    a gap costs 0.1 per skipped character, and shorter texts win ties.
    """
    q = ''.join(query.lower().split())
    t = text.lower()
    if not q:
        return 0.0
    score, pos, prev = 0.0, 0, -2
    for ch in q:
        i = t.find(ch, pos)
        if i < 0:
            return None
        # prefer a word start at or after `i` when it comes soon
        j = i
        while j >= 0 and j - i < 8:
            if j == 0 or t[j - 1] in _SEPS:
                if t[j] == ch:
                    i = j
                    break
            j = t.find(ch, j + 1)
            if j < 0:
                break
        score += 1.0
        if i == prev + 1:
            score += 2.0
        if i == 0 or t[i - 1] in _SEPS:
            score += 3.0
        score -= 0.1 * (i - pos)
        prev, pos = i, i + 1
    return score - 0.01 * len(t)


def rank(query: str, entries: dict[str, str], limit: int = MAX_ROWS) -> list[str]:
    """The fqmes of `entries` (fqme -> description) matching `query`, best first."""
    scored = []
    for fqme, desc in entries.items():
        s = fuzzy_score(query, fqme)
        if s is None and desc:
            d = fuzzy_score(query, desc)
            s = None if d is None else d - 5.0      # a description match ranks lower
        if s is not None:
            scored.append((-s, fqme))
    scored.sort()
    return [f for _, f in scored[:limit]]


def searched_backends(open_fqmes: Iterable[str]) -> list[str]:
    """`sim`, the backends of the open charts, and those in `brokers.toml`."""
    from ..accounting import unpack_fqme
    from ..brokers import available_backends
    from ..config import ConfigError, load_brokers_conf

    names = {'sim'} | {unpack_fqme(f)[0] for f in open_fqmes}
    try:
        conf = load_brokers_conf()
        # tables present in the file (the models' defaults do not count)
        names |= set(conf.model_extra or {}) | set(conf.model_fields_set)
    except ConfigError:
        pass
    return sorted(names & set(available_backends()))


async def load_catalogue(backends: list[str], loglevel: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """`({fqme: description}, {backend: error})` of every market of `backends`."""
    from ..brokers import _brokerd

    found: dict[str, str] = {}
    errors: dict[str, str] = {}
    for name in backends:
        try:
            async with _brokerd.maybe_spawn_brokerd(name, loglevel) as portal:
                mkts = await _brokerd.call(portal, _brokerd.search, broker=name, pattern='')
        except Exception as err:  # noqa: BLE001 - one unreachable venue must not hide the others
            errors[name] = f'{type(err).__name__}: {err}'
            continue
        for fqme, mkt in mkts.items():
            dst = (mkt.get('dst') or {}).get('name', '') if isinstance(mkt, dict) else ''
            src = (mkt.get('src') or {}).get('name', '') if isinstance(mkt, dict) else ''
            found[fqme] = f'{dst}/{src} {name}'.strip()
    return found, errors


class SearchBox(QtWidgets.QFrame):
    """The ctrl+l box: a query line over the ranked markets.

    Up/Down move the selection, Enter emits `sig_chosen(fqme)` and hides
    the box, Escape just hides it.
    """

    sig_chosen = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget, theme: Theme = DARK) -> None:
        super().__init__(parent)
        self.setObjectName('symbol_search')
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setStyleSheet(
            f'#symbol_search {{ background: {theme.panel}; border: 1px solid {theme.grid}; }}')
        self.entries: dict[str, str] = {}
        self.edit = QtWidgets.QLineEdit(self)
        self.edit.setPlaceholderText('search markets (fuzzy): e.g. btc, eth.sim')
        self.list = QtWidgets.QListWidget(self)
        self.list.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.note = QtWidgets.QLabel('', self)
        self.note.setStyleSheet(f'color: {theme.muted};')
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.addWidget(self.edit)
        lay.addWidget(self.list)
        lay.addWidget(self.note)
        self.edit.textChanged.connect(self.refresh)
        self.edit.installEventFilter(self)
        self.list.itemActivated.connect(lambda item: self._choose(item.text()))
        self.hide()

    def set_entries(self, entries: dict[str, str], note: str = '') -> None:
        self.entries = dict(entries)
        self.note.setText(note)
        self.refresh()

    def open(self) -> None:
        parent = self.parentWidget()
        w = min(520, max(parent.width() - 40, 200))
        h = min(360, max(parent.height() - 80, 120))
        self.setGeometry((parent.width() - w) // 2, 40, w, h)
        self.edit.selectAll()
        self.show()
        self.raise_()
        self.edit.setFocus()
        self.refresh()

    def results(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def refresh(self, *_: object) -> None:
        self.list.clear()
        for fqme in rank(self.edit.text(), self.entries):
            self.list.addItem(fqme)
        if self.list.count():
            self.list.setCurrentRow(0)

    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:  # noqa: N802
        if obj is self.edit and ev.type() == QtCore.QEvent.Type.KeyPress:
            K = QtCore.Qt.Key
            key = ev.key()
            if key == K.Key_Escape:
                self.close_box()
                return True
            if key in (K.Key_Down, K.Key_Up):
                row = self.list.currentRow() + (1 if key == K.Key_Down else -1)
                self.list.setCurrentRow(max(0, min(row, self.list.count() - 1)))
                return True
            if key in (K.Key_Return, K.Key_Enter):
                item = self.list.currentItem()
                if item is not None:
                    self._choose(item.text())
                return True
        return super().eventFilter(obj, ev)

    def close_box(self) -> None:
        self.hide()
        parent = self.parentWidget()
        chart = getattr(parent, 'current_chart', lambda: None)()
        if chart is not None:
            chart.setFocus()

    def _choose(self, fqme: str) -> None:
        self.close_box()
        self.sig_chosen.emit(fqme)


def is_search_key(ev: QtGui.QKeyEvent) -> bool:
    mods = ev.modifiers()
    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier
    return ev.key() == SEARCH_KEY and bool(mods & ctrl) and not (
        mods & QtCore.Qt.KeyboardModifier.ShiftModifier)
