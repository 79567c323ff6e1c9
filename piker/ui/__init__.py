"""piker's Qt chart UI: rendering core, order mode and the `piker chart` app.

Public names are imported lazily (PEP 562) so `import piker.ui` stays cheap
and Qt-free until a widget is actually used; `BarsModel` and
`decimate_ohlc` never need Qt at all.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # data (Qt-free)
    'OHLC_DTYPE': '._bars',
    'BarsModel': '._bars',
    'Decimated': '._decimate',
    'decimate_ohlc': '._decimate',
    'quantize_step': '._decimate',
    # theme
    'Theme': '._theme',
    'DARK': '._theme',
    'apply_dark_theme': '._theme',
    # graphics
    'CandlestickItem': '._ohlc',
    'VolumeItem': '._volume',
    'AxisLabel': '._axes',
    'TimeAxisItem': '._axes',
    'PriceAxisItem': '._axes',
    'format_time': '._axes',
    'Crosshair': '._cursor',
    'L1Markers': '._l1',
    # widgets
    'ChartView': '._view',
    'ChartWidget': '._chart',
    'StatusBar': '._statusbar',
    'MainWindow': '._window',
    'get_qapp': '._window',
    # order mode
    'OrderMode': '._order_mode',
    'LevelLine': '._lines',
    'ExecMarkers': '._markers',
    'PositionTracker': '._position',
    'SettingsPane': '._pane',
    'SettingsDock': '._pane',
    # the `piker chart` app (trio as a guest of Qt)
    'ChartApp': '._app',
    'ChartWindow': '._app',
    'run_chart': '._app',
    'run_qt_guest': '._guest',
}

__all__ = [
    'AxisLabel',
    'BarsModel',
    'CandlestickItem',
    'ChartApp',
    'ChartView',
    'ChartWidget',
    'ChartWindow',
    'Crosshair',
    'DARK',
    'Decimated',
    'ExecMarkers',
    'L1Markers',
    'LevelLine',
    'MainWindow',
    'OHLC_DTYPE',
    'OrderMode',
    'PositionTracker',
    'PriceAxisItem',
    'SettingsDock',
    'SettingsPane',
    'StatusBar',
    'Theme',
    'TimeAxisItem',
    'VolumeItem',
    'apply_dark_theme',
    'decimate_ohlc',
    'format_time',
    'get_qapp',
    'quantize_step',
    'run_chart',
    'run_qt_guest',
]

if TYPE_CHECKING:  # pragma: no cover
    from ._app import ChartApp, ChartWindow, run_chart
    from ._axes import AxisLabel, PriceAxisItem, TimeAxisItem, format_time
    from ._bars import OHLC_DTYPE, BarsModel
    from ._chart import ChartWidget
    from ._cursor import Crosshair
    from ._decimate import Decimated, decimate_ohlc, quantize_step
    from ._guest import run_qt_guest
    from ._l1 import L1Markers
    from ._lines import LevelLine
    from ._markers import ExecMarkers
    from ._ohlc import CandlestickItem
    from ._order_mode import OrderMode
    from ._pane import SettingsDock, SettingsPane
    from ._position import PositionTracker
    from ._statusbar import StatusBar
    from ._theme import DARK, Theme, apply_dark_theme
    from ._view import ChartView
    from ._volume import VolumeItem
    from ._window import MainWindow, get_qapp


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
