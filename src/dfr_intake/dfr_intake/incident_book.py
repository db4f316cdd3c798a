"""The incidents intake has accepted, each with a stable id and a revision.

Several calls about the same event become one incident: a call joins an open incident
when it is close in space and time to one of the incident's calls and its category is
compatible (MergeRules). Every change goes through the book (open, merge, reassess,
close), bumps the incident's revision, and, when the book has a journal, is written to
the journal before it changes the book: a write that fails leaves the book as it was,
so nothing is acknowledged that is not on disk.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple, Protocol

from dfr_common.grading import urgency
from dfr_intake.calls import Call
from dfr_intake.launch_policy import LaunchPolicy


@dataclass
class IncidentRecord:
    incident_id: str
    calls: list[Call]
    drone_eligible: bool
    policy_reason: str
    revision: int = 1
    open: bool = True
    close_reason: str = ""              # why it was closed; empty while open
    closed_at_s: float | None = None    # ROS time of the close; None while open

    @property
    def first_call(self) -> Call:
        return self.calls[0]

    @property
    def most_urgent_call(self) -> Call:
        """The call of the most urgent grade (I > S > E > R); the earliest reported among equals."""
        return min(self.calls, key=lambda c: urgency(c.grade))

    @property
    def grade(self) -> str:
        """The most urgent grade among the calls."""
        return self.most_urgent_call.grade

    @property
    def category(self) -> str:
        """The category of the most urgent call (the earliest reported among equally urgent ones)."""
        return self.most_urgent_call.category

    @property
    def latest_call(self) -> Call:
        """The call with the latest call time (the last reported among equal times)."""
        return max(reversed(self.calls), key=lambda c: c.call_time_s)

    @property
    def cad_refs(self) -> list[str]:
        """Every call reference of the incident, in the order the calls were reported."""
        return [c.cad_ref for c in self.calls]

    def merged(self, cad_ref: str) -> bool:
        """Whether the call with this reference joined the incident rather than opened it."""
        return cad_ref in self.cad_refs[1:]


class ConflictingCallError(ValueError):
    """A CAD reference reported again with different details."""


class UnknownIncidentError(ValueError):
    """No incident has this id."""


class ClosedIncidentError(ValueError):
    """The incident is closed: it takes no more calls and cannot be closed again."""


@dataclass(frozen=True)
class MergeRules:
    """When a new call is about an incident already open.

    A call C joins an open incident when both hold:
    - category: every call of the incident has C's category, or C's category and theirs lie in
      one group (groups are disjoint, so compatibility is an equivalence);
    - space and time: some call c of the incident has |C.call_time_s - c.call_time_s| <= window_s
      and lies within radius_m + C.location_uncertainty_m + c.location_uncertainty_m of C.
      Measured call to call, a moving event (a pursuit) is followed by its latest sightings
      rather than its first, and a call that reaches intake late still finds its incident.
    Among several such incidents the nearest (smallest distance to a qualifying call) wins, the
    earliest opened among equals. A closed incident never takes a call.
    """

    radius_m: float = 150.0
    window_s: float = 1200.0
    groups: tuple[frozenset[str], ...] = ()

    def __post_init__(self):
        for name in ("radius_m", "window_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0.0:
                raise ValueError(f"merge {name}: {value!r} is not a non-negative number")
        object.__setattr__(self, "groups", tuple(frozenset(g) for g in self.groups))
        seen: dict[str, int] = {}
        for i, group in enumerate(self.groups):
            if not group:
                raise ValueError(f"merge group {i + 1} is empty")
            for category in sorted(group):
                if category in seen:
                    raise ValueError(f"merge groups: category '{category}' is in group {seen[category] + 1} "
                                     f"and group {i + 1}; a category belongs to one group at most")
                seen[category] = i

    @classmethod
    def from_parameters(cls, radius_m: float, window_s: float, groups: Iterable[str],
                        categories: Iterable[str] | None = None,
                        excluded_categories: Iterable[str] = ()) -> MergeRules:
        """Rules from flat parameters: each group a comma-separated string of categories.

        With categories, every grouped category must be one of them. A category in
        excluded_categories may not be grouped with others: an excluded call (a lawful protest)
        then only ever merges with calls of its own category, and an incident that may get a
        drone never absorbs one.
        """
        known = None if categories is None else frozenset(categories)
        excluded = frozenset(excluded_categories)
        parsed = []
        for i, text in enumerate(groups):
            names = [name.strip() for name in str(text).split(",")]
            group = frozenset(name for name in names if name)
            where = f"merge_groups[{i}] ({text!r})"
            if not group:
                raise ValueError(f"{where}: names no category")
            if known is not None and group - known:
                raise ValueError(f"{where}: unknown categories {', '.join(sorted(group - known))}")
            if len(group) > 1 and group & excluded:
                raise ValueError(f"{where}: {', '.join(sorted(group & excluded))} is excluded by the launch "
                                 f"policy and may not be grouped with other categories")
            parsed.append(group)
        try:
            return cls(float(radius_m), float(window_s), tuple(parsed))
        except (TypeError, ValueError) as err:
            raise ValueError(str(err).replace("merge ", "merge_", 1)) from err

    def compatible(self, category_a: str, category_b: str) -> bool:
        """Whether calls of these categories may be about one event."""
        if category_a == category_b:
            return True
        return any(category_a in group and category_b in group for group in self.groups)

    def reach_m(self, a: Call, b: Call) -> float:
        """How far apart two calls about one event may lie: the radius plus both uncertainties."""
        return self.radius_m + a.location_uncertainty_m + b.location_uncertainty_m


def decide_incident(policy: LaunchPolicy, calls: Sequence[Call]) -> tuple[bool, str]:
    """The launch policy applied to an incident of one or more calls.

    One call: exactly the policy's decision for it. Several merged calls:
    - a call of an excluded category keeps the whole incident from a drone;
    - otherwise the incident may get a drone when at least one of its calls alone would (merging
      never withholds a drone a call would have had as its own incident, and never grants one
      that no call would get: grades and categories are not combined across calls);
    - the reason is that of the deciding call: the excluded one, else the most urgent eligible
      call, else the most urgent call (the earliest reported among equals), naming it.
    """
    if not calls:
        raise ValueError("an incident has at least one call")
    if len(calls) == 1:
        return policy.decide(calls[0])
    count = len(calls)
    for call in calls:
        if call.category in policy.excluded_categories:
            _, reason = policy.decide(call)
            return False, (f"{reason} (call {call.cad_ref}, one of {count} merged calls; an excluded call "
                           f"keeps the whole incident from a drone)")
    decisions = sorted(((call, *policy.decide(call)) for call in calls), key=lambda d: urgency(d[0].grade))
    eligible = [d for d in decisions if d[1]]
    call, ok, reason = eligible[0] if eligible else decisions[0]
    return ok, f"{reason} (call {call.cad_ref}, one of {count} merged calls)"


_WGS84_A = 6_378_137.0
_WGS84_E2 = 6.694_379_990_14e-3


def ground_distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Horizontal distance in metres between two WGS 84 positions a few kilometres apart.

    The north and east offsets use the ellipsoid's radii of curvature at the mean latitude:
    within 0.1 % of dfr_common.geodesy.ground_distance_m over the tens of kilometres a
    city spans, and quick enough to compare a call with every call of the last minutes.
    """
    phi = math.radians(0.5 * (lat1 + lat2))
    w2 = 1.0 - _WGS84_E2 * math.sin(phi) ** 2
    meridian = _WGS84_A * (1.0 - _WGS84_E2) / (w2 * math.sqrt(w2))
    normal = _WGS84_A / math.sqrt(w2)
    dlon = (lon2 - lon1 + 180.0) % 360.0 - 180.0
    return math.hypot(math.radians(lat2 - lat1) * meridian, math.radians(dlon) * normal * math.cos(phi))


