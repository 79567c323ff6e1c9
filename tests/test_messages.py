"""The EMS message protocol: tagged decoding, validation, error replies."""
import math

import msgspec
import pytest

from piker.clearing import (
    BrokerdCancel,
    BrokerdError,
    BrokerdFill,
    BrokerdOrder,
    BrokerdOrderAck,
    BrokerdPosition,
    BrokerdStatus,
    Cancel,
    MessageError,
    Order,
    Status,
    decode_backend_cmd,
    decode_broker_msg,
    decode_client_msg,
    decode_ems_msg,
    error_status,
)


def mk_order(**kw) -> Order:
    fields = dict(oid='o1', symbol='btcusdt.sim', action='buy', exec_mode='live',
                  price=100.0, size=1.0, account='paper')
    fields.update(kw)
    return Order(**fields)


ORDER = mk_order()
SAMPLES = {
    'client': [ORDER, Cancel(oid='o1', symbol='btcusdt.sim')],
    'ems': [
        Status(oid='o1', resp='open', time_ns=5, req=ORDER, reqid=3),
        BrokerdPosition(broker='sim', account='paper', symbol='btcusdt.sim',
                        size=-2.0, avg_price=10.0),
    ],
    'backend': [
        BrokerdOrder(oid='o1', symbol='btcusdt', action='sell', price=1.5, size=2.0,
                     account='paper', time_ns=1, reqid='r1'),
        BrokerdCancel(oid='o1', reqid=7, account='paper', time_ns=1),
    ],
    'broker': [
        BrokerdOrderAck(oid='o1', reqid='r1', account='paper'),
        BrokerdStatus(reqid='r1', status='open', account='paper', time_ns=1,
                      filled=0.5, remaining=0.5),
        BrokerdFill(reqid='r1', tid='t1', action='buy', size=0.5, price=100.0,
                    broker_time=1.0, time_ns=1),
        BrokerdError(oid='o1', reqid=None, reason='nope'),
        BrokerdPosition(broker='sim', account='paper', symbol='btcusdt.sim',
                        size=1.0, avg_price=10.0),
    ],
}
DECODERS = {
    'client': decode_client_msg,
    'ems': decode_ems_msg,
    'backend': decode_backend_cmd,
    'broker': decode_broker_msg,
}
ALL = [(kind, msg) for kind, msgs in SAMPLES.items() for msg in msgs]


@pytest.mark.parametrize('kind,msg', ALL, ids=lambda v: getattr(type(v), '__name__', v))
def test_round_trip_through_dict_and_msgpack(kind, msg):
    decode = DECODERS[kind]
    as_dict = msg.to_builtins()
    assert as_dict['name']  # the tag travels with the message
    assert decode(as_dict) == msg
    assert type(decode(as_dict)) is type(msg)
    assert decode(msgspec.msgpack.encode(msg)) == msg
    # an already-typed struct passes straight through
    assert decode(msg) is msg


def test_tags_are_unique():
    tags = {type(m).__struct_config__.tag for _, m in ALL}
    assert len(tags) == len({type(m) for _, m in ALL})


@pytest.mark.parametrize('kind,msg', ALL, ids=lambda v: getattr(type(v), '__name__', v))
def test_wrong_direction_is_refused(kind, msg):
    for other, decode in DECODERS.items():
        if type(msg) in {type(m) for m in SAMPLES[other]}:
            continue
        with pytest.raises(MessageError) as exc:
            decode(msg.to_builtins())
        assert exc.value.reason
        with pytest.raises(MessageError):
            decode(msg)


