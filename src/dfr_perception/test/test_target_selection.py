"""Target selection: the incident's words become criteria, tracks are classed by length and
speed, and the track that fits best near the incident is chosen, with a reason."""
import math

import pytest

from dfr_perception.target_selection import (
    CAR,
    PERSON,
    TWO_WHEELER,
    UNKNOWN,
    CandidateTrack,
    SelectionConfig,
    TargetCriteria,
    class_membership,
    infer_class,
    select_target,
)


@pytest.mark.parametrize("category, description, suspect, expected", [
    ("robbery", "phone snatched", "male on an e-bike", TWO_WHEELER),
    ("", "suspect made off on a bike", "", TWO_WHEELER),
    ("", "", "cyclist in a black hoodie", TWO_WHEELER),
    ("theft", "", "youth on a scooter", TWO_WHEELER),
    ("", "moped rider snatching phones", "", TWO_WHEELER),
    ("", "", "man on a motorbike", TWO_WHEELER),
    ("", "", "E-Bike, orange frame", TWO_WHEELER),
    ("", "stolen car seen on the high street", "", CAR),
    ("", "", "white van, two occupants", CAR),
    ("", "", "man in a grey tracksuit", PERSON),
    ("assault", "", "woman, long coat", PERSON),
    ("", "suspect left the car and fled on foot", "", PERSON),
    ("", "", "pedestrian", PERSON),
    ("", "", "", None),
    ("burglary", "alarm activation", None, None),
    # A vehicle's part or place is not how anyone travels.
    ("suspicious_activity", "suspicious people trying car doors", "", PERSON),
    ("theft", "youths breaking into the car park", "", PERSON),
    ("theft", "", "man cutting locks at the bike racks, rode off on a bike", TWO_WHEELER),
])
def test_words_give_the_class(category, description, suspect, expected):
    assert TargetCriteria.from_incident(category, description, suspect).object_class == expected


def test_how_the_suspect_travels_beats_who_they_are_and_the_scene():
    # A person described, travelling on a bike mentioned elsewhere: follow the bike.
    criteria = TargetCriteria.from_incident("robbery", "fled on an e-bike", "man in a red jacket")
    assert criteria.object_class == TWO_WHEELER and "e-bike" in criteria.evidence
    # The vehicle ridden, not the one hit.
    assert TargetCriteria.from_incident("", "moped hit a car then rode off", "").object_class == TWO_WHEELER
    assert TargetCriteria.from_incident("", "the car was hit by a man riding a bike", "").object_class == TWO_WHEELER
    # Word boundaries: no 'car' in 'scarf', no 'van' in 'Vanessa', no 'man' in 'woman'.
    assert TargetCriteria.from_incident("", "", "Vanessa, red scarf").object_class is None


@pytest.mark.parametrize("text, fast", [
    ("the fastest of the group", True), ("speeding along the A10", True), ("travelling at speed", True),
    ("riding slowly", False), ("", False)])
def test_words_for_speed(text, fast):
    criteria = TargetCriteria.from_incident("", text, "on a bike")
    assert criteria.prefer_fast is fast
    assert criteria.object_class == TWO_WHEELER


def test_class_from_length_and_speed():
    assert infer_class(1.8, 8.0) == TWO_WHEELER
    assert infer_class(1.8, 0.0) == TWO_WHEELER          # a bike stopped at the lights is still a bike
    assert infer_class(4.5, 12.0) == CAR
    assert infer_class(0.5, 1.4) == PERSON
    assert infer_class(0.6, 12.0) != PERSON               # nobody walks at 12 m/s
    assert infer_class(1.2, 6.0) == TWO_WHEELER           # between person and bike: the speed decides
    assert infer_class(1.2, 1.0) == PERSON
    assert infer_class(math.nan, 1.0) == UNKNOWN          # no length, slow: could be anything
    assert infer_class(20.0, 8.0) == UNKNOWN              # a bus, a lorry: none of ours
    membership = class_membership(1.8, 8.0)
    assert membership[TWO_WHEELER] == 1.0 and membership[CAR] == 0.0 and membership[PERSON] == 0.0


def track(tid, x, y, vx, vy, size, confidence=0.9, age=5.0):
    return CandidateTrack(tid, (x, y), (vx, vy), size, confidence, age)


def test_fastest_two_wheeler_near_the_incident_beats_a_faster_car_and_a_slower_bike_far_away():
    criteria = TargetCriteria.from_incident("robbery", "suspect speeding away", "male on an e-bike")
    tracks = [
        track("car", 40.0, 10.0, 15.0, 0.0, 4.4),             # faster, but a car
        track("near_bike", 60.0, -30.0, 9.0, 2.0, 1.8),        # the suspect
        track("slow_bike", 20.0, 20.0, 3.0, 0.0, 1.7),         # near, but slower
        track("far_bike", 650.0, 300.0, 7.0, 0.0, 1.9),        # slower, and far
        track("walker", 10.0, 5.0, 1.2, 0.3, 0.5),
    ]
    chosen, reason, scores = select_target(tracks, criteria, incident_xy=(0.0, 0.0))
    assert chosen == "near_bike"
    assert "track near_bike" in reason and "two-wheeler" in reason and "fastest" in reason
    assert scores["car"].excluded is not None and "two-wheeler" in scores["car"].excluded
    assert scores["walker"].excluded is not None
    assert scores["near_bike"].total > scores["far_bike"].total > 0.0
    assert scores["near_bike"].total > scores["slow_bike"].total
    assert scores["near_bike"].inferred_class == TWO_WHEELER and scores["car"].inferred_class == CAR
    assert scores["near_bike"].speed_score == pytest.approx(1.0)       # fastest of the candidates, not the car


