"""Faults injected into the running graph on sim time, every node real, in one process: whatever fails, no
accepted incident is lost and no drone is left without orders.

Each case starts from a call answered by the nearest drone, now on its way (`a_drone_in_transit`).
"""
import math
import sys
from pathlib import Path

import pytest

from dfr_common.mission import Outcome

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph_scenes import INCIDENT, a_drone_in_transit  # noqa: E402


def another_mission_for(graph, incident_id: str, lost_mission: str, timeout_s: float = 60.0):
    return graph.spin_until(lambda: next((a for a in [graph.dispatch.assignments.get(incident_id)]
                                          if a is not None and a.mission_id != lost_mission), None),
                            timeout_s, f"{incident_id} sent to another mission")


@pytest.mark.parametrize("pilot", [True, False], ids=["with a pilot", "without a pilot"])
def test_a_drone_that_loses_gps_in_transit_is_left_to_px4_and_its_incident_gets_another(graph_factory, pilot):
    """PX4's position-loss failsafe takes the drone: altitude control for the remote pilot where one is
    connected, a descent where it is otherwise (COM_POSCTL_NAVL 0). The bridge does not fight the autopilot:
    it ends the mission and says why, and dispatch sends another drone to the incident."""
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-GPS-1",
                                                      sim_overrides={"vehicle.rc_available": pilot})
    lost_mission = bridge.sequencer.spec.mission_id
    graph.spin_until(lambda: math.hypot(*first.model.position[:2]) > 200.0, 60, "the drone 200 m on its way")
    graph.inject_fault(first.vehicle_id, "gps_loss")
    graph.spin_until(lambda: bridge.sequencer.done, 30, "the mission ended by the failsafe")
    assert bridge.sequencer.outcome == Outcome.AUTOPILOT_FAILSAFE, bridge.sequencer.reason
    assert "no global position" in bridge.sequencer.reason
    other = another_mission_for(graph, answer.incident_id, lost_mission)
    assert other.vehicle_id != first.vehicle_id
    relief = graph.bridges[other.vehicle_id]
    graph.spin_until(lambda: relief.sequencer is not None and relief.sequencer.on_scene_since_s is not None, 90,
                     "the other drone on scene")
    if pilot:
        assert first.model.mode == "ALTCTL" and first.model.armed      # still the pilot's: nothing took it back
    else:
        graph.spin_until(lambda: first.model.landed and not first.model.armed, 120,
                         "the first drone down and disarmed")
        assert math.hypot(*first.model.position[:2]) > 150.0, "it came down where it was, not at home"
    assert answer.incident_id in {r.incident_id for r in graph.intake.book.open_incidents()}


def test_a_drone_whose_link_drops_in_transit_is_replaced_and_comes_back_under_its_own_failsafe(graph_factory):
    """The MAVROS link of a drone in transit drops for good: nothing reaches PX4, whose offboard-loss and
    link-loss failsafes bring it home; dispatch, hearing nothing of it, sends another to its incident."""
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-LINK-1")
    lost_mission = bridge.sequencer.spec.mission_id
    graph.spin_until(lambda: math.hypot(*first.model.position[:2]) > 200.0, 60, "the drone 200 m on its way")
    graph.inject_fault(first.vehicle_id, "link_loss")
    graph.spin_until(lambda: bridge.sequencer.done, 30, "the bridge to give the mission up")
    assert bridge.sequencer.outcome == Outcome.VEHICLE_LOST, bridge.sequencer.reason
    other = another_mission_for(graph, answer.incident_id, lost_mission, timeout_s=90.0)
    assert other.vehicle_id != first.vehicle_id
    relief = graph.bridges[other.vehicle_id]
    graph.spin_until(lambda: relief.sequencer is not None and relief.sequencer.on_scene_since_s is not None, 90,
                     "the other drone on scene")
    # PX4 on its own: it left offboard and flew home (or landed), and never went on to the incident.
    assert first.model.mode != "OFFBOARD"
    graph.spin_until(lambda: first.model.landed and not first.model.armed, 240, "the first drone down and disarmed")


def test_a_restarted_intake_keeps_the_incident_in_flight_and_no_second_drone_is_sent(graph_factory):
    """Intake dies mid-mission and restarts on its journal: the incident is published again, the drone flies
    on, dispatch sends nobody else, and the next call gets the next incident number."""
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-INTAKE-1")
    mission = bridge.sequencer.spec.mission_id
    intake = graph.restart_intake()
    assert answer.incident_id in {r.incident_id for r in intake.book.open_incidents()}

    def only_the_first_flew():
        assert [v.vehicle_id for v in graph.sim.vehicles if v.model._taken_off] == [first.vehicle_id]
        assert graph.dispatch.assignments.get(answer.incident_id) is None or \
            graph.dispatch.assignments[answer.incident_id].mission_id == mission
        return bridge.sequencer.done
    graph.spin_until(only_the_first_flew, 120, "the mission to end")
    assert bridge.sequencer.outcome == Outcome.COMPLETED, bridge.sequencer.reason
    second = graph.report_call(cad_ref="CAD-INTAKE-2", grade="I", category="assault", location_uncertainty_m=30.0,
                               latitude=INCIDENT["latitude"] + 0.002, longitude=INCIDENT["longitude"])
    assert second.accepted and second.incident_id > answer.incident_id
