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

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from dfr_common import px4


def _limit_param(default, doc, lo, hi):
    """A config field that the simulator node exposes as a parameter with this range."""
    return field(default=default, metadata={"doc": doc, "min": lo, "max": hi})


@dataclass
class MultirotorConfig:
    """Airframe limits and the PX4 parameters the model honours (PX4 defaults unless noted)."""

    max_speed_m_s: float = _limit_param(12.0, "horizontal speed limit (MPC_XY_VEL_MAX)", 0.5, 40.0)
    max_climb_m_s: float = _limit_param(3.0, "climb rate limit (MPC_Z_VEL_MAX_UP)", 0.5, 10.0)
    max_descent_m_s: float = _limit_param(1.5, "descent rate limit (MPC_Z_VEL_MAX_DN)", 0.3, 10.0)
    max_accel_m_s2: float = _limit_param(3.0, "acceleration limit (MPC_ACC_HOR)", 0.5, 15.0)
    takeoff_speed_m_s: float = _limit_param(1.5, "take-off climb rate (MPC_TKO_SPEED)", 0.3, 5.0)
    land_speed_m_s: float = _limit_param(0.7, "final landing descent rate (MPC_LAND_SPEED)", 0.2, 3.0)
    land_slowdown_alt_m: float = _limit_param(10.0, "height below which landing slows (MPC_LAND_ALT1)",
                                              1.0, 50.0)
    takeoff_alt_m: float = _limit_param(2.5, "take-off height for a NaN altitude (MIS_TAKEOFF_ALT)",
                                        1.0, 120.0)
    rtl_return_alt_m: float = _limit_param(60.0, "return height above home (RTL_RETURN_ALT)", 5.0, 120.0)
    rtl_descend_alt_m: float = _limit_param(30.0, "height to descend to before landing on return "
                                                  "(RTL_DESCEND_ALT)", 2.0, 120.0)
    rtl_speed_m_s: float = _limit_param(5.0, "horizontal speed of automatic legs (MPC_XY_CRUISE)",
                                        0.5, 40.0)
    acceptance_radius_m: float = _limit_param(1.0, "distance at which an automatic leg counts as reached",
                                              0.1, 20.0)
    disarm_preflight_s: float = _limit_param(10.0, "disarm if armed and not taken off for this long "
                                                   "(COM_DISARM_PRFLT)", 1.0, 60.0)
    disarm_land_s: float = _limit_param(2.0, "disarm this long after landing (COM_DISARM_LAND)", 0.1, 20.0)
    land_detect_s: float = _limit_param(1.0, "ground contact time that counts as landed (LNDMC_TRIG_TIME)",
                                        0.1, 5.0)
    offboard_loss_timeout_s: float = _limit_param(1.0, "setpoint silence that ends offboard (COM_OF_LOSS_T)",
                                                  0.1, 10.0)
    offboard_min_rate_hz: float = _limit_param(2.0, "setpoint rate needed for offboard", 0.5, 50.0)
    offboard_loss_mode: str = field(default=px4.POSCTL, metadata={
        "doc": "mode taken when offboard setpoints stop (COM_OBL_RC_ACT); a pilot mode without RC "
               "falls back to AUTO.RTL"})
    rc_available: bool = field(default=True, metadata={
        "doc": "the pilot's remote control is connected, so pilot modes can run"})
    hover_endurance_s: float = _limit_param(1800.0, "hover time from a full battery to empty", 60.0, 20000.0)
    speed_drain_factor: float = _limit_param(0.3, "extra drain at full speed, as a fraction of hover drain",
                                             0.0, 5.0)
    idle_drain_fraction: float = _limit_param(0.05, "drain when armed on the ground, as a fraction of hover",
                                              0.0, 1.0)
    battery_low: float = _limit_param(0.15, "low battery level (BAT_LOW_THR)", 0.05, 0.5)
    battery_critical: float = _limit_param(0.07, "critical battery level (BAT_CRIT_THR)", 0.03, 0.3)
    battery_emergency: float = _limit_param(0.05, "emergency battery level (BAT_EMERGEN_THR)", 0.01, 0.2)
    low_battery_action: int = _limit_param(3, "COM_LOW_BAT_ACT: 0 warn, 2 land, 3 return at critical "
                                              "and land at emergency", 0, 3)
    position_gain: float = _limit_param(1.0, "proportional gain of the position controller, 1/s", 0.1, 10.0)


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


