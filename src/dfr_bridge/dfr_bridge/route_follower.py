"""Following a planned route as a moving setpoint with a velocity feed-forward.

PX4 in offboard flies to a distant position setpoint at its own top speed. To fly a
route at the planned cruise speed and stay on it, the bridge streams the point just
ahead of the vehicle's projection onto the current leg, together with the leg's
velocity, braking for the last point. Works in a local ENU frame about the vehicle's
home; z is the height above home.

The setpoint runs along the leg on its own clock, at the leg's speed, up to `max_lead_s`
of flight ahead of the vehicle's projection. Tied to the projection alone, it would lag the
vehicle by everything the loop is late (the position's age, the setpoint's way to PX4), and
PX4's position controller (velocity feed-forward plus a gain on the position error) would
pull the vehicle back by that lag: with a gain of 1/s, 0.3 s late flies 18 m/s as 14.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class FollowerConfig:
    cruise_speed_m_s: float = 15.0
    climb_speed_m_s: float = 3.0
    descent_speed_m_s: float = 1.5
    accel_m_s2: float = 3.0
    lead_s: float = 0.0                 # setpoint this far ahead of the projection, in seconds of flight
    max_lead_s: float = 1.5             # moving on its own clock, at most this far ahead: the loop delay it absorbs
    acceptance_radius_m: float = 3.0    # horizontal distance at which the last point counts as reached
    altitude_tolerance_m: float = 1.5


@dataclass
class Guidance:
    position: np.ndarray          # setpoint, ENU metres about home
    velocity: np.ndarray          # feed-forward, ENU m/s
    remaining_m: float            # path length left to the last point
    eta_s: float
    arrived: bool


class RouteFollower:
    def __init__(self, start: np.ndarray, points: list[np.ndarray], config: FollowerConfig):
        pts = [np.asarray(start, dtype=float)] + [np.asarray(p, dtype=float) for p in points]
        # Drop zero-length legs: they have no direction to follow.
        self.points = [pts[0]]
        for p in pts[1:]:
            if np.linalg.norm(p - self.points[-1]) > 1e-3:
                self.points.append(p)
        self.config = config
        self.leg = 0
        lengths = [float(np.linalg.norm(b - a)) for a, b in zip(self.points, self.points[1:])]
        directions = [(b - a) / n for a, b, n in zip(self.points, self.points[1:], lengths)]
        self._speeds = [self._speed_along(d) for d in directions]
        # Speed allowed at the end of each leg: slower the sharper the turn onto the next, 0 at the end.
        self._corner_speeds = [
            min(self._speeds[i], self._speeds[i + 1]) * max(0.0, float(np.dot(directions[i], directions[i + 1])))
            for i in range(len(directions) - 1)] + [0.0]
        # Path length and flying time left after each leg.
        self._after = [sum(lengths[i + 1:]) for i in range(len(lengths))]
        self._time_after = [sum(n / s for n, s in zip(lengths[i + 1:], self._speeds[i + 1:]))
                            for i in range(len(lengths))]
        self._carrot: tuple | None = None     # the setpoint's leg, distance along it, lead, speed, time

    @property
    def target(self) -> np.ndarray:
        return self.points[-1]

    def update(self, position: np.ndarray, now_s: float | None = None) -> Guidance:
        """The guidance for the vehicle at `position`; with `now_s`, the setpoint moves on in time
        between updates (the module's docstring says why), else it is placed from the position alone."""
        cfg = self.config
        position = np.asarray(position, dtype=float)
        if not np.all(np.isfinite(position)):
            # No usable position: stop where the current leg starts rather than fly blind.
            return self._hold(self.points[self.leg])
        if len(self.points) < 2:
            return self._hold(self.points[-1], arrived=True)
        while True:
            a, b = self.points[self.leg], self.points[self.leg + 1]
            leg = b - a
            length = float(np.linalg.norm(leg))
            direction = leg / length
            along = float(np.clip(np.dot(position - a, direction), 0.0, length))
            last = self.leg == len(self.points) - 2
            # Turn onto the next leg half a second before the corner at the corner's speed:
            # at once for a gentle bend, only on arrival for a sharp one.
            if not last and length - along <= max(0.5, 0.5 * self._corner_speeds[self.leg]):
                self.leg += 1
                continue
            break
        remaining = (length - along) + self._after[self.leg]
        final = self.points[-1]
        off_horizontal = float(np.linalg.norm(final[:2] - position[:2]))
        off_vertical = abs(float(final[2] - position[2]))
        if last and off_horizontal <= cfg.acceptance_radius_m and off_vertical <= cfg.altitude_tolerance_m:
            return self._hold(final, arrived=True)
        cruise = self._speeds[self.leg]
        ahead = along
        if now_s is not None and self._carrot is not None:
            leg, at, lead_m, speed, then = self._carrot
            # On the same leg it moves on at the speed it was given; onto a new one it keeps its lead.
            moved_on = at + speed * max(0.0, now_s - then) if leg == self.leg else along + lead_m
            ahead = min(max(along, moved_on), along + cruise * cfg.max_lead_s, length)
        # Braking for the corner from where the setpoint is, so that late positions do not brake late.
        braking = math.sqrt(self._corner_speeds[self.leg] ** 2 + 2.0 * cfg.accel_m_s2 * (length - ahead))
        speed = min(cruise, braking)
        velocity = direction * speed
        ahead = max(ahead, along + min(speed * cfg.lead_s, length - along))
        if now_s is not None:
            self._carrot = (self.leg, ahead, ahead - along, speed, now_s)
        setpoint = a + direction * ahead
        eta = (length - along) / cruise + self._time_after[self.leg]
        return Guidance(setpoint, velocity, remaining, eta, arrived=False)

    def _speed_along(self, direction: np.ndarray) -> float:
        """Cruise speed along `direction`, capped so the vertical part respects climb and descent rates."""
        cfg = self.config
        speed = cfg.cruise_speed_m_s
        vertical = float(direction[2])
        if vertical > 1e-6:
            speed = min(speed, cfg.climb_speed_m_s / vertical)
        elif vertical < -1e-6:
            speed = min(speed, cfg.descent_speed_m_s / -vertical)
        return speed

    def _hold(self, point: np.ndarray, arrived: bool = False) -> Guidance:
        return Guidance(np.asarray(point, dtype=float).copy(), np.zeros(3), 0.0, 0.0, arrived)
