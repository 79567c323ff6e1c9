# ruff: noqa: F811 - the `om` fixture is imported from test_ui_order_mode
"""A busy chart (issue #16 items 1 and 6): several orders near the market,
a position and bid/ask/last; every tag and label stays readable."""
from __future__ import annotations

import itertools
import os

import pytest

from piker.clearing._messages import BrokerdPosition
from tests.test_ui_order_mode import FQME, om, status  # noqa: F401 - fixture

pytestmark = pytest.mark.timeout(60)

SHOT = os.environ.get('PIKER_DOCS_SHOTS') and 'docs/chart_busy.png'


def busy(mode) -> float:
    """Bid/ask/last 0.1 apart, four orders and a position within 1.5 of them."""
    chart = mode.chart
    y0, y1 = chart.view.y_range()
    mid = round((y0 + y1) / 2, 1)
    chart.l1.set(bid=mid - 0.1, ask=mid + 0.1, last=mid)
    c = mode.client
    for action, price, size, em in (
        ('buy', mid - 0.5, 0.01, 'dark'), ('buy', mid - 0.6, 0.02, 'live'),
        ('sell', mid + 0.4, 0.01, 'live'), ('alert', mid + 0.5, 0.0, 'dark'),
        ('sell', mid + 1.5, 0.03, 'dark'),
    ):
        order = c.mk_order(action, round(price, 1), size, exec_mode=em)
        mode.on_status(status(order, 'dark_open' if em == 'dark' else 'open'))
    mode.on_position(BrokerdPosition(
        broker='sim', account='paper', symbol=FQME, size=0.05, avg_price=mid - 0.2,
    ))
    mode.on_quote({'last': mid})
    return mid


def label_rects(chart) -> dict[str, list]:
    """Scene rectangles of everything a trader reads next to the lines:
    price-axis tags (L1, orders, position) and the lines' left labels."""
    from piker.ui._axes import AxisLabel
    from piker.ui._lines import LevelLine
    cursor = chart.crosshair.price_label
    tags = [
        (t.text(), t.sceneBoundingRect()) for t in chart.price_axis.childItems()
        if isinstance(t, AxisLabel) and t is not cursor and t.isVisible() and t.value is not None
    ]
    labels = [
        (ln.text(), ln.label.sceneBoundingRect()) for ln in chart.price_plot.items
        if isinstance(ln, LevelLine) and ln.isVisible() and ln.label.isVisible()
    ]
    return {'tags': tags, 'labels': labels}


def overlaps(rects) -> list[tuple[str, str]]:
    return [
        (a, b) for (a, ra), (b, rb) in itertools.combinations(rects, 2)
        if ra.intersected(rb).height() > 0.5 and ra.intersected(rb).width() > 0.5
    ]


def test_tags_and_line_labels_of_a_busy_chart_never_overlap(qtbot, om):
    chart = om.chart
    busy(om)
    for zoom in (None, 0.5, 2.0):
        if zoom is not None:
            y0, y1 = chart.view.y_range()
            mid = (y0 + y1) / 2
            chart.view.auto_y = False
            chart.view.setYRange(mid - (y1 - y0) * zoom / 2, mid + (y1 - y0) * zoom / 2, padding=0)
        rects = label_rects(chart)
        assert len(rects['tags']) == 9, rects['tags']       # 3 L1 + 5 orders + position
        assert len(rects['labels']) == 6
        everything = rects['tags'] + rects['labels']
        assert overlaps(everything) == [], overlaps(everything)
        scene = chart.price_canvas.sceneRect()
        for text, r in everything:
            assert scene.contains(r), (text, r, scene)
    if SHOT:
        y0, y1 = chart.view.y_range()
        chart.move_cursor(len(chart.model) - 20, y0 + (y1 - y0) * 0.8)
        om.win.grab().save(SHOT)


# --- item 6: navigation never loses the data, the orders or the cursor ----------

