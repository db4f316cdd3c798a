"""Where a vehicle is, as its MAVROS reports it: the pose that perception and follow both need.

Home (the local frame's origin), the global position and the heading (each kept for a few
seconds, so a camera image can be placed at its own time) and the height above home. Both come
stamped: the heading is the yaw of local_position/pose, not compass_hdg, a bare Float64 that
could only be placed by when it arrived (on sim time, up to a clock tick off, and a drone
turning at 45 degrees a second turns 9 degrees in a 0.2 s tick).
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
from geometry_msgs.msg import PoseStamped
from mavros_msgs.msg import HomePosition
from sensor_msgs.msg import NavSatFix
from std_msgs.msg import Float64

from dfr_common.angle_history import AngleHistory
from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_common.quaternions import yaw_of
from dfr_common.ros import qos
from dfr_common.ros.lazy_subscriptions import LazySubscriptions
from dfr_common.ros.stamps import to_seconds


class VehiclePose:
    def __init__(self, history: int = 50):
        self.frame: LocalFrame | None = None          # the vehicle's home, ENU
        self.fixes: deque = deque(maxlen=history)      # (stamp s, east, north) in that frame
        self.latitude = math.nan
        self.longitude = math.nan
        self.height_m = math.nan                      # above home
        self.heading_enu = math.nan                   # radians from east, counter-clockwise
        self.headings = AngleHistory(history)         # (stamp s, heading ENU degrees)

    def subscribe(self, node, mavros_namespace: str, moving: bool = True) -> None:
        """Listen to the vehicle's MAVROS under `mavros_namespace` (e.g. /uav1/mavros): its home (latched)
        and, with `moving`, its position, height and heading (5 a second each). A node that needs the
        motion only now and then passes moving=False and calls follow_motion() when it does."""
        node.create_subscription(HomePosition, f"{mavros_namespace}/home_position/home", self.on_home,
                                 qos.LATCHED_STATE)
        self._motion = LazySubscriptions(node, [
            (NavSatFix, f"{mavros_namespace}/global_position/global", self.on_fix, qos.SENSOR_DATA),
            (Float64, f"{mavros_namespace}/global_position/rel_alt", self.on_rel_alt, qos.SENSOR_DATA),
            (PoseStamped, f"{mavros_namespace}/local_position/pose", self.on_local_pose, qos.SENSOR_DATA)],
            self._forget_motion)
        self.follow_motion(moving)

    def follow_motion(self, wanted: bool) -> None:
        """Start or stop listening to position, height and heading: a fleet-wide node listening to every
        drone's telemetry all the time spends most of its time on drones it does not watch."""
        self._motion.want(wanted)

    @property
    def following_motion(self) -> bool:
        return self._motion.active

    def _forget_motion(self) -> None:
        self.fixes.clear()
        self.headings.clear()
        self.latitude = self.longitude = self.height_m = self.heading_enu = math.nan

    def on_home(self, msg: HomePosition) -> None:
        geo = msg.geo
        if all(math.isfinite(v) for v in (geo.latitude, geo.longitude, geo.altitude)):
            self.frame = LocalFrame(GeoPoint(geo.latitude, geo.longitude, geo.altitude))

    def on_fix(self, msg: NavSatFix) -> None:
        if not (math.isfinite(msg.latitude) and math.isfinite(msg.longitude)):
            return
        self.latitude, self.longitude = msg.latitude, msg.longitude
        if self.frame is not None:
            east, north, _ = self.frame.to_enu(msg.latitude, msg.longitude)
            self.fixes.append((to_seconds(msg.header.stamp), float(east), float(north)))

    def on_rel_alt(self, msg: Float64) -> None:
        self.height_m = msg.data

    def on_local_pose(self, msg: PoseStamped) -> None:
        q = msg.pose.orientation
        yaw = yaw_of(q.x, q.y, q.z, q.w)
        if not math.isfinite(yaw):
            return
        self.heading_enu = yaw
        self.headings.add(to_seconds(msg.header.stamp), math.degrees(yaw))

    def heading_at(self, stamp_s: float) -> float:
        """The heading (ENU radians) at a past moment, between the poses stamped around it; the latest
        where none has come."""
        timed = self.headings.at(stamp_s)
        return math.radians(timed[0]) if timed is not None else self.heading_enu

    def position(self) -> tuple[float, float, float] | None:
        """East, north and height above home now; None until home and a fix have come."""
        if self.frame is None or not (math.isfinite(self.latitude) and math.isfinite(self.longitude)):
            return None
        east, north, _ = self.frame.to_enu(self.latitude, self.longitude)
        return float(east), float(north), float(self.height_m)

    def position_at(self, stamp_s: float) -> tuple[float, float] | None:
        """East, north at a past moment, between the fixes around it (PX4 sends 5 a second)."""
        if not self.fixes:
            return None
        times = [f[0] for f in self.fixes]
        return (float(np.interp(stamp_s, times, [f[1] for f in self.fixes])),
                float(np.interp(stamp_s, times, [f[2] for f in self.fixes])))
