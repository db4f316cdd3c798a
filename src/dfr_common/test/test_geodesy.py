"""Unit tests of dfr_common.geodesy: local ENU frames and ground distance."""
from __future__ import annotations

import math

import numpy as np
import pytest
from pymap3d.vincenty import vdist

from dfr_common.geodesy import GeoPoint, LocalFrame, ground_distance_m

# Islington police station, on the ground (30 m AMSL + 46 m geoid undulation).
ISLINGTON = GeoPoint(51.5338, -0.1109, 76.0)
KENTISH_TOWN = (51.5497, -0.1420)
HEATHROW = (51.4700, -0.4543)
CITY = (51.5155, -0.0922)

# Offsets of up to 5 km horizontally and a few hundred metres vertically.
ENU_OFFSETS = [
    (0.0, 0.0, 0.0),
    (1.0, 0.0, 0.0),
    (0.0, -1.0, 0.0),
    (5000.0, 0.0, 0.0),
    (0.0, 5000.0, 0.0),
    (-5000.0, -5000.0, 120.0),
    (3210.5, -4321.25, 60.0),
    (-4999.0, 2500.0, -30.0),
    (12.345, 67.89, 400.0),
]


@pytest.fixture
def frame() -> LocalFrame:
    return LocalFrame(ISLINGTON)


# --- GeoPoint ---------------------------------------------------------------------------------------------------


def test_geopoint_defaults_altitude_to_zero():
    assert GeoPoint(51.0, -0.1).altitude == 0.0


@pytest.mark.parametrize(("lat", "lon", "finite"), [
    (51.5, -0.1, True),
    (math.nan, -0.1, False),
    (51.5, math.inf, False),
    (-math.inf, 0.0, False),
])
def test_geopoint_has_position_checks_latitude_and_longitude(lat, lon, finite):
    assert GeoPoint(lat, lon).has_position() is finite


# --- LocalFrame -------------------------------------------------------------------------------------------------


def test_origin_maps_to_zero(frame):
    np.testing.assert_allclose(frame.point_to_enu(ISLINGTON), [0.0, 0.0, 0.0], atol=1e-6)
    origin = frame.enu_to_point((0.0, 0.0, 0.0))
    assert origin.latitude == pytest.approx(ISLINGTON.latitude, abs=1e-12)
    assert origin.longitude == pytest.approx(ISLINGTON.longitude, abs=1e-12)
    assert origin.altitude == pytest.approx(ISLINGTON.altitude, abs=1e-6)


@pytest.mark.parametrize("enu", ENU_OFFSETS)
def test_enu_round_trip_to_the_millimetre(frame, enu):
    point = frame.enu_to_point(enu)
    assert isinstance(point, GeoPoint)
    back = frame.point_to_enu(point)
    np.testing.assert_allclose(back, enu, atol=1e-3)


@pytest.mark.parametrize("enu", ENU_OFFSETS)
def test_geodetic_round_trip_to_the_millimetre(frame, enu):
    # Start from a geodetic position, go to ENU and back.
    lat, lon, alt = frame.to_geodetic(*enu)
    east, north, up = frame.to_enu(lat, lon, alt)
    lat2, lon2, alt2 = frame.to_geodetic(east, north, up)
    # 1e-8 degree of latitude is about 1 mm.
    assert float(lat2) == pytest.approx(float(lat), abs=1e-8)
    assert float(lon2) == pytest.approx(float(lon), abs=1e-8)
    assert float(alt2) == pytest.approx(float(alt), abs=1e-3)


def test_enu_axes_point_east_north_and_up(frame):
    east = frame.enu_to_point((1000.0, 0.0, 0.0))
    north = frame.enu_to_point((0.0, 1000.0, 0.0))
    up = frame.enu_to_point((0.0, 0.0, 100.0))
    assert east.longitude > ISLINGTON.longitude
    assert east.latitude == pytest.approx(ISLINGTON.latitude, abs=1e-6)
    assert north.latitude > ISLINGTON.latitude
    assert north.longitude == pytest.approx(ISLINGTON.longitude, abs=1e-9)
    assert up.altitude == pytest.approx(ISLINGTON.altitude + 100.0, abs=1e-6)
    # 1 km north is about 1/111.2 of a degree of latitude at 51.5 N.
    assert north.latitude - ISLINGTON.latitude == pytest.approx(1000.0 / 111_250.0, rel=2e-3)


def test_to_enu_altitude_defaults_to_the_origin_altitude(frame):
    east, north, up = frame.to_enu(ISLINGTON.latitude, ISLINGTON.longitude)
    assert (float(east), float(north), float(up)) == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    _, _, up_ground = frame.to_enu(ISLINGTON.latitude, ISLINGTON.longitude, 0.0)
    assert float(up_ground) == pytest.approx(-ISLINGTON.altitude, abs=1e-6)


