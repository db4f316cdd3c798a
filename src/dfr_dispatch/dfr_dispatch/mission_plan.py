"""A direct mission plan: out at cruise altitude, hold at a stand-off, straight back.

This is the planner of the walking skeleton; routing around airspace comes with the
airspace model. The hold point lies `standoff_radius_m` short of the scene on the
line from the base, so the camera looks at the scene rather than straight down on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from dfr_common.geodesy import GeoPoint, LocalFrame


@dataclass(frozen=True)
class PlanConfig:
    cruise_altitude_m: float = 60.0
    cruise_speed_m_s: float = 15.0
    standoff_radius_m: float = 40.0
    on_scene_duration_s: float = 120.0


@dataclass(frozen=True)
class PlannedPoint:
    latitude: float
    longitude: float
    altitude_rel_m: float


@dataclass(frozen=True)
class DirectPlan:
    route: list[PlannedPoint]
    return_route: list[PlannedPoint]
    distance_m: float


def plan_direct(home: GeoPoint, scene_latitude: float, scene_longitude: float,
                config: PlanConfig) -> DirectPlan:
    if not (math.isfinite(scene_latitude) and math.isfinite(scene_longitude)):
        raise ValueError(f"scene position {scene_latitude}, {scene_longitude} is not finite")
    frame = LocalFrame(home)
    east, north, _ = frame.to_enu(scene_latitude, scene_longitude)
    distance = math.hypot(east, north)
    back_off = min(config.standoff_radius_m, distance)
    scale = (distance - back_off) / distance if distance > 1e-6 else 0.0
    hold_lat, hold_lon, _ = frame.to_geodetic(east * scale, north * scale, 0.0)
    altitude = config.cruise_altitude_m
    route = [PlannedPoint(float(hold_lat), float(hold_lon), altitude)]
    return_route = [PlannedPoint(home.latitude, home.longitude, altitude)]
    return DirectPlan(route, return_route, distance - back_off)
