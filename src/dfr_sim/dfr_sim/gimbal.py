"""A camera gimbal as PX4 drives it from MAV_CMD_DO_MOUNT_CONTROL (MAVROS mount_control).

Angles follow MAVLink's MOUNT convention, in degrees: pitch 0 is level and -90 points
straight down; yaw is relative to the vehicle's nose, positive to the right; roll is
positive right side down. The gimbal stabilises against the airframe and slews at a
limited rate, so a command is not the attitude of the next frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dfr_common.mount import mount_angles_to

# MAV_MOUNT_MODE, as carried in mavros_msgs/MountControl.mode.
MOUNT_MODE_RETRACT = 0
MOUNT_MODE_NEUTRAL = 1
MOUNT_MODE_MAVLINK_TARGETING = 2
MOUNT_MODE_RC_TARGETING = 3
MOUNT_MODE_GPS_POINT = 4


@dataclass
class GimbalLimits:
    slew_deg_s: float = 90.0
    pitch_min_deg: float = -90.0
    pitch_max_deg: float = 30.0
    yaw_max_deg: float = 180.0


# (pitch, yaw) in MOUNT degrees that aim a camera from a position on a target: one definition, shared
# with the bridge's camera policy.
angles_to_point = mount_angles_to


def _clamp(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))


class Gimbal:
    def __init__(self, limits: GimbalLimits | None = None):
        self.limits = limits or GimbalLimits()
        self.mode = MOUNT_MODE_NEUTRAL
        self.pitch = 0.0
        self.roll = 0.0
        self.yaw = 0.0
        self._target = (0.0, 0.0, 0.0)
        self._point: np.ndarray | None = None     # ENU point of interest in GPS_POINT mode

    def command_angles(self, mode: int, pitch: float, roll: float, yaw: float) -> None:
        self.mode = mode
        self._point = None
        if mode in (MOUNT_MODE_RETRACT, MOUNT_MODE_NEUTRAL):
            self._target = (0.0, 0.0, 0.0)
        else:
            self._target = self._clamped(pitch, roll, yaw)

    def command_point(self, point_enu) -> None:
        self.mode = MOUNT_MODE_GPS_POINT
        self._point = np.asarray(point_enu, dtype=float)

    def step(self, dt: float, position_enu, heading_enu_rad: float) -> None:
        if self._point is not None:
            pitch, yaw = angles_to_point(position_enu, heading_enu_rad, self._point)
            self._target = self._clamped(pitch, 0.0, yaw)
        step = self.limits.slew_deg_s * dt
        target_pitch, target_roll, target_yaw = self._target
        if (target_pitch, target_roll, target_yaw) == (self.pitch, self.roll, self.yaw):
            return
        self.pitch += _clamp(target_pitch - self.pitch, step)
        self.roll += _clamp(target_roll - self.roll, step)
        yaw_error = (target_yaw - self.yaw + 180.0) % 360.0 - 180.0
        self.yaw = (self.yaw + _clamp(yaw_error, step) + 180.0) % 360.0 - 180.0

    def _clamped(self, pitch, roll, yaw):
        lim = self.limits
        yaw = (yaw + 180.0) % 360.0 - 180.0
        return (float(np.clip(pitch, lim.pitch_min_deg, lim.pitch_max_deg)), float(np.clip(roll, -45.0, 45.0)),
                float(np.clip(yaw, -lim.yaw_max_deg, lim.yaw_max_deg)))
