"""Unit tests of dfr_intake.launch_policy: which calls may get a drone, and the reason given."""
from __future__ import annotations

import pytest

from dfr_intake.calls import Call
from dfr_intake.launch_policy import LaunchPolicy

# The published policy of config/intake.yaml.
ELIGIBLE = frozenset({"dangerous_driving", "vehicle_pursuit", "robbery", "burglary", "assault", "weapons",
                      "missing_person", "concern_for_welfare", "traffic_collision", "fire", "suspicious_activity"})


@pytest.fixture
def policy() -> LaunchPolicy:
    return LaunchPolicy(eligible_grades=frozenset({"I", "S"}), eligible_categories=ELIGIBLE,
                        excluded_categories=frozenset({"protest"}))


def call(grade: str = "I", category: str = "robbery") -> Call:
    return Call(cad_ref="CAD-1", call_time_s=100.0, grade=grade, category=category, latitude=51.5,
                longitude=-0.1, location_uncertainty_m=10.0)


@pytest.mark.parametrize("grade", ["I", "S"])
@pytest.mark.parametrize("category", sorted(ELIGIBLE))
def test_eligible_call_is_accepted(policy, grade, category):
    ok, reason = policy.decide(call(grade, category))
    assert ok is True
    assert reason == f"grade {grade} {category}: eligible for a drone"


@pytest.mark.parametrize("grade", ["I", "S", "E", "R"])
def test_excluded_category_is_refused_at_any_grade(policy, grade):
    ok, reason = policy.decide(call(grade, "protest"))
    assert ok is False
    assert reason == "category 'protest' is excluded from drone response by policy"


@pytest.mark.parametrize("grade", ["E", "R", "", "X"])
def test_ineligible_grade_is_refused(policy, grade):
    ok, reason = policy.decide(call(grade, "robbery"))
    assert ok is False
    assert reason == f"grade {grade} is not eligible for a drone (eligible: I, S)"


@pytest.mark.parametrize("category", ["noise", "theft", "anti_social_behaviour", "domestic", "public_order"])
def test_category_not_on_the_eligible_list_is_refused(policy, category):
    ok, reason = policy.decide(call("I", category))
    assert ok is False
    assert reason == f"category '{category}' is not on the list of categories a drone may attend"


def test_grade_is_checked_before_category(policy):
    # Both wrong: the grade is the reason given.
    ok, reason = policy.decide(call("R", "noise"))
    assert ok is False
    assert "grade R" in reason and "noise" not in reason


def test_exclusion_wins_over_grade(policy):
    ok, reason = policy.decide(call("R", "protest"))
    assert ok is False
    assert "excluded" in reason and "grade" not in reason


def test_empty_policy_refuses_everything():
    nothing = LaunchPolicy(frozenset(), frozenset(), frozenset())
    ok, reason = nothing.decide(call("I", "robbery"))
    assert ok is False
    assert reason == "grade I is not eligible for a drone (eligible: )"


def test_category_both_eligible_and_excluded_raises():
    with pytest.raises(ValueError, match="categories both eligible and excluded: fire, protest"):
        LaunchPolicy(eligible_grades=frozenset({"I"}), eligible_categories=frozenset({"protest", "fire", "robbery"}),
                     excluded_categories=frozenset({"protest", "fire", "noise"}))


def test_policy_is_immutable(policy):
    with pytest.raises(AttributeError):
        policy.eligible_grades = frozenset({"R"})
