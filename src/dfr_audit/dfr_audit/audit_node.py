"""The audit node: the graph's decisions, as they are published, into the hash-chained log.

It listens to intake's incidents (calls, policy decisions, opening and closing), every
vehicle's status (launches and their flight kind, phases, mission results, pilot takeovers,
failsafes), perception's targets (who chose which track), dispatch's assignments (the drone
chosen, why, and the others weighed) and the flight rules' decisions of dispatch and the
bridges (refusals, maintenance and test flights allowed), and appends one entry per decision to
the SQLite audit log at `log_file` (dfr_audit.recorder). `python -m dfr_audit.verify`
checks the file; `python -m dfr_audit.transparency_report` summarises it.

With `store_dir`, each mission's target track and redacted video (perception's
<vehicle>/perception/image_redacted: everything but the target blurred) go into the retention
store when the mission ends (dfr_audit.mission_recordings), each logged as footage_recorded;
`python -m dfr_audit.retention` deletes them, and logs that, once the retention period has passed
unless the incident is evidence.
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from sensor_msgs.msg import Image

from dfr_audit.audit_log import AuditLog, read_key_file
from dfr_audit.mission_recordings import (
    TRACK_FILE,
    FinishedFootage,
    FinishedTrack,
    MissionFootage,
    MissionTracks,
    TrackPoint,
)
from dfr_audit.recorder import (
    AlternativeSeen,
    AssignmentSeen,
    AuditRecorder,
    CallSeen,
    IncidentSeen,
    RuleDecisionSeen,
    StatusSeen,
)
from dfr_audit.retention import ArtifactMeta, RetentionError, record_artifact
from dfr_audit.rules_ros import (
    ASSIGNMENT_DECISIONS,
    ASSIGNMENT_DECISIONS_QOS,
    FLIGHT_RULE_DECISIONS,
    FLIGHT_RULE_DECISIONS_QOS,
)
from dfr_common.fleet import fleet_and_vehicle_ids
from dfr_common.ros import qos
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_common.ros.stamps import to_seconds
from dfr_interfaces.msg import AssignmentDecision, FlightRuleDecision, Incident, Target, VehicleStatus


class AuditNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("audit", **kwargs)
        p = self.params = declare(self, [
            Param("log_file", "", "the SQLite audit log; created if missing, continued if not"),
            Param("key_file", "", "a file holding the HMAC key of a keyed log; empty: SHA-256 only"),
            Param("fleet_file", "", "path of the fleet file (config/fleet/*.yaml)"),
            Param("vehicles", [], "vehicle ids to record; empty: every vehicle of the fleet"),
            Param("incident_history_depth", 1000, "depth of the latched incident subscription", 10, 100000),
            Param("store_dir", "", "the retention store each mission's target track and redacted video go into "
                  "when the mission ends (python -m dfr_audit.retention deletes them when due); empty: neither is "
                  "kept"),
            Param("footage_rate_hz", 2.0, "images per second of each mission's redacted video kept", 0.1, 30.0),
        ])
        if not p.log_file:
            raise ValueError("parameter 'log_file' is empty: the audit log needs a file")
        _, vehicle_ids = fleet_and_vehicle_ids(p.fleet_file, p.vehicles)
        Path(p.log_file).parent.mkdir(parents=True, exist_ok=True)
        self.log = AuditLog(p.log_file, key=read_key_file(p.key_file) if p.key_file else None)
        self.recorder = AuditRecorder(self.log)
        self._incident_of: dict[str, str] = {}          # vehicle -> the incident of its current mission
        # What each mission records, only where there is a store to keep it in.
        self.tracks = MissionTracks() if p.store_dir else None
        self.footage = MissionFootage(p.footage_rate_hz) if p.store_dir else None
        self._recordings = [r for r in (self.tracks, self.footage) if r is not None]
        if p.store_dir:
            Path(p.store_dir).mkdir(parents=True, exist_ok=True)
        self.create_subscription(Incident, "incidents", self._on_incident, qos.incidents(p.incident_history_depth))
        self.create_subscription(FlightRuleDecision, FLIGHT_RULE_DECISIONS, self._on_rule_decision,
                                 FLIGHT_RULE_DECISIONS_QOS)
        self.create_subscription(AssignmentDecision, ASSIGNMENT_DECISIONS, self._on_assignment,
                                 ASSIGNMENT_DECISIONS_QOS)
        for vehicle_id in vehicle_ids:
            self.create_subscription(VehicleStatus, f"/{vehicle_id}/vehicle_status", self._on_status,
                                     qos.LATCHED_STATE)
            self.create_subscription(Target, f"/{vehicle_id}/perception/target", self._on_target, qos.RELIABLE)
            if self.footage is not None:
                self.create_subscription(Image, f"/{vehicle_id}/perception/image_redacted",
                                         lambda m, v=vehicle_id: self._on_redacted(v, m), qos.LATEST_IMAGE)
        self.get_logger().info(f"audit log {p.log_file} ({len(self.log)} entries so far)")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _guard(self, what: str, write) -> None:
        try:
            write()
        except (ValueError, RuntimeError, OSError) as err:      # a bad value in a message, or the disk
            self.get_logger().error(f"audit: could not record {what}: {err}")

    def _on_incident(self, msg: Incident):
        seen = IncidentSeen(
            msg.incident_id, msg.revision, msg.state == Incident.STATE_OPEN, msg.grade, msg.category,
            msg.drone_eligible, msg.policy_reason,
            tuple(CallSeen(c.cad_ref, c.grade, c.category, to_seconds(c.call_time)) for c in msg.calls))
        self._guard(f"incident {msg.incident_id}", lambda: self.recorder.on_incident(self._now(), seen))

    def _on_status(self, msg: VehicleStatus):
        self._incident_of[msg.vehicle_id] = msg.incident_id
        seen = StatusSeen(msg.vehicle_id, msg.mission_id, msg.incident_id, msg.phase.value, msg.detail,
                          msg.flight_kind, msg.armed, msg.connected)
        self._guard(f"status of {msg.vehicle_id}", lambda: self.recorder.on_status(self._now(), seen))
        for recordings in self._recordings:
            self._keep_recordings(recordings.on_mission(msg.vehicle_id, msg.mission_id))

    def _on_redacted(self, vehicle_id: str, msg: Image):
        """A frame of the mission's video: only what perception publishes, with everything but the target
        blurred; the raw camera is never kept."""
        mission = self.footage.current_mission(vehicle_id)
        if not mission or msg.encoding not in ("rgb8", "mono8") or msg.height * msg.step != len(msg.data):
            return
        channels = 3 if msg.encoding == "rgb8" else 1
        image = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)[:, :msg.width * channels]
        image = image.reshape(msg.height, msg.width, channels) if channels == 3 else image
        incident = self._incident_of.get(vehicle_id, "")
        self._guard(f"footage of {mission}", lambda: self.footage.add(
            vehicle_id, mission, incident, to_seconds(msg.header.stamp), image))

    def _keep_recordings(self, finished: list) -> None:
        for recording in finished:
            if isinstance(recording, FinishedTrack):
                with tempfile.TemporaryDirectory() as scratch:
                    path = Path(scratch) / TRACK_FILE
                    path.write_text(json.dumps(recording.as_json()))
                    self._keep(recording, path, "track", f"{len(recording.points)} target sightings")
            elif isinstance(recording, FinishedFootage):
                self._keep(recording, recording.path, "footage", f"{recording.frames} frames of redacted video")

    def _keep(self, recording: FinishedTrack | FinishedFootage, path: Path, kind: str, what: str) -> None:
        """A mission's recording into the retention store, and footage_recorded on the log."""
        meta = ArtifactMeta(recording.mission_id, recording.vehicle_id, kind, datetime.now(timezone.utc),
                            recording.incident_id)
        try:
            record_artifact(self.params.store_dir, self.log, path, meta, ros_time_s=self._now(), actor="audit")
        except (ValueError, RetentionError, OSError) as err:
            self.get_logger().error(f"audit: the {kind} of {recording.mission_id} was not kept: {err}")
            return
        self.get_logger().info(f"{recording.mission_id}: {what} in the retention store")

    def _on_rule_decision(self, msg: FlightRuleDecision):
        seen = RuleDecisionSeen(msg.decided_by, msg.vehicle_id, msg.mission_id, msg.incident_id, msg.flight_kind,
                                msg.allowed, msg.rule, msg.reason, to_seconds(msg.header.stamp))
        self._guard(f"flight rule decision {msg.rule}", lambda: self.recorder.on_rule_decision(self._now(), seen))

    def _on_assignment(self, msg: AssignmentDecision):
        seen = AssignmentSeen(msg.incident_id, msg.vehicle_id, msg.mission_id, msg.policy, msg.reason,
                              float(msg.eta_s), bool(msg.from_the_air),
                              tuple(AlternativeSeen(a.vehicle_id, float(a.eta_s) if math.isfinite(a.eta_s) else None,
                                                    a.reason) for a in msg.alternatives))
        self._guard(f"assignment {msg.mission_id}", lambda: self.recorder.on_assignment(self._now(), seen))

    def _on_target(self, msg: Target):
        if msg.state == Target.STATE_NONE:
            return
        if msg.state == Target.STATE_TRACKING and self.tracks is not None:
            self.tracks.add(msg.vehicle_id, msg.mission_id, msg.incident_id, TrackPoint(
                to_seconds(msg.header.stamp), int(msg.track.track_id), float(msg.track.position.latitude),
                float(msg.track.position.longitude)))
        self._guard(f"target of {msg.vehicle_id}", lambda: self.recorder.on_target(
            self._now(), msg.vehicle_id, msg.mission_id, msg.incident_id, int(msg.track.track_id), msg.selected_by,
            msg.reason))

    def on_shutdown(self):
        for recordings in self._recordings:
            self._keep_recordings(recordings.finish_all())
        if self.footage is not None:
            self.footage.close()
        self.log.close()


def main(args=None):
    sys.exit(run(AuditNode, args))


if __name__ == "__main__":
    main()
