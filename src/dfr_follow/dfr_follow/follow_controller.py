"""Following a target on the ground: where the drone should be and where its camera should point.

The drone keeps a stand-off behind the target (on its current side when the target is
slow), a little ahead of where the target is now so that it does not trail, and never
where it may not fly: a stand-off point outside the permitted area (less a margin) or
inside a no-fly zone (plus a buffer) is replaced by the nearest point that is allowed,
and the height is held between the follow floor and the ceiling. The setpoint moves no
faster than max_speed_m_s, in straight steps that stay in allowed space: where a zone
lies between it and where it should be, it goes round by the shortest way (corner to
corner of the allowed space) instead of waiting at the zone's edge. A drone flying from
one setpoint to the next therefore never crosses a zone.

When the target is not seen for observation_timeout_s the controller searches: it keeps
extrapolating the last seen position along the last velocity for search_time_s, camera on
the prediction. Then the target is LOST: reported once, and the drone circles where it
was last seen until it is seen again. A handover to a relief drone keeps following until
the relief confirms the target or a timeout, then the target is RELEASED.

Frames: ENU metres in one local frame (REP-103), z of setpoints the height above the
ground (the ground flat at z = 0); headings ENU radians (0 east, counter-clockwise);
gimbal angles in MAVLink's MOUNT convention, degrees (dfr_common.mount). Times seconds.
Plain Python: the follow node wraps it.
"""
from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points, unary_union

from dfr_common.camera_geometry import in_image, project_points
from dfr_common.documented import documented
from dfr_common.mount import mount_angles_to


class FollowState(str, enum.Enum):
    ACQUIRING = "acquiring"      # no sight of the target yet: hold
    FOLLOWING = "following"
    SEARCHING = "searching"      # unseen: flying along its last velocity
    LOST = "lost"                # search over: circling where it was last seen
    HANDOVER = "handover"        # a relief drone is taking over; still following
    RELEASED = "released"        # handed over (or the handover timed out): no longer following


