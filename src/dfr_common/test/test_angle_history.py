"""Unit tests of dfr_common.angle_history: the attitude at an image's own time."""
import math

import pytest

from dfr_common.angle_history import AngleHistory


def test_between_samples_the_angles_are_interpolated_the_short_way_round():
    history = AngleHistory()
    assert history.at(1.0) is None
    history.add(1.0, 10.0, 170.0)
    history.add(2.0, 20.0, -170.0)          # 20 degrees on through 180, not 340 back
    assert history.at(1.5) == pytest.approx((15.0, 180.0))
    assert history.at(1.25) == pytest.approx((12.5, 175.0))


def test_outside_the_samples_the_nearest_holds():
    history = AngleHistory()
    history.add(1.0, 5.0)
    history.add(2.0, 7.0)
    assert history.at(0.0) == (5.0,) and history.at(9.0) == (7.0,)


def test_stale_late_and_unusable_samples_are_dropped_and_a_clock_going_back_starts_afresh():
    history = AngleHistory(depth=3)
    history.add(1.0, 1.0)
    history.add(0.9, 2.0)                    # arrived out of order: dropped
    history.add(1.1, math.nan)               # not a number: dropped
    history.add(math.inf, 3.0)
    assert len(history) == 1
    for t in (2.0, 3.0, 4.0):
        history.add(t, t)
    assert len(history) == 3 and history.at(0.0) == (2.0,)     # the oldest went
    history.add(0.5, 9.0)                    # far behind: a new simulation
    assert len(history) == 1 and history.at(10.0) == (9.0,)
