"""Unit tests of dfr_intake.scenario: parsing and loading scenario files."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest

from dfr_intake.scenario import Scenario, ScenarioCall, ScenarioError, load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[3]
SINGLE_CALL = REPO / "config" / "scenarios" / "foundation_single_call.yaml"


def entry(at_s, cad_ref, **extra) -> dict:
    data = {"at_s": at_s, "cad_ref": cad_ref, "grade": "I", "category": "robbery",
            "latitude": 51.54, "longitude": -0.10}
    data.update(extra)
    return data


VALID = {
    "name": "Three calls",
    "description": "For the tests",
    "duration_s": 600,
    "calls": [entry(30, "C"), entry(5.5, "A"), entry(12, "B", location_uncertainty_m=15, address="High St")],
}


def valid() -> dict:
    return copy.deepcopy(VALID)


# --- valid data -------------------------------------------------------------------------------------------------


def test_calls_are_sorted_by_time():
    scenario = parse_scenario(valid())
    assert isinstance(scenario, Scenario)
    assert [c.cad_ref for c in scenario.calls] == ["A", "B", "C"]
    assert [c.at_s for c in scenario.calls] == [5.5, 12.0, 30.0]
    assert isinstance(scenario.calls, tuple)


def test_calls_at_the_same_time_keep_file_order():
    data = {"calls": [entry(10, "second-listed-first"), entry(0, "zero"), entry(10, "listed-last")]}
    assert [c.cad_ref for c in parse_scenario(data).calls] == ["zero", "second-listed-first", "listed-last"]


def test_fields_are_taken_over_and_converted():
    scenario = parse_scenario(valid())
    assert scenario.name == "Three calls"
    assert scenario.description == "For the tests"
    assert scenario.duration_s == 600.0 and isinstance(scenario.duration_s, float)
    b = scenario.calls[1]
    assert b == ScenarioCall(at_s=12.0, cad_ref="B", grade="I", category="robbery", latitude=51.54, longitude=-0.10,
                             location_uncertainty_m=15.0, address="High St", description="", suspect_description="")


def test_defaults():
    scenario = parse_scenario({"calls": [entry(0, "A")]}, "scenarios/quiet_night.yaml")
    assert scenario.name == "quiet_night"          # the file's stem
    assert scenario.description == ""
    assert scenario.duration_s == 3600.0
    call = scenario.calls[0]
    assert call.location_uncertainty_m == 50.0
    assert (call.address, call.description, call.suspect_description) == ("", "", "")


@pytest.mark.parametrize("calls", [None, []])
def test_no_calls_is_an_empty_scenario(calls):
    data = {"name": "empty", "calls": calls}
    assert parse_scenario(data).calls == ()
    assert parse_scenario({"name": "no calls key"}).calls == ()


def test_values_are_converted_to_their_types():
    data = {"calls": [entry("7", 1234, grade="S", latitude="51.5", address=42)]}
    call = parse_scenario(data).calls[0]
    assert call.at_s == 7.0
    assert call.cad_ref == "1234"
    assert call.latitude == 51.5
    assert call.address == "42"


def test_non_finite_positions_are_kept_for_intake_to_refuse():
    call = parse_scenario({"calls": [entry(1, "A", latitude=math.nan, longitude=math.inf)]}).calls[0]
    assert math.isnan(call.latitude)
    assert call.longitude == math.inf


# --- error paths ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [None, [], "calls", 3])
def test_top_level_must_be_a_mapping(data):
    with pytest.raises(ScenarioError, match="bad.yaml: expected a mapping at the top level"):
        parse_scenario(data, "bad.yaml")


@pytest.mark.parametrize("bad", ["a call", 5, ["at_s", 0]])
def test_call_must_be_a_mapping(bad):
    data = valid()
    data["calls"].insert(1, bad)
    with pytest.raises(ScenarioError, match=r"bad.yaml: calls\[1\]: expected a mapping"):
        parse_scenario(data, "bad.yaml")


def test_missing_fields_are_all_named():
    data = {"calls": [entry(0, "A"), {"cad_ref": "B", "grade": "I", "category": "fire"}]}
    with pytest.raises(ScenarioError, match=r"calls\[1\]: missing at_s, latitude, longitude$"):
        parse_scenario(data)


@pytest.mark.parametrize("key", ["at_s", "cad_ref", "grade", "category", "latitude", "longitude"])
def test_each_required_field(key):
    data = {"calls": [entry(0, "A")]}
    del data["calls"][0][key]
    with pytest.raises(ScenarioError, match=rf"calls\[0\]: missing {key}$"):
        parse_scenario(data)


@pytest.mark.parametrize(("key", "value"), [
    ("latitude", "north of here"),
    ("longitude", None),
    ("at_s", "soon"),
    ("at_s", None),
    ("location_uncertainty_m", "big"),
    ("location_uncertainty_m", [1, 2]),
])
def test_non_numeric_values(key, value):
    call = entry(0, "A")
    call[key] = value
    data = {"calls": [call]}
    with pytest.raises(ScenarioError, match=r"<scenario>: calls\[0\]: "):
        parse_scenario(data)


@pytest.mark.parametrize("at_s", [-1, -0.001, math.nan, math.inf, -math.inf])
def test_bad_call_time(at_s):
    data = {"calls": [entry(0, "A"), entry(at_s, "B")]}
    with pytest.raises(ScenarioError, match=r"calls\[1\]: at_s must be a non-negative number of seconds"):
        parse_scenario(data)


def test_call_at_time_zero_is_accepted():
    assert parse_scenario({"calls": [entry(0, "A")]}).calls[0].at_s == 0.0


@pytest.mark.parametrize("duration", [0, -5, math.nan, "900", None, [900]])
def test_bad_duration(duration):
    data = valid()
    data["duration_s"] = duration
    with pytest.raises(ScenarioError, match="duration_s must be a positive number of seconds"):
        parse_scenario(data, "bad.yaml")


@pytest.mark.parametrize("duration", [math.inf, True])
def test_infinite_or_boolean_duration_is_refused(duration):
    data = valid()
    data["duration_s"] = duration
    with pytest.raises(ScenarioError, match="duration_s"):
        parse_scenario(data)


# --- load_scenario ----------------------------------------------------------------------------------------------


def test_load_the_single_call_scenario():
    scenario = load_scenario(SINGLE_CALL)
    assert scenario.name == "Single call over Islington"
    assert scenario.description.startswith("A grade I call reports an e-bike")
    assert scenario.duration_s == 900.0
    assert len(scenario.calls) == 1
    call = scenario.calls[0]
    assert call.at_s == 5.0
    assert call.cad_ref == "CAD-20261126-0001"
    assert (call.grade, call.category) == ("I", "dangerous_driving")
    assert (call.latitude, call.longitude) == (51.5412, -0.1027)
    assert call.location_uncertainty_m == 40.0
    assert call.address == "Upper Street, near Highbury Corner, N1"
    assert call.suspect_description.startswith("Male, black hooded top")


def test_load_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "absent.yaml")


def test_load_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("calls: [{at_s: 1\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(path)


def test_load_reports_errors_with_the_path(tmp_path):
    path = tmp_path / "negative.yaml"
    path.write_text("calls:\n  - {at_s: -3, cad_ref: X, grade: I, category: fire, latitude: 51.5, longitude: 0}\n")
    with pytest.raises(ScenarioError, match=r"negative\.yaml: calls\[0\]: at_s must be"):
        load_scenario(path)


def test_load_names_a_nameless_scenario_after_its_file(tmp_path):
    path = tmp_path / "night_shift.yaml"
    path.write_text("calls: []\n")
    assert load_scenario(path).name == "night_shift"
