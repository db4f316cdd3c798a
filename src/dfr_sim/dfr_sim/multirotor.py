"""A PX4-like multirotor, as a MAVROS client sees it.

The model reproduces the rules a bridge must live with on a real PX4: which modes
exist, when arming and mode changes are refused, take-off then hold, offboard only
behind a live setpoint stream, automatic disarming before take-off and after
landing, return-to-launch, landing, and the battery failsafe. Its motion is a point
mass with speed and acceleration limits in the vehicle's local ENU frame, whose
origin is the vehicle's dock on flat ground. Plain Python: the simulator node
drives it and turns its state into MAVROS messages.
"""
from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import shapely

from dfr_common import px4
from dfr_common.documented import documented
from dfr_sim import mission_items as mi
from dfr_sim.disturbances import GpsError, Wind
from dfr_sim.gimbal import Gimbal, GimbalLimits


def _point(enu) -> shapely.Point:
    return shapely.Point(float(enu[0]), float(enu[1]))


@dataclass
class MultirotorConfig:
    """Airframe limits and the PX4 parameters the model honours (PX4 defaults unless noted)."""

    max_speed_m_s: float = documented(12.0, "horizontal speed limit (MPC_XY_VEL_MAX)", 0.5, 40.0)
    max_climb_m_s: float = documented(3.0, "climb rate limit (MPC_Z_VEL_MAX_UP)", 0.5, 10.0)
    max_descent_m_s: float = documented(1.5, "descent rate limit (MPC_Z_VEL_MAX_DN)", 0.3, 10.0)
    max_accel_m_s2: float = documented(3.0, "acceleration limit (MPC_ACC_HOR)", 0.5, 15.0)
    takeoff_speed_m_s: float = documented(1.5, "take-off climb rate (MPC_TKO_SPEED)", 0.3, 5.0)
    land_speed_m_s: float = documented(0.7, "final landing descent rate (MPC_LAND_SPEED)", 0.2, 3.0)
    land_slowdown_alt_m: float = documented(10.0, "height below which landing slows (MPC_LAND_ALT1)",
                                              1.0, 50.0)
    takeoff_alt_m: float = documented(2.5, "take-off height for a NaN altitude (MIS_TAKEOFF_ALT)",
                                        1.0, 120.0)
    rtl_return_alt_m: float = documented(60.0, "return height above home (RTL_RETURN_ALT)", 5.0, 120.0)
    rtl_descend_alt_m: float = documented(30.0, "height to descend to before landing on return "
                                                  "(RTL_DESCEND_ALT)", 2.0, 120.0)
    rtl_speed_m_s: float = documented(5.0, "horizontal speed of automatic legs (MPC_XY_CRUISE)",
                                        0.5, 40.0)
    acceptance_radius_m: float = documented(1.0, "distance at which an automatic leg counts as reached",
                                              0.1, 20.0)
    disarm_preflight_s: float = documented(10.0, "disarm if armed and not taken off for this long "
                                                   "(COM_DISARM_PRFLT)", 1.0, 60.0)
    disarm_land_s: float = documented(2.0, "disarm this long after landing (COM_DISARM_LAND)", 0.1, 20.0)
    land_detect_s: float = documented(1.0, "ground contact time that counts as landed (LNDMC_TRIG_TIME)",
                                        0.1, 5.0)
    offboard_loss_timeout_s: float = documented(1.0, "setpoint silence that ends offboard (COM_OF_LOSS_T)",
                                                  0.1, 10.0)
    offboard_min_rate_hz: float = documented(2.0, "setpoint rate needed for offboard", 0.5, 50.0)
    offboard_loss_mode: str = documented(px4.POSCTL, "mode taken when offboard setpoints stop (COM_OBL_RC_ACT); "
                                                     "a pilot mode without RC falls back to AUTO.RTL")
    rc_available: bool = documented(True, "the pilot's remote control is connected, so pilot modes can run")
    battery_capacity_wh: float = documented(100.0, "usable battery energy", 5.0, 5000.0)
    hover_power_w: float = documented(150.0, "electrical power to hover in still air", 10.0, 10000.0)
    speed_drain_factor: float = documented(0.3, "extra power at full airspeed, as a fraction of hover power",
                                             0.0, 5.0)
    climb_power_w_per_m_s: float = documented(20.0, "extra power per m/s of climb", 0.0, 1000.0)
    idle_drain_fraction: float = documented(0.05, "power when armed on the ground, as a fraction of hover",
                                              0.0, 1.0)
    dock_charge_per_s: float = documented(0.0, "battery fraction charged per second while disarmed on the "
                                               "ground (in its dock); 0: no charging", 0.0, 0.1)
    battery_cells: int = documented(4, "series cells of the LiPo pack, for the reported voltage", 1, 14)
    initial_battery_fraction: float = documented(1.0, "battery level at start", 0.0, 1.0)
    battery_low: float = documented(0.15, "low battery level (BAT_LOW_THR)", 0.05, 0.5)
    battery_critical: float = documented(0.07, "critical battery level (BAT_CRIT_THR)", 0.03, 0.3)
    battery_emergency: float = documented(0.05, "emergency battery level (BAT_EMERGEN_THR)", 0.01, 0.2)
    low_battery_action: int = documented(3, "COM_LOW_BAT_ACT: 0 warn, 2 land, 3 return at critical "
                                              "and land at emergency", 0, 3)
    position_gain: float = documented(1.0, "proportional gain of the position controller, 1/s", 0.1, 10.0)
    estimator_ready_s: float = documented(3.0, "time after boot before the estimator allows arming", 0.0, 120.0)
    datalink_loss_timeout_s: float = documented(10.0, "link silence before the data-link failsafe "
                                                        "(COM_DL_LOSS_T)", 1.0, 300.0)
    datalink_loss_action: int = documented(0, "NAV_DLL_ACT: 0 disabled, 1 hold, 2 return, 3 land", 0, 3)
    geofence_action: int = documented(2, "GF_ACTION: 0 none, 1 warning, 2 hold, 3 return, 5 land", 0, 5)
    geofence_max_horizontal_m: float = documented(0.0, "largest distance from home (GF_MAX_HOR_DIST); "
                                                         "0 disables", 0.0, 100000.0)
    geofence_max_vertical_m: float = documented(0.0, "largest height above home (GF_MAX_VER_DIST); "
                                                       "0 disables", 0.0, 10000.0)
    wind_east_m_s: float = documented(0.0, "mean wind towards the east", -30.0, 30.0)
    wind_north_m_s: float = documented(0.0, "mean wind towards the north", -30.0, 30.0)
    wind_gust_m_s: float = documented(0.0, "standard deviation of gusts", 0.0, 15.0)
    wind_gust_time_s: float = documented(4.0, "correlation time of gusts", 0.1, 600.0)
    gps_noise_m: float = documented(0.0, "standard deviation of the horizontal position error", 0.0, 50.0)
    gps_noise_vertical_m: float = documented(0.0, "standard deviation of the altitude error", 0.0, 50.0)
    gps_noise_time_s: float = documented(30.0, "correlation time of the position error", 0.1, 3600.0)
    gimbal_slew_deg_s: float = documented(90.0, "gimbal slew rate", 1.0, 1000.0)
    gimbal_pitch_min_deg: float = documented(-90.0, "lowest gimbal pitch (-90 is straight down)", -120.0, 0.0)
    gimbal_pitch_max_deg: float = documented(30.0, "highest gimbal pitch", 0.0, 90.0)
    seed: int = documented(1, "random seed of wind and GPS error; each vehicle adds its index", 0, 2**31 - 1)

    @property
    def hover_endurance_s(self) -> float:
        return self.battery_capacity_wh * 3600.0 / self.hover_power_w


