"""The Foxglove server with real rclpy and a WebSocket client speaking the Foxglove protocol: a source
node publishes a latched topic (before the server starts), a reliable topic, markers, /clock and camera
images at a high rate; the client reads the advertised channels (CDR with ros2msg schemas), subscribes
and checks that what arrives deserializes to what was published, that images are rate-limited and
that excluded topics are not advertised."""
from __future__ import annotations

import json
import os
import struct
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

# Keep this test's traffic on this host and off any other ROS graph on it (set before any Context exists).
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

SUBPROTOCOL = "foxglove.sdk.v1"
SIM_START_S = 50.0
TICK_S = 0.02                        # 50 Hz in sim time: the images come faster than the 5 Hz limit
TICKS = 100
MESSAGE_DATA = 0x01                  # binary opcode of a message from the server


class Graph:
    """An rclpy context loaded with the server's parameter file, and an executor for its nodes."""

    def __init__(self):
        import rclpy
        from rclpy.context import Context

        from dfr_common.ros.node_main import make_executor

        self.context = Context()
        rclpy.init(args=["--ros-args", "--params-file", str(REPO / "config" / "foxglove_server.yaml")],
                   context=self.context)
        self.executor = make_executor(self.context)
        self.nodes = []

    def add(self, node):
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def server(self, **overrides):
        """A Foxglove server node on a free port; not spun until add()ed."""
        from rclpy.parameter import Parameter

        from dfr_bringup.foxglove_server_node import FoxgloveServerNode
        overrides = {"use_sim_time": True, "port": 0, **overrides}
        return FoxgloveServerNode(context=self.context, namespace="dfr", parameter_overrides=[
            Parameter(name, value=value) for name, value in overrides.items()])

    def spin_until(self, predicate, what: str, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, f"timed out after {timeout_s:.0f} s waiting for {what}"
            self.executor.spin_once(timeout_sec=0.01)

    def spin(self, times: int, timeout_sec: float = 0.002) -> None:
        for _ in range(times):
            self.executor.spin_once(timeout_sec=timeout_sec)

    def close(self) -> None:
        self.executor.shutdown()
        for node in reversed(self.nodes):
            node.destroy_node()             # the server stops its WebSocket server too
        self.context.try_shutdown()


@pytest.fixture
def graph():
    graph = Graph()
    yield graph
    graph.close()


class FoxgloveClient:
    """Reads everything a Foxglove WebSocket server sends, on a thread of its own."""

    def __init__(self, port: int):
        from websockets.sync.client import connect

        self._stack = ExitStack()
        self.ws = self._stack.enter_context(connect(f"ws://127.0.0.1:{port}", subprotocols=[SUBPROTOCOL],
                                                    open_timeout=10))
        self.json: list[dict] = []
        self.data: list[tuple[int, int, bytes]] = []         # (subscription id, log time ns, payload)
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed
        try:
            for message in self.ws:
                if isinstance(message, str):
                    self.json.append(json.loads(message))
                elif message[0] == MESSAGE_DATA:
                    subscription, log_time = struct.unpack_from("<IQ", message, 1)
                    self.data.append((subscription, log_time, bytes(message[13:])))
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def channels(self) -> dict[str, dict]:
        return {c["topic"]: c for m in list(self.json) if m.get("op") == "advertise" for c in m["channels"]}

    def subscribe(self, subscriptions: dict[int, int]) -> None:
        """{subscription id: channel id}"""
        self.ws.send(json.dumps({"op": "subscribe", "subscriptions": [
            {"id": sub, "channelId": channel} for sub, channel in subscriptions.items()]}))

    def received(self, subscription: int) -> list[tuple[int, bytes]]:
        return [(t, d) for s, t, d in list(self.data) if s == subscription]

    def __enter__(self) -> FoxgloveClient:
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        self.thread.join(5)


def _incidents():
    from dfr_interfaces.msg import Call, Incident
    return [Incident(incident_id=f"INC-{i}", revision=1, grade="S", category="missing_person", drone_eligible=True,
                     calls=[Call(cad_ref=f"CAD-{i}", grade="S")]) for i in (7, 8)]


def _image(k: int):
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    return Image(header=Header(frame_id="uav1_camera"), height=24, width=32, encoding="mono8", step=32,
                 data=bytes([k % 256]) * (24 * 32))


def _markers(k: int):
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker, MarkerArray
    marker = Marker(header=Header(frame_id="map"), ns="vehicles", id=k, type=Marker.SPHERE, action=Marker.ADD)
    marker.pose.position.x = float(k)
    marker.scale.x = marker.scale.y = marker.scale.z = 5.0
    marker.color.a = 1.0
    return MarkerArray(markers=[marker])


def _clock(t: float):
    from rosgraph_msgs.msg import Clock
    ns = round(t * 1e9)
    msg = Clock()
    msg.clock.sec, msg.clock.nanosec = divmod(ns, 1_000_000_000)
    return msg


def test_a_foxglove_client_sees_the_live_topics(graph):
    import rclpy
    from rclpy.serialization import deserialize_message
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    from visualization_msgs.msg import MarkerArray

    from dfr_common.ros import qos
    from dfr_interfaces.msg import Incident

    source = graph.add(rclpy.create_node("foxglove_test_source", context=graph.context))
    publishers = {topic: source.create_publisher(cls, topic, profile) for topic, cls, profile in (
        ("/dfr/incidents", Incident, qos.incidents(1000)), ("/dfr/chatter", String, qos.RELIABLE),
        ("/dfr/markers", MarkerArray, qos.RELIABLE), ("/uav1/perception/image_redacted", Image, qos.SENSOR_DATA),
        ("/uav1/camera/image_raw", Image, qos.SENSOR_DATA), ("/clock", Clock, 10))}
    incidents, chatter, markers, redacted, raw_image, clock = publishers.values()
    sent_incidents = _incidents()
    for msg in sent_incidents:                  # before the server exists: it serves them from its latched copy
        incidents.publish(msg)

    server = graph.add(graph.server(discovery_period_s=0.1))
    expected = {"/dfr/incidents", "/dfr/chatter", "/dfr/markers", "/uav1/perception/image_redacted", "/clock"}
    graph.spin_until(lambda: expected <= set(server.live.topics), "the server's topics", 20)
    assert "/uav1/camera/image_raw" not in server.live.topics
    graph.spin_until(lambda: all(p.get_subscription_count() >= 1 for p in (chatter, markers, redacted, clock)),
                     "the server to match the publishers", 20)
    assert server.live.sent == 0            # nobody watches yet

    with FoxgloveClient(server.live.port) as client:
        assert client.ws.subprotocol == SUBPROTOCOL
        graph.spin_until(lambda: expected <= set(client.channels()), "the advertised channels")
        assert any(m.get("op") == "serverInfo" for m in client.json)
        channels = client.channels()
        assert "/uav1/camera/image_raw" not in channels
        types = {"/dfr/incidents": "dfr_interfaces/msg/Incident", "/dfr/chatter": "std_msgs/msg/String",
                 "/dfr/markers": "visualization_msgs/msg/MarkerArray",
                 "/uav1/perception/image_redacted": "sensor_msgs/msg/Image"}
        for topic, type_name in types.items():
            channel = channels[topic]
            assert (channel["encoding"], channel["schemaEncoding"], channel["schemaName"]) == (
                "cdr", "ros2msg", type_name), channel
        marker_schema = channels["/dfr/markers"]["schema"]
        assert "MSG: visualization_msgs/Marker" in marker_schema and "MSG: std_msgs/Header" in marker_schema

        subscriptions = {1: "/dfr/incidents", 2: "/dfr/chatter", 3: "/dfr/markers",
                         4: "/uav1/perception/image_redacted"}
        client.subscribe({sub: channels[topic]["id"] for sub, topic in subscriptions.items()})
        graph.spin_until(lambda: all(server.live.channel(t).has_sinks() for t in subscriptions.values()),
                         "the client's subscriptions")
        # The latched incidents, published before the server started, arrive when the client subscribes.
        graph.spin_until(lambda: len(client.received(1)) >= 2, "the latched incidents")
        # A latched message that reaches the server while the client subscribes may come twice (replayed and
        # live), and a live copy can come before the replay of an earlier one; a live view shows the same state
        # either way. Each one must come, none other.
        distinct = list(dict.fromkeys(d for _, d in client.received(1)))
        assert sorted((deserialize_message(d, Incident) for d in distinct), key=lambda i: i.incident_id) \
            == sent_incidents

        clock.publish(_clock(SIM_START_S))
        graph.spin_until(lambda: server.get_clock().now().nanoseconds > 0, "sim time")
        sent_chatter, sent_markers = [], []
        for k in range(TICKS):
            clock.publish(_clock(SIM_START_S + k * TICK_S))
            redacted.publish(_image(k))
            raw_image.publish(_image(k))
            if k % 10 == 0:
                sent_chatter.append(String(data=f"chatter {k}"))
                chatter.publish(sent_chatter[-1])
            if k % 25 == 0:
                sent_markers.append(_markers(k))
                markers.publish(sent_markers[-1])
            graph.spin(5)
        graph.spin_until(lambda: (len(client.received(2)), len(client.received(3))) == (
            len(sent_chatter), len(sent_markers)), "every reliable message at the client")
        graph.spin(20, 0.01)

        assert [deserialize_message(d, String) for _, d in client.received(2)] == sent_chatter
        got_markers = [deserialize_message(d, MarkerArray) for _, d in client.received(3)]
        assert got_markers == sent_markers and got_markers[0].markers[0].header.frame_id == "map"
        sim_window = (SIM_START_S * 1e9, (SIM_START_S + TICKS * TICK_S) * 1e9)
        assert all(sim_window[0] <= t <= sim_window[1] for t, _ in client.received(2))     # sim time, not wall
        # Images: at most 5 a second of sim time.
        images = client.received(4)
        times = [t for t, _ in images]
        assert 7 <= len(images) <= 11, f"{len(images)} images sent of {TICKS} over {TICKS * TICK_S:.0f} s"
        assert all(b - a >= 0.2e9 for a, b in zip(times, times[1:]))
        first = deserialize_message(images[0][1], Image)
        assert (first.width, first.height, first.encoding, first.header.frame_id) == (32, 24, "mono8", "uav1_camera")
        assert server.tap.dropped_images > 0

        server.on_shutdown()
        assert client.closed.wait(10), "the client's connection stays open after the server stopped"


def test_defaults_and_bad_parameters(graph):
    from dfr_common.ros.parameters import ParameterError

    server = graph.add(graph.server())
    p = server.params
    assert (p.host, p.port, p.exclude, p.max_rate_hz_images) == ("127.0.0.1", 0, [".*/camera/image_raw"], 5.0)
    assert server.live.port > 0 and server.live.url == f"ws://127.0.0.1:{server.live.port}"
    with pytest.raises(OSError, match="cannot serve Foxglove"):      # the port is taken
        graph.server(port=server.live.port)
    with pytest.raises(ParameterError, match="exclude pattern"):
        graph.server(exclude=["(unclosed"])
