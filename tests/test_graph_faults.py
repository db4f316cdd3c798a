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
from graph_scenes import INCIDENT, a_drone_in_transit, another_mission_for, idle_fleet, on_scene  # noqa: E402


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
    on_scene(graph, other.vehicle_id)
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
    on_scene(graph, other.vehicle_id)
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


def test_a_pilot_taking_a_drone_in_transit_is_yielded_to_and_its_incident_gets_another(graph_factory):
    """The remote pilot switches a drone in transit to position control: the bridge yields at once and ends
    the mission as a pilot takeover; dispatch sends another drone; nothing takes the first back."""
    from mavros_msgs.srv import SetMode
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-PILOT-1")
    lost_mission = bridge.sequencer.spec.mission_id
    graph.spin_until(lambda: first.model.mode == "OFFBOARD", 30, "offboard")
    pilot = graph.client_node.create_client(SetMode, f"/{first.vehicle_id}/mavros/set_mode")
    assert graph.call(pilot, SetMode.Request(custom_mode="POSCTL")).mode_sent
    graph.spin_until(lambda: bridge.sequencer.done, 30, "the bridge to yield")
    assert bridge.sequencer.outcome == Outcome.PILOT_TAKEOVER, bridge.sequencer.reason
    other = another_mission_for(graph, answer.incident_id, lost_mission)
    on_scene(graph, other.vehicle_id)
    assert other.vehicle_id != first.vehicle_id and first.model.mode == "POSCTL"


def test_a_drone_refused_offboard_goes_home_and_its_incident_gets_another(graph_factory):
    """PX4 refuses OFFBOARD to the drone dispatch chose: its bridge gives up after its retries and hands it to
    return to launch; the incident goes back in the queue and another drone flies it."""
    graph = idle_fleet(graph_factory, dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 10.0,
                                                          "cruise_altitude_m": 40.0})
    for vehicle_id in ("uav2",):              # the nearest drone to the incident in the two-base fleet
        graph.inject_fault(vehicle_id, "refuse_mode", argument="OFFBOARD")
    answer = graph.report_call(cad_ref="CAD-MODE-1", grade="I", category="assault", location_uncertainty_m=30.0,
                               **INCIDENT)
    assert answer.accepted, answer.errors
    first = graph.spin_until(lambda: graph.dispatch.assignments.get(answer.incident_id), 30, "the first assignment")
    assert first.vehicle_id == "uav2"
    other = another_mission_for(graph, answer.incident_id, first.mission_id, timeout_s=90.0)
    assert other.vehicle_id != "uav2"
    refused = graph.vehicle("uav2").model
    graph.spin_until(lambda: refused.landed and not refused.armed, 120, "uav2 back down")
    assert math.hypot(*refused.position[:2]) < 2.0, "returned to its dock"
    on_scene(graph, other.vehicle_id)


