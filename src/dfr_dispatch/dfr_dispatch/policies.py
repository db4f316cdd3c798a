"""The dispatch policies behind one call: the planner, and the nearest-idle baseline it is measured against.

The dispatch node and the city replay (dfr_dispatch.replay) both decide through `decide`,
so the replay's comparison is a comparison of what the node would do.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from dfr_common.geodesy import ground_distance_m
from dfr_common.grading import urgency
from dfr_dispatch.assignment import (
    Alternative,
    AssignmentConfig,
    Decisions,
    DroneState,
    OpenIncident,
    TravelTime,
    plan_assignments,
)
from dfr_dispatch.fleet_picture import VehicleView
from dfr_dispatch.nearest_idle import nearest_idle

POLICIES = ("planner", "nearest_idle")


def decide(policy: str, drones: Sequence[DroneState], incidents: Sequence[OpenIncident], config: AssignmentConfig,
           now_s: float, travel_time_s: TravelTime | None = None,
           excluded: Mapping[str, Collection[str]] | None = None) -> Decisions:
    """One decision round: which drone goes to which waiting incident, and why the rest wait."""
    if policy == "planner":
        return plan_assignments(drones, incidents, config, now_s, travel_time_s=travel_time_s, excluded=excluded)
    if policy == "nearest_idle":
        return nearest_idle_decisions(drones, incidents, config, excluded)
    raise ValueError(f"unknown dispatch policy {policy!r}: use one of {', '.join(POLICIES)}")


def nearest_idle_decisions(drones: Sequence[DroneState], incidents: Sequence[OpenIncident],
                           config: AssignmentConfig, excluded: Mapping[str, Collection[str]] | None = None
                           ) -> Decisions:
    """Today's practice: the most urgent, longest-waiting incident first, each to the nearest idle drone.

    No battery check, no coverage, no look at the other incidents, only drones on their
    docks: what a busy dispatcher with a map would do.
    """
    decisions = Decisions()
    free = [d for d in drones if d.available and not d.airborne]
    for incident in sorted(incidents, key=lambda i: (urgency(i.grade), i.waiting_since_s)):
        lat, lon = incident.position
        if not (math.isfinite(lat) and math.isfinite(lon)):
            decisions.queued[incident.incident_id] = "the incident has no usable location"
            continue
        refused = set((excluded or {}).get(incident.incident_id, ())) | {incident.needs_relief_for}
        views = [VehicleView(d.vehicle_id, d.base_id, d.position[0], d.position[1], True)
                 for d in free if d.vehicle_id not in refused]
        choice = nearest_idle(lat, lon, views)
        if choice is None:
            reason = "no drone available: all busy, charging or offline"
            if refused - {None}:
                reason += f"; refused by {', '.join(sorted(refused - {None}))}"
            decisions.queued[incident.incident_id] = reason
            decisions.record.append(f"{incident.incident_id} (grade {incident.grade}) queued: {reason}")
            continue
        view, distance = choice
        eta = config.launch_s + distance / config.cruise_speed_m_s
        decisions.assign.append((view.vehicle_id, incident.incident_id, eta))
        decisions.record.append(f"{incident.incident_id} (grade {incident.grade}): {view.vehicle_id}, nearest idle "
                                f"at {distance:.0f} m")
        decisions.why[incident.incident_id] = decisions.record[-1]
        others = [v for v in views if v.vehicle_id != view.vehicle_id]
        far = ground_distance_m(np.array([v.latitude for v in others]), np.array([v.longitude for v in others]),
                                lat, lon) if others else []
        decisions.alternatives[incident.incident_id] = [
            Alternative(v.vehicle_id, config.launch_s + float(d) / config.cruise_speed_m_s, f"farther: {d:.0f} m")
            for v, d in zip(others, far)]
        free = [d for d in free if d.vehicle_id != view.vehicle_id]
    return decisions
