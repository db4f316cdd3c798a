"""Camera gimbal angles in MAVLink's MOUNT convention, shared by the bridge and the simulator.

Degrees: pitch 0 is level and -90 straight down; yaw is relative to the vehicle's nose,
positive to the right. Positions are ENU metres in one local frame.
"""
from __future__ import annotations

import math

import numpy as np


def mount_angles_to(position_enu, heading_enu_rad: float, target_enu) -> tuple[float, float]:
    """(pitch, yaw) that aim a camera at `position_enu` on `target_enu` (two elements: on the ground).

    Straight below, the yaw is 0.
    """
    target = np.asarray(target_enu, dtype=float).reshape(-1)
    if target.size == 2:
        target = np.append(target, 0.0)
    offset = target - np.asarray(position_enu, dtype=float).reshape(-1)[:3]
    horizontal = math.hypot(offset[0], offset[1])
    pitch = math.degrees(math.atan2(offset[2], horizontal))
    if horizontal < 1e-9:
        return pitch, 0.0
    bearing_enu = math.atan2(offset[1], offset[0])
    yaw = (math.degrees(heading_enu_rad - bearing_enu) + 180.0) % 360.0 - 180.0   # ENU runs left, MOUNT right
    return pitch, (180.0 if yaw == -180.0 else yaw)
