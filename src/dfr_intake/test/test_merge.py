"""Unit tests of merging in dfr_intake.incident_book: calls about one event become one incident.

Space, time and category decide which open incident a call joins; the merged incident
keeps every call, takes the most urgent grade, and the launch policy is applied again
(an excluded category never becomes eligible by merging). Closing goes through the book.
"""
from __future__ import annotations

import dataclasses
import math
import random
from pathlib import Path

import pytest
import yaml

from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_common.geodesy import ground_distance_m as reference_distance_m
from dfr_intake.calls import Call
from dfr_intake.incident_book import (
    ClosedIncidentError,
    ConflictingCallError,
    IncidentBook,
    MergeRules,
    UnknownIncidentError,
    decide_incident,
    ground_distance_m,
)
from dfr_intake.launch_policy import LaunchPolicy

REPO = Path(__file__).resolve().parents[3]
PARAMS = yaml.safe_load((REPO / "config" / "intake.yaml").read_text())["/dfr/intake"]["ros__parameters"]

ORIGIN = LocalFrame(GeoPoint(51.5412, -0.1027, 0.0))       # Upper Street, Islington
T0 = 1_790_000_000.0


@pytest.fixture(scope="module")
def policy() -> LaunchPolicy:
    p = PARAMS["policy"]
    return LaunchPolicy(frozenset(p["eligible_grades"]), frozenset(p["eligible_categories"]),
                        frozenset(p["excluded_categories"]))


@pytest.fixture(scope="module")
def rules(policy) -> MergeRules:
    return MergeRules.from_parameters(PARAMS["merge_radius_m"], PARAMS["merge_window_s"], PARAMS["merge_groups"],
                                      PARAMS["categories"], policy.excluded_categories)


@pytest.fixture
def book(rules) -> IncidentBook:
    return IncidentBook(merge_rules=rules)


def call(cad_ref: str, east: float = 0.0, north: float = 0.0, dt: float = 0.0, grade: str = "I",
         category: str = "robbery", uncertainty: float = 0.0, **more) -> Call:
    """A call east and north metres from the origin, dt seconds after T0."""
    latitude, longitude, _ = ORIGIN.to_geodetic(east, north)
    return Call(cad_ref=cad_ref, call_time_s=T0 + dt, grade=grade, category=category, latitude=latitude,
                longitude=longitude, location_uncertainty_m=uncertainty, **more)


# --- the rules and their configuration --------------------------------------------------------------------------


def test_the_configured_rules(rules):
    assert rules.radius_m == 150.0 and rules.window_s == 1200.0
    assert set(rules.groups) == {frozenset({"dangerous_driving", "vehicle_pursuit", "traffic_collision"}),
                                 frozenset({"robbery", "theft", "burglary"}),
                                 frozenset({"assault", "weapons", "public_order"})}


def test_defaults_match_the_configuration():
    assert MergeRules().radius_m == PARAMS["merge_radius_m"]
    assert MergeRules().window_s == PARAMS["merge_window_s"]
    assert MergeRules().groups == ()


def test_groups_are_parsed_from_comma_separated_strings():
    parsed = MergeRules.from_parameters(100, 60, [" a,b ,, c", "d"])
    assert parsed.groups == (frozenset("abc"), frozenset("d"))
    assert parsed.radius_m == 100.0 and isinstance(parsed.radius_m, float)


@pytest.mark.parametrize("radius,window,groups,categories,excluded,message", [
    (-1.0, 60.0, [], None, (), r"merge_radius_m: -1\.0 is not a non-negative number"),
    (150.0, math.nan, [], None, (), r"merge_window_s: nan is not a non-negative number"),
    (150.0, math.inf, [], None, (), r"merge_window_s: inf"),
    (150.0, 60.0, ["robbery, parking"], {"robbery", "theft"}, (), r"merge_groups\[0\].*unknown categories parking"),
    (150.0, 60.0, ["robbery, theft", "theft, burglary"], None, (),
     r"merge_groups: category 'theft' is in group 1 and group 2"),
    (150.0, 60.0, ["robbery", " , "], None, (), r"merge_groups\[1\] \(' , '\): names no category"),
    (150.0, 60.0, ["assault, protest"], None, {"protest"},
     r"merge_groups\[0\].*protest is excluded by the launch policy and may not be grouped"),
])
def test_bad_merge_parameters_are_refused_clearly(radius, window, groups, categories, excluded, message):
    with pytest.raises(ValueError, match=message):
        MergeRules.from_parameters(radius, window, groups, categories, excluded)


