"""The paper venue's matching rules (DESIGN.md section 7)."""
import math

import pytest

from piker.clearing._matching import PaperBook, RestingOrder


def mk(reqid, action, price, size, oid=None):
    return RestingOrder(
        reqid=reqid, oid=oid or f'o{reqid}', fqme='btcusdt.sim',
        action=action, price=price, size=size, account='paper',
    )


def quote(**ticks):
    out = []
    for ttype, val in ticks.items():
        price, size = val
        out.append({'type': ttype, 'price': price, 'size': size})
    return {'ticks': out}


def test_marketable_buy_fills_at_ask_limited_by_size():
    book = PaperBook('btcusdt.sim')
    book.on_quote(quote(bid=(99.0, 5), ask=(100.0, 2)))
    fills = book.submit(mk('1', 'buy', 101.0, 3))
    assert [(f.price, f.size, f.remaining) for f in fills] == [(100.0, 2, 1)]
    # remainder rests at its limit and fills when more size shows at the ask
    assert book.orders['1'].remaining == 1
    fills = book.on_quote(quote(ask=(100.5, 10)))
    assert [(f.price, f.size, f.remaining) for f in fills] == [(101.0, 1, 0)]
    assert '1' not in book.orders


def test_marketable_sell_fills_at_bid():
    book = PaperBook('btcusdt.sim')
    book.on_quote(quote(bid=(99.0, 5), ask=(100.0, 2)))
    fills = book.submit(mk('1', 'sell', 98.0, 1))
    assert [(f.action, f.price, f.size) for f in fills] == [('sell', 99.0, 1)]


def test_resting_limit_fills_at_limit_on_touch_or_trade():
    book = PaperBook('btcusdt.sim')
    book.on_quote(quote(bid=(99.0, 5), ask=(100.0, 5)))
    assert book.submit(mk('b', 'buy', 98.0, 1)) == []
    assert book.submit(mk('s', 'sell', 102.0, 1)) == []
    # a trade through the buy's level fills it at its limit
    fills = book.on_quote(quote(trade=(97.5, 3)))
    assert [(f.reqid, f.price) for f in fills] == [('b', 98.0)]
    # the bid rising to the sell's level fills it at its limit
    fills = book.on_quote(quote(bid=(102.0, 1)))
    assert [(f.reqid, f.price) for f in fills] == [('s', 102.0)]
    assert book.orders == {}


def test_touch_size_is_shared_in_price_time_priority():
    book = PaperBook('btcusdt.sim')
    book.on_quote(quote(bid=(99.0, 5), ask=(100.0, 5)))
    book.submit(mk('a', 'buy', 98.0, 2))
    book.submit(mk('b', 'buy', 98.5, 2))
    book.submit(mk('c', 'buy', 98.0, 2))
    fills = book.on_quote(quote(ask=(97.0, 3)))
    assert [(f.reqid, f.size) for f in fills] == [('b', 2), ('a', 1)]


def test_modify_and_cancel():
    book = PaperBook('btcusdt.sim')
    book.on_quote(quote(bid=(99.0, 5), ask=(100.0, 5)))
    book.submit(mk('a', 'buy', 98.0, 2))
    # re-price to marketable: fills at the ask
    fills = book.modify('a', 100.0, 2)
    assert [(f.price, f.size) for f in fills] == [(100.0, 2)]
    with pytest.raises(KeyError):
        book.modify('a', 99.0, 2)
    book.submit(mk('b', 'sell', 105.0, 1))
    assert book.cancel('b').reqid == 'b'
    assert book.cancel('b') is None


def test_no_quote_yet_rests():
    book = PaperBook('btcusdt.sim')
    assert book.submit(mk('a', 'buy', 100.0, 1)) == []
    assert math.isnan(book.ask)
    assert book.on_quote(quote(ask=(99.0, 1)))[0].price == 100.0


def test_size_taken_by_resting_orders_is_gone_for_later_takers():
    book = PaperBook('btcusdt.sim')
    book.on_quote(quote(bid=(99.0, 5), ask=(101.0, 5)))
    book.submit(mk('1', 'buy', 100.0, 1.5))
    # 2.0 shows at 100: the resting buy takes 1.5 of it ...
    fills = book.on_quote(quote(ask=(100.0, 2.0)))
    assert [(f.price, f.size) for f in fills] == [(100.0, 1.5)]
    # ... so a marketable buy right after can only get the other 0.5
    fills = book.submit(mk('2', 'buy', 100.0, 1.0))
    assert [(f.price, f.size, f.remaining) for f in fills] == [(100.0, 0.5, 0.5)]
