"""What happened in a run, incident by incident, and the metrics it adds up to.

Fed from the incidents and vehicle statuses the graph publishes (never from the
simulator's ground truth), so the same record can be kept of a real shift.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

PHASE_IDLE = 0
PHASE_ON_SCENE = 4
PHASE_FOLLOW = 5
WATCHING_PHASES = (PHASE_ON_SCENE, PHASE_FOLLOW)


@dataclass
class IncidentEntry:
    incident_id: str
    call_time_s: float
    grade: str
    category: str
    calls: int
    drone_eligible: bool
    policy_reason: str
    latitude: float = math.nan
    longitude: float = math.nan
    closed: bool = False
    lower_bound_s: float | None = None    # take-off, climb and the straight line from the nearest base
    on_scene_s: float | None = None
    vehicle_id: str = ""

    @property
    def response_time_s(self) -> float | None:
        return None if self.on_scene_s is None else self.on_scene_s - self.call_time_s

    @property
    def lower_bound_ratio(self) -> float | None:
        if self.response_time_s is None or not self.lower_bound_s:
            return None
        return self.response_time_s / self.lower_bound_s


@dataclass
class _VehicleTrack:
    phase: int = PHASE_IDLE
    armed: bool = False
    in_flight: bool = False        # left the ground armed, not disarmed since
    incident_id: str = ""
    flights: int = 0
    flights_without_incident: int = 0


@dataclass
class RunRecord:
    incidents: dict[str, IncidentEntry] = field(default_factory=dict)
    vehicles: dict[str, _VehicleTrack] = field(default_factory=dict)

    def on_incident(self, entry: IncidentEntry) -> None:
        known = self.incidents.get(entry.incident_id)
        if known is not None:
            entry.on_scene_s, entry.vehicle_id = known.on_scene_s, known.vehicle_id
        self.incidents[entry.incident_id] = entry

    def on_vehicle(self, now_s: float, vehicle_id: str, phase: int, armed: bool, incident_id: str,
                   connected: bool = True, on_ground: bool = False) -> None:
        """A bridge's status. A flight is counted, with the incident its status shows, when the drone leaves
        the ground armed: one armed on its dock that never lifts off (a mission canceled while its arm request
        was on its way; PX4 disarms it again) flew nowhere. A status without a live link (a bridge just
        started, a dropped MAVROS link) says nothing of whether the drone is armed: it is not counted, or a
        flight would be counted again, without its incident, when the link returns."""
        track = self.vehicles.setdefault(vehicle_id, _VehicleTrack())
        if not connected:
            return
        if armed and not on_ground and not track.in_flight:
            track.in_flight = True
            track.flights += 1
            if not incident_id:
                track.flights_without_incident += 1
        if not armed:
            track.in_flight = False
        track.phase, track.armed, track.incident_id = phase, armed, incident_id
        entry = self.incidents.get(incident_id)
        if phase == PHASE_ON_SCENE and entry is not None and entry.on_scene_s is None:
            entry.on_scene_s, entry.vehicle_id = now_s, vehicle_id

    def airborne(self) -> int:
        return sum(1 for t in self.vehicles.values() if t.armed)

    def open_incidents(self) -> int:
        return sum(1 for i in self.incidents.values() if not i.closed)

    def fleet_idle(self) -> bool:
        return all(t.phase == PHASE_IDLE and not t.armed for t in self.vehicles.values())

    def unattended(self) -> list[str]:
        return [i.incident_id for i in self.incidents.values() if i.drone_eligible and i.on_scene_s is None]

    def metrics(self) -> dict:
        eligible = [i for i in self.incidents.values() if i.drone_eligible]
        responses = [i.response_time_s for i in eligible if i.response_time_s is not None]
        ratios = [i.lower_bound_ratio for i in eligible if i.lower_bound_ratio is not None]
        return {
            "calls_accepted": sum(i.calls for i in self.incidents.values()),
            "incidents": len(self.incidents),
            "incidents_eligible": len(eligible),
            "incidents_refused_by_policy": len(self.incidents) - len(eligible),
            "incidents_attended": len(responses),
            "response_time_s": _summary(responses),
            "response_lower_bound_ratio_p50": float(np.median(ratios)) if ratios else None,
            "flights": sum(t.flights for t in self.vehicles.values()),
            "flights_without_incident": sum(t.flights_without_incident for t in self.vehicles.values()),
            "per_incident": [
                {"incident_id": i.incident_id, "grade": i.grade, "category": i.category, "calls": i.calls,
                 "drone_eligible": i.drone_eligible, "policy_reason": i.policy_reason,
                 "vehicle_id": i.vehicle_id, "response_time_s": i.response_time_s, "call_time_s": i.call_time_s,
                 "latitude": _finite_or_none(i.latitude), "longitude": _finite_or_none(i.longitude),
                 "lower_bound_s": i.lower_bound_s, "closed": i.closed}
                for i in sorted(self.incidents.values(), key=lambda i: i.incident_id)],
        }


def response_lower_bound_s(incident_xy, bases_xy, cruise_speed_m_s: float, launch_s: float,
                           standoff_m: float = 0.0) -> float | None:
    """The fastest any drone could be on scene: take-off and climb, then the straight line from the nearest
    base to `standoff_m` short of the scene (where a drone is on scene) at cruise speed (no airspace detour,
    no wait for a free drone)."""
    incident = np.asarray(incident_xy, dtype=float)
    bases = np.asarray(bases_xy, dtype=float).reshape(-1, 2)
    if not len(bases) or not np.isfinite(incident).all() or cruise_speed_m_s <= 0:
        return None
    distance = float(np.min(np.hypot(*(bases - incident).T)))
    return launch_s + max(0.0, distance - standoff_m) / cruise_speed_m_s


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _summary(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p90": None, "max": None}
    array = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(array, 50)), "p90": float(np.percentile(array, 90)),
            "max": float(array.max())}


PHASE_NAMES = ("idle", "preflight", "takeoff", "transit", "on_scene", "follow", "return", "land")


@dataclass
class FlightPaths:
    """Where each drone flew and where its perception placed its target, sampled every `period_s` of sim time:
    what the run report draws on its map."""

    period_s: float = 2.0
    vehicles: dict[str, list] = field(default_factory=dict)
    targets: dict[str, list] = field(default_factory=dict)
    _last: dict[tuple[str, str], float] = field(default_factory=dict)

    def _due(self, kind: str, key: str, now_s: float) -> bool:
        last = self._last.get((kind, key))
        if last is not None and now_s - last < self.period_s:
            return False
        self._last[(kind, key)] = now_s
        return True

    def add_vehicle(self, now_s: float, vehicle_id: str, latitude: float, longitude: float, altitude_m: float,
                    phase: int, incident_id: str) -> None:
        if not (math.isfinite(latitude) and math.isfinite(longitude)) or not self._due("v", vehicle_id, now_s):
            return
        name = PHASE_NAMES[phase] if 0 <= phase < len(PHASE_NAMES) else str(phase)
        self.vehicles.setdefault(vehicle_id, []).append(
            [round(now_s, 2), latitude, longitude, round(altitude_m, 1) if math.isfinite(altitude_m) else None,
             name, incident_id])

    def add_target(self, now_s: float, vehicle_id: str, latitude: float, longitude: float, track_id: int) -> None:
        if not (math.isfinite(latitude) and math.isfinite(longitude)) or not self._due("t", vehicle_id, now_s):
            return
        self.targets.setdefault(vehicle_id, []).append([round(now_s, 2), latitude, longitude, str(track_id)])

    def as_json(self) -> dict:
        return {"period_s": self.period_s, "vehicles": self.vehicles, "targets": self.targets}


@dataclass
class ChaseScore:
    """How much of the chase the suspect was in the camera of a drone watching its incident, from the
    simulator's ground truth (a sim run's evaluation; never used to fly)."""

    samples: int = 0
    in_view: int = 0
    on_suspect: int = 0          # samples whose drone was tracking a target on the suspect itself
    by_vehicle: dict[str, list[int]] = field(default_factory=dict)

    def add(self, vehicle_id: str, seen: bool, on_suspect: bool = False) -> None:
        self.samples += 1
        self.in_view += int(seen)
        self.on_suspect += int(on_suspect)
        counts = self.by_vehicle.setdefault(vehicle_id, [0, 0, 0])
        counts[0] += 1
        counts[1] += int(seen)
        counts[2] += int(on_suspect)

    @property
    def fraction(self) -> float | None:
        return self.in_view / self.samples if self.samples else None

    @property
    def on_suspect_fraction(self) -> float | None:
        """Of the chase, how much the drone's own target was the suspect: perception found the right one."""
        return self.on_suspect / self.samples if self.samples else None
