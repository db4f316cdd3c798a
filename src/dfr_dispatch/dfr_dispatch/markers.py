"""What dispatch knows, drawn for rviz2: bases, no-fly areas, drones, incidents and routes.

Everything is placed in the site frame (`map`: east-north-up metres about the fleet
file's first base), converted from WGS 84, so rviz2 shows one consistent picture
whatever frame each vehicle's autopilot uses.
"""
from __future__ import annotations

import math

from visualization_msgs.msg import Marker, MarkerArray

from dfr_common.geodesy import LocalFrame
from dfr_common.ros.markers import FRAME_ID  # noqa: F401  (re-exported: the frame of every marker here)
from dfr_common.ros.markers import colour as _colour
from dfr_common.ros.markers import marker as _marker
from dfr_common.ros.markers import site_point as _point

_GRADE_COLOURS = {"I": (0.9, 0.1, 0.1), "S": (1.0, 0.55, 0.0), "E": (0.9, 0.85, 0.1), "R": (0.6, 0.6, 0.6)}


def static_markers(frame: LocalFrame, fleet, no_fly_zones, stamp) -> MarkerArray:
    """Bases and no-fly areas: `no_fly_zones` are (name, shapely polygon in longitude, latitude)."""
    out = MarkerArray()
    for i, (base_id, base) in enumerate(fleet.bases.items()):
        marker = _marker("bases", i, Marker.CYLINDER, stamp)
        marker.pose.position = _point(frame, base.latitude, base.longitude, 2.0)
        marker.scale.x = marker.scale.y = 30.0
        marker.scale.z = 4.0
        marker.color = _colour(0.1, 0.3, 0.9, 0.8)
        out.markers.append(marker)
        label = _marker("base_names", i, Marker.TEXT_VIEW_FACING, stamp)
        label.pose.position = _point(frame, base.latitude, base.longitude, 40.0)
        label.scale.z = 30.0
        label.color = _colour(1.0, 1.0, 1.0)
        label.text = base_id
        out.markers.append(label)
    for i, (name, polygon) in enumerate(no_fly_zones):
        outline = _marker("no_fly", i, Marker.LINE_STRIP, stamp)
        outline.scale.x = 15.0
        outline.color = _colour(0.9, 0.0, 0.0, 0.9)
        lon, lat = polygon.exterior.coords.xy
        outline.points = [_point(frame, la, lo, 1.0) for la, lo in zip(lat, lon, strict=True)]
        out.markers.append(outline)
        label = _marker("no_fly_names", i, Marker.TEXT_VIEW_FACING, stamp)
        label.pose.position = _point(frame, polygon.centroid.y, polygon.centroid.x, 50.0)
        label.scale.z = 60.0
        label.color = _colour(1.0, 0.4, 0.4)
        label.text = name
        out.markers.append(label)
    return out


def live_markers(frame: LocalFrame, statuses, incidents, routes, stamp, lifetime_s: float) -> MarkerArray:
    """Drones (from VehicleStatus), open incidents by grade, and the routes being flown.

    `routes` maps a vehicle id to the (latitude, longitude, altitude) points of its mission.
    """
    out = MarkerArray()
    for i, status in enumerate(statuses):
        lat, lon = status.position.latitude, status.position.longitude
        if not (math.isfinite(lat) and math.isfinite(lon)):
            continue
        drone = _marker("drones", i, Marker.SPHERE, stamp, lifetime_s)
        altitude = status.altitude_rel_m if math.isfinite(status.altitude_rel_m) else 0.0
        drone.pose.position = _point(frame, lat, lon, altitude)
        drone.scale.x = drone.scale.y = drone.scale.z = 20.0
        drone.color = _colour(0.2, 0.9, 0.2) if status.available else _colour(0.1, 0.8, 1.0)
        out.markers.append(drone)
        label = _marker("drone_names", i, Marker.TEXT_VIEW_FACING, stamp, lifetime_s)
        label.pose.position = _point(frame, lat, lon, altitude + 25.0)
        label.scale.z = 20.0
        label.color = _colour(1.0, 1.0, 1.0)
        label.text = status.vehicle_id + (" (relief needed)" if status.relief_needed else "")
        out.markers.append(label)
    for i, incident in enumerate(incidents):
        marker = _marker("incidents", i, Marker.CUBE, stamp, lifetime_s)
        marker.pose.position = _point(frame, incident.location.latitude, incident.location.longitude, 5.0)
        marker.scale.x = marker.scale.y = marker.scale.z = 25.0
        marker.color = _colour(*_GRADE_COLOURS.get(incident.grade, (0.6, 0.6, 0.6)),
                               1.0 if incident.drone_eligible else 0.35)
        out.markers.append(marker)
    for i, points in enumerate(routes[v] for v in sorted(routes)):
        line = _marker("routes", i, Marker.LINE_STRIP, stamp, lifetime_s)
        line.scale.x = 6.0
        line.color = _colour(1.0, 1.0, 0.2, 0.9)
        line.points = [_point(frame, la, lo, up) for la, lo, up in points]
        out.markers.append(line)
    return out
