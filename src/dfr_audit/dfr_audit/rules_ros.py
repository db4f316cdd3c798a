"""The flight rules on a ROS node: their parameters, the incidents as the node knows them, and the
decisions it publishes for the audit log.

Dispatch and every bridge declare the same rule parameters (set in dispatch.yaml and bridge.yaml)
and publish each refusal, each maintenance or test flight allowed and each scene left on
FLIGHT_RULE_DECISIONS, which the audit node records.
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from dfr_audit.rules import Authorization, FlightRules, IncidentFacts, IncidentState, authorize_mission
from dfr_common.ros.parameters import Param
from dfr_interfaces.msg import FlightRuleDecision, Incident

FLIGHT_RULE_DECISIONS = "/dfr/flight_rule_decisions"
# Reliable, and kept for an audit node that joins late: a decision is recorded once (dfr_audit.recorder).
FLIGHT_RULE_DECISIONS_QOS = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE,
                                       durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)
# Dispatch's choice of drone for each mission (dfr_interfaces/AssignmentDecision), kept the same way.
ASSIGNMENT_DECISIONS = "/dfr/assignment_decisions"
ASSIGNMENT_DECISIONS_QOS = FLIGHT_RULE_DECISIONS_QOS

_DEFAULTS = FlightRules()


def flight_rule_params() -> list[Param]:
    """The flight rules' parameters, under flight_rules.*; the defaults are FlightRules' own."""
    return [
        Param("flight_rules.excluded_categories", sorted(_DEFAULTS.excluded_categories),
              "incident categories a drone never flies for, whatever the launch policy says"),
        Param("flight_rules.eligible_grades", sorted(_DEFAULTS.eligible_grades),
              "grades a drone may fly for; empty: no limit beyond the launch policy's"),
        Param("flight_rules.eligible_categories", sorted(_DEFAULTS.eligible_categories),
              "categories a drone may fly for; empty: no limit beyond the launch policy's"),
        Param("flight_rules.allow_maintenance_flights", False,
              "fly missions marked maintenance (no incident); recorded as maintenance flights"),
        Param("flight_rules.allow_test_flights", False, "fly missions marked test (no incident); recorded as such"),
    ]


def flight_rules_from(params) -> FlightRules:
    """FlightRules from the values declare() returned for flight_rule_params()."""
    return FlightRules(
        excluded_categories=[c for c in params.flight_rules_excluded_categories if c],
        eligible_grades=[g for g in params.flight_rules_eligible_grades if g],
        eligible_categories=[c for c in params.flight_rules_eligible_categories if c],
        allow_maintenance_flights=params.flight_rules_allow_maintenance_flights,
        allow_test_flights=params.flight_rules_allow_test_flights)


def incident_facts(msg: Incident | None) -> IncidentFacts | None:
    """The facts of intake's revision of an incident; None for one never heard of."""
    if msg is None:
        return None
    return IncidentFacts(IncidentState.OPEN if msg.state == Incident.STATE_OPEN else IncidentState.CLOSED,
                         bool(msg.drone_eligible), msg.category, msg.grade)


def keep_latest(incidents: dict[str, Incident], msg: Incident) -> bool:
    """Keep intake's latest revision of each incident (latched topics repeat, and may reorder on a
    restart); True when `msg` is newer than the one kept, and now kept."""
    known = incidents.get(msg.incident_id)
    if known is not None and known.revision >= msg.revision:
        return False
    incidents[msg.incident_id] = msg
    return True


class FlightRulesOnNode:
    """The flight rules as one node applies them: the rules from its parameters (flight_rule_params()),
    and the publisher of its decisions for the audit log."""

    def __init__(self, node, params):
        self.node = node
        self.rules = flight_rules_from(params)
        self.publisher = node.create_publisher(FlightRuleDecision, FLIGHT_RULE_DECISIONS, FLIGHT_RULE_DECISIONS_QOS)

    def authorize(self, flight_kind: str, incident_id: str, known: Incident | None) -> Authorization:
        """authorize_mission() on the node's own latest revision of the incident (None: never heard of)."""
        try:
            return authorize_mission(flight_kind, incident_id, incident_facts(known), self.rules)
        except ValueError as err:       # a flight kind no one defined
            return Authorization(False, str(err), "unknown_flight_kind", flight_kind or "incident")

    def publish(self, decision: Authorization, vehicle_id: str, mission_id: str, incident_id: str) -> None:
        msg = FlightRuleDecision(decided_by=self.node.get_fully_qualified_name(), vehicle_id=vehicle_id,
                                 mission_id=mission_id, incident_id=incident_id, flight_kind=decision.flight_kind,
                                 allowed=decision.allowed, rule=decision.rule, reason=decision.reason)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.publisher.publish(msg)
