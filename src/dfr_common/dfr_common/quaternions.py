"""Quaternions and ZYX Euler angles, as MAVROS carries attitudes (x, y, z, w; radians)."""
from __future__ import annotations

import math


def quaternion_from_euler(roll: float, pitch: float, yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of ZYX Euler angles in radians."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return (sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy)


def yaw_of(qx: float, qy: float, qz: float, qw: float) -> float:
    """Yaw of a quaternion (rotation about z after roll and pitch); in ENU, from east, counter-clockwise."""
    return math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))


def euler_of(qx: float, qy: float, qz: float, qw: float) -> tuple[float, float, float]:
    """(roll, pitch, yaw) of a quaternion, ZYX."""
    roll = math.atan2(2.0 * (qw * qx + qy * qz), 1.0 - 2.0 * (qx * qx + qy * qy))
    pitch = math.asin(max(-1.0, min(1.0, 2.0 * (qw * qy - qz * qx))))
    return roll, pitch, yaw_of(qx, qy, qz, qw)