@dataclass
class FollowConfig:
    """How the drone follows; distances metres, speeds m/s, times seconds."""

    standoff_m: float = documented(25.0, "horizontal distance kept from the target", 0.0, 1000.0)
    standoff_bearing_rad: float = documented(
        0.0, "where the stand-off lies, from straight behind the target, counter-clockwise (pi/2: its left)",
        -math.pi, math.pi)
    height_m: float = documented(40.0, "height above the ground to follow at", 0.0, 500.0)
    floor_m: float = documented(30.0, "never lower than this above the ground while following", 0.0, 500.0)
    ceiling_m: float = documented(120.0, "never higher than this above the ground", 1.0, 500.0)
    max_speed_m_s: float = documented(15.0, "fastest the setpoint moves and the feed-forward asks", 0.1, 50.0)
    lead_time_s: float = documented(0.5, "the setpoint keeps the stand-off from where the target will be this soon",
                                    0.0, 10.0)
    camera_lead_s: float = documented(0.0, "the camera points where the target will be this soon (gimbal lag)",
                                      0.0, 5.0)
    min_depression_deg: float = documented(
        35.0, "the camera never looks flatter than this below the horizon: a far, oblique view shrinks the target "
              "to a few pixels, mixes in roofs and skyline, and geolocates badly", 0.0, 90.0)
    slow_target_speed_m_s: float = documented(
        1.0, "below this the drone stays on its current side of the target; behind it from twice this", 0.0, 20.0)
    side_turn_rate_deg_s: float = documented(
        45.0, "fastest the stand-off swings round the target: a rider who turns back is kept in view from the "
              "drone's side and circled round to, not overflown to reach his new 'behind' (0: no limit)",
        0.0, 3600.0)
    observation_timeout_s: float = documented(1.5, "unseen this long, the target is searched for", 0.0, 60.0)
    search_time_s: float = documented(10.0, "how long to search along the last velocity before the target is lost",
                                      0.0, 600.0)
    search_speed_m_s: float = documented(10.0, "fastest the drone flies while searching", 0.0, 50.0)
    lost_orbit_radius_m: float = documented(30.0, "radius of the circle over where the target was last seen; "
                                                  "0 to hover over it", 0.0, 1000.0)
    lost_orbit_speed_m_s: float = documented(5.0, "speed around that circle", 0.0, 50.0)
    handover_timeout_s: float = documented(30.0, "a relief that has not confirmed the target by then: released "
                                                 "anyway", 0.0, 3600.0)
    no_fly_buffer_m: float = documented(20.0, "setpoints keep this far from every no-fly zone", 0.0, 1000.0)
    area_margin_m: float = documented(10.0, "setpoints keep this far inside the permitted area's edge", 0.0, 1000.0)
    max_step_gap_s: float = documented(
        1.0, "updates further apart than this restart the setpoint from the drone's position", 0.01, 60.0)

    def __post_init__(self):
        for name in ("standoff_m", "standoff_bearing_rad", "height_m", "floor_m", "ceiling_m", "max_speed_m_s",
                     "lead_time_s", "camera_lead_s", "min_depression_deg", "slow_target_speed_m_s",
                     "side_turn_rate_deg_s",
                     "observation_timeout_s", "search_time_s", "search_speed_m_s", "lost_orbit_radius_m",
                     "lost_orbit_speed_m_s", "handover_timeout_s", "no_fly_buffer_m", "area_margin_m",
                     "max_step_gap_s"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            if name != "standoff_bearing_rad" and value < 0.0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not self.floor_m < self.ceiling_m:
            raise ValueError(f"floor_m ({self.floor_m}) must be below ceiling_m ({self.ceiling_m})")
        if self.max_speed_m_s <= 0.0 or self.max_step_gap_s <= 0.0:
            raise ValueError("max_speed_m_s and max_step_gap_s must be > 0")


@dataclass(frozen=True)
class TargetObservation:
    """The target seen on the ground: ENU position (m) and velocity (m/s) at stamp_s."""

    stamp_s: float
    position_xy: tuple[float, float]
    velocity_xy: tuple[float, float] = (0.0, 0.0)
    track_id: str | None = None

    def __post_init__(self):
        _check_observation(self)


def _check_observation(obs) -> tuple[float, np.ndarray, np.ndarray]:
    try:
        stamp = float(obs.stamp_s)
        p = np.asarray(obs.position_xy, dtype=float).reshape(-1)
        v = np.asarray(obs.velocity_xy, dtype=float).reshape(-1)
    except (AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"observation must have stamp_s, position_xy and velocity_xy: {err}") from err
    if not math.isfinite(stamp):
        raise ValueError(f"observation stamp must be finite, got {stamp}")
    if p.size != 2 or not np.all(np.isfinite(p)):
        raise ValueError(f"observation position must be 2 finite ENU metres, got {p.tolist()}")
    if v.size != 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"observation velocity must be 2 finite ENU m/s, got {v.tolist()}")
    return stamp, p, v


@dataclass(frozen=True)
class FollowCommand:
    """What the drone and its gimbal should do now, and why."""

    state: FollowState
    setpoint_enu: np.ndarray          # x, y ENU metres; z height above the ground
    velocity_enu: np.ndarray          # feed-forward, m/s (z 0)
    look_at_xy: np.ndarray            # the ground point to keep at the image centre
    gimbal_pitch_deg: float           # MOUNT: 0 level, -90 straight down
    gimbal_yaw_deg: float             # MOUNT: from the nose, positive right
    heading_rad: float                # ENU yaw that faces the look-at point
    reason: str
    limits: tuple[str, ...] = ()      # which limits moved the setpoint, in words
    events: tuple[str, ...] = ()      # things that happened at this update: loss, reacquisition, handover
    track_id: str | None = None


@dataclass
class _Sighting:
    stamp: float
    position: np.ndarray
    velocity: np.ndarray
    track_id: str | None


def _zones(no_fly_zones) -> list[tuple[str, BaseGeometry]]:
    """(name, polygon) pairs from polygons, (name, polygon) pairs or a name-to-polygon mapping."""
    if no_fly_zones is None:
        return []
    items = list(no_fly_zones.items()) if isinstance(no_fly_zones, Mapping) else list(no_fly_zones)
    out = []
    for i, item in enumerate(items):
        name, geometry = item if isinstance(item, tuple) else (f"no-fly zone {i + 1}", item)
        if not isinstance(geometry, BaseGeometry) or geometry.geom_type not in ("Polygon", "MultiPolygon"):
            raise ValueError(f"{name}: expected a shapely Polygon or MultiPolygon in ENU metres, got {geometry!r:.60}")
        if geometry.is_empty or not geometry.is_valid:
            raise ValueError(f"{name}: polygon is empty or invalid")
        out.append((str(name), geometry))
    return out


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.hypot(v[0], v[1]))
    return v / n if n > 1e-9 else None


