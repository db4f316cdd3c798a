"""One 999 call answered end to end, every node real, on sim time in one process.

A call reported through intake's ReportIncident service is dispatched to the nearest
idle drone; its bridge flies it through the simulator's MAVROS interface to the
incident, holds there, brings it back and lands it on its dock.
"""
import math
import sys
from pathlib import Path

from dfr_common.geodesy import LocalFrame, ground_distance_m
from dfr_common.mission import Outcome, Phase

sys.path.insert(0, str(Path(__file__).resolve().parent))
from graph_scenes import (  # noqa: E402
    FIXTURES,
    INCIDENT,
    a_drone_in_transit,
    another_mission_for,
    first_drone_on_scene,
    idle_fleet,
    on_scene,
)


def test_a_call_is_answered_by_the_nearest_drone_which_comes_back(graph_factory):
    graph = graph_factory(
        fleet_file=FIXTURES / "fleet_two_bases.yaml",
        dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 10.0, "cruise_altitude_m": 40.0})
    # Every drone idle and known to dispatch, so that "nearest" is a choice among all of them.
    graph.spin_until(lambda: len(graph.dispatch.picture.idle(graph.dispatch._now())) == 3, 30, "an idle fleet")
    answer = graph.report_call(cad_ref="CAD-E2E-1", grade="I", category="dangerous_driving",
                               location_uncertainty_m=30.0, description="e-bike ridden dangerously", **INCIDENT)
    assert answer.accepted, answer.errors
    assert answer.drone_eligible, answer.policy_reason

    # The nearest idle drone: of the two docks at Islington, the one on the incident's side.
    distances = {vid: float(ground_distance_m(graph.fleet.vehicle_home(vid).latitude,
                                              graph.fleet.vehicle_home(vid).longitude,
                                              INCIDENT["latitude"], INCIDENT["longitude"]))
                 for vid in graph.fleet.vehicles}
    nearest = min(distances, key=distances.get)

    def flying():
        return [v for v in graph.sim.vehicles if v.model.armed]
    vehicle = graph.spin_until(flying, 30, "a drone to arm")[0]
    assert vehicle.vehicle_id == nearest
    bridge = graph.bridges[vehicle.vehicle_id]

    incident_frame = LocalFrame(graph.fleet.vehicle_home(vehicle.vehicle_id))
    east, north, _ = incident_frame.to_enu(INCIDENT["latitude"], INCIDENT["longitude"])

    def closest_approach():
        p = vehicle.model.position
        return math.hypot(p[0] - east, p[1] - north)

    best = [math.inf]

    def on_scene():
        best[0] = min(best[0], closest_approach())
        return bridge.sequencer is not None and bridge.sequencer.on_scene_since_s is not None
    graph.spin_until(on_scene, 60, "the drone to reach the scene")
    graph.spin_until(lambda: bridge.sequencer.done, 60, "the mission to end")

    seq = bridge.sequencer
    assert seq.outcome == Outcome.COMPLETED, seq.reason
    assert best[0] < 5.0, f"closest approach to the incident {best[0]:.1f} m"
    model = vehicle.model
    assert not model.armed and model.landed
    assert math.hypot(model.position[0], model.position[1]) < 2.0, "not back on its dock"
    assert seq.on_scene_since_s - seq.takeoff_time_s < 120.0
    # No other drone flew.
    assert [v.vehicle_id for v in graph.sim.vehicles if v.model._taken_off] == [vehicle.vehicle_id]


