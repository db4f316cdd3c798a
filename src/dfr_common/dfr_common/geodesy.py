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


_A = 6378137.0                      # WGS 84 semi-major axis, m
_F = 1.0 / 298.257223563
_E2 = _F * (2.0 - _F)                # first eccentricity squared
_B = _A * (1.0 - _F)
_EP2 = _E2 / (1.0 - _E2)             # second eccentricity squared


def _geodetic_to_ecef(lat_rad: float, lon_rad: float, h: float) -> tuple[float, float, float]:
    sin_lat = math.sin(lat_rad)
    n = _A / math.sqrt(1.0 - _E2 * sin_lat * sin_lat)
    cos_lat = math.cos(lat_rad)
    return ((n + h) * cos_lat * math.cos(lon_rad), (n + h) * cos_lat * math.sin(lon_rad),
            (n * (1.0 - _E2) + h) * sin_lat)


def _ecef_to_geodetic(x: float, y: float, z: float) -> tuple[float, float, float]:
    """Bowring's closed form: sub-millimetre for points near the Earth's surface."""
    p = math.hypot(x, y)
    theta = math.atan2(z * _A, p * _B)
    sin_t, cos_t = math.sin(theta), math.cos(theta)
    lat = math.atan2(z + _EP2 * _B * sin_t ** 3, p - _E2 * _A * cos_t ** 3)
    sin_lat = math.sin(lat)
    n = _A / math.sqrt(1.0 - _E2 * sin_lat * sin_lat)
    cos_lat = math.cos(lat)
    h = p / cos_lat - n if abs(cos_lat) > 1e-9 else abs(z) - _B
    return math.degrees(lat), math.degrees(math.atan2(y, x)), h


def _is_scalar(*values) -> bool:
    return all(isinstance(v, (int, float, np.floating, np.integer)) for v in values)


class LocalFrame:
    """East-north-up metres about a fixed WGS 84 origin.

    Single points take a closed-form path (a few microseconds): the simulator converts
    every vehicle's position many times a second. Arrays go through pymap3d.
    """

    def __init__(self, origin: GeoPoint):
        if not origin.has_position() or not math.isfinite(origin.altitude):
            raise ValueError(f"local frame origin must be finite, got {origin}")
        self.origin = origin
        lat, lon = math.radians(origin.latitude), math.radians(origin.longitude)
        self._ecef0 = _geodetic_to_ecef(lat, lon, origin.altitude)
        sl, cl, so, co = math.sin(lat), math.cos(lat), math.sin(lon), math.cos(lon)
        self._rows = ((-so, co, 0.0), (-sl * co, -sl * so, cl), (cl * co, cl * so, sl))   # ECEF -> E, N, U

    def to_enu(self, latitude, longitude, altitude=None):
        """ENU coordinates (arrays or floats) of WGS 84 positions; altitude defaults to the origin's."""
        if altitude is None:
            altitude = self.origin.altitude
        if _is_scalar(latitude, longitude, altitude):
            x, y, z = _geodetic_to_ecef(math.radians(latitude), math.radians(longitude), float(altitude))
            d = (x - self._ecef0[0], y - self._ecef0[1], z - self._ecef0[2])
            return tuple(r[0] * d[0] + r[1] * d[1] + r[2] * d[2] for r in self._rows)
        return pymap3d.geodetic2enu(latitude, longitude, altitude,
                                    self.origin.latitude, self.origin.longitude, self.origin.altitude)

    def to_geodetic(self, east, north, up=0.0):
        """WGS 84 latitude, longitude and ellipsoid altitude of ENU coordinates."""
        if _is_scalar(east, north, up):
            (ex, ey, ez), (nx, ny, nz), (ux, uy, uz) = self._rows
            x0, y0, z0 = self._ecef0
            return _ecef_to_geodetic(x0 + ex * east + nx * north + ux * up, y0 + ey * east + ny * north + uy * up,
                                     z0 + ez * east + nz * north + uz * up)
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