def test_pan_and_zoom_never_leave_the_data(qtbot, om):
    from pyqtgraph.Qt import QtCore

    KEEP_BARS = 5       # piker.ui._view.KEEP_BARS
    chart, view = om.chart, om.chart.view
    n = len(chart.model)
    K = QtCore.Qt.Key
    for key, times in ((K.Key_Left, 80), (K.Key_Minus, 30), (K.Key_Right, 200), (K.Key_Plus, 40),
                       (K.Key_Left, 3)):
        for _ in range(times):
            qtbot.keyClick(chart, key)
            x0, x1 = view.x_range()
            assert x1 >= KEEP_BARS - 1 - 1e-6 and x0 <= n - KEEP_BARS + 1e-6, (key, x0, x1)
    # a manual price scale dragged far away comes back onto the bars
    for key in (K.Key_Up, K.Key_Down):
        for _ in range(60):
            qtbot.keyClick(chart, key)
            lo, hi = chart.ohlc_item.visible_y_range(*view.x_range(), view.width())
            y0, y1 = view.y_range()
            assert y0 < hi and y1 > lo, (key, (y0, y1), (lo, hi))


def test_orders_and_position_beyond_the_price_range_sit_on_the_edge(qtbot, om):
    chart = om.chart
    y0, y1 = chart.view.y_range()
    above = om.client.mk_order('sell', round(y1 + 50, 1), 0.01, exec_mode='live')
    below = om.client.mk_order('buy', round(y0 - 50, 1), 0.01, exec_mode='live')
    also_above = om.client.mk_order('alert', round(y1 + 80, 1), 0.0, exec_mode='dark')
    for o in (above, below, also_above):
        om.on_status(status(o, 'open'))
    om.on_position(BrokerdPosition(
        broker='sim', account='paper', symbol=FQME, size=0.05, avg_price=round(y0 - 10, 1),
    ))
    axis_h = chart.price_axis.geometry().height()
    tags = {
        'above': om.lines[above.oid].line.tag, 'below': om.lines[below.oid].line.tag,
        'also_above': om.lines[also_above.oid].line.tag, 'pos': om.positions.lines['paper'].tag,
    }
    for name, tag in tags.items():
        assert tag.isVisible(), name
        r = tag.mapRectToParent(tag.boundingRect())
        assert r.top() >= -0.5 and r.bottom() <= axis_h + 0.5, (name, r, axis_h)
        assert r.right() <= chart.price_axis.width() + 0.5, (name, r)    # not clipped
    assert tags['above'].edge == -1 and tags['above'].text().startswith('\u25b2')
    assert tags['below'].edge == 1 and tags['below'].text().startswith('\u25bc')
    assert tags['pos'].edge == 1
    # both above: the higher price is the upper tag
    assert tags['also_above'].pos().y() < tags['above'].pos().y()
    assert overlaps(label_rects(chart)['tags']) == []
    # back in range: at its price, no arrow
    chart.view.auto_y = False
    chart.view.setYRange(y0 - 100, y1 + 100, padding=0)
    assert tags['above'].edge == 0 and tags['above'].text() == chart.format_price(above.price)


def test_the_crosshair_follows_the_price_under_the_pointer_after_a_zoom(qtbot, om):
    from pyqtgraph.Qt import QtCore

    from tests._qt_input import hover
    chart = om.chart
    vp = chart.price_canvas.viewport()
    px = int(chart.index_to_x(len(chart.model) - 30))
    py = int(chart.price_canvas.height() * 0.3)
    hover(vp, QtCore.QPoint(px, py))
    before = chart.crosshair.value
    assert before == pytest.approx(chart.y_to_price(py), abs=1e-6)
    for _ in range(4):                  # zoom out: the price range refits
        qtbot.keyClick(chart, QtCore.Qt.Key.Key_Minus)
    now = chart.y_to_price(py)
    assert abs(now - before) > 1.0
    assert chart.crosshair.value == pytest.approx(now, abs=1e-6)
    assert chart.crosshair.price_label.value == pytest.approx(now, abs=1e-6)
    assert chart.cursor_price() == pytest.approx(now, abs=0.06)