def test_a_drone_leaving_on_its_reserve_is_relieved_by_another(graph_factory):
    from dfr_interfaces.srv import InjectFault
    graph = idle_fleet(graph_factory, dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 0.0,
                                                          "cruise_altitude_m": 40.0})
    answer = graph.report_call(cad_ref="CAD-RELIEF", grade="I", category="dangerous_driving",
                               location_uncertainty_m=30.0, description="e-bike ridden dangerously", **INCIDENT)
    assert answer.accepted, answer.errors
    first, bridge = first_drone_on_scene(graph)
    faults = graph.client_node.create_client(InjectFault, "/sim/inject_fault")
    assert graph.call(faults, InjectFault.Request(vehicle_id=first.vehicle_id, fault="battery_level",
                                                  value=0.22)).success
    # The first turns home on its reserve; dispatch sends another drone to the same incident.
    second = graph.spin_until(lambda: next((v for v in graph.sim.vehicles if v.model.armed
                                            and v.vehicle_id != first.vehicle_id), None), 60, "a relief drone")
    relief = graph.bridges[second.vehicle_id]
    graph.spin_until(lambda: relief.sequencer is not None, 10, "the relief mission")
    assert relief.sequencer.spec.incident_id == answer.incident_id
    graph.spin_until(lambda: bridge.sequencer.done, 90, "the first drone home")
    assert bridge.sequencer.outcome == Outcome.BATTERY_RESERVE, bridge.sequencer.reason
    graph.spin_until(lambda: relief.sequencer.on_scene_since_s is not None, 90, "the relief on scene")


def test_dispatch_draws_its_picture_for_rviz(graph_factory):
    from visualization_msgs.msg import MarkerArray

    from dfr_common.ros import qos
    graph = graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml")
    static, live = [], []
    graph.client_node.create_subscription(MarkerArray, "/dfr/static_markers", static.append, qos.LATCHED_STATE)
    graph.client_node.create_subscription(MarkerArray, "/dfr/markers", live.append, qos.RELIABLE)
    graph.spin_until(lambda: static and live and any(m.ns == "drones" for m in live[-1].markers), 30, "markers")
    assert len([m for m in static[-1].markers if m.ns == "bases"]) == 2
    assert len([m for m in live[-1].markers if m.ns == "drones"]) == 3


def test_a_drone_flying_home_is_sent_straight_on_to_a_new_call(graph_factory):
    """The planner's retask in flight, through the real action: no landing, no second launch."""
    graph = graph_factory(
        fleet_file=FIXTURES / "fleet_two_bases.yaml",
        dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 5.0, "cruise_altitude_m": 40.0})
    graph.spin_until(lambda: len(graph.dispatch.picture.idle(graph.dispatch._now())) == 3, 30, "an idle fleet")
    first_call = graph.report_call(cad_ref="CAD-RETASK-1", grade="S", category="burglary",
                                   location_uncertainty_m=30.0, **INCIDENT)
    assert first_call.accepted, first_call.errors
    first = graph.spin_until(lambda: next((v for v in graph.sim.vehicles if v.model.armed), None), 30, "a launch")
    bridge = graph.bridges[first.vehicle_id]
    # On its way home as dispatch sees it, from the vehicle's status (not only in the bridge).
    graph.spin_until(lambda: bridge.sequencer is not None and bridge.sequencer.phase.name == "RETURN"
                     and bridge.sequencer._step == "fly" and first.vehicle_id in graph.dispatch.statuses
                     and graph.dispatch.statuses[first.vehicle_id].phase.value == Phase.RETURN.value, 90,
                     "the drone on its way home")
    # A second call right by the first scene, a different event (another category group).
    second_call = graph.report_call(cad_ref="CAD-RETASK-2", grade="I", category="assault",
                                    latitude=INCIDENT["latitude"] + 0.002, longitude=INCIDENT["longitude"],
                                    location_uncertainty_m=30.0)
    assert second_call.accepted and second_call.incident_id != first_call.incident_id
    graph.spin_until(lambda: bridge.sequencer.spec.incident_id == second_call.incident_id, 60,
                     "the drone retasked to the second call")
    graph.spin_until(lambda: bridge.sequencer.on_scene_since_s is not None, 90, "the second scene reached")
    assert first.model.armed and not first.model.landed            # it never came down in between
    assert [v.vehicle_id for v in graph.sim.vehicles if v.model._taken_off] == [first.vehicle_id]
    graph.spin_until(lambda: bridge.sequencer.done, 120, "the second mission to end")
    assert bridge.sequencer.outcome == Outcome.COMPLETED, bridge.sequencer.reason
    assert first_call.incident_id in graph.dispatch.record


