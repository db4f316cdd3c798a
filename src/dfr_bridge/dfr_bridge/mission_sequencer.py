"""One mission, phase by phase, on PX4's terms.

The sequencer is the bridge's brain and knows nothing of ROS: it reads a Telemetry
snapshot at the control rate, asks for autopilot requests (arm, take off, change
mode), learns how each ended, and says which setpoint to stream. Its rules are
PX4's: arming and mode changes can be refused; a mode change is real only once the
autopilot reports it (MAVROS's `mode_sent` means "sent", nothing more); offboard
needs the setpoint stream running before the switch; a mode the bridge did not ask
for means the pilot or a failsafe has taken control, and the bridge yields at once;
and when the bridge itself must give up in the air, it hands the vehicle to PX4's
return-to-launch rather than leave it hovering.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import Polygon

from dfr_audit.rules import camera_may_point_down
from dfr_bridge.follow_limits import FollowLimits, FollowLimitsConfig
from dfr_bridge.route_follower import FollowerConfig, RouteFollower
from dfr_common import px4
from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_common.mission import Outcome, Phase
from dfr_common.mount import mount_angles_to

# Autopilot messages that mark a mode change as PX4's own failsafe rather than the pilot's.
_FAILSAFE_WORDS = ("failsafe", "battery", "geofence", "link loss", "data link")


@dataclass
class Telemetry:
    """What MAVROS last said about the vehicle; NaN or None where nothing has arrived yet."""

    now_s: float
    connected: bool = False
    armed: bool = False
    mode: str = ""
    landed_state: int = px4.LANDED_STATE_UNDEFINED
    latitude: float = math.nan
    longitude: float = math.nan
    altitude_rel_m: float = math.nan
    gps_fix: bool = False
    battery_fraction: float = math.nan
    home: GeoPoint | None = None
    last_state_s: float = -math.inf       # when the last MAVROS State arrived
    last_position_s: float = -math.inf    # when the last global position arrived
    heading_enu: float = math.nan         # radians from east, counter-clockwise
    flight_time_remaining_s: float = math.nan   # down to the battery reserve, at the drain seen
    mission_reached_seq: int = -1         # the last item of the pushed mission PX4 reported reached


@dataclass(frozen=True)
class Waypoint:
    latitude: float
    longitude: float
    altitude_rel_m: float


@dataclass
class MissionSpec:
    mission_id: str
    incident_id: str
    route: list[Waypoint]
    scene: GeoPoint
    cruise_speed_m_s: float
    on_scene_duration_s: float      # 0: until canceled
    return_route: list[Waypoint]
    standoff_radius_m: float = 0.0  # orbit radius about the scene; 0: hold at the route's end
    flight_kind: str = "incident"   # dfr_audit.rules.FLIGHT_KINDS: what the flight is for


@dataclass
class SequencerConfig:
    min_launch_battery: float = 0.5
    preflight_timeout_s: float = 10.0
    takeoff_complete_alt_m: float = 2.0     # height above home at which PX4's take-off counts as done
    takeoff_timeout_s: float = 60.0
    offboard_prestream_s: float = 1.0       # setpoints streamed before asking for OFFBOARD
    mode_confirm_timeout_s: float = 3.0     # State arrives at 1 Hz: allow a few heartbeats
    request_attempts: int = 3
    retry_backoff_s: float = 1.0            # doubled after every refusal
    link_timeout_s: float = 5.0             # no State for this long: the link is lost
    position_timeout_s: float = 3.0         # no position for this long in flight: flying blind
    land_timeout_s: float = 180.0
    land_radius_m: float = 1.0              # over the dock within this, for land_settle_s, before PX4 is asked to land
    land_settle_s: float = 1.0
    land_hold_max_s: float = 15.0           # ... but no longer than this over it: then it lands where it is
    max_altitude_m: float = 120.0
    failsafe_message_window_s: float = 5.0  # how recent a failsafe message must be to explain a mode change
    failsafe_message_wait_s: float = 1.0    # a mode change not yet explained waits this long for the autopilot's
    #                                         message (MAVROS publishes State and StatusText apart, in either order)
    follower: FollowerConfig = field(default_factory=FollowerConfig)
    transit_mode: str = "offboard"          # "offboard": stream the route; "mission": push it as a PX4 mission
    mission_acceptance_radius_m: float = 5.0
    on_scene_pattern: str = "orbit"         # "orbit" the scene at the stand-off radius, or "hold"
    orbit_speed_m_s: float = 5.0
    on_scene_height_m: float = 0.0          # height above home to watch the scene from; 0: the height it arrived at
    follow_timeout_s: float = 2.0           # follow setpoints older than this: back to the on-scene pattern
    follow_limits: FollowLimitsConfig = field(default_factory=FollowLimitsConfig)
    return_margin_s: float = 60.0           # kept beyond the estimated time home before turning back
    camera_ahead_pitch_deg: float = 0.0     # MOUNT pitch where the camera may not look down: ahead, not at people
    # The nose turns no faster than this (PX4's MPC_YAWRAUTO_MAX default): the camera turns with it, and a
    # steady picture is what the control room watches and what the motion detector can follow.
    max_yaw_rate_deg_s: float = 45.0
    # Looking down, the camera turns no faster than this in the world, whatever the nose does: a new target or
    # look-at point is panned to, not jumped to; a rider passing close by is kept in the picture.
    max_camera_rate_deg_s: float = 90.0


@dataclass(frozen=True)
class FollowTarget:
    """A follow controller's setpoint, in plain values (see dfr_interfaces/FollowSetpoint)."""

    stamp_s: float
    track_id: str
    latitude: float
    longitude: float
    altitude_rel_m: float
    velocity_enu: tuple[float, float, float]
    look_latitude: float
    look_longitude: float


