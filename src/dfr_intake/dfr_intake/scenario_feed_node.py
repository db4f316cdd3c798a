"""Replays a scenario's calls into intake's ReportIncident service on sim time, then exits."""
from __future__ import annotations

import sys

from rclpy.node import Node

from dfr_common.node_main import run
from dfr_common.parameters import Param, declare
from dfr_intake.scenario import ScenarioCall, load_scenario
from dfr_interfaces.msg import Call
from dfr_interfaces.srv import ReportIncident


class ScenarioFeedNode(Node):
    def __init__(self, **kwargs):
        super().__init__("scenario_feed", **kwargs)
        p = self.params = declare(self, [
            Param("scenario_file", "", "path of the scenario (config/scenarios/*.yaml)"),
            Param("service", "/dfr/report_incident", "intake's ReportIncident service"),
        ])
        if not p.scenario_file:
            raise ValueError("parameter 'scenario_file' is empty: give the path of a scenario")
        self.scenario = load_scenario(p.scenario_file)
        self.client = self.create_client(ReportIncident, p.service)
        self.next_call = 0
        self.in_flight = 0
        self.start_s: float | None = None
        self.finished = False
        self.create_timer(0.1, self._tick)
        self.get_logger().info(f"scenario '{self.scenario.name}': {len(self.scenario.calls)} calls")

    def _tick(self):
        now = self.get_clock().now()
        if now.nanoseconds == 0 or not self.client.service_is_ready():
            return     # no /clock yet, or intake not up: the scenario starts when both are there
        if self.start_s is None:
            self.start_s = now.nanoseconds * 1e-9
        elapsed = now.nanoseconds * 1e-9 - self.start_s
        calls = self.scenario.calls
        while self.next_call < len(calls) and calls[self.next_call].at_s <= elapsed:
            self._report(calls[self.next_call], now)
            self.next_call += 1
        if self.next_call == len(calls) and self.in_flight == 0:
            self.get_logger().info("every call reported")
            self.finished = True

    def _report(self, call: ScenarioCall, now):
        msg = Call(cad_ref=call.cad_ref, call_time=now.to_msg(), grade=call.grade, category=call.category,
                   latitude=call.latitude, longitude=call.longitude,
                   location_uncertainty_m=call.location_uncertainty_m, address=call.address,
                   description=call.description, suspect_description=call.suspect_description)
        self.in_flight += 1
        self.client.call_async(ReportIncident.Request(call=msg)).add_done_callback(
            lambda future: self._on_answer(call, future))

    def _on_answer(self, call: ScenarioCall, future):
        self.in_flight -= 1
        answer = future.result()
        if answer.accepted:
            self.get_logger().info(f"{call.cad_ref} -> {answer.incident_id}: {answer.policy_reason}")
        else:
            self.get_logger().warning(f"{call.cad_ref} rejected: {'; '.join(answer.errors)}")


def main(args=None):
    sys.exit(run(ScenarioFeedNode, args))


if __name__ == "__main__":
    main()