def test_a_late_drone_gets_a_replacement_and_the_first_on_scene_stays(graph_factory):
    fleet_file = FIXTURES / "fleet_two_bases.yaml"
    from dfr_common.fleet import load_fleet
    fleet = load_fleet(fleet_file)
    nearest = min(fleet.vehicles, key=lambda v: float(ground_distance_m(
        fleet.vehicle_home(v).latitude, fleet.vehicle_home(v).longitude, INCIDENT["latitude"],
        INCIDENT["longitude"])))
    # The drone dispatch will choose crawls at 2 m/s: far behind the 18 m/s it was planned for.
    graph = graph_factory(
        fleet_file=fleet_file, sim_overrides={"vehicle_overrides": [f"{nearest}.max_speed_m_s=2.0"]},
        dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 30.0, "cruise_altitude_m": 40.0,
                            "cruise_speed_m_s": 18.0, "late_margin_s": 20.0})
    graph.spin_until(lambda: len(graph.dispatch.picture.idle(graph.dispatch._now())) == 3, 30, "an idle fleet")
    answer = graph.report_call(cad_ref="CAD-LATE", grade="I", category="assault", location_uncertainty_m=30.0,
                               **INCIDENT)
    assert answer.accepted, answer.errors
    slow = graph.bridges[nearest]
    graph.spin_until(lambda: slow.sequencer is not None, 30, "the first mission")
    replacement = graph.spin_until(lambda: next((v for v, b in graph.bridges.items() if v != nearest
                                                 and b.sequencer is not None), None), 200, "a replacement")
    fast = graph.bridges[replacement]
    assert fast.sequencer.spec.incident_id == answer.incident_id
    graph.spin_until(lambda: fast.sequencer.on_scene_since_s is not None, 120, "the replacement on scene")
    # The slow drone is recalled without reaching the scene; the replacement's arrival counts.
    graph.spin_until(lambda: slow.sequencer.phase.name in ("RETURN", "LAND"), 30, "the late drone recalled")
    assert slow.sequencer.on_scene_since_s is None and slow.sequencer._canceled
    assert graph.dispatch.assignments[answer.incident_id].vehicle_id == replacement


def test_a_relief_is_sent_early_and_the_first_drone_stays_until_it_is_on_scene(graph_factory):
    from dfr_interfaces.srv import InjectFault
    graph = idle_fleet(graph_factory, dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 0.0,
                                                          "cruise_altitude_m": 40.0, "relief_lead_s": 300.0},
                       bridge_overrides={"nominal_endurance_s": 2400.0})
    answer = graph.report_call(cad_ref="CAD-EARLY", grade="I", category="dangerous_driving",
                               location_uncertainty_m=30.0, description="e-bike ridden dangerously", **INCIDENT)
    assert answer.accepted, answer.errors
    first, bridge = first_drone_on_scene(graph)
    faults = graph.client_node.create_client(InjectFault, "/sim/inject_fault")
    # Five times the drain: its flight time left falls within the relief lead long before its reserve.
    assert graph.call(faults, InjectFault.Request(vehicle_id=first.vehicle_id, fault="battery_drain",
                                                  value=5.0, active=True)).success
    second = graph.spin_until(lambda: next((v for v in graph.sim.vehicles if v.model.armed
                                            and v.vehicle_id != first.vehicle_id), None), 120, "a relief drone")
    relief = graph.bridges[second.vehicle_id]
    assert not bridge.sequencer.relief_needed and bridge.sequencer.phase.name == "ON_SCENE"   # still watching
    graph.spin_until(lambda: relief.sequencer is not None and relief.sequencer.on_scene_since_s is not None, 120,
                     "the relief on scene")
    # Only now does the first drone leave, recalled, not on its reserve: the scene was never unwatched.
    graph.spin_until(lambda: bridge.sequencer.phase.name in ("RETURN", "LAND"), 30, "the first drone recalled")
    assert bridge.sequencer._canceled and not bridge.sequencer.relief_needed
    assert relief.sequencer.spec.incident_id == answer.incident_id and not relief.sequencer.done