def plan_problems(spec: MissionSpec, config: SequencerConfig) -> list[str]:
    """Why a mission cannot be flown as planned, whatever the vehicle's state; empty when it can.
    Whether it may fly at all (its incident, its flight kind) is the flight rules' (dfr_audit.rules)."""
    problems = []
    if not spec.mission_id:
        problems.append("the plan has no mission_id")
    if not spec.route:
        problems.append("the plan has no route")
    for name, points in (("route", spec.route), ("return_route", spec.return_route)):
        for i, w in enumerate(points):
            if not all(math.isfinite(v) for v in (w.latitude, w.longitude, w.altitude_rel_m)):
                problems.append(f"{name}[{i}] has a non-finite coordinate")
            elif not (-90.0 <= w.latitude <= 90.0 and -180.0 <= w.longitude <= 180.0):
                problems.append(f"{name}[{i}] is not on the Earth")
            elif not 0.0 < w.altitude_rel_m <= config.max_altitude_m:
                problems.append(f"{name}[{i}] at {w.altitude_rel_m:g} m is outside (0, {config.max_altitude_m:g}] m "
                                "above home")
    if not (math.isfinite(spec.scene.latitude) and math.isfinite(spec.scene.longitude)):
        problems.append("the scene has no finite position")
    if not (math.isfinite(spec.cruise_speed_m_s) and spec.cruise_speed_m_s > 0):
        problems.append(f"cruise speed {spec.cruise_speed_m_s} is not a positive number")
    if not (math.isfinite(spec.on_scene_duration_s) and spec.on_scene_duration_s >= 0):
        problems.append(f"on-scene duration {spec.on_scene_duration_s} is not a non-negative number")
    return problems


@dataclass(frozen=True)
class MissionItem:
    """One PX4 mission item as MAVROS's Waypoint carries it (MAV_CMD and MAV_FRAME numbers)."""

    frame: int
    command: int
    param1: float
    param2: float
    param3: float
    param4: float
    latitude: float
    longitude: float
    altitude: float


def route_mission(route, speed_m_s: float, acceptance_radius_m: float) -> list[MissionItem]:
    """A route as a PX4 mission: the ground speed first, then a waypoint per point, heights above home.

    Item k + 1 is route point k, so PX4's `mission/reached` counts route points from 1.
    """
    items = [MissionItem(px4.MAV_FRAME_MISSION, px4.MAV_CMD_DO_CHANGE_SPEED, 1.0, float(speed_m_s), -1.0, 0.0,
                         0.0, 0.0, 0.0)]
    items += [MissionItem(px4.MAV_FRAME_GLOBAL_RELATIVE_ALT, px4.MAV_CMD_NAV_WAYPOINT, 0.0,
                          float(acceptance_radius_m), 0.0, math.nan, w.latitude, w.longitude, w.altitude_rel_m)
              for w in route]
    return items


@dataclass(frozen=True)
class Request:
    """An autopilot request for the node to make: 'arm', 'takeoff', 'mode', or 'mission' (push `route`)."""

    kind: str
    mode: str = ""
    route: tuple[Waypoint, ...] = ()
    speed_m_s: float = 0.0

    def describe(self) -> str:
        if self.kind == "mission":
            return f"push a {len(self.route)}-waypoint mission"
        return f"switch to {self.mode}" if self.kind == "mode" else self.kind


@dataclass
class Setpoint:
    latitude: float
    longitude: float
    altitude_rel_m: float
    velocity_enu: tuple[float, float, float]
    yaw_enu: float


