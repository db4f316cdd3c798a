"""The audit node keeps each mission's target track and redacted video in the retention store when the
mission ends, on the record; retention later deletes them, on the record, unless the incident is evidence.
Real rclpy: the audit node and a node standing in for a bridge and perception, in one process."""
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from dfr_audit.audit_log import AuditLog, EntryKind, read_entries
from dfr_audit.audit_node import AuditNode
from dfr_audit.retention import RetentionPolicy, apply_retention, mark_evidence
from dfr_audit.verify import verify
from dfr_common.mission import Phase
from dfr_common.ros import qos
from dfr_common.ros.node_main import make_executor
from dfr_common.ros.stamps import from_seconds
from dfr_interfaces.msg import MissionPhase, Target, VehicleStatus

FLEET = Path(__file__).resolve().parent / "fixtures" / "fleet_two_bases.yaml"


def test_each_mission_track_and_video_are_kept_then_deleted_when_due_unless_evidence(tmp_path):
    log_file, store = tmp_path / "audit.sqlite", tmp_path / "recordings"
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        audit = AuditNode(context=context, namespace="dfr", parameter_overrides=[
            Parameter("log_file", value=str(log_file)), Parameter("fleet_file", value=str(FLEET)),
            Parameter("store_dir", value=str(store))])
        stand_in = rclpy.create_node("stand_in", context=context)
        executor = make_executor(context)
        for node in (audit, stand_in):
            executor.add_node(node)
        status = {v: stand_in.create_publisher(VehicleStatus, f"/{v}/vehicle_status", qos.LATCHED_STATE)
                  for v in ("uav1", "uav2")}
        target = {v: stand_in.create_publisher(Target, f"/{v}/perception/target", qos.RELIABLE)
                  for v in ("uav1", "uav2")}
        video = stand_in.create_publisher(Image, "/uav1/perception/image_redacted", qos.SENSOR_DATA)

        def spin_until(done, seconds=10.0):
            end = time.monotonic() + seconds
            while time.monotonic() < end and not done():
                executor.spin_once(timeout_sec=0.05)
            return done()

        def fly(vehicle, mission, incident, sightings):
            status[vehicle].publish(VehicleStatus(vehicle_id=vehicle, mission_id=mission, incident_id=incident,
                                                  phase=MissionPhase(value=Phase.FOLLOW.value)))
            for i in range(sightings):
                msg = Target(vehicle_id=vehicle, mission_id=mission, incident_id=incident,
                             state=Target.STATE_TRACKING, selected_by="incident")
                msg.track.track_id = 4
                msg.track.position.latitude, msg.track.position.longitude = 51.541 + i * 1e-5, -0.1027
                target[vehicle].publish(msg)
            spin_until(lambda: False, 1.0)
            if vehicle == "uav1":        # three frames of its redacted video, a second apart
                for i in range(3):
                    video.publish(Image(header=Header(stamp=from_seconds(100.0 + i)), height=48, width=64,
                                        encoding="rgb8", step=64 * 3, data=bytes(48 * 64 * 3)))
                    spin_until(lambda: False, 0.3)
            status[vehicle].publish(VehicleStatus(vehicle_id=vehicle, phase=MissionPhase(value=Phase.IDLE.value)))

        assert spin_until(lambda: status["uav1"].get_subscription_count() and target["uav2"].get_subscription_count()
                          and video.get_subscription_count())
        fly("uav1", "M00001-INC-1-uav1", "INC-1", 3)
        fly("uav2", "M00002-INC-2-uav2", "INC-2", 2)
        assert spin_until(lambda: len(list(store.glob("*/target_track.json"))) == 2
                          and (store / "M00001-INC-1-uav1" / "footage.avi").exists())
        audit.on_shutdown()
        audit.destroy_node()
        stand_in.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)

    kept = json.loads((store / "M00001-INC-1-uav1" / "target_track.json").read_text())
    assert kept["incident_id"] == "INC-1" and len(kept["points"]) == 3
    recorded = list(read_entries(log_file, kind=EntryKind.FOOTAGE_RECORDED))
    assert sorted((e.detail["artifact"], e.detail["artifact_kind"]) for e in recorded) == [
        ("M00001-INC-1-uav1/footage.avi", "footage"), ("M00001-INC-1-uav1/target_track.json", "track"),
        ("M00002-INC-2-uav2/target_track.json", "track")]

    # INC-2 is evidence; 29 days on, retention deletes INC-1's track and keeps INC-2's, each on the record.
    log = AuditLog(log_file)
    mark_evidence(store, log, "INC-2", actor="inspector", reason="charging decision pending", ros_time_s=0.0)
    result = apply_retention(store, log, datetime.now(timezone.utc) + timedelta(days=29), RetentionPolicy(28.0))
    log.close()
    assert result.ok and sorted(d.relative for d in result.deleted) == ["M00001-INC-1-uav1/footage.avi",
                                                                        "M00001-INC-1-uav1/target_track.json"]
    assert not list((store / "M00001-INC-1-uav1").glob("*"))
    assert (store / "M00002-INC-2-uav2" / "target_track.json").exists()
    assert [e.mission_id for e in read_entries(log_file, kind=EntryKind.FOOTAGE_DELETED)] == ["M00001-INC-1-uav1"] * 2
    assert verify(log_file).ok
