"""Unit tests of dfr_dispatch.airspace: restrictions from GeoJSON, no-fly polygons and routes around them."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from shapely.geometry import LineString, Point, Polygon, box

from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_dispatch.airspace import (
    Airspace,
    AirspaceError,
    Restriction,
    Route,
    altitude_layer,
    load_restrictions,
)

ROOT = Path(__file__).resolve().parents[3]
LONDON = ROOT / "config" / "airspace" / "london_restrictions.geojson"
FLEET = ROOT / "config" / "fleet" / "islington.yaml"
FRAME = LocalFrame(GeoPoint(51.5338, -0.1109, 76.0))      # Islington police station
R158_CENTRE = (51.515, -0.09)
# Greater London, as in operating_area.geojson
LAT_RANGE, LON_RANGE = (51.286, 51.686), (-0.510, 0.334)


@pytest.fixture(scope="module")
def restrictions() -> list[Restriction]:
    return load_restrictions(LONDON)


@pytest.fixture(scope="module")
def airspace(restrictions) -> Airspace:
    return Airspace(restrictions, FRAME)


def lat_lon(east: float, north: float) -> tuple[float, float]:
    lat, lon, _ = FRAME.to_geodetic(east, north, 0.0)
    return float(lat), float(lon)


def zone_file(tmp_path, features) -> Path:
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def enu_polygon_feature(name, polygon: Polygon, permission="never", kind="restricted", floor=0.0, ceiling=400.0):
    """A GeoJSON feature of a polygon given in FRAME's east-north metres."""
    def ring(coords):
        return [list(reversed(lat_lon(e, n))) for e, n in coords]
    coordinates = [ring(polygon.exterior.coords)] + [ring(h.coords) for h in polygon.interiors]
    return {"type": "Feature",
            "properties": {"name": name, "kind": kind, "floor_m": floor, "ceiling_m": ceiling,
                           "permission": permission, "note": "test"},
            "geometry": {"type": "Polygon", "coordinates": coordinates}}


def assert_clear(airspace: Airspace, route: Route):
    """The route's polyline never enters a no-fly margin (grazing an edge by a millimetre is allowed)."""
    line = LineString(route.enu) if len(route.enu) > 1 else Point(route.enu[0])
    for obstacle in airspace.obstacles:
        assert not line.intersects(obstacle.buffer(-0.01)), route.points


# --- the shipped file ----------------------------------------------------------------------

def test_shipped_file_loads(restrictions):
    names = {r.name for r in restrictions}
    assert {"Heathrow FRZ", "London City FRZ", "London Heliport (Battersea)", "R157 Hyde Park / Buckingham Palace",
            "R158 City of London", "R159 Isle of Dogs / Canary Wharf"} == names
    for r in restrictions:
        assert r.kind in ("frz", "restricted")
        assert r.floor_m == 0.0 and r.ceiling_m > 120.0
        assert "illustrative" in r.note.lower() and "ENR 5.1" in r.note
    by_name = {r.name: r for r in restrictions}
    assert by_name["Heathrow FRZ"].contains(51.4775, -0.4613)
    assert by_name["London City FRZ"].contains(51.5053, 0.0553)
    assert by_name["London Heliport (Battersea)"].contains(51.4700, -0.1795)
    assert by_name["R157 Hyde Park / Buckingham Palace"].contains(51.50, -0.14)
    assert by_name["R158 City of London"].contains(*R158_CENTRE)
    assert by_name["R159 Isle of Dogs / Canary Wharf"].contains(51.505, -0.02)
    assert all(r.permission == "police_permitted" for r in restrictions if r.kind == "restricted")


def test_shipped_sizes_are_plausible(airspace):
    areas = {r.name: z.area for r, z in zip(airspace.no_fly, airspace.zones)}
    heathrow_circle = math.pi * (2.5 * 1852.0) ** 2
    # the 2.5 nm circle plus four 5 km x 1 km runway zones, partly overlapping it
    assert heathrow_circle < areas["Heathrow FRZ"] < heathrow_circle + 4 * 5e6
    for name in ("R157 Hyde Park / Buckingham Palace", "R158 City of London", "R159 Isle of Dogs / Canary Wharf"):
        assert 0.8e6 < areas[name] < 4e6, name


def test_islington_bases_outside_every_zone(airspace):
    fleet = yaml.safe_load(FLEET.read_text())
    assert fleet["bases"]
    for base in fleet["bases"]:
        position = (base["latitude"], base["longitude"])
        assert not airspace.blocked(position), base["id"]
        assert airspace.zones_at(position) == []


