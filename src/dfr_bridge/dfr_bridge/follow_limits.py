"""Keeping a followed target's setpoints inside what the mission permits.

The follow controller says where the drone should be to keep a target in view; it
knows nothing of the mission's limits. Before the bridge flies a follow setpoint it
is clamped: within a leash of the incident, inside the permitted area, between the
follow floor and the ceiling, and no faster than the follow speed. A clamped setpoint
is still flown (the drone waits at the edge, camera on the target), and said so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.ops import nearest_points


@dataclass
class FollowLimitsConfig:
    max_speed_m_s: float = 15.0          # horizontal speed of the feed-forward
    min_altitude_m: float = 30.0         # above home: never lower while following
    max_altitude_m: float = 120.0        # above home: the ceiling
    max_distance_m: float = 1500.0       # from the incident: how far a chase may lead
    edge_margin_m: float = 10.0          # kept inside the permitted area's edge


@dataclass(frozen=True)
class Clamped:
    position: np.ndarray      # ENU metres about home; z above home
    velocity: np.ndarray      # ENU m/s
    limits: tuple[str, ...]   # which limits acted, in words; empty when none did


class FollowLimits:
    def __init__(self, config: FollowLimitsConfig, scene_enu: np.ndarray, permitted_area: Polygon | None = None):
        """`scene_enu` and `permitted_area` are in the same ENU frame as the setpoints."""
        self.config = config
        self.scene = np.asarray(scene_enu, dtype=float)[:2]
        self.area = None
        if permitted_area is not None:
            inner = permitted_area.buffer(-config.edge_margin_m)
            self.area = inner if not inner.is_empty else permitted_area
            shapely.prepare(self.area)

    def clamp(self, position, velocity) -> Clamped:
        cfg = self.config
        position = np.array(position, dtype=float)
        velocity = np.array(velocity, dtype=float)
        limits = []
        offset = position[:2] - self.scene
        distance = float(np.linalg.norm(offset))
        if distance > cfg.max_distance_m:
            position[:2] = self.scene + offset / distance * cfg.max_distance_m
            limits.append(f"{cfg.max_distance_m:.0f} m from the incident")
        if self.area is not None and not self.area.covers(shapely.Point(position[0], position[1])):
            nearest = nearest_points(self.area, shapely.Point(position[0], position[1]))[0]
            position[:2] = (nearest.x, nearest.y)
            limits.append("the permitted area")
        if limits:
            velocity[:2] = 0.0      # held at an edge: a feed-forward would push it across
        if position[2] < cfg.min_altitude_m or position[2] > cfg.max_altitude_m:
            position[2] = min(max(position[2], cfg.min_altitude_m), cfg.max_altitude_m)
            limits.append(f"altitude {cfg.min_altitude_m:.0f}-{cfg.max_altitude_m:.0f} m")
        speed = float(np.linalg.norm(velocity[:2]))
        if speed > cfg.max_speed_m_s:
            velocity[:2] *= cfg.max_speed_m_s / speed
            limits.append(f"{cfg.max_speed_m_s:.0f} m/s")
        velocity[2] = 0.0
        return Clamped(position, velocity, tuple(limits))
