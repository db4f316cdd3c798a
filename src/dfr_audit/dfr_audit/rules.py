"""The flight rules that keep drones from becoming routine surveillance, as pure functions.

Dispatch asks authorize_mission() (authorize_flight() on the incident as the asking node knows
it) before it sends a drone and the bridge asks again before it arms, so that neither alone can
fly a drone for no open, eligible incident. The bridge
asks camera_may_point_down() before aiming the camera at the ground and must_leave_scene()
while it holds over a scene. A refusal's rule and reason go in the audit log
(rule_violation_refused), an authorisation's reason in the launch entry.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import Enum

from dfr_common.mission import Phase

FLIGHT_KINDS = ("incident", "maintenance", "test")


class IncidentState(Enum):
    """Mirrors Incident.msg's STATE_* values."""

    OPEN = 0
    CLOSED = 1


@dataclass(frozen=True)
class FlightRules:
    """Which flights may happen at all. The defaults are the published launch policy of config/intake.yaml.

    excluded_categories never get a drone, whatever else is set. eligible_grades and
    eligible_categories are those a drone may fly for; empty means the rules add no limit of their
    own to the launch policy's decision. Maintenance and test flights answer no incident and fly
    only when allowed here.
    """

    excluded_categories: frozenset[str] = frozenset({"protest", "lawful_protest"})
    eligible_grades: frozenset[str] = frozenset({"I", "S"})
    eligible_categories: frozenset[str] = frozenset({
        "dangerous_driving", "vehicle_pursuit", "robbery", "burglary", "assault", "weapons", "missing_person",
        "concern_for_welfare", "traffic_collision", "fire", "suspicious_activity"})
    allow_maintenance_flights: bool = False
    allow_test_flights: bool = False

    def __post_init__(self):
        for name in ("excluded_categories", "eligible_grades", "eligible_categories"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ValueError(f"flight rules: {name} is {value!r}, not a list of names")
            value = frozenset(value)
            if not all(isinstance(item, str) and item for item in value):
                raise ValueError(f"flight rules: {name} holds something that is not a non-empty name: "
                                 f"{sorted(map(repr, value))}")
            object.__setattr__(self, name, value)
        for name in ("allow_maintenance_flights", "allow_test_flights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"flight rules: {name} is {getattr(self, name)!r}, not true or false")
        both = self.eligible_categories & self.excluded_categories
        if both:
            raise ValueError(f"flight rules: categories both eligible and excluded: {', '.join(sorted(both))}")

    @classmethod
    def from_mapping(cls, values: Mapping) -> FlightRules:
        """The rules from a YAML mapping with these fields' names; unknown names are an error, not ignored."""
        if not isinstance(values, Mapping):
            raise ValueError(f"flight rules: expected a mapping of settings, got {type(values).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"flight rules: unknown settings {', '.join(map(str, unknown))} "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**values)


@dataclass(frozen=True)
class Authorization:
    allowed: bool
    reason: str
    rule: str           # the rule that decided: a short name for the audit log
    flight_kind: str    # recorded with the launch, so that a maintenance flight is never counted as a response


def _incident_state(value) -> IncidentState | None:
    if value is None or isinstance(value, IncidentState):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return IncidentState(value)
        except ValueError:
            pass
    raise ValueError(f"incident_state is {value!r}; give an IncidentState, Incident.STATE_OPEN/STATE_CLOSED, "
                     f"or None when there is no incident")


def authorize_flight(incident_state, incident_eligible: bool, category: str, flight_kind: str = "incident",
                     rules: FlightRules | None = None, *, grade: str | None = None) -> Authorization:
    """May a drone fly? Incident flights need an open incident the launch policy made eligible, of a category
    (and grade) the rules allow and never an excluded one; maintenance and test flights need no incident,
    must not claim one, and fly only when the rules allow them."""
    rules = FlightRules() if rules is None else rules
    if not isinstance(rules, FlightRules):
        raise ValueError(f"rules is a {type(rules).__name__}, not FlightRules")
    if flight_kind not in FLIGHT_KINDS:
        raise ValueError(f"flight_kind is {flight_kind!r}, not one of {', '.join(FLIGHT_KINDS)}")
    state = _incident_state(incident_state)
    if not isinstance(incident_eligible, bool):
        raise ValueError(f"incident_eligible is {incident_eligible!r}, not true or false")
    if not isinstance(category, str):
        raise ValueError(f"category is {category!r}, not a string")
    if grade is not None and not isinstance(grade, str):
        raise ValueError(f"grade is {grade!r}, not a string")

    def refuse(rule: str, reason: str) -> Authorization:
        return Authorization(False, reason, rule, flight_kind)

    if flight_kind != "incident":
        allowed = rules.allow_maintenance_flights if flight_kind == "maintenance" else rules.allow_test_flights
        if state is not None:
            return refuse("non_incident_flight_with_incident",
                          f"a {flight_kind} flight answers no incident; a flight for an incident is flown and "
                          f"recorded as an incident flight")
        if not allowed:
            return refuse(f"{flight_kind}_flights_not_allowed", f"{flight_kind} flights are not allowed by the rules")
        return Authorization(True, f"{flight_kind} flight allowed by the rules; recorded as a {flight_kind} flight",
                             "allowed", flight_kind)
    if state is None:
        return refuse("no_incident", "no flight without an incident")
    if category in rules.excluded_categories:
        return refuse("excluded_category", f"category '{category}' is never attended by a drone")
    if state is IncidentState.CLOSED:
        return refuse("incident_closed", "the incident is closed")
    if not incident_eligible:
        return refuse("incident_not_eligible", "the launch policy did not make the incident eligible for a drone")
    if rules.eligible_categories and category not in rules.eligible_categories:
        return refuse("category_not_allowed", f"category '{category}' is not one a drone may fly for")
    if rules.eligible_grades:
        if grade is None:
            raise ValueError("these rules limit the grades a drone may fly for; give the incident's grade")
        if grade not in rules.eligible_grades:
            return refuse("grade_not_allowed", f"grade {grade!r} is not one a drone may fly for "
                                               f"(allowed: {', '.join(sorted(rules.eligible_grades))})")
    grade_text = f"grade {grade} " if grade is not None else ""
    return Authorization(True, f"open, eligible {grade_text}{category} incident", "allowed", "incident")


def flight_kind(value: str) -> str:
    """The flight kind a mission names (MissionPlan.flight_kind); empty is an incident flight."""
    if not isinstance(value, str):
        raise ValueError(f"flight_kind is {value!r}, not a string")
    kind = value or "incident"
    if kind not in FLIGHT_KINDS:
        raise ValueError(f"flight_kind is {value!r}, not one of {', '.join(FLIGHT_KINDS)} (empty: incident)")
    return kind


@dataclass(frozen=True)
class IncidentFacts:
    """What a node knows of an incident from intake's latest revision of it."""

    state: IncidentState
    eligible: bool
    category: str
    grade: str


def authorize_mission(kind: str, incident_id: str, known: IncidentFacts | None,
                      rules: FlightRules | None = None) -> Authorization:
    """May this mission fly, by what the deciding node itself knows of its incident?

    `known` is the node's own latest revision of `incident_id` (None: never heard of), never the
    copy a request carries, so that no one can fly a drone by describing an incident as open.
    """
    kind = flight_kind(kind)
    if kind != "incident":
        # A maintenance or test flight that names an incident is refused as one that claims it.
        state = (known.state if known is not None else IncidentState.OPEN) if incident_id else None
        return authorize_flight(state, False, "", kind, rules)
    if not incident_id:
        return authorize_flight(None, False, "", kind, rules)
    if known is None:
        return Authorization(False, f"incident {incident_id} is unknown here: no revision of it has been "
                                    "published on the incidents topic", "unknown_incident", kind)
    decision = authorize_flight(known.state, known.eligible, known.category, kind, rules, grade=known.grade)
    if decision.allowed:
        return decision
    return Authorization(False, f"incident {incident_id}: {decision.reason}", decision.rule, kind)


def _phase(value) -> Phase:
    if isinstance(value, Phase):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return Phase(value)
        except ValueError:
            pass
    raise ValueError(f"phase is {value!r}; give a dfr_common.mission.Phase or a MissionPhase value")


def camera_may_point_down(phase, tracking: bool) -> bool:
    """The camera looks at the ground only at the scene, or while following a target it is tracking;
    in transit, on the way home and on the ground it looks at the horizon, so no one is filmed on the way."""
    phase = _phase(phase)
    if not isinstance(tracking, bool):
        raise ValueError(f"tracking is {tracking!r}, not true or false")
    return phase is Phase.ON_SCENE or (phase is Phase.FOLLOW and tracking)


def must_leave_scene(incident_state) -> bool:
    """No loitering: once the incident is closed (or there is none) the drone goes home."""
    return _incident_state(incident_state) is not IncidentState.OPEN