def test_tracks_beyond_the_search_radius_or_unsure_are_not_chosen():
    criteria = TargetCriteria(TWO_WHEELER)
    config = SelectionConfig(search_radius_m=300.0)
    tracks = [track("far", 400.0, 0.0, 8.0, 0.0, 1.8), track("faint", 50.0, 0.0, 8.0, 0.0, 1.8, confidence=0.1)]
    chosen, reason, scores = select_target(tracks, criteria, (0.0, 0.0), config)
    assert chosen is None
    assert "no candidate" in reason and "search radius" in reason
    assert "beyond the 300 m search radius" in scores["far"].excluded
    assert "confidence" in scores["faint"].excluded


def test_no_tracks_and_no_words():
    chosen, reason, scores = select_target([], TargetCriteria.from_incident("", "", ""))
    assert chosen is None and scores == {} and "no tracks" in reason
    # With nothing said, the moving track nearest the incident wins over a parked one.
    tracks = [track("parked", 5.0, 0.0, 0.0, 0.0, 4.4), track("moving", 30.0, 0.0, 6.0, 0.0, 1.8)]
    chosen, reason, _ = select_target(tracks, TargetCriteria(), (0.0, 0.0))
    assert chosen == "moving" and "any moving object" in reason


def test_close_scores_are_called_ambiguous():
    tracks = [track("a", 50.0, 0.0, 8.0, 0.0, 1.8), track("b", 52.0, 0.0, 8.0, 0.0, 1.8)]
    _, reason, _ = select_target(tracks, TargetCriteria(TWO_WHEELER), (0.0, 0.0))
    assert "ambiguous" in reason


def test_younger_tracks_count_less():
    tracks = [track("new", 50.0, 0.0, 8.0, 0.0, 1.8, age=0.1), track("old", 50.0, 5.0, 8.0, 0.0, 1.8, age=10.0)]
    chosen, _, scores = select_target(tracks, TargetCriteria(TWO_WHEELER), (0.0, 0.0))
    assert chosen == "old" and scores["new"].quality_score < scores["old"].quality_score


def test_operator_choice_is_an_explicit_track_id():
    tracks = [track("7", 50.0, 0.0, 8.0, 0.0, 1.8), track("8", 60.0, 0.0, 14.0, 0.0, 4.4)]
    chosen, reason, scores = select_target(tracks, TargetCriteria(TWO_WHEELER), (0.0, 0.0), operator_track_id=8)
    assert chosen == "8" and "operator" in reason and "excluded" in reason and set(scores) == {"7", "8"}
    with pytest.raises(ValueError, match=r"track '9'.*not among the current tracks \(7, 8\)"):
        select_target(tracks, TargetCriteria(TWO_WHEELER), operator_track_id="9")


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="finite"):
        select_target([track("a", math.nan, 0.0, 1.0, 0.0, 1.8)], TargetCriteria())
    with pytest.raises(ValueError, match="unique"):
        select_target([track("a", 0.0, 0.0, 1.0, 0.0, 1.8), track("a", 1.0, 0.0, 1.0, 0.0, 1.8)], TargetCriteria())
    with pytest.raises(ValueError, match="confidence"):
        select_target([track("a", 0.0, 0.0, 1.0, 0.0, 1.8, confidence=2.0)], TargetCriteria())
    with pytest.raises(ValueError, match="incident position"):
        select_target([track("a", 0.0, 0.0, 1.0, 0.0, 1.8)], TargetCriteria(), incident_xy=(math.nan, 0.0))
    with pytest.raises(ValueError, match="object_class"):
        TargetCriteria("lorry")


def test_a_video_is_read_only_for_what_the_detector_can_find():
    from dfr_perception.dnn_detector import DnnDetector
    from dfr_perception.motion_detector import MotionDetector
    from dfr_perception.target_selection import can_look_for
    ebike = TargetCriteria.from_incident("dangerous_driving", "E-bike ridden at speed")
    on_foot = TargetCriteria.from_incident("robbery", "robbery, suspects made off on foot")
    fast = TargetCriteria.from_incident("", "someone sped off")
    vague = TargetCriteria.from_incident("noise", "loud music")
    assert on_foot.object_class == PERSON and vague.object_class is None and not vague.prefer_fast
    for criteria in (ebike, fast):
        assert can_look_for(criteria, MotionDetector.finds_people)
    assert not can_look_for(on_foot, MotionDetector.finds_people)
    assert can_look_for(on_foot, DnnDetector.finds_people)
    assert not can_look_for(vague, True) and not can_look_for(None, True)
