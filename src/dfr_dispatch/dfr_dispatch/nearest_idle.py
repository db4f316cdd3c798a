"""The baseline assignment: send the idle drone nearest to the incident."""
from __future__ import annotations

import numpy as np

from dfr_common.geodesy import ground_distance_m
from dfr_dispatch.fleet_picture import VehicleView


def nearest_idle(latitude: float, longitude: float, idle: list[VehicleView]) -> tuple[VehicleView, float] | None:
    """The idle vehicle with the shortest ground distance to the point, and that distance."""
    if not idle:
        return None
    distances = ground_distance_m(np.array([v.latitude for v in idle]), np.array([v.longitude for v in idle]),
                                  latitude, longitude)
    best = int(np.nanargmin(distances)) if np.isfinite(distances).any() else None
    if best is None:
        return None
    return idle[best], float(distances[best])