def test_an_excluded_category_alone_in_a_group_is_harmless():
    assert MergeRules.from_parameters(150, 60, ["protest"], excluded_categories={"protest"}).groups == (
        frozenset({"protest"}),)


def test_compatibility(rules):
    assert rules.compatible("robbery", "robbery")
    assert rules.compatible("protest", "protest")
    assert rules.compatible("robbery", "burglary") and rules.compatible("burglary", "robbery")
    assert rules.compatible("dangerous_driving", "vehicle_pursuit")
    assert not rules.compatible("robbery", "assault")
    assert not rules.compatible("protest", "public_order")
    assert not rules.compatible("fire", "noise")


def test_rules_are_immutable(rules):
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.radius_m = 1e6


def test_ground_distance_agrees_with_the_common_geodesy():
    rng = random.Random(7)
    for _ in range(500):
        lat, lon = rng.uniform(-70.0, 70.0), rng.uniform(-179.0, 179.0)
        lat2, lon2 = lat + rng.uniform(-0.2, 0.2), lon + rng.uniform(-0.2, 0.2)
        assert ground_distance_m(lat, lon, lat2, lon2) == pytest.approx(
            float(reference_distance_m(lat, lon, lat2, lon2)), rel=1e-3)
    assert ground_distance_m(51.5, -0.1, 51.5, -0.1) == 0.0
    assert ground_distance_m(0.0, 179.9995, 0.0, -179.9995) == pytest.approx(111.3, rel=1e-2)   # across 180°


# --- space ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("north,merges", [(0.0, True), (140.0, True), (149.0, True), (151.0, False),
                                          (300.0, False)])
def test_a_call_within_the_radius_merges(book, policy, north, merges):
    first = book.open_incident(call("A"), True, "ok")
    assert (book.merge_target(call("B", north=north, dt=60)) is first) is merges


def test_both_uncertainties_widen_the_radius(book):
    first = book.open_incident(call("A", uncertainty=100.0), True, "ok")
    # 150 + 100 + 60 = 310 m
    assert book.merge_target(call("B", east=300.0, dt=60, uncertainty=60.0)) is first
    assert book.merge_target(call("C", east=320.0, dt=60, uncertainty=60.0)) is None
    assert book.merge_target(call("D", east=320.0, dt=60, uncertainty=80.0)) is first


def test_the_nearest_open_incident_wins(book):
    far = book.open_incident(call("A", north=100.0), True, "ok")
    near = book.open_incident(call("B", north=-40.0), True, "ok")
    assert book.merge_target(call("C", dt=30)) is near
    assert book.merge_target(call("D", north=90.0, dt=30)) is far


def test_distance_counts_from_the_nearest_call_of_an_incident(book, policy):
    one = book.open_incident(call("A", north=-100.0), True, "ok")
    book.open_incident(call("B", north=120.0), True, "ok")
    book.add_call(one, call("C", north=110.0, dt=60), policy)       # one now also has a call at 110 m north
    assert book.merge_target(call("D", north=112.0, dt=90)) is one


def test_equally_near_incidents_go_to_the_earliest_opened(book):
    first = book.open_incident(call("A", north=50.0), True, "ok")
    book.open_incident(call("B", north=-50.0), True, "ok")
    assert book.merge_target(call("C", dt=10)) is first


# --- time -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dt,merges", [(0.0, True), (1199.0, True), (1200.0, True), (1201.0, False),
                                       (-1199.0, True), (-1201.0, False), (86400.0, False)])
def test_a_call_within_the_window_merges(book, dt, merges):
    first = book.open_incident(call("A"), True, "ok")
    assert (book.merge_target(call("B", north=10.0, dt=dt)) is first) is merges


