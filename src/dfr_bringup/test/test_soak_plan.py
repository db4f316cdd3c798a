"""The soak's plan (which fault, when, on which drone) and its verdict (what was lost), without ROS."""
import pytest

from dfr_bringup.soak_plan import (
    BATTERY_DRAIN,
    FAULT_KINDS,
    KILL_BRIDGE,
    KILL_INTAKE,
    REFUSE_OFFBOARD,
    DroneSeen,
    JournalIncident,
    choose_drone,
    fault_plan,
    memory_growth,
    soak_report,
    summary_lines,
)
from dfr_common.mission import Phase


def test_every_kind_comes_round_in_turn_until_the_calls_end():
    plan = fault_plan(calls_end_s=3600.0, period_s=240.0, first_s=240.0, seed=1)
    assert [f.kind for f in plan[:len(FAULT_KINDS)]] == list(FAULT_KINDS)
    assert plan[0].at_s == 240.0 and plan[0].kind == BATTERY_DRAIN       # the chase is on by then
    assert all(f.at_s <= 3600.0 for f in plan) and len(plan) == 14
    gaps = [b.at_s - a.at_s for a, b in zip(plan, plan[1:])]
    assert min(gaps) >= 240.0 * 0.5 and max(gaps) <= 240.0 * 1.5
    assert all(f.give_up_s == pytest.approx(f.at_s + 120.0) for f in plan if f.kind != BATTERY_DRAIN)
    assert all(f.give_up_s == 3600.0 for f in plan if f.kind == BATTERY_DRAIN)      # it waits for a scene
    assert fault_plan(3600.0, 240.0, 240.0, seed=1) == plan and fault_plan(3600.0, 240.0, 240.0, seed=2) != plan


@pytest.mark.parametrize("period, kinds, why", [(0.0, FAULT_KINDS, "positive"), (60.0, ("meteor",), "unknown")])
def test_a_bad_plan_is_refused(period, kinds, why):
    with pytest.raises(ValueError, match=why):
        fault_plan(600.0, period, 60.0, 1, kinds)


FLEET = [DroneSeen("uav1", Phase.IDLE.value, False), DroneSeen("uav2", Phase.ON_SCENE.value, True, "INC-1"),
         DroneSeen("uav3", Phase.FOLLOW.value, True, "INC-2"), DroneSeen("uav4", Phase.TRANSIT.value, True, "INC-3")]


def test_each_fault_strikes_the_drone_it_is_meant_for():
    assert choose_drone(BATTERY_DRAIN, FLEET) == "uav3"                  # mid-chase first
    assert choose_drone(BATTERY_DRAIN, FLEET, frozenset({"uav3"})) == "uav2"
    assert choose_drone(BATTERY_DRAIN, [FLEET[0], FLEET[3]]) is None     # none on scene: it waits
    assert choose_drone(KILL_BRIDGE, FLEET) == "uav4"                    # in transit first
    assert choose_drone(KILL_BRIDGE, FLEET, frozenset({"uav4"})) == "uav2"
    assert choose_drone(REFUSE_OFFBOARD, FLEET) == "uav1"                # docked: its next mission is refused
    assert choose_drone(REFUSE_OFFBOARD, FLEET[1:]) is None
    assert choose_drone(KILL_BRIDGE, [FLEET[0]]) is None                 # nobody flying: the fault waits
    assert choose_drone(KILL_INTAKE, FLEET) is None                      # a process, not a drone


def test_memory_growth_is_measured_over_the_last_process_after_its_warm_up():
    steady = [(t, 100.0 + t / 360.0, 11) for t in range(0, 3600, 60)]            # 10 MiB an hour
    assert memory_growth(steady, 300.0)["growth_mib_per_sim_hour"] == pytest.approx(10.0, abs=0.5)
    restarted = steady[:20] + [(t, 40.0 if t < 1500 else 90.0, 12) for t in range(1200, 3600, 60)]
    grown = memory_growth(restarted, 300.0)
    assert grown["processes"] == 2 and grown["growth_mib"] == 0.0          # its start-up is not growth
    assert memory_growth([], 300.0) == {"samples": 0}


def _audit(kind, mission, **detail):
    return {"kind": kind, "vehicle_id": "uav1", "mission_id": mission, "incident_id": "INC-1", "detail": detail}


def test_the_verdict_names_what_was_lost():
    journal = [JournalIncident("INC-1", ("C1", "C2"), True, True), JournalIncident("INC-2", ("C3",), True, True),
               JournalIncident("INC-3", ("C4",), False, True), JournalIncident("INC-4", ("C5",), True, True)]
    metrics = {"complete": True, "flights_without_incident": 0, "incidents_attended": 1,
               "per_incident": [{"incident_id": "INC-1", "response_time_s": 80.0},
                                {"incident_id": "INC-2", "response_time_s": None},
                                {"incident_id": "INC-3", "response_time_s": None}]}
    audit = [_audit("launch", "M1"), _audit("mission_result", "M1", outcome="vehicle_lost", reason="link"),
             _audit("launch", "M2"), _audit("mission_result", "M2", outcome="retasked"),
             _audit("mission_result", "M4", outcome="completed"),      # M2's flight, flown on as M4, ends
             _audit("launch", "M3")]
    faults = [{"kind": "link_loss", "result": "struck"}, {"kind": "gps_loss", "result": "skipped"}]
    report = soak_report(["C1", "C2", "C3", "C4", "C5", "C6"], journal, metrics, audit, faults,
                         {"/dfr/intake": [(0.0, 30.0, 5), (600.0, 31.0, 5)]}, 300.0)
    assert not report["passed"]
    assert report["calls_lost"] == ["C6"]
    assert [i["incident_id"] for i in report["incidents_lost"]] == ["INC-2", "INC-4"]
    assert report["missions_aborted"] == 1 and report["missions_aborted_by_outcome"] == {"vehicle_lost": 1}
    assert report["flights_without_a_recorded_end"] == ["M3"]
    assert report["faults_by_kind"] == {"gps_loss: skipped": 1, "link_loss: struck": 1}
    assert any("lost 1" in line for line in summary_lines(report))


def test_a_soak_that_lost_nothing_passes():
    journal = [JournalIncident("INC-1", ("C1",), True, True)]
    metrics = {"complete": True, "flights_without_incident": 0,
               "per_incident": [{"incident_id": "INC-1", "response_time_s": 80.0}]}
    assert soak_report(["C1"], journal, metrics, [], [], {}, 300.0)["passed"]
    assert not soak_report(["C1"], journal, {**metrics, "complete": False}, [], [], {}, 300.0)["passed"]
