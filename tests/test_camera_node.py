"""The camera node renders what a drone's gimbal camera sees, from the simulator's ground truth."""
import math
import time
from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import QuaternionStamped
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image

from dfr_common.ros import qos
from dfr_common.ros.spin import spin_until
from dfr_interfaces.msg import GroundTruthActors, GroundTruthVehicles

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
WORLD = REPO / "config" / "world" / "islington.geojson"


def sim_and_camera(ros_context, **camera_params):
    """The simulator with a pedestrian near Islington, and the camera node with these parameters."""
    from dfr_sim.camera_node import CameraNode
    from dfr_sim.sim_node import SimulatorNode

    fleet = str(FIXTURES / "fleet_two_bases.yaml")
    sim = SimulatorNode(context=ros_context, parameter_overrides=[
        Parameter("fleet_file", value=fleet), Parameter("speed", value=20.0), Parameter("world_file", value=str(WORLD)),
        Parameter("scenario_file", value=str(FIXTURES / "scenario_pedestrian_at_islington.yaml"))])
    camera = CameraNode(context=ros_context, parameter_overrides=[
        Parameter("use_sim_time", value=True), Parameter("fleet_file", value=fleet),
        Parameter("world_file", value=str(WORLD)), *(Parameter(k, value=v) for k, v in camera_params.items())])
    return sim, camera


@pytest.fixture
def camera_graph(ros_context):
    import rclpy

    from dfr_common.ros.node_main import make_executor

    sim, camera = sim_and_camera(ros_context, vehicles=["uav1"], width=320, height=240, rate_hz=5.0)
    client = rclpy.create_node("camera_client", context=ros_context,
                               parameter_overrides=[Parameter("use_sim_time", value=True)])
    executor = make_executor(ros_context)
    for node in (sim, camera, client):
        executor.add_node(node)
    seen = {"images": [], "infos": [], "vehicles": [], "actors": [], "attitudes": []}
    client.create_subscription(QuaternionStamped, "/uav1/camera/mount_orientation", seen["attitudes"].append,
                               qos.RELIABLE)
    client.create_subscription(Image, "/uav1/camera/image_raw", seen["images"].append, qos.SENSOR_DATA)
    client.create_subscription(CameraInfo, "/uav1/camera/camera_info", seen["infos"].append, qos.SENSOR_DATA)
    client.create_subscription(GroundTruthVehicles, "/sim/ground_truth/vehicles", seen["vehicles"].append,
                               qos.RELIABLE)
    client.create_subscription(GroundTruthActors, "/sim/ground_truth/actors", seen["actors"].append, qos.RELIABLE)

    def until(predicate, timeout_s, what):
        return spin_until(executor, predicate, timeout_s, what, lambda: f"sim {sim.sim_now:.1f} s")

    yield sim, camera, seen, until
    executor.shutdown()
    for node in (sim, camera, client):
        node.destroy_node()


