"""Unit tests of dfr_bridge.endurance: flight time left down to the battery reserve."""
from __future__ import annotations

import math

import pytest

from dfr_bridge.endurance import EnduranceEstimator

NOMINAL_S = 2400.0
RESERVE = 0.2


@pytest.fixture
def estimator() -> EnduranceEstimator:
    return EnduranceEstimator(NOMINAL_S, RESERVE)


def fly(estimator: EnduranceEstimator, start_s: float, duration_s: float, start_battery: float,
        drain_per_s: float, period_s: float = 1.0, quantum: float = 0.0) -> float:
    """Report a battery draining at a constant rate while flying; returns the last battery level."""
    battery = start_battery
    steps = int(round(duration_s / period_s))
    for i in range(steps + 1):
        t = start_s + i * period_s
        battery = start_battery - drain_per_s * i * period_s
        reported = math.floor(battery / quantum) * quantum if quantum else battery
        estimator.update(t, reported, flying=True)
    return battery


# --- before any flight ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("battery", "expected_s"), [(1.0, 1920.0), (0.6, 960.0), (0.25, 120.0)])
def test_nominal_estimate_before_flight(estimator, battery, expected_s):
    # (battery - reserve) of a full battery's 2400 s.
    assert estimator.remaining_s(battery) == pytest.approx(expected_s)


def test_ground_reports_do_not_change_the_estimate(estimator):
    for t in range(100):
        estimator.update(float(t), 1.0 - 0.001 * t, flying=False)     # e.g. a battery being swapped or tested
    assert estimator.remaining_s(1.0) == pytest.approx(1920.0)


@pytest.mark.parametrize("battery", [RESERVE, 0.1, 0.0, -0.05])
def test_reserve_is_respected(estimator, battery):
    assert estimator.remaining_s(battery) == 0.0


def test_just_above_the_reserve(estimator):
    assert estimator.remaining_s(RESERVE + 0.01) == pytest.approx(24.0)


# --- in flight --------------------------------------------------------------------------------------------------


def test_converges_to_the_measured_drain_rate(estimator):
    # Draining twice as fast as nominal: a full battery would last 1200 s, not 2400 s.
    drain = 1.0 / 1200.0
    battery = fly(estimator, 0.0, 600.0, 1.0, drain)        # ten smoothing times
    assert battery == pytest.approx(0.5)
    assert estimator.remaining_s(battery) == pytest.approx((battery - RESERVE) / drain, rel=0.01)   # 360 s
    assert estimator.remaining_s(1.0) == pytest.approx(960.0, rel=0.01)


def test_convergence_is_smoothed_not_immediate(estimator):
    drain = 1.0 / 1200.0
    fly(estimator, 0.0, 60.0, 1.0, drain)                    # one smoothing time
    after_one_minute = estimator.remaining_s(1.0)
    assert 960.0 < after_one_minute < 1920.0                  # on its way from nominal to measured
    # A first-order filter has gone about 1 - 1/e of the way in one smoothing time.
    rate_fraction = (1920.0 / after_one_minute - 1.0)       # 0 at nominal, 1 at measured
    assert rate_fraction == pytest.approx(1.0 - math.exp(-1.0), abs=0.03)


def test_slower_drain_lengthens_the_estimate(estimator):
    drain = 1.0 / 4800.0
    battery = fly(estimator, 0.0, 900.0, 0.9, drain, period_s=0.5)
    assert estimator.remaining_s(battery) == pytest.approx((battery - RESERVE) / drain, rel=0.01)


def test_one_noisy_sample_does_not_swing_the_estimate(estimator):
    drain = 1.0 / NOMINAL_S
    battery = fly(estimator, 0.0, 300.0, 1.0, drain)
    before = estimator.remaining_s(0.8)
    estimator.update(301.0, battery - 0.01, flying=True)     # a 1 % dip in one second
    after = estimator.remaining_s(0.8)
    assert before == pytest.approx(1440.0, rel=0.01)
    # Taken at face value, 1 %/s would leave 60 s; smoothed over 60 s it moves the estimate by under a third.
    assert after < before
    assert after > 0.7 * before


def test_rising_battery_is_ignored(estimator):
    fly(estimator, 0.0, 300.0, 1.0, 1.0 / NOMINAL_S)
    before = estimator.remaining_s(0.8)
    estimator.update(301.0, 0.99, flying=True)              # a reading that went up
    assert estimator.remaining_s(0.8) == before


def test_repeated_or_old_timestamps_are_ignored(estimator):
    estimator.update(10.0, 0.9, flying=True)
    estimator.update(10.0, 0.5, flying=True)                 # same time: no rate to measure
    estimator.update(5.0, 0.4, flying=True)                  # going back in time
    assert estimator.remaining_s(1.0) == pytest.approx(1920.0)


def test_time_on_the_ground_is_not_measured_as_drain(estimator):
    estimator.update(0.0, 0.9, flying=True)
    estimator.update(10.0, 0.9 - 10.0 / NOMINAL_S, flying=False)    # landed
    estimator.update(500.0, 0.5, flying=True)                        # took off again, after a drop on the ground
    estimator.update(501.0, 0.5 - 1.0 / NOMINAL_S, flying=True)
    assert estimator.remaining_s(1.0) == pytest.approx(1920.0, rel=1e-6)


# --- NaN battery ------------------------------------------------------------------------------------------------


def test_nan_battery_gives_nan(estimator):
    assert math.isnan(estimator.remaining_s(math.nan))
    assert math.isnan(estimator.remaining_s(math.inf))


def test_nan_reports_leave_the_estimate_alone(estimator):
    drain = 1.0 / 1200.0
    estimator.update(0.0, 1.0, flying=True)
    estimator.update(1.0, math.nan, flying=True)
    estimator.update(2.0, math.nan, flying=False)
    assert estimator.remaining_s(1.0) == pytest.approx(1920.0)
    # Measuring resumes from the last good report.
    fly(estimator, 3.0, 600.0, 1.0 - 3.0 * drain, drain)
    assert estimator.remaining_s(1.0) == pytest.approx(960.0, rel=0.01)


def test_whole_percent_battery_readings_give_the_true_rate(estimator):
    # True drain: nominal, 1 % every 24 s. Reported in whole percent, once a second, for 20 minutes.
    drain = 1.0 / NOMINAL_S
    battery = fly(estimator, 0.0, 1200.0, 0.995, drain, quantum=0.01)
    assert estimator.remaining_s(battery) == pytest.approx((battery - RESERVE) / drain, rel=0.25)
