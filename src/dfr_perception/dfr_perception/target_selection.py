"""Which ground track is the suspect: from the incident's words to a chosen track, with reasons.

The call taker's words ("male on an e-bike, speeding towards the high street") say what
to look for; the tracks on the ground say what is there. A track's class is read from
its length on the ground and its speed (a detector's class label, where there is one,
is not trusted over that: a motion detector has none). Candidates are scored on class,
speed, distance from the incident and track quality; the reason says why the winner
won, so an operator can overrule it with a track id of their own.

Positions are ENU metres in the frame of the incident position given; speeds m/s.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from dfr_common.documented import documented

TWO_WHEELER = "two_wheeler"
CAR = "car"
PERSON = "person"
UNKNOWN = "unknown"
CLASSES = (TWO_WHEELER, CAR, PERSON)

_CLASS_WORDS = {
    TWO_WHEELER: ("e-bike", "ebike", "e bike", "e-bikes", "ebikes", "bike", "bikes", "bicycle", "bicycles",
                  "cyclist", "cyclists", "push bike", "pedal cycle", "scooter", "e-scooter", "escooter",
                  "moped", "mopeds", "motorbike", "motorbikes", "motorcycle", "motorcycles", "motorcyclist",
                  "two-wheeler", "two wheeler", "rider"),
    CAR: ("car", "cars", "van", "vans", "suv", "taxi", "minicab", "hatchback", "saloon", "estate car", "pickup",
          "4x4"),
    PERSON: ("man", "men", "woman", "women", "person", "people", "pedestrian", "pedestrians", "male", "female",
             "boy", "boys", "girl", "girls", "youth", "youths", "teenager", "teenagers"),
}
# Travelling on foot, said outright, beats a vehicle named in the same words ("left the car, on foot").
_ON_FOOT = ("on foot", "pedestrian", "pedestrians", "walking")
_FAST = ("fastest", "speeding", "at speed", "high speed", "sped off", "sped away", "racing", "fast")
# A vehicle word right before one of these names a part or a place, not how anyone travels
# ("trying car doors", "in the car park").
_NOT_TRAVEL = ("door", "doors", "window", "windows", "park", "parks", "tyre", "tyres", "wheel", "wheels", "boot",
               "bonnet", "mirror", "mirrors", "alarm", "alarms", "keys", "shed", "rack", "racks", "lane")
# A vehicle word right after one of these is how the suspect travels.
_RIDING = ("on", "on a", "on an", "in", "in a", "in an", "riding", "riding a", "riding an", "driving",
           "driving a", "driving an", "aboard")


def _phrase_positions(text: str, phrases: Iterable[str]) -> list[tuple[int, str]]:
    """(character position, phrase) of each whole-word occurrence."""
    found = []
    for phrase in phrases:
        pattern = r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])"
        found.extend((m.start(), phrase) for m in re.finditer(pattern, text))
    return sorted(found)


@dataclass(frozen=True)
class TargetCriteria:
    """What the incident says to look for.

    object_class: one of CLASSES, or None when the words do not say. prefer_fast: the words
    say the suspect is moving fast. evidence: the words that decided, for the reason.
    """

    object_class: str | None = None
    prefer_fast: bool = False
    evidence: tuple[str, ...] = ()

    def __post_init__(self):
        if self.object_class is not None and self.object_class not in CLASSES:
            raise ValueError(f"object_class must be one of {', '.join(CLASSES)} or None, got {self.object_class!r}")

    @classmethod
    def from_incident(cls, category: str | None = "", description: str | None = "",
                      suspect_description: str | None = "") -> TargetCriteria:
        """Criteria from an incident's plain-English fields.

        How the suspect travels decides, from the most specific field that says it
        (suspect description, then description, then category): on foot makes a person;
        else a vehicle named after 'on', 'in', 'riding' or 'driving'; else the first
        vehicle named. Only when no field names a way of travelling do words for people
        ("man", "woman") make a person: "a man in a red jacket" may well be on the bike
        the description mentions.
        """
        texts = [str(t or "").lower() for t in (suspect_description, description, category)]
        found = next((f for f in map(_travel_in, texts) if f is not None), None)
        if found is None:
            people = [w for text in texts for _, w in _phrase_positions(text, _CLASS_WORDS[PERSON])]
            found = (PERSON, people[0]) if people else None
        object_class, evidence = (found[0], [found[1]]) if found else (None, [])
        fast_words = [w for text in texts for _, w in _phrase_positions(text, _FAST)]
        if fast_words:
            evidence.append(fast_words[0])
        return cls(object_class, bool(fast_words), tuple(evidence))

    def describe(self) -> str:
        what = {TWO_WHEELER: "a two-wheeler", CAR: "a car", PERSON: "a person", None: "any moving object"}
        words = f" (from '{', '.join(self.evidence)}')" if self.evidence else ""
        return f"{what[self.object_class]}{', the fastest' if self.prefer_fast else ''}{words}"


def can_look_for(criteria: TargetCriteria | None, finds_people: bool) -> bool:
    """Whether a drone's video is worth reading for these criteria: they say what to look for (a class, or
    the fastest mover), and a detector that cannot find people is not asked to find a person."""
    if criteria is None or (criteria.object_class is None and not criteria.prefer_fast):
        return False
    return criteria.object_class != PERSON or finds_people


def _travel_in(text: str) -> tuple[str, str] | None:
    """(class, word) of how one field says the suspect travels, or None."""
    on_foot = _phrase_positions(text, _ON_FOOT)
    if on_foot:
        return PERSON, on_foot[0][1]
    vehicles = sorted((pos, word, c) for c in (TWO_WHEELER, CAR)
                      for pos, word in _phrase_positions(text, _CLASS_WORDS[c])
                      if not re.match(r"\s+(" + "|".join(_NOT_TRAVEL) + r")(?![\w-])", text[pos + len(word):]))
    for pos, word, c in vehicles:
        before = text[:pos].rstrip()
        if any(re.search(r"(?<![\w-])" + re.escape(r) + r"$", before) for r in _RIDING):
            return c, word
    return (vehicles[0][2], vehicles[0][1]) if vehicles else None


# --------------------------------------------------------------------------- configuration
@dataclass
class ClassModel:
    """What one class looks like on the ground: its length and typical speed (membership 1 inside)."""

    length_m: tuple[float, float]
    speed_m_s: tuple[float, float]
    length_tolerance_m: float        # membership falls to 0 this far outside length_m
    speed_tolerance_m_s: float       # ... and speed_m_s
    atypical_speed_membership: float   # membership kept at any speed outside the typical range


def _default_models() -> dict[str, ClassModel]:
    return {
        # E-bikes and mopeds: 1.4-2.5 m long, usually 4-15 m/s, but stop at lights.
        TWO_WHEELER: ClassModel((1.4, 2.5), (4.0, 15.0), 0.4, 5.0, 0.5),
        CAR: ClassModel((3.5, 6.0), (0.0, 40.0), 0.8, 10.0, 0.5),
        # People: under 1 m, under 3 m/s; a running suspect is faster, nobody runs 10 m/s for long.
        PERSON: ClassModel((0.0, 1.0), (0.0, 3.0), 0.4, 4.0, 0.0),
    }


@dataclass
class SelectionConfig:
    """How candidate tracks are classified and scored."""

    classes: dict[str, ClassModel] = field(default_factory=_default_models)
    unknown_length_membership: float = documented(
        0.5, "class membership from length when a track's length is unknown", 0.0, 1.0)
    min_class_membership: float = documented(
        0.3, "a track less like the wanted class than this is not a candidate", 0.0, 1.0)
    search_radius_m: float = documented(800.0, "tracks farther from the incident are not candidates", 1.0, 1e5)
    min_confidence: float = documented(0.3, "tracks with lower confidence are not candidates", 0.0, 1.0)
    mature_age_s: float = documented(2.0, "a track this old counts fully; younger ones count less", 0.0, 600.0)
    class_weight: float = documented(3.0, "weight of looking like the wanted class", 0.0, 100.0)
    speed_weight: float = documented(2.0, "weight of speed when the incident says fast", 0.0, 100.0)
    moving_weight: float = documented(0.5, "weight of speed otherwise (a fleeing suspect moves)", 0.0, 100.0)
    speed_scale_m_s: float = documented(15.0, "speed at which the speed score is full", 0.1, 100.0)
    distance_weight: float = documented(1.5, "weight of nearness to the incident", 0.0, 100.0)
    quality_weight: float = documented(1.0, "weight of track confidence times maturity", 0.0, 100.0)
    ambiguity_margin: float = documented(
        0.3, "a runner-up scoring within this of the winner makes the choice ambiguous (said in the reason)",
        0.0, 100.0)

    def __post_init__(self):
        missing = [c for c in CLASSES if c not in self.classes]
        if missing:
            raise ValueError(f"classes lacks a model for {', '.join(missing)}")
        for name, model in self.classes.items():
            lo, hi = model.length_m
            slo, shi = model.speed_m_s
            if not (0.0 <= lo <= hi and 0.0 <= slo <= shi):
                raise ValueError(f"class {name}: ranges must be ordered and non-negative")
            if model.length_tolerance_m <= 0.0 or model.speed_tolerance_m_s <= 0.0:
                raise ValueError(f"class {name}: tolerances must be > 0")
        if self.search_radius_m <= 0.0 or self.speed_scale_m_s <= 0.0:
            raise ValueError("search_radius_m and speed_scale_m_s must be > 0")


# --------------------------------------------------------------------------- tracks and scores
@dataclass(frozen=True)
class CandidateTrack:
    """One ground track as selection sees it (from the tracker, geolocation and the smoother)."""

    track_id: str
    position_xy: tuple[float, float]          # ENU metres
    velocity_xy: tuple[float, float]          # ENU m/s
    ground_size_m: float = math.nan           # length on the ground; NaN: unknown
    confidence: float = 1.0                   # 0..1
    age_s: float = 0.0                        # how long the track has existed


@dataclass(frozen=True)
class CandidateScore:
    """A track's score and its parts; excluded says why it could not be chosen (None: it could)."""

    track_id: str
    total: float
    inferred_class: str
    class_membership: dict[str, float]
    class_score: float
    speed_score: float
    distance_score: float
    quality_score: float
    speed_m_s: float
    distance_m: float
    excluded: str | None = None


