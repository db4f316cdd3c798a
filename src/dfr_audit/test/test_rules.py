"""Unit tests of dfr_audit.rules: every rule is tried with the flights and camera angles it must refuse."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from dfr_audit.rules import (
    Authorization,
    FlightRules,
    IncidentFacts,
    IncidentState,
    authorize_flight,
    authorize_mission,
    camera_may_point_down,
    flight_kind,
    must_leave_scene,
)
from dfr_common.mission import Phase

OPEN, CLOSED = IncidentState.OPEN, IncidentState.CLOSED
RULES = FlightRules()
INTAKE_YAML = Path(__file__).resolve().parents[3] / "config" / "intake.yaml"


def test_an_open_eligible_incident_may_get_a_drone():
    decision = authorize_flight(OPEN, True, "robbery", "incident", RULES, grade="I")
    assert decision == Authorization(True, "open, eligible grade I robbery incident", "allowed", "incident")


def test_a_flight_for_a_closed_incident_is_refused():
    decision = authorize_flight(CLOSED, True, "robbery", "incident", RULES, grade="I")
    assert not decision.allowed and decision.rule == "incident_closed"
    assert decision.reason == "the incident is closed"


def test_a_flight_for_an_ineligible_incident_is_refused():
    decision = authorize_flight(OPEN, False, "robbery", "incident", RULES, grade="I")
    assert not decision.allowed and decision.rule == "incident_not_eligible"
    assert "launch policy did not make the incident eligible" in decision.reason


@pytest.mark.parametrize("category", ["protest", "lawful_protest"])
def test_an_excluded_category_is_refused_even_when_marked_eligible(category):
    decision = authorize_flight(OPEN, True, category, "incident", RULES, grade="I")
    assert not decision.allowed and decision.rule == "excluded_category"
    assert decision.reason == f"category '{category}' is never attended by a drone"


def test_an_excluded_category_is_refused_even_when_listed_as_eligible_elsewhere():
    """The exclusion wins whatever other list the category is on: the rules refuse to be built with both."""
    with pytest.raises(ValueError, match="both eligible and excluded: protest"):
        FlightRules(eligible_categories={"protest", "robbery"}, excluded_categories={"protest"})
    rules = FlightRules(eligible_categories=(), eligible_grades=(), excluded_categories={"protest"})
    assert authorize_flight(OPEN, True, "protest", rules=rules).rule == "excluded_category"


def test_no_incident_means_no_incident_flight():
    decision = authorize_flight(None, True, "robbery", "incident", RULES, grade="I")
    assert not decision.allowed and decision.rule == "no_incident"


def test_categories_and_grades_outside_the_rules_are_refused():
    assert authorize_flight(OPEN, True, "noise", rules=RULES, grade="I").rule == "category_not_allowed"
    decision = authorize_flight(OPEN, True, "robbery", rules=RULES, grade="R")
    assert decision.rule == "grade_not_allowed" and "(allowed: I, S)" in decision.reason
    with pytest.raises(ValueError, match="give the incident's grade"):
        authorize_flight(OPEN, True, "robbery", rules=RULES)
    free = FlightRules(eligible_grades=(), eligible_categories=())
    assert authorize_flight(OPEN, True, "noise", rules=free).allowed


def test_maintenance_flights_when_not_allowed_are_refused():
    decision = authorize_flight(None, False, "", "maintenance", RULES)
    assert not decision.allowed and decision.rule == "maintenance_flights_not_allowed"
    assert decision.flight_kind == "maintenance"
    assert authorize_flight(None, False, "", "test", RULES).rule == "test_flights_not_allowed"


def test_allowed_maintenance_and_test_flights_are_recorded_as_such():
    rules = FlightRules(allow_maintenance_flights=True)
    decision = authorize_flight(None, False, "", "maintenance", rules)
    assert decision.allowed and decision.flight_kind == "maintenance"
    assert "recorded as a maintenance flight" in decision.reason
    assert not authorize_flight(None, False, "", "test", rules).allowed, "test flights are allowed separately"
    assert authorize_flight(None, False, "", "test", FlightRules(allow_test_flights=True)).flight_kind == "test"


@pytest.mark.parametrize("state", [OPEN, CLOSED])
def test_a_maintenance_flight_cannot_be_flown_for_an_incident(state):
    """Otherwise a flight over an incident could be recorded as maintenance and escape the incident rules."""
    rules = FlightRules(allow_maintenance_flights=True, allow_test_flights=True)
    for kind in ("maintenance", "test"):
        decision = authorize_flight(state, True, "robbery", kind, rules, grade="I")
        assert not decision.allowed and decision.rule == "non_incident_flight_with_incident"


def test_every_combination_flies_only_for_an_open_eligible_allowed_incident():
    categories = ("robbery", "protest", "noise", "fire")
    for state, eligible, category, grade in itertools.product((None, OPEN, CLOSED), (False, True), categories,
                                                               ("I", "S", "E", "R")):
        decision = authorize_flight(state, eligible, category, "incident", RULES, grade=grade)
        expected = (state is OPEN and eligible and category in RULES.eligible_categories
                    and category not in RULES.excluded_categories and grade in RULES.eligible_grades)
        assert decision.allowed == expected, (state, eligible, category, grade, decision)
        assert decision.flight_kind == "incident" and decision.reason


def test_message_state_values_are_accepted():
    assert authorize_flight(0, True, "fire", rules=RULES, grade="S").allowed
    assert authorize_flight(1, True, "fire", rules=RULES, grade="S").rule == "incident_closed"


@pytest.mark.parametrize("args, kwargs, message", [
    ((OPEN, True, "robbery", "surveillance"), {}, "flight_kind is 'surveillance'"),
    (("open", True, "robbery"), {}, "incident_state is 'open'"),
    ((2, True, "robbery"), {}, "incident_state is 2"),
    ((OPEN, 1, "robbery"), {}, "incident_eligible is 1"),
    ((OPEN, True, None), {}, "category is None"),
    ((OPEN, True, "robbery", "incident", {"allow_maintenance_flights": True}), {}, "not FlightRules"),
    ((OPEN, True, "robbery"), {"grade": 1}, "grade is 1"),
])
def test_bad_input_is_refused_with_a_specific_error(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        authorize_flight(*args, **kwargs)


def test_the_camera_points_down_only_on_scene_or_while_tracking():
    for phase, tracking in itertools.product(Phase, (False, True)):
        expected = phase is Phase.ON_SCENE or (phase is Phase.FOLLOW and tracking)
        assert camera_may_point_down(phase, tracking) == expected, (phase, tracking)
        assert camera_may_point_down(phase.value, tracking) == expected
    assert not camera_may_point_down(Phase.TRANSIT, True), "tracking does not open the camera in transit"
    assert not camera_may_point_down(Phase.RETURN, True)
    with pytest.raises(ValueError, match="phase is 9"):
        camera_may_point_down(9, False)
    with pytest.raises(ValueError, match="tracking is 'yes'"):
        camera_may_point_down(Phase.ON_SCENE, "yes")


def test_no_loitering_after_the_incident_closes():
    assert must_leave_scene(CLOSED) and must_leave_scene(1)
    assert must_leave_scene(None)
    assert not must_leave_scene(OPEN) and not must_leave_scene(0)
    with pytest.raises(ValueError, match="incident_state"):
        must_leave_scene("closed")


def test_the_defaults_are_the_published_launch_policy():
    policy = yaml.safe_load(INTAKE_YAML.read_text())["/dfr/intake"]["ros__parameters"]["policy"]
    rules = FlightRules.from_mapping(policy)
    assert rules.eligible_grades == RULES.eligible_grades
    assert rules.eligible_categories == RULES.eligible_categories
    assert rules.excluded_categories <= RULES.excluded_categories
    assert not rules.allow_maintenance_flights and not rules.allow_test_flights


def test_rules_from_yaml_refuse_unknown_or_malformed_settings():
    with pytest.raises(ValueError, match="unknown settings allow_surveillance"):
        FlightRules.from_mapping({"allow_surveillance": True})
    with pytest.raises(ValueError, match="allow_maintenance_flights is 'yes'"):
        FlightRules.from_mapping({"allow_maintenance_flights": "yes"})
    with pytest.raises(ValueError, match="excluded_categories is 'protest', not a list"):
        FlightRules.from_mapping({"excluded_categories": "protest"})
    with pytest.raises(ValueError, match="expected a mapping"):
        FlightRules.from_mapping(["protest"])
    rules = FlightRules.from_mapping({"eligible_grades": ["I"], "allow_maintenance_flights": True})
    assert rules.eligible_grades == frozenset({"I"}) and rules.allow_maintenance_flights


# --- authorize_mission: a node's own knowledge of the incident, and the flight kind a mission names ---------------

FACTS = IncidentFacts(OPEN, True, "dangerous_driving", "I")


def test_a_mission_for_an_open_eligible_incident_known_here_may_fly():
    decision = authorize_mission("", "INC-1", FACTS)
    assert decision.allowed and decision.flight_kind == "incident"


@pytest.mark.parametrize("known, rule", [
    (None, "unknown_incident"),
    (IncidentFacts(CLOSED, True, "dangerous_driving", "I"), "incident_closed"),
    (IncidentFacts(OPEN, False, "dangerous_driving", "I"), "incident_not_eligible"),
    (IncidentFacts(OPEN, True, "protest", "I"), "excluded_category"),
    (IncidentFacts(OPEN, True, "noise", "I"), "category_not_allowed"),
    (IncidentFacts(OPEN, True, "dangerous_driving", "E"), "grade_not_allowed"),
])
def test_a_mission_for_an_incident_not_known_open_and_eligible_is_refused_naming_it(known, rule):
    decision = authorize_mission("incident", "INC-7", known)
    assert not decision.allowed and decision.rule == rule
    assert decision.reason.startswith("incident INC-7")


def test_an_incident_mission_naming_no_incident_is_refused():
    assert authorize_mission("", "", None).rule == "no_incident"


def test_maintenance_missions_follow_the_rules_and_may_not_name_an_incident():
    allowed = FlightRules(allow_maintenance_flights=True)
    assert authorize_mission("maintenance", "", None).rule == "maintenance_flights_not_allowed"
    assert authorize_mission("maintenance", "", None, allowed).allowed
    assert authorize_mission("maintenance", "INC-1", FACTS, allowed).rule == "non_incident_flight_with_incident"
    assert authorize_mission("maintenance", "INC-X", None, allowed).rule == "non_incident_flight_with_incident"
    assert authorize_mission("test", "", None, FlightRules(allow_test_flights=True)).flight_kind == "test"


@pytest.mark.parametrize("value", ["surveillance", "Incident", None])
def test_an_unknown_flight_kind_is_an_error(value):
    with pytest.raises(ValueError, match="flight_kind"):
        flight_kind(value)
    with pytest.raises(ValueError, match="flight_kind"):
        authorize_mission(value, "INC-1", FACTS)


def test_empty_flight_kind_is_an_incident_flight():
    assert flight_kind("") == "incident" and flight_kind("test") == "test"


def test_dispatch_and_the_bridges_enforce_the_same_rules_in_step_with_intakes_policy():
    config = INTAKE_YAML.parent
    shared = yaml.safe_load((config / "flight_rules.yaml").read_text())["/**"]["ros__parameters"]
    for own in ("dispatch.yaml", "bridge.yaml"):        # one copy of the rules: no node file overrides it
        assert "flight_rules" not in next(iter(yaml.safe_load((config / own).read_text()).values()))["ros__parameters"]
    bridge = shared
    rules = FlightRules.from_mapping(bridge["flight_rules"])
    policy = FlightRules.from_mapping(yaml.safe_load(INTAKE_YAML.read_text())["/dfr/intake"]["ros__parameters"]
                                      ["policy"])
    assert rules.excluded_categories >= policy.excluded_categories, "the rules exclude all intake excludes"
    assert rules.eligible_categories <= policy.eligible_categories and rules.eligible_grades <= policy.eligible_grades
    assert not rules.allow_maintenance_flights and not rules.allow_test_flights, "off unless an operator allows them"
