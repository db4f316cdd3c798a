"""The city replay: the same decisions as the node, on a model of the flights."""
from __future__ import annotations

import math

import pytest

from dfr_dispatch.assignment import AssignmentConfig
from dfr_dispatch.replay import ReplayConfig, ReplayDrone, ReplayIncident, replay

SPEED = 15.0
A = AssignmentConfig(cruise_speed_m_s=SPEED, on_scene_time_s=300.0, coverage_tolerance_s=0.0)
METRE_LAT = 1.0 / 111_132.0
BASE = (51.5338, -0.1109)


def north_of(point, metres):
    return (point[0] + metres * METRE_LAT, point[1])


def straight(a, b) -> float:
    return abs(b[0] - a[0]) / METRE_LAT / SPEED + abs(b[1] - a[1]) * 111_132.0 * math.cos(math.radians(51.5)) / SPEED


def run(policy, incidents, drones, on_scene_s=300.0):
    """The planner counts the same time on scene as the drones then stay."""
    a = AssignmentConfig(cruise_speed_m_s=SPEED, on_scene_time_s=on_scene_s, coverage_tolerance_s=0.0)
    return replay(policy, incidents, drones, a, ReplayConfig(on_scene_s=on_scene_s), straight)


def test_one_call_one_drone_arrives_after_launch_and_travel():
    result = run("planner", [ReplayIncident("i1", 10.0, "I", "assault", north_of(BASE, 1500))],
                 [ReplayDrone("d1", "b1", BASE)])
    expected = A.launch_s + 1500 / SPEED
    assert result.response_s["i1"] == pytest.approx(expected, abs=1.5)    # decisions every second
    assert result.flights == 1 and result.missions == 1 and not result.unattended


@pytest.mark.parametrize("policy", ["planner", "nearest_idle"])
def test_no_drones_leaves_every_incident_unattended_and_queued(policy):
    result = run(policy, [ReplayIncident("i1", 0.0, "I", "assault", BASE)], [], )
    assert result.unattended == ["i1"] and "i1" in result.queued and result.flights == 0


def test_the_planner_sends_the_charged_drone_where_nearest_idle_sends_one_that_must_turn_back():
    scene = north_of(BASE, 2500)
    drones = [ReplayDrone("low", "near", north_of(BASE, 1000), battery_fraction=0.5),
              ReplayDrone("full", "far", BASE)]
    incidents = [ReplayIncident("i1", 0.0, "I", "assault", scene)]
    planner = run("planner", incidents, drones, on_scene_s=900.0)
    nearest = run("nearest_idle", incidents, drones, on_scene_s=900.0)
    # nearest-idle's drone cannot stay its time on scene: relief is needed, a second flight goes
    assert nearest.relief_flights == 1 and nearest.flights == 2
    assert planner.relief_flights == 0 and planner.flights == 1


def test_a_drone_flying_home_is_sent_on_by_the_planner_and_not_by_nearest_idle():
    far_base = north_of(BASE, -3000)
    drones = [ReplayDrone("d1", "b1", BASE), ReplayDrone("d2", "b2", far_base)]
    first = ReplayIncident("i1", 0.0, "S", "burglary", north_of(BASE, 3000))
    # the second call comes next to the first scene while d1 is on its way home, d2 docked far away
    second = ReplayIncident("i2", A.launch_s + 3000 / SPEED + 300.0 + 30.0, "I", "assault", north_of(BASE, 3200))
    planner = run("planner", [first, second], drones)
    nearest = run("nearest_idle", [first, second], drones)
    assert planner.retasked_in_flight == 1 and planner.flights == 1
    assert nearest.retasked_in_flight == 0 and nearest.flights == 2
    assert planner.response_s["i2"] < nearest.response_s["i2"] - 60.0


def test_an_i_grade_call_pre_empts_a_lower_grade_mission_which_goes_back_in_the_queue():
    drones = [ReplayDrone("d1", "b1", BASE), ReplayDrone("d2", "b2", north_of(BASE, -4000))]
    low = ReplayIncident("e1", 0.0, "E", "theft", north_of(BASE, 2000))
    urgent = ReplayIncident("i1", 200.0, "I", "weapons", north_of(BASE, 2300))
    config = AssignmentConfig(cruise_speed_m_s=SPEED, on_scene_time_s=300.0, coverage_tolerance_s=0.0,
                              preemptible_grades=frozenset({"E"}), preemption_margin_s=60.0)
    # d2 is busy elsewhere first so that only d1 is close
    result = replay("planner", [low, urgent], drones, config, ReplayConfig(on_scene_s=300.0), straight)
    assert result.preempted == 1
    assert result.response_s["i1"] < 60.0            # d1 was already next to it
    assert "e1" in result.response_s and not result.unattended
