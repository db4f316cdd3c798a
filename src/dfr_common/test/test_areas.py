"""Unit tests of dfr_common.areas: loading GeoJSON polygons and point-in-area tests."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dfr_common.areas import Area, AreaError, load_areas

REPO = Path(__file__).resolve().parents[3]
OPERATING_AREA = REPO / "config" / "airspace" / "operating_area.geojson"

# A 1 x 1 degree square, south-west corner at lon 0, lat 50 (GeoJSON order: [lon, lat]).
SQUARE = [[[0.0, 50.0], [1.0, 50.0], [1.0, 51.0], [0.0, 51.0], [0.0, 50.0]]]


def feature(geometry, properties=None) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def write_geojson(tmp_path, data, name="areas.geojson") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def collection(*features) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


# --- the operating area -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def london() -> Area:
    areas = load_areas(OPERATING_AREA)
    assert len(areas) == 1
    return areas[0]


def test_operating_area_loads(london):
    assert isinstance(london, Area)
    assert london.name == "Greater London"
    assert london.geometry.geom_type == "Polygon"
    assert "note" in london.properties
    # Bounds are (min lon, min lat, max lon, max lat).
    assert london.geometry.bounds == pytest.approx((-0.510, 51.286, 0.334, 51.686))


@pytest.mark.parametrize(("lat", "lon"), [
    (51.5338, -0.1109),     # Islington police station
    (51.5412, -0.1027),     # Upper Street
    (51.3000, 0.3000),      # near the south-east corner
    (51.6800, -0.5000),     # near the north-west corner
])
def test_points_in_london_are_inside(london, lat, lon):
    assert london.contains(lat, lon) is True


@pytest.mark.parametrize(("lat", "lon"), [
    (50.8225, -0.1372),     # Brighton: south of the box
    (51.7520, -1.2577),     # Oxford: west of it
    (51.5, 0.5),            # east of it
    (51.7, 0.0),            # just north of it
    (51.28, 0.0),           # just south of it
])
def test_points_outside_london_are_outside(london, lat, lon):
    assert london.contains(lat, lon) is False


def test_contains_takes_latitude_then_longitude(london):
    # Islington with its coordinates swapped is near the equator in the Gulf of Guinea.
    assert london.contains(51.5338, -0.1109) is True
    assert london.contains(-0.1109, 51.5338) is False


def test_contains_takes_latitude_then_longitude_on_a_non_square_area(tmp_path):
    # A strip 0-10 E, 50-51 N: (lat 50.5, lon 5) is inside, (lat 5, lon 50.5) is not.
    strip = [[[0.0, 50.0], [10.0, 50.0], [10.0, 51.0], [0.0, 51.0], [0.0, 50.0]]]
    area = load_areas(write_geojson(tmp_path, collection(feature({"type": "Polygon", "coordinates": strip}))))[0]
    assert area.contains(50.5, 5.0) is True
    assert area.contains(5.0, 50.5) is False


def test_points_on_the_boundary_count_as_inside(london):
    assert london.contains(51.286, 0.0) is True        # southern edge
    assert london.contains(51.686, 0.334) is True      # north-east corner


# --- other valid files ------------------------------------------------------------------------------------------


def test_multipolygon_and_default_names(tmp_path):
    other = [[[2.0, 50.0], [3.0, 50.0], [3.0, 51.0], [2.0, 51.0], [2.0, 50.0]]]
    path = write_geojson(tmp_path, collection(
        feature({"type": "Polygon", "coordinates": SQUARE}, {"name": "square", "ceiling_m": 120}),
        feature({"type": "MultiPolygon", "coordinates": [SQUARE, other]}),
    ))
    square, multi = load_areas(path)
    assert square.name == "square"
    assert square.properties == {"name": "square", "ceiling_m": 120}
    assert multi.name == "area 1"           # no properties: named by index
    assert multi.properties == {}
    assert multi.geometry.geom_type == "MultiPolygon"
    assert multi.contains(50.5, 2.5) is True
    assert multi.contains(50.5, 1.5) is False     # between the two parts


def test_polygon_with_a_hole(tmp_path):
    hole = [[0.4, 50.4], [0.6, 50.4], [0.6, 50.6], [0.4, 50.6], [0.4, 50.4]]
    path = write_geojson(tmp_path, collection(feature({"type": "Polygon", "coordinates": SQUARE + [hole]})))
    area = load_areas(path)[0]
    assert area.contains(50.2, 0.2) is True
    assert area.contains(50.5, 0.5) is False


# --- error paths ------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(AreaError, match="cannot read"):
        load_areas(tmp_path / "absent.geojson")


def test_invalid_json(tmp_path):
    path = write_geojson(tmp_path, '{"type": "FeatureCollection", "features": [')
    with pytest.raises(AreaError, match="not valid JSON"):
        load_areas(path)


@pytest.mark.parametrize("data", [
    [],                                                      # a JSON list
    '"FeatureCollection"',                                   # a JSON string
    {"type": "Polygon", "coordinates": SQUARE},              # a bare geometry
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": SQUARE}},   # a single feature
    {"type": "FeatureCollection", "features": {"a": 1}},     # features not a list
])
def test_not_a_feature_collection(tmp_path, data):
    with pytest.raises(AreaError, match="expected a GeoJSON FeatureCollection"):
        load_areas(write_geojson(tmp_path, data))


def test_point_feature_is_refused(tmp_path):
    path = write_geojson(tmp_path, collection(
        feature({"type": "Polygon", "coordinates": SQUARE}),
        feature({"type": "Point", "coordinates": [0.5, 50.5]}),
    ))
    with pytest.raises(AreaError, match=r"feature 1 is not a valid, non-empty polygon \(Point\)"):
        load_areas(path)


def test_line_feature_is_refused(tmp_path):
    path = write_geojson(tmp_path, collection(feature({"type": "LineString", "coordinates": [[0, 50], [1, 51]]})))
    with pytest.raises(AreaError, match=r"feature 0 is not a valid, non-empty polygon \(LineString\)"):
        load_areas(path)


def test_self_intersecting_polygon_is_refused(tmp_path):
    bowtie = [[[0.0, 50.0], [1.0, 51.0], [1.0, 50.0], [0.0, 51.0], [0.0, 50.0]]]
    path = write_geojson(tmp_path, collection(feature({"type": "Polygon", "coordinates": bowtie})))
    with pytest.raises(AreaError, match=r"feature 0 is not a valid, non-empty polygon \(Polygon\)"):
        load_areas(path)


@pytest.mark.parametrize("bad_feature", [
    {"type": "Feature", "properties": {}},                                # no geometry key
    {"type": "Feature", "geometry": None},                                # null geometry
    {"type": "Feature", "geometry": {"type": "Polygon"}},                 # no coordinates
    "not a feature",
])
def test_feature_without_valid_geometry(tmp_path, bad_feature):
    with pytest.raises(AreaError, match="feature 0 has no valid geometry"):
        load_areas(write_geojson(tmp_path, collection(bad_feature)))


@pytest.mark.parametrize("geometry", [
    {"type": "Blob", "coordinates": []},
    {"type": "Circle", "coordinates": [0.5, 50.5]},
])
def test_unknown_geometry_type_gives_area_error(tmp_path, geometry):
    with pytest.raises(AreaError, match="feature 0"):
        load_areas(write_geojson(tmp_path, collection(feature(geometry))))


def test_no_features(tmp_path):
    with pytest.raises(AreaError, match="no polygons"):
        load_areas(write_geojson(tmp_path, collection()))


def test_area_error_is_a_value_error_naming_the_file(tmp_path):
    path = write_geojson(tmp_path, collection(), name="empty_zones.geojson")
    with pytest.raises(ValueError, match="empty_zones.geojson"):
        load_areas(path)


def test_empty_polygon_is_refused(tmp_path):
    path = write_geojson(tmp_path, collection(feature({"type": "Polygon", "coordinates": []})))
    with pytest.raises(AreaError):
        load_areas(path)
