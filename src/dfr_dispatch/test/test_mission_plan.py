"""Unit tests of dfr_dispatch.mission_plan: the direct out-hold-back plan."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_dispatch.mission_plan import DirectPlan, PlanConfig, PlannedPoint, plan_direct, plan_mission

HOME = GeoPoint(51.5338, -0.1109, 76.0)     # a dock at Islington police station, ellipsoid height
FRAME = LocalFrame(HOME)
CONFIG = PlanConfig()


def scene_at(east: float, north: float) -> tuple[float, float]:
    lat, lon, _ = FRAME.to_geodetic(east, north, 0.0)
    return float(lat), float(lon)


def enu_of(point: PlannedPoint) -> np.ndarray:
    east, north, _ = FRAME.to_enu(point.latitude, point.longitude)
    return np.array([float(east), float(north)])


def test_default_config():
    assert CONFIG == PlanConfig(cruise_altitude_m=60.0, cruise_speed_m_s=15.0, standoff_radius_m=40.0,
                                on_scene_duration_s=120.0)


@pytest.mark.parametrize(("east", "north"), [
    (1000.0, 0.0), (0.0, -1000.0), (-600.0, 800.0), (2500.0, 2500.0), (41.0, 0.0), (-3000.0, -4000.0)])
def test_hold_point_is_standoff_short_of_the_scene_on_the_base_scene_line(east, north):
    plan = plan_direct(HOME, *scene_at(east, north), CONFIG)
    assert isinstance(plan, DirectPlan)
    assert len(plan.route) == 1
    hold = enu_of(plan.route[0])
    # The scene as the planner sees it: its horizontal ENU offset at the home's altitude.
    scene = enu_of(PlannedPoint(*scene_at(east, north), 0.0))
    assert scene == pytest.approx([east, north], abs=5e-3)
    distance = float(np.linalg.norm(scene))
    # Stand-off from the scene, in metres. The planner places the hold point in the tangent plane and
    # this test measures it on the home's altitude surface: a few millimetres apart at 5 km.
    assert float(np.linalg.norm(scene - hold)) == pytest.approx(40.0, abs=5e-3)
    # On the line from home to the scene, between the two.
    assert float(np.linalg.norm(hold)) == pytest.approx(distance - 40.0, abs=5e-3)
    cross = scene[0] * hold[1] - scene[1] * hold[0]
    assert abs(cross) / distance < 1e-3
    assert float(np.dot(hold, scene)) >= 0.0
    assert plan.distance_m == pytest.approx(distance - 40.0, abs=1e-6)


def test_hold_point_of_the_real_scene():
    # Upper Street from Islington police station: about 1000.8 m north-east.
    plan = plan_direct(HOME, 51.5412, -0.1027, CONFIG)
    hold = enu_of(plan.route[0])
    scene_east, scene_north, _ = FRAME.to_enu(51.5412, -0.1027)
    scene = np.array([float(scene_east), float(scene_north)])
    assert float(np.linalg.norm(scene)) == pytest.approx(1000.77, abs=0.05)
    assert float(np.linalg.norm(scene - hold)) == pytest.approx(40.0, abs=1e-3)
    assert plan.distance_m == pytest.approx(960.77, abs=0.05)
    assert plan.route[0].latitude > HOME.latitude and plan.route[0].longitude > HOME.longitude


def test_standoff_comes_from_the_config():
    plan = plan_direct(HOME, *scene_at(0.0, 500.0), PlanConfig(standoff_radius_m=100.0))
    assert enu_of(plan.route[0]) == pytest.approx([0.0, 400.0], abs=1e-3)
    assert plan.distance_m == pytest.approx(400.0, abs=1e-3)


@pytest.mark.parametrize(("east", "north"), [(20.0, 0.0), (0.0, -39.9), (-10.0, 10.0), (0.0, 0.0), (40.0, 0.0)])
def test_scene_within_the_standoff_holds_over_home(east, north):
    # Closer than the stand-off, the vehicle holds over its own dock: distance to fly is 0.
    plan = plan_direct(HOME, *scene_at(east, north), CONFIG)
    hold = plan.route[0]
    assert hold.latitude == pytest.approx(HOME.latitude, abs=1e-9)
    assert hold.longitude == pytest.approx(HOME.longitude, abs=1e-9)
    assert enu_of(hold) == pytest.approx([0.0, 0.0], abs=1e-3)
    assert plan.distance_m == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("altitude", [30.0, 60.0, 119.5])
def test_route_and_return_route_at_the_cruise_altitude(altitude):
    plan = plan_direct(HOME, *scene_at(700.0, -300.0), PlanConfig(cruise_altitude_m=altitude))
    assert [p.altitude_rel_m for p in plan.route] == [altitude]
    assert [p.altitude_rel_m for p in plan.return_route] == [altitude]


def test_return_route_ends_over_home():
    plan = plan_direct(HOME, *scene_at(-1500.0, 900.0), CONFIG)
    assert plan.return_route[-1] == PlannedPoint(HOME.latitude, HOME.longitude, CONFIG.cruise_altitude_m)


def test_planned_points_are_plain_floats():
    plan = plan_direct(HOME, *scene_at(300.0, 400.0), CONFIG)
    for point in plan.route + plan.return_route:
        assert type(point.latitude) is float and type(point.longitude) is float
    assert plan.distance_m == pytest.approx(460.0, abs=1e-3)


def test_home_altitude_barely_moves_the_hold_point():
    # Metres at 300 m above the ellipsoid span slightly smaller angles: a few centimetres at 1 km.
    lat, lon = scene_at(800.0, 600.0)
    low = plan_direct(GeoPoint(HOME.latitude, HOME.longitude, 0.0), lat, lon, CONFIG)
    high = plan_direct(GeoPoint(HOME.latitude, HOME.longitude, 300.0), lat, lon, CONFIG)
    assert low.route[0].latitude == pytest.approx(high.route[0].latitude, abs=1e-6)
    assert low.route[0].longitude == pytest.approx(high.route[0].longitude, abs=1e-6)


def test_non_finite_home_is_rejected():
    with pytest.raises(ValueError, match="finite"):
        plan_direct(GeoPoint(math.nan, -0.1, 0.0), 51.5, -0.1, CONFIG)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize(("lat", "lon"), [(math.nan, -0.1), (51.5, math.nan), (math.inf, -0.1)])
def test_non_finite_scene_is_rejected(lat, lon):
    with pytest.raises(ValueError):
        plan_direct(HOME, lat, lon, CONFIG)



# ------------------------------------------------------------------ with the airspace model
def london_airspace(permissions=frozenset()):
    from dfr_dispatch.airspace import Airspace, load_restrictions
    restrictions = load_restrictions(Path(__file__).resolve().parents[3] / "config" / "airspace"
                                     / "london_restrictions.geojson")
    return Airspace(restrictions, LocalFrame(HOME), permissions)


def test_a_plan_by_the_airspace_keeps_out_of_no_fly_areas_both_ways():
    import shapely
    airspace = london_airspace()
    plan = plan_mission(HOME, 51.515, -0.075, CONFIG, airspace)        # east of the City, across R158
    for route, start in ((plan.route, HOME), (plan.return_route, plan.route[-1])):
        line = shapely.LineString([airspace.enu_of((start.latitude, start.longitude))[:2]]
                                  + [airspace.enu_of((p.latitude, p.longitude))[:2] for p in route])
        assert not any(line.intersects(zone) for zone in airspace.zones)
    assert all(60.0 <= p.altitude_rel_m <= 120.0 for p in plan.route + plan.return_route)
    assert plan.notes == ()


def test_an_incident_inside_a_no_fly_area_is_answered_from_its_edge_and_the_plan_says_so():
    plan = plan_mission(HOME, 51.515, -0.09, CONFIG, london_airspace())    # the middle of R158
    assert any("R158" in note and "edge" in note for note in plan.notes)
    assert plan_mission(HOME, 51.515, -0.09, CONFIG, london_airspace({"police_permitted"})).notes == ()


@pytest.mark.parametrize("with_airspace", [False, True])
def test_a_retask_is_planned_from_where_the_drone_is_and_still_returns_home(with_airspace):
    import shapely
    airspace = london_airspace() if with_airspace else None
    in_flight = (51.5200, -0.0700)                                    # east of the City, on its way home
    plan = plan_mission(HOME, 51.5150, -0.1050, CONFIG, airspace, start=in_flight)   # west of R158
    first = plan.route[0]
    if airspace is None:
        # one straight leg from the drone's position; the hold lies on that line, short of the scene
        start = np.array(FRAME.to_enu(*in_flight)[:2], dtype=float)
        scene = np.array(FRAME.to_enu(51.5150, -0.1050)[:2], dtype=float)
        hold = enu_of(first)[:2]
        along = (hold - start) @ (scene - start) / np.linalg.norm(scene - start)
        assert along == pytest.approx(np.linalg.norm(scene - start) - CONFIG.standoff_radius_m, abs=0.5)
    else:
        line = shapely.LineString([airspace.enu_of(in_flight)[:2]]
                                  + [airspace.enu_of((p.latitude, p.longitude))[:2] for p in plan.route])
        assert not any(line.intersects(zone) for zone in airspace.zones)
        assert len(plan.route) >= 2                                   # around the City, not through it
    last = plan.return_route[-1]
    assert (last.latitude, last.longitude) == pytest.approx((HOME.latitude, HOME.longitude), abs=1e-6)