def test_closing_the_incident_sends_its_drone_home_at_once(graph_factory):
    from dfr_interfaces.srv import CloseIncident
    graph = idle_fleet(graph_factory, dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 0.0,
                                                          "cruise_altitude_m": 40.0})
    answer = graph.report_call(cad_ref="CAD-CLOSE", grade="I", category="assault", location_uncertainty_m=30.0,
                               **INCIDENT)
    assert answer.accepted, answer.errors
    _, bridge = first_drone_on_scene(graph, timeout_s=90)          # to stay until told otherwise
    close = graph.client_node.create_client(CloseIncident, "/dfr/close_incident")
    assert graph.call(close, CloseIncident.Request(incident_id=answer.incident_id, reason="suspect detained")).success
    # No loitering: the drone leaves the scene for home as soon as dispatch hears of the close.
    graph.spin_until(lambda: bridge.sequencer.phase.name in ("RETURN", "LAND"), 20, "the drone recalled")
    assert bridge.sequencer._canceled


def test_a_restarted_dispatcher_adopts_the_mission_in_flight_and_sends_no_second_drone(graph_factory):
    """Dispatch dies mid-mission: the drone flies on under its bridge, the incident stays (intake's latched
    topic), and the dispatcher that replaces it learns from the bridges' status that the incident is held."""
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-RESTART-1")

    dispatch = graph.restart_dispatch()
    graph.spin_until(lambda: answer.incident_id in dispatch.incidents, 20, "the new dispatcher to hear of the incident")
    held = graph.spin_until(lambda: dispatch.assignments.get(answer.incident_id), 20, "the mission adopted")
    assert held.adopted and held.vehicle_id == first.vehicle_id and held.mission_id == bridge.sequencer.spec.mission_id

    def only_the_first_flew():
        assert [v.vehicle_id for v in graph.sim.vehicles if v.model._taken_off] == [first.vehicle_id]
        return bridge.sequencer.done
    graph.spin_until(only_the_first_flew, 120, "the adopted mission to end")
    assert bridge.sequencer.outcome == Outcome.COMPLETED, bridge.sequencer.reason
    graph.spin_until(lambda: answer.incident_id in dispatch.record, 20, "the incident counted as attended")
    assert answer.incident_id not in dispatch.assignments

    # The incident is not flown again, and the new dispatcher answers the next call.
    second = graph.report_call(cad_ref="CAD-RESTART-2", grade="I", category="assault", location_uncertainty_m=30.0,
                               latitude=INCIDENT["latitude"] + 0.002, longitude=INCIDENT["longitude"])
    assert second.accepted and second.incident_id != answer.incident_id
    sent = graph.spin_until(lambda: dispatch.assignments.get(second.incident_id), 30, "the next call dispatched")
    assert not sent.adopted and sent.mission_id.endswith(sent.vehicle_id)
    assert sent.mission_id.startswith("M00002-"), "the restarted dispatcher numbered a mission from 1 again"
    assert set(dispatch.assignments) == {second.incident_id}


def test_a_restarted_dispatcher_does_not_fly_again_an_incident_whose_drone_has_landed(graph_factory):
    """The drone was on scene and is home: neither intake's stream (the incident is still open) nor any
    status shows that the incident was seen to. The attended record on disk does."""
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-RESTART-LANDED")
    graph.spin_until(lambda: answer.incident_id in graph.dispatch.record and bridge.sequencer.done, 120,
                     "the incident attended and the drone landed")
    assert bridge.sequencer.outcome == Outcome.COMPLETED, bridge.sequencer.reason

    dispatch = graph.restart_dispatch()
    graph.spin_until(lambda: answer.incident_id in dispatch.incidents, 20, "the new dispatcher to hear of the incident")
    assert answer.incident_id in dispatch.record
    until = graph.sim.sim_now + 15.0      # several decision rounds, with every drone idle

    def none_sent():
        assert answer.incident_id not in dispatch.assignments, dispatch.assignments[answer.incident_id]
        assert not any(v.model.armed for v in graph.sim.vehicles)
        return graph.sim.sim_now > until
    graph.spin_until(none_sent, 60, "15 s of sim time after the restart")