def test_the_window_runs_from_the_incidents_latest_calls(book, policy):
    # A moving event (a pursuit): each sighting is near the last one, and the incident follows it.
    def sighting(cad_ref, north, dt, category="vehicle_pursuit"):
        return call(cad_ref, north=north, dt=dt, category=category, uncertainty=50.0)     # reach 250 m

    incident = book.open_incident(sighting("A", 0.0, 0.0), True, "ok")
    assert book.accept_call(sighting("B", 200.0, 600.0), policy).record is incident
    assert book.accept_call(sighting("C", 400.0, 1500.0, "dangerous_driving"), policy).record is incident
    assert book.accept_call(sighting("D", 600.0, 2400.0), policy).record is incident
    assert incident.cad_refs == ["A", "B", "C", "D"]
    # Where the event was forty minutes ago is no longer where it is: a call there now is a new event.
    assert book.merge_target(sighting("E", 0.0, 2500.0)) is None


def test_a_call_that_reaches_intake_late_still_finds_its_incident(book, policy):
    incident = book.open_incident(call("A", dt=1000.0), True, "ok")
    book.add_call(incident, call("B", dt=2000.0), policy)
    assert book.merge_target(call("C", north=20.0, dt=100.0)) is incident      # 900 s before the first call


def test_a_large_window_and_a_zero_window(policy):
    forever = IncidentBook(merge_rules=MergeRules(window_s=1e9))
    first = forever.open_incident(call("A"), True, "ok")
    assert forever.merge_target(call("B", dt=5e8)) is first
    instant = IncidentBook(merge_rules=MergeRules(window_s=0.0))
    first = instant.open_incident(call("A"), True, "ok")
    assert instant.merge_target(call("B")) is first
    assert instant.merge_target(call("C", dt=0.001)) is None


def test_changing_the_rules_takes_effect(book, policy):
    first = book.open_incident(call("A"), True, "ok")
    assert book.merge_target(call("B", dt=2000)) is None
    book.merge_rules = MergeRules(window_s=3600.0)
    assert book.merge_target(call("B", dt=2000)) is first


# --- category ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("first,second,merges", [
    ("robbery", "robbery", True),
    ("robbery", "theft", True),
    ("burglary", "theft", True),
    ("dangerous_driving", "traffic_collision", True),
    ("assault", "weapons", True),
    ("robbery", "assault", False),
    ("fire", "traffic_collision", False),
    ("protest", "protest", True),
    ("protest", "public_order", False),
    ("public_order", "protest", False),
    ("missing_person", "concern_for_welfare", False),
])
def test_a_call_merges_only_with_a_compatible_category(book, first, second, merges):
    incident = book.open_incident(call("A", category=first), True, "ok")
    assert (book.merge_target(call("B", dt=30, category=second)) is incident) is merges


def test_a_call_must_be_compatible_with_every_call_of_the_incident(book, policy):
    incident = book.open_incident(call("A", category="robbery"), True, "ok")
    book.add_call(incident, call("B", dt=10, category="assault"), policy)     # an operator's merge, not the rules'
    assert book.merge_target(call("C", dt=20, category="robbery")) is None
    assert book.merge_target(call("D", dt=20, category="assault")) is None


def test_an_incompatible_incident_nearer_does_not_hide_a_compatible_one(book):
    book.open_incident(call("A", category="fire"), True, "ok")
    robbery = book.open_incident(call("B", north=100.0, category="robbery"), True, "ok")
    assert book.merge_target(call("C", north=5.0, dt=30, category="theft")) is robbery


# --- closed incidents and no rules ------------------------------------------------------------------------------


def test_a_closed_incident_never_takes_a_call(book, policy):
    incident = book.open_incident(call("A"), True, "ok")
    book.close(incident.incident_id, "resolved on scene", T0 + 50)
    assert book.merge_target(call("B", dt=60)) is None
    outcome = book.accept_call(call("B", dt=60), policy)
    assert outcome.action == "opened" and outcome.record is not incident
    assert incident.calls == [call("A")]
    with pytest.raises(ClosedIncidentError, match="INC-000001 is closed"):
        book.add_call(incident, call("C", dt=70), policy)


