"""The dark theme: one palette shared by Qt widgets and pyqtgraph items.

Colours live in one frozen struct so every graphics item (candles, volume,
crosshair, L1 markers, order lines later) reads the same values and a light
theme is just another instance.
"""
from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from pyqtgraph.Qt import QtGui, QtWidgets


@dataclass(frozen=True, slots=True)
class Theme:
    """Named colours (hex strings) of the chart and the window around it."""

    background: str = '#0d1117'
    panel: str = '#161b22'
    foreground: str = '#c9d1d9'
    muted: str = '#6e7681'
    grid: str = '#30363d'
    up: str = '#26a69a'
    down: str = '#ef5350'
    volume_alpha: int = 120
    cursor: str = '#8b949e'
    bid: str = '#3d8bfd'
    ask: str = '#f0a030'
    last: str = '#e6edf3'
    label_text: str = '#0d1117'
    font_size: int = 10
    # order mode: lines by side, the position line, pending-state alpha
    buy: str = '#3fb950'
    sell: str = '#f85149'
    alert: str = '#e3b341'
    position: str = '#d2a8ff'
    pending_alpha: int = 110
    # lost connections: the chart's banner, stale prices and order lines
    banner_bg: str = '#8b1d1d'
    banner_fg: str = '#ffffff'
    stale: str = '#8b949e'


DARK = Theme()


def qcolor(hexstr: str, alpha: int | None = None) -> QtGui.QColor:
    """A QColor from `#rrggbb`, optionally with alpha 0..255."""
    c = QtGui.QColor(hexstr)
    if alpha is not None:
        c.setAlpha(alpha)
    return c


def stylesheet(theme: Theme = DARK) -> str:
    """Qt stylesheet for the window chrome (tabs, status bar, splitters)."""
    t = theme
    return f'''
QMainWindow, QWidget {{
    background-color: {t.background};
    color: {t.foreground};
    font-size: {t.font_size + 1}pt;
}}
QTabWidget::pane {{ border: 1px solid {t.grid}; top: -1px; }}
QTabBar::tab {{
    background: {t.panel}; color: {t.muted};
    padding: 4px 14px; border: 1px solid {t.grid}; border-bottom: none;
    margin-right: 2px;
}}
QTabBar::tab:selected {{ background: {t.background}; color: {t.foreground}; }}
QStatusBar {{ background: {t.panel}; color: {t.foreground}; border-top: 1px solid {t.grid}; }}
QStatusBar QLabel {{ background: transparent; padding: 0 6px; }}
QSplitter::handle {{ background: {t.grid}; }}
'''


def apply_dark_theme(app: QtWidgets.QApplication, theme: Theme = DARK) -> None:
    """Theme the whole app: Qt stylesheet + pyqtgraph defaults.

    pyqtgraph options only affect items created afterwards, so call this
    before building charts (charts also pass colours explicitly).
    """
    pg.setConfigOptions(
        background=theme.background,
        foreground=theme.foreground,
        antialias=False,
    )
    app.setStyleSheet(stylesheet(theme))
