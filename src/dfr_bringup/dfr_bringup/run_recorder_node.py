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
import sys
import time
from pathlib import Path

from rclpy.node import Node

from dfr_bringup.run_record import IncidentEntry, RunRecord
from dfr_common.fleet import load_fleet
from dfr_common.ros import qos
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_common.ros.stamps import to_seconds
from dfr_intake.scenario import load_scenario
from dfr_interfaces.msg import Incident, ScenarioProgress, VehicleStatus


class RunRecorderNode(Node):
    def __init__(self, **kwargs):
        super().__init__("run_recorder", **kwargs)
        p = self.params = declare(self, [
            Param("fleet_file", "", "path of the fleet file"),
            Param("scenario_file", "", "path of the scenario being run; empty: a live shift, kept until stopped"),
            Param("output_dir", "", "directory for metrics.json; empty: write nothing"),
            Param("settle_s", 5.0, "sim time after the feed is done before the run may end", 0.0, 600.0),
            Param("incident_history_depth", 1000, "depth of the latched incident subscription", 10, 100000),
            Param("write_period_s", 60.0, "live shift: how often metrics.json is rewritten", 1.0, 3600.0),
        ])
        self.fleet = load_fleet(p.fleet_file)
        self.scenario = load_scenario(p.scenario_file) if p.scenario_file else None
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
        self.create_timer(1.0, self._check_done)

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_incident(self, msg: Incident):
        call_time = to_seconds(msg.calls[0].call_time) if msg.calls else to_seconds(msg.header.stamp)
        self.record.on_incident(IncidentEntry(msg.incident_id, call_time, msg.grade, msg.category, len(msg.calls),
                                              msg.drone_eligible, msg.policy_reason))

    def _on_progress(self, msg: ScenarioProgress):
        self.progress = msg
        if msg.done and self.feed_done_s is None:
            self.feed_done_s = self._now()

    def _on_status(self, msg: VehicleStatus):
        self.record.on_vehicle(to_seconds(msg.header.stamp), msg.vehicle_id, msg.phase.value, msg.armed,
                               msg.incident_id)

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
                "sim_duration_s": sim, "wall_duration_s": wall,
                "sim_real_time_factor": sim / wall if wall > 0 else None, "complete": complete}

    def _write_metrics(self, metrics: dict, announce: bool = False) -> None:
        if not self.params.output_dir:
            return
        path = Path(self.params.output_dir) / "metrics.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics, indent=2) + "\n")
        if announce:
            self.get_logger().info(f"metrics written to {path}")

    def on_shutdown(self):
        """A live shift's record is written when the node is stopped."""
        if self.scenario is None and not self.finished:
            self._write_metrics(self._metrics(complete=False), announce=True)

    def _finish(self, code: int, why: str):
        metrics = self._metrics(complete=code == 0)
        self._write_metrics(metrics, announce=True)
        rt = metrics["response_time_s"]
        self.get_logger().info(
            f"{why}: {metrics['incidents_attended']}/{metrics['incidents_eligible']} eligible incidents "
            f"attended, {metrics['incidents_refused_by_policy']} refused by policy; response p50 "
            f"{_seconds(rt['p50'])}, max {_seconds(rt['max'])}; "
            f"{metrics['flights_without_incident']} flights without an incident")
        self.exit_code = code
        self.finished = True


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.0f} s"


def main(args=None):
    sys.exit(run(RunRecorderNode, args))


if __name__ == "__main__":
    main()
