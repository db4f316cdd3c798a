"""PX4 mission items: what a pushed mission means, and which missions PX4 refuses to fly.

MAVROS carries mission items as mavros_msgs/Waypoint (MAVLink MISSION_ITEM_INT). The
simulator node turns each into a RawItem; here they become items in the vehicle's
local frame, and PX4's feasibility rules decide whether AUTO.MISSION may start.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from dfr_common import px4

# The MAV_CMD values (mavros_msgs/CommandCode) the model flies, by their short names here.
NAV_WAYPOINT = px4.MAV_CMD_NAV_WAYPOINT
NAV_LOITER_UNLIM = px4.MAV_CMD_NAV_LOITER_UNLIM
NAV_LOITER_TIME = px4.MAV_CMD_NAV_LOITER_TIME
NAV_RETURN_TO_LAUNCH = px4.MAV_CMD_NAV_RETURN_TO_LAUNCH
NAV_LAND = px4.MAV_CMD_NAV_LAND
NAV_TAKEOFF = px4.MAV_CMD_NAV_TAKEOFF
DO_CHANGE_SPEED = px4.MAV_CMD_DO_CHANGE_SPEED
DO_SET_ROI_LOCATION = px4.MAV_CMD_DO_SET_ROI_LOCATION
DO_MOUNT_CONTROL = px4.MAV_CMD_DO_MOUNT_CONTROL
DO_SET_ROI_NONE = px4.MAV_CMD_DO_SET_ROI_NONE

NAV_COMMANDS = frozenset({NAV_WAYPOINT, NAV_LOITER_UNLIM, NAV_LOITER_TIME, NAV_RETURN_TO_LAUNCH, NAV_LAND,
                          NAV_TAKEOFF})
DO_COMMANDS = frozenset({DO_CHANGE_SPEED, DO_SET_ROI_LOCATION, DO_SET_ROI_NONE, DO_MOUNT_CONTROL})

# MAV_FRAME values (mavros_msgs/Waypoint.frame).
FRAME_GLOBAL = px4.MAV_FRAME_GLOBAL
FRAME_MISSION = px4.MAV_FRAME_MISSION
FRAME_GLOBAL_REL_ALT = px4.MAV_FRAME_GLOBAL_RELATIVE_ALT
FRAME_GLOBAL_INT = px4.MAV_FRAME_GLOBAL_INT
FRAME_GLOBAL_RELATIVE_ALT_INT = px4.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT
AMSL_FRAMES = frozenset({FRAME_GLOBAL, FRAME_GLOBAL_INT})
RELATIVE_FRAMES = frozenset({FRAME_GLOBAL_REL_ALT, FRAME_GLOBAL_RELATIVE_ALT_INT})


@dataclass(frozen=True)
class RawItem:
    """The fields of mavros_msgs/Waypoint, free of ROS types."""

    frame: int
    command: int
    is_current: bool
    autocontinue: bool
    param1: float
    param2: float
    param3: float
    param4: float
    x_lat: float
    y_long: float
    z_alt: float


@dataclass(frozen=True)
class MissionItem:
    """One item in the vehicle's local frame.

    `east`/`north` are None where the item means "here" (a land or take-off item with
    no position). `height` is above the ground, or None to keep the current height.
    """

    seq: int
    command: int
    east: float | None
    north: float | None
    height: float | None
    param1: float
    param2: float
    param3: float
    param4: float
    autocontinue: bool
    raw: RawItem

    @property
    def is_nav(self) -> bool:
        return self.command in NAV_COMMANDS


def _has_position(item: RawItem) -> bool:
    return (math.isfinite(item.x_lat) and math.isfinite(item.y_long)
            and not (item.x_lat == 0.0 and item.y_long == 0.0))


def to_local(items: list[RawItem], to_enu: Callable[[float, float], tuple[float, float]],
             ground_amsl_m: float, home_height_m: float) -> list[MissionItem]:
    """Local-frame items; positions of items PX4 could not fly are left for `problems`."""
    local = []
    for seq, item in enumerate(items):
        east = north = height = None
        if item.command in NAV_COMMANDS or item.command == DO_SET_ROI_LOCATION:
            if _has_position(item) and abs(item.x_lat) <= 90.0 and abs(item.y_long) <= 180.0:
                east, north = to_enu(item.x_lat, item.y_long)
            if math.isfinite(item.z_alt):
                if item.frame in AMSL_FRAMES:
                    height = item.z_alt - ground_amsl_m
                elif item.frame in RELATIVE_FRAMES:
                    height = item.z_alt + home_height_m
        local.append(MissionItem(seq, item.command, east, north, height, item.param1, item.param2, item.param3,
                                 item.param4, item.autocontinue, item))
    return local


def upload_refusal(item: MissionItem) -> str:
    """Why PX4's mission protocol refuses this item during the upload (MAV_MISSION_UNSUPPORTED...)."""
    raw = item.raw
    if item.command not in NAV_COMMANDS | DO_COMMANDS:
        return f"item {item.seq}: unsupported command {item.command}"
    if raw.frame not in AMSL_FRAMES | RELATIVE_FRAMES | {FRAME_MISSION}:
        return f"item {item.seq}: unsupported frame {raw.frame}"
    return ""


def problems(items: list[MissionItem], max_height_m: float) -> list[str]:
    """Why PX4's mission feasibility check would refuse this mission; empty if it would fly it."""
    found = []
    if not items:
        return ["no mission"]
    for item in items:
        where = f"item {item.seq}"
        raw = item.raw
        if item.command not in NAV_COMMANDS | DO_COMMANDS:
            found.append(f"{where}: unsupported command {item.command}")
            continue
        if item.command in NAV_COMMANDS and item.command != NAV_RETURN_TO_LAUNCH:
            if raw.frame not in AMSL_FRAMES | RELATIVE_FRAMES:
                found.append(f"{where}: unsupported frame {raw.frame}")
                continue
            needs_position = item.command not in (NAV_LAND, NAV_TAKEOFF)
            if needs_position and item.east is None:
                found.append(f"{where}: no valid latitude and longitude")
            if item.command != NAV_LAND and item.height is None:
                found.append(f"{where}: no valid altitude")
            elif item.height is not None and item.command != NAV_LAND and item.height < 0.0:
                found.append(f"{where}: below the ground")
            elif item.height is not None and item.height > max_height_m:
                found.append(f"{where}: {item.height:.0f} m above the ground, above the geofence ceiling")
        if item.command == DO_SET_ROI_LOCATION and item.east is None:
            found.append(f"{where}: region of interest without a position")
    return found
