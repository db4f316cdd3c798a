"""The headline: a drone sent to an e-bike call finds the e-bike in its own video, keeps it as
its target, puts it on the map and follows it. Every node real, on the simulator's images."""
import math
from pathlib import Path

import yaml

from dfr_common.geodesy import ground_distance_m
from dfr_common.ros import qos
from dfr_interfaces.msg import FollowSetpoint, GroundTruthActors, Target

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SCENARIO = FIXTURES / "scenario_ebike_chase.yaml"
WORLD = REPO / "config" / "world" / "islington.geojson"


def test_the_drone_finds_the_e_bike_in_its_video_and_follows_it(graph_factory):
    graph = graph_factory(
        fleet_file=FIXTURES / "fleet_two_bases.yaml", speed=5.0, with_perception=True,
        sim_overrides={"world_file": str(WORLD), "scenario_file": str(SCENARIO)},
        dispatch_overrides={"on_scene_duration_s": 0.0},
        camera_overrides={"vehicles": ["uav1", "uav2"]})
    targets, setpoints, truth = [], [], []
    node = graph.client_node
    node.create_subscription(Target, "/uav1/perception/target", targets.append, qos.RELIABLE)
    node.create_subscription(Target, "/uav2/perception/target", targets.append, qos.RELIABLE)
    for v in ("uav1", "uav2"):
        node.create_subscription(FollowSetpoint, f"/{v}/follow/setpoint", setpoints.append, qos.SENSOR_DATA)
    node.create_subscription(GroundTruthActors, "/sim/ground_truth/actors", truth.append, qos.RELIABLE)
    graph.spin_until(lambda: len(graph.dispatch.picture.idle(graph.dispatch._now())) == 3, 60, "an idle fleet")
    answer = graph.report_call(cad_ref="CAD-CHASE", grade="I", category="dangerous_driving",
                               latitude=51.5412, longitude=-0.1027, location_uncertainty_m=40.0,
                               description="E-bike ridden at speed on the pavement, ran a red light.",
                               suspect_description="Male, black hooded top, grey e-bike.")
    assert answer.accepted, answer.errors

    def tracking():
        return next((t for t in targets if t.state == Target.STATE_TRACKING), None)
    first = graph.spin_until(tracking, 240, "a target tracked")
    assert first.incident_id == answer.incident_id and first.selected_by == "incident", first.reason
    # On the map within metres of where the e-bike truly is.
    errors = []

    def geolocated():
        bike = next((a for a in truth[-1].actors if a.kind == "ebike"), None) if truth else None
        if bike is not None and targets and targets[-1].state == Target.STATE_TRACKING:
            p = targets[-1].track.position
            errors.append(float(ground_distance_m(p.latitude, p.longitude, bike.position.latitude,
                                                  bike.position.longitude)))
        return len(errors) >= 20
    graph.spin_until(geolocated, 120, "twenty geolocated sightings")
    assert sorted(errors)[len(errors) // 2] < 15.0, f"median geolocation error {sorted(errors)[len(errors) // 2]:.1f} m"
    # The follow controller flies it: setpoints for this mission reach the bridge, which follows.
    vehicle = first.vehicle_id
    bridge = graph.bridges[vehicle]
    graph.spin_until(lambda: bridge.sequencer is not None and bridge.sequencer.phase.name == "FOLLOW", 60,
                     "the bridge to fly the follow setpoints")
    assert any(s.mission_id == bridge.sequencer.spec.mission_id for s in setpoints)
    assert all(math.isfinite(s.latitude) and s.altitude_rel_m <= 120.0 for s in setpoints)
    # rviz2's view (config/rviz/dfr.rviz) shows what this graph publishes: every topic it names is advertised.
    advertised = {name for name, _ in node.get_topic_names_and_types()}
    fleet = {"uav1", "uav2", "uav3"}
    shown = [t for t in rviz_topics(REPO / "config" / "rviz" / "dfr.rviz")
             if not t.startswith("/uav") or t.split("/")[1] in fleet]
    assert len(shown) >= 6 and not [t for t in shown if t not in advertised], sorted(advertised)


def rviz_topics(path: Path) -> list[str]:
    config = yaml.safe_load(path.read_text())
    return [d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"] if "Topic" in d]


def test_the_operators_target_choice_is_checked_and_answered(graph_factory):
    from dfr_interfaces.srv import SelectTarget
    graph = graph_factory(fleet_file=FIXTURES / "fleet_two_bases.yaml", with_perception=True,
                          sim_overrides={"world_file": str(WORLD), "scenario_file": str(SCENARIO)},
                          camera_overrides={"vehicles": ["uav1"]})
    client = graph.client_node.create_client(SelectTarget, "/dfr/perception/select_target")
    answer = graph.call(client, SelectTarget.Request(vehicle_id="uav9", track_id=3, requested_by="pilot 1"))
    assert not answer.success and "no drone 'uav9'" in answer.message and "uav1" in answer.message
    answer = graph.call(client, SelectTarget.Request(vehicle_id="uav1", track_id=3, requested_by=" "))
    assert not answer.success and "requested_by is empty" in answer.message
    answer = graph.call(client, SelectTarget.Request(vehicle_id="uav1", track_id=3, requested_by="pilot 1"))
    assert not answer.success and "no track 3 in view; tracks now: none" in answer.message
    answer = graph.call(client, SelectTarget.Request(vehicle_id="uav1", track_id=0, requested_by="pilot 1"))
    assert answer.success and "cleared by pilot 1" in answer.message
