"""The seeded call stream a scenario can describe instead of listing every call."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dfr_intake.call_stream import CallStreamError, generate_calls, parse_call_stream
from dfr_intake.scenario import ScenarioError, load_scenario, parse_scenario

REPO = Path(__file__).resolve().parents[3]
EVENING = REPO / "config" / "scenarios" / "islington_evening.yaml"


def spec(**over):
    data = {"seed": 1, "duration_s": 7200, "calls_per_hour": [30, 60], "area": [51.52, -0.15, 51.57, -0.07],
            "categories": {"assault": {"share": 3, "grades": {"I": 1}}, "noise": {"share": 1, "grades": {"R": 1}}},
            "repeat_call_share": 0.0}
    data.update(over)
    return parse_call_stream(data)


def test_the_same_seed_gives_the_same_evening_and_another_seed_another():
    assert generate_calls(spec()) == generate_calls(spec())
    assert generate_calls(spec()) != generate_calls(spec(seed=2))


def test_rates_shares_and_area_are_kept():
    calls = generate_calls(spec(seed=3, duration_s=36000, calls_per_hour=[60]))
    assert 540 <= len(calls) <= 660                              # 600 expected, Poisson
    categories = Counter(c["category"] for c in calls)
    assert categories["assault"] / len(calls) == pytest.approx(0.75, abs=0.05)
    assert all(c["grade"] == ("I" if c["category"] == "assault" else "R") for c in calls)
    assert all(51.52 <= c["latitude"] <= 51.57 and -0.15 <= c["longitude"] <= -0.07 for c in calls)
    assert [c["at_s"] for c in calls] == sorted(c["at_s"] for c in calls)
    assert len({c["cad_ref"] for c in calls}) == len(calls)


def test_the_hourly_profile_shapes_the_arrivals():
    calls = generate_calls(spec(seed=4, calls_per_hour=[10, 100]))
    first_hour = sum(1 for c in calls if c["at_s"] < 3600)
    assert first_hour * 4 < len(calls) - first_hour


def test_second_callers_report_the_same_event_nearby_and_later():
    calls = generate_calls(spec(seed=5, repeat_call_share=1.0))
    repeats = [c for c in calls if c["cad_ref"].endswith("-R")]
    assert len(repeats) * 2 == len(calls)
    by_ref = {c["cad_ref"]: c for c in calls}
    for again in repeats:
        first = by_ref[again["cad_ref"][:-2]]
        assert 30 <= again["at_s"] - first["at_s"] <= 300.1 and again["category"] == first["category"]


@pytest.mark.parametrize("change, message", [
    ({"categories": {"assault": {"share": 1, "grades": {"X": 1}}}}, "unknown grade"),
    ({"area": [51.6, -0.1, 51.5, 0.0]}, "not a box"),
    ({"calls_per_hour": [-1]}, "must not be negative"),
    ({"calls_per_hour": [float("nan")]}, "finite number"),
    ({"hotspot_share": 2}, r"hotspot_share must be in \[0, 1\]"),
    ({"repeat_delay_s": [300, 30]}, "low <= high"),
    ({"hotspots": [{"name": "x", "latitude": 51.5}]}, "lacks longitude"),
])
def test_malformed_specs_are_refused_with_the_reason(change, message):
    with pytest.raises(CallStreamError, match=message):
        spec(**change)


def test_a_scenario_puts_the_stream_and_its_listed_calls_together():
    data = {"duration_s": 3600, "calls": [{"at_s": 5, "cad_ref": "STORY-1", "grade": "I", "category": "assault",
                                           "latitude": 51.54, "longitude": -0.10}],
            "call_stream": {"seed": 1, "duration_s": 3600, "calls_per_hour": 20, "area": [51.52, -0.15, 51.57, -0.07],
                            "categories": {"theft": {"share": 1, "grades": {"S": 1}}}}}
    scenario = parse_scenario(data)
    refs = [c.cad_ref for c in scenario.calls]
    assert "STORY-1" in refs and len(refs) > 5
    with pytest.raises(ScenarioError, match="call_stream lacks"):
        parse_scenario({"call_stream": {"seed": 1}})


def test_the_shipped_evening_has_plausible_proportions():
    calls = load_scenario(EVENING).calls
    grades = Counter(c.grade for c in calls)
    assert 120 <= len(calls) <= 200
    assert 0.2 <= grades["I"] / len(calls) <= 0.4            # the Met: about 27 % of 999 calls are grade I
    assert any(c.category == "protest" for c in calls)         # which the launch policy must refuse
