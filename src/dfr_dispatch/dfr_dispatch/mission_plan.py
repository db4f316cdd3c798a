"""A mission plan: out at cruise altitude, hold at a stand-off, back to the dock.

Without an airspace model the legs are straight lines at the cruise altitude. With
one, both ways are its shortest routes around the no-fly areas, each leg at the
altitude layer of its heading (capped at the ceiling), and an incident inside a
no-fly area is answered from its edge, with a note saying so. The hold point lies
`standoff_radius_m` short of the scene along the last leg, so the camera looks at
the scene rather than straight down on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_dispatch.airspace import Airspace, altitude_layer


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
    notes: tuple[str, ...] = ()        # for the mission and the record: an incident answered from an edge


def plan_mission(home: GeoPoint, scene_latitude: float, scene_longitude: float, config: PlanConfig,
                 airspace: Airspace | None = None, start: tuple[float, float] | None = None) -> DirectPlan:
    """The plan by the airspace's routes, or straight when there is no airspace model.

    `start` (latitude, longitude): where a drone already in flight sets out from; None: home.
    """
    if airspace is None:
        return plan_direct(home, scene_latitude, scene_longitude, config, start)
    if not (math.isfinite(scene_latitude) and math.isfinite(scene_longitude)):
        raise ValueError(f"scene position {scene_latitude}, {scene_longitude} is not finite")
    origin = (home.latitude, home.longitude) if start is None else start
    out = airspace.route(origin, (scene_latitude, scene_longitude))
    enu = [np.asarray(p, dtype=float)[:2] for p in out.enu]
    # The hold: standoff short of the goal along the last leg (not behind the leg's start).
    last_start, goal = enu[-2], enu[-1]
    leg = goal - last_start
    length = float(np.linalg.norm(leg))
    back_off = min(config.standoff_radius_m, length)
    hold = goal - leg / length * back_off if length > 1e-6 else goal
    transit = enu[1:-1] + [hold]
    back = airspace.route(airspace.lat_lon_of(hold), (home.latitude, home.longitude))
    return DirectPlan(_layered(airspace, [enu[0]] + transit, config), _layered(airspace, back.enu, config),
                      out.length_m - back_off, tuple(out.notes) + tuple(back.notes))


def _layered(airspace: Airspace, enu_points, config: PlanConfig) -> list[PlannedPoint]:
    """Every point after the first, at the altitude layer of the leg that reaches it."""
    points = []
    for a, b in zip(enu_points, enu_points[1:]):
        heading = math.atan2(b[1] - a[1], b[0] - a[0])
        altitude = airspace.cap_altitude(altitude_layer(heading, base_m=config.cruise_altitude_m,
                                                        ceiling_m=airspace.ceiling_m))
        lat, lon = airspace.lat_lon_of(b)
        points.append(PlannedPoint(float(lat), float(lon), float(altitude)))
    return points


def plan_direct(home: GeoPoint, scene_latitude: float, scene_longitude: float,
                config: PlanConfig, start: tuple[float, float] | None = None) -> DirectPlan:
    if not (math.isfinite(scene_latitude) and math.isfinite(scene_longitude)):
        raise ValueError(f"scene position {scene_latitude}, {scene_longitude} is not finite")
    frame = LocalFrame(home)
    east, north, _ = frame.to_enu(scene_latitude, scene_longitude)
    east0, north0 = (0.0, 0.0) if start is None else frame.to_enu(start[0], start[1])[:2]
    distance = math.hypot(east - east0, north - north0)
    back_off = min(config.standoff_radius_m, distance)
    scale = (distance - back_off) / distance if distance > 1e-6 else 0.0
    hold_lat, hold_lon, _ = frame.to_geodetic(east0 + (east - east0) * scale, north0 + (north - north0) * scale,
                                              0.0)
    altitude = config.cruise_altitude_m
    route = [PlannedPoint(float(hold_lat), float(hold_lon), altitude)]
    return_route = [PlannedPoint(home.latitude, home.longitude, altitude)]
    return DirectPlan(route, return_route, distance - back_off)