class Multirotor:
    """One vehicle. Commands mirror the MAVROS services; `step` advances the physics."""

    def __init__(self, vehicle_id: str, config: MultirotorConfig | None = None,
                 ground_amsl_m: float = 0.0, battery_fraction: float = 1.0):
        self.vehicle_id = vehicle_id
        self.config = config or MultirotorConfig()
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
        if self.mode == px4.AUTO_LAND or (self.mode == px4.AUTO_RTL and self._rtl_stage == "land"):
            return px4.LANDED_STATE_LANDING
        return px4.LANDED_STATE_IN_AIR

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
            self.home = self.position.copy()
            self._hold_point = self.position.copy()
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

    def setpoint(self, now: float, position=None, velocity=None, yaw=None) -> None:
        """An offboard setpoint (ENU). Each one counts towards the offboard stream."""
        self._setpoint_times.append(now)
        self._setpoint = _Setpoint(
            None if position is None else np.asarray(position, dtype=float),
            None if velocity is None else np.asarray(velocity, dtype=float),
            yaw)

    # ------------------------------------------------------------------ physics
    def step(self, now: float, dt: float) -> None:
        self.time_s = now
        if not self.armed:
            self.velocity[:] = 0.0
            self.position[2] = 0.0
            self._landed = True
            return
        self._check_failsafes(now)
        if not self.armed:
            return
        target_velocity = self._mode_velocity(now)
        self._integrate(target_velocity, dt)
        self._update_landing(now, dt)
        self._drain_battery(dt)

    # ------------------------------------------------------------ mode logic
    def _arming_refusal(self, now: float) -> str:
        if not self._landed:
            return "not landed"
        if self.mode in px4.MODES_PREVENTING_ARMING:
            return f"arming is not possible in {self.mode}"
        if self.mode in px4.PILOT_MODES and not self.config.rc_available:
            return "no manual control input"
        if self.mode == px4.OFFBOARD and not self.offboard_stream_ready(now):
            return "no offboard signal"
        if not self.gps_ok and self.mode not in px4.PILOT_MODES:
            return "no global position"
        if self.battery_fraction <= self.config.battery_critical:
            return "critical battery"
        return ""

    def _mode_refusal(self, mode: str, now: float) -> str:
        """Why PX4 would not switch to `mode` now; empty when it would."""
        if not self.armed:
            return ""   # PX4 takes any mode change while disarmed
        if mode == px4.OFFBOARD and not self.offboard_stream_ready(now):
            return "no offboard signal"
        if mode in px4.PILOT_MODES and not self.config.rc_available:
            return "no manual control input"
        if mode in (px4.AUTO_LOITER, px4.AUTO_RTL, px4.AUTO_MISSION, px4.AUTO_TAKEOFF) and not self.gps_ok:
            return "no global position"
        if mode == px4.AUTO_MISSION:
            return "no mission"
        return ""

    def _enter_mode(self, mode: str, now: float) -> None:
        previous = self.mode
        self.mode = mode
        self._hold_point = self._braking_point()
        if mode == px4.AUTO_TAKEOFF and self.armed:
            self._start_takeoff(now)
        elif mode == px4.AUTO_RTL:
            self._rtl_stage = "climb"
        if mode != previous:
            self.say(now, "info", f"Mode {mode}")

    def _start_takeoff(self, now: float) -> None:
        height = self.config.takeoff_alt_m if self._takeoff_height is None else self._takeoff_height
        current = self.height_above_home
        if height <= current:
            self.say(now, "warning", "Already higher than takeoff altitude")
            height = current
        self._takeoff_target = np.array([self.position[0], self.position[1], self.home[2] + height])

    def _braking_point(self) -> np.ndarray:
        """Where the vehicle comes to rest if it brakes now: the hold point PX4 takes."""
        speed = float(np.linalg.norm(self.velocity[:2]))
        point = self.position.copy()
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
            self._enter_mode(fallback, now)
        self._check_battery(now)

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
            if sp.position is not None and sp.velocity is not None:
                # Position with velocity feed-forward, as PX4 tracks a moving setpoint.
                error = sp.position - self.position
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
        # AUTO.LOITER, pilot modes with the sticks centred, and anything else: hold.
        if self._landed and not self._taken_off:
            return np.zeros(3)
        return self._towards(self._hold_point, cfg.max_speed_m_s)

    def _rtl_velocity(self, now: float) -> np.ndarray:
        cfg = self.config
        home = self.home
        above_home = self.position[2] - home[2]
        if self._rtl_stage == "climb":
            target_z = home[2] + max(cfg.rtl_return_alt_m, above_home)
            if above_home >= cfg.rtl_return_alt_m - 0.5 or self.position[2] >= target_z - 0.5:
                self._rtl_stage = "return"
                self._rtl_altitude = max(self.position[2], home[2] + cfg.rtl_return_alt_m - 0.5)
            else:
                return self._towards(np.array([self._hold_point[0], self._hold_point[1], target_z]),
                                     cfg.rtl_speed_m_s)
        if self._rtl_stage == "return":
            target = np.array([home[0], home[1], self._rtl_altitude])
            if np.linalg.norm(self.position[:2] - home[:2]) <= cfg.acceptance_radius_m:
                self._rtl_stage = "descend"
            else:
                return self._towards(target, cfg.rtl_speed_m_s)
        if self._rtl_stage == "descend":
            target = np.array([home[0], home[1], home[2] + cfg.rtl_descend_alt_m])
            if self.position[2] <= target[2] + 0.5:
                self._rtl_stage = "land"
            else:
                return self._towards(target, cfg.rtl_speed_m_s)
        return self._descend(over=home)

    def _descend(self, over: np.ndarray | None = None) -> np.ndarray:
        cfg = self.config
        speed = cfg.land_speed_m_s if self.position[2] < cfg.land_slowdown_alt_m else cfg.max_descent_m_s
        point = self._hold_point if over is None else over
        horizontal = self._towards(np.array([point[0], point[1], self.position[2]]), cfg.max_speed_m_s)
        horizontal[2] = -speed
        return horizontal

    def _towards(self, target, max_speed, max_climb=None) -> np.ndarray:
        """Velocity that reaches `target` without overshoot: P term, capped by braking distance."""
        cfg = self.config
        error = np.asarray(target, dtype=float) - self.position
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
        if speed > 0.5 and (self.mode != px4.OFFBOARD or self._setpoint is None or self._setpoint.yaw is None):
            self.yaw = math.atan2(self.velocity[1], self.velocity[0])

    def _update_landing(self, now: float, dt: float) -> None:
        on_ground = self.position[2] <= 0.05 and abs(self.velocity[2]) < 0.25
        if self._taken_off and on_ground:
            self._ground_contact_s += dt
            if not self._landed and self._ground_contact_s >= self.config.land_detect_s:
                self._landed = True
                self._landed_at = now
                self.say(now, "info", "Landing detected")
            if self._landed and now - self._landed_at >= self.config.disarm_land_s:
                self._disarm(now, "Disarmed by landing")
        else:
            self._ground_contact_s = 0.0
            if self.position[2] > 0.05:
                self._landed = False

    def _drain_battery(self, dt: float) -> None:
        cfg = self.config
        if self._landed:
            rate = cfg.idle_drain_fraction / cfg.hover_endurance_s
        else:
            speed = float(np.linalg.norm(self.velocity[:2]))
            rate = (1.0 + cfg.speed_drain_factor * (speed / cfg.max_speed_m_s) ** 2) / cfg.hover_endurance_s
        self.battery_fraction = max(0.0, self.battery_fraction - rate * dt)

    def say(self, now: float, severity: str, text: str) -> None:
        """Record what PX4 would report in a STATUSTEXT."""
        self.events.append(Event(now, severity, text))