def test_a_closed_incident_is_skipped_for_the_next_open_one(book):
    near = book.open_incident(call("A"), True, "ok")
    further = book.open_incident(call("B", north=120.0), True, "ok")
    book.close(near.incident_id, "duplicate", T0 + 5)
    assert book.merge_target(call("C", north=10.0, dt=30)) is further


def test_without_rules_calls_never_merge(policy):
    book = IncidentBook()
    first = book.open_incident(call("A"), True, "ok")
    assert book.merge_target(call("B")) is None
    assert book.accept_call(call("B"), policy).record is not first


# --- adding a call ----------------------------------------------------------------------------------------------


def test_merging_keeps_every_call_reference_in_order(book, policy):
    outcomes = [book.accept_call(call(f"CAD-{i}", north=10.0 * i, dt=30.0 * i), policy) for i in range(6)]
    record = outcomes[0].record
    assert [o.action for o in outcomes] == ["opened"] + ["merged"] * 5
    assert all(o.record is record for o in outcomes)
    assert [o.merged for o in outcomes] == [False] + [True] * 5
    assert record.cad_refs == [f"CAD-{i}" for i in range(6)]
    assert record.first_call.cad_ref == "CAD-0"
    assert record.revision == 6
    assert list(book.incidents) == ["INC-000001"] and book.next_incident_id == "INC-000002"
    for i in range(6):
        assert book.find_by_cad_ref(f"CAD-{i}") is record


def test_a_repeat_of_a_merged_call_changes_nothing_and_says_it_was_merged(book, policy):
    book.accept_call(call("A"), policy)
    merged = book.accept_call(call("B", dt=30), policy)
    again = book.accept_call(call("B", dt=30), policy)
    assert again.action == "repeat" and again.merged is True and again.record is merged.record
    assert merged.record.revision == 2 and len(merged.record.calls) == 2
    first_again = book.accept_call(call("A"), policy)
    assert first_again.action == "repeat" and first_again.merged is False


def test_a_merged_reference_reused_with_other_details_is_a_conflict(book, policy):
    book.accept_call(call("A"), policy)
    book.accept_call(call("B", dt=30), policy)
    with pytest.raises(ConflictingCallError, match="'B' was already reported for INC-000001 with a different grade"):
        book.accept_call(call("B", dt=30, grade="S"), policy)


def test_add_call_refuses_a_known_reference_and_a_foreign_record(book, policy):
    record = book.open_incident(call("A"), True, "ok")
    with pytest.raises(ValueError, match="'A' is already part of INC-000001"):
        book.add_call(record, call("A", dt=5), policy)
    other = IncidentBook().open_incident(call("X"), True, "ok")
    with pytest.raises(ValueError, match="not an incident of this book"):
        book.add_call(other, call("Y"), policy)
    with pytest.raises(ValueError, match="'A' is already part of INC-000001"):
        book.open_incident(call("A", dt=9), True, "ok")
    assert record.revision == 1 and record.calls == [call("A")]


# --- grade and policy on merge ----------------------------------------------------------------------------------


def test_the_most_urgent_grade_wins(book, policy):
    record = book.accept_call(call("A", grade="E"), policy).record
    assert record.grade == "E"
    book.accept_call(call("B", dt=10, grade="R"), policy)
    assert record.grade == "E"
    book.accept_call(call("C", dt=20, grade="S", category="burglary"), policy)
    assert record.grade == "S" and record.category == "burglary"
    book.accept_call(call("D", dt=30, grade="I", category="theft"), policy)
    assert record.grade == "I" and record.category == "theft"
    book.accept_call(call("E", dt=40, grade="I", category="robbery"), policy)
    assert record.grade == "I" and record.category == "theft"         # the earliest among equally urgent calls
    assert record.most_urgent_call.cad_ref == "D"


