"""The MCAP bag writer alone: the layout rosbag2 writes, read back by `mcap` and by `rosbags`.

Messages are serialized with rclpy's serializer (no rclpy Context, no nodes), so what is
checked is that bytes off the wire come back from the file as the same messages.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from mcap.reader import make_reader

from dfr_bringup.mcap_bag import (
    DELIMITER,
    McapBagWriter,
    MessageDefinitionError,
    MessageDefinitions,
    OfferedQos,
    RateLimit,
    TopicSelection,
    field_names,
    field_types,
    subscription_policy,
)

LATCHED = OfferedQos(history="keep_last", depth=10, reliability="reliable", durability="transient_local")
SENSOR = OfferedQos(history="keep_last", depth=5, reliability="best_effort", durability="volatile")


def _package(root: Path, name: str, types: dict[str, str]) -> None:
    (root / name / "msg").mkdir(parents=True)
    for type_name, text in types.items():
        (root / name / "msg" / f"{type_name}.msg").write_text(text)


def test_field_types_are_the_message_types_a_definition_uses():
    text = ("# a comment naming geometry_msgs/Pose\n"
            "uint8 MODE_A=1   # constant\n"
            "Header header\n"
            "string<=8 short_name\n"
            "float64[9] covariance\n"
            "Thing[] things         # same package\n"
            "geometry_msgs/Point[<=3] points\n"
            "builtin_interfaces/Time stamp\n"
            "int32 count 5          # with a default\n")
    assert field_types(text, "my_msgs") == ["builtin_interfaces/Time", "geometry_msgs/Point", "my_msgs/Thing",
                                            "std_msgs/Header"]


def test_complete_definition_has_rosbag2s_layout(tmp_path):
    _package(tmp_path, "a_msgs", {"Outer": "b_msgs/Leaf leaf\nInner inner\n",
                                  "Inner": "b_msgs/Leaf again\nint32 x\n"})
    _package(tmp_path, "b_msgs", {"Leaf": "float64 value\n"})
    definitions = MessageDefinitions(share_directory=lambda pkg: str(tmp_path / pkg))
    text = definitions.complete("a_msgs/msg/Outer")
    # The type's own text, then its types in sorted order, depth first, each once.
    assert text == ("b_msgs/Leaf leaf\nInner inner\n"
                    f"\n{DELIMITER}\nMSG: a_msgs/Inner\nb_msgs/Leaf again\nint32 x\n"
                    f"\n{DELIMITER}\nMSG: b_msgs/Leaf\nfloat64 value\n")
    assert len(DELIMITER) == 80 and set(DELIMITER) == {"="}
    assert definitions.complete("a_msgs/Outer") == text                  # 'pkg/Type' is accepted too

    _package(tmp_path, "c_msgs", {"Broken": "a_msgs/Missing m\n"})
    with pytest.raises(MessageDefinitionError, match=r"'c_msgs/msg/Broken' uses .*a_msgs/Missing"):
        definitions.complete("c_msgs/msg/Broken")
    with pytest.raises(MessageDefinitionError, match="only message"):
        definitions.complete("a_msgs/srv/Outer")
    with pytest.raises(MessageDefinitionError, match="not a message type name"):
        definitions.complete("Outer")


def test_a_msg_edited_since_the_build_is_found(tmp_path):
    assert field_names("uint8 A=1\nstring B = 'x'\nint32 x 5  # default\nstd_msgs/Header header\n# c\n") == [
        "x", "header"]
    _package(tmp_path, "a_msgs", {"Outer": "Inner inner\nint32 count\n", "Inner": "float64 value\n"})
    definitions = MessageDefinitions(share_directory=lambda pkg: str(tmp_path / pkg))
    built = {"a_msgs/msg/Outer": ["inner", "count"], "a_msgs/msg/Inner": ["value"]}
    assert definitions.stale("a_msgs/msg/Outer", built.__getitem__) == []
    built["a_msgs/msg/Inner"] = ["value", "unit"]
    assert definitions.stale("a_msgs/msg/Outer", built.__getitem__) == [
        "a_msgs/msg/Inner: the .msg has fields ['value'], the built type ['value', 'unit']"]


def test_installed_definitions_resolve_across_packages():
    definitions = MessageDefinitions()
    status = definitions.complete("dfr_interfaces/msg/VehicleStatus")
    assert status.startswith(definitions.text("dfr_interfaces/msg/VehicleStatus"))
    headers = [line for line in status.splitlines() if line.startswith("MSG: ")]
    assert headers == ["MSG: dfr_interfaces/MissionPhase", "MSG: geographic_msgs/GeoPoint",
                       "MSG: geometry_msgs/Vector3", "MSG: std_msgs/Header", "MSG: builtin_interfaces/Time"]
    assert status.count(DELIMITER) == len(headers)
    image = definitions.complete("sensor_msgs/msg/Image")
    assert [line for line in image.splitlines() if line.startswith("MSG: ")] == [
        "MSG: std_msgs/Header", "MSG: builtin_interfaces/Time"]
    state = definitions.complete("mavros_msgs/msg/State")
    assert "MSG: std_msgs/Header" in state
    with pytest.raises(MessageDefinitionError, match="no_such_msgs"):
        definitions.complete("no_such_msgs/msg/Thing")


def _incident(i: int):
    from builtin_interfaces.msg import Time

    from dfr_interfaces.msg import Call, Incident
    msg = Incident(incident_id=f"INC-{i}", revision=i + 1, state=Incident.STATE_OPEN, grade="I",
                   calls=[Call(cad_ref=f"CAD-{i}-{k}", call_time=Time(sec=90 + k), grade="S") for k in range(i % 3)],
                   drone_eligible=bool(i % 2), location_uncertainty_m=10.0 * i)
    msg.header.stamp.sec = 100 + i
    msg.header.frame_id = "map"
    msg.location.latitude = 51.5 + i * 1e-3
    return msg


def _write_sample_bag(path: Path) -> dict[str, list]:
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    sent: dict[str, list] = {"/chatter": [], "/dfr/incidents": []}
    with McapBagWriter(path, ros_distro="jazzy") as bag:
        bag.add_topic("/chatter", "std_msgs/msg/String", [SENSOR])
        bag.add_topic("/dfr/incidents", "dfr_interfaces/msg/Incident", [LATCHED], type_hash="RIHS01_ab")
        for i in range(5):
            chatter = String(data=f"hello {i}")
            incident = _incident(i)
            bag.write("/chatter", serialize_message(chatter), log_time_ns=1_000_000_000 + i * 10_000_000)
            bag.write("/dfr/incidents", serialize_message(incident), log_time_ns=1_000_000_000 + i * 20_000_000,
                      publish_time_ns=999)
            sent["/chatter"].append(chatter)
            sent["/dfr/incidents"].append(incident)
        assert bag.message_counts == {"/chatter": 5, "/dfr/incidents": 5}
    assert bag.closed and bag.size_bytes == path.stat().st_size
    return sent


def test_the_file_is_what_rosbag2s_mcap_plugin_writes(tmp_path):
    path = tmp_path / "run.mcap"
    _write_sample_bag(path)
    with open(path, "rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary.statistics.message_count == 10 and summary.chunk_indexes
        schemas = {s.name: s for s in summary.schemas.values()}
        assert set(schemas) == {"std_msgs/msg/String", "dfr_interfaces/msg/Incident"}
        assert {s.encoding for s in schemas.values()} == {"ros2msg"}
        assert schemas["dfr_interfaces/msg/Incident"].data.decode() == \
            MessageDefinitions().complete("dfr_interfaces/msg/Incident")
        channels = {c.topic: c for c in summary.channels.values()}
        assert {c.message_encoding for c in channels.values()} == {"cdr"}
        qos = yaml.safe_load(channels["/dfr/incidents"].metadata["offered_qos_profiles"])
        assert qos == [{"history": "keep_last", "depth": 10, "reliability": "reliable",
                        "durability": "transient_local", "deadline": {"sec": 9223372036, "nsec": 854775807},
                        "lifespan": {"sec": 9223372036, "nsec": 854775807}, "liveliness": "automatic",
                        "liveliness_lease_duration": {"sec": 9223372036, "nsec": 854775807},
                        "avoid_ros_namespace_conventions": False}]
        assert channels["/dfr/incidents"].metadata["topic_type_hash"] == "RIHS01_ab"
        records = list(reader.iter_metadata())
        assert [m.name for m in records] == ["rosbag2"]
        metadata = yaml.safe_load(records[0].metadata["serialized_metadata"])
        assert metadata["version"] == 9 and metadata["storage_identifier"] == "mcap"
        assert metadata["message_count"] == 10 and metadata["ros_distro"] == "jazzy"
        assert metadata["starting_time"] == {"nanoseconds_since_epoch": 1_000_000_000}
        assert metadata["duration"] == {"nanoseconds": 80_000_000}
        assert {t["topic_metadata"]["name"]: t["message_count"] for t in metadata["topics_with_message_count"]} == \
            {"/chatter": 5, "/dfr/incidents": 5}
        times = [(c.topic, m.log_time, m.publish_time, m.sequence) for _, c, m in reader.iter_messages()]
    assert ("/dfr/incidents", 1_080_000_000, 999, 5) in times
    assert ("/chatter", 1_040_000_000, 1_040_000_000, 5) in times


def test_rosbags_reads_the_file_and_rclpy_gets_the_same_messages_back(tmp_path):
    from rclpy.serialization import deserialize_message
    from rosbags.highlevel import AnyReader
    from std_msgs.msg import String

    from dfr_interfaces.msg import Incident

    path = tmp_path / "run.mcap"
    sent = _write_sample_bag(path)
    with AnyReader([path]) as reader:
        assert {name: (info.msgtype, info.msgcount) for name, info in reader.topics.items()} == {
            "/chatter": ("std_msgs/msg/String", 5), "/dfr/incidents": ("dfr_interfaces/msg/Incident", 5)}
        assert reader.message_count == 10
        got: dict[str, list] = {"/chatter": [], "/dfr/incidents": []}
        raw: dict[str, list] = {"/chatter": [], "/dfr/incidents": []}
        for connection, _, data in reader.messages():
            got[connection.topic].append(reader.deserialize(data, connection.msgtype))
            raw[connection.topic].append(data)
        qos = next(c for c in reader.connections if c.topic == "/chatter").ext.offered_qos_profiles
        assert [q.reliability.name for q in qos] == ["BEST_EFFORT"]
    assert [m.data for m in got["/chatter"]] == [f"hello {i}" for i in range(5)]
    incident = got["/dfr/incidents"][2]
    assert (incident.incident_id, incident.revision, incident.header.stamp.sec, incident.header.frame_id) == (
        "INC-2", 3, 102, "map")
    assert [(c.cad_ref, c.call_time.sec, c.grade) for c in incident.calls] == [("CAD-2-0", 90, "S"),
                                                                              ("CAD-2-1", 91, "S")]
    assert incident.location.latitude == pytest.approx(51.502) and incident.location_uncertainty_m == 20.0
    assert [m.drone_eligible for m in got["/dfr/incidents"]] == [False, True, False, True, False]
    assert [deserialize_message(bytes(d), String) for d in raw["/chatter"]] == sent["/chatter"]
    assert [deserialize_message(bytes(d), Incident) for d in raw["/dfr/incidents"]] == sent["/dfr/incidents"]


def test_an_empty_bag_is_still_a_bag(tmp_path):
    from rosbags.highlevel import AnyReader

    path = tmp_path / "sub" / "empty.mcap"
    bag = McapBagWriter(path, compression="none")
    bag.add_topic("/chatter", "std_msgs/String")
    bag.close()
    bag.close()                                         # a second close does nothing
    with AnyReader([path]) as reader:
        assert reader.message_count == 0 and list(reader.topics) == ["/chatter"]
        assert reader.topics["/chatter"].msgtype == "std_msgs/msg/String"


def test_misuse_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "run.mcap"
    with pytest.raises(ValueError, match="compression"):
        McapBagWriter(path, compression="bz2")
    bag = McapBagWriter(path)
    with pytest.raises(FileExistsError, match="not overwriting"):
        McapBagWriter(path)
    with pytest.raises(MessageDefinitionError):
        bag.add_topic("/x", "std_msgs/msg/NoSuchType")
    assert not bag.has_topic("/x")
    bag.add_topic("/x", "std_msgs/msg/String")
    with pytest.raises(ValueError, match="already"):
        bag.add_topic("/x", "std_msgs/msg/String")
    with pytest.raises(KeyError, match="/y"):
        bag.write("/y", b"", 0)
    with pytest.raises(ValueError, match="negative"):
        bag.write("/x", b"", -1)
    bag.close()
    with pytest.raises(ValueError, match="closed"):
        bag.write("/x", b"", 0)


def test_flushed_messages_are_on_disk_before_close(tmp_path):
    from rclpy.serialization import serialize_message
    from std_msgs.msg import String

    path = tmp_path / "run.mcap"
    bag = McapBagWriter(path, compression="none")
    bag.add_topic("/chatter", "std_msgs/msg/String")
    bag.write("/chatter", serialize_message(String(data="kept after a crash")), 5)
    bag.flush()
    assert b"kept after a crash" in path.read_bytes()
    bag.close()


def test_topic_selection_includes_excludes_and_hides():
    select = TopicSelection(include=[".*"], exclude=[".*/camera/image_raw"])
    assert select("/uav1/perception/image_redacted") and select("/dfr/incidents")
    assert not select("/uav1/camera/image_raw")
    assert select("/uav1/camera/image_raw_extra")                # whole-name match
    assert not select("/uav1/execute_mission/_action/status")    # hidden
    assert TopicSelection([".*"], [], include_hidden=True)("/uav1/execute_mission/_action/status")
    only_dfr = TopicSelection(include=["/dfr/.*"], exclude=[])
    assert only_dfr("/dfr/fleet_status") and not only_dfr("/clock")
    with pytest.raises(ValueError, match="exclude pattern"):
        TopicSelection([".*"], ["("])


def test_rate_limit_keeps_one_message_per_period():
    limit = RateLimit(2.0)
    kept = [t for t in range(0, 3_000_000_000, 100_000_000) if limit.keep(t)]
    assert kept == [0, 500_000_000, 1_000_000_000, 1_500_000_000, 2_000_000_000, 2_500_000_000]
    assert limit.dropped == 30 - 6
    assert limit.keep(100)                                       # time went back: a restarted sim
    unlimited = RateLimit(0.0)
    assert all(unlimited.keep(5) for _ in range(10))


def test_subscription_policy_receives_from_every_publisher():
    policy = subscription_policy([LATCHED, LATCHED], 100)
    assert (policy.reliable, policy.transient_local, policy.depth) == (True, True, 100)
    deep = OfferedQos(depth=1000, durability="transient_local")
    assert subscription_policy([deep], 100).depth == 1000
    mixed = subscription_policy([LATCHED, SENSOR], 100)
    assert (mixed.reliable, mixed.transient_local) == (False, False)
    assert subscription_policy([OfferedQos()], 100).reliable
