"""The street map: the shipped Islington file loads into a connected, routable graph, bad files say where
they are wrong, and generated buildings stay off roads, parks and each other."""
import json
import math
import time

import numpy as np
import pytest
import shapely
from shapely import STRtree
from world_fixtures import MAP_FILE, REPO

from dfr_common.fleet import load_fleet
from dfr_sim.street_map import (
    BuildingConfig,
    EdgeStep,
    NoRouteError,
    Road,
    StreetMap,
    StreetMapConfig,
    StreetMapError,
    generate_buildings,
    load_street_map,
)

FLEET_FILE = REPO / "config" / "fleet" / "islington.yaml"



@pytest.fixture(scope="module")
def built(street_map):
    started = time.perf_counter()
    with_buildings = generate_buildings(street_map, seed=1)
    return with_buildings, time.perf_counter() - started


def enu(frame, lat, lon):
    east, north, _ = frame.to_enu(lat, lon)
    return np.array([float(east), float(north)])


# --------------------------------------------------------------- the shipped map
def test_shipped_file_is_small_and_says_its_shapes_are_illustrative():
    assert MAP_FILE.stat().st_size < 300_000
    data = json.loads(MAP_FILE.read_text())
    assert "illustrative" in data["properties"]["note"].lower()


def test_shipped_map_has_the_main_roads_and_parks(street_map):
    names = {road.name for road in street_map.roads}
    for main_road in ("Upper Street", "Holloway Road", "Essex Road", "Caledonian Road", "Pentonville Road",
                      "City Road", "Seven Sisters Road", "Camden Road", "Kentish Town Road", "Green Lanes",
                      "Stoke Newington High Street", "Stoke Newington Church Street", "Balls Pond Road",
                      "St Paul's Road", "Highbury New Park", "Liverpool Road", "York Way", "Archway Road",
                      "Blackstock Road", "Mildmay Park"):
        assert main_road in names
    assert len(street_map.roads) >= 40
    assert sum(road.road_class == "residential" for road in street_map.roads) >= 20
    for park in ("Highbury Fields", "Clissold Park", "Finsbury Park", "Caledonian Park", "Whittington Park"):
        assert park in street_map.park_names
    assert all(park.is_valid and park.area > 1000 for park in street_map.parks)


def test_the_three_bases_lie_inside_the_map(street_map, frame):
    xmin, ymin, xmax, ymax = street_map.bounds
    fleet = load_fleet(FLEET_FILE)
    assert len(fleet.bases) == 3
    for base in fleet.bases.values():
        x, y = enu(frame, base.latitude, base.longitude)
        assert xmin < x < xmax and ymin < y < ymax, base.base_id


def test_the_map_covers_the_requested_area(street_map, frame):
    xmin, ymin, xmax, ymax = street_map.bounds
    south_west = enu(frame, 51.525, -0.155)
    north_east = enu(frame, 51.575, -0.060)
    assert xmin < south_west[0] + 300 and ymin < south_west[1] + 300
    assert xmax > north_east[0] - 300 and ymax > north_east[1] - 300


def test_the_street_graph_is_connected(street_map):
    assert street_map.largest_component_fraction > 0.95
    assert street_map.is_connected and street_map.warnings == ()
    assert street_map.node_count > 100
    degrees = [street_map.degree(n) for n in range(street_map.node_count)]
    assert sum(d >= 3 for d in degrees) > 80        # junctions, not just road ends


def test_highbury_corner_is_a_signalised_junction_of_its_streets(street_map, frame):
    node = street_map.nearest_node(enu(frame, 51.5462, -0.1038))
    assert street_map.degree(node) >= 3
    assert street_map.is_signalised(node)
    assert {"Upper Street", "Holloway Road", "St Paul's Road"} <= set(street_map.signal_groups(node))
    assert set(street_map.neighbours(node)) == {
        edge.v if edge.u == node else edge.u for edge in (street_map.edges[k]
                                                         for k in street_map.incident_edges(node))}


def test_neighbours_are_mutual(street_map):
    for node in range(street_map.node_count):
        for other in street_map.neighbours(node):
            assert node in street_map.neighbours(other)


