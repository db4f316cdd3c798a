"""The pieces every rviz2 picture of the project is built from: markers in the site frame.

Everything is placed in `map`: east-north-up metres about the fleet file's first base,
converted from WGS 84, so that what dispatch and perception draw lines up in rviz2
whatever frame each vehicle's autopilot uses.
"""
from __future__ import annotations

from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker

from dfr_common.geodesy import LocalFrame

FRAME_ID = "map"


def colour(r, g, b, a=1.0) -> ColorRGBA:
    return ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))


def marker(namespace: str, marker_id: int, kind: int, stamp, lifetime_s: float = 0.0) -> Marker:
    """A new marker in the site frame; lifetime 0 keeps it until replaced."""
    m = Marker(ns=namespace, id=marker_id, type=kind, action=Marker.ADD)
    m.header.frame_id = FRAME_ID
    m.header.stamp = stamp
    m.pose.orientation.w = 1.0
    m.lifetime = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1.0) * 1e9))
    return m


def site_point(frame: LocalFrame, latitude: float, longitude: float, up: float = 0.0) -> Point:
    east, north, _ = frame.to_enu(latitude, longitude)
    return Point(x=float(east), y=float(north), z=float(up))