def test_to_enu_accepts_arrays(frame):
    lats = np.array([ISLINGTON.latitude, KENTISH_TOWN[0]])
    lons = np.array([ISLINGTON.longitude, KENTISH_TOWN[1]])
    east, north, _ = frame.to_enu(lats, lons)
    assert east.shape == (2,)
    assert east[0] == pytest.approx(0.0, abs=1e-6)
    assert east[1] < 0.0 and north[1] > 0.0       # Kentish Town lies north-west of Islington


@pytest.mark.parametrize("origin", [
    GeoPoint(math.nan, -0.1, 0.0),
    GeoPoint(51.5, math.nan, 0.0),
    GeoPoint(math.inf, -0.1, 0.0),
    GeoPoint(51.5, -math.inf, 0.0),
    GeoPoint(51.5, -0.1, math.nan),
    GeoPoint(51.5, -0.1, math.inf),
])
def test_non_finite_origin_is_rejected(origin):
    with pytest.raises(ValueError, match="must be finite"):
        LocalFrame(origin)


# --- ground_distance_m ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "rel"), [
    ((ISLINGTON.latitude, ISLINGTON.longitude), KENTISH_TOWN, 1e-6),       # about 2.8 km
    ((ISLINGTON.latitude, ISLINGTON.longitude), (51.5412, -0.1027), 1e-6),  # about 1 km
    (HEATHROW, CITY, 1e-4),                                                 # about 25.7 km
])
def test_ground_distance_matches_the_vincenty_geodesic(a, b, rel):
    expected, _ = vdist(a[0], a[1], b[0], b[1])
    got = ground_distance_m(a[0], a[1], b[0], b[1])
    assert float(got) == pytest.approx(float(expected), rel=rel)


def test_ground_distance_known_value_islington_to_kentish_town():
    # Vincenty on WGS 84 gives 2790.117 m; the tangent-plane value must agree to a millimetre.
    assert float(ground_distance_m(51.5338, -0.1109, 51.5497, -0.1420)) == pytest.approx(2790.117, abs=2e-3)


def test_ground_distance_is_zero_to_self_and_symmetric():
    assert float(ground_distance_m(*KENTISH_TOWN, *KENTISH_TOWN)) == pytest.approx(0.0, abs=1e-9)
    there = float(ground_distance_m(*HEATHROW, *CITY))
    back = float(ground_distance_m(*CITY, *HEATHROW))
    assert there == pytest.approx(back, rel=1e-5)


def test_ground_distance_broadcasts_arrays():
    lats = np.array([ISLINGTON.latitude, KENTISH_TOWN[0], math.nan])
    lons = np.array([ISLINGTON.longitude, KENTISH_TOWN[1], 0.0])
    d = ground_distance_m(lats, lons, ISLINGTON.latitude, ISLINGTON.longitude)
    assert d.shape == (3,)
    assert d[0] == pytest.approx(0.0, abs=1e-6)
    assert d[1] == pytest.approx(2790.117, abs=2e-3)
    assert math.isnan(d[2])


def test_ground_distance_ignores_altitude_one_degree_of_latitude():
    # One degree of latitude at 51.5 N is about 111.25 km along the meridian.
    expected, _ = vdist(51.0, -0.1, 52.0, -0.1)
    assert float(ground_distance_m(51.0, -0.1, 52.0, -0.1)) == pytest.approx(float(expected), rel=1e-3)
    assert float(expected) == pytest.approx(111_250.0, rel=2e-3)


@pytest.mark.parametrize("east, north, up", [(0.0, 0.0, 0.0), (5000.0, -3000.0, 120.0), (-20000.0, 15000.0, 2.5),
                                             (12.5, 0.3, -40.0)])
def test_single_points_take_a_closed_form_that_agrees_with_pymap3d(east, north, up):
    import pymap3d
    frame = LocalFrame(GeoPoint(51.5338, -0.1109, 76.0))
    lat, lon, alt = frame.to_geodetic(east, north, up)
    ref = pymap3d.enu2geodetic(east, north, up, 51.5338, -0.1109, 76.0)
    assert (lat, lon) == pytest.approx(ref[:2], abs=1e-9)      # 0.1 mm
    assert alt == pytest.approx(ref[2], abs=1e-4)
    back = frame.to_enu(lat, lon, alt)
    assert back == pytest.approx((east, north, up), abs=1e-4)
    assert back == pytest.approx(pymap3d.geodetic2enu(lat, lon, alt, 51.5338, -0.1109, 76.0), abs=1e-4)