def test_a_route_follows_the_roads_from_node_to_node(street_map, frame):
    start = street_map.nearest_node(enu(frame, 51.5305, -0.1225))    # King's Cross
    end = street_map.nearest_node(enu(frame, 51.5620, -0.0757))      # Stoke Newington Church Street
    route = street_map.route(start, end)
    assert np.allclose(route[0], street_map.nodes[start]) and np.allclose(route[-1], street_map.nodes[end])
    roads = [road.line for road in street_map.roads]
    tolerance = street_map.config.snap_tolerance_m
    # Every vertex and every segment midpoint lies on a road.
    points = np.array(route)
    samples = np.vstack([points, (points[1:] + points[:-1]) / 2])
    nearest = np.min(shapely.distance(shapely.points(samples)[:, None], np.array(roads)[None, :]), axis=1)
    assert nearest.max() <= tolerance
    length = float(np.sum(np.hypot(*np.diff(points, axis=0).T)))
    straight = float(np.hypot(*(points[-1] - points[0])))
    assert straight < length < 1.6 * straight


def test_a_route_is_the_shortest_of_the_alternatives(street_map):
    start, end = 0, street_map.node_count - 1
    steps = street_map.route_steps(start, end)
    total = sum(step.length_m for step in steps)
    # No neighbour of the start offers a shorter way.
    for k in street_map.incident_edges(start):
        edge = street_map.edges[k]
        other = edge.v if edge.u == start else edge.u
        via = edge.length_m + sum(step.length_m for step in street_map.route_steps(other, end))
        assert total <= via + 1e-6


def test_route_between_places_part_way_along_roads(street_map, frame):
    a = street_map.locate(enu(frame, 51.5395, -0.1027))    # Upper Street
    b = street_map.locate(enu(frame, 51.5600, -0.1235))    # Holloway Road, north of the Nag's Head
    assert a.distance_m < 20 and b.distance_m < 20
    steps = street_map.route_between(a, b)
    polyline = street_map.steps_polyline(steps)
    assert np.allclose(polyline[0], a.point) and np.allclose(polyline[-1], b.point)
    names = [street_map.edge_road(step.edge).name for step in steps]
    assert names[0] == "Upper Street" and names[-1] == "Holloway Road"
    same_edge = street_map.route_between(a, street_map.location_on_edge(a.edge, a.along_m + 5.0))
    assert len(same_edge) == 1 and same_edge[0].length_m == pytest.approx(5.0, abs=1e-6)


def test_step_points_run_in_the_direction_of_travel(street_map):
    edge = street_map.edges[0]
    forward = street_map.step_points(EdgeStep(0, 0.0, edge.length_m))
    backward = street_map.step_points(EdgeStep(0, edge.length_m, 0.0))
    assert np.allclose(forward, backward[::-1])
    assert np.allclose(forward[0], street_map.nodes[edge.u]) and np.allclose(forward[-1], street_map.nodes[edge.v])


# ------------------------------------------------------------- small made maps
def road(name, coords, road_class="residential", width=8.0, limit=8.94):
    return Road(name, road_class, shapely.LineString(coords), width, limit)


def test_crossing_roads_meet_at_a_node(frame):
    made = StreetMap(frame, [road("A", [(-100, 0), (100, 0)]), road("B", [(0, -100), (0, 100)])])
    centre = made.nearest_node((0, 0))
    assert np.allclose(made.nodes[centre], (0, 0))
    assert made.degree(centre) == 4
    assert len(made.edges) == 4
    assert not made.is_signalised(centre)           # two residential streets: no lights


def test_an_end_within_the_snap_tolerance_joins_the_road(frame):
    made = StreetMap(frame, [road("Main", [(-100, 0), (100, 0)], "primary"),
                             road("Side", [(0, 0.6), (0, 100)])], config=StreetMapConfig(snap_tolerance_m=1.0))
    junction = made.nearest_node((0, 0))
    assert made.degree(junction) == 3
    assert made.is_signalised(junction)
    assert made.signal_groups(junction) == ("Main", "Side")    # the main road first
    side_edge = next(k for k in made.incident_edges(junction) if made.edge_road(k).name == "Side")
    assert made.approach_group(junction, side_edge) == 1


def test_an_end_beyond_the_tolerance_stays_apart_and_is_reported(frame):
    made = StreetMap(frame, [road("Main", [(-100, 0), (100, 0)]), road("Side", [(0, 3.0), (0, 100)])],
                     source="made")
    assert not made.is_connected
    assert made.largest_component_fraction == pytest.approx(0.5)
    assert "2 separate parts" in made.warnings[0]
    with pytest.raises(NoRouteError):
        made.route(made.nearest_node((-100, 0)), made.nearest_node((0, 100)))


