"""Positions on the WGS 84 ellipsoid and local east-north-up (ENU) frames.

Messages carry WGS 84 latitude and longitude; planning, simulation and control work
in metres. A LocalFrame is the tangent plane at one origin (a base, a vehicle's home),
accurate to centimetres over the few kilometres one flight spans.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pymap3d


@dataclass(frozen=True)
class GeoPoint:
    """A WGS 84 position: degrees, and metres above the ellipsoid."""

    latitude: float
    longitude: float
    altitude: float = 0.0

    def has_position(self) -> bool:
        """Latitude and longitude are finite (the altitude may be unknown: NaN)."""
        return math.isfinite(self.latitude) and math.isfinite(self.longitude)


class LocalFrame:
    """East-north-up metres about a fixed WGS 84 origin."""

    def __init__(self, origin: GeoPoint):
        if not origin.has_position() or not math.isfinite(origin.altitude):
            raise ValueError(f"local frame origin must be finite, got {origin}")
        self.origin = origin

    def to_enu(self, latitude, longitude, altitude=None):
        """ENU coordinates (arrays or floats) of WGS 84 positions; altitude defaults to the origin's."""
        if altitude is None:
            altitude = self.origin.altitude
        return pymap3d.geodetic2enu(latitude, longitude, altitude,
                                    self.origin.latitude, self.origin.longitude, self.origin.altitude)

    def to_geodetic(self, east, north, up=0.0):
        """WGS 84 latitude, longitude and ellipsoid altitude of ENU coordinates."""
        return pymap3d.enu2geodetic(east, north, up,
                                    self.origin.latitude, self.origin.longitude, self.origin.altitude)

    def point_to_enu(self, point: GeoPoint) -> np.ndarray:
        return np.array(self.to_enu(point.latitude, point.longitude, point.altitude), dtype=float)

    def enu_to_point(self, enu) -> GeoPoint:
        lat, lon, alt = self.to_geodetic(float(enu[0]), float(enu[1]), float(enu[2]))
        return GeoPoint(float(lat), float(lon), float(alt))


def ground_distance_m(lat1, lon1, lat2, lon2):
    """Horizontal distance in metres between WGS 84 positions (arrays broadcast).

    Taken as the length of the east-north offset in the tangent plane at the first
    point: within 0.1 % of the geodesic at the tens of kilometres a city spans.
    """
    east, north, _ = pymap3d.geodetic2enu(lat2, lon2, 0.0, lat1, lon1, 0.0)
    return np.hypot(east, north)

