"""Scenes the graph tests start from: an idle fleet, the first drone on scene, a drone in transit."""
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"

INCIDENT = {"latitude": 51.5412, "longitude": -0.1027}   # Upper Street, ~1.1 km from Islington


def idle_fleet(graph_factory, **overrides):
    """The two-base test fleet with every drone idle and known to dispatch."""
    graph = graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml", **overrides)
    graph.spin_until(lambda: len(graph.dispatch.picture.idle(graph.dispatch._now())) == 3, 30, "an idle fleet")
    return graph


def first_drone_on_scene(graph, timeout_s: float = 60.0):
    """The drone that launched first, and its bridge, once it is on scene."""
    first = graph.spin_until(lambda: next((v for v in graph.sim.vehicles if v.model.armed), None), 30, "a launch")
    bridge = graph.bridges[first.vehicle_id]
    graph.spin_until(lambda: bridge.sequencer is not None and bridge.sequencer.on_scene_since_s is not None,
                     timeout_s, "the first drone on scene")
    return first, bridge


def a_drone_in_transit(graph_factory, cad_ref: str, **overrides):
    """A call answered by the nearest drone, now on its way: the graph, intake's answer, the drone, its bridge."""
    graph = idle_fleet(graph_factory, dispatch_overrides={"standoff_radius_m": 0.0, "on_scene_duration_s": 10.0,
                                                          "cruise_altitude_m": 40.0}, **overrides)
    answer = graph.report_call(cad_ref=cad_ref, grade="I", category="assault", location_uncertainty_m=30.0,
                               **INCIDENT)
    assert answer.accepted, answer.errors
    first = graph.spin_until(lambda: next((v for v in graph.sim.vehicles if v.model.armed), None), 30, "a launch")
    bridge = graph.bridges[first.vehicle_id]
    graph.spin_until(lambda: bridge.sequencer is not None and bridge.sequencer.phase.name == "TRANSIT", 30,
                     "the drone in transit")
    return graph, answer, first, bridge


def another_mission_for(graph, incident_id: str, lost_mission: str, timeout_s: float = 60.0):
    """Dispatch's assignment of the incident to a mission other than the one lost."""
    return graph.spin_until(lambda: next((a for a in [graph.dispatch.assignments.get(incident_id)]
                                          if a is not None and a.mission_id != lost_mission), None),
                            timeout_s, f"{incident_id} sent to another mission")


def on_scene(graph, vehicle_id: str, timeout_s: float = 90.0):
    """The drone's bridge, once the drone is on scene."""
    bridge = graph.bridges[vehicle_id]
    graph.spin_until(lambda: bridge.sequencer is not None and bridge.sequencer.on_scene_since_s is not None,
                     timeout_s, f"{vehicle_id} on scene")
    return bridge