def test_a_road_that_loops_back_to_its_start_is_split(frame):
    made = StreetMap(frame, [road("Crescent", [(0, 0), (50, 0), (50, 50), (0, 50), (0, 0)])])
    assert all(edge.u != edge.v for edge in made.edges)
    assert len(made.edges) == 2


# -------------------------------------------------------------- bad map files
def feature(kind="road", geometry=None, **properties):
    geometry = geometry or {"type": "LineString", "coordinates": [[-0.11, 51.53], [-0.10, 51.54]]}
    return {"type": "Feature", "properties": {"kind": kind, **properties}, "geometry": geometry}


GOOD_ROAD = feature(name="Good Road", road_class="residential")


@pytest.mark.parametrize("content, expected", [
    ({"type": "Feature"}, "expected a GeoJSON FeatureCollection, got 'Feature'"),
    ([], "expected a GeoJSON FeatureCollection"),
    ({"type": "FeatureCollection", "features": {}}, "'features' must be a list"),
    ({"type": "FeatureCollection", "features": []}, "no road features"),
    ({"type": "FeatureCollection", "features": [GOOD_ROAD, feature("river", name="Fleet")]},
     "features[1] (Fleet): kind 'river' is not one of road, park"),
    ({"type": "FeatureCollection", "features": [GOOD_ROAD, "road"]}, "features[1]: expected a GeoJSON Feature"),
    ({"type": "FeatureCollection", "features": [feature(road_class="residential")]},
     "features[0]: a road needs a non-empty 'name'"),
    ({"type": "FeatureCollection", "features": [feature(name="X", road_class="motorway")]},
     "features[0] (X): road_class 'motorway' is not one of primary, secondary, residential"),
    ({"type": "FeatureCollection", "features": [feature(name="X", road_class="primary", lanes=2)]},
     "features[0] (X): unknown properties lanes"),
    ({"type": "FeatureCollection", "features": [feature(name="X", road_class="primary", width_m=0.5)]},
     "features[0] (X): width_m 0.5 is out of range"),
    ({"type": "FeatureCollection", "features": [feature(name="X", road_class="primary", speed_limit_m_s="fast")]},
     "features[0] (X): speed_limit_m_s must be a finite number, got 'fast'"),
    ({"type": "FeatureCollection", "features": [feature(
        name="X", road_class="primary", geometry={"type": "LineString", "coordinates": [[-0.11, 51.53]]})]},
     "features[0] (X): expected a list of at least 2"),
    ({"type": "FeatureCollection", "features": [feature(
        name="X", road_class="primary",
        geometry={"type": "LineString", "coordinates": [[-0.11, 51.53], [-0.11, 51.53]]})]},
     "features[0] (X): a road needs at least two distinct positions"),
    ({"type": "FeatureCollection", "features": [feature(
        name="X", road_class="primary", geometry={"type": "Point", "coordinates": [-0.11, 51.53]})]},
     "features[0] (X): a road must be a LineString, got 'Point'"),
    ({"type": "FeatureCollection", "features": [feature(
        name="X", road_class="primary", geometry={"type": "LineString", "coordinates": [[-0.11, 51.53], [-0.1, 95]]})]},
     "features[0] (X): coordinate 1 is not a longitude, latitude"),
    ({"type": "FeatureCollection", "features": [GOOD_ROAD, feature(
        "park", name="Square", geometry={"type": "Polygon", "coordinates": [
            [[-0.11, 51.53], [-0.10, 51.53], [-0.10, 51.54], [-0.11, 51.54]]]})]},
     "features[1] (Square): ring 0 is not closed"),
    ({"type": "FeatureCollection", "features": [GOOD_ROAD, feature(
        "park", name="Bow", geometry={"type": "Polygon", "coordinates": [
            [[-0.11, 51.53], [-0.10, 51.54], [-0.10, 51.53], [-0.11, 51.54], [-0.11, 51.53]]]})]},
     "features[1] (Bow): not a valid polygon: Self-intersection"),
    ({"type": "FeatureCollection", "features": [GOOD_ROAD, feature("park", name="Line", road_class="x")]},
     "features[1] (Line): unknown properties road_class"),
])
def test_bad_files_are_refused_naming_the_feature(tmp_path, frame, content, expected):
    path = tmp_path / "map.geojson"
    path.write_text(json.dumps(content))
    with pytest.raises(StreetMapError) as err:
        load_street_map(path, frame)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_a_nan_coordinate_is_refused(tmp_path, frame):
    path = tmp_path / "map.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
                    '{"kind": "road", "name": "X", "road_class": "primary"}, "geometry": '
                    '{"type": "LineString", "coordinates": [[-0.11, 51.53], [NaN, 51.54]]}}]}')
    with pytest.raises(StreetMapError, match=r"features\[0\] \(X\): coordinate 1 is not finite"):
        load_street_map(path, frame)


