"""What happened in a run, incident by incident, and the metrics it adds up to.

Fed from the incidents and vehicle statuses the graph publishes (never from the
simulator's ground truth), so the same record can be kept of a real shift.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PHASE_IDLE = 0
PHASE_ON_SCENE = 4


@dataclass
class IncidentEntry:
    incident_id: str
    call_time_s: float
    grade: str
    category: str
    calls: int
    drone_eligible: bool
    policy_reason: str
    on_scene_s: float | None = None
    vehicle_id: str = ""

    @property
    def response_time_s(self) -> float | None:
        return None if self.on_scene_s is None else self.on_scene_s - self.call_time_s


@dataclass
class _VehicleTrack:
    phase: int = PHASE_IDLE
    armed: bool = False
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

    def on_vehicle(self, now_s: float, vehicle_id: str, phase: int, armed: bool, incident_id: str) -> None:
        track = self.vehicles.setdefault(vehicle_id, _VehicleTrack())
        if armed and not track.armed:
            track.flights += 1
            if not incident_id:
                track.flights_without_incident += 1
        track.phase, track.armed, track.incident_id = phase, armed, incident_id
        entry = self.incidents.get(incident_id)
        if phase == PHASE_ON_SCENE and entry is not None and entry.on_scene_s is None:
            entry.on_scene_s, entry.vehicle_id = now_s, vehicle_id

    def fleet_idle(self) -> bool:
        return all(t.phase == PHASE_IDLE and not t.armed for t in self.vehicles.values())

    def unattended(self) -> list[str]:
        return [i.incident_id for i in self.incidents.values() if i.drone_eligible and i.on_scene_s is None]

    def metrics(self) -> dict:
        eligible = [i for i in self.incidents.values() if i.drone_eligible]
        responses = [i.response_time_s for i in eligible if i.response_time_s is not None]
        return {
            "calls_accepted": sum(i.calls for i in self.incidents.values()),
            "incidents": len(self.incidents),
            "incidents_eligible": len(eligible),
            "incidents_refused_by_policy": len(self.incidents) - len(eligible),
            "incidents_attended": len(responses),
            "response_time_s": _summary(responses),
            "flights": sum(t.flights for t in self.vehicles.values()),
            "flights_without_incident": sum(t.flights_without_incident for t in self.vehicles.values()),
            "per_incident": [
                {"incident_id": i.incident_id, "grade": i.grade, "category": i.category, "calls": i.calls,
                 "drone_eligible": i.drone_eligible, "policy_reason": i.policy_reason,
                 "vehicle_id": i.vehicle_id, "response_time_s": i.response_time_s}
                for i in sorted(self.incidents.values(), key=lambda i: i.incident_id)],
        }


def _summary(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p90": None, "max": None}
    array = np.asarray(values, dtype=float)
    return {"p50": float(np.percentile(array, 50)), "p90": float(np.percentile(array, 90)),
            "max": float(array.max())}