def _band(value: float, lo: float, hi: float, tolerance: float) -> float:
    """1 inside [lo, hi], falling linearly to 0 at tolerance outside."""
    outside = max(lo - value, value - hi, 0.0)
    return max(0.0, 1.0 - outside / tolerance)


def class_membership(ground_size: float, speed_m_s: float, config: SelectionConfig | None = None) -> dict[str, float]:
    """How much a track of this length and speed looks like each class, 0..1."""
    cfg = config or SelectionConfig()
    out = {}
    for name in CLASSES:
        model = cfg.classes[name]
        length = (cfg.unknown_length_membership if not math.isfinite(ground_size)
                  else _band(ground_size, *model.length_m, model.length_tolerance_m))
        floor = model.atypical_speed_membership
        speed = floor + (1.0 - floor) * _band(speed_m_s, *model.speed_m_s, model.speed_tolerance_m_s)
        out[name] = length * speed
    return out


def infer_class(ground_size: float, speed_m_s: float, config: SelectionConfig | None = None) -> str:
    """The class a track most looks like; UNKNOWN when it looks like none (or two equally)."""
    membership = class_membership(ground_size, speed_m_s, config)
    ranked = sorted(membership.items(), key=lambda kv: kv[1], reverse=True)
    if ranked[0][1] < 0.5 or ranked[0][1] - ranked[1][1] < 1e-9:
        return UNKNOWN
    return ranked[0][0]