def test_missing_and_malformed_files_are_refused(tmp_path, frame):
    with pytest.raises(StreetMapError, match="cannot read street map"):
        load_street_map(tmp_path / "absent.geojson", frame)
    path = tmp_path / "broken.geojson"
    path.write_text("{not json")
    with pytest.raises(StreetMapError, match="not valid JSON"):
        load_street_map(path, frame)


def test_defaults_come_from_the_road_class(tmp_path, frame):
    path = tmp_path / "map.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature(name="A", road_class="primary"), feature(name="B", road_class="residential", width_m=6.0,
                                                         speed_limit_m_s=4.5)]}))
    config = StreetMapConfig()
    made = load_street_map(path, frame, config)
    a, b = made.roads
    assert a.width_m == config.default_width_m["primary"]
    assert a.speed_limit_m_s == config.default_speed_limit_m_s["primary"]
    assert (b.width_m, b.speed_limit_m_s) == (6.0, 4.5)


# ------------------------------------------------------------------ buildings
def test_buildings_are_generated_quickly_and_in_numbers(built):
    with_buildings, seconds = built
    assert len(with_buildings.buildings) > 5000
    assert len(with_buildings.building_heights_m) == len(with_buildings.buildings)
    assert seconds < 3.0
    lo, hi = BuildingConfig().height_m
    assert all(lo <= h <= hi for h in with_buildings.building_heights_m)


def test_buildings_keep_off_roads_parks_and_each_other(built):
    with_buildings, _ = built
    buildings = np.array(with_buildings.buildings, dtype=object)
    carriageways = [r.line.buffer(r.width_m / 2) for r in with_buildings.roads]
    on_road, _ = STRtree(carriageways).query(buildings, predicate="intersects")
    assert len(on_road) == 0
    in_park, _ = STRtree(list(with_buildings.parks)).query(buildings, predicate="intersects")
    assert len(in_park) == 0
    left, right = STRtree(buildings).query(buildings, predicate="intersects")
    assert np.all(left == right)


def test_buildings_are_rectangles_set_back_from_the_road(built):
    with_buildings, _ = built
    setback = BuildingConfig().setback_m
    sample = with_buildings.buildings[::97]
    for footprint in sample:
        assert len(footprint.exterior.coords) == 5
        assert footprint.area == pytest.approx(footprint.minimum_rotated_rectangle.area, rel=1e-6)
        clearance = min(r.line.distance(footprint) - r.width_m / 2 for r in with_buildings.roads)
        assert clearance >= min(setback, BuildingConfig().clearance_m) - 0.05


def test_buildings_are_the_same_for_a_seed_and_differ_between_seeds(street_map, built):
    with_buildings, _ = built
    small = BuildingConfig(rows=1)
    once = generate_buildings(street_map, seed=5, config=small)
    again = generate_buildings(street_map, seed=5, config=small)
    other = generate_buildings(street_map, seed=6, config=small)
    assert [b.wkb for b in once.buildings] == [b.wkb for b in again.buildings]
    assert once.building_heights_m == again.building_heights_m
    assert [b.wkb for b in once.buildings] != [b.wkb for b in other.buildings]
    # The graph is shared, not rebuilt, and the map without buildings is left as it was.
    assert with_buildings.edges is street_map.edges
    assert street_map.buildings == ()


def test_buildings_fill_both_sides_of_a_street(built, frame):
    with_buildings, _ = built
    upper_street = next(r for r in with_buildings.roads if r.name == "Upper Street")
    near = [b for b in with_buildings.buildings if upper_street.line.distance(b) < upper_street.width_m / 2 + 8]
    sides = {math.copysign(1.0, _side_of(upper_street.line, b.centroid)) for b in near}
    assert len(near) > 40 and sides == {1.0, -1.0}


def _side_of(line, point):
    along = line.project(point)
    a = np.asarray(line.interpolate(max(along - 1, 0)).coords[0])
    b = np.asarray(line.interpolate(min(along + 1, line.length)).coords[0])
    p = np.asarray(point.coords[0])
    (ux, uy), (wx, wy) = b - a, p - a
    return float(ux * wy - uy * wx)
