"""Unit tests of dfr_bridge.route_follower: a point flown along the guidance reaches the end of the route."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from dfr_bridge.route_follower import FollowerConfig, Guidance, RouteFollower

DT = 0.05
CONFIG = FollowerConfig()      # cruise 15 m/s, climb 3 m/s, descent 1.5 m/s, brake 3 m/s^2, accept 3 m / 1.5 m


@dataclass
class Flight:
    follower: RouteFollower
    positions: list[np.ndarray]    # position at each update, the last one where it arrived
    guidance: list[Guidance]

    @property
    def arrived(self) -> bool:
        return self.guidance[-1].arrived

    @property
    def speeds(self) -> list[float]:
        return [float(np.linalg.norm(g.velocity)) for g in self.guidance]


def fly(start, points, config: FollowerConfig = CONFIG, max_s: float = 600.0, gain: float = 0.0) -> Flight:
    """Move a point along the returned velocity, x += v * dt, until it arrives.

    With gain > 0 the point also closes on the setpoint, as a position controller does.
    """
    follower = RouteFollower(np.asarray(start, float), [np.asarray(p, float) for p in points], config)
    x = np.asarray(start, float)
    positions, guidance = [], []
    for _ in range(int(max_s / DT)):
        g = follower.update(x)
        positions.append(x.copy())
        guidance.append(g)
        if g.arrived:
            break
        x = x + (g.velocity + gain * (g.position - x)) * DT
    return Flight(follower, positions, guidance)


def overshoot(flight: Flight, final_leg_start) -> float:
    """How far past the last point, along the final leg, the point ever went."""
    end = flight.follower.target
    direction = end - np.asarray(final_leg_start, float)
    direction /= np.linalg.norm(direction)
    return max(float(np.dot(p - end, direction)) for p in flight.positions)


def assert_remaining_never_increases(flight: Flight):
    remaining = [g.remaining_m for g in flight.guidance]
    steps = np.diff(remaining)
    assert steps.max() <= 1e-9, f"remaining grew by {steps.max()} m"


# --- straight horizontal leg ------------------------------------------------------------------------------------


def test_straight_leg_arrives_without_overshoot():
    flight = fly([0, 0, 0], [[500, 0, 0]])
    assert flight.arrived
    end = flight.positions[-1]
    assert math.hypot(*(end[:2] - [500, 0])) <= CONFIG.acceptance_radius_m
    assert overshoot(flight, [0, 0, 0]) <= 0.5
    assert_remaining_never_increases(flight)
    # 500 m at 15 m/s is 33.3 s; braking at 3 m/s^2 from 15 m/s adds about 2.5 s.
    assert 33.0 <= len(flight.guidance) * DT <= 37.0
    assert max(flight.speeds) == pytest.approx(15.0)


def test_first_guidance_of_a_straight_leg():
    follower = RouteFollower(np.zeros(3), [np.array([300.0, 400.0, 0.0])], CONFIG)
    g = follower.update(np.zeros(3))
    assert g.arrived is False
    np.testing.assert_allclose(g.velocity, [9.0, 12.0, 0.0])     # 15 m/s along (0.6, 0.8)
    np.testing.assert_allclose(g.position, [0.0, 0.0, 0.0])      # lead_s = 0: the projection itself
    assert g.remaining_m == pytest.approx(500.0)
    assert g.eta_s == pytest.approx(500.0 / 15.0)
    np.testing.assert_allclose(follower.target, [300.0, 400.0, 0.0])


def test_eta_is_remaining_over_cruise_speed():
    flight = fly([0, 0, 0], [[0, -800, 0]])
    for g in flight.guidance[:-1]:
        assert g.eta_s == pytest.approx(g.remaining_m / CONFIG.cruise_speed_m_s, rel=1e-9)
    # ETA is a good prediction of the flight: off by the braking time only.
    predicted = flight.guidance[0].eta_s
    flown = (len(flight.guidance) - 1) * DT
    assert flown == pytest.approx(predicted, abs=3.0)


def test_braking_follows_the_deceleration_limit():
    flight = fly([0, 0, 0], [[200, 0, 0]])
    for x, g in zip(flight.positions[:-1], flight.guidance[:-1]):
        to_go = 200.0 - x[0]
        assert float(np.linalg.norm(g.velocity)) <= math.sqrt(2.0 * CONFIG.accel_m_s2 * max(to_go, 0.0)) + 1e-9


def test_projection_and_cross_track():
    # Off to the side of the leg, the setpoint is the projection and the velocity is along the leg.
    follower = RouteFollower(np.zeros(3), [np.array([100.0, 0.0, 0.0])], CONFIG)
    g = follower.update(np.array([30.0, 5.0, 2.0]))
    np.testing.assert_allclose(g.position, [30.0, 0.0, 0.0])
    np.testing.assert_allclose(g.velocity, [15.0, 0.0, 0.0])
    assert g.remaining_m == pytest.approx(70.0)


def test_lead_puts_the_setpoint_ahead_but_not_past_the_end():
    config = FollowerConfig(lead_s=1.0)
    follower = RouteFollower(np.zeros(3), [np.array([100.0, 0.0, 0.0])], config)
    np.testing.assert_allclose(follower.update(np.array([10.0, 0.0, 0.0])).position, [25.0, 0.0, 0.0])
    near_end = follower.update(np.array([96.5, 0.0, 0.0]))
    assert near_end.arrived is False
    assert near_end.position[0] <= 100.0


def test_on_its_own_clock_the_setpoint_moves_on_from_a_position_reported_late():
    follower = RouteFollower(np.zeros(3), [np.array([1000.0, 0.0, 0.0])], FollowerConfig(max_lead_s=1.5))
    first = follower.update(np.array([100.0, 0.0, 0.0]), now_s=10.0)
    assert first.position[0] == pytest.approx(100.0)
    # The same position again half a second later (the next report not in yet): the setpoint moves on at 15 m/s.
    assert follower.update(np.array([100.0, 0.0, 0.0]), now_s=10.5).position[0] == pytest.approx(107.5)
    # ... and at most 1.5 s of flight (22.5 m) ahead of the last reported position.
    assert follower.update(np.array([100.0, 0.0, 0.0]), now_s=13.0).position[0] == pytest.approx(122.5)
    # A position reported ahead of it takes it along.
    assert follower.update(np.array([140.0, 0.0, 0.0]), now_s=13.2).position[0] == pytest.approx(140.0)


def test_on_its_own_clock_the_setpoint_keeps_its_lead_onto_the_next_leg_and_stops_at_the_end():
    follower = RouteFollower(np.zeros(3), [np.array([100.0, 0.0, 0.0]), np.array([100.0, 100.0, 0.0])],
                             FollowerConfig(max_lead_s=1.5))
    follower.update(np.array([90.0, 0.0, 0.0]), now_s=0.0)
    before = follower.update(np.array([90.0, 0.0, 0.0]), now_s=0.4)
    lead = before.position[0] - 90.0
    assert lead > 0.0
    turned = follower.update(np.array([100.0, 1.0, 0.0]), now_s=0.6)     # past the corner, on the second leg
    assert turned.position[1] == pytest.approx(1.0 + lead)
    for k in range(100):                                                 # reports stop near the end
        last = follower.update(np.array([100.0, 90.0, 0.0]), now_s=1.0 + 0.2 * k)
    assert last.position[1] <= 100.0 + 1e-9


# --- vertical and climbing legs ---------------------------------------------------------------------------------


def test_vertical_climb_respects_the_climb_speed():
    flight = fly([0, 0, 0], [[0, 0, 60]])
    assert flight.arrived
    assert abs(flight.positions[-1][2] - 60.0) <= CONFIG.altitude_tolerance_m
    vz = [g.velocity[2] for g in flight.guidance]
    assert max(vz) == pytest.approx(CONFIG.climb_speed_m_s)
    assert all(v <= CONFIG.climb_speed_m_s + 1e-9 for v in vz)
    assert flight.guidance[0].eta_s == pytest.approx(60.0 / 3.0)
    assert overshoot(flight, [0, 0, 0]) <= 0.5
    assert_remaining_never_increases(flight)


def test_vertical_descent_respects_the_descent_speed():
    flight = fly([0, 0, 40], [[0, 0, 10]])
    assert flight.arrived
    vz = [g.velocity[2] for g in flight.guidance]
    assert min(vz) == pytest.approx(-CONFIG.descent_speed_m_s)
    assert flight.guidance[0].eta_s == pytest.approx(30.0 / 1.5)


def test_diagonal_climb_caps_the_vertical_part():
    # Climbing 3 m per 4 m across: the 3 m/s climb limit allows 5 m/s along the leg, not 15.
    follower = RouteFollower(np.zeros(3), [np.array([400.0, 0.0, 300.0])], CONFIG)
    g = follower.update(np.zeros(3))
    np.testing.assert_allclose(g.velocity, [4.0, 0.0, 3.0])
    assert g.eta_s == pytest.approx(500.0 / 5.0)


def test_climb_then_cruise_then_arrive():
    route = [[0, 0, 60], [300, 400, 60]]
    flight = fly([0, 0, 0], route)
    assert flight.arrived
    end = flight.positions[-1]
    assert math.hypot(end[0] - 300, end[1] - 400) <= CONFIG.acceptance_radius_m
    assert abs(end[2] - 60) <= CONFIG.altitude_tolerance_m
    assert overshoot(flight, [0, 0, 60]) <= 0.5
    assert_remaining_never_increases(flight)
    assert all(g.velocity[2] <= CONFIG.climb_speed_m_s + 1e-9 for g in flight.guidance)
    first = flight.guidance[0]
    assert first.remaining_m == pytest.approx(560.0)
    assert first.eta_s == pytest.approx(60.0 / 3.0 + 500.0 / 15.0)


# --- corners ----------------------------------------------------------------------------------------------------


def test_speed_at_a_right_angle_corner_drops_near_zero():
    flight = fly([0, 0, 0], [[100, 0, 0], [100, 100, 0]])
    assert flight.arrived
    end = flight.positions[-1]
    assert math.hypot(end[0] - 100, end[1] - 100) <= CONFIG.acceptance_radius_m
    # Speed along the first leg, on the approach to the corner.
    first_leg = [(x, s) for x, s, g in zip(flight.positions, flight.speeds, flight.guidance)
                 if abs(g.velocity[1]) < 1e-9 and not g.arrived]
    slowest = min(s for _, s in first_leg)
    # The turn is taken 0.5 m before the corner, where the braking allows sqrt(2 * 3 m/s^2 * 0.5 m) = 1.7 m/s;
    # the last 0.05 s step before it may stop a little further out.
    assert slowest <= 2.0
    assert slowest < 0.15 * CONFIG.cruise_speed_m_s
    # The corner was not cut: the point reached within 0.5 m of x = 100 before turning north.
    assert max(x[0] for x, _ in first_leg) >= 99.4
    assert overshoot(flight, [100, 0, 0]) <= 0.5
    assert_remaining_never_increases(flight)


def test_corner_speed_shrinks_with_the_turn_angle():
    def approach_speed(turn_deg: float) -> float:
        a = math.radians(turn_deg)
        follower = RouteFollower(np.zeros(3), [np.array([100.0, 0, 0]),
                                               np.array([100.0 + 50 * math.cos(a), 50 * math.sin(a), 0])], CONFIG)
        g = follower.update(np.array([90.0, 0, 0]))         # 10 m before the corner
        assert follower.leg == 0
        return float(np.linalg.norm(g.velocity))

    # Allowed speed 10 m out: sqrt(v_corner^2 + 2 * 3 m/s^2 * 10 m), v_corner = 15 m/s * cos(turn), capped at 15.
    straight_on, gentle, sharp, square, reverse = (approach_speed(d) for d in (0, 30, 60, 90, 150))
    assert straight_on == pytest.approx(15.0)                                  # no corner: full speed
    assert gentle == pytest.approx(15.0)                                       # sqrt(13^2 + 60) > 15
    assert sharp == pytest.approx(math.sqrt(7.5 ** 2 + 60.0))                  # 10.8 m/s
    assert square == pytest.approx(math.sqrt(60.0))                            # brakes to a stop at the corner
    assert reverse == pytest.approx(square)                                    # a U-turn brakes fully too


def test_gentle_bend_with_position_correction():
    # A 45-degree bend is taken early at speed; the setpoint pulls the point back onto the new leg.
    route = [[200, 0, 0], [200 + 150 / math.sqrt(2), 150 / math.sqrt(2), 0]]
    flight = fly([0, 0, 0], route, gain=1.0)
    assert flight.arrived
    end = flight.positions[-1]
    assert math.hypot(*(end[:2] - np.asarray(route[-1][:2]))) <= CONFIG.acceptance_radius_m
    assert overshoot(flight, route[0]) <= 0.5
    # Through the bend the commanded speed stays at or above the corner speed, 15 m/s * cos(45 deg).
    through_bend = [s for s, g in zip(flight.speeds, flight.guidance) if g.remaining_m > 60.0]
    assert min(through_bend) >= 15.0 * math.cos(math.radians(45.0)) - 1e-6
    assert_remaining_never_increases(flight)


# --- degenerate routes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("points", [[], [[5.0, -3.0, 20.0]], [[5.0, -3.0, 20.0], [5.0, -3.0, 20.0005]]])
def test_single_point_route_is_arrived_at_once(points):
    follower = RouteFollower(np.array([5.0, -3.0, 20.0]), [np.asarray(p) for p in points], CONFIG)
    g = follower.update(np.array([40.0, 40.0, 0.0]))     # wherever the vehicle is
    assert g.arrived is True
    np.testing.assert_allclose(g.position, [5.0, -3.0, 20.0])
    np.testing.assert_allclose(g.velocity, [0.0, 0.0, 0.0])
    assert (g.remaining_m, g.eta_s) == (0.0, 0.0)


def test_zero_length_legs_are_dropped():
    with_duplicates = RouteFollower(np.zeros(3), [np.zeros(3), np.array([0, 0, 30.0]), np.array([0, 0, 30.0]),
                                                  np.array([100.0, 0, 30.0])], CONFIG)
    assert len(with_duplicates.points) == 3
    g = with_duplicates.update(np.zeros(3))
    np.testing.assert_allclose(g.velocity, [0.0, 0.0, 3.0])
    assert g.remaining_m == pytest.approx(130.0)


def test_arrival_needs_the_altitude_too():
    follower = RouteFollower(np.zeros(3), [np.array([0, 0, 60.0]), np.array([100.0, 0, 60.0])], CONFIG)
    follower.update(np.array([0.0, 0.0, 60.0]))          # onto the second leg
    assert follower.update(np.array([100.0, 0.0, 57.0])).arrived is False      # 3 m low
    assert follower.update(np.array([100.0, 0.0, 58.6])).arrived is True       # within 1.5 m
    assert follower.update(np.array([97.5, 1.0, 60.0])).arrived is True        # 2.7 m short: within 3 m


def test_hold_guidance_is_a_copy():
    follower = RouteFollower(np.array([1.0, 2.0, 3.0]), [], CONFIG)
    g = follower.update(np.zeros(3))
    g.position[0] = 99.0
    np.testing.assert_allclose(follower.update(np.zeros(3)).position, [1.0, 2.0, 3.0])
