"""Every bad input of DESIGN.md section 11 gets a clear, specific error, and
emsd keeps serving: client-side checks raise before anything is sent; what
reaches emsd raw (skipping those checks) is answered with an error Status."""
from __future__ import annotations

import math

import pytest
import trio

from piker.brokers import NoSuchBackend
from piker.clearing import MessageError, Order, Status
from piker.clearing._client import EMSError, UnknownOrderError, open_ems
from piker.testing import PaperSim
from tests._ems_helpers import FQME, check_dialog, start

pytestmark = pytest.mark.timeout(60)


def _order(**kw) -> dict:
    """A raw order map as it would travel on the wire."""
    fields = dict(
        name='order', oid='raw-1', symbol=FQME, action='buy', exec_mode='live',
        price=100.0, size=1.0, account='paper', brokers=['sim'],
    )
    fields.update(kw)
    return fields


def test_client_side_refusals_need_no_daemon():
    # an unknown backend or mode fails before any actor is started
    async def main():
        with pytest.raises(NoSuchBackend, match="no broker backend 'nope'.*sim"):
            async with open_ems('btcusdt.nope'):
                pass
        with pytest.raises(ValueError, match="mode must be 'live' or 'paper'"):
            async with open_ems(FQME, mode='backtest'):  # type: ignore[arg-type]
                pass
        with pytest.raises(ValueError, match='broker'):
            async with open_ems('btcusdt'):
                pass

    trio.run(main)
    # bad sizes and prices never make an Order
    base = _order()
    del base['name']
    for field, value, match in [
        ('size', 0.0, 'size must be > 0'),
        ('size', -1.0, 'size must be > 0'),
        ('size', math.nan, 'size must be finite'),
        ('size', math.inf, 'size must be finite'),
        ('price', math.nan, 'price must be finite'),
        ('price', -math.inf, 'price must be finite'),
        ('price', -1.0, 'price must be >= 0'),
    ]:
        with pytest.raises(MessageError, match=match):
            Order(**dict(base, **{field: value}))


def test_emsd_answers_bad_input_with_errors_and_keeps_serving(paper_sim):
    async def main(sim: PaperSim):
        # an unknown market is refused at the handshake, with suggestions
        with pytest.raises(EMSError, match=r"emsd refused the session: .*no sim market 'btcusdz.sim'.*btcusdt.sim"):
            await sim.open_ems('btcusdz.sim')
        # a backend without live trading is paper only
        with pytest.raises(EMSError, match="no live trading.*use mode='paper'"):
            await sim.open_ems(FQME, mode='live')
        ems = await start(sim)
        client = ems.client

        # client side: unknown oids and bad updates raise at once
        with pytest.raises(UnknownOrderError, match="unknown oid 'nope'"):
            await client.cancel('nope')
        with pytest.raises(UnknownOrderError, match="unknown oid 'nope'"):
            await client.update('nope', price=1.0)
        with pytest.raises(MessageError, match='size must be > 0'):
            client.mk_order('buy', 100.0, 0.0)

        # emsd side: each bad message gets its own error reply
        cases: list[tuple[object, str, str]] = [
            (_order(oid='bad-size', size=0.0), 'bad-size', 'size must be > 0'),
            (_order(oid='neg-size', size=-2.0), 'neg-size', 'size must be > 0'),
            (_order(oid='nan-size', size=math.nan), 'nan-size', 'size must be finite'),
            (_order(oid='inf-size', size=math.inf), 'inf-size', 'size must be finite'),
            (_order(oid='nan-price', price=math.nan), 'nan-price', 'price must be finite'),
            (_order(oid='inf-price', price=math.inf), 'inf-price', 'price must be finite'),
            (_order(oid='acct', account='nope'), 'acct', "unknown account 'nope'"),
            (_order(oid='backend', symbol='btcusdt.nope'), 'backend', "no broker backend 'nope'"),
            (_order(oid='fqme', symbol='btcusdt'), 'fqme', 'symbol'),
            (_order(oid='action', action='hodl'), 'action', 'action'),
            ({'name': 'cancel', 'oid': 'ghost'}, 'ghost', "cancel for unknown oid 'ghost'"),
            ({'name': 'order', 'oid': 'half'}, 'half', 'missing required field'),
            ({'name': 'teleport', 'oid': 'tag'}, 'tag', 'teleport'),
        ]
        for raw, _, _ in cases:
            ems.send_raw(raw)
        for raw, oid, match in cases:
            st = await ems.wait(oid, 'error')
            assert match in st.reason, (raw, st.reason)
            assert st.src == 'emsd'
        # messages with no oid at all still get a reply
        mark = ems.mark()
        for raw in ([1, 2, 3], 'garbage', {'no': 'tag'}):
            ems.send_raw(raw)
        errs = []
        while len(errs) < 3:
            errs.append(await ems.wait_for(
                lambda m: isinstance(m, Status) and m.resp == 'error' and m.oid == '',
                since=mark,
            ))
            mark = ems.msgs.index(errs[-1]) + 1
        assert 'must be a map' in errs[0].reason and 'must be a map' in errs[1].reason

        # an order for a market the venue has no data for fails cleanly
        gone = await ems.place('buy', 1.0, 1.0, symbol='nosuchmkt.sim')
        st = await ems.wait(gone, 'error')
        assert 'nosuchmkt' in st.reason
        # a modify that would change the market is refused, the order lives on
        live = await ems.place('buy', 95.0, 1.0)
        await ems.wait(live, 'open')
        mark = ems.mark()
        client.send_nowait(client.mk_order('buy', 95.0, 1.0, oid=live, symbol='ethusdt.sim'))
        st = await ems.wait(live, {'error', 'open', 'pending'}, since=mark)
        assert st.resp == 'open' and 'modify refused' in st.reason
        assert 'cannot change its market' in st.reason and st.req.symbol == FQME
        assert live in ems.dialogs
        with pytest.raises(ValueError, match='price must be finite'):
            await client.update(live, price=math.nan)

        # after all that, emsd still trades normally
        await client.cancel(live)
        await ems.wait(live, 'canceled')
        ok = await ems.place('buy', 101.0, 1.0)
        await ems.wait(ok, 'closed')
        check_dialog(ems, ok)
        assert not ems.dialogs

    paper_sim(main)