def test_a_docked_camera_is_off_and_an_airborne_one_sees_the_ground_and_the_actors(camera_graph):
    sim, camera, seen, spin_until = camera_graph
    model = next(v for v in sim.vehicles if v.vehicle_id == "uav1").model
    spin_until(lambda: sim.sim_now > 4.0 and seen["actors"], 20, "the estimator to settle and actors to appear")
    assert seen["images"] == []                                  # on the dock: no video
    assert model.arm(True, sim.sim_now)[0]
    assert model.takeoff(sim.sim_now, 30.0 + 100.0)[0]            # AMSL: 100 m above the 30 m ground
    model.gimbal.command_angles(2, -90.0, 0.0, 0.0)               # as mount_control would
    spin_until(lambda: model.position[2] > 99.0 and model.gimbal.pitch < -89.9, 40, "100 m, camera down")
    count = len(seen["images"])
    start = sim.sim_now
    spin_until(lambda: len(seen["images"]) >= count + 5 and seen["infos"], 30, "five frames")
    image, info = seen["images"][-1], seen["infos"][-1]
    assert (image.width, image.height, image.encoding, image.step) == (320, 240, "rgb8", 960)
    assert image.header.frame_id == "uav1/camera_optical_frame"
    image_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in seen["images"]}
    assert (info.header.stamp.sec, info.header.stamp.nanosec) in image_stamps   # each info belongs to a frame
    fx = 160.0 / math.tan(math.radians(80.0) / 2)
    assert info.k[0] == pytest.approx(fx) and info.k[4] == pytest.approx(fx)
    # Frames are stamped in sim time at the configured rate (5 Hz): no more frames than that.
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in seen["images"][count:]]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert len(stamps) <= (sim.sim_now - start) * 5.0 + 2

    pixels = np.frombuffer(bytes(image.data), np.uint8).reshape(240, 320, 3)
    assert pixels.std() > 8.0                                     # textured ground, not a flat fill

    # Each frame's gimbal attitude, stamped as the frame, in MAVROS's mount orientation convention.
    from dfr_common.ros.mount_orientation import mount_degrees
    attitudes = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in seen["attitudes"]}
    assert image_stamps <= set(attitudes)
    last = attitudes[(image.header.stamp.sec, image.header.stamp.nanosec)]
    assert last.header.frame_id == "uav1/base_link"
    assert list(mount_degrees(last.quaternion)) == pytest.approx([0.0, -90.0, 0.0], abs=0.1)

    # The pedestrian stands near the take-off point: it must appear where the camera model puts it.
    from dfr_sim.camera_renderer import CameraModel, gimbal_to_world_rotation, project
    truth = next(v for v in seen["vehicles"][-1].vehicles if v.vehicle_id == "uav1")
    walker = seen["actors"][-1].actors[0]
    frame = sim.site_frame
    east, north, _ = frame.to_enu(truth.position.latitude, truth.position.longitude)
    walker_e, walker_n, _ = frame.to_enu(walker.position.latitude, walker.position.longitude)
    rotation = gimbal_to_world_rotation(truth.heading, truth.gimbal_pitch_deg, truth.gimbal_roll_deg,
                                        truth.gimbal_yaw_deg)
    uv, visible = project(CameraModel(320, 240, math.radians(80.0)), (east, north, truth.height_above_ground_m),
                          rotation, [(walker_e, walker_n, walker.height_m)])
    assert visible[0], "the pedestrian should be in view of a camera 100 m above, looking down"
    u, v = (int(round(x)) for x in uv[0])
    window = pixels[max(0, v - 3):v + 4, max(0, u - 3):u + 4].reshape(-1, 3).astype(float)
    colour = np.array([walker.color.r, walker.color.g, walker.color.b]) * 255.0
    # Shading and noise change the colour a little; the ground around differs by far more.
    assert np.min(np.linalg.norm(window - colour, axis=1)) < 60.0


def test_a_camera_nobody_watches_renders_nothing_and_reads_no_ground_truth(ros_context):
    from dfr_common.ros.node_main import make_executor

    sim, camera = sim_and_camera(ros_context, width=64, height=48)
    executor = make_executor(ros_context)
    for node in (sim, camera):
        executor.add_node(node)
    try:
        model = next(v for v in sim.vehicles if v.vehicle_id == "uav1").model
        deadline = time.monotonic() + 20
        while sim.sim_now < 4.0 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)
        assert model.arm(True, sim.sim_now)[0] and model.takeoff(sim.sim_now, math.nan)[0]
        end = sim.sim_now + 10.0
        while sim.sim_now < end and time.monotonic() < deadline + 20:
            executor.spin_once(timeout_sec=0.01)
        assert model.airborne
        assert camera.frames_published == 0
        assert sim.ground_truth_pub.get_subscription_count() == 0      # nothing built for nobody
    finally:
        executor.shutdown()
        for node in (sim, camera):
            node.destroy_node()
