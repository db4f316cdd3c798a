"""MAVROS's mount_control/orientation: the gimbal's roll, pitch and yaw (MOUNT degrees) as a quaternion.

The simulator sends it as MAVROS does, the camera stamps it with each frame, and perception reads
either: one conversion each way serves them all.
"""
from __future__ import annotations

import math

from geometry_msgs.msg import Quaternion

from dfr_common.quaternions import euler_of, quaternion_from_euler


def mount_quaternion(roll_deg: float, pitch_deg: float, yaw_deg: float) -> Quaternion:
    x, y, z, w = quaternion_from_euler(math.radians(roll_deg), math.radians(pitch_deg), math.radians(yaw_deg))
    return Quaternion(x=x, y=y, z=z, w=w)


def mount_degrees(q: Quaternion) -> tuple[float, float, float]:
    """(roll, pitch, yaw) in degrees."""
    roll, pitch, yaw = euler_of(q.x, q.y, q.z, q.w)
    return math.degrees(roll), math.degrees(pitch), math.degrees(yaw)
