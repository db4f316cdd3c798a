"""The intake node: calls in through ReportIncident, incidents out on /dfr/incidents.

Every accepted call is journalled (SQLite, synced) before it is acknowledged or
published; at start-up the journal is replayed and the open incidents published
again, so a restart loses and duplicates nothing. Calls about the same event merge
into one incident; closing goes through here too (CloseIncident), so the journal and
the topic always tell the same story.

A managed (lifecycle) node, because its journal is a resource that can fail apart from
the process: configure checks the parameters and opens and replays the journal (a
journal that cannot be read leaves it unconfigured, saying why, to be configured again
once the disk is mended: `ros2 lifecycle set /dfr/intake configure`); activate serves
ReportIncident and CloseIncident and publishes the open incidents again; deactivate stops
serving, so callers retry while the journal is moved or checked, and nothing they were
told is lost; cleanup closes the journal. With `autostart` (the default) it configures and
activates itself at start, and a failed configure ends the process with its reason.
"""
from __future__ import annotations

import math
import sys

from rclpy.lifecycle import TransitionCallbackReturn

from dfr_common.areas import load_areas
from dfr_common.ros import qos
from dfr_common.ros.lean_node import LeanLifecycleNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_intake.call_messages import call_from_msg, call_to_msg
from dfr_intake.calls import CallRules, call_problems
from dfr_intake.incident_book import ConflictingCallError, IncidentRecord, MergeRules
from dfr_intake.journal import Journal, JournalError
from dfr_intake.launch_policy import LaunchPolicy
from dfr_interfaces.msg import Incident
from dfr_interfaces.srv import CloseIncident, ReportIncident


