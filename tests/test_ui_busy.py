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


def test_tags_and_line_labels_of_a_busy_chart_never_overlap(qtbot, om):  # noqa: F811
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