def _rotate(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _cap(v: np.ndarray, limit: float) -> np.ndarray:
    n = float(np.hypot(v[0], v[1]))
    return v * (limit / n) if n > limit else v


class FollowController:
    """The follow state machine and setpoint guidance for one drone and one target.

    permitted_area: a shapely Polygon (ENU metres, same frame as everything else) the
    drone must stay in, or None. no_fly_zones: polygons in the same frame (for example an
    Airspace's `zones`, with names from its `no_fly` restrictions), as polygons, (name,
    polygon) pairs or a mapping of name to polygon.
    """

    def __init__(self, config: FollowConfig | None = None, permitted_area: Polygon | None = None,
                 no_fly_zones: Iterable | Mapping | None = None):
        self.config = cfg = config or FollowConfig()
        self.zones = _zones(no_fly_zones)
        inner = None
        if permitted_area is not None:
            if not isinstance(permitted_area, BaseGeometry) or permitted_area.geom_type not in ("Polygon",
                                                                                              "MultiPolygon"):
                raise ValueError(f"permitted_area must be a shapely Polygon in ENU metres, got {permitted_area!r:.60}")
            inner = permitted_area.buffer(-cfg.area_margin_m)
            if inner.is_empty:
                raise ValueError(f"the permitted area is narrower than twice its {cfg.area_margin_m} m margin")
        buffered = [(name, zone.buffer(cfg.no_fly_buffer_m, quad_segs=_QUAD_SEGS)) for name, zone in self.zones]
        self.free = _FreeSpace(inner, buffered)

        self.state = FollowState.ACQUIRING
        self._last_now: float | None = None
        self._sighting: _Sighting | None = None
        self._setpoint: np.ndarray | None = None       # last horizontal setpoint
        self._setpoint_time: float | None = None
        self._side: np.ndarray | None = None           # unit vector from the target to the stand-off
        self._side_stamp: float | None = None          # when it was last worked out
        self._search_start: float | None = None
        self._lost_since: float | None = None
        self._orbit_angle0 = 0.0
        self._handover_start: float | None = None
        self._relief: str | None = None
        self._relief_confirmed = False
        self._relief_confirmed_after = 0.0
        self._pending_events: list[str] = []

    @property
    def relief(self) -> str | None:
        """The drone taking over the target, while a handover is under way or after it."""
        return self._relief

    # ------------------------------------------------------------------ handover
    def start_handover(self, now_s: float, relief_id: str) -> None:
        """A relief drone has been told to take the target: keep following until it confirms or the timeout.

        While handing over, a target out of sight is searched for but not declared lost: the
        timeout ends the handover either way.
        """
        if self.state in (FollowState.ACQUIRING, FollowState.RELEASED):
            raise ValueError(f"cannot hand over while {self.state.value}: there is no target being followed")
        if self.state is FollowState.HANDOVER:
            raise ValueError(f"a handover to {self._relief} is already under way")
        self.state = FollowState.HANDOVER
        self._handover_start = float(now_s)
        self._relief = str(relief_id)
        self._relief_confirmed = False
        track = self._sighting.track_id if self._sighting else None
        self._pending_events.append(f"handover requested: {self._relief} to take "
                                    f"{'track ' + track if track else 'the target'}")

    def relief_confirmed(self, now_s: float) -> None:
        """The relief drone reports that it sees the target: release at the next update."""
        if self.state is not FollowState.HANDOVER:
            raise ValueError(f"no handover under way (state {self.state.value})")
        self._relief_confirmed = True
        self._relief_confirmed_after = float(now_s) - self._handover_start

    # ------------------------------------------------------------------ update
    def update(self, now_s: float, drone_xyz_enu, drone_heading_rad: float,
               observation: TargetObservation | None = None) -> FollowCommand:
        """The command for now, given where the drone is and, if the target was seen, where it was.

        drone_xyz_enu: ENU metres, z the height above the ground. An observation older
        than the last one taken is ignored (messages arrive out of order).
        """
        cfg = self.config
        now = float(now_s)
        if not math.isfinite(now):
            raise ValueError(f"now_s must be finite, got {now_s}")
        if self._last_now is not None and now < self._last_now:
            raise ValueError(f"time went backwards: {now} after {self._last_now}")
        drone = np.asarray(drone_xyz_enu, dtype=float).reshape(-1)
        if drone.size != 3 or not np.all(np.isfinite(drone)):
            raise ValueError(f"drone position must be 3 finite ENU metres, got {drone.tolist()}")
        if not math.isfinite(drone_heading_rad):
            raise ValueError(f"drone heading must be finite, got {drone_heading_rad}")
        self._last_now = now
        events = self._pending_events
        self._pending_events = []

        if observation is not None:
            stamp, p, v = _check_observation(observation)
            previous = self._sighting
            if previous is None or stamp >= previous.stamp:
                track = getattr(observation, "track_id", None)
                self._sighting = _Sighting(stamp, p, v, None if track is None else str(track))
                fresh = now - stamp <= cfg.observation_timeout_s
                if fresh and self.state in (FollowState.SEARCHING, FollowState.LOST, FollowState.ACQUIRING):
                    if previous is not None:
                        events.append(f"target reacquired after {stamp - previous.stamp:.1f} s unseen")
                    self.state = FollowState.FOLLOWING
                    self._search_start = self._lost_since = None

        # Handover ends before anything else is decided.
        if self.state is FollowState.HANDOVER:
            if self._relief_confirmed:
                self.state = FollowState.RELEASED
                events.append(f"handover complete: {self._relief} confirmed the target after "
                              f"{self._relief_confirmed_after:.1f} s")
            elif now - self._handover_start >= cfg.handover_timeout_s:
                self.state = FollowState.RELEASED
                events.append(f"handover timed out: {self._relief} did not confirm the target within "
                              f"{cfg.handover_timeout_s:.0f} s; released without confirmation")

        unseen = now - self._sighting.stamp if self._sighting is not None else math.inf
        if self.state is FollowState.FOLLOWING and unseen > cfg.observation_timeout_s:
            self.state = FollowState.SEARCHING
            self._search_start = now
            events.append(f"target unseen for {unseen:.1f} s: searching along its last heading for "
                          f"{cfg.search_time_s:.0f} s")
        if self.state is FollowState.SEARCHING and now - self._search_start >= cfg.search_time_s:
            self.state = FollowState.LOST
            self._lost_since = now
            last = self._sighting.position
            offset = _unit(drone[:2] - last)
            self._orbit_angle0 = math.atan2(offset[1], offset[0]) if offset is not None else 0.0
            events.append(f"target lost: unseen for {unseen:.1f} s after a {cfg.search_time_s:.0f} s search; "
                          f"circling where it was last seen ({last[0]:.0f}, {last[1]:.0f})")

        if self.state is FollowState.ACQUIRING:
            return self._hold(now, drone, drone_heading_rad, "no sight of the target yet: holding", events)
        if self.state is FollowState.RELEASED:
            return self._hold(now, drone, drone_heading_rad, "released: no longer following", events,
                              look_at=self._sighting.position)
        if self.state is FollowState.LOST:
            return self._orbit(now, drone, drone_heading_rad, events)
        searching = self.state is FollowState.SEARCHING or (
            self.state is FollowState.HANDOVER and unseen > cfg.observation_timeout_s)
        return self._follow(now, drone, drone_heading_rad, events, searching, unseen)

    # ------------------------------------------------------------------ behaviours
    def _follow(self, now, drone, heading, events, searching: bool, unseen: float) -> FollowCommand:
        cfg = self.config
        s = self._sighting
        velocity = s.velocity
        target_now = s.position + velocity * (now - s.stamp)
        target_led = target_now + velocity * cfg.lead_time_s
        look_at = target_now + velocity * cfg.camera_lead_s

        speed = float(np.hypot(*velocity))
        behind = _unit(-velocity)
        current = _unit(drone[:2] - target_now)
        if current is None:
            current = self._side
        slow = cfg.slow_target_speed_m_s
        weight = 1.0 if slow <= 0.0 else min(max((speed - slow) / slow, 0.0), 1.0)
        side = None
        if behind is not None and weight > 0.0:
            behind = _rotate(behind, cfg.standoff_bearing_rad)
            side = _unit(weight * behind + (1.0 - weight) * (current if current is not None else behind))
        if side is None:
            side = current if current is not None else np.array([-1.0, 0.0])
        side = self._swung_towards(side, now)
        self._side = side
        desired = target_led + cfg.standoff_m * side

        if searching:
            what = f"searching: target unseen for {unseen:.1f} s, extrapolated along its last velocity"
        elif unseen > 0.0:
            what = f"following {self._name()} (last seen {unseen:.1f} s ago)"
        else:
            what = f"following {self._name()}"
        if self.state is FollowState.HANDOVER:
            what = f"handing over to {self._relief}; {what}"
        place = "behind" if weight >= 1.0 else ("on the drone's side of" if weight <= 0.0 else "moving behind")
        reason = f"{what}: {cfg.standoff_m:.0f} m {place} it, {speed:.1f} m/s"
        speed_limit = min(cfg.search_speed_m_s, cfg.max_speed_m_s) if searching else cfg.max_speed_m_s
        return self._command(now, drone, heading, desired, velocity, look_at, reason, events, speed_limit)

    def _swung_towards(self, wanted: np.ndarray, now: float) -> np.ndarray:
        """The stand-off's side, turned from the last one towards `wanted` at side_turn_rate_deg_s at most."""
        previous, last = self._side, self._side_stamp
        self._side_stamp = now
        rate = math.radians(self.config.side_turn_rate_deg_s)
        if previous is None or last is None or rate <= 0.0:
            return wanted
        angle = math.atan2(previous[0] * wanted[1] - previous[1] * wanted[0], float(np.dot(previous, wanted)))
        step = rate * max(0.0, now - last)
        return wanted if abs(angle) <= step else _rotate(previous, math.copysign(step, angle))

    def _orbit(self, now, drone, heading, events) -> FollowCommand:
        cfg = self.config
        centre = self._sighting.position
        radius = cfg.lost_orbit_radius_m
        if radius > 0.0:
            rate = cfg.lost_orbit_speed_m_s / radius
            angle = self._orbit_angle0 + rate * (now - self._lost_since)
            radial = np.array([math.cos(angle), math.sin(angle)])
            desired = centre + radius * radial
            velocity = cfg.lost_orbit_speed_m_s * np.array([-radial[1], radial[0]])
            what = f"target lost: circling {radius:.0f} m around where it was last seen"
        else:
            desired, velocity = centre.copy(), np.zeros(2)
            what = "target lost: holding over where it was last seen"
        return self._command(now, drone, heading, desired, velocity, centre, what, events, cfg.max_speed_m_s)

    def _hold(self, now, drone, heading, reason, events, look_at=None) -> FollowCommand:
        target = drone[:2] if look_at is None else look_at
        return self._command(now, drone, heading, drone[:2].copy(), np.zeros(2), target, reason, events, None)

    def _name(self) -> str:
        track = self._sighting.track_id if self._sighting else None
        return f"track {track}" if track else "the target"

    # ------------------------------------------------------------------ limits and output
    def _command(self, now, drone, heading, desired_xy, velocity_xy, look_at, reason, events,
                 speed_limit: float | None) -> FollowCommand:
        """The setpoint moved towards desired_xy through allowed space at no more than speed_limit
        (None: at once), the height limited, the gimbal aimed at look_at from where the drone is."""
        cfg = self.config
        free = self.free
        limits: list[str] = []
        desired = np.asarray(desired_xy, dtype=float)
        goal = desired
        if not free.contains(desired):
            goal = free.nearest(desired)
            limits.extend(free.why_not(desired))
        if speed_limit is None:
            setpoint, start, elapsed = goal, goal, 0.0
        else:
            fresh = self._setpoint is None or now - self._setpoint_time > cfg.max_step_gap_s
            # A first setpoint, or one after a long gap, starts from the drone and moves one step's worth.
            start = drone[:2].copy() if fresh else self._setpoint
            elapsed = cfg.max_step_gap_s if fresh else now - self._setpoint_time
            if not free.contains(start):
                start = free.nearest(start)       # the drone is where it should not be: out by the nearest way
            waypoint = free.waypoint(start, goal)
            if waypoint is None:
                waypoint = start
                limits.append("held: no way round the zones to the stand-off")
            elif waypoint is not goal:
                limits.append(f"going round {free.blocking(start, goal)}")
            step = waypoint - start
            length = float(np.hypot(*step))
            reach = speed_limit * elapsed
            setpoint = waypoint
            if length > reach:
                setpoint = start + step * (reach / length)
                if waypoint is goal:
                    limits.append(f"slowed to {speed_limit:.0f} m/s")
        if limits and not free.contains(setpoint):          # rounding at an edge
            setpoint = free.nearest(setpoint)
        if not limits and speed_limit is not None:
            feed_forward = _cap(np.asarray(velocity_xy, dtype=float), speed_limit)
        elif elapsed > 0.0:
            # Held, slowed or going round: the feed-forward is how the setpoint itself moves.
            feed_forward = _cap((setpoint - start) / elapsed, speed_limit)
        else:
            feed_forward = np.zeros(2)
        height = cfg.height_m
        if height > cfg.ceiling_m:
            height = cfg.ceiling_m
            limits.append(f"held at the {cfg.ceiling_m:.0f} m ceiling")
        elif height < cfg.floor_m:
            height = cfg.floor_m
            limits.append(f"held at the {cfg.floor_m:.0f} m floor")
        self._setpoint, self._setpoint_time = np.array(setpoint, dtype=float), now

        look_at = np.asarray(look_at, dtype=float)
        pitch, yaw = mount_angles_to(drone, heading, look_at)
        pitch = min(pitch, -cfg.min_depression_deg)
        offset = look_at - drone[:2]
        face = math.atan2(offset[1], offset[0]) if float(np.hypot(*offset)) > 1.0 else float(heading)
        if limits:
            reason = f"{reason}; limited: {', '.join(limits)}"
        track = self._sighting.track_id if self._sighting else None
        return FollowCommand(self.state, np.array([setpoint[0], setpoint[1], height]),
                             np.array([feed_forward[0], feed_forward[1], 0.0]), look_at.copy(), float(pitch),
                             float(yaw), face, reason, tuple(limits), tuple(events), track)


# --------------------------------------------------------------------------- allowed space
# Visibility tests shrink the zones (and grow the permitted area) by this much so that a
# straight step along an edge, or from a point the nearest-point search put on it, counts as
# clear despite rounding: a setpoint may graze a buffer by a millimetre, never a zone.
_GRAZE_M = 1e-3
# Corners on each quarter circle of a buffered zone: the polygon lies within the round
# buffer, at least cos(pi / 16) of the buffer (98 %) from the zone.
_QUAD_SEGS = 4


def _rings(geometry: BaseGeometry | None) -> list[np.ndarray]:
    if geometry is None or geometry.is_empty:
        return []
    parts = getattr(geometry, "geoms", [geometry])
    rings = []
    for part in parts:
        if isinstance(part, Polygon):
            rings.extend(np.asarray(r.coords)[:-1] for r in (part.exterior, *part.interiors))
    return rings


class _FreeSpace:
    """Where setpoints may be: inside the permitted area less its margin (unbounded without one)
    and outside every buffered no-fly zone; and the shortest way round between two such points.

    The shortest path among polygons bends only at their corners, so the corners of the
    allowed space's boundary, with their mutual visibility and all-pairs shortest paths
    computed once, answer where to head next.
    """

    def __init__(self, inner: BaseGeometry | None, buffered: list[tuple[str, BaseGeometry]]):
        self.inner = inner
        self.buffered = buffered
        forbidden = unary_union([b for _, b in buffered]) if buffered else None
        if inner is not None and forbidden is not None:
            allowed = inner.difference(forbidden)
            if allowed.is_empty:
                raise ValueError("no-fly zones and their buffer cover the whole permitted area")
        else:
            allowed = inner
        self.allowed = allowed
        self.forbidden = forbidden
        self._inner_grown = inner.buffer(_GRAZE_M) if inner is not None else None
        self._shrunk = [(name, b.buffer(-_GRAZE_M)) for name, b in buffered]
        self._forbidden_shrunk = forbidden.buffer(-_GRAZE_M) if forbidden is not None else None
        for g in (allowed, forbidden, inner, self._inner_grown, self._forbidden_shrunk, *(b for _, b in buffered)):
            if g is not None:
                shapely.prepare(g)
        corners = [c for ring in _rings(allowed if allowed is not None else forbidden) for c in ring]
        corners = np.array(corners, dtype=float).reshape(-1, 2)
        self.nodes = corners[self.contains_many(corners)] if len(corners) else corners
        n = len(self.nodes)
        self._dist = np.full((n, n), np.inf)
        self._next = np.tile(np.arange(n), (n, 1))
        if n:
            np.fill_diagonal(self._dist, 0.0)
            i, j = np.triu_indices(n, k=1)
            seen = self.visible(self.nodes[i], self.nodes[j])
            i, j = i[seen], j[seen]
            length = np.hypot(*(self.nodes[i] - self.nodes[j]).T)
            self._dist[i, j] = self._dist[j, i] = length
            for k in range(n):           # Floyd-Warshall, keeping each pair's first hop
                through = self._dist[:, k:k + 1] + self._dist[k:k + 1, :]
                better = through < self._dist
                self._dist = np.where(better, through, self._dist)
                self._next = np.where(better, self._next[:, k:k + 1], self._next)

    def contains_many(self, xy: np.ndarray) -> np.ndarray:
        points = shapely.points(np.asarray(xy, dtype=float).reshape(-1, 2))
        ok = np.ones(len(points), dtype=bool)
        if self._inner_grown is not None:
            ok &= shapely.covers(self._inner_grown, points)
        if self._forbidden_shrunk is not None:
            ok &= ~shapely.intersects(self._forbidden_shrunk, points)
        return ok

    def contains(self, xy) -> bool:
        return bool(self.contains_many(xy)[0])

    def visible(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """For segments a[k] -> b[k]: whether each stays in allowed space."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        if len(a) == 0:
            return np.zeros(0, dtype=bool)
        lines = shapely.linestrings(np.stack([a, b], axis=1))
        ok = np.ones(len(a), dtype=bool)
        if self._inner_grown is not None:
            ok &= shapely.covers(self._inner_grown, lines)
        if self._forbidden_shrunk is not None:
            ok &= ~shapely.intersects(self._forbidden_shrunk, lines)
        return ok

    def nearest(self, xy) -> np.ndarray:
        point = Point(float(xy[0]), float(xy[1]))
        if self.allowed is not None:
            nearest = nearest_points(self.allowed, point)[0]
        else:
            nearest = nearest_points(self.forbidden.boundary, point)[0]
        return np.array([nearest.x, nearest.y])

    def why_not(self, xy) -> list[str]:
        """The limits a point breaks, in words."""
        point = Point(float(xy[0]), float(xy[1]))
        out = []
        if self.inner is not None and not self.inner.covers(point):
            out.append("kept inside the permitted area")
        names = [name for name, b in self.buffered if b.intersects(point)]
        if names:
            out.append("kept out of no-fly " + ", ".join(f"'{n}'" for n in names))
        return out

    def blocking(self, a: np.ndarray, b: np.ndarray) -> str:
        """What stands between two points, in words."""
        line = shapely.LineString([a, b])
        names = [name for name, shrunk in self._shrunk if shrunk.intersects(line)]
        if names:
            return "no-fly " + ", ".join(f"'{n}'" for n in names)
        return "the permitted area's edge"

    def waypoint(self, start: np.ndarray, goal: np.ndarray) -> np.ndarray | None:
        """Where to head from start towards goal (both allowed): goal itself when in sight, else
        the first corner of the shortest way round; None when there is no way."""
        if self.visible(start, goal)[0] or len(self.nodes) == 0:
            return goal if self.visible(start, goal)[0] else None
        n = len(self.nodes)
        d_start = np.where(self.visible(np.repeat(start[None, :], n, axis=0), self.nodes),
                           np.hypot(*(self.nodes - start).T), np.inf)
        d_goal = np.where(self.visible(np.repeat(goal[None, :], n, axis=0), self.nodes),
                          np.hypot(*(self.nodes - goal).T), np.inf)
        total = d_start[:, None] + self._dist + d_goal[None, :]
        i, j = np.unravel_index(int(np.argmin(total)), total.shape)
        if not np.isfinite(total[i, j]):
            return None
        if d_start[i] > 1e-6:
            return self.nodes[i]
        # Already at the first corner: head for the next one, or the goal.
        return goal if i == j else self.nodes[self._next[i, j]]


# --------------------------------------------------------------------------- evaluation
def target_in_view(k, width: int, height: int, camera_position_enu, rotation_world_from_camera, target_xy):
    """Whether the target's ground point (2,) falls inside a width x height image: a bool;
    for N x 2 points, a boolean array."""
    points = np.asarray(target_xy, dtype=float)
    single = points.ndim == 1
    uv = project_points(k, camera_position_enu, rotation_world_from_camera, np.atleast_2d(points))
    seen = in_image(uv, width, height)
    return bool(seen[0]) if single else seen

