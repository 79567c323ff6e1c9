"""How the chart writes numbers (`piker.ui._numbers`): one rounding for
every label, so a P&L a hair below zero never reads `-0.00`."""
from __future__ import annotations

import math

import pytest

from piker.ui._numbers import fmt_num, fmt_size


@pytest.mark.parametrize('value,digits,signed,text', [
    (-0.001, 2, True, '+0.00'),       # a position line's P&L at the touch
    (-0.004, 2, False, '0.00'),
    (-0.005001, 2, True, '-0.01'),
    (0.0, 2, True, '+0.00'),
    (-1234.567, 2, True, '-1,234.57'),
    (1234.5, 1, False, '1,234.5'),
    (2.5, 0, True, '+2'),
])
def test_fmt_num_rounds_once_and_never_says_minus_zero(value, digits, signed, text):
    assert fmt_num(value, digits, signed=signed) == text


@pytest.mark.parametrize('value', [None, math.inf, -math.inf, math.nan])
def test_fmt_num_leaves_what_is_not_a_number_blank(value):
    assert fmt_num(value) == ''


def test_fmt_size_on_the_size_grid():
    assert fmt_size(-0.0000001, 3, signed=True) == '+0.000'
    assert fmt_size(-1.5, 3, signed=True) == '-1.500'
    assert fmt_size(1250, 0) == '1,250'