def _checked(track: CandidateTrack) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(track.position_xy, dtype=float).reshape(-1)
    v = np.asarray(track.velocity_xy, dtype=float).reshape(-1)
    if p.size != 2 or v.size != 2:
        raise ValueError(f"track {track.track_id}: position and velocity must be 2 numbers each")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(v))):
        raise ValueError(f"track {track.track_id}: position and velocity must be finite")
    if not (0.0 <= track.confidence <= 1.0) or not (track.age_s >= 0.0):
        raise ValueError(f"track {track.track_id}: confidence must be in 0..1 and age >= 0, "
                         f"got {track.confidence} and {track.age_s}")
    return p, v


def score_tracks(tracks: Iterable[CandidateTrack], criteria: TargetCriteria, incident_xy=None,
                 config: SelectionConfig | None = None) -> dict[str, CandidateScore]:
    """Every track's score against the criteria; excluded ones keep their parts and say why."""
    cfg = config or SelectionConfig()
    tracks = list(tracks)
    ids = [str(t.track_id) for t in tracks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"track ids must be unique, repeated: {', '.join(duplicates)}")
    incident = None
    if incident_xy is not None:
        incident = np.asarray(incident_xy, dtype=float).reshape(-1)
        if incident.size != 2 or not np.all(np.isfinite(incident)):
            raise ValueError(f"incident position must be 2 finite ENU metres, got {incident.tolist()}")
    checked = [_checked(t) for t in tracks]
    speeds = [float(np.hypot(*v)) for _, v in checked]
    wanted = criteria.object_class
    rows = []
    for track, (p, _), speed in zip(tracks, checked, speeds):
        membership = class_membership(track.ground_size_m, speed, cfg)
        class_score = membership[wanted] if wanted is not None else 1.0
        distance = float(np.hypot(*(p - incident))) if incident is not None else math.nan
        excluded = None
        if incident is not None and distance > cfg.search_radius_m:
            excluded = f"{distance:.0f} m from the incident, beyond the {cfg.search_radius_m:.0f} m search radius"
        elif track.confidence < cfg.min_confidence:
            excluded = f"confidence {track.confidence:.2f} below {cfg.min_confidence:.2f}"
        elif wanted is not None and class_score < cfg.min_class_membership:
            excluded = f"does not look like a {wanted.replace('_', '-')}"
        rows.append((track, speed, membership, class_score, distance, excluded))
    # "The fastest" compares candidates: a faster car does not make every bike slow.
    fastest = max((row[1] for row in rows if row[5] is None), default=0.0)
    scores = {}
    for track, speed, membership, class_score, distance, excluded in rows:
        if criteria.prefer_fast:
            speed_score = min(speed / fastest, 1.0) if fastest > 0.0 else 0.0
            speed_weight = cfg.speed_weight
        else:
            speed_score = min(speed / cfg.speed_scale_m_s, 1.0)
            speed_weight = cfg.moving_weight
        distance_score = max(0.0, 1.0 - distance / cfg.search_radius_m) if incident is not None else 1.0
        maturity = min(track.age_s / cfg.mature_age_s, 1.0) if cfg.mature_age_s > 0.0 else 1.0
        quality = float(track.confidence) * maturity
        total = (cfg.class_weight * class_score + speed_weight * speed_score
                 + cfg.distance_weight * distance_score + cfg.quality_weight * quality)
        tid = str(track.track_id)
        scores[tid] = CandidateScore(tid, float(total), infer_class(track.ground_size_m, speed, cfg), membership,
                                     float(class_score), float(speed_score), float(distance_score), float(quality),
                                     speed, distance, excluded)
    return scores


