"""MAVROS messages to the vehicle model's plain values, with PX4's rules on what it accepts.

MAVROS hands PX4 ENU on the ROS side and converts to NED itself, so the ROS-side
frames here are ENU (local) and FLU (body). Each function returns None, or raises
SetpointError, where PX4 would drop the message.
"""
from __future__ import annotations

import math

import numpy as np

from dfr_common import px4
from dfr_sim.mission_items import RawItem

# mavros_msgs/PositionTarget coordinate frames (MAV_FRAME) PX4 takes for local setpoints.
FRAME_LOCAL_NED = 1
FRAME_LOCAL_OFFSET_NED = 7
FRAME_BODY_NED = 8
FRAME_BODY_OFFSET_NED = 9
LOCAL_FRAMES = (FRAME_LOCAL_NED, FRAME_LOCAL_OFFSET_NED, FRAME_BODY_NED, FRAME_BODY_OFFSET_NED)
IGNORE_POSITION = px4.IGNORE_LATITUDE | px4.IGNORE_LONGITUDE | px4.IGNORE_ALTITUDE   # PX, PY, PZ bits
IGNORE_VELOCITY = px4.IGNORE_VX | px4.IGNORE_VY | px4.IGNORE_VZ
IGNORE_YAW_RATE = 2048


class SetpointError(ValueError):
    """A setpoint PX4 would reject; the message says why."""


def _finite(*values) -> bool:
    return all(math.isfinite(v) for v in values)


def _rotate(vector, yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    x, y, z = vector
    return np.array([c * x - s * y, s * x + c * y, z])


def local_setpoint(frame: int, type_mask: int, position, velocity, yaw: float, yaw_rate: float,
                   here: np.ndarray, heading: float):
    """setpoint_raw/local (PositionTarget) → (position ENU, velocity ENU, yaw, yaw_rate), each or None."""
    if frame not in LOCAL_FRAMES:
        raise SetpointError(f"SET_POSITION_TARGET_LOCAL_NED invalid coordinate frame {frame}")
    body = frame in (FRAME_BODY_NED, FRAME_BODY_OFFSET_NED)
    offset = frame in (FRAME_LOCAL_OFFSET_NED, FRAME_BODY_OFFSET_NED)
    out_position = out_velocity = out_yaw = out_rate = None
    if not type_mask & IGNORE_POSITION:
        if not _finite(*position):
            raise SetpointError("setpoint with a non-finite position ignored")
        p = _rotate(position, heading) if body else np.asarray(position, dtype=float)
        out_position = p + here if offset else p
    if not type_mask & IGNORE_VELOCITY:
        if not _finite(*velocity):
            raise SetpointError("setpoint with a non-finite velocity ignored")
        out_velocity = _rotate(velocity, heading) if body else np.asarray(velocity, dtype=float)
    if not type_mask & px4.IGNORE_YAW:
        if not _finite(yaw):
            raise SetpointError("setpoint with a non-finite yaw ignored")
        out_yaw = yaw + heading if body else yaw
    elif not type_mask & IGNORE_YAW_RATE:
        if not _finite(yaw_rate):
            raise SetpointError("setpoint with a non-finite yaw rate ignored")
        out_rate = yaw_rate
    return out_position, out_velocity, out_yaw, out_rate


def raw_item(msg) -> RawItem:
    """mavros_msgs/Waypoint → RawItem."""
    return RawItem(int(msg.frame), int(msg.command), bool(msg.is_current), bool(msg.autocontinue),
                   float(msg.param1), float(msg.param2), float(msg.param3), float(msg.param4),
                   float(msg.x_lat), float(msg.y_long), float(msg.z_alt))