@dataclass
class Event:
    """Something PX4 would say in a STATUSTEXT: a refusal, a failsafe, a mode change."""

    time_s: float
    severity: str   # "info", "warning" or "critical"
    text: str


@dataclass
class _Setpoint:
    position: np.ndarray | None    # ENU metres, or None when only velocity is commanded
    velocity: np.ndarray | None    # ENU m/s feed-forward or command
    yaw: float | None              # ENU radians
    yaw_rate: float | None = None  # ENU radians per second, when yaw is not given


class Multirotor:
    """One vehicle. Commands mirror the MAVROS services; `step` advances the physics."""

    def __init__(self, vehicle_id: str, config: MultirotorConfig | None = None,
                 ground_amsl_m: float = 0.0, battery_fraction: float | None = None, index: int = 0):
        self.vehicle_id = vehicle_id
        self.config = config or MultirotorConfig()
        cfg = self.config
        if battery_fraction is None:
            battery_fraction = cfg.initial_battery_fraction
        self.ground_amsl_m = ground_amsl_m   # the flat ground under the dock, metres AMSL
        self.position = np.zeros(3)          # ENU metres from the dock; z is height above ground
        self.velocity = np.zeros(3)
        self.yaw = math.pi / 2               # ENU: facing north
        self.armed = False
        self.mode = px4.AUTO_LOITER          # what PX4 v1.14+ reports after boot
        self.battery_fraction = float(battery_fraction)
        self.home = np.zeros(3)
        self.gps_ok = True
        self.events: deque[Event] = deque(maxlen=200)
        self.time_s = 0.0

        rng = np.random.default_rng(cfg.seed + index)
        self.wind = Wind(cfg.wind_east_m_s, cfg.wind_north_m_s, cfg.wind_gust_m_s, cfg.wind_gust_time_s, rng)
        self.gps_error = GpsError(cfg.gps_noise_m, cfg.gps_noise_vertical_m, cfg.gps_noise_time_s, rng)
        self.gimbal = Gimbal(GimbalLimits(cfg.gimbal_slew_deg_s, cfg.gimbal_pitch_min_deg, cfg.gimbal_pitch_max_deg))
        self.fence_polygon = None            # shapely Polygon in this ENU frame, or None: the fence's inclusion area

        # Injected faults: the link to MAVROS, modes PX4 refuses, a failing pre-arm check.
        self.link_up = True
        self.refused_modes: set[str] = set()
        self.arming_fault = ""
        self.drain_multiplier = 1.0
        self.link_lost_at: float | None = None
        self._datalink_failsafe = False
        self._fence_breached = False

        # The mission PX4 holds, and where in it the vehicle is.
        self.mission: list[mi.MissionItem] = []
        self.mission_seq = 0
        self.mission_reached: deque[int] = deque(maxlen=100)   # seqs reached, for mission/reached
        self.mission_changed = True                              # for republishing mission/waypoints
        self._mission_speed: float | None = None
        self._item_arrived_at: float | None = None
        self._mission_climb: np.ndarray | None = None
        self._item_reported = -1                                 # the seq last reported reached

        self._mode_before_arming = px4.AUTO_LOITER
        self._armed_at = 0.0
        self._taken_off = False
        self._landed = True
        self._ground_contact_s = 0.0
        self._landed_at = 0.0
        self._hold_point = self.position.copy()
        self._takeoff_target: np.ndarray | None = None
        self._takeoff_height: float | None = None
        self._takeoff_position: np.ndarray | None = None
        self._rtl_stage = ""
        self._rtl_altitude = 0.0
        self._setpoint: _Setpoint | None = None
        self._setpoint_times: deque[float] = deque(maxlen=64)
        self._battery_level = 0              # 0 ok, 1 low, 2 critical, 3 emergency
        self._dt = 0.05

    # ------------------------------------------------------------------ queries
    @property
    def landed(self) -> bool:
        return self._landed

    @property
    def landed_state(self) -> int:
        if self._landed:
            return px4.LANDED_STATE_ON_GROUND
        if self.mode == px4.AUTO_TAKEOFF:
            return px4.LANDED_STATE_TAKEOFF
        if self.mode == px4.AUTO_LAND or (self.mode == px4.AUTO_RTL and self._rtl_stage == "land") or (
                self.mode == px4.AUTO_MISSION and self.mission_seq < len(self.mission)
                and self.mission[self.mission_seq].command == mi.NAV_LAND):
            return px4.LANDED_STATE_LANDING
        return px4.LANDED_STATE_IN_AIR

    @property
    def estimated_position(self) -> np.ndarray:
        """Where PX4 believes it is: the truth plus the GPS error. PX4 flies this, not the truth."""
        estimate = self.position.copy()
        estimate[:2] += self.gps_error.value[:2]
        return estimate

    @property
    def reported_position(self) -> np.ndarray:
        """What MAVROS reports: the estimate, with the altitude error too."""
        reported = self.estimated_position
        reported[2] += self.gps_error.value[2]
        return reported

    @property
    def airborne(self) -> bool:
        return not self._landed

    @property
    def height_above_home(self) -> float:
        return float(self.position[2] - self.home[2])

    @property
    def last_setpoint_s(self) -> float:
        """When the latest offboard setpoint arrived; -inf if none has."""
        return self._setpoint_times[-1] if self._setpoint_times else -math.inf

    def offboard_signal_ok(self, now: float) -> bool:
        """PX4's offboard 'proof of life': a setpoint within COM_OF_LOSS_T. Losing it ends offboard."""
        return bool(self._setpoint_times) and now - self._setpoint_times[-1] <= self.config.offboard_loss_timeout_s

    def offboard_stream_ready(self, now: float) -> bool:
        """Enough of a stream to enter offboard: fresh, and at the required rate over the last second."""
        if not self.offboard_signal_ok(now):
            return False
        window = 1.0
        recent = sum(1 for t in self._setpoint_times if now - t <= window)
        return recent >= self.config.offboard_min_rate_hz * window

    # ---------------------------------------------------------------- commands
    def arm(self, value: bool, now: float) -> tuple[bool, int]:
        """cmd/arming: (success, MAV_RESULT)."""
        if value:
            if self.armed:
                return True, px4.MAV_RESULT_ACCEPTED
            reason = self._arming_refusal(now)
            if reason:
                self.say(now, "critical", f"Arming denied: {reason}")
                return False, px4.MAV_RESULT_TEMPORARILY_REJECTED
            self.armed = True
            self._armed_at = now
            self._taken_off = False
            self._mode_before_arming = self.mode
            self.home = self.estimated_position
            self._hold_point = self.estimated_position
            self.mission_seq = 0 if self.mode == px4.AUTO_MISSION else self.mission_seq
            self.say(now, "info", "Armed")
            if self.mode == px4.AUTO_TAKEOFF:
                self._start_takeoff(now)
            return True, px4.MAV_RESULT_ACCEPTED
        if not self.armed:
            return True, px4.MAV_RESULT_ACCEPTED
        if not self._landed:
            self.say(now, "critical", "Disarming denied: not landed")
            return False, px4.MAV_RESULT_TEMPORARILY_REJECTED
        self._disarm(now, "Disarmed by command")
        return True, px4.MAV_RESULT_ACCEPTED

    def set_mode(self, mode: str, now: float) -> bool:
        """set_mode: returns MAVROS's mode_sent. PX4's answer shows only in the next state."""
        mode = mode.upper()
        if mode not in px4.KNOWN_MODES:
            return False
        refusal = self._mode_refusal(mode, now)
        if refusal:
            self.say(now, "critical", f"Switching to {mode} is currently not available: {refusal}")
        else:
            self._enter_mode(mode, now)
        return True

    def takeoff(self, now: float, altitude_amsl: float, position=None) -> tuple[bool, int]:
        """cmd/takeoff (MAV_CMD_NAV_TAKEOFF). Altitude is AMSL; NaN means MIS_TAKEOFF_ALT.

        `position` is the ENU (east, north) of a finite latitude and longitude, or None when
        they were NaN. As PX4 does, the vehicle climbs and then holds over that position,
        so a client that leaves them at 0 sends it towards 0 N 0 E.
        """
        if math.isnan(altitude_amsl):
            height = self.config.takeoff_alt_m
        else:
            height = altitude_amsl - (self.ground_amsl_m + self.home[2])
        refusal = self._mode_refusal(px4.AUTO_TAKEOFF, now)
        if refusal:
            self.say(now, "critical", f"Takeoff refused: {refusal}")
            return False, px4.MAV_RESULT_TEMPORARILY_REJECTED
        self._takeoff_height = height
        self._takeoff_position = None if position is None else np.array(position[:2], dtype=float)
        self._enter_mode(px4.AUTO_TAKEOFF, now)
        return True, px4.MAV_RESULT_ACCEPTED

    def land(self, now: float) -> tuple[bool, int]:
        """cmd/land (MAV_CMD_NAV_LAND): land where the vehicle is."""
        refusal = self._mode_refusal(px4.AUTO_LAND, now)
        if refusal:
            self.say(now, "critical", f"Land refused: {refusal}")
            return False, px4.MAV_RESULT_TEMPORARILY_REJECTED
        self._enter_mode(px4.AUTO_LAND, now)
        return True, px4.MAV_RESULT_ACCEPTED

    def setpoint(self, now: float, position=None, velocity=None, yaw=None, yaw_rate=None) -> None:
        """An offboard setpoint (ENU). Each one counts towards the offboard stream."""
        self._setpoint_times.append(now)
        self._setpoint = _Setpoint(
            None if position is None else np.asarray(position, dtype=float),
            None if velocity is None else np.asarray(velocity, dtype=float),
            yaw, None if yaw is not None else yaw_rate)

    def push_mission(self, items: list[mi.MissionItem], start_index: int, now: float) -> bool:
        """mission/push: the whole mission, or a partial update from `start_index`.

        As PX4's mission protocol does, an item with a command or frame PX4 does not know is
        refused during the upload, and the mission held before is kept.
        """
        for item in items:
            refusal = mi.upload_refusal(item)
            if refusal:
                self.say(now, "critical", f"IGN MISSION_ITEM: Invalid item ({refusal})")
                return False
        if start_index > len(self.mission):
            self.say(now, "critical", f"Mission upload refused: start index {start_index} past the mission's end")
            return False
        if start_index:
            items = self.mission[:start_index] + [dataclasses.replace(item, seq=start_index + i)
                                                  for i, item in enumerate(items)]
        self.mission = list(items)
        if not start_index:
            self.mission_seq = next((i.seq for i in items if i.raw.is_current), 0)
            self._item_arrived_at = None
            self._mission_climb = None
        self.mission_changed = True
        self.say(now, "info", f"Mission accepted: {len(self.mission)} items")
        if self.mode == px4.AUTO_MISSION and mi.problems(self.mission, self._ceiling()):
            self._enter_mode(px4.AUTO_LOITER, now)
        return True

    def clear_mission(self, now: float) -> bool:
        """mission/clear. PX4 leaves a mission it no longer has for hold."""
        self.mission = []
        self.mission_seq = 0
        self.mission_changed = True
        if self.mode == px4.AUTO_MISSION:
            self._enter_mode(px4.AUTO_LOITER, now)
        return True

    def set_mission_current(self, seq: int, now: float) -> bool:
        """mission/set_current: fly on from item `seq`."""
        if not 0 <= seq < len(self.mission):
            self.say(now, "critical", f"Mission item {seq} does not exist")
            return False
        self.mission_seq = seq
        self._item_arrived_at = None
        self._item_reported = -1
        self.mission_changed = True
        return True

    # ------------------------------------------------------------------ physics
    def step(self, now: float, dt: float) -> None:
        self.time_s = now
        self.gps_error.step(dt)
        gust = self.wind.step(dt)
        self.gimbal.step(dt, self.position, self.yaw)
        if not self.armed:
            self.velocity[:] = 0.0
            self.position[2] = 0.0
            self._landed = True
            self._charge(dt)
            return
        if gust is not None and not self._landed:
            self.velocity += gust          # a change in the wind pushes the airframe until control catches up
        self._check_failsafes(now)
        if not self.armed:
            return
        self._dt = dt
        target_velocity = self._mode_velocity(now)
        self._integrate(target_velocity, dt)
        self._update_landing(now, dt)
        self._drain_battery(dt)

    def _ceiling(self) -> float:
        return self.config.geofence_max_vertical_m or math.inf

    # ------------------------------------------------------------ mode logic
    def _arming_refusal(self, now: float) -> str:
        if now < self.config.estimator_ready_s:
            return "system not ready: estimator initialising"
        if self.arming_fault:
            return self.arming_fault
        if not self._landed:
            return "not landed"
        if self.mode in px4.MODES_PREVENTING_ARMING:
            return f"arming is not possible in {self.mode}"
        if self.mode in px4.PILOT_MODES and not self.config.rc_available:
            return "no manual control input"
        if self.mode == px4.OFFBOARD and not self.offboard_stream_ready(now):
            return "no offboard signal"
        if self.mode == px4.AUTO_MISSION and mi.problems(self.mission, self._ceiling()):
            return "mission not feasible: " + "; ".join(mi.problems(self.mission, self._ceiling())[:3])
        if not self.gps_ok and self.mode not in px4.PILOT_MODES:
            return "no global position"
        if self.battery_fraction <= self.config.battery_critical:
            return "critical battery"
        return ""

    def _mode_refusal(self, mode: str, now: float) -> str:
        """Why PX4 would not switch to `mode` now; empty when it would."""
        if mode in self.refused_modes:
            return "mode unavailable"
        if not self.armed:
            return ""   # PX4 takes any mode change while disarmed, and refuses arming instead
        if mode == px4.AUTO_MISSION:
            found = mi.problems(self.mission, self._ceiling())
            if found:
                return "; ".join(found[:3])
        if mode == px4.OFFBOARD and not self.offboard_stream_ready(now):
            return "no offboard signal"
        if mode in px4.PILOT_MODES and not self.config.rc_available:
            return "no manual control input"
        if mode in px4.POSITION_MODES and not self.gps_ok:
            return "no global position"
        return ""

    def _enter_mode(self, mode: str, now: float) -> None:
        previous = self.mode
        self.mode = mode
        self._hold_point = self._braking_point()
        if mode == px4.AUTO_TAKEOFF and self.armed:
            self._start_takeoff(now)
        elif mode == px4.AUTO_RTL:
            self._rtl_stage = "climb"
        elif mode == px4.AUTO_MISSION:
            self._item_arrived_at = None
            self._mission_speed = None
            self._mission_climb = None
        if mode != previous:
            self.say(now, "info", f"Mode {mode}")

    def _start_takeoff(self, now: float) -> None:
        height = self.config.takeoff_alt_m if self._takeoff_height is None else self._takeoff_height
        current = self.height_above_home
        if height <= current:
            self.say(now, "warning", "Already higher than takeoff altitude")
            height = current
        here = self.estimated_position
        self._takeoff_target = np.array([here[0], here[1], self.home[2] + height])

    def _braking_point(self) -> np.ndarray:
        """Where the vehicle comes to rest if it brakes now: the hold point PX4 takes."""
        speed = float(np.linalg.norm(self.velocity[:2]))
        point = self.estimated_position
        if speed > 0.1:
            point[:2] += self.velocity[:2] / speed * speed ** 2 / (2 * self.config.max_accel_m_s2)
        return point

    def _disarm(self, now: float, why: str) -> None:
        self.armed = False
        self.velocity[:] = 0.0
        self._takeoff_target = None
        self._takeoff_height = None
        self._setpoint = None
        # PX4 reverts to the last mode in which arming was possible.
        if self.mode in px4.MODES_PREVENTING_ARMING or self.mode in (px4.AUTO_TAKEOFF, px4.OFFBOARD):
            self.mode = self._mode_before_arming if self._mode_before_arming not in (
                px4.MODES_PREVENTING_ARMING | {px4.OFFBOARD, px4.AUTO_TAKEOFF}) else px4.AUTO_LOITER
        self.say(now, "info", why)

    def _check_failsafes(self, now: float) -> None:
        cfg = self.config
        if not self._taken_off and now - self._armed_at > cfg.disarm_preflight_s and self._landed:
            self._disarm(now, "Disarmed by auto preflight disarming")
            return
        if self.mode == px4.OFFBOARD and not self.offboard_signal_ok(now):
            self.say(now, "critical", "Failsafe: offboard signal lost")
            fallback = cfg.offboard_loss_mode
            if fallback in px4.PILOT_MODES and not cfg.rc_available:
                fallback = px4.AUTO_RTL
            if fallback in px4.POSITION_MODES and not self.gps_ok:
                fallback = px4.ALTCTL if cfg.rc_available else px4.AUTO_LAND
            self._enter_mode(fallback, now)
        self._check_position_loss(now)
        self._check_datalink(now)
        self._check_geofence(now)
        self._check_battery(now)

    def lose_link(self, lost: bool, now: float) -> None:
        """The telemetry link to MAVROS (and the ground) goes silent, or comes back."""
        if lost and self.link_up:
            self.link_up = False
            self.link_lost_at = now
        elif not lost and not self.link_up:
            self.link_up = True
            self.link_lost_at = None
            if self._datalink_failsafe:
                self.say(now, "info", "Data link regained")
            self._datalink_failsafe = False

    def _check_datalink(self, now: float) -> None:
        cfg = self.config
        if self.link_up or self._datalink_failsafe or self._landed:
            return
        if now - self.link_lost_at < cfg.datalink_loss_timeout_s:
            return
        self._datalink_failsafe = True
        action = {0: None, 1: px4.AUTO_LOITER, 2: px4.AUTO_RTL, 3: px4.AUTO_LAND}[cfg.datalink_loss_action]
        self.say(now, "critical", f"Failsafe: data link lost{', ' + action if action else ''}")
        if action and self.mode != action and self.mode not in px4.PILOT_MODES:
            self._enter_failsafe_mode(action, now)

    def _check_position_loss(self, now: float) -> None:
        if self.gps_ok or self.mode not in px4.POSITION_MODES or self._landed:
            return
        # COM_POSCTL_NAVL 0: altitude control with a pilot, descend without one.
        fallback = px4.ALTCTL if self.config.rc_available else px4.AUTO_LAND
        self.say(now, "critical", f"Failsafe: no global position, {fallback}")
        self._enter_mode(fallback, now)

    def _check_geofence(self, now: float) -> None:
        cfg = self.config
        if self._landed or not cfg.geofence_action:
            return
        here = self.estimated_position
        outside = ""
        if cfg.geofence_max_horizontal_m and np.linalg.norm(here[:2] - self.home[:2]) > cfg.geofence_max_horizontal_m:
            outside = "maximum distance"
        elif cfg.geofence_max_vertical_m and here[2] - self.home[2] > cfg.geofence_max_vertical_m:
            outside = "maximum altitude"
        elif self.fence_polygon is not None and not self.fence_polygon.covers(_point(here)):
            outside = "fence polygon"
        if not outside:
            self._fence_breached = False
            return
        if self._fence_breached:
            return
        self._fence_breached = True
        action = {1: None, 2: px4.AUTO_LOITER, 3: px4.AUTO_RTL, 4: px4.AUTO_LAND, 5: px4.AUTO_LAND}.get(
            cfg.geofence_action)
        self.say(now, "critical", f"Geofence breached: {outside}{', ' + action if action else ''}")
        if action and self.mode != action and not (action == px4.AUTO_LOITER and self.mode == px4.AUTO_RTL):
            self._enter_failsafe_mode(action, now)

    def _enter_failsafe_mode(self, mode: str, now: float) -> None:
        if mode in px4.POSITION_MODES and not self.gps_ok:
            mode = px4.AUTO_LAND
        self._enter_mode(mode, now)

    def _check_battery(self, now: float) -> None:
        cfg = self.config
        level = 0
        if self.battery_fraction <= cfg.battery_emergency:
            level = 3
        elif self.battery_fraction <= cfg.battery_critical:
            level = 2
        elif self.battery_fraction <= cfg.battery_low:
            level = 1
        if level <= self._battery_level:
            return
        self._battery_level = level
        name = {1: "Low", 2: "Critical", 3: "Emergency"}[level]
        self.say(now, "warning" if level == 1 else "critical",
                  f"{name} battery level: {self.battery_fraction * 100:.0f}% remaining")
        if self._landed or level == 1 or cfg.low_battery_action == 0:
            return
        if cfg.low_battery_action == 2 or (cfg.low_battery_action == 3 and level == 3):
            if self.mode != px4.AUTO_LAND:
                self._enter_mode(px4.AUTO_LAND, now)
        elif cfg.low_battery_action == 3 and level == 2 and self.mode not in (px4.AUTO_RTL, px4.AUTO_LAND):
            self._enter_mode(px4.AUTO_RTL, now)

    def _mode_velocity(self, now: float) -> np.ndarray:
        cfg = self.config
        mode = self.mode
        if mode == px4.OFFBOARD and self._setpoint is not None:
            sp = self._setpoint
            if sp.yaw is not None:
                self.yaw = sp.yaw
            elif sp.yaw_rate is not None:
                self.yaw = (self.yaw + sp.yaw_rate * self._dt + math.pi) % (2 * math.pi) - math.pi
            if sp.position is not None and sp.velocity is not None:
                # Position with velocity feed-forward, as PX4 tracks a moving setpoint.
                error = sp.position - self.estimated_position
                return self._limit(sp.velocity + cfg.position_gain * error, cfg.max_speed_m_s)
            if sp.position is not None:
                return self._towards(sp.position, cfg.max_speed_m_s)
            if sp.velocity is not None:
                return self._limit(sp.velocity, cfg.max_speed_m_s)
        if mode == px4.AUTO_TAKEOFF and self._takeoff_target is not None:
            if self.position[2] >= self._takeoff_target[2] - 0.1:
                self._takeoff_target = None
                self.say(now, "info", "Takeoff complete")
                self._enter_mode(px4.AUTO_LOITER, now)
                if self._takeoff_position is not None:     # then hold over the take-off position given
                    self._hold_point[:2] = self._takeoff_position
                return self._towards(self._hold_point, cfg.max_speed_m_s)
            return self._towards(self._takeoff_target, cfg.max_speed_m_s,
                                 max_climb=cfg.takeoff_speed_m_s)
        if mode == px4.AUTO_LAND:
            return self._descend()
        if mode == px4.AUTO_RTL:
            return self._rtl_velocity(now)
        if mode == px4.AUTO_MISSION:
            return self._mission_velocity(now)
        if mode in (px4.ALTCTL, px4.STABILIZED, px4.MANUAL, px4.ACRO, px4.RATTITUDE):
            # Sticks centred and no position control: hold height, brake, and drift with the wind.
            velocity = self.wind.velocity.copy() * 0.5
            velocity[2] = 0.0
            return velocity
        # AUTO.LOITER, pilot modes with the sticks centred, and anything else: hold.
        if self._landed and not self._taken_off:
            return np.zeros(3)
        return self._towards(self._hold_point, cfg.max_speed_m_s)

    def _mission_velocity(self, now: float) -> np.ndarray:
        """Fly the current mission item, as PX4's mission mode does."""
        cfg = self.config
        here = self.estimated_position
        while self.mission_seq < len(self.mission):
            item = self.mission[self.mission_seq]
            if item.is_nav:
                break
            self._do_item(item, now)        # DO commands take effect and the mission moves on
            self._next_item(now)
        else:
            return self._towards(self._hold_point, cfg.max_speed_m_s)   # done: hold at the last position
        item = self.mission[self.mission_seq]
        if item.command == mi.NAV_RETURN_TO_LAUNCH:
            self._reached(item, now)
            self._enter_mode(px4.AUTO_RTL, now)
            return self._rtl_velocity(now)
        if item.command == mi.NAV_LAND:
            if item.east is not None and np.linalg.norm(here[:2] - (item.east, item.north)) > cfg.acceptance_radius_m:
                return self._towards((item.east, item.north, here[2]), self._cruise())
            self._hold_point = np.array([here[0], here[1], 0.0]) if item.east is None else \
                np.array([item.east, item.north, 0.0])
            return self._descend()
        target_height = item.height if item.height is not None else here[2]
        if self._mission_climb is None and (item.command == mi.NAV_TAKEOFF or not self._taken_off):
            # From the ground PX4 climbs vertically first, to the take-off item's or the first item's height.
            self._mission_climb = np.array([here[0], here[1], max(target_height, cfg.takeoff_alt_m)])
        if self._mission_climb is not None:
            if here[2] < self._mission_climb[2] - 0.3:
                return self._towards(self._mission_climb, cfg.max_speed_m_s, max_climb=cfg.takeoff_speed_m_s)
            self._mission_climb = None
            if item.command == mi.NAV_TAKEOFF:
                self._reached(item, now)
                self._next_item(now)
                return np.zeros(3)
        target = np.array([item.east, item.north, target_height])
        acceptance = item.param2 if item.command == mi.NAV_WAYPOINT and item.param2 > 0 else cfg.acceptance_radius_m
        if self._item_arrived_at is None:
            if np.linalg.norm(target - here) > max(acceptance, 0.5):
                return self._towards(target, self._cruise())
            self._item_arrived_at = now
            self._hold_point = target
        # As PX4's MissionBlock: an item is reached once its hold or loiter time is over (never, for
        # an unlimited loiter); the mission then moves on only if the item continues automatically.
        hold_s = {mi.NAV_WAYPOINT: item.param1, mi.NAV_LOITER_TIME: item.param1,
                  mi.NAV_LOITER_UNLIM: math.inf}.get(item.command, 0.0)
        if now - self._item_arrived_at >= hold_s:
            if self._item_reported != item.seq:
                self._reached(item, now)
            if item.autocontinue:
                self._next_item(now)
        return self._towards(self._hold_point, cfg.max_speed_m_s)

    def _cruise(self) -> float:
        return self._mission_speed or self.config.rtl_speed_m_s

    def _do_item(self, item: mi.MissionItem, now: float) -> None:
        if item.command == mi.DO_CHANGE_SPEED and item.param2 > 0:
            self._mission_speed = min(float(item.param2), self.config.max_speed_m_s)
        elif item.command == mi.DO_SET_ROI_LOCATION and item.east is not None:
            height = item.height if item.height is not None else 0.0
            self.gimbal.command_point((item.east, item.north, height))
        elif item.command == mi.DO_SET_ROI_NONE:
            self.gimbal.command_angles(1, 0.0, 0.0, 0.0)
        elif item.command == mi.DO_MOUNT_CONTROL:
            self.gimbal.command_angles(2, item.param1, item.param2, item.param3)
        self._reached(item, now)

    def _reached(self, item: mi.MissionItem, now: float) -> None:
        self._item_reported = item.seq
        self.mission_reached.append(item.seq)
        self.say(now, "info", f"Mission item {item.seq} reached")

    def _next_item(self, now: float) -> None:
        self._item_arrived_at = None
        self._item_reported = -1
        self.mission_seq += 1
        self.mission_changed = True
        if self.mission_seq >= len(self.mission):
            self._hold_point = self.estimated_position
            self.say(now, "info", "Mission finished, loitering")

    def _rtl_velocity(self, now: float) -> np.ndarray:
        cfg = self.config
        home = self.home
        here = self.estimated_position
        above_home = here[2] - home[2]
        if self._rtl_stage == "climb":
            target_z = home[2] + max(cfg.rtl_return_alt_m, above_home)
            if above_home >= cfg.rtl_return_alt_m - 0.5 or here[2] >= target_z - 0.5:
                self._rtl_stage = "return"
                self._rtl_altitude = max(here[2], home[2] + cfg.rtl_return_alt_m - 0.5)
            else:
                return self._towards(np.array([self._hold_point[0], self._hold_point[1], target_z]),
                                     cfg.rtl_speed_m_s)
        if self._rtl_stage == "return":
            target = np.array([home[0], home[1], self._rtl_altitude])
            if np.linalg.norm(here[:2] - home[:2]) <= cfg.acceptance_radius_m:
                self._rtl_stage = "descend"
            else:
                return self._towards(target, cfg.rtl_speed_m_s)
        if self._rtl_stage == "descend":
            target = np.array([home[0], home[1], home[2] + cfg.rtl_descend_alt_m])
            if here[2] <= target[2] + 0.5:
                self._rtl_stage = "land"
            else:
                return self._towards(target, cfg.rtl_speed_m_s)
        return self._descend(over=home)

    def _descend(self, over: np.ndarray | None = None) -> np.ndarray:
        cfg = self.config
        speed = cfg.land_speed_m_s if self.position[2] < cfg.land_slowdown_alt_m else cfg.max_descent_m_s
        point = self._hold_point if over is None else over
        horizontal = self._towards(np.array([point[0], point[1], self.position[2]]), cfg.max_speed_m_s)
        if self.mode == px4.AUTO_LAND and not self.gps_ok:
            horizontal[:2] = 0.0        # descending blind: no position to hold
        horizontal[2] = -speed
        return horizontal

    def _towards(self, target, max_speed, max_climb=None) -> np.ndarray:
        """Velocity that reaches `target` without overshoot: P term, capped by braking distance."""
        cfg = self.config
        error = np.asarray(target, dtype=float) - self.estimated_position
        velocity = np.zeros(3)
        horizontal = float(np.linalg.norm(error[:2]))
        if horizontal > 1e-6:
            speed = min(max_speed, cfg.position_gain * horizontal,
                        math.sqrt(2 * cfg.max_accel_m_s2 * horizontal))
            velocity[:2] = error[:2] / horizontal * speed
        vertical = float(error[2])
        climb = cfg.max_climb_m_s if max_climb is None else max_climb
        velocity[2] = float(np.clip(cfg.position_gain * vertical, -cfg.max_descent_m_s, climb))
        return velocity

    def _limit(self, velocity, max_speed) -> np.ndarray:
        velocity = np.array(velocity, dtype=float)
        horizontal = float(np.linalg.norm(velocity[:2]))
        if horizontal > max_speed:
            velocity[:2] *= max_speed / horizontal
        if velocity.shape[0] > 2:
            velocity[2] = float(np.clip(velocity[2], -self.config.max_descent_m_s, self.config.max_climb_m_s))
        return velocity

    def _integrate(self, target_velocity: np.ndarray, dt: float) -> None:
        target_velocity = self._within_airspeed(target_velocity)
        # Horizontal and vertical acceleration are limited separately, as PX4 does.
        change = target_velocity - self.velocity
        limit = self.config.max_accel_m_s2 * dt
        horizontal = float(np.linalg.norm(change[:2]))
        if horizontal > limit:
            change[:2] *= limit / horizontal
        change[2] = float(np.clip(change[2], -limit, limit))
        self.velocity += change
        self.position += self.velocity * dt
        if self.position[2] <= 0.0:
            self.position[2] = 0.0
            self.velocity[2] = max(self.velocity[2], 0.0)
            if self._landed or not self._taken_off:
                self.velocity[:2] = 0.0
        if self.position[2] > 0.5:
            self._taken_off = True
        speed = float(np.linalg.norm(self.velocity[:2]))
        if speed > 0.5 and (self.mode != px4.OFFBOARD or self._setpoint is None
                            or (self._setpoint.yaw is None and self._setpoint.yaw_rate is None)):
            self.yaw = math.atan2(self.velocity[1], self.velocity[0])

    def _within_airspeed(self, ground_velocity: np.ndarray) -> np.ndarray:
        """Scale a wanted ground velocity down until the airspeed it needs is within the limit."""
        wind = self.wind.velocity[:2]
        if not wind.any():
            return ground_velocity
        limit = self.config.max_speed_m_s
        wanted = ground_velocity[:2]
        if np.linalg.norm(wanted - wind) <= limit:
            return ground_velocity
        # Largest k in [0, 1] with |k * wanted - wind| <= limit: a quadratic in k.
        a = float(wanted @ wanted)
        b = -2.0 * float(wanted @ wind)
        c = float(wind @ wind) - limit * limit
        if a < 1e-12:
            return ground_velocity
        disc = b * b - 4 * a * c
        k = max(0.0, (-b + math.sqrt(disc)) / (2 * a)) if disc >= 0 else 0.0
        scaled = ground_velocity.copy()
        scaled[:2] = wanted * min(1.0, k)
        return scaled

    def _update_landing(self, now: float, dt: float) -> None:
        on_ground = self.position[2] <= 0.05 and abs(self.velocity[2]) < 0.25
        if self._taken_off and on_ground:
            self._ground_contact_s += dt
            if not self._landed and self._ground_contact_s >= self.config.land_detect_s:
                self._landed = True
                self._landed_at = now
                self.say(now, "info", "Landing detected")
                if self.mode == px4.AUTO_MISSION and self.mission_seq < len(self.mission) and \
                        self.mission[self.mission_seq].command == mi.NAV_LAND:
                    self._reached(self.mission[self.mission_seq], now)      # PX4: a land item is reached on landing
            if self._landed and now - self._landed_at >= self.config.disarm_land_s:
                self._disarm(now, "Disarmed by landing")
        else:
            self._ground_contact_s = 0.0
            if self.position[2] > 0.05:
                self._landed = False

    @property
    def power_w(self) -> float:
        """Electrical power drawn now: hover, plus airspeed and climb."""
        cfg = self.config
        if not self.armed:
            return 0.0
        if self._landed:
            return cfg.idle_drain_fraction * cfg.hover_power_w
        airspeed = float(np.linalg.norm(self.velocity[:2] - self.wind.velocity[:2]))
        return (cfg.hover_power_w * (1.0 + cfg.speed_drain_factor * (airspeed / cfg.max_speed_m_s) ** 2)
                + cfg.climb_power_w_per_m_s * max(0.0, float(self.velocity[2])))

    def _charge(self, dt: float) -> None:
        """Disarmed on the ground: in its dock, whose charger tops the battery up."""
        if self.config.dock_charge_per_s <= 0.0 or self.battery_fraction >= 1.0:
            return
        self.battery_fraction = min(1.0, self.battery_fraction + self.config.dock_charge_per_s * dt)
        if self.battery_fraction > self.config.battery_low:
            self._battery_level = 0      # warned again when it next runs low

    def _drain_battery(self, dt: float) -> None:
        energy_wh = self.power_w * dt / 3600.0 * self.drain_multiplier
        self.battery_fraction = max(0.0, self.battery_fraction - energy_wh / self.config.battery_capacity_wh)

    def say(self, now: float, severity: str, text: str) -> None:
        """Record what PX4 would report in a STATUSTEXT."""
        self.events.append(Event(now, severity, text))