def test_margins_keep_the_buffer(airspace):
    for zone, margin in zip(airspace.zones, airspace.margins):
        assert margin.covers(zone.buffer(airspace.buffer_m - 0.5))


# --- routes ----------------------------------------------------------------------------------

def test_no_obstacle_gives_the_straight_line(airspace):
    start, goal = lat_lon(0.0, 0.0), lat_lon(1500.0, 1200.0)
    route = airspace.route(start, goal)
    assert route.direct and route.notes == [] and route.goal_moved_m == 0.0
    assert route.length_m == pytest.approx(math.hypot(1500.0, 1200.0), abs=1e-3)
    assert route.points[0] == pytest.approx(start) and route.points[-1] == pytest.approx(goal, abs=1e-9)


def test_frame_round_trip_far_from_the_origin(airspace):
    for position in [(51.4775, -0.4613), (51.5053, 0.0553), (51.30, 0.30)]:
        assert airspace.lat_lon_of(airspace.enu_of(position)) == pytest.approx(position, abs=1e-7)   # 1 cm


def test_route_around_a_square_is_exact(tmp_path):
    square = box(1000.0, -100.0, 1200.0, 100.0)
    restrictions = load_restrictions(zone_file(tmp_path, [enu_polygon_feature("square", square)]))
    airspace = Airspace(restrictions, FRAME, buffer_m=0.0, simplify_m=0.0)
    route = airspace.route(lat_lon(800.0, 0.0), lat_lon(1400.0, 0.0))
    assert len(route.points) == 4
    assert route.length_m == pytest.approx(2 * math.hypot(200.0, 100.0) + 200.0, abs=0.01)
    assert_clear(airspace, route)


def test_route_through_a_concave_pocket(tmp_path):
    # a U open to the north: from inside the pocket the way out is north, around an arm
    u_shape = Polygon([(0, 0), (600, 0), (600, 600), (400, 600), (400, 200), (200, 200), (200, 600), (0, 600)])
    restrictions = load_restrictions(zone_file(tmp_path, [enu_polygon_feature("U", u_shape)]))
    airspace = Airspace(restrictions, FRAME, buffer_m=20.0)
    route = airspace.route(lat_lon(300.0, 400.0), lat_lon(300.0, -200.0))
    assert_clear(airspace, route)
    assert route.length_m > 200.0 + 600.0 + 200.0      # up out of the pocket, round an arm, down below


def test_random_routes_never_cross_a_zone(airspace):
    rng = np.random.default_rng(20240612)
    checked = crossing = 0
    while checked < 150:
        start = (rng.uniform(51.42, 51.58), rng.uniform(-0.56, 0.12))
        goal = (rng.uniform(51.42, 51.58), rng.uniform(-0.56, 0.12))
        if airspace.blocked(start):
            continue
        route = airspace.route(start, goal)
        checked += 1
        assert_clear(airspace, route)
        straight = float(np.hypot(*(airspace.enu_of(goal) - airspace.enu_of(start))))
        if route.goal_moved_m == 0.0:
            assert route.length_m >= straight - 1e-6
            assert route.points[-1] == pytest.approx(goal, abs=1e-9)
        if not route.direct:
            crossing += 1
    assert crossing > 20            # the sample does exercise routes around zones


def test_route_is_never_shorter_than_a_detour_it_could_take(airspace):
    # Islington to Battersea passes R157: the route beats going via any single corner it can see
    start, goal = (51.5338, -0.1109), (51.4850, -0.1500)
    route = airspace.route(start, goal)
    assert not route.direct
    assert_clear(airspace, route)
    s, g = airspace.enu_of(start), airspace.enu_of(goal)
    for corner in airspace.corners:
        if airspace._visible(np.array([s, corner]), np.array([corner, g])).all():
            assert route.length_m <= np.hypot(*(corner - s)) + np.hypot(*(g - corner)) + 1e-6


def test_incident_in_r158_is_answered_from_its_edge(airspace):
    route = airspace.route((51.5338, -0.1109), R158_CENTRE)
    assert airspace.zones_at(R158_CENTRE) == ["R158 City of London"]
    assert route.goal_moved_m > airspace.buffer_m
    assert len(route.notes) == 1
    note = route.notes[0]
    assert "R158 City of London" in note and "answered from its edge" in note
    assert f"{route.goal_moved_m:.0f} m from the incident" in note
    end = route.points[-1]
    assert not airspace.blocked(end)
    # on the margin's edge: the nearest clear point, within a few centimetres
    assert airspace._merged.boundary.distance(Point(airspace.enu_of(end))) < 0.1
    assert_clear(airspace, route)


