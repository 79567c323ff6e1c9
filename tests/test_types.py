"""`piker.types.Struct`: the msgspec base every message and record uses."""
from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from piker.types import Struct


class Inner(Struct):
    a: int
    tags: list[str] = []


class Outer(Struct):
    x: int
    name: str = 'n'
    items: list[int] = []
    inner: Inner | None = None
    tick: Decimal = Decimal('0.01')


def mk() -> Outer:
    return Outer(x=1, items=[1, 2], inner=Inner(a=2, tags=['t']))


def test_to_dict_is_shallow_field_map():
    s = mk()
    d = s.to_dict()
    assert list(d) == ['x', 'name', 'items', 'inner', 'tick']
    assert d['x'] == 1 and d['items'] == [1, 2]
    assert isinstance(d['inner'], Inner)  # nested structs stay structs
    assert d['tick'] == Decimal('0.01')


def test_to_builtins_is_wire_ready():
    b = mk().to_builtins()
    assert b == {
        'x': 1, 'name': 'n', 'items': [1, 2],
        'inner': {'a': 2, 'tags': ['t']}, 'tick': '0.01',
    }
    assert msgspec.convert(b, Outer) == mk()
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(mk()), type=Outer) == mk()


def test_copy_with_update_is_pure():
    s = mk()
    c = s.copy(update={'x': 5, 'name': 'other'})
    assert (c.x, c.name) == (5, 'other')
    assert (s.x, s.name) == (1, 'n')  # original untouched
    assert c.items == s.items and c.inner == s.inner
    # the copy owns its data: mutating it leaves the original alone
    c.items.append(3)
    c.inner.tags.append('u')
    assert s.items == [1, 2] and s.inner.tags == ['t']


def test_copy_without_update_is_pure():
    s = mk()
    c = s.copy()
    assert c == s and c is not s
    c.items.append(3)
    assert s.items == [1, 2]


def test_copy_equal_and_distinct():
    s = mk()
    for c in (s.copy(), s.copy({})):
        assert c == s and c is not s


def test_copy_validates_types():
    s = mk()
    with pytest.raises(msgspec.ValidationError, match=r'\$\.x'):
        s.copy(update={'x': 'not an int'})
    with pytest.raises(msgspec.ValidationError):
        s.copy(update={'inner': {'a': 'nope'}})
    assert s.x == 1


def test_copy_rejects_unknown_fields():
    with pytest.raises(ValueError, match=r"Outer has no field\(s\) \['bogus'\]"):
        mk().copy(update={'bogus': 1})


def test_copy_nested_update_converts():
    c = mk().copy(update={'inner': {'a': 7}, 'tick': '0.5'})
    assert c.inner == Inner(a=7) and c.tick == Decimal('0.5')


def test_pformat_is_multiline_and_nested():
    text = mk().pformat()
    assert text.splitlines() == [
        'Outer(',
        '  x=1,',
        "  name='n',",
        '  items=[1, 2],',
        '  inner=Inner(',
        '    a=2,',
        "    tags=['t'],",
        '  ),',
        "  tick=Decimal('0.01'),",
        ')',
    ]
    assert mk().pformat(indent=4).splitlines()[1] == '    x=1,'
    assert Outer(x=0).pformat().splitlines()[4] == '  inner=None,'