class MissionSequencer:
    def __init__(self, spec: MissionSpec, config: SequencerConfig, permitted_area=None):
        """`permitted_area`: a shapely polygon in longitude, latitude that follow setpoints must keep to."""
        self.spec = spec
        self.config = config
        self.permitted_area = permitted_area
        self.follower_config = dataclasses.replace(config.follower, cruise_speed_m_s=spec.cruise_speed_m_s)
        self.phase = Phase.PREFLIGHT
        self.outcome: Outcome | None = None
        self.reason = ""
        self.setpoint: Setpoint | None = None     # what the node streams; None: stream nothing
        self.distance_to_go_m = math.nan
        self.eta_s = math.nan
        self.on_scene_since_s: float | None = None
        self.takeoff_time_s: float | None = None
        self.landed_time_s: float | None = None
        self.distance_flown_m = 0.0
        self.gimbal: tuple[float, float] = (config.camera_ahead_pitch_deg, 0.0)   # (pitch, yaw), MOUNT degrees
        self.relief_needed = False                        # coming home on the battery reserve
        self.follow_limits_hit: tuple[str, ...] = ()      # which limits held the latest follow setpoint
        self.track_id = ""                                # the target being followed, if any

        self._now = 0.0
        self._frame: LocalFrame | None = None
        self._position: np.ndarray | None = None
        self._step = ""
        self._step_since = 0.0
        self._over_dock_since: float | None = None
        self._acknowledged: set[Request] = set()   # requests the autopilot accepted in this step
        self._pending: Request | None = None
        self._mode_sent: tuple[str, float] | None = None
        self._attempts = 0
        self._retry_at = -math.inf
        self._allowed_modes: set[str] = set()
        self._stream_since: float | None = None
        self._follower: RouteFollower | None = None
        self._hold: np.ndarray | None = None
        self._canceled = False
        self._leave_reason = ""                    # why a flight rule ended the mission early
        self._started = False
        self._requests: list[Request] = []
        self._autopilot_message = ("", -math.inf)
        self._unexplained_mode_since_s: float | None = None  # flying in a mode not asked for, no reason heard yet
        self._failure = ""                          # why the bridge gave up, while PX4 takes over
        self._t = Telemetry(now_s=0.0)
        self._reserve_reason = ""
        self._follow_target: FollowTarget | None = None
        self._limits: FollowLimits | None = None
        self._orbit_center: np.ndarray | None = None  # ENU (east, north) the on-scene pattern circles
        self._look_at: np.ndarray | None = None       # ENU point the camera is on, on scene
        self._heading = math.nan                       # where the nose points, ENU radians (telemetry)
        self._yaw_time: float | None = None            # when the yaw setpoint was last turned
        self._camera: tuple[float, float, float] | None = None   # looking down: (pitch deg, bearing rad, when)
        self._mission_points: list[np.ndarray] = []   # the route pushed as a PX4 mission, local
        self._last_state_s = -math.inf                 # when the previous MAVROS State arrived
        self._link_gap: tuple[float, float] = (0.0, -math.inf)   # (silence s, when it ended) of the last gap

    @classmethod
    def continuing(cls, spec: MissionSpec, config: SequencerConfig, previous: MissionSequencer,
                   permitted_area=None) -> MissionSequencer:
        """A mission taken over in flight from `previous` (see `retask_problem`): no pre-flight, no
        take-off; it flies its route from where the vehicle is, in the OFFBOARD stream already running."""
        seq = cls(spec, config, permitted_area)
        seq._frame, seq._position = previous._frame, previous._position.copy()
        seq._started, seq._now, seq._t = True, previous._now, previous._t
        seq._stream_since, seq.setpoint = previous._stream_since, previous.setpoint
        seq._yaw_time, seq._heading, seq._camera = previous._yaw_time, previous._heading, previous._camera
        seq._last_state_s, seq._link_gap = previous._last_state_s, previous._link_gap
        seq._autopilot_message = previous._autopilot_message
        seq.takeoff_time_s = previous._now          # this mission's share of the flight starts now
        seq.gimbal = previous.gimbal
        seq._allowed_modes = {px4.OFFBOARD}
        seq._enter(Phase.TRANSIT, "retask")
        return seq

    # -------------------------------------------------------------- interface
    @property
    def done(self) -> bool:
        return self.outcome is not None

    def retask_problem(self) -> str:
        """Why this mission cannot hand the vehicle to another one in flight now; empty when it can."""
        if self.done:
            return "its mission has ended"
        if self._failure or self._canceled:
            return "it is being brought home"
        if self.relief_needed:
            return "it is returning on its battery reserve"
        if self.phase not in (Phase.TRANSIT, Phase.ON_SCENE, Phase.FOLLOW, Phase.RETURN):
            return f"it is in {self.phase.name.lower()}, not in flight between the base and a scene"
        if self._step in ("push", "mission"):
            return "it is flying a PX4 mission, not the OFFBOARD stream a new route can take over"
        if self._t.mode != px4.OFFBOARD or self._frame is None or self._position is None:
            return f"it is not in OFFBOARD (mode {self._t.mode or 'unknown'})"
        return ""

    def hand_over(self, mission_id: str) -> None:
        """End this mission in flight: `mission_id` takes the vehicle from here."""
        where = "after leaving the scene" if self.phase == Phase.RETURN else f"in {self.phase.name.lower()}"
        self._finish(Outcome.RETASKED, f"retasked {where} to mission {mission_id}")

    def cancel(self) -> None:
        """The client canceled: come home and land, or stand down if still on the ground."""
        self._canceled = True

    def leave(self, reason: str) -> None:
        """A flight rule ends the mission (its incident closed): come home as on a cancel, saying why."""
        if not self._canceled:
            self._canceled, self._leave_reason = True, reason

    @property
    def leaving(self) -> bool:
        """Canceled or sent home by a rule: on its way back or standing down."""
        return self._canceled

    def follow(self, target: FollowTarget) -> None:
        """The follow controller's latest setpoint; flown on scene while fresh."""
        self._follow_target = target

    def note_autopilot_message(self, text: str, now_s: float) -> None:
        """The latest STATUSTEXT: quoted when a request is refused, and tells failsafes from the pilot."""
        self._autopilot_message = (text, now_s)

    def on_request_done(self, request: Request, accepted: bool, detail: str = "") -> None:
        """How a request ended; for a mode change `accepted` is MAVROS's mode_sent."""
        if self._pending != request:
            return
        self._pending = None
        if not accepted:
            self._refused(request, detail or "refused by the autopilot")
        elif request.kind == "mode":
            self._mode_sent = (request.mode, self._now)
        else:
            self._acknowledged.add(request)

    def update(self, t: Telemetry) -> list[Request]:
        """Advance on fresh telemetry; returns the requests to make now."""
        self._now = t.now_s
        self._t = t
        if not self._started:
            self._started = True
            self._set_step("checks")
        self._requests = []
        if self.done:
            return []
        self._track_position(t)
        self._track_link(t)
        if self.phase != Phase.PREFLIGHT and t.now_s - t.last_state_s > self.config.link_timeout_s:
            self._finish(Outcome.VEHICLE_LOST, f"no MAVROS state for {t.now_s - t.last_state_s:.1f} s: "
                         "the link to the vehicle is lost; PX4's own link-loss failsafe applies")
            return []
        if self.phase != Phase.PREFLIGHT and not t.connected:
            self._finish(Outcome.VEHICLE_LOST, "MAVROS reports the link to the autopilot lost; PX4's own "
                         "link-loss failsafe applies")
            return []
        if self._yielded_to_autopilot(t):
            return []
        if self._failure:
            self._hand_over_to_return(t)
            return self._requests
        link_alive = t.now_s - t.last_state_s <= 2.0     # State comes once a second: a silent link is not "blind"
        if self._flying_phase() and link_alive and t.now_s - t.last_position_s > self.config.position_timeout_s:
            self._fail(f"no position from the autopilot for {t.now_s - t.last_position_s:.1f} s")
            return self._requests
        self._check_battery_reserve(t)
        {
            Phase.PREFLIGHT: self._preflight,
            Phase.TAKEOFF: self._takeoff,
            Phase.TRANSIT: self._transit,
            Phase.ON_SCENE: self._on_scene,
            Phase.FOLLOW: self._follow_target_phase,
            Phase.RETURN: self._return,
            Phase.LAND: self._land,
        }[self.phase](t)
        self._aim_camera(t)
        return self._requests

    # ----------------------------------------------------------------- phases
    def _preflight(self, t: Telemetry) -> None:
        if self._canceled:
            self._finish(Outcome.CANCELED, self._leave_reason or "canceled before take-off")
            return
        problems = self._preflight_problems(t)
        if not problems:
            self._frame = LocalFrame(t.home)
            self._track_position(t)
            self._allowed_modes = {t.mode, px4.AUTO_TAKEOFF, px4.AUTO_LOITER}
            self._enter(Phase.TAKEOFF, "arm")
            self._takeoff(t)
        elif t.now_s - self._step_since > self.config.preflight_timeout_s:
            self._finish(Outcome.FAILED, "pre-flight checks failed: " + "; ".join(problems))

    def _preflight_problems(self, t: Telemetry) -> list[str]:
        cfg = self.config
        problems = []
        if not t.connected:
            problems.append("MAVROS reports no link to the autopilot")
        if t.home is None:
            problems.append("no home position")
        elif not (t.home.has_position() and math.isfinite(t.home.altitude)):
            problems.append("the home position is not finite")
        if not t.gps_fix:
            problems.append("no GPS fix")
        if not (math.isfinite(t.latitude) and math.isfinite(t.longitude) and math.isfinite(t.altitude_rel_m)):
            problems.append("no position")
        if t.armed:
            problems.append("already armed")
        if t.landed_state != px4.LANDED_STATE_ON_GROUND:
            problems.append("not on the ground")
        if not t.battery_fraction >= cfg.min_launch_battery:
            problems.append(f"battery at {t.battery_fraction:.0%}, below the {cfg.min_launch_battery:.0%} "
                            "needed to launch")
        return problems

    def _takeoff(self, t: Telemetry) -> None:
        cfg = self.config
        if self._step == "arm":
            if self._canceled:
                self._finish(Outcome.CANCELED, self._leave_reason or "canceled before take-off")
                return
            if Request("arm") in self._acknowledged or t.armed:
                self._set_step("takeoff")
            else:
                self._request(Request("arm"))
        if self._step == "takeoff":
            if Request("takeoff") in self._acknowledged:
                self._set_step("climb")
            else:
                self._request(Request("takeoff"))
        if self._step == "climb":
            if self.takeoff_time_s is None and t.altitude_rel_m > 0.3:
                self.takeoff_time_s = t.now_s
            # Trust only a State sent after the take-off was accepted: an older one still
            # shows the mode from before take-off.
            fresh = t.last_state_s > self._step_since
            if fresh and t.altitude_rel_m >= cfg.takeoff_complete_alt_m and t.mode == px4.AUTO_LOITER:
                if cfg.transit_mode == "mission":
                    self._start_mission_transit(t)
                else:
                    self._start_route(Phase.TRANSIT, self.spec.route, t, climb_first=True)
                return
        if t.now_s - self._step_since > cfg.takeoff_timeout_s:
            self._fail(f"take-off step '{self._step}' did not complete within {cfg.takeoff_timeout_s:.0f} s "
                       f"(mode {t.mode}, {t.altitude_rel_m:.1f} m above home)")

    def _transit(self, t: Telemetry) -> None:
        if self._step == "retask":
            if self._canceled:
                self._start_route(Phase.RETURN, self.spec.return_route, t)
            else:
                self._start_route(Phase.TRANSIT, self.spec.route, t)
            return
        if self._step in ("push", "mission"):
            self._mission_transit(t)
        elif self._canceled:
            self._start_return_after_cancel(t)
        elif self._fly(t):
            self.on_scene_since_s = t.now_s
            self._hold = self._follower.target.copy()
            if self.config.on_scene_height_m > 0.0:
                self._hold[2] = min(self.config.on_scene_height_m, self.config.max_altitude_m)
            scene = self._scene_local()
            self._orbit_center, self._look_at = scene[:2].copy(), scene
            self._enter(Phase.ON_SCENE, "orbit")

    # A PX4 mission for the transit: pushed after take-off, flown in AUTO.MISSION, and left for
    # OFFBOARD over the route's last point, where the on-scene pattern starts.
    def _start_mission_transit(self, t: Telemetry) -> None:
        self._mission_points = [self._to_local(w) for w in self.spec.route]
        self._allowed_modes = {t.mode, px4.AUTO_MISSION}
        self._enter(Phase.TRANSIT, "push")
        self._mission_transit(t)

    def _mission_transit(self, t: Telemetry) -> None:
        last_seq = len(self._mission_points)      # item 0 sets the speed; waypoints follow
        passed = max(0, min(t.mission_reached_seq, last_seq))
        self._mission_progress(passed)
        if self._canceled:
            above_home = np.array([0.0, 0.0, max(self._position[2], self.spec.route[0].altitude_rel_m)])
            self._follow(Phase.RETURN, list(reversed(self._mission_points[:passed])) + [above_home], t)
            return
        if self._step == "push":
            push = Request("mission", route=tuple(self.spec.route), speed_m_s=self.spec.cruise_speed_m_s)
            if push not in self._acknowledged:
                self._request(push)
                return
            self._set_step("mission")
        if t.mode != px4.AUTO_MISSION:
            self._request(Request("mode", px4.AUTO_MISSION))
            return
        self._allowed_modes = {px4.AUTO_MISSION, px4.OFFBOARD}
        if t.mission_reached_seq >= last_seq:
            # Over the last waypoint: take over in OFFBOARD there, with the stream running first.
            self._follow(Phase.TRANSIT, [self._mission_points[-1]], t)

    def _mission_progress(self, passed: int) -> None:
        points = [self._position] + self._mission_points[max(0, passed):]
        remaining = sum(float(np.linalg.norm(b - a)) for a, b in zip(points, points[1:]))
        self.distance_to_go_m = remaining
        self.eta_s = remaining / self.spec.cruise_speed_m_s

    def _time_on_scene_over(self, t: Telemetry) -> bool:
        """The plan's time on scene counts from arrival, following included: a chase does not keep a drone
        out beyond what the control room asked for (a relief or a new mission takes over)."""
        duration = self.spec.on_scene_duration_s
        return duration > 0 and t.now_s - self.on_scene_since_s >= duration

    def _on_scene(self, t: Telemetry) -> None:
        if self._canceled or self._time_on_scene_over(t):
            self._start_route(Phase.RETURN, self.spec.return_route, t)
            return
        if self._follow_fresh(t):
            self._enter(Phase.FOLLOW, "follow")
            self._follow_target_phase(t)
            return
        self._orbit(t)

    def _orbit(self, t: Telemetry) -> None:
        """Circle the point of interest at the stand-off radius, nose and camera on it; or hold."""
        cfg = self.config
        self.distance_to_go_m, self.eta_s = 0.0, 0.0
        radius = self.spec.standoff_radius_m
        if cfg.on_scene_pattern != "orbit" or radius < 1.0:
            self._stream(self._hold, np.zeros(3), face=self._look_at)
            return
        center = self._orbit_center
        offset = self._position[:2] - center
        angle = math.atan2(offset[1], offset[0]) if np.linalg.norm(offset) > 1.0 else 0.0
        speed = min(cfg.orbit_speed_m_s, self.spec.cruise_speed_m_s)
        # The nearest point of the circle, moving counter-clockwise at the orbit speed: PX4's position
        # loop pulls the vehicle onto the circle, the feed-forward carries it round.
        position = np.array([center[0] + radius * math.cos(angle), center[1] + radius * math.sin(angle),
                             self._hold[2]])
        velocity = np.array([-math.sin(angle) * speed, math.cos(angle) * speed, 0.0])
        self._stream(position, velocity, face=np.array([center[0], center[1], 0.0]))

    def _follow_fresh(self, t: Telemetry) -> bool:
        target = self._follow_target
        return target is not None and 0.0 <= t.now_s - target.stamp_s <= self.config.follow_timeout_s

    def _follow_target_phase(self, t: Telemetry) -> None:
        """Fly the follow controller's setpoints, clamped to the mission's limits, camera on the target."""
        if self._canceled or self._time_on_scene_over(t):
            self._start_route(Phase.RETURN, self.spec.return_route, t)
            return
        target = self._follow_target
        if not self._follow_fresh(t):
            # The stream stopped: circle where the target was last seen, at the follow height.
            self.follow_limits_hit = ()
            self._hold = np.array([self._position[0], self._position[1], self._position[2]])
            if self._look_at is not None:
                self._orbit_center = self._look_at[:2].copy()
            self._enter(Phase.ON_SCENE, "orbit")
            self._orbit(t)
            return
        if self._limits is None:
            area = None
            if self.permitted_area is not None:
                lon, lat = self.permitted_area.exterior.coords.xy
                east, north, _ = self._frame.to_enu(np.array(lat), np.array(lon))
                area = Polygon(list(zip(east, north, strict=True)))
            self._limits = FollowLimits(self.config.follow_limits, self._scene_local(), area)
        self.track_id = target.track_id
        wanted = self._to_local(Waypoint(target.latitude, target.longitude, target.altitude_rel_m))
        clamped = self._limits.clamp(wanted, target.velocity_enu)
        self.follow_limits_hit = clamped.limits
        if math.isfinite(target.look_latitude) and math.isfinite(target.look_longitude):
            look = self._to_local(Waypoint(target.look_latitude, target.look_longitude, 0.0))
        else:
            look = np.array([wanted[0], wanted[1], 0.0])
        self._look_at = look
        self.distance_to_go_m = float(np.linalg.norm(clamped.position[:2] - self._position[:2]))
        self.eta_s = math.nan
        self._stream(clamped.position, clamped.velocity, face=look)

    def _scene_local(self) -> np.ndarray:
        east, north, _ = self._frame.to_enu(self.spec.scene.latitude, self.spec.scene.longitude)
        return np.array([float(east), float(north), 0.0])

    # ----------------------------------------------------------- the camera
    def _aim_camera(self, t: Telemetry) -> None:
        """On the scene or the target only where the flight rules let the camera look down; ahead elsewhere."""
        tracking = self.phase == Phase.FOLLOW and self._follow_fresh(t)
        if camera_may_point_down(self.phase, tracking) and self._look_at is not None and \
                self._position is not None:
            # The gimbal's yaw is from the nose: from where the nose is being turned to (the yaw setpoint just
            # streamed, a slow turn PX4 follows closely), not from telemetry that lags a turn in progress.
            heading = self.setpoint.yaw_enu if self.setpoint is not None else t.heading_enu
            if not math.isfinite(heading):
                heading = math.pi / 2
            self.gimbal = self._panned_to(*mount_angles_to(self._position, heading, self._look_at), heading)
        else:
            self.gimbal = (self.config.camera_ahead_pitch_deg, 0.0)      # at once: the rules allow no delay
            self._camera = None

    def _panned_to(self, pitch: float, yaw: float, heading: float) -> tuple[float, float]:
        """MOUNT (pitch, yaw) turned towards the wanted ones at max_camera_rate_deg_s, in the world: the camera's
        bearing is the nose's less the gimbal's yaw, so a turning nose does not turn the picture."""
        bearing = heading - math.radians(yaw)
        if self._camera is not None:
            last_pitch, last_bearing, since = self._camera
            step = self.config.max_camera_rate_deg_s * max(0.0, self._now - since)
            pitch = last_pitch + max(-step, min(step, pitch - last_pitch))
            turn = (math.degrees(bearing - last_bearing) + 180.0) % 360.0 - 180.0
            bearing = last_bearing + math.radians(max(-step, min(step, turn)))
        self._camera = (pitch, bearing, self._now)
        return pitch, (math.degrees(heading - bearing) + 180.0) % 360.0 - 180.0

    # ------------------------------------------------------ battery reserve
    def _check_battery_reserve(self, t: Telemetry) -> None:
        """Turn for home while the battery above the reserve still covers the way back, and say so."""
        if self.relief_needed or self.phase not in (Phase.TRANSIT, Phase.ON_SCENE, Phase.FOLLOW):
            return
        if self._position is None or not math.isfinite(t.flight_time_remaining_s):
            return
        needed = self._time_home_s() + self.config.return_margin_s
        if t.flight_time_remaining_s >= needed:
            return
        self.relief_needed = True
        self._reserve_reason = (f"{t.flight_time_remaining_s / 60:.1f} min of flight left above the reserve, "
                                f"{needed / 60:.1f} min needed to come home")
        if self.phase == Phase.TRANSIT and self._step == "fly":
            self._start_return_after_cancel(t)
        else:
            self._start_route(Phase.RETURN, self.spec.return_route, t)

    def _time_home_s(self) -> float:
        """Flying time home by the planned return: to its start, along it, then down."""
        cfg = self.config.follower
        points = [self._position] + [self._to_local(w) for w in self.spec.return_route]
        length = sum(float(np.linalg.norm(b[:2] - a[:2])) for a, b in zip(points, points[1:]))
        return length / self.spec.cruise_speed_m_s + points[-1][2] / cfg.descent_speed_m_s

    def _return(self, t: Telemetry) -> None:
        if self._fly(t):
            self._hold = self._follower.target.copy()
            self._allowed_modes = {px4.OFFBOARD, px4.AUTO_LAND}
            self._enter(Phase.LAND, "land")
            self._land(t)

    def _land(self, t: Telemetry) -> None:
        cfg = self.config
        if self._step == "land":
            if t.mode == px4.AUTO_LAND:
                self.setpoint = None     # PX4 has left offboard: stop the stream
                self._allowed_modes = {px4.AUTO_LAND}
                self._set_step("touchdown")
            else:
                self._stream(self._hold, np.zeros(3))
                if self._settled_over_dock(t):
                    self._request(Request("mode", px4.AUTO_LAND))
        if self._step == "touchdown" and t.landed_state == px4.LANDED_STATE_ON_GROUND and not t.armed:
            self.landed_time_s = t.now_s
            if self.relief_needed:
                self._finish(Outcome.BATTERY_RESERVE, f"came home on the battery reserve ({self._reserve_reason}); "
                             "landed on the base")
            elif self._leave_reason:
                self._finish(Outcome.COMPLETED, f"{self._leave_reason}; returned and landed on the base")
            elif self._canceled:
                self._finish(Outcome.CANCELED, "canceled; returned and landed on the base")
            else:
                self._finish(Outcome.COMPLETED, "mission flown; landed on the base")
            return
        if t.now_s - self._step_since > cfg.land_timeout_s:
            self._fail(f"landing did not complete within {cfg.land_timeout_s:.0f} s")

    def _settled_over_dock(self, t: Telemetry) -> bool:
        """PX4 lands straight down from where it is: the drone arrives at the end of its route still moving,
        so it holds over the dock until it has been within land_radius_m of it for land_settle_s."""
        cfg = self.config
        if t.now_s - self._step_since >= cfg.land_hold_max_s:
            return True
        if float(np.linalg.norm(self._position[:2] - self._hold[:2])) > cfg.land_radius_m:
            self._over_dock_since = None
        elif self._over_dock_since is None:
            self._over_dock_since = t.now_s
        return self._over_dock_since is not None and t.now_s - self._over_dock_since >= cfg.land_settle_s

    def _flying_phase(self) -> bool:
        return self.phase in (Phase.TRANSIT, Phase.ON_SCENE, Phase.FOLLOW, Phase.RETURN) or (
            self.phase == Phase.LAND and self._step == "land")

    # ------------------------------------------------------------- giving up
    def _fail(self, reason: str) -> None:
        """Give up the mission. Airborne under the bridge's control, hand over to AUTO.RTL first."""
        t = self._t
        airborne = t.armed and t.landed_state not in (px4.LANDED_STATE_ON_GROUND, px4.LANDED_STATE_UNDEFINED)
        if not airborne or not self._allowed_modes & {t.mode}:
            self._finish(Outcome.FAILED, reason)
            return
        self._failure = reason
        self._allowed_modes |= {px4.AUTO_RTL}
        self._set_step("return to launch")
        self._hand_over_to_return(t)

    def _hand_over_to_return(self, t: Telemetry) -> None:
        if t.mode == px4.AUTO_RTL:
            self.setpoint = None
            self._finish(Outcome.FAILED, f"{self._failure}; handed over to PX4's return to launch")
            return
        if self._position is not None and self._frame is not None:
            self._stream(self._position, np.zeros(3))     # hold in offboard until RTL is taken
        self._request(Request("mode", px4.AUTO_RTL))

    # --------------------------------------------------------------- routing
    def _start_route(self, phase: Phase, route: list[Waypoint], t: Telemetry, climb_first=False) -> None:
        points = [self._to_local(w) for w in route] or [np.array([0.0, 0.0, self._position[2]])]
        if climb_first:
            # Climb straight up over home to the first cruise altitude, then fly the route.
            points.insert(0, np.array([self._position[0], self._position[1], points[0][2]]))
        self._follow(phase, points, t)

    def _start_return_after_cancel(self, t: Telemetry) -> None:
        """Canceled in transit: retrace the legs flown (airspace already cleared), then come home."""
        flown = self._follower.points[1:self._follower.leg + 1]
        above_home = np.array([0.0, 0.0, max(self._position[2], self.spec.route[0].altitude_rel_m)])
        self._follow(Phase.RETURN, list(reversed(flown)) + [above_home], t)

    def _follow(self, phase: Phase, points: list[np.ndarray], t: Telemetry) -> None:
        self._follower = RouteFollower(self._position, points, self.follower_config)
        if t.mode != px4.OFFBOARD:
            self._allowed_modes = {t.mode, px4.OFFBOARD}
        self._enter(phase, "fly")
        self._fly(t)

    def _fly(self, t: Telemetry) -> bool:
        """Stream the follower's guidance; True once the route's last point is reached in OFFBOARD."""
        guidance = self._follower.update(self._position, t.now_s)
        self.distance_to_go_m, self.eta_s = guidance.remaining_m, guidance.eta_s
        self._stream(guidance.position, guidance.velocity)
        if t.mode != px4.OFFBOARD:
            if t.now_s - self._stream_since >= self.config.offboard_prestream_s:
                self._request(Request("mode", px4.OFFBOARD))
            return False
        self._allowed_modes = {px4.OFFBOARD}
        return guidance.arrived

    def _stream(self, position: np.ndarray, velocity: np.ndarray, face: np.ndarray | None = None) -> None:
        if self._stream_since is None:
            self._stream_since = self._now
        lat, lon, _ = self._frame.to_geodetic(float(position[0]), float(position[1]), 0.0)
        if face is None and self.phase == Phase.TRANSIT:
            face = self._scene_local()
        to_face = (face[0] - position[0], face[1] - position[1]) if face is not None else (0.0, 0.0)
        if math.hypot(*to_face) > 1.0:
            yaw = math.atan2(to_face[1], to_face[0])          # face the scene or the target
        elif math.hypot(velocity[0], velocity[1]) > 0.5:
            yaw = math.atan2(velocity[1], velocity[0])        # face the way home
        else:
            yaw = self.setpoint.yaw_enu if self.setpoint else math.pi / 2
        self.setpoint = Setpoint(float(lat), float(lon), float(position[2]),
                                 (float(velocity[0]), float(velocity[1]), float(velocity[2])), self._turned_to(yaw))

    def _turned_to(self, yaw: float) -> float:
        """The yaw setpoint a turn at max_yaw_rate_deg_s reaches towards `yaw` since the last setpoint; a new
        stream starts where the nose points."""
        if self.setpoint is not None and self._yaw_time is not None:
            previous, elapsed = self.setpoint.yaw_enu, self._now - self._yaw_time
        else:
            previous, elapsed = self._heading, 0.0
        self._yaw_time = self._now
        if not math.isfinite(previous):
            return yaw
        step = math.radians(self.config.max_yaw_rate_deg_s) * max(0.0, elapsed)
        turn = (yaw - previous + math.pi) % (2.0 * math.pi) - math.pi
        return (previous + max(-step, min(step, turn)) + math.pi) % (2.0 * math.pi) - math.pi

    def _to_local(self, waypoint: Waypoint) -> np.ndarray:
        east, north, _ = self._frame.to_enu(waypoint.latitude, waypoint.longitude)
        return np.array([float(east), float(north), waypoint.altitude_rel_m])

    def _track_position(self, t: Telemetry) -> None:
        self._heading = t.heading_enu
        if self._frame is None or not (math.isfinite(t.latitude) and math.isfinite(t.longitude)
                                       and math.isfinite(t.altitude_rel_m)):
            return
        east, north, _ = self._frame.to_enu(t.latitude, t.longitude)
        position = np.array([float(east), float(north), t.altitude_rel_m])
        if self._position is not None and self.takeoff_time_s is not None and self.landed_time_s is None:
            self.distance_flown_m += float(np.linalg.norm(position - self._position))
        self._position = position

    # -------------------------------------------------------------- requests
    def _request(self, request: Request) -> None:
        """Ask once; while a request is pending, backing off or awaiting its mode, ask nothing."""
        if self._pending is not None or self._now < self._retry_at or self.done:
            return
        if request.kind == "mode" and self._mode_sent is not None and self._mode_sent[0] == request.mode:
            if self._now - self._mode_sent[1] < self.config.mode_confirm_timeout_s:
                return   # sent: wait for the autopilot to report the mode
            self._mode_sent = None
            self._refused(request, "the autopilot did not switch")
            if self.done or self._now < self._retry_at:
                return
        self._pending = request
        self._requests.append(request)

    def _refused(self, request: Request, detail: str) -> None:
        self._attempts += 1
        said = self._autopilot_message[0]
        if said and said not in detail:
            detail = f"{detail} (autopilot: {said})"
        if self._attempts < self.config.request_attempts:
            self._retry_at = self._now + self.config.retry_backoff_s * 2 ** (self._attempts - 1)
            return
        reason = f"{request.describe()} refused {self._attempts} times: {detail}"
        if self._failure:   # even the hand-over to return to launch was refused
            self.setpoint = None
            self._finish(Outcome.FAILED, f"{self._failure}; {reason}; the vehicle is left to PX4 and the pilot")
        else:
            self._fail(reason)

    # ----------------------------------------------------------------- checks
    def _track_link(self, t: Telemetry) -> None:
        """Note a silence between States (normally 1 s apart): what PX4 said during it never arrived."""
        if t.last_state_s != self._last_state_s:
            if math.isfinite(self._last_state_s) and t.last_state_s - self._last_state_s > 1.5:
                self._link_gap = (t.last_state_s - self._last_state_s, t.last_state_s)
            self._last_state_s = t.last_state_s

    def _yielded_to_autopilot(self, t: Telemetry) -> bool:
        """Flying in a mode the bridge did not ask for: the pilot or a failsafe has control. Yield."""
        if self.phase == Phase.PREFLIGHT or not t.armed or not t.mode or t.mode in self._allowed_modes:
            self._unexplained_mode_since_s = None
            return False
        self.setpoint = None
        gap, gap_end = self._link_gap
        if px4.OFFBOARD in self._allowed_modes and t.now_s - gap_end <= self.config.failsafe_message_window_s:
            # Setpoints cannot have reached PX4 while the link was silent: it left offboard on its own.
            self._finish(Outcome.AUTOPILOT_FAILSAFE, f"offboard lost while the link was silent for {gap:.1f} s: "
                         f"the autopilot took {t.mode}; the bridge does not re-enter offboard")
            return True
        text, when = self._autopilot_message
        if text and t.now_s - when <= self.config.failsafe_message_window_s and any(
                word in text.lower() for word in _FAILSAFE_WORDS):
            self._finish(Outcome.AUTOPILOT_FAILSAFE, f"the autopilot switched to {t.mode} on a failsafe "
                         f"({text}): PX4 has control")
            return True
        # Yielded already (no setpoint); whose the drone is, the pilot's or a failsafe's, waits for the message
        # the autopilot may send just after its mode.
        if self._unexplained_mode_since_s is None:
            self._unexplained_mode_since_s = t.now_s
        if t.now_s - self._unexplained_mode_since_s >= self.config.failsafe_message_wait_s:
            self._finish(Outcome.PILOT_TAKEOVER, f"the autopilot switched to {t.mode}, which the bridge did "
                         "not ask for: the pilot has control")
        return True

    # ------------------------------------------------------------------ state
    def _enter(self, phase: Phase, step: str) -> None:
        self.phase = phase
        self._set_step(step)

    def _set_step(self, step: str) -> None:
        self._step = step
        self._step_since = self._now
        self._over_dock_since = None
        self._acknowledged.clear()
        self._attempts = 0
        self._retry_at = -math.inf

    def _finish(self, outcome: Outcome, reason: str) -> None:
        self.outcome = outcome
        self.reason = reason
        if outcome != Outcome.COMPLETED:
            self.setpoint = None