def test_incident_in_a_margin_only(tmp_path):
    square = box(1000.0, -100.0, 1200.0, 100.0)
    airspace = Airspace(load_restrictions(zone_file(tmp_path, [enu_polygon_feature("square", square)])), FRAME,
                        buffer_m=50.0)
    route = airspace.route(lat_lon(0.0, 0.0), lat_lon(970.0, 0.0))
    assert "margin" in route.notes[0] and "'square'" in route.notes[0]
    assert route.goal_moved_m == pytest.approx(airspace.buffer_m + 5.0 - 30.0, abs=0.5)


def test_start_in_a_zone_is_an_error_unless_permitted(tmp_path, restrictions):
    with pytest.raises(AirspaceError, match="R158 City of London"):
        Airspace(restrictions, FRAME).route(R158_CENTRE, (51.5338, -0.1109))
    route = Airspace(restrictions, FRAME, {"police_permitted"}).route(R158_CENTRE, (51.5338, -0.1109))
    assert route.direct and route.notes == []


def test_start_in_a_margin_leaves_it_first(tmp_path):
    square = box(1000.0, -100.0, 1200.0, 100.0)
    airspace = Airspace(load_restrictions(zone_file(tmp_path, [enu_polygon_feature("square", square)])), FRAME)
    start = lat_lon(980.0, 0.0)
    route = airspace.route(start, lat_lon(0.0, 0.0))
    assert route.points[0] == pytest.approx(start)
    assert "start lies within" in route.notes[0]
    assert_clear(airspace, Route(route.points[1:], route.enu[1:], 0.0))


def test_enclosed_start_has_no_route(tmp_path):
    ring = box(-500.0, -500.0, 500.0, 500.0).difference(box(-300.0, -300.0, 300.0, 300.0))
    airspace = Airspace(load_restrictions(zone_file(tmp_path, [enu_polygon_feature("ring", ring)])), FRAME)
    with pytest.raises(AirspaceError, match="no route"):
        airspace.route(lat_lon(0.0, 0.0), lat_lon(1000.0, 0.0))
    assert airspace.route(lat_lon(0.0, 0.0), lat_lon(100.0, 0.0)).direct


# --- permissions, floors, ceiling and layers ---------------------------------------------------

def test_police_permitted_zones_become_flyable(restrictions):
    none = Airspace(restrictions, FRAME)
    police = Airspace(restrictions, FRAME, {"police_permitted"})
    everything = Airspace(restrictions, FRAME, {"police_permitted", "permit_required"})
    assert len(none.no_fly) == 6
    assert {r.name for r in police.no_fly} == {"Heathrow FRZ", "London City FRZ", "London Heliport (Battersea)"}
    assert everything.no_fly == [] and everything.obstacles == []
    assert not police.blocked(R158_CENTRE) and police.zones_at(R158_CENTRE) == []
    assert police.blocked((51.4775, -0.4613))
    route = police.route((51.5338, -0.1109), R158_CENTRE)
    assert route.direct and route.goal_moved_m == 0.0 and route.notes == []


@pytest.mark.parametrize("permissions", [{"never"}, {"police"}, {"police_permitted", "anything"}])
def test_permissions_that_cannot_be_held(restrictions, permissions):
    with pytest.raises(AirspaceError, match="not grantable"):
        Airspace(restrictions, FRAME, permissions)


def test_never_zone_stays_no_fly_with_every_permission(tmp_path):
    feature = enu_polygon_feature("palace", box(0.0, 1000.0, 200.0, 1200.0), permission="never")
    airspace = Airspace(load_restrictions(zone_file(tmp_path, [feature])), FRAME,
                        {"police_permitted", "permit_required"})
    assert airspace.blocked(lat_lon(100.0, 1100.0))


def test_restriction_above_the_ceiling_does_not_constrain(tmp_path):
    high = enu_polygon_feature("high", box(0.0, 1000.0, 200.0, 1200.0), floor=150.0, ceiling=600.0)
    path = zone_file(tmp_path, [high])
    assert not Airspace(load_restrictions(path), FRAME).blocked(lat_lon(100.0, 1100.0))
    assert Airspace(load_restrictions(path), FRAME, ceiling_m=200.0).blocked(lat_lon(100.0, 1100.0))


def test_cap_altitude(airspace):
    assert airspace.ceiling_m == 120.0
    assert airspace.cap_altitude(150.0) == 120.0
    assert airspace.cap_altitude(60.0) == 60.0


