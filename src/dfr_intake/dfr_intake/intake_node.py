"""The intake node: the ReportIncident service in, incidents out on /dfr/incidents."""
from __future__ import annotations

import math
import sys

from rclpy.node import Node

from dfr_common.areas import load_areas
from dfr_common.ros import qos
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_common.ros.stamps import to_seconds
from dfr_intake.calls import Call, CallRules, call_problems
from dfr_intake.incident_book import ConflictingCallError, IncidentBook, IncidentRecord
from dfr_intake.launch_policy import LaunchPolicy
from dfr_interfaces.msg import Call as CallMsg
from dfr_interfaces.msg import Incident
from dfr_interfaces.srv import ReportIncident


def call_from_msg(msg: CallMsg) -> Call:
    return Call(cad_ref=msg.cad_ref, call_time_s=to_seconds(msg.call_time), grade=msg.grade,
                category=msg.category, latitude=msg.latitude, longitude=msg.longitude,
                location_uncertainty_m=msg.location_uncertainty_m, address=msg.address,
                description=msg.description, suspect_description=msg.suspect_description)


class IntakeNode(Node):
    def __init__(self, **kwargs):
        super().__init__("intake", **kwargs)
        p = self.params = declare(self, [
            Param("operating_area_file", "", "GeoJSON polygon of the area calls may come from"),
            Param("categories", ["dangerous_driving"], "every call category intake recognises"),
            Param("policy.eligible_grades", ["I"], "grades that may get a drone"),
            Param("policy.eligible_categories", ["dangerous_driving"], "categories that may get a drone"),
            Param("policy.excluded_categories", [], "categories that never get a drone"),
            Param("max_uncertainty_m", 2000.0, "largest location uncertainty accepted", 1.0, 50000.0),
            Param("future_tolerance_s", 5.0, "how far in the future a call time may lie (clock skew)",
                  0.0, 600.0),
            Param("incident_history_depth", 1000, "incidents kept for late subscribers of /dfr/incidents",
                  10, 100000),
        ])
        if not p.operating_area_file:
            raise ValueError("parameter 'operating_area_file' is empty: give the operating area's GeoJSON")
        area = load_areas(p.operating_area_file)[0]
        categories = frozenset(c for c in p.categories if c)
        self.rules = CallRules(categories, area, p.max_uncertainty_m, p.future_tolerance_s)
        self.policy = LaunchPolicy(frozenset(p.policy_eligible_grades),
                                   frozenset(c for c in p.policy_eligible_categories if c),
                                   frozenset(c for c in p.policy_excluded_categories if c))
        unknown = (self.policy.eligible_categories | self.policy.excluded_categories) - categories
        if unknown:
            raise ValueError(f"policy names categories intake does not know: {', '.join(sorted(unknown))}")
        self.book = IncidentBook()
        self.incident_pub = self.create_publisher(Incident, "incidents", qos.incidents(p.incident_history_depth))
        self.create_service(ReportIncident, "report_incident", self._on_report)
        self.get_logger().info(f"intake ready: {len(categories)} categories, operating area '{area.name}'")

    def _on_report(self, request, response):
        call = call_from_msg(request.call)
        now = self.get_clock().now().nanoseconds * 1e-9
        problems = call_problems(call, self.rules, now)
        if problems:
            response.accepted = False
            response.errors = problems
            self.get_logger().warning(f"call {call.cad_ref or '(no ref)'} rejected: {'; '.join(problems)}")
            return response
        try:
            known = self.book.repeat_of(call)
        except ConflictingCallError as err:
            response.accepted = False
            response.errors = [str(err)]
            self.get_logger().warning(f"call {call.cad_ref} rejected: {err}")
            return response
        if known is not None:
            # The same call reported again (a retry): answer as before, publish nothing new.
            return self._answer(response, known, merged=False)
        eligible, reason = self.policy.decide(call)
        record = self.book.open_incident(call, eligible, reason)
        self.incident_pub.publish(self._incident_msg(record, request.call))
        self.get_logger().info(f"{record.incident_id} from call {call.cad_ref}: grade {call.grade} "
                               f"{call.category}; {reason}")
        return self._answer(response, record, merged=False)

    @staticmethod
    def _answer(response, record: IncidentRecord, merged: bool):
        response.accepted = True
        response.incident_id = record.incident_id
        response.merged = merged
        response.drone_eligible = record.drone_eligible
        response.policy_reason = record.policy_reason
        return response

    def _incident_msg(self, record: IncidentRecord, call_msg: CallMsg) -> Incident:
        call = record.first_call
        msg = Incident(incident_id=record.incident_id, revision=record.revision,
                       state=Incident.STATE_OPEN if record.open else Incident.STATE_CLOSED,
                       calls=[call_msg], grade=call.grade, category=call.category,
                       location_uncertainty_m=float(call.location_uncertainty_m),
                       drone_eligible=record.drone_eligible, policy_reason=record.policy_reason)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.location.latitude, msg.location.longitude = call.latitude, call.longitude
        msg.location.altitude = math.nan
        return msg


def main(args=None):
    sys.exit(run(IntakeNode, args))


if __name__ == "__main__":
    main()
