"""Learning-rate schedules against hand-computed factor sequences.

A warm-up whose length ``warmup * total`` is not a whole number of iterations
used to overshoot the peak (``Cosine(warmup=.25)`` over 10 iterations gave 0.4,
0.8, 1.2, ...); a warm-up lasts ``ceil(warmup * total)`` iterations and no factor
exceeds 1.
"""

from __future__ import annotations

import math

import pytest

import xpnet
from xpnet.schedules import Constant, Cosine, OneCycle, get_schedule


def _cos(step, length):
    return 0.5 * (1 + math.cos(math.pi * step / length))


def test_cosine_with_a_fractional_warmup_hand_computed():
    # 0.25 * 10 = 2.5: three warm-up iterations, then the cosine over the other 7
    expected = [1 / 3, 2 / 3, 1.0] + [_cos(k, 7) for k in range(7)]
    got = [Cosine(warmup=0.25)(t, 10) for t in range(10)]
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[:4] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])


def test_constant_with_a_fractional_warmup_hand_computed():
    got = [Constant(warmup=0.25)(t, 10) for t in range(10)]
    assert got == pytest.approx([1 / 3, 2 / 3] + [1.0] * 8, rel=1e-12)


def test_a_warmup_whose_product_rounds_off_in_floating_point():
    # 0.07 * 100 == 7.000000000000001: seven iterations of warm-up, not eight (the
    # eighth at 8 / 7.000000000000001 = 1.14)
    assert 0.07 * 100 > 7
    got = [Cosine(warmup=0.07, min_factor=0.2)(t, 100) for t in range(9)]
    expected = [(t + 1) / 7 for t in range(7)] + [1.0, 0.2 + 0.8 * _cos(1, 93)]
    assert got == pytest.approx(expected, rel=1e-12)
    # 0.7 * 90 == 62.99999999999999: 63 iterations, the last at 1 (not 1.0000000000000002)
    assert 0.7 * 90 < 63
    assert Constant(warmup=0.7)(62, 90) == 1.0
    assert Constant(warmup=0.7)(61, 90) == pytest.approx(62 / 63, rel=1e-12)


def test_an_integer_warmup_keeps_its_sequence():
    got = [Cosine(warmup=0.2)(t, 10) for t in range(10)]
    assert got == pytest.approx([0.5, 1.0] + [_cos(k, 8) for k in range(8)], rel=1e-12)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_no_factor_exceeds_one(schedule):
    for warmup in [0.01, 0.05, 0.07, 0.1, 0.15, 0.25, 1 / 3, 0.3, 0.45, 0.7, 0.99]:
        f = get_schedule(schedule, warmup=warmup)
        for total in [*range(1, 60), 90, 100]:
            factors = [f(t, total) for t in range(total)]
            assert max(factors) <= 1.0, (schedule, warmup, total, factors)
            assert min(factors) >= 0.0
            if schedule != "onecycle":
                assert 1.0 in factors  # the warm-up reaches the peak


def test_onecycle_peak_is_an_explicit_parameter():
    total = 11  # t / (total - 1) runs 0, 0.1, ..., 1
    by_peak = get_schedule("onecycle", peak=0.5)
    expected = [0.1 + 0.9 * t / 5 for t in range(6)] + [1.0 - t / 5 for t in range(1, 6)]
    assert [by_peak(t, total) for t in range(total)] == pytest.approx(expected, rel=1e-12)
    # --warmup with the onecycle schedule is its peak (the command line's flag)
    by_warmup = get_schedule("onecycle", warmup=0.5)
    assert [by_warmup(t, total) for t in range(total)] == pytest.approx(expected, rel=1e-12)
    default = get_schedule("onecycle")
    assert default(3, total) == pytest.approx(1.0)  # peak 0.3 by default


def test_onecycle_refuses_conflicting_or_bad_peaks():
    with pytest.raises(xpnet.InputError, match="disagrees"):
        get_schedule("onecycle", warmup=0.2, peak=0.5)
    with pytest.raises(xpnet.InputError, match="no peak"):
        get_schedule("cosine", peak=0.5)
    with pytest.raises(xpnet.InputError, match="peak must be"):
        OneCycle(peak=1.5)