def test_a_more_urgent_eligible_call_makes_the_incident_eligible(book, policy):
    record = book.accept_call(call("A", grade="E"), policy).record
    assert not record.drone_eligible and record.policy_reason == "grade E is not eligible for a drone (eligible: I, S)"
    book.accept_call(call("B", dt=60, grade="I"), policy)
    assert record.drone_eligible
    assert record.policy_reason == "grade I robbery: eligible for a drone (call B, one of 2 merged calls)"


def test_an_eligible_incident_stays_eligible_when_a_lesser_call_joins(book, policy):
    record = book.accept_call(call("A", grade="S"), policy).record
    assert record.drone_eligible
    book.accept_call(call("B", dt=60, grade="R", category="theft"), policy)
    assert record.drone_eligible
    assert record.policy_reason == "grade S robbery: eligible for a drone (call A, one of 2 merged calls)"


def test_grades_and_categories_are_not_combined_across_calls(book, policy):
    # Theft is not a drone category; burglary is, but this burglary call is grade E. Neither alone would get a
    # drone, so together they do not either, although the incident's grade is I and one category is eligible.
    record = book.accept_call(call("A", grade="I", category="theft"), policy).record
    book.accept_call(call("B", dt=60, grade="E", category="burglary"), policy)
    assert record.grade == "I"
    assert not record.drone_eligible
    assert record.policy_reason == ("category 'theft' is not on the list of categories a drone may attend "
                                    "(call A, one of 2 merged calls)")


@pytest.mark.parametrize("grades", [("I", "I"), ("I", "S"), ("R", "I"), ("S", "S", "I")])
def test_a_protest_never_becomes_eligible_by_merging(book, policy, grades):
    record = book.accept_call(call("P0", grade=grades[0], category="protest"), policy).record
    for i, grade in enumerate(grades[1:], 1):
        outcome = book.accept_call(call(f"P{i}", dt=60 * i, north=20 * i, grade=grade, category="protest"), policy)
        assert outcome.action == "merged" and outcome.record is record
        assert not record.drone_eligible
        assert "excluded from drone response by policy" in record.policy_reason


def test_calls_near_a_protest_are_decided_on_their_own(book, policy):
    protest = book.accept_call(call("P", category="protest"), policy).record
    assault = book.accept_call(call("A", dt=60, category="assault"), policy)
    disorder = book.accept_call(call("D", dt=90, category="public_order"), policy)
    assert assault.action == "opened" and assault.record is not protest and assault.record.drone_eligible
    assert disorder.record is assault.record                           # public order joins the assault, not the protest
    assert not protest.drone_eligible and protest.calls == [call("P", category="protest")]


def test_where_rules_group_an_excluded_category_exclusion_wins(policy):
    # from_parameters refuses such a group; a hand-built rule set that has one still never flies over a protest.
    book = IncidentBook(merge_rules=MergeRules(groups=(frozenset({"protest", "assault", "public_order"}),)))
    protest = book.accept_call(call("P", category="protest"), policy).record
    book.accept_call(call("A", dt=30, category="assault"), policy)
    assert protest.cad_refs == ["P", "A"] and not protest.drone_eligible
    assert protest.policy_reason.startswith("category 'protest' is excluded from drone response by policy (call P")
    assault = book.accept_call(call("B", north=5000.0, dt=30, category="assault"), policy).record
    assert assault.drone_eligible
    book.accept_call(call("Q", north=5010.0, dt=40, category="protest"), policy)
    assert assault.cad_refs == ["B", "Q"] and not assault.drone_eligible and assault.revision == 2
    assert "an excluded call keeps the whole incident from a drone" in assault.policy_reason


def test_a_single_call_incident_is_decided_exactly_as_the_policy_decides(policy):
    for grade in "ISER":
        for category in PARAMS["categories"]:
            one = call("A", grade=grade, category=category)
            assert decide_incident(policy, [one]) == policy.decide(one)
    with pytest.raises(ValueError, match="at least one call"):
        decide_incident(policy, [])


# --- reassessing and closing ------------------------------------------------------------------------------------


