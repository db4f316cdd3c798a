"""Keeps the run's record, says when the scenario is over, and writes metrics.json.

The runner and the launch files end the whole graph when this node exits: it exits
once the scenario feed has made every call, every eligible incident has been
attended and every drone is back on the ground, or when the scenario's time is up
(exit code 1).

Without a scenario (a live shift on real airframes, calls from intake's
ReportIncident service) it never ends the run itself: it rewrites metrics.json
every `write_period_s` and a last time when it is stopped.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

from rclpy.clock import Clock, ClockType

from dfr_bringup.run_record import (
    WATCHING_PHASES,
    ChaseScore,
    FlightPaths,
    IncidentEntry,
    RunRecord,
    response_lower_bound_s,
)
from dfr_common import px4
from dfr_common.camera_geometry import gimbal_to_world_rotation
from dfr_common.config_file import ros_parameters
from dfr_common.fleet import load_fleet
from dfr_common.ros import qos
from dfr_common.ros.lazy_subscriptions import LazySubscriptions
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_common.ros.stamps import to_seconds
from dfr_dispatch.assignment import AssignmentConfig
from dfr_follow.follow_controller import target_in_view
from dfr_intake.scenario import load_scenario
from dfr_interfaces.msg import GroundTruthActors, GroundTruthVehicles, Incident, ScenarioProgress, Target, VehicleStatus
from dfr_sim.camera_renderer import CameraModel


class RunRecorderNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("run_recorder", **kwargs)
        p = self.params = declare(self, [
            Param("fleet_file", "", "path of the fleet file"),
            Param("scenario_file", "", "path of the scenario being run; empty: a live shift, kept until stopped"),
            Param("output_dir", "", "directory for metrics.json; empty: write nothing"),
            Param("settle_s", 5.0, "sim time after the feed is done before the run may end", 0.0, 600.0),
            Param("incident_history_depth", 1000, "depth of the latched incident subscription", 10, 100000),
            Param("write_period_s", 60.0, "live shift: how often metrics.json is rewritten", 1.0, 3600.0),
            Param("dispatch_params_file", "", "dispatch's parameter file: its cruise speed and altitude and the "
                  "stand-off radius give each incident's response lower bound; empty: the lower bound is not "
                  "reported"),
            Param("bridge_params_file", "", "the bridges' parameter file: the climb rate they fly, for the lower "
                  "bound's climb (empty: dispatch's planning figure, which allows for a dock opening)"),
            Param("path_period_s", 2.0, "sim seconds between the flight path samples kept for the report",
                  0.1, 60.0),
            Param("progress_period_s", 0.5, "wall seconds between writes of progress.json (the live display)",
                  0.1, 60.0),
            Param("camera_width", 640, "the drones' camera, for scoring the chase against ground truth", 2, 8192),
            Param("camera_height", 480, "the drones' camera height, pixels", 2, 8192),
            Param("camera_horizontal_fov_deg", 80.0, "the drones' camera field of view", 1.0, 179.0),
            Param("chase_sample_period_s", 0.5, "sim seconds between the chase's in-view samples", 0.05, 60.0),
            Param("target_match_radius_m", 15.0, "a drone's tracked target this close to the suspect (ground truth) "
                  "is the suspect, for the chase's score: geolocation from 40 m errs by a few metres", 0.5, 100.0),
            Param("write_report", True, "write report.md, map.png and response_times.png when the run ends"),
            Param("config_dir", "", "the project's config directory, for the report's map (airspace, bases); "
                  "empty: the fleet file's grandparent"),
        ])
        self.fleet = load_fleet(p.fleet_file)
        self.frame = self.fleet.site_frame()
        self.scenario = load_scenario(p.scenario_file) if p.scenario_file else None
        self.bases_xy = [self.frame.to_enu(b.latitude, b.longitude)[:2] for b in self.fleet.bases.values()]
        self.cruise_speed_m_s, self.launch_s, self.standoff_m = None, None, 0.0
        if p.dispatch_params_file:
            dispatch = ros_parameters(p.dispatch_params_file, "/dfr/dispatch")
            figures = AssignmentConfig(cruise_speed_m_s=float(dispatch.get("cruise_speed_m_s", 15.0)),
                                       cruise_altitude_m=float(dispatch.get("cruise_altitude_m", 60.0)))
            self.cruise_speed_m_s, self.launch_s = figures.cruise_speed_m_s, figures.launch_s
            self.standoff_m = float(dispatch.get("standoff_radius_m", 0.0))
            if p.bridge_params_file:
                # Physical: nothing for a dock, the climb at the rate the bridges fly it.
                bridge = ros_parameters(p.bridge_params_file, "/**/bridge")
                self.launch_s = figures.cruise_altitude_m / float(bridge.get("climb_speed_m_s", figures.climb_rate_m_s))
        self.paths = FlightPaths(p.path_period_s)
        self.chase = ChaseScore()
        self.targets: dict[str, Target] = {}               # vehicle -> its latest target
        # cad_ref -> the simulator actor the call is about (a scenario's evaluation only)
        self.suspects = {c.cad_ref: c.suspect_actor for c in (self.scenario.calls if self.scenario else ())
                         if c.suspect_actor}
        self.chase_incidents: dict[str, str] = {}        # incident id -> suspect actor id
        self.camera = CameraModel(p.camera_width, p.camera_height, math.radians(p.camera_horizontal_fov_deg))
        self.actors: dict[str, tuple[float, float]] = {}
        self.actors_stamp_s = -math.inf       # the instant of the ground truth in self.actors
        self.last_chase_sample_s = -math.inf
        self.last_progress_wall = -math.inf
        self.last_write_s: float | None = None
        self.record = RunRecord()
        self.finished = False
        self.exit_code = 0
        self.start_sim_s: float | None = None
        self.progress: ScenarioProgress | None = None
        self.feed_done_s: float | None = None
        self.start_wall: float | None = None   # for the real-time factor only: a measurement, not behaviour
        self.create_subscription(Incident, "incidents", self._on_incident, qos.incidents(p.incident_history_depth))
        self.create_subscription(ScenarioProgress, "scenario_progress", self._on_progress, qos.LATCHED_STATE)
        for vehicle_id in self.fleet.vehicles:
            self.create_subscription(VehicleStatus, f"/{vehicle_id}/vehicle_status", self._on_status,
                                     qos.LATCHED_STATE)
            self.create_subscription(Target, f"/{vehicle_id}/perception/target", self._on_target, qos.RELIABLE)
        # Ground truth only while a drone watches a chase incident: the actors cost the simulator and us CPU.
        self._truth = LazySubscriptions(self, [
            (GroundTruthActors, "/sim/ground_truth/actors", self._on_actors, qos.RELIABLE),
            (GroundTruthVehicles, "/sim/ground_truth/vehicles", self._on_truth_vehicles, qos.RELIABLE)],
            self.actors.clear)
        self.create_timer(1.0, self._check_done)
        # On the wall clock: the display is read by a person, whatever the sim speed (a sim-time timer would
        # fire ten times as often at 10 x only to find it is not yet time).
        self.create_timer(self.params.progress_period_s, self._write_progress,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_incident(self, msg: Incident):
        call_time = to_seconds(msg.calls[0].call_time) if msg.calls else to_seconds(msg.header.stamp)
        lat, lon = float(msg.location.latitude), float(msg.location.longitude)
        lower_bound = None
        if self.cruise_speed_m_s and math.isfinite(lat) and math.isfinite(lon):
            lower_bound = response_lower_bound_s(self.frame.to_enu(lat, lon)[:2], self.bases_xy,
                                                 self.cruise_speed_m_s, self.launch_s, self.standoff_m)
        self.record.on_incident(IncidentEntry(msg.incident_id, call_time, msg.grade, msg.category, len(msg.calls),
                                              msg.drone_eligible, msg.policy_reason, lat, lon,
                                              msg.state == Incident.STATE_CLOSED, lower_bound))
        for call in msg.calls:
            if call.cad_ref in self.suspects:
                self.chase_incidents[msg.incident_id] = self.suspects[call.cad_ref]

    def _on_target(self, msg: Target):
        self.targets[msg.vehicle_id] = msg
        if msg.state == Target.STATE_TRACKING:
            self.paths.add_target(self._now(), msg.vehicle_id, float(msg.track.position.latitude),
                                  float(msg.track.position.longitude), int(msg.track.track_id))

    def _on_actors(self, msg: GroundTruthActors):
        self.actors_stamp_s = to_seconds(msg.header.stamp)
        wanted = set(self.chase_incidents.values())
        for actor in msg.actors:
            if actor.id in wanted:
                self.actors[actor.id] = self.frame.to_enu(actor.position.latitude, actor.position.longitude)[:2]

    def _on_truth_vehicles(self, msg: GroundTruthVehicles):
        """Sample whether each drone watching a chase incident has its suspect in view (ground truth)."""
        now = self._now()
        if now - self.last_chase_sample_s < self.params.chase_sample_period_s:
            return
        self.last_chase_sample_s = now
        for truth in msg.vehicles:
            track = self.record.vehicles.get(truth.vehicle_id)
            if track is None or track.phase not in WATCHING_PHASES:
                continue
            suspect = self.chase_incidents.get(track.incident_id)
            # The suspect where the simulator last said: a sample against a stale place (the actors' stream
            # late or stalled) would score the drone against where he is no longer; none is taken then.
            if suspect is None or suspect not in self.actors or \
                    abs(to_seconds(msg.header.stamp) - self.actors_stamp_s) > self.params.chase_sample_period_s:
                continue
            east, north, _ = self.frame.to_enu(truth.position.latitude, truth.position.longitude)
            rotation = gimbal_to_world_rotation(truth.heading, truth.gimbal_pitch_deg, truth.gimbal_roll_deg,
                                                truth.gimbal_yaw_deg)
            seen = target_in_view(self.camera.k, self.camera.width, self.camera.height,
                                  (east, north, truth.height_above_ground_m), rotation, self.actors[suspect])
            self.chase.add(truth.vehicle_id, bool(seen), self._on_suspect(truth.vehicle_id, now, self.actors[suspect]))

    def _on_suspect(self, vehicle_id: str, now: float, suspect_xy) -> bool:
        """Whether the drone's target, seen within the last sample period and carried on by its velocity to
        now, is where the suspect is."""
        target = self.targets.get(vehicle_id)
        age = now - to_seconds(target.header.stamp) if target is not None else math.inf
        if target is None or target.state != Target.STATE_TRACKING \
                or not 0.0 <= age <= self.params.chase_sample_period_s:
            return False
        east, north, _ = self.frame.to_enu(target.track.position.latitude, target.track.position.longitude)
        velocity = target.track.velocity
        if math.isfinite(velocity.x) and math.isfinite(velocity.y):
            east, north = east + velocity.x * age, north + velocity.y * age
        return math.hypot(east - suspect_xy[0], north - suspect_xy[1]) <= self.params.target_match_radius_m

    def _on_progress(self, msg: ScenarioProgress):
        self.progress = msg
        if msg.done and self.feed_done_s is None:
            self.feed_done_s = self._now()

    def _on_status(self, msg: VehicleStatus):
        stamp = to_seconds(msg.header.stamp)
        self.record.on_vehicle(stamp, msg.vehicle_id, msg.phase.value, msg.armed, msg.incident_id, msg.connected,
                               on_ground=msg.landed_state == px4.LANDED_STATE_ON_GROUND)
        self._truth.want(any(track.phase in WATCHING_PHASES and track.incident_id in self.chase_incidents
                             for track in self.record.vehicles.values()))
        if msg.armed:
            self.paths.add_vehicle(stamp, msg.vehicle_id, float(msg.position.latitude),
                                   float(msg.position.longitude), float(msg.altitude_rel_m), msg.phase.value,
                                   msg.incident_id)

    def _write_progress(self):
        """progress.json for the runner's live display: rewritten at most every progress_period_s of wall time."""
        wall = time.monotonic()
        if not self.params.output_dir or wall - self.last_progress_wall < self.params.progress_period_s:
            return
        self.last_progress_wall = wall
        metrics = self.record.metrics()
        progress = self.progress or ScenarioProgress()
        elapsed = self._now() - (self.start_sim_s or self._now())
        state = {"sim_time_s": elapsed, "duration_s": self.scenario.duration_s if self.scenario else None,
                 "calls_received": progress.calls_reported, "calls_total": progress.calls_total,
                 "airborne": self.record.airborne(), "vehicles": len(self.fleet.vehicles),
                 "open_incidents": self.record.open_incidents(),
                 "incidents_eligible": metrics["incidents_eligible"],
                 "incidents_refused_by_policy": metrics["incidents_refused_by_policy"],
                 "incidents_attended": metrics["incidents_attended"], "response_time_s": metrics["response_time_s"],
                 "target_in_view_fraction": self.chase.fraction,
                 "target_on_suspect_fraction": self.chase.on_suspect_fraction,
                 "flights_without_incident": metrics["flights_without_incident"],
                 "real_time_factor": elapsed / (wall - self.start_wall) if self.start_wall and wall > self.start_wall
                 else None, "finished": self.finished}
        _write_json_atomically(Path(self.params.output_dir) / "progress.json", state)

    def _check_done(self):
        now = self._now()
        if now <= 0.0:
            return
        if self.start_sim_s is None:
            self.start_sim_s, self.start_wall = now, time.monotonic()
        elapsed = now - self.start_sim_s
        if self.scenario is None:
            if self.last_write_s is None or now - self.last_write_s >= self.params.write_period_s:
                self.last_write_s = now
                self._write_metrics(self._metrics(complete=False))
            return
        calls_done = self.feed_done_s is not None and now - self.feed_done_s >= self.params.settle_s
        if calls_done and not self.record.unattended() and self.record.fleet_idle():
            self._finish(0, "scenario complete")
        elif elapsed >= self.scenario.duration_s:
            self._finish(1, f"scenario time of {self.scenario.duration_s:.0f} s is up; unattended: "
                            f"{', '.join(self.record.unattended()) or 'none'}")

    def _metrics(self, complete: bool) -> dict:
        wall = time.monotonic() - (self.start_wall or time.monotonic())
        sim = self._now() - (self.start_sim_s or 0.0)
        progress = self.progress or ScenarioProgress()
        return {"scenario": self.scenario.name if self.scenario else "", "calls_received": progress.calls_reported,
                "calls_rejected": progress.calls_rejected, **self.record.metrics(),
                "target_in_view_fraction": self.chase.fraction,
                "target_on_suspect_fraction": self.chase.on_suspect_fraction, "chase_samples": self.chase.samples,
                "sim_duration_s": sim, "wall_duration_s": wall,
                "sim_real_time_factor": sim / wall if wall > 0 else None, "complete": complete}

    def _write_metrics(self, metrics: dict, announce: bool = False) -> None:
        if not self.params.output_dir:
            return
        path = Path(self.params.output_dir) / "metrics.json"
        _write_json_atomically(path, metrics)
        _write_json_atomically(path.with_name("flight_paths.json"), self.paths.as_json())
        if announce:
            self.get_logger().info(f"metrics written to {path}")

    def on_shutdown(self):
        """A live shift's record, or an interrupted scenario's (complete: false), is written when the node
        is stopped: what was recorded is never lost."""
        if not self.finished:
            self._write_metrics(self._metrics(complete=False), announce=True)
            if self.scenario is not None and self.params.write_report and self.params.output_dir:
                self._write_report()

    def _finish(self, code: int, why: str):
        metrics = self._metrics(complete=code == 0)
        self._write_metrics(metrics, announce=True)
        self.finished = True
        self.last_progress_wall = -math.inf
        self._write_progress()
        if self.params.write_report and self.params.output_dir:
            self._write_report()
        rt = metrics["response_time_s"]
        self.get_logger().info(
            f"{why}: {metrics['incidents_attended']}/{metrics['incidents_eligible']} eligible incidents "
            f"attended, {metrics['incidents_refused_by_policy']} refused by policy; response p50 "
            f"{_seconds(rt['p50'])}, max {_seconds(rt['max'])}; "
            f"{metrics['flights_without_incident']} flights without an incident")
        self.exit_code = code

    def _write_report(self) -> None:
        from dfr_bringup.run_report import write_report
        config_dir = Path(self.params.config_dir) if self.params.config_dir else Path(self.params.fleet_file).parents[1]
        try:
            path = write_report(Path(self.params.output_dir), config_dir)
        except (OSError, ValueError) as err:
            # The record itself (metrics, bag, audit log) is complete; only its summary failed.
            self.get_logger().error(f"the run report could not be written: {err}")
        else:
            self.get_logger().info(f"report written to {path}")


def _write_json_atomically(path: Path, data: dict) -> None:
    """Readers (the live display, a user's tail) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.0f} s"


def main(args=None):
    sys.exit(run(RunRecorderNode, args))


if __name__ == "__main__":
    main()