class IntakeNode(LeanLifecycleNode):
    def __init__(self, **kwargs):
        super().__init__("intake", **kwargs)
        self.params = declare(self, [
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
            Param("journal_file", "", "SQLite journal of every accepted call and closed incident; replayed at "
                  "start-up. Required: an acknowledged incident must survive a restart"),
            Param("merge_radius_m", 150.0, "calls this close (plus both location uncertainties) may be one event",
                  0.0, 10000.0),
            Param("merge_window_s", 1200.0, "calls this close in time may be one event", 0.0, 86400.0),
            Param("merge_groups", [], "categories that may describe the same event, each group comma-separated"),
            Param("autostart", True, "configure and activate at start (a failed configure ends the process); "
                  "false: wait for a lifecycle manager or `ros2 lifecycle set`"),
        ])
        self.journal = None
        self.served = []
        self.incident_pub = None
        self.configure_error = ""
        if self.params.autostart:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise ValueError(self.configure_error)
            self.trigger_activate()

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state) -> TransitionCallbackReturn:
        p = self.params
        try:
            self._configure(p)
        except (ValueError, OSError, JournalError) as err:
            self.configure_error = str(err)
            self.get_logger().error(f"not configured: {err}")
            if self.journal is not None:
                self.journal.close()
                self.journal = None
            return TransitionCallbackReturn.FAILURE
        self.incident_pub = self.create_lifecycle_publisher(Incident, "incidents",
                                                            qos.incidents(p.incident_history_depth))
        self.get_logger().info(f"configured: {len(self.rules.categories)} categories, operating area "
                               f"'{self.rules.operating_area.name}', journal {p.journal_file} "
                               f"({len(self.book.incidents)} incidents)")
        return super().on_configure(state)

    def _configure(self, p) -> None:
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
        if not p.journal_file:
            raise ValueError("parameter 'journal_file' is empty: without a journal an acknowledged incident "
                             "would not survive a restart")
        rules = MergeRules.from_parameters(p.merge_radius_m, p.merge_window_s, [g for g in p.merge_groups if g],
                                           categories, self.policy.excluded_categories)
        self.journal = Journal(p.journal_file)
        self.book = self.journal.replay(rules)

    def on_activate(self, state) -> TransitionCallbackReturn:
        result = super().on_activate(state)         # the incidents publisher with it
        self.served = [self.create_service(ReportIncident, "report_incident", self._on_report),
                         self.create_service(CloseIncident, "close_incident", self._on_close)]
        reopened = self.book.open_incidents()
        for record in reopened:         # a restart: late and early subscribers see every open incident again
            self.incident_pub.publish(self._incident_msg(record))
        self.get_logger().info(f"intake ready: serving calls; {len(reopened)} open incidents published again")
        return result

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        for service in self.served:
            self.destroy_service(service)
        self.served = []
        self.get_logger().warning("deactivated: no calls are taken until it is activated again")
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._close()
        return super().on_cleanup(state)

    def on_shutdown(self, state=None) -> TransitionCallbackReturn:
        """The lifecycle's shutdown, and also, with no state, the process stopping (dfr_common.ros.node_main),
        when the node may already be destroyed: then only the journal is closed."""
        if state is not None:
            for service in self.served:
                self.destroy_service(service)
            self.served = []
            self._close_publisher()
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        return TransitionCallbackReturn.SUCCESS

    def _close(self) -> None:
        self._close_publisher()
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def _close_publisher(self) -> None:
        if self.incident_pub is not None:
            self.destroy_lifecycle_publisher(self.incident_pub)
            self.incident_pub = None

    def _on_report(self, request, response):
        call = call_from_msg(request.call)
        # On sim time before the first /clock the node's time is 0: unknown, not the epoch. The scenario feed,
        # already on its clock, may call then (at 10 x real time its first call comes half a second in).
        now_ns = self.get_clock().now().nanoseconds
        problems = call_problems(call, self.rules, now_ns * 1e-9 if now_ns > 0 else None)
        if problems:
            response.accepted = False
            response.errors = problems
            self.get_logger().warning(f"call {call.cad_ref or '(no ref)'} rejected: {'; '.join(problems)}")
            return response
        try:
            outcome = self.book.accept_call(call, self.policy)      # journalled before it returns
        except ConflictingCallError as err:
            response.accepted = False
            response.errors = [str(err)]
            self.get_logger().warning(f"call {call.cad_ref} rejected: {err}")
            return response
        except JournalError as err:
            response.accepted = False
            response.errors = [f"journal: {err}; the call was not accepted, report it again"]
            self.get_logger().fatal(str(err))
            return response
        record = outcome.record
        if outcome.action != "repeat":      # a retry of a known call: answer as before, publish nothing new
            self.incident_pub.publish(self._incident_msg(record))
            verb = "joined" if outcome.action == "merged" else "opened"
            self.get_logger().info(f"{record.incident_id} {verb} by call {call.cad_ref}: grade {record.grade} "
                                   f"{record.category}, {len(record.calls)} calls; {record.policy_reason}")
        response.repeat = outcome.action == "repeat"
        return self._answer(response, record, merged=outcome.merged)

    def _on_close(self, request, response):
        now = self.get_clock().now().nanoseconds * 1e-9
        try:
            record = self.book.close(request.incident_id, request.reason, now)
        except (ValueError, JournalError) as err:      # unknown, already closed, no reason; or the disk
            response.success, response.message = False, str(err)
            self.get_logger().warning(f"close {request.incident_id or '(no id)'} refused: {err}")
            return response
        self.incident_pub.publish(self._incident_msg(record))
        response.success, response.message = True, f"{record.incident_id} closed: {request.reason}"
        self.get_logger().info(response.message)
        return response

    @staticmethod
    def _answer(response, record: IncidentRecord, merged: bool):
        response.accepted = True
        response.incident_id = record.incident_id
        response.merged = merged
        response.drone_eligible = record.drone_eligible
        response.policy_reason = record.policy_reason
        return response

    def _incident_msg(self, record: IncidentRecord) -> Incident:
        # Where to fly: the latest report, since an event such as a pursuit moves.
        where = record.latest_call
        msg = Incident(incident_id=record.incident_id, revision=record.revision,
                       state=Incident.STATE_OPEN if record.open else Incident.STATE_CLOSED,
                       calls=[call_to_msg(c) for c in record.calls], grade=record.grade, category=record.category,
                       location_uncertainty_m=float(where.location_uncertainty_m),
                       drone_eligible=record.drone_eligible, policy_reason=record.policy_reason)
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.location.latitude, msg.location.longitude = where.latitude, where.longitude
        msg.location.altitude = math.nan
        return msg


def main(args=None):
    sys.exit(run(IntakeNode, args))


if __name__ == "__main__":
    main()
