"""Each drone's tracks drawn for rviz2, in the site frame: the target large and red, the others small.

Live only: the mission record keeps the target alone (the bag leaves this topic out), so
the other road users' positions are never stored.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from visualization_msgs.msg import Marker, MarkerArray

from dfr_common.geodesy import LocalFrame
from dfr_common.ros.markers import colour, marker, site_point


@dataclass(frozen=True)
class PlacedTrack:
    track_id: int
    latitude: float
    longitude: float
    object_class: str
    is_target: bool


def track_markers(frame: LocalFrame, vehicle_id: str, tracks: list[PlacedTrack], stamp,
                  lifetime_s: float = 1.0) -> MarkerArray:
    """Markers of one drone's confirmed, placed tracks; they expire unless refreshed."""
    out = MarkerArray()
    for track in tracks:
        if not (math.isfinite(track.latitude) and math.isfinite(track.longitude)):
            continue
        dot = marker(f"{vehicle_id}/tracks", track.track_id, Marker.SPHERE, stamp, lifetime_s)
        dot.pose.position = site_point(frame, track.latitude, track.longitude, 1.0)
        size = 6.0 if track.is_target else 3.0
        dot.scale.x = dot.scale.y = dot.scale.z = size
        dot.color = colour(0.95, 0.1, 0.1) if track.is_target else colour(0.7, 0.7, 0.75, 0.8)
        out.markers.append(dot)
        if track.is_target:
            label = marker(f"{vehicle_id}/target", 0, Marker.TEXT_VIEW_FACING, stamp, lifetime_s)
            label.pose.position = site_point(frame, track.latitude, track.longitude, 12.0)
            label.scale.z = 8.0
            label.color = colour(1.0, 1.0, 1.0)
            label.text = f"{vehicle_id} target: track {track.track_id} ({track.object_class})"
            out.markers.append(label)
    return out