@pytest.mark.parametrize('change,needle', [
    ({'size': 0.0}, 'size must be > 0'),
    ({'size': -1.0}, 'size must be > 0'),
    ({'size': math.inf}, 'size must be finite'),
    ({'size': math.nan}, 'size must be finite'),
    ({'price': math.inf}, 'price must be finite'),
    ({'price': math.nan}, 'price must be finite'),
    ({'price': -0.5}, 'price must be >= 0'),
    ({'oid': ''}, 'oid must be a non-empty'),
    ({'oid': '  '}, 'oid must be a non-empty'),
    ({'account': ''}, 'account must be a non-empty'),
    ({'symbol': 'btcusdt'}, 'no broker suffix'),
    ({'symbol': 'a.b.c.d.sim'}, 'at most 4'),
    ({'symbol': 'btc..sim'}, 'empty part'),
    ({'action': 'hold'}, 'action'),
    ({'exec_mode': 'grey'}, 'exec_mode'),
    ({'size': 'lots'}, 'size'),
])
def test_order_validation(change, needle):
    raw = dict(ORDER.to_builtins(), **change)
    with pytest.raises(MessageError) as exc:
        decode_client_msg(raw)
    assert needle in exc.value.reason
    # value checks (not type checks: msgspec types only at decode) also
    # run when a struct is built in-process
    if needle not in ('action', 'exec_mode', 'size'):
        with pytest.raises(MessageError):
            Order(**{k: v for k, v in raw.items() if k != 'name'})


def test_message_error_is_a_value_and_validation_error():
    with pytest.raises(ValueError):
        mk_order(size=-1)
    with pytest.raises(msgspec.ValidationError) as exc:
        mk_order(size=-1)
    assert isinstance(exc.value, MessageError)
    assert exc.value.reason == 'size must be > 0, got -1'


def test_copy_validates():
    with pytest.raises(msgspec.ValidationError):
        ORDER.copy({'size': -3.0})
    assert ORDER.copy({'price': 3}).price == 3.0


def test_order_normalisation():
    order = mk_order(symbol='BTCUSDT.SIM')
    assert order.symbol == 'btcusdt.sim'
    assert order.broker == 'sim'
    alert = mk_order(action='alert', exec_mode='live', size=0.0)
    assert alert.exec_mode == 'dark'  # alerts always live in the dark book
    assert alert.size == 0.0


@pytest.mark.parametrize('raw,needle', [
    ([1, 2], 'must be a map'),
    ('order', 'must be a map'),
    ({'oid': 'x'}, 'missing required field `name`'),
    ({'name': 'bogus'}, "bad client message 'bogus'"),
    ({'name': 'order', 'oid': 'x'}, "bad client message 'order'"),
    ({'name': 'cancel', 'oid': ''}, 'oid must be a non-empty'),
    ({'name': 'cancel', 'oid': 'x', 'symbol': 'nope'}, 'no broker suffix'),
    (b'\xc1', 'bad client message'),
])
def test_malformed_client_messages(raw, needle):
    with pytest.raises(MessageError) as exc:
        decode_client_msg(raw)
    assert needle in exc.value.reason


@pytest.mark.parametrize('raw,needle', [
    (dict(SAMPLES['broker'][2].to_builtins(), tid=''), 'tid must be a non-empty'),
    (dict(SAMPLES['broker'][2].to_builtins(), size=0), 'size must be > 0'),
    (dict(SAMPLES['broker'][2].to_builtins(), price=math.nan), 'price must be finite'),
    (dict(SAMPLES['broker'][2].to_builtins(), cost=math.inf), 'cost must be finite'),
    (dict(SAMPLES['broker'][1].to_builtins(), filled=-1.0), 'filled must be >= 0'),
    (dict(SAMPLES['broker'][1].to_builtins(), status='fill'), 'status'),
    (dict(SAMPLES['broker'][0].to_builtins(), reqid=''), 'reqid must not be an empty'),
    (dict(SAMPLES['broker'][0].to_builtins(), reqid=None), 'reqid'),
    (dict(SAMPLES['broker'][4].to_builtins(), size=math.inf), 'size must be finite'),
])
def test_broker_message_validation(raw, needle):
    with pytest.raises(MessageError) as exc:
        decode_broker_msg(raw)
    assert needle in exc.value.reason


def test_backend_command_validation():
    raw = dict(SAMPLES['backend'][0].to_builtins(), action='alert')
    with pytest.raises(MessageError):
        decode_backend_cmd(raw)
    raw = dict(SAMPLES['backend'][0].to_builtins(), size=-1)
    with pytest.raises(MessageError, match='size'):
        decode_backend_cmd(raw)


def test_status_remaining_and_terminal():
    st = Status(oid='o1', resp='fill', time_ns=1, req=mk_order(size=3.0), filled=1.0)
    assert st.remaining == 2.0
    assert not st.terminal
    assert Status(oid='o1', resp='closed', time_ns=1).terminal
    assert Status(oid='o1', resp='error', time_ns=1).remaining == 0.0