def test_altitude_layers_by_heading():
    assert altitude_layer(0.0) == 60.0                     # east
    assert altitude_layer(math.pi / 2) == 70.0             # north
    assert altitude_layer(math.pi) == 80.0                 # west
    assert altitude_layer(-math.pi) == 80.0
    assert altitude_layer(-math.pi / 2) == 90.0            # south
    assert altitude_layer(math.radians(44.0)) == 60.0
    assert altitude_layer(math.radians(46.0)) == 70.0
    assert altitude_layer(2 * math.pi + 0.1) == 60.0
    for heading in np.linspace(-math.pi, math.pi, 37):     # opposite headings are two layers apart
        assert abs(altitude_layer(heading) - altitude_layer(heading + math.pi)) == 20.0 or \
            abs(abs(math.degrees(heading)) % 90.0 - 45.0) < 1e-6
    assert altitude_layer(0.3, base_m=30.0, step_m=5.0, layers=2) == 30.0
    with pytest.raises(ValueError, match="ceiling"):
        altitude_layer(0.0, base_m=100.0, step_m=10.0)
    with pytest.raises(ValueError):
        altitude_layer(float("nan"))


# --- malformed files ---------------------------------------------------------------------------

GOOD = {"name": "z", "kind": "restricted", "floor_m": 0, "ceiling_m": 400, "permission": "never"}
SQUARE = {"type": "Polygon", "coordinates": [[[-0.1, 51.5], [-0.09, 51.5], [-0.09, 51.51], [-0.1, 51.51],
                                              [-0.1, 51.5]]]}


def feature(properties=None, geometry=None, **changes):
    props = dict(GOOD if properties is None else properties)
    for key, value in changes.items():
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    return {"type": "Feature", "properties": props, "geometry": SQUARE if geometry is None else geometry}


@pytest.mark.parametrize(("features", "message"), [
    ([feature(kind="prison")], "kind 'prison'"),
    ([feature(permission="sometimes")], "permission 'sometimes'"),
    ([feature(permission=None)], "no 'permission'"),
    ([feature(floor_m="low")], "floor_m must be a finite number"),
    ([feature(floor_m=500)], "floor_m < ceiling_m"),
    ([feature(name="")], "non-empty 'name'"),
    ([feature(), feature()], "unique: z"),
    ([feature(geometry={"type": "LineString", "coordinates": [[0, 51], [1, 51]]})], "not a valid, non-empty polygon"),
    ([feature(geometry={"type": "Polygon", "coordinates": [[[0, 51], [1, 52], [1, 51], [0, 52], [0, 51]]]})],
     "not a valid"),
    ([feature(geometry={"type": "Polygon", "coordinates": [[[51.5, 500.0], [51.6, 500.0], [51.6, 501.0],
                                                            [51.5, 500.0]]]})], "longitude, latitude"),
    ([{"type": "Feature", "properties": GOOD}], "no valid geometry"),
    ([{"type": "Feature", "geometry": SQUARE}], "no properties"),
    (["not a feature"], "not an object"),
])
def test_malformed_features(tmp_path, features, message):
    with pytest.raises(AirspaceError, match=message):
        load_restrictions(zone_file(tmp_path, features))


def test_malformed_files(tmp_path):
    with pytest.raises(AirspaceError, match="cannot read airspace file"):
        load_restrictions(tmp_path / "missing.geojson")
    bad = tmp_path / "bad.geojson"
    bad.write_text("{ not json")
    with pytest.raises(AirspaceError, match="not valid JSON"):
        load_restrictions(bad)
    bad.write_text(json.dumps({"type": "Feature", "features": []}))
    with pytest.raises(AirspaceError, match="FeatureCollection"):
        load_restrictions(bad)
    assert load_restrictions(zone_file(tmp_path, [])) == []


def test_bad_positions_and_parameters(airspace, restrictions):
    with pytest.raises(AirspaceError, match="not finite"):
        airspace.route((float("nan"), 0.0), (51.5, -0.1))
    with pytest.raises(AirspaceError, match="buffer_m"):
        Airspace(restrictions, FRAME, buffer_m=-1.0)
    with pytest.raises(AirspaceError, match="ceiling_m"):
        Airspace(restrictions, FRAME, ceiling_m=float("inf"))


# --- the bench's route timing ------------------------------------------------------------------


def test_route_bench_runs_with_all_of_london_loaded():
    from dfr_dispatch.dispatch_bench import bench_routes
    result = bench_routes(LONDON, routes=5)
    assert result["samples"] == 5 and result["no_fly_areas"] >= 5 and result["mean_route_km"] > 0.0