def test_reassess_applies_a_changed_policy(book, policy):
    record = book.accept_call(call("A", grade="S", category="theft"), policy).record
    assert not record.drone_eligible
    assert book.reassess(record.incident_id, policy) is False and record.revision == 1
    wider = dataclasses.replace(policy, eligible_categories=policy.eligible_categories | {"theft"})
    assert book.reassess(record.incident_id, wider) is True
    assert record.drone_eligible and record.revision == 2
    assert record.policy_reason == "grade S theft: eligible for a drone"
    book.close(record.incident_id, "arrest made", T0 + 600)
    with pytest.raises(ClosedIncidentError):
        book.reassess(record.incident_id, policy)


def test_closing_goes_through_the_book(book, policy):
    record = book.accept_call(call("A"), policy).record
    other = book.accept_call(call("B", north=5000.0), policy).record
    closed = book.close(record.incident_id, "resolved on scene", T0 + 900.5)
    assert closed is record
    assert not record.open and record.revision == 2
    assert record.close_reason == "resolved on scene" and record.closed_at_s == T0 + 900.5
    assert book.open_incidents() == [other]
    assert book.find_by_cad_ref("A") is record                 # a closed incident's calls are still known
    assert book.accept_call(call("A"), policy).action == "repeat"


def test_closing_refuses_what_it_cannot_do(book, policy):
    record = book.accept_call(call("A"), policy).record
    with pytest.raises(UnknownIncidentError, match="'INC-999999' is not an incident intake knows"):
        book.close("INC-999999", "x", T0)
    with pytest.raises(ValueError, match="reason: a closed incident needs the reason"):
        book.close(record.incident_id, "  ", T0)
    with pytest.raises(ValueError, match="time_s: nan is not a valid time"):
        book.close(record.incident_id, "done", math.nan)
    assert record.open and record.revision == 1
    book.close(record.incident_id, "done", T0)
    with pytest.raises(ClosedIncidentError, match="INC-000001 is already closed \\(done\\)"):
        book.close(record.incident_id, "again", T0 + 1)
    assert record.revision == 2 and record.close_reason == "done"


# --- a journal that fails leaves the book as it was -------------------------------------------------------------


class FailingJournal:
    def __init__(self):
        self.fail = False
        self.events = []

    def _write(self, *event):
        if self.fail:
            raise OSError("disk full")
        self.events.append(event)

    def record_opened(self, record):
        self._write("opened", record.incident_id, record.revision)

    def record_merged(self, record, call):
        self._write("merged", record.incident_id, record.revision, call.cad_ref)

    def record_updated(self, record):
        self._write("updated", record.incident_id, record.revision)

    def record_closed(self, incident_id, reason, time_s):
        self._write("closed", incident_id, reason, time_s)


def test_every_change_is_journaled_before_it_is_made_and_not_made_when_that_fails(rules, policy):
    journal = FailingJournal()
    book = IncidentBook(merge_rules=rules, journal=journal)
    record = book.accept_call(call("A", grade="E"), policy).record
    book.accept_call(call("B", dt=10, grade="I"), policy)
    assert journal.events == [("opened", "INC-000001", 1), ("merged", "INC-000001", 2, "B")]
    before = dataclasses.replace(record, calls=list(record.calls))
    journal.fail = True
    with pytest.raises(OSError):
        book.accept_call(call("C", dt=20, grade="S"), policy)          # a merge
    with pytest.raises(OSError):
        book.accept_call(call("D", north=9000.0), policy)             # a new incident
    with pytest.raises(OSError):
        book.close(record.incident_id, "done", T0 + 30)
    with pytest.raises(OSError):
        book.reassess(record.incident_id, LaunchPolicy(frozenset(), frozenset(), frozenset()))
    assert record == before
    assert list(book.incidents) == ["INC-000001"] and book.next_incident_id == "INC-000002"
    assert book.find_by_cad_ref("C") is None and book.find_by_cad_ref("D") is None
    journal.fail = False
    assert book.accept_call(call("D", north=9000.0), policy).record.incident_id == "INC-000002"
    assert book.accept_call(call("C", dt=20, grade="S"), policy).record is record and record.revision == 3