def test_external_status_carries_order():
    vreq = SAMPLES['backend'][0]
    st = BrokerdStatus(reqid='r9', status='open', account='paper', time_ns=1, req=vreq)
    assert decode_broker_msg(st.to_builtins()).req == vreq


def test_error_status_salvages_what_it_can():
    bad = dict(ORDER.to_builtins(), size=-1)
    st = error_status(bad, 'size must be > 0', time_ns=9)
    assert (st.oid, st.resp, st.reason, st.time_ns) == ('o1', 'error', 'size must be > 0', 9)
    assert st.req is None and st.terminal
    assert st.brokerd_msg['size'] == -1
    # a valid order (refused for another reason) is echoed back whole
    st = error_status(ORDER.to_builtins(), 'unknown account')
    assert st.req == ORDER
    assert error_status(ORDER, 'x').req == ORDER
    assert error_status(Cancel(oid='c'), 'x').oid == 'c'
    assert error_status([1, 2], 'not a map').oid == ''
    assert error_status({'oid': 5}, 'bad').oid == ''
    # the reply itself is a valid wire message
    assert decode_ems_msg(st.to_builtins()) == st


# ---- order types, time in force, groups (issue 15) ----------------------

@pytest.mark.parametrize('change,needle', [
    ({'type': 'stop', 'price': 0.0}, 'needs a trigger price'),
    ({'type': 'stop_limit'}, 'needs a limit price'),
    ({'type': 'stop_limit', 'limit': 0.0}, 'limit must be > 0'),
    ({'type': 'limit', 'limit': 99.0}, 'only a stop_limit'),
    ({'type': 'trailing_stop'}, 'needs a trail'),
    ({'type': 'stop', 'trail': {'amount': 5.0}}, 'only a trailing_stop'),
    ({'type': 'trailing_stop', 'trail': {'amount': 0.0}}, 'trail amount'),
    ({'type': 'trailing_stop', 'trail': {'amount': 100, 'unit': 'pct'}}, 'percent'),
    ({'type': 'market'}, 'type'),
    ({'tif': 'gtd'}, 'needs expires_ns'),
    ({'tif': 'gtc', 'expires_ns': 5}, 'only a gtd'),
    ({'tif': 'day'}, 'tif'),
    ({'action': 'alert', 'type': 'stop'}, 'an alert has no order type'),
    ({'action': 'alert', 'reduce_only': True}, 'an alert cannot'),
    ({'action': 'alert', 'tif': 'ioc'}, 'an alert cannot be ioc'),
    ({'parent': 'o1'}, 'its own parent'),
    ({'parent': ''}, 'parent must be'),
    ({'oco': ' '}, 'oco must be'),
])
def test_order_type_validation(change, needle):
    raw = dict(ORDER.to_builtins(), **change)
    with pytest.raises(MessageError) as exc:
        decode_client_msg(raw)
    assert needle in exc.value.reason


def test_trigger_types_are_dark_and_old_orders_stay_valid():
    stop = decode_client_msg(dict(ORDER.to_builtins(), type='stop', price=90.0))
    assert stop.exec_mode == 'dark' and stop.tif == 'gtc' and not stop.reduce_only
    trail = decode_client_msg(dict(
        ORDER.to_builtins(), type='trailing_stop', price=0.0,
        trail={'amount': 0.5, 'unit': 'pct'},
    ))
    assert trail.trail.unit == 'pct' and trail.exec_mode == 'dark'
    # a message from before issue 15 (no new keys) decodes to a plain limit
    old = {k: v for k, v in ORDER.to_builtins().items()
           if k in ('name', 'oid', 'symbol', 'action', 'exec_mode', 'price',
                    'size', 'account', 'brokers')}
    order = decode_client_msg(old)
    assert (order.type, order.tif, order.parent, order.oco) == ('limit', 'gtc', None, None)
    child = mk_order(oid='tp', parent='o1', oco='g1', reduce_only=True)
    assert decode_client_msg(child.to_builtins()) == child
    assert Status(oid='x', resp='expired', time_ns=1, req=ORDER).terminal
    assert not Status(oid='x', resp='held', time_ns=1, req=ORDER).terminal