def test_a_flood_of_calls_loses_none(graph_factory):
    """Sixty calls in a burst, far more than the fleet can fly: each is answered and journalled, each is an
    open incident that dispatch knows, the three drones are sent, and the rest wait in the queue."""
    graph = idle_fleet(graph_factory, dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 600.0,
                                                          "cruise_altitude_m": 40.0})
    answers = []
    for n in range(60):
        answers.append(graph.report_call(
            cad_ref=f"CAD-FLOOD-{n:03d}", grade="I" if n % 10 == 9 else "S", category="assault",
            location_uncertainty_m=20.0,
            latitude=INCIDENT["latitude"] + 0.004 * (n % 8), longitude=INCIDENT["longitude"] + 0.006 * (n // 8)))
    assert all(a.accepted and a.drone_eligible for a in answers), [a.errors for a in answers if not a.accepted][:3]
    incidents = {a.incident_id for a in answers}
    assert len(incidents) == 60                                          # far enough apart not to merge
    graph.spin_until(lambda: incidents <= set(graph.dispatch.incidents), 30, "dispatch to know every incident")
    graph.spin_until(lambda: len(graph.dispatch.assignments) == 3, 60, "every drone sent")
    later = graph.sim.sim_now + 20.0
    graph.spin_until(lambda: graph.sim.sim_now > later, 30, "20 s more")
    assert incidents <= {r.incident_id for r in graph.intake.book.open_incidents()}
    assert incidents <= set(graph.dispatch.incidents) and len(graph.dispatch.assignments) == 3
    assert set(graph.dispatch.assignments) <= incidents


def _a_drone_on_scene(graph_factory, cad_ref: str):
    """One grade I call, its drone on scene for ten minutes: the graph, intake's answer, the drone, its bridge and
    its mission id."""
    graph = idle_fleet(graph_factory, dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 600.0,
                                                          "cruise_altitude_m": 40.0})
    answer = graph.report_call(cad_ref=cad_ref, grade="I", category="assault", location_uncertainty_m=30.0,
                               **INCIDENT)
    first = graph.spin_until(lambda: next((v for v in graph.sim.vehicles if v.model.armed), None), 30, "a launch")
    bridge = on_scene(graph, first.vehicle_id)
    mission = bridge.sequencer.spec.mission_id
    return graph, answer, first, bridge, mission


def test_a_dispatcher_that_starts_as_its_drone_leaves_on_its_reserve_sends_the_relief(graph_factory):
    """Dispatch dies with its drone on scene, and the new one first hears of that drone flying home on its
    battery reserve: the incident gets the relief the first would have sent, as a relief. Found by the short
    soak, whose new dispatcher sent a drone there as if to a new call."""
    graph, answer, first, bridge, mission = _a_drone_on_scene(graph_factory, "CAD-RESERVE-1")
    graph.executor.remove_node(graph.dispatch)                 # dispatch dies; the next starts only later
    graph.inject_fault(first.vehicle_id, "battery_level", value=0.19)
    graph.spin_until(lambda: bridge.sequencer.relief_needed, 30, "the drone leaving on its reserve")
    later = graph.sim.sim_now + 2.0                             # its status has said so, more than once
    graph.spin_until(lambda: graph.sim.sim_now > later, 30, "2 s more")
    dispatch = graph.restart_dispatch()
    graph.spin_until(lambda: dispatch.relieved.get(answer.incident_id) == first.vehicle_id, 30,
                     "the incident needing a relief for the drone")
    relief = another_mission_for(graph, answer.incident_id, mission)
    assert relief.vehicle_id != first.vehicle_id


@pytest.mark.parametrize("restarted", [False, True], ids=["its dispatcher", "a restarted dispatcher"])
def test_a_drone_forced_off_its_scene_by_a_battery_failsafe_is_relieved(graph_factory, restarted):
    """Its battery drops to PX4's critical level on scene, faster than the bridge's reserve could foresee (a
    cell failing; the soak drains one 25 x): PX4 flies it home, its mission ends on the failsafe, and the
    incident, seen to only until then, gets a relief. Found by the soak with a dispatcher that had restarted
    and adopted the mission: it counted the incident as attended and sent none."""
    graph, answer, first, bridge, mission = _a_drone_on_scene(graph_factory, "CAD-CELL-1")
    if restarted:
        dispatch = graph.restart_dispatch()
        graph.spin_until(lambda: (dispatch.assignments.get(answer.incident_id) or False)
                         and dispatch.assignments[answer.incident_id].on_scene_s is not None, 20,
                         "the mission adopted, its drone seen on scene")
    graph.inject_fault(first.vehicle_id, "battery_level", value=0.06)
    graph.spin_until(lambda: bridge.sequencer.done, 30, "the mission ended by the failsafe")
    assert bridge.sequencer.outcome == Outcome.AUTOPILOT_FAILSAFE, bridge.sequencer.reason
    relief = another_mission_for(graph, answer.incident_id, mission)
    assert relief.vehicle_id != first.vehicle_id