class IncidentJournal(Protocol):
    """Where the book writes every change before making it (dfr_intake.journal.Journal)."""

    def record_opened(self, record: IncidentRecord) -> None: ...

    def record_merged(self, record: IncidentRecord, call: Call) -> None: ...

    def record_closed(self, incident_id: str, reason: str, time_s: float) -> None: ...

    def record_updated(self, record: IncidentRecord) -> None: ...


class CallOutcome(NamedTuple):
    record: IncidentRecord
    action: str         # "opened", "merged" (both changed the incident: publish it) or "repeat" (nothing changed)
    merged: bool        # the call joined an incident another call opened (also for a repeat of such a call)


@dataclass
class IncidentBook:
    id_prefix: str = "INC"
    incidents: dict[str, IncidentRecord] = field(default_factory=dict)
    _by_cad_ref: dict[str, str] = field(default_factory=dict)
    _counter: int = 0
    merge_rules: MergeRules | None = None       # None: calls never merge
    journal: IncidentJournal | None = field(default=None, repr=False, compare=False)
    _open: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)  # id: opening order
    _time_index: dict[int, list[tuple[str, Call]]] = field(default_factory=dict, init=False, repr=False,
                                                           compare=False)
    _index_width_s: float | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        for order, (incident_id, record) in enumerate(self.incidents.items()):
            for call in record.calls:
                self._by_cad_ref.setdefault(call.cad_ref, incident_id)
            if record.open:
                self._open[incident_id] = order

    # --- opening and finding ------------------------------------------------------------------------------------

    def open_incident(self, call: Call, eligible: bool, reason: str) -> IncidentRecord:
        """A new incident of this one call, with the policy's decision; journaled before it exists."""
        if call.cad_ref in self._by_cad_ref:
            raise ValueError(f"cad_ref: {call.cad_ref!r} is already part of {self._by_cad_ref[call.cad_ref]}")
        counter = self._counter + 1
        record = IncidentRecord(f"{self.id_prefix}-{counter:06d}", [call], eligible, reason)
        if self.journal is not None:
            self.journal.record_opened(record)
        self._counter = counter
        self.incidents[record.incident_id] = record
        self._by_cad_ref[call.cad_ref] = record.incident_id
        self._open[record.incident_id] = len(self.incidents)
        self._index(record.incident_id, call)
        return record

    def find_by_cad_ref(self, cad_ref: str) -> IncidentRecord | None:
        """The incident a call with this CAD reference created or joined, if any."""
        incident_id = self._by_cad_ref.get(cad_ref)
        return self.incidents.get(incident_id) if incident_id else None

    def repeat_of(self, call: Call) -> IncidentRecord | None:
        """The incident of an earlier report of this very call (a retry), or None for a new call.

        A CAD reference names one call: reporting it again with other details is an error,
        not an update, and raises ConflictingCallError.
        """
        record = self.find_by_cad_ref(call.cad_ref)
        if record is None:
            return None
        earlier = next(c for c in record.calls if c.cad_ref == call.cad_ref)
        if earlier != call:
            changed = [f for f in ("call_time_s", "grade", "category", "latitude", "longitude",
                                   "location_uncertainty_m", "address", "description", "suspect_description")
                       if getattr(earlier, f) != getattr(call, f)]
            raise ConflictingCallError(
                f"cad_ref: {call.cad_ref!r} was already reported for {record.incident_id} with a different "
                f"{', '.join(changed)}")
        return record

    def get(self, incident_id: str) -> IncidentRecord:
        """The incident with this id; UnknownIncidentError when there is none."""
        record = self.incidents.get(incident_id)
        if record is None:
            raise UnknownIncidentError(f"incident_id: {incident_id!r} is not an incident intake knows")
        return record

    def open_incidents(self) -> list[IncidentRecord]:
        """The open incidents, in the order they were opened."""
        return [self.incidents[i] for i in self._open]

    @property
    def next_incident_id(self) -> str:
        """The id the next new incident will get."""
        return f"{self.id_prefix}-{self._counter + 1:06d}"

    # --- merging ------------------------------------------------------------------------------------------------

    def merge_target(self, call: Call) -> IncidentRecord | None:
        """The open incident this new call is about under the book's MergeRules, or None (see MergeRules)."""
        rules = self.merge_rules
        if rules is None or not self._open:
            return None
        best: tuple[float, int, str] | None = None
        time_s, latitude, longitude = call.call_time_s, call.latitude, call.longitude
        base_reach_m = rules.radius_m + call.location_uncertainty_m
        for incident_id, earlier in self._calls_near_in_time(call, rules.window_s):
            if abs(time_s - earlier.call_time_s) > rules.window_s:
                continue
            order = self._open.get(incident_id)
            if order is None:
                continue
            reach = base_reach_m + earlier.location_uncertainty_m
            if abs(latitude - earlier.latitude) * 110_000.0 > reach:     # a degree of latitude is 110.57 km or more
                continue
            distance = ground_distance_m(latitude, longitude, earlier.latitude, earlier.longitude)
            if distance > reach:
                continue
            key = (distance, order, incident_id)
            if best is not None and key >= best:
                continue
            record = self.incidents[incident_id]
            if all(rules.compatible(call.category, c.category) for c in record.calls):
                best = key
        return None if best is None else self.incidents[best[2]]

    def add_call(self, record: IncidentRecord, call: Call, policy: LaunchPolicy) -> IncidentRecord:
        """Merge a new call into an open incident: the call is appended, the revision goes up by one and
        the launch policy is applied again to all the incident's calls (decide_incident); journaled first.

        The caller chooses the incident (merge_target); the book does not check space, time or category.
        """
        if self.incidents.get(record.incident_id) is not record:
            raise ValueError(f"{record.incident_id} is not an incident of this book")
        if not record.open:
            raise ClosedIncidentError(f"{record.incident_id} is closed ({record.close_reason}): it takes no "
                                      f"more calls")
        if call.cad_ref in self._by_cad_ref:
            raise ValueError(f"cad_ref: {call.cad_ref!r} is already part of {self._by_cad_ref[call.cad_ref]}")
        calls = [*record.calls, call]
        eligible, reason = decide_incident(policy, calls)
        after = replace(record, calls=calls, drone_eligible=eligible, policy_reason=reason,
                        revision=record.revision + 1)
        if self.journal is not None:
            self.journal.record_merged(after, call)
        record.calls.append(call)
        record.drone_eligible, record.policy_reason, record.revision = eligible, reason, after.revision
        self._by_cad_ref[call.cad_ref] = record.incident_id
        self._index(record.incident_id, call)
        return record

    def accept_call(self, call: Call, policy: LaunchPolicy) -> CallOutcome:
        """A checked call in: a repeat of a known call changes nothing, a call about an open incident
        joins it, any other opens a new incident. Raises ConflictingCallError for a reused reference."""
        known = self.repeat_of(call)
        if known is not None:
            return CallOutcome(known, "repeat", known.merged(call.cad_ref))
        target = self.merge_target(call)
        if target is not None:
            return CallOutcome(self.add_call(target, call, policy), "merged", True)
        eligible, reason = policy.decide(call)
        return CallOutcome(self.open_incident(call, eligible, reason), "opened", False)

    # --- updating and closing -----------------------------------------------------------------------------------

    def reassess(self, incident_id: str, policy: LaunchPolicy) -> bool:
        """Apply the launch policy (say, a changed one) to an open incident again. When the decision or its
        reason changes the revision goes up by one (journaled first) and True is returned."""
        record = self.get(incident_id)
        if not record.open:
            raise ClosedIncidentError(f"{incident_id} is closed ({record.close_reason})")
        eligible, reason = decide_incident(policy, record.calls)
        if (eligible, reason) == (record.drone_eligible, record.policy_reason):
            return False
        after = replace(record, calls=list(record.calls), drone_eligible=eligible, policy_reason=reason,
                        revision=record.revision + 1)
        if self.journal is not None:
            self.journal.record_updated(after)
        record.drone_eligible, record.policy_reason, record.revision = eligible, reason, after.revision
        return True

    def close(self, incident_id: str, reason: str, time_s: float) -> IncidentRecord:
        """Close an open incident: it takes no more calls, and its revision goes up by one; journaled first.

        Closing a closed incident raises ClosedIncidentError (a caller retrying a close may take that as done).
        """
        record = self.get(incident_id)
        if not record.open:
            raise ClosedIncidentError(f"{incident_id} is already closed ({record.close_reason})")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("reason: a closed incident needs the reason it was closed")
        if isinstance(time_s, bool) or not isinstance(time_s, (int, float)) or not math.isfinite(time_s):
            raise ValueError(f"time_s: {time_s!r} is not a valid time")
        if self.journal is not None:
            self.journal.record_closed(incident_id, reason, float(time_s))
        record.open, record.close_reason, record.closed_at_s = False, reason, float(time_s)
        record.revision += 1
        self._open.pop(incident_id, None)
        return record

    # --- the time index merge_target searches -------------------------------------------------------------------

    def _index(self, incident_id: str, call: Call) -> None:
        if self._index_width_s is not None:
            self._time_index.setdefault(self._bucket(call.call_time_s), []).append((incident_id, call))

    def _bucket(self, time_s: float) -> int:
        return math.floor(time_s / self._index_width_s)

    def _calls_near_in_time(self, call: Call, window_s: float) -> Iterable[tuple[str, Call]]:
        """Every (incident id, call) whose call time may lie within window_s of this call's, and more."""
        width = max(float(window_s), 1.0)
        if self._index_width_s != width:
            self._index_width_s, self._time_index = width, {}
            for incident_id, record in self.incidents.items():
                for earlier in record.calls:
                    self._index(incident_id, earlier)
        if not math.isfinite(call.call_time_s):
            return []
        here = self._bucket(call.call_time_s)
        return [entry for bucket in (here - 1, here, here + 1) for entry in self._time_index.get(bucket, ())]