def test_a_dispatcher_restarted_while_the_drone_flies_home_from_the_scene_sends_no_second_drone(graph_factory):
    """Found by the soak: the incident counted as attended only when the mission ended, at the landing, so a
    dispatcher restarted while the drone flew home sent another drone to an incident already seen to."""
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-RESTART-RETURN")
    graph.spin_until(lambda: graph.dispatch.statuses[first.vehicle_id].phase.value == Phase.RETURN.value, 120,
                     "dispatch to hear of the drone flying home from the scene")
    assert not bridge.sequencer.done                   # still in the air: its mission has not ended

    dispatch = graph.restart_dispatch()
    graph.spin_until(lambda: answer.incident_id in dispatch.incidents, 20, "the new dispatcher to hear of the incident")
    assert answer.incident_id in dispatch.record
    graph.spin_until(lambda: bridge.sequencer.done, 60, "the drone home")
    until = graph.sim.sim_now + 15.0

    def none_sent():
        held = dispatch.assignments.get(answer.incident_id)
        assert held is None or held.vehicle_id == first.vehicle_id and held.adopted, held
        assert not [v.vehicle_id for v in graph.sim.vehicles if v.model.armed and v.vehicle_id != first.vehicle_id]
        return graph.sim.sim_now > until
    graph.spin_until(none_sent, 60, "15 s of sim time after the landing")


def test_a_restarted_dispatcher_waits_to_hear_from_the_drone_an_earlier_one_sent(graph_factory):
    """Found by the soak: a dispatcher restarted at 5 x had not yet discovered every bridge when status_timeout_s
    of sim time (a second of wall time) ran out, and sent a third drone to an incident whose relief was on
    scene. The incident an earlier dispatcher sent a drone to is held until that drone is heard from, for
    mission_lost_after_s on both clocks at most; here its bridge never answers, so another drone then goes."""
    import time
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-RESTART-UNHEARD")
    mission = bridge.sequencer.spec.mission_id
    graph.stop_bridge(first.vehicle_id)
    dispatch = graph.restart_dispatch()
    started = (graph.sim.sim_now, time.monotonic())
    held = f"waiting to hear from {first.vehicle_id}, sent as {mission} before this dispatcher started"
    graph.spin_until(lambda: dispatch.queue_reasons.get(answer.incident_id) == held, 30, "the incident held")
    assert answer.incident_id not in dispatch.assignments

    other = another_mission_for(graph, answer.incident_id, mission, 60)
    lost_after = dispatch.params.mission_lost_after_s
    assert graph.sim.sim_now - started[0] >= lost_after and time.monotonic() - started[1] >= lost_after
    assert other.vehicle_id != first.vehicle_id and not other.adopted


def test_a_bridge_that_dies_mid_mission_leaves_a_safe_drone_and_its_incident_gets_another(graph_factory):
    """The bridge of a drone in transit dies and restarts: the autopilot, its setpoints gone, falls back on
    its own failsafe; the new bridge flies no mission it does not know; dispatch sends another drone."""
    graph, answer, first, bridge = a_drone_in_transit(graph_factory, "CAD-BRIDGE-1")
    lost_mission = bridge.sequencer.spec.mission_id

    graph.restart_bridge(first.vehicle_id)
    other = another_mission_for(graph, answer.incident_id, lost_mission)
    assert other.vehicle_id != first.vehicle_id          # the first drone is not free: it is still in the air
    on_scene(graph, other.vehicle_id)
    # The first drone, its setpoints gone, was brought down by the autopilot's own failsafe.
    graph.spin_until(lambda: first.model.landed and not first.model.armed, 120, "the first drone down and disarmed")
    assert math.hypot(first.model.position[0], first.model.position[1]) < 2.0, "not back on its dock"
