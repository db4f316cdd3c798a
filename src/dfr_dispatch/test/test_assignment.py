"""Unit tests of dfr_dispatch.assignment: joint drone-to-incident assignment."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from dfr_dispatch.assignment import (
    AssignmentConfig,
    Decisions,
    DroneState,
    OpenIncident,
    flight_time_available_s,
    plan_assignments,
)

# launch = 10 s take-off + 60 m / 5 m/s climb = 22 s; 20 m/s cruise; landing 30 s
ENU = AssignmentConfig(cruise_speed_m_s=20.0, climb_rate_m_s=5.0, descent_rate_m_s=2.0, takeoff_overhead_s=10.0,
                       cruise_altitude_m=60.0, on_scene_time_s=120.0, frame="enu")
LAUNCH = 22.0
FULL = 1800.0           # flight time above the reserve of a charged drone, s


def drone(vid, x, y=0.0, base=None, available=True, flight=FULL, **kw) -> DroneState:
    return DroneState(vid, base or f"base_{vid}", (x, y), available=available, flight_time_remaining_s=flight, **kw)


def incident(iid, x, y=0.0, grade="S", since=0.0, **kw) -> OpenIncident:
    return OpenIncident(iid, grade, (x, y), waiting_since_s=since, **kw)


def assigned(decisions: Decisions) -> dict[str, str]:
    return {iid: vid for vid, iid, _ in decisions.assign}


# --- optimality ----------------------------------------------------------------------------------------------


def brute_force_minimum(cost: np.ndarray, queue_costs: np.ndarray) -> float:
    """Minimum over every matching of incidents (rows) to distinct drones (columns) or to staying queued."""
    n_inc, n_drones = cost.shape
    best = math.inf

    def walk(j: int, used: frozenset, total: float):
        nonlocal best
        if j == n_inc:
            best = min(best, total)
            return
        walk(j + 1, used, total + queue_costs[j])
        for k in range(n_drones):
            if k not in used and math.isfinite(cost[j, k]):
                walk(j + 1, used | {k}, total + cost[j, k])

    walk(0, frozenset(), 0.0)
    return best


def random_case(rng: random.Random):
    n_drones, n_inc = rng.randint(0, 5), rng.randint(1, 4)
    bases = ["A", "B", "C"]
    drones = []
    for k in range(n_drones):
        busy = rng.random() < 0.25
        drones.append(DroneState(f"uav{k}", rng.choice(bases), (rng.uniform(-6000, 6000), rng.uniform(-6000, 6000)),
                                 available=not busy and rng.random() < 0.9,
                                 flight_time_remaining_s=rng.uniform(200.0, 2000.0),
                                 busy_with=f"old{k}" if busy else None,
                                 busy_grade=rng.choice("ISER") if busy else None))
    incidents = [OpenIncident(f"inc{j}", rng.choice("ISER"), (rng.uniform(-8000, 8000), rng.uniform(-8000, 8000)),
                              waiting_since_s=rng.uniform(0.0, 600.0)) for j in range(n_inc)]
    return drones, incidents


def test_joint_solution_is_optimal_against_brute_force():
    rng = random.Random(20240607)
    assigned_some = queued_some = 0
    for _ in range(300):
        drones, incidents = random_case(rng)
        d = plan_assignments(drones, incidents, ENU, now_s=600.0)
        expected = brute_force_minimum(d.cost_matrix, d.queue_costs)
        assert d.total_cost == pytest.approx(expected, rel=1e-9)
        # the decisions realise that total
        col = {v: k for k, v in enumerate(d.vehicle_ids)}
        row = {i: j for j, i in enumerate(d.incident_ids)}
        realised = sum(d.cost_matrix[row[i], col[v]] for v, i, _ in d.assign) + sum(
            d.queue_costs[row[i]] for i in d.queued)
        assert realised == pytest.approx(expected, rel=1e-9)
        assert len(d.assign) + len(d.queued) == len(incidents)
        assert len({v for v, _, _ in d.assign}) == len(d.assign)
        assigned_some += bool(d.assign)
        queued_some += bool(d.queued)
    assert assigned_some > 50 and queued_some > 50     # the cases exercise both outcomes


def test_joint_assignment_beats_greedy_nearest_idle():
    # A at 0 m, B at 1000 m; P at 600 m (first in the queue), Q at 1900 m.
    drones = [drone("A", 0.0), drone("B", 1000.0)]
    incidents = [incident("P", 600.0, since=0.0), incident("Q", 1900.0, since=1.0)]
    config = AssignmentConfig(**{**ENU.__dict__, "coverage_tolerance_s": 0.0, "coverage_cost": 0.0})

    # greedy: one incident at a time, nearest idle drone
    free = {d.vehicle_id: d.position[0] for d in drones}
    greedy_total = 0.0
    for inc in incidents:
        vid = min(free, key=lambda v: abs(free[v] - inc.position[0]))
        greedy_total += LAUNCH + abs(free.pop(vid) - inc.position[0]) / 20.0
    d = plan_assignments(drones, incidents, config, now_s=10.0)
    assert assigned(d) == {"P": "A", "Q": "B"}
    joint_total = sum(eta for _, _, eta in d.assign)
    assert joint_total == pytest.approx(2 * LAUNCH + (600.0 + 900.0) / 20.0)
    assert greedy_total == pytest.approx(2 * LAUNCH + (400.0 + 1900.0) / 20.0)
    assert joint_total < greedy_total


def test_higher_grade_gets_the_nearer_drone():
    drones = [drone("A", 0.0)]
    d = plan_assignments(drones, [incident("low", 100.0, grade="S"), incident("high", 3000.0, grade="I")], ENU, 0.0)
    assert assigned(d) == {"high": "A"}
    assert "more urgent" in d.queued["low"] and "A → high" in d.queued["low"]


# --- battery ------------------------------------------------------------------------------------------------------


def test_battery_infeasible_incident_is_queued_with_the_reason():
    # 12 km out: 22 + 600 s out, 120 s on scene, 600 s back, 30 s landing = 1372 s = 23 min
    drones = [drone("uav4", 0.0, flight=22 * 60.0), drone("uav5", -500.0, flight=10 * 60.0)]
    d = plan_assignments(drones, [incident("far", 12000.0, grade="I")], ENU, 0.0)
    assert d.assign == []
    assert d.queued["far"] == "no drone can reach it and return with the reserve: best needs 23 min, uav4 has 22 min"
    # with more battery it goes
    d = plan_assignments([drone("uav4", 0.0, flight=24 * 60.0)], [incident("far", 12000.0, grade="I")], ENU, 0.0)
    assert assigned(d) == {"far": "uav4"}


def test_flight_time_from_battery_fraction_when_no_estimate():
    config = AssignmentConfig(nominal_endurance_s=3000.0, battery_reserve_fraction=0.2)
    assert flight_time_available_s(DroneState("u", "b", (0, 0), battery_fraction=0.5), config) == pytest.approx(900.0)
    assert flight_time_available_s(DroneState("u", "b", (0, 0), battery_fraction=0.1), config) == 0.0
    assert math.isnan(flight_time_available_s(DroneState("u", "b", (0, 0)), config))
    d = plan_assignments([DroneState("u", "b", (0.0, 0.0), available=True)], [incident("x", 100.0)], ENU, 0.0)
    assert "battery of u unknown" in d.queued["x"]


# --- coverage -----------------------------------------------------------------------------------------------------


def test_last_drone_at_a_base_is_kept_when_another_is_nearly_as_fast():
    # a1 is alone at base A, 1000 m away; B has two drones 1600 m away (30 s slower)
    drones = [drone("a1", 0.0, base="A"), drone("b1", 2600.0, base="B"), drone("b2", 2600.0, base="B")]
    d = plan_assignments(drones, [incident("x", 1000.0, grade="I")], ENU, 0.0)
    assert assigned(d)["x"] in ("b1", "b2")
    # B's drones 2 minutes slower: not "nearly as fast", the nearest goes
    drones = [drone("a1", 0.0, base="A"), drone("b1", 3400.0, base="B"), drone("b2", 3400.0, base="B")]
    d = plan_assignments(drones, [incident("x", 1000.0, grade="I")], ENU, 0.0)
    assert assigned(d) == {"x": "a1"}
    assert any("empties base A" in line for line in d.record)


def test_low_grade_call_waits_rather_than_empty_a_base_then_goes():
    drones = [drone("a1", 0.0, base="A")]
    # grade R (weight 0.3): sending costs 0.3 × 172 s + 300 for emptying A = 352; waiting 0.3 × (300 s + waited)
    inc = incident("minor", 3000.0, grade="R", since=0.0)
    d = plan_assignments(drones, [inc], ENU, now_s=0.0)
    assert d.assign == []
    assert d.queued["minor"].startswith("kept queued to keep coverage: sending a1 would empty base A")
    d = plan_assignments(drones, [inc], ENU, now_s=800.0)     # 0.3 × 1100 = 330 < 352
    assert "minor" in d.queued
    d = plan_assignments(drones, [inc], ENU, now_s=900.0)     # 15 minutes: 0.3 × 1200 = 360 > 352
    assert assigned(d) == {"minor": "a1"}
    # an E-grade call at the same place goes at once (172 + 300 < 600)
    d = plan_assignments(drones, [incident("e", 3000.0, grade="E")], ENU, now_s=0.0)
    assert assigned(d) == {"e": "a1"}


# --- pre-emption --------------------------------------------------------------------------------------------------


def test_i_grade_call_preempts_an_e_grade_mission():
    near_busy = drone("uav2", 500.0, available=False, busy_with="E1", busy_grade="E")
    far_idle = drone("uav1", -9000.0)              # 472 s away
    d = plan_assignments([far_idle, near_busy], [incident("I1", 1000.0, grade="I")], ENU, 0.0)
    assert d.preempt == [("uav2", "E1", "I1")]
    vid, iid, eta = d.assign[0]
    assert (vid, iid) == ("uav2", "I1") and eta == pytest.approx(25.0)    # airborne: no take-off or climb
    assert any("pre-empts E1" in line for line in d.record)


def test_no_preemption_when_idle_drone_is_nearly_as_fast_or_grade_not_allowed():
    near_busy = drone("uav2", 500.0, available=False, busy_with="E1", busy_grade="E")
    d = plan_assignments([drone("uav1", 0.0), near_busy], [incident("I1", 1000.0, grade="I")], ENU, 0.0)
    assert d.preempt == [] and assigned(d) == {"I1": "uav1"}
    # an S-grade call never pre-empts; an I-grade call never takes a drone off an S-grade mission
    d = plan_assignments([near_busy], [incident("S1", 1000.0, grade="S")], ENU, 0.0)
    assert d.preempt == [] and "S1" in d.queued
    busy_s = drone("uav3", 500.0, available=False, busy_with="S9", busy_grade="S")
    d = plan_assignments([busy_s], [incident("I1", 1000.0, grade="I")], ENU, 0.0)
    assert d.preempt == [] and d.queued["I1"] == ("all 1 drones busy; 1 with lower-grade incidents that a grade I "
                                                  "call may not pre-empt")
    d = plan_assignments([busy_s], [incident("I2", 1000.0, grade="S")], ENU, 0.0)
    assert d.queued["I2"] == "all 1 drones busy with incidents of the same or a higher grade"


# --- relief -------------------------------------------------------------------------------------------------------


def test_relief_excludes_the_relieved_drone_and_goes_first_in_its_grade():
    relieved = drone("uav3", 1000.0, available=True, flight=200.0)     # nearest, but it is the one leaving
    other = drone("uav1", -2000.0)
    relief = incident("R-INC7", 1000.0, grade="S", since=50.0, needs_relief_for="uav3")
    d = plan_assignments([relieved, other], [relief], ENU, 60.0)
    assert assigned(d) == {"R-INC7": "uav1"}
    # one drone, a relief and a new call of the same grade at the same distance: the relief wins
    d = plan_assignments([other], [incident("NEW", 1000.0, grade="S", since=0.0), relief], ENU, 60.0)
    assert assigned(d) == {"R-INC7": "uav1"}
    # no other drone: queued, saying why
    d = plan_assignments([relieved], [relief], ENU, 60.0)
    assert d.queued["R-INC7"] == "no drone other than uav3, which it relieves"


# --- edge cases ---------------------------------------------------------------------------------------------------


def test_no_drones_and_no_incidents():
    d = plan_assignments([], [incident("x", 0.0)], ENU, 0.0)
    assert d.queued == {"x": "no drones"}
    assert plan_assignments([drone("a", 0.0)], [], ENU, 0.0).assign == []


def test_all_drones_busy_with_higher_grade_incidents():
    drones = [drone(f"uav{k}", 100.0 * k, available=False, busy_with=f"I{k}", busy_grade="I") for k in range(9)]
    d = plan_assignments(drones, [incident("s", 0.0, grade="S")], ENU, 0.0)
    assert d.queued == {"s": "all 9 drones busy with higher-grade incidents"}
    drones.append(drone("uav9", 0.0, available=False))
    d = plan_assignments(drones, [incident("s", 0.0, grade="S")], ENU, 0.0)
    assert d.queued["s"] == "no drone available: 9 busy, 1 charging, offline or returning"


def test_incident_at_the_base_eta_is_take_off_and_climb():
    islington = (51.5338, -0.1109)
    config = AssignmentConfig(cruise_speed_m_s=20.0, climb_rate_m_s=5.0, takeoff_overhead_s=10.0,
                              cruise_altitude_m=60.0)
    d = plan_assignments([DroneState("uav1", "islington", islington, available=True, battery_fraction=1.0)],
                         [OpenIncident("x", "I", islington)], config, 0.0)
    assert d.assign == [("uav1", "x", pytest.approx(22.0))]


def test_lat_lon_straight_line_and_caller_travel_time():
    islington, scene = (51.5338, -0.1109), (51.5412, -0.1027)       # about 1.0 km
    uav = DroneState("uav1", "islington", islington, available=True, flight_time_remaining_s=1800.0)
    config = AssignmentConfig(cruise_speed_m_s=20.0, climb_rate_m_s=5.0, takeoff_overhead_s=10.0,
                              cruise_altitude_m=60.0)
    d = plan_assignments([uav], [OpenIncident("x", "S", scene)], config, 0.0)
    assert d.assign[0][2] == pytest.approx(22.0 + 1000.0 / 20.0, abs=3.0)
    calls = []

    def around_no_fly(drone, inc):
        calls.append((drone.vehicle_id, inc.incident_id))
        return 1500.0 / 20.0

    d = plan_assignments([uav], [OpenIncident("x", "S", scene)], config, 0.0, travel_time_s=around_no_fly)
    assert d.assign[0][2] == pytest.approx(22.0 + 75.0) and calls == [("uav1", "x")]


def test_incident_without_location_is_queued():
    d = plan_assignments([drone("a", 0.0)], [incident("x", math.nan)], ENU, 0.0)
    assert d.queued == {"x": "the incident has no usable location"}


def test_bad_configuration_and_duplicates_are_refused():
    with pytest.raises(ValueError, match="cruise_speed_m_s"):
        AssignmentConfig(cruise_speed_m_s=0.0)
    with pytest.raises(ValueError, match="frame"):
        AssignmentConfig(frame="ned")
    with pytest.raises(ValueError, match="duplicate incident"):
        plan_assignments([], [incident("x", 0.0), incident("x", 1.0)], ENU, 0.0)


# --- the bench's decision timing runs and measures the whole round -----------------------------------------------


def test_decision_bench_runs_on_a_city_sized_picture():
    from dfr_dispatch.dispatch_bench import bench_decisions
    result = bench_decisions(100, 50, rounds=3)
    assert result["drones"] == 100 and result["incidents"] == 50 and result["samples"] == 3
    assert result["assigned"] + result["queued"] == 50
    assert 0.0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]


# --- the record: why this drone, and why not the others ------------------------------------------------------


def test_every_other_drone_weighed_is_on_the_record_with_its_eta_and_why_not():
    drones = [drone("near", 1000.0), drone("far", 3000.0), drone("flat", 500.0, flight=60.0),
              drone("other", -2000.0)]
    decisions = plan_assignments(drones, [incident("A", 0.0), incident("B", -2100.0)], ENU, now_s=0.0)
    assert assigned(decisions) == {"A": "near", "B": "other"}
    assert "A (grade S): near" in decisions.why["A"]
    why_not = {a.vehicle_id: a for a in decisions.alternatives["A"]}
    assert set(why_not) == {"far", "flat", "other"}
    assert why_not["far"].eta_s == pytest.approx(LAUNCH + 3000.0 / 20.0) and "cost" in why_not["far"].reason
    assert why_not["flat"].eta_s is None and "needs" in why_not["flat"].reason      # not enough flight left
    assert why_not["other"].reason == "sent to B"


def test_the_nearest_idle_baseline_records_the_farther_drones():
    from dfr_dispatch.policies import nearest_idle_decisions
    lat_lon = AssignmentConfig(cruise_speed_m_s=20.0, climb_rate_m_s=5.0, takeoff_overhead_s=10.0,
                               cruise_altitude_m=60.0)
    drones = [DroneState("a", "b1", (51.54, -0.10), available=True), DroneState("b", "b2", (51.55, -0.10),
                                                                               available=True)]
    decisions = nearest_idle_decisions(drones, [OpenIncident("I", "I", (51.541, -0.10), 0.0)], lat_lon)
    assert [(v, i) for v, i, _ in decisions.assign] == [("a", "I")]
    (other,) = decisions.alternatives["I"]
    assert other.vehicle_id == "b" and other.reason.startswith("farther: ") and other.eta_s > decisions.assign[0][2]
