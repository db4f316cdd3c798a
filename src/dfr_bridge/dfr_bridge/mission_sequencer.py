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

from dfr_bridge.route_follower import FollowerConfig, RouteFollower
from dfr_common import px4
from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_common.mission import Outcome, Phase

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
    max_altitude_m: float = 120.0
    failsafe_message_window_s: float = 5.0  # how recent a failsafe message must be to explain a mode change
    follower: FollowerConfig = field(default_factory=FollowerConfig)


def plan_problems(spec: MissionSpec, config: SequencerConfig) -> list[str]:
    """Why a mission cannot be flown as planned, whatever the vehicle's state; empty when it can."""
    problems = []
    if not spec.mission_id:
        problems.append("the plan has no mission_id")
    if not spec.incident_id:
        problems.append("the mission names no incident: every flight must answer one")
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
class Request:
    """An autopilot request for the node to make: kind 'arm', 'takeoff' or 'mode'."""

    kind: str
    mode: str = ""

    def describe(self) -> str:
        return f"switch to {self.mode}" if self.kind == "mode" else self.kind


@dataclass
class Setpoint:
    latitude: float
    longitude: float
    altitude_rel_m: float
    velocity_enu: tuple[float, float, float]
    yaw_enu: float


class MissionSequencer:
    def __init__(self, spec: MissionSpec, config: SequencerConfig):
        self.spec = spec
        self.config = config
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

        self._now = 0.0
        self._frame: LocalFrame | None = None
        self._position: np.ndarray | None = None
        self._step = ""
        self._step_since = 0.0
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
        self._started = False
        self._requests: list[Request] = []
        self._autopilot_message = ("", -math.inf)
        self._failure = ""                          # why the bridge gave up, while PX4 takes over
        self._t = Telemetry(now_s=0.0)

    # -------------------------------------------------------------- interface
    @property
    def done(self) -> bool:
        return self.outcome is not None

    def cancel(self) -> None:
        """The client canceled: come home and land, or stand down if still on the ground."""
        self._canceled = True

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
        if self.phase != Phase.PREFLIGHT and t.now_s - t.last_state_s > self.config.link_timeout_s:
            self._finish(Outcome.VEHICLE_LOST, f"no MAVROS state for {t.now_s - t.last_state_s:.1f} s: "
                         "the link to the vehicle is lost; PX4's own link-loss failsafe applies")
            return []
        if self._yielded_to_autopilot(t):
            return []
        if self._failure:
            self._hand_over_to_return(t)
            return self._requests
        if self._flying_phase() and t.now_s - t.last_position_s > self.config.position_timeout_s:
            self._fail(f"no position from the autopilot for {t.now_s - t.last_position_s:.1f} s")
            return self._requests
        {
            Phase.PREFLIGHT: self._preflight,
            Phase.TAKEOFF: self._takeoff,
            Phase.TRANSIT: self._transit,
            Phase.ON_SCENE: self._on_scene,
            Phase.RETURN: self._return,
            Phase.LAND: self._land,
        }[self.phase](t)
        return self._requests

    # ----------------------------------------------------------------- phases
    def _preflight(self, t: Telemetry) -> None:
        if self._canceled:
            self._finish(Outcome.CANCELED, "canceled before take-off")
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
                self._finish(Outcome.CANCELED, "canceled before take-off")
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
                self._start_route(Phase.TRANSIT, self.spec.route, t, climb_first=True)
                return
        if t.now_s - self._step_since > cfg.takeoff_timeout_s:
            self._fail(f"take-off step '{self._step}' did not complete within {cfg.takeoff_timeout_s:.0f} s "
                       f"(mode {t.mode}, {t.altitude_rel_m:.1f} m above home)")

    def _transit(self, t: Telemetry) -> None:
        if self._canceled:
            self._start_return_after_cancel(t)
        elif self._fly(t):
            self.on_scene_since_s = t.now_s
            self._hold = self._follower.target.copy()
            self._enter(Phase.ON_SCENE, "hold")

    def _on_scene(self, t: Telemetry) -> None:
        self._stream(self._hold, np.zeros(3))
        self.distance_to_go_m, self.eta_s = 0.0, 0.0
        duration = self.spec.on_scene_duration_s
        if self._canceled or (duration > 0 and t.now_s - self.on_scene_since_s >= duration):
            self._start_route(Phase.RETURN, self.spec.return_route, t)

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
                self._request(Request("mode", px4.AUTO_LAND))
        if self._step == "touchdown" and t.landed_state == px4.LANDED_STATE_ON_GROUND and not t.armed:
            self.landed_time_s = t.now_s
            if self._canceled:
                self._finish(Outcome.CANCELED, "canceled; returned and landed on the base")
            else:
                self._finish(Outcome.COMPLETED, "mission flown; landed on the base")
            return
        if t.now_s - self._step_since > cfg.land_timeout_s:
            self._fail(f"landing did not complete within {cfg.land_timeout_s:.0f} s")

    def _flying_phase(self) -> bool:
        return self.phase in (Phase.TRANSIT, Phase.ON_SCENE, Phase.RETURN) or (
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
        guidance = self._follower.update(self._position)
        self.distance_to_go_m, self.eta_s = guidance.remaining_m, guidance.eta_s
        self._stream(guidance.position, guidance.velocity)
        if t.mode != px4.OFFBOARD:
            if t.now_s - self._stream_since >= self.config.offboard_prestream_s:
                self._request(Request("mode", px4.OFFBOARD))
            return False
        self._allowed_modes = {px4.OFFBOARD}
        return guidance.arrived

    def _stream(self, position: np.ndarray, velocity: np.ndarray) -> None:
        if self._stream_since is None:
            self._stream_since = self._now
        lat, lon, _ = self._frame.to_geodetic(float(position[0]), float(position[1]), 0.0)
        scene_east, scene_north, _ = self._frame.to_enu(self.spec.scene.latitude, self.spec.scene.longitude)
        to_scene = (scene_east - position[0], scene_north - position[1])
        if self.phase in (Phase.TRANSIT, Phase.ON_SCENE) and math.hypot(*to_scene) > 1.0:
            yaw = math.atan2(to_scene[1], to_scene[0])        # face the scene
        elif math.hypot(velocity[0], velocity[1]) > 0.5:
            yaw = math.atan2(velocity[1], velocity[0])        # face the way home
        else:
            yaw = self.setpoint.yaw_enu if self.setpoint else math.pi / 2
        self.setpoint = Setpoint(float(lat), float(lon), float(position[2]),
                                 (float(velocity[0]), float(velocity[1]), float(velocity[2])), yaw)

    def _to_local(self, waypoint: Waypoint) -> np.ndarray:
        east, north, _ = self._frame.to_enu(waypoint.latitude, waypoint.longitude)
        return np.array([float(east), float(north), waypoint.altitude_rel_m])

    def _track_position(self, t: Telemetry) -> None:
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
    def _yielded_to_autopilot(self, t: Telemetry) -> bool:
        """Flying in a mode the bridge did not ask for: the pilot or a failsafe has control. Yield."""
        if self.phase == Phase.PREFLIGHT or not t.armed or not t.mode or t.mode in self._allowed_modes:
            return False
        self.setpoint = None
        text, when = self._autopilot_message
        if text and t.now_s - when <= self.config.failsafe_message_window_s and any(
                word in text.lower() for word in _FAILSAFE_WORDS):
            self._finish(Outcome.AUTOPILOT_FAILSAFE, f"the autopilot switched to {t.mode} on a failsafe "
                         f"({text}): PX4 has control")
        else:
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
        self._acknowledged.clear()
        self._attempts = 0
        self._retry_at = -math.inf

    def _finish(self, outcome: Outcome, reason: str) -> None:
        self.outcome = outcome
        self.reason = reason
        if outcome != Outcome.COMPLETED:
            self.setpoint = None
