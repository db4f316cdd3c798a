"""One 999 call answered end to end, every node real, on sim time in one process.

A call reported through intake's ReportIncident service is dispatched to the nearest
idle drone; its bridge flies it through the simulator's MAVROS interface to the
incident, holds there, brings it back and lands it on its dock.
"""
import math
from pathlib import Path

from dfr_common.geodesy import LocalFrame, ground_distance_m
from dfr_common.mission import Outcome

FIXTURES = Path(__file__).resolve().parent / "fixtures"

INCIDENT = {"latitude": 51.5412, "longitude": -0.1027}   # Upper Street, ~1.1 km from Islington


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
    graph = graph_factory(
        fleet_file=FIXTURES / "fleet_two_bases.yaml",
        dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 0.0, "cruise_altitude_m": 40.0})
    graph.spin_until(lambda: len(graph.dispatch.picture.idle(graph.dispatch._now())) == 3, 30, "an idle fleet")
    answer = graph.report_call(cad_ref="CAD-RELIEF", grade="I", category="dangerous_driving",
                               location_uncertainty_m=30.0, description="e-bike ridden dangerously", **INCIDENT)
    assert answer.accepted, answer.errors
    first = graph.spin_until(lambda: next((v for v in graph.sim.vehicles if v.model.armed), None), 30, "a launch")
    bridge = graph.bridges[first.vehicle_id]
    graph.spin_until(lambda: bridge.sequencer is not None and bridge.sequencer.on_scene_since_s is not None, 60,
                     "the first drone on scene")
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
