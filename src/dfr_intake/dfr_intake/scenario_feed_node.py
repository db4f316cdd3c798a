"""Replays a scenario's calls into intake's ReportIncident service on sim time.

Progress goes out latched on /dfr/scenario_progress; the run recorder ends the run
once it says every call has been made and answered.
"""
from __future__ import annotations

import sys

from dfr_common.ros import qos
from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_intake.call_messages import call_to_msg
from dfr_intake.scenario import ScenarioCall, load_scenario
from dfr_interfaces.msg import Call, ScenarioProgress
from dfr_interfaces.srv import ReportIncident


class ScenarioFeedNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("scenario_feed", **kwargs)
        p = self.params = declare(self, [
            Param("scenario_file", "", "path of the scenario (config/scenarios/*.yaml)"),
            Param("service", "/dfr/report_incident", "intake's ReportIncident service"),
            Param("answer_timeout_s", 5.0, "time to wait for intake's answer before asking again", 0.5, 120.0),
        ])
        if not p.scenario_file:
            raise ValueError("parameter 'scenario_file' is empty: give the path of a scenario")
        self.scenario = load_scenario(p.scenario_file)
        self.client = self.create_client(ReportIncident, p.service)
        self.progress_pub = self.create_publisher(ScenarioProgress, "scenario_progress", qos.LATCHED_STATE)
        self.progress = ScenarioProgress(scenario=self.scenario.name, calls_total=len(self.scenario.calls))
        self.next_call = 0
        self.in_flight: dict[str, tuple[ScenarioCall, Call, float]] = {}   # cad_ref -> call, message, sent
        self.start_s: float | None = None
        self.done = False     # stays up once done, so the latched progress stays available
        self.create_timer(0.1, self._tick)
        self.get_logger().info(f"scenario '{self.scenario.name}': {len(self.scenario.calls)} calls")

    def _tick(self):
        if self.done:
            return
        now = self.get_clock().now()
        if now.nanoseconds == 0:
            return     # no /clock yet: the scenario starts with sim time
        if self.start_s is None:
            self.start_s = now.nanoseconds * 1e-9
        elapsed = now.nanoseconds * 1e-9 - self.start_s
        calls = self.scenario.calls
        while self.next_call < len(calls) and calls[self.next_call].at_s <= elapsed:
            self._report(calls[self.next_call], now)
            self.next_call += 1
        self._ask_again(now.nanoseconds * 1e-9)
        if self.next_call == len(calls) and not self.in_flight:
            self.get_logger().info(f"every call reported: {self.progress.calls_accepted} accepted, "
                                   f"{self.progress.calls_rejected} rejected")
            self._publish_progress(done=True)
            self.done = True

    def _report(self, call: ScenarioCall, now):
        msg = call_to_msg(call.as_call(now.nanoseconds * 1e-9))
        self.progress.calls_reported += 1
        self._send(call, msg, now.nanoseconds * 1e-9)

    def _send(self, call: ScenarioCall, msg: Call, now_s: float):
        self.in_flight[call.cad_ref] = (call, msg, now_s)
        self.client.call_async(ReportIncident.Request(call=msg)).add_done_callback(
            lambda future: self._on_answer(call, future))

    def _ask_again(self, now_s: float):
        """An unanswered call is reported again: intake answers a repeated CAD reference as before."""
        for call, msg, sent in list(self.in_flight.values()):
            if now_s - sent > self.params.answer_timeout_s:
                self.get_logger().warning(f"{call.cad_ref}: no answer from intake in "
                                          f"{self.params.answer_timeout_s:.0f} s; asking again")
                self._send(call, msg, now_s)

    def _on_answer(self, call: ScenarioCall, future):
        if self.in_flight.pop(call.cad_ref, None) is None:
            return     # answered already: this is the answer to a repeated request
        answer = future.result()
        if answer.accepted:
            self.progress.calls_accepted += 1
            self.get_logger().info(f"{call.cad_ref} -> {answer.incident_id}: {answer.policy_reason}")
        else:
            self.progress.calls_rejected += 1
            self.get_logger().warning(f"{call.cad_ref} rejected: {'; '.join(answer.errors)}")
        self._publish_progress(done=False)

    def _publish_progress(self, done: bool):
        self.progress.done = done
        self.progress.header.stamp = self.get_clock().now().to_msg()
        self.progress_pub.publish(self.progress)


def main(args=None):
    sys.exit(run(ScenarioFeedNode, args))


if __name__ == "__main__":
    main()
