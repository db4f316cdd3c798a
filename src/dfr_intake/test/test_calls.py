"""Unit tests of dfr_intake.calls: every field of a reported call is checked."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from dfr_common.areas import load_areas
from dfr_intake.calls import GRADES, Call, CallRules, call_problems

REPO = Path(__file__).resolve().parents[3]
OPERATING_AREA = REPO / "config" / "airspace" / "operating_area.geojson"

NOW = 1_000_000.0
CATEGORIES = frozenset({"dangerous_driving", "robbery", "protest", "fire"})


@pytest.fixture(scope="module")
def rules() -> CallRules:
    return CallRules(categories=CATEGORIES, operating_area=load_areas(OPERATING_AREA)[0])


def good_call(**changes) -> Call:
    call = Call(cad_ref="CAD-20261126-0001", call_time_s=NOW - 30.0, grade="I", category="dangerous_driving",
                latitude=51.5412, longitude=-0.1027, location_uncertainty_m=40.0,
                address="Upper Street, N1", description="E-bike on the pavement", suspect_description="Male, hoodie")
    return dataclasses.replace(call, **changes)


def only_problem(call: Call, rules: CallRules, now: float = NOW) -> str:
    problems = call_problems(call, rules, now)
    assert len(problems) == 1, problems
    return problems[0]


def test_rules_defaults(rules):
    assert rules.max_uncertainty_m == 2000.0
    assert rules.future_tolerance_s == 5.0
    assert rules.max_text_length == 2000


def test_valid_call_has_no_problems(rules):
    assert call_problems(good_call(), rules, NOW) == []


@pytest.mark.parametrize("grade", GRADES)
def test_every_grade_is_accepted(rules, grade):
    assert GRADES == ("I", "S", "E", "R")
    assert call_problems(good_call(grade=grade), rules, NOW) == []


def test_minimal_call_with_empty_text_fields_is_valid(rules):
    call = good_call(address="", description="", suspect_description="", location_uncertainty_m=0.0)
    assert call_problems(call, rules, NOW) == []


# --- cad_ref ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cad_ref", ["", "   ", "\t\n"])
def test_missing_cad_ref(rules, cad_ref):
    problem = only_problem(good_call(cad_ref=cad_ref), rules)
    assert problem.startswith("cad_ref: missing")


def test_cad_ref_of_64_characters_is_accepted(rules):
    assert call_problems(good_call(cad_ref="C" * 64), rules, NOW) == []


def test_too_long_cad_ref(rules):
    assert only_problem(good_call(cad_ref="C" * 65), rules) == "cad_ref: longer than 64 characters"


# --- call time --------------------------------------------------------------------------------------------------


def test_call_time_in_the_future_beyond_tolerance(rules):
    problem = only_problem(good_call(call_time_s=NOW + 60.0), rules)
    assert problem == "call_time: 60.0 s in the future"


@pytest.mark.parametrize("ahead_s", [0.0, 1.0, 4.9, 5.0])
def test_call_time_within_the_future_tolerance_is_accepted(rules, ahead_s):
    assert call_problems(good_call(call_time_s=NOW + ahead_s), rules, NOW) == []


def test_a_call_time_is_not_judged_while_the_systems_own_time_is_unknown(rules):
    assert call_problems(good_call(call_time_s=NOW + 60.0), rules, None) == []
    assert only_problem(good_call(call_time_s=-1.0), rules, None) == "call_time: -1.0 is not a valid time"


def test_call_time_just_beyond_tolerance_is_refused(rules):
    assert only_problem(good_call(call_time_s=NOW + 5.5), rules) == "call_time: 5.5 s in the future"


def test_future_tolerance_comes_from_the_rules(rules):
    strict = dataclasses.replace(rules, future_tolerance_s=0.0)
    assert only_problem(good_call(call_time_s=NOW + 1.0), strict).startswith("call_time:")
    lenient = dataclasses.replace(rules, future_tolerance_s=120.0)
    assert call_problems(good_call(call_time_s=NOW + 60.0), lenient, NOW) == []


def test_old_call_time_is_accepted(rules):
    assert call_problems(good_call(call_time_s=1.0), rules, NOW) == []


@pytest.mark.parametrize("call_time", [math.nan, math.inf, -math.inf, 0.0, -1.0])
def test_non_finite_or_non_positive_call_time(rules, call_time):
    problem = only_problem(good_call(call_time_s=call_time), rules)
    assert problem == f"call_time: {call_time!r} is not a valid time"


# --- grade and category -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("grade", ["", "i", "X", "IS", " I"])
def test_unknown_grade(rules, grade):
    assert only_problem(good_call(grade=grade), rules) == f"grade: {grade!r} is not one of I, S, E, R"


@pytest.mark.parametrize("category", ["", "Dangerous_Driving", "jaywalking"])
def test_unknown_category(rules, category):
    assert only_problem(good_call(category=category), rules) == f"category: {category!r} is not a known category"


# --- position ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["latitude", "longitude"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_position(rules, field, value):
    problem = only_problem(good_call(**{field: value}), rules)
    assert problem == f"{field}: {value!r} is not a finite number"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("latitude", 90.5, "latitude: 90.5 is outside [-90, 90]"),
    ("latitude", -91.0, "latitude: -91.0 is outside [-90, 90]"),
    ("longitude", 180.5, "longitude: 180.5 is outside [-180, 180]"),
    ("longitude", -200.0, "longitude: -200.0 is outside [-180, 180]"),
])
def test_out_of_range_position(rules, field, value, message):
    # An impossible position is reported as such, not as "outside the operating area" as well.
    assert only_problem(good_call(**{field: value}), rules) == message


def test_both_coordinates_bad_are_both_reported(rules):
    problems = call_problems(good_call(latitude=math.nan, longitude=500.0), rules, NOW)
    assert problems == ["latitude: nan is not a finite number", "longitude: 500.0 is outside [-180, 180]"]


@pytest.mark.parametrize(("lat", "lon"), [
    (50.8225, -0.1372),     # Brighton
    (-0.1027, 51.5412),     # Upper Street with latitude and longitude swapped
    (90.0, 0.0),            # the North Pole: on the Earth, not in London
])
def test_outside_the_operating_area(rules, lat, lon):
    problem = only_problem(good_call(latitude=lat, longitude=lon), rules)
    assert problem == f"location: {lat:.5f}, {lon:.5f} is outside the operating area (Greater London)"


# --- location uncertainty ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("uncertainty", [-1.0, -0.001, math.nan, math.inf, -math.inf])
def test_bad_location_uncertainty(rules, uncertainty):
    problem = only_problem(good_call(location_uncertainty_m=uncertainty), rules)
    assert problem == f"location_uncertainty_m: {uncertainty!r} is not a non-negative number"


def test_location_uncertainty_at_the_limit_is_accepted(rules):
    assert call_problems(good_call(location_uncertainty_m=2000.0), rules, NOW) == []


def test_too_large_location_uncertainty(rules):
    problem = only_problem(good_call(location_uncertainty_m=2500.0), rules)
    assert problem == "location_uncertainty_m: 2500 m is more than 2000 m: too vague to send a drone"


# --- text fields ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["address", "description", "suspect_description"])
def test_over_long_text_field(rules, field):
    assert call_problems(good_call(**{field: "x" * 2000}), rules, NOW) == []
    assert only_problem(good_call(**{field: "x" * 2001}), rules) == f"{field}: longer than 2000 characters"


def test_text_limit_comes_from_the_rules(rules):
    short = dataclasses.replace(rules, max_text_length=10)
    assert only_problem(good_call(address="x" * 11, description="short", suspect_description=""), short) == \
        "address: longer than 10 characters"


# --- several problems -------------------------------------------------------------------------------------------


def test_every_problem_is_reported_prefixed_by_its_field(rules):
    call = Call(cad_ref="", call_time_s=math.nan, grade="Z", category="jaywalking", latitude=math.inf,
                longitude=0.0, location_uncertainty_m=-5.0, address="a" * 2001, description="d" * 2001,
                suspect_description="s" * 2001)
    problems = call_problems(call, rules, NOW)
    fields = [p.split(":", 1)[0] for p in problems]
    assert fields == ["cad_ref", "call_time", "grade", "category", "latitude", "location_uncertainty_m",
                      "address", "description", "suspect_description"]
    assert all(p.split(":", 1)[1].startswith(" ") and len(p.split(":", 1)[1]) > 1 for p in problems)


def test_several_problems_including_the_operating_area(rules):
    call = good_call(cad_ref="C" * 70, call_time_s=NOW + 100.0, latitude=48.8566, longitude=2.3522,
                     location_uncertainty_m=5000.0)
    problems = call_problems(call, rules, NOW)
    assert [p.split(":", 1)[0] for p in problems] == ["cad_ref", "call_time", "location", "location_uncertainty_m"]
