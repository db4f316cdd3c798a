"""The follow node hands a target over to a relief: when a second drone comes on scene for the
incident the first is following, the first keeps following until the relief's perception
tracks the target, then stops sending setpoints. Real node; its inputs fed as messages."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from geographic_msgs.msg import GeoPoint
from geometry_msgs.msg import PoseStamped
from mavros_msgs.msg import HomePosition
from sensor_msgs.msg import NavSatFix
from std_msgs.msg import Float64

REPO = Path(__file__).resolve().parents[3]
HOME = (51.5338, -0.1109)


@pytest.fixture
def follow(tmp_path):
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from dfr_follow.follow_node import FollowNode

    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(REPO / "config" / "follow.yaml")], context=context)
    node = FollowNode(context=context, namespace="dfr", parameter_overrides=[
        Parameter("fleet_file", value=str(REPO / "tests" / "fixtures" / "fleet_two_bases.yaml")),
        Parameter("use_sim_time", value=False)])
    sent = {v: [] for v in node.drones}
    for vehicle_id, publisher in node.setpoint_pubs.items():
        publisher.publish = sent[vehicle_id].append      # what the bridge would receive
    yield node, sent
    node.destroy_node()
    context.try_shutdown()


def _place(node, vehicle_id: str, north_m: float) -> None:
    pose = node.drones[vehicle_id].pose
    home = HomePosition()
    home.geo = GeoPoint(latitude=HOME[0], longitude=HOME[1], altitude=80.0)
    pose.on_home(home)
    pose.on_fix(NavSatFix(latitude=HOME[0] + north_m / 111_200.0, longitude=HOME[1], altitude=120.0))
    pose.on_rel_alt(Float64(data=40.0))
    north = PoseStamped()
    north.pose.orientation.z = north.pose.orientation.w = math.sqrt(0.5)     # nose north: ENU yaw 90 degrees
    pose.on_local_pose(north)


def _status(vehicle_id: str, mission_id: str, phase: int):
    from dfr_interfaces.msg import MissionPhase, VehicleStatus
    return VehicleStatus(vehicle_id=vehicle_id, mission_id=mission_id, incident_id="INC-000001", armed=True,
                         phase=MissionPhase(value=phase))


def _target(node, vehicle_id: str, mission_id: str, north_m: float):
    from dfr_interfaces.msg import Target, Track
    msg = Target(vehicle_id=vehicle_id, mission_id=mission_id, incident_id="INC-000001",
                 state=Target.STATE_TRACKING, selected_by="incident")
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.track = Track(track_id=7, state="confirmed")
    msg.track.position = GeoPoint(latitude=HOME[0] + north_m / 111_200.0, longitude=HOME[1], altitude=float("nan"))
    msg.track.velocity.y = 5.0
    return msg


def test_a_relief_on_scene_takes_the_target_and_the_relieved_drone_stops_following(follow):
    from dfr_follow.follow_controller import FollowState
    from dfr_interfaces.msg import MissionPhase

    node, sent = follow
    first, relief = node.drones["uav1"], node.drones["uav2"]
    for vehicle_id in ("uav1", "uav2"):
        _place(node, vehicle_id, 0.0)
    node._on_status(first, _status("uav1", "MSN-1", MissionPhase.FOLLOW))
    node._on_target(first, _target(node, "uav1", "MSN-1", 60.0))
    assert first.controller.state is FollowState.FOLLOWING and sent["uav1"]

    # The relief comes on scene: the first drone hands over, and keeps following meanwhile.
    node._on_status(relief, _status("uav2", "MSN-2", MissionPhase.ON_SCENE))
    assert first.controller.state is FollowState.HANDOVER and first.controller.relief == "uav2"
    before = len(sent["uav1"])
    node._on_target(first, _target(node, "uav1", "MSN-1", 62.0))
    assert len(sent["uav1"]) == before + 1

    # The relief's perception tracks the target: the first drone is released and sends nothing more.
    node._on_target(relief, _target(node, "uav2", "MSN-2", 63.0))
    node._on_target(first, _target(node, "uav1", "MSN-1", 64.0))
    assert first.controller.state is FollowState.RELEASED
    released_at = len(sent["uav1"])
    node._tick()
    node._on_target(first, _target(node, "uav1", "MSN-1", 65.0))
    assert len(sent["uav1"]) == released_at
    assert relief.controller.state is FollowState.FOLLOWING and sent["uav2"]


def test_a_second_drone_on_another_incident_takes_nothing_over(follow):
    from dfr_follow.follow_controller import FollowState
    from dfr_interfaces.msg import MissionPhase

    node, _ = follow
    first, other = node.drones["uav1"], node.drones["uav3"]
    for vehicle_id in ("uav1", "uav3"):
        _place(node, vehicle_id, 0.0)
    node._on_status(first, _status("uav1", "MSN-1", MissionPhase.FOLLOW))
    node._on_target(first, _target(node, "uav1", "MSN-1", 60.0))
    elsewhere = _status("uav3", "MSN-3", MissionPhase.ON_SCENE)
    elsewhere.incident_id = "INC-000002"
    node._on_status(other, elsewhere)
    assert first.controller.state is FollowState.FOLLOWING


def test_a_drone_on_scene_is_listened_to_only_once_perception_watches_it(follow):
    from dfr_interfaces.msg import MissionPhase, Target

    node, _ = follow
    drone = node.drones["uav1"]
    _place(node, "uav1", 0.0)
    node._on_status(drone, _status("uav1", "MSN-1", MissionPhase.ON_SCENE))
    assert drone.controller is not None and not drone.pose.following_motion    # nothing to follow yet
    nothing_yet = _target(node, "uav1", "MSN-1", 60.0)
    nothing_yet.state = Target.STATE_NONE
    node._on_target(drone, nothing_yet)
    assert drone.pose.following_motion                   # perception reads its camera: position, height, heading
    node._on_status(drone, _status("uav1", "MSN-1", MissionPhase.FOLLOW))
    assert drone.pose.following_motion
    node._on_status(drone, _status("uav1", "MSN-1", MissionPhase.RETURN))
    assert not drone.pose.following_motion and drone.controller is None
