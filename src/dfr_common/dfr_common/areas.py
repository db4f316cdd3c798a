"""Areas on the map from GeoJSON: the operating area, and later no-fly zones.

GeoJSON orders coordinates longitude first; shapely keeps that order, so a point is
Point(longitude, latitude) throughout.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shapely.errors import ShapelyError
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from dfr_common.config_file import load_json


class AreaError(ValueError):
    """A GeoJSON file is missing, malformed, or holds no usable polygon."""


@dataclass(frozen=True)
class Area:
    name: str
    geometry: BaseGeometry
    properties: dict

    def contains(self, latitude: float, longitude: float) -> bool:
        return self.geometry.covers(Point(longitude, latitude))


def load_areas(path) -> list[Area]:
    """Every Polygon or MultiPolygon feature of a GeoJSON FeatureCollection."""
    path = Path(path)
    data = load_json(path, AreaError, "area file")
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list):
        raise AreaError(f"{path}: expected a GeoJSON FeatureCollection")
    areas = []
    for i, feature in enumerate(features):
        try:
            geometry = shape(feature["geometry"])
        except (KeyError, TypeError, ValueError, AttributeError, ShapelyError) as err:
            raise AreaError(f"{path}: feature {i} has no valid geometry: {err}") from err
        if geometry.geom_type not in ("Polygon", "MultiPolygon") or geometry.is_empty or not geometry.is_valid:
            raise AreaError(f"{path}: feature {i} is not a valid, non-empty polygon ({geometry.geom_type})")
        properties = feature.get("properties") or {}
        areas.append(Area(str(properties.get("name", f"area {i}")), geometry, properties))
    if not areas:
        raise AreaError(f"{path}: no polygons")
    return areas
