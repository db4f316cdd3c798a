"""The bag recorder with real rclpy: a source node publishes several types with the QoS the
graph uses (a latched topic published before the recorder starts, a best-effort stream,
camera images at a high rate, /clock), the recorder writes them (not /clock: the bag's
timeline is sim time already), and the bag is read back with rosbags and with rclpy's
deserializer."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dfr_common.ros.spin import spin_until

REPO = Path(__file__).resolve().parents[3]

# Keep this test's traffic on this host and off any other ROS graph on it (set before any Context exists).
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

SIM_START_S = 50.0
TICK_S = 0.02                        # 50 Hz in sim time: the images come faster than the 2 Hz limit
TICKS = 100


@pytest.fixture
def context():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(REPO / "config" / "bag_recorder.yaml")], context=context)
    yield context
    context.try_shutdown()


def _recorder(context, **overrides):
    from rclpy.parameter import Parameter

    from dfr_bringup.bag_recorder_node import BagRecorderNode
    return BagRecorderNode(context=context, namespace="dfr", parameter_overrides=[
        Parameter(name, value=value) for name, value in {"use_sim_time": True, **overrides}.items()])


def _incident(i: int):
    from dfr_interfaces.msg import Call, Incident
    msg = Incident(incident_id=f"INC-{i}", revision=1, grade="I", category="dangerous_driving",
                   calls=[Call(cad_ref=f"CAD-{i}", grade="I")], drone_eligible=True)
    msg.location.latitude = 51.54
    return msg


def _image(k: int, frame: str):
    from sensor_msgs.msg import Image
    return Image(height=24, width=32, encoding="mono8", step=32, data=bytes([k % 256]) * (24 * 32),
                 header=_header(frame))


def _header(frame: str):
    from std_msgs.msg import Header
    return Header(frame_id=frame)


def test_the_recorder_writes_a_bag_that_rosbags_and_rclpy_read(context, tmp_path):
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from dfr_common.ros import qos
    from dfr_common.ros.node_main import make_executor
    from dfr_interfaces.msg import Incident

    source = rclpy.create_node("bag_test_source", context=context)
    incidents = source.create_publisher(Incident, "/dfr/incidents", qos.incidents(1000))
    sent_incidents = [_incident(1), _incident(2)]
    for msg in sent_incidents:                  # before the recorder exists: only a latched subscription gets them
        incidents.publish(msg)
    chatter = source.create_publisher(String, "/dfr/chatter", qos.RELIABLE)
    pose = source.create_publisher(PoseStamped, "/uav1/mavros/vision_pose/pose", qos.SENSOR_DATA)
    # An image topic the selection lets through (a second camera); the redacted video is kept per mission under
    # retention instead, never in the bag.
    thermal = source.create_publisher(Image, "/uav1/thermal/image", qos.SENSOR_DATA)
    redacted = source.create_publisher(Image, "/uav1/perception/image_redacted", qos.SENSOR_DATA)
    raw_image = source.create_publisher(Image, "/uav1/camera/image_raw", qos.SENSOR_DATA)
    clock = source.create_publisher(Clock, "/clock", 10)

    path = tmp_path / "run" / "bag.mcap"
    recorder = _recorder(context, output_path=str(path), discovery_period_s=0.1)
    executor = make_executor(context)
    executor.add_node(source)
    executor.add_node(recorder)
    try:
        expected = {"/dfr/incidents", "/dfr/chatter", "/uav1/mavros/vision_pose/pose", "/uav1/thermal/image"}
        spin_until(executor, lambda: expected <= set(recorder.subscriptions_by_topic), 20, "the recorder's topics")
        assert not {"/uav1/camera/image_raw", "/uav1/perception/image_redacted", "/clock"} & set(
            recorder.subscriptions_by_topic)
        volatile = (chatter, pose, thermal, clock)
        spin_until(executor, lambda: all(p.get_subscription_count() >= 1 for p in volatile), 20,
                    "the recorder to match the publishers")
        spin_until(executor, lambda: len(recorder.bag.message_counts) and recorder.bag.message_counts.get(
            "/dfr/incidents") == 2, 10, "the latched incidents")

        def stamp(t: float):
            from builtin_interfaces.msg import Time
            ns = round(t * 1e9)
            return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

        clock.publish(Clock(clock=stamp(SIM_START_S)))
        spin_until(executor, lambda: recorder.get_clock().now().nanoseconds > 0, 10, "sim time")
        sent_chatter, sent_poses = [], []
        for k in range(TICKS):
            clock.publish(Clock(clock=stamp(SIM_START_S + k * TICK_S)))
            thermal.publish(_image(k, "uav1_camera"))
            redacted.publish(_image(k, "uav1_camera"))
            raw_image.publish(_image(k, "uav1_camera"))
            if k % 10 == 0:
                sent_chatter.append(String(data=f"chatter {k}"))
                chatter.publish(sent_chatter[-1])
            if k % 5 == 0:
                msg = PoseStamped(header=_header("map"))
                msg.pose.position.x = float(k)
                sent_poses.append(msg)
                pose.publish(msg)
            for _ in range(5):
                executor.spin_once(timeout_sec=0.002)
        spin_until(executor, lambda: recorder.bag.message_counts.get("/dfr/chatter") == len(sent_chatter), 10,
                    "every reliable message")
        for _ in range(50):
            executor.spin_once(timeout_sec=0.01)
        counts = dict(recorder.bag.message_counts)
        recorder.on_shutdown()
        assert recorder.bag.closed and "bag.mcap" in recorder.summary()
    finally:
        executor.shutdown()
        recorder.destroy_node()
        source.destroy_node()

    with AnyReader([path]) as reader:
        topics = reader.topics
        assert expected <= set(topics)
        assert not {"/uav1/camera/image_raw", "/uav1/perception/image_redacted"} & set(topics)
        assert {name: info.msgcount for name, info in topics.items()} == counts
        assert topics["/dfr/incidents"].msgtype == "dfr_interfaces/msg/Incident"
        assert topics["/uav1/thermal/image"].msgtype == "sensor_msgs/msg/Image"
        durability = {c.topic: [q.durability.name for q in c.ext.offered_qos_profiles] for c in reader.connections}
        assert durability["/dfr/incidents"] == ["TRANSIENT_LOCAL"] and durability["/dfr/chatter"] == ["VOLATILE"]
        got: dict[str, list] = {}
        for connection, log_time, data in reader.messages():
            msg = reader.deserialize(data, connection.msgtype)
            got.setdefault(connection.topic, []).append((log_time, msg, bytes(data)))

    assert [m.incident_id for _, m, _ in got["/dfr/incidents"]] == ["INC-1", "INC-2"]
    assert got["/dfr/incidents"][0][1].calls[0].cad_ref == "CAD-1"
    assert [deserialize_message(d, Incident) for _, _, d in got["/dfr/incidents"]] == sent_incidents
    assert [deserialize_message(d, String) for _, _, d in got["/dfr/chatter"]] == sent_chatter
    # Stamped with sim time, not the wall clock.
    sim_window = (SIM_START_S * 1e9, (SIM_START_S + TICKS * TICK_S) * 1e9)
    assert all(sim_window[0] <= t <= sim_window[1] for t, _, _ in got["/dfr/chatter"])
    # Best effort: the recorder took best effort to hear this publisher at all.
    poses = [m.pose.position.x for _, m, _ in got["/uav1/mavros/vision_pose/pose"]]
    assert poses and set(poses) <= {p.pose.position.x for p in sent_poses}
    # Images: at most 2 a second of sim time, per topic.
    images = got["/uav1/thermal/image"]
    times = [t for t, _, _ in images]
    assert 3 <= len(images) <= 5, f"{len(images)} images kept of {TICKS} over {TICKS * TICK_S:.0f} s"
    assert all(b - a >= 0.5e9 for a, b in zip(times, times[1:]))
    assert all(sim_window[0] <= t <= sim_window[1] for t in times)
    first = images[0][1]
    assert (first.width, first.height, first.encoding, len(first.data)) == (32, 24, "mono8", 32 * 24)
    assert deserialize_message(images[0][2], Image).header.frame_id == "uav1_camera"


def test_without_an_output_path_nothing_is_recorded(context):
    recorder = _recorder(context)
    try:
        recorder.discover()
        assert recorder.bag is None and not recorder.subscriptions_by_topic
        # Camera images and every track but the target stay out of the record (config/bag_recorder.yaml).
        assert {".*/camera/image_raw", ".*/perception/image_redacted", ".*/perception/tracks",
                "/dfr/perception/markers"} <= set(
            recorder.params.exclude) and recorder.params.max_rate_hz_images == 2.0
        recorder.on_shutdown()
        assert recorder.summary() == "recorded nothing (output_path is empty)"
    finally:
        recorder.destroy_node()


def test_bad_parameters_stop_the_recorder_at_start(context, tmp_path):
    from dfr_common.ros.parameters import ParameterError

    with pytest.raises(ParameterError, match="exclude pattern"):
        _recorder(context, output_path=str(tmp_path / "a.mcap"), exclude=["(unclosed"])
    existing = tmp_path / "b.mcap"
    existing.write_bytes(b"an earlier recording")
    with pytest.raises(ParameterError, match="not overwriting"):
        _recorder(context, output_path=str(existing))
    assert existing.read_bytes() == b"an earlier recording"
    with pytest.raises(ParameterError, match="compression"):
        _recorder(context, output_path=str(tmp_path / "c.mcap"), compression="bz2")