def _summary(s: CandidateScore) -> str:
    where = f", {s.distance_m:.0f} m from the incident" if math.isfinite(s.distance_m) else ""
    return f"track {s.track_id} ({s.inferred_class.replace('_', '-')}, {s.speed_m_s:.1f} m/s{where})"


def select_target(tracks: Iterable[CandidateTrack], criteria: TargetCriteria, incident_xy=None,
                  config: SelectionConfig | None = None, operator_track_id=None,
                  ) -> tuple[str | None, str, dict[str, CandidateScore]]:
    """The track to follow, why, and every track's score.

    operator_track_id: an operator's explicit choice; it wins if the track exists (a
    ValueError names the tracks there are otherwise). Without it the best-scoring track
    not excluded is chosen, or None when every track is excluded or there are none.
    """
    cfg = config or SelectionConfig()
    scores = score_tracks(tracks, criteria, incident_xy, cfg)
    if operator_track_id is not None:
        chosen = str(operator_track_id)
        if chosen not in scores:
            there = ", ".join(sorted(scores)) or "none"
            raise ValueError(f"operator chose track {chosen!r}, which is not among the current tracks ({there})")
        note = f"; it would have been excluded: {scores[chosen].excluded}" if scores[chosen].excluded else ""
        return chosen, f"{_summary(scores[chosen])} chosen by the operator{note}", scores
    if not scores:
        return None, f"no tracks to choose from; looking for {criteria.describe()}", scores
    eligible = sorted((s for s in scores.values() if s.excluded is None), key=lambda s: s.total, reverse=True)
    if not eligible:
        ranked = sorted(scores.values(), key=lambda s: s.total, reverse=True)
        why = "; ".join(f"{_summary(s)}: {s.excluded}" for s in ranked)
        plural = "s" if len(ranked) > 1 else ""
        return None, f"no candidate for {criteria.describe()} among {len(ranked)} track{plural}: {why}", scores
    winner = eligible[0]
    parts = []
    if criteria.object_class is not None:
        parts.append(f"looks like a {criteria.object_class.replace('_', '-')} "
                     f"({winner.class_membership[criteria.object_class]:.2f})")
    if criteria.prefer_fast:
        parts.append("the fastest" if winner.speed_score >= 1.0 - 1e-9 else
                     f"{winner.speed_score:.0%} of the fastest speed")
    if math.isfinite(winner.distance_m):
        parts.append(f"within the {cfg.search_radius_m:.0f} m search radius")
    reason = f"{_summary(winner)} chosen for {criteria.describe()}: {', '.join(parts) or 'best score'}"
    reason += f"; score {winner.total:.2f}"
    if len(eligible) > 1:
        runner = eligible[1]
        if winner.total - runner.total < cfg.ambiguity_margin:
            reason += f"; ambiguous: {_summary(runner)} scores {runner.total:.2f}"
        else:
            reason += f" against {runner.total:.2f} for track {runner.track_id}"
    excluded = len(scores) - len(eligible)
    if excluded:
        reason += f"; {excluded} track{'s' if excluded > 1 else ''} excluded"
    return winner.track_id, reason, scores
