"""Timings of dispatch's two hot paths, for `make bench`: one decision round, and one route.

Numbers are measured here and written as JSON by the bench runner; tests only check
that these functions run and return what they say.
"""
from __future__ import annotations

import time

import numpy as np

from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_dispatch.airspace import Airspace, load_restrictions
from dfr_dispatch.assignment import AssignmentConfig, DroneState, OpenIncident, plan_assignments

# Greater London's bounding box: routes are drawn across all of it.
LONDON_LATITUDES = (51.286, 51.686)
LONDON_LONGITUDES = (-0.510, 0.334)


def _ms_summary(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1e3
    return {"samples": int(ms.size), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "max_ms": float(ms.max())}


def city_fleet(n_drones: int, n_incidents: int, seed: int = 7) -> tuple[list[DroneState], list[OpenIncident]]:
    """A city-wide picture: bases of three drones over 30 km, 30 % of drones busy, mixed grades."""
    rng = np.random.default_rng(seed)
    bases = max(3, n_drones // 3)
    base_xy = rng.uniform(-15000, 15000, size=(bases, 2))
    drones = []
    for k in range(n_drones):
        b = k % bases
        busy = bool(rng.random() < 0.3)
        offset = rng.uniform(-2000, 2000, 2) if busy else np.zeros(2)
        drones.append(DroneState(f"uav{k}", f"base{b}", tuple(base_xy[b] + offset), available=not busy,
                                 flight_time_remaining_s=float(rng.uniform(600, 2400)),
                                 busy_with=f"old{k}" if busy else None,
                                 busy_grade=str(rng.choice(list("ISER"))) if busy else None))
    incidents = [OpenIncident(f"inc{j}", str(rng.choice(list("ISER"))), tuple(rng.uniform(-15000, 15000, 2)),
                              waiting_since_s=float(rng.uniform(0, 300))) for j in range(n_incidents)]
    return drones, incidents


def bench_decisions(n_drones: int, n_incidents: int = 50, rounds: int = 40, seed: int = 7) -> dict:
    """One planner decision round (the whole matrix, coverage, pre-emption) with route times from a table."""
    drones, incidents = city_fleet(n_drones, n_incidents, seed)
    config = AssignmentConfig(frame="enu")
    # Route times as dispatch gives them: looked up per (drone, incident), not computed in the round.
    table = {(d.vehicle_id, i.incident_id): float(np.hypot(*(np.subtract(i.position, d.position)))) / 15.0
             for d in drones for i in incidents}

    def travel(d, i):
        return table[d.vehicle_id, i.incident_id]

    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        decisions = plan_assignments(drones, incidents, config, 300.0, travel_time_s=travel)
        times.append(time.perf_counter() - began)
    return {"drones": n_drones, "incidents": n_incidents, "assigned": len(decisions.assign),
            "queued": len(decisions.queued), **_ms_summary(times)}


def bench_routes(airspace_file, permissions=(), routes: int = 200, seed: int = 7) -> dict:
    """Shortest routes between random points of Greater London with every restriction loaded (no
    permissions: the restricted areas police may enter are obstacles too, the hardest case)."""
    frame = LocalFrame(GeoPoint(51.5074, -0.1278, 0.0))
    began = time.perf_counter()
    airspace = Airspace(load_restrictions(airspace_file), frame, frozenset(permissions))
    load_s = time.perf_counter() - began
    rng = np.random.default_rng(seed)
    times, lengths = [], []
    while len(times) < routes:
        start = (rng.uniform(*LONDON_LATITUDES), rng.uniform(*LONDON_LONGITUDES))
        goal = (rng.uniform(*LONDON_LATITUDES), rng.uniform(*LONDON_LONGITUDES))
        if airspace.blocked(start):
            continue
        began = time.perf_counter()
        route = airspace.route(start, goal)
        times.append(time.perf_counter() - began)
        lengths.append(route.length_m)
    return {"permissions": sorted(permissions), "no_fly_areas": len(airspace.no_fly),
            "corners": len(airspace.corners), "load_s": load_s,
            "mean_route_km": float(np.mean(lengths)) / 1e3, **_ms_summary(times)}
