"""Geolocation: boxes made by projecting known objects come back to where the objects stand,
the reported uncertainty covers a degree of attitude error, lengths on the ground tell a
two-wheeler from a car and a person, and ground velocity comes out of noisy positions."""
import math

import numpy as np
import pytest

from dfr_common.camera_geometry import (
    gimbal_to_world_rotation,
    ground_points_of_pixels,
    project_points,
    rot_x,
    rot_y,
    rot_z,
)
from dfr_common.geodesy import GeoPoint, LocalFrame
from dfr_perception.geolocation import (
    GeolocationConfig,
    GroundTrackSmoother,
    SmootherConfig,
    box_foot_pixels,
    geolocate_boxes,
    ground_size_m,
    ground_to_wgs84,
)

FX = 600.0
K = np.array([[FX, 0.0, 639.5], [0.0, FX, 359.5], [0.0, 0.0, 1.0]])
WIDTH, HEIGHT = 1280, 720
PERFECT = GeolocationConfig(attitude_error_deg=0.0, position_error_m=0.0, height_error_m=0.0, pixel_error_px=0.0)


def prism_box(position, rotation, xy, heading=0.0, length=0.0, width=0.0, height=1.7, pad_px=0.0):
    """The image box of an upright box-shaped object standing at xy: its eight corners' bounds."""
    c, s = math.cos(heading), math.sin(heading)
    corners = []
    for a in (-0.5, 0.5):
        for b in (-0.5, 0.5):
            for z in (0.0, height):
                corners.append((xy[0] + a * length * c - b * width * s, xy[1] + a * length * s + b * width * c, z))
    uv = project_points(K, position, rotation, corners)
    assert np.all(np.isfinite(uv))
    return [uv[:, 0].min() - pad_px, uv[:, 1].min(), uv[:, 0].max() + pad_px, uv[:, 1].max()]


def random_poses(rng, count, pitch_range=(-89.0, -25.0)):
    for _ in range(count):
        position = np.array([*rng.uniform(-100, 100, 2), rng.uniform(30, 120)])
        rotation = gimbal_to_world_rotation(rng.uniform(-math.pi, math.pi), rng.uniform(*pitch_range),
                                            0.0, rng.uniform(-30, 30))
        yield position, rotation


def points_in_view(rng, position, rotation, count):
    """Ground points whose pixels fall well inside the image."""
    uv = np.column_stack([rng.uniform(100, WIDTH - 100, count), rng.uniform(150, HEIGHT - 60, count)])
    rays = np.linalg.solve(K, np.column_stack([uv, np.ones(count)]).T).T @ rotation.T
    t = -position[2] / rays[:, 2]
    return position[:2] + t[:, None] * rays[:, :2]


def test_thin_upright_objects_geolocate_back_to_centimetres_with_a_perfect_pose():
    rng = np.random.default_rng(1)
    for position, rotation in random_poses(rng, 15):
        truth = points_in_view(rng, position, rotation, 6)
        boxes = [prism_box(position, rotation, p, height=rng.uniform(0.5, 2.0), pad_px=rng.uniform(0, 15))
                 for p in truth]
        ground, uncertainty = geolocate_boxes(K, position, rotation, boxes, PERFECT)
        assert ground == pytest.approx(truth, abs=0.02)
        assert uncertainty == pytest.approx(np.zeros(len(truth)), abs=1e-9)


def test_bottom_centre_for_an_oblique_camera_and_box_centre_right_below_a_nadir_one():
    oblique = gimbal_to_world_rotation(0.4, -30.0)
    assert box_foot_pixels(K, oblique, [(600.0, 300.0, 680.0, 420.0)])[0] == pytest.approx([640.0, 420.0], abs=0.5)
    nadir = gimbal_to_world_rotation(0.4, -90.0)
    assert box_foot_pixels(K, nadir, [(600.0, 300.0, 680.0, 420.0)])[0] == pytest.approx([639.5, 359.5])
    # Off to the right of a nadir view the object leans outwards: its foot is the side nearest the centre.
    foot = box_foot_pixels(K, nadir, [(1000.0, 340.0, 1100.0, 380.0)])[0]
    assert foot[0] == pytest.approx(1000.0) and 340.0 < foot[1] < 380.0


def test_a_car_seen_from_straight_above_geolocates_to_its_middle():
    position, rotation = np.array([10.0, 20.0, 60.0]), gimbal_to_world_rotation(1.0, -90.0)
    box = prism_box(position, rotation, (10.0, 20.0), heading=0.3, length=4.4, width=1.8, height=1.45)
    ground, _ = geolocate_boxes(K, position, rotation, [box], PERFECT)
    assert ground[0] == pytest.approx([10.0, 20.0], abs=0.05)


def test_uncertainty_covers_a_degree_of_attitude_error():
    rng = np.random.default_rng(7)
    config = GeolocationConfig(attitude_error_deg=1.0, position_error_m=0.0, height_error_m=0.0, pixel_error_px=0.0)
    ratios = []
    for position, rotation in random_poses(rng, 40, pitch_range=(-90.0, -30.0)):
        truth = points_in_view(rng, position, rotation, 4)
        boxes = [prism_box(position, rotation, p) for p in truth]
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = math.radians(1.0)
        # Rotation by 1 degree about a random axis (small-angle composition of the three).
        wrong = rot_x(angle * axis[0]) @ rot_y(angle * axis[1]) @ rot_z(angle * axis[2]) @ rotation
        ground, uncertainty = geolocate_boxes(K, position, wrong, boxes, config)
        error = np.linalg.norm(ground - truth, axis=1)
        assert np.all(error <= uncertainty), (error, uncertainty)
        ratios.extend(error / uncertainty)
    assert np.median(ratios) > 0.2          # covering, not by an absurd margin


def test_uncertainty_grows_with_range_and_counts_every_error():
    rotation = gimbal_to_world_rotation(0.0, -45.0)
    boxes = [(630.0, 100.0, 650.0, 200.0), (630.0, 500.0, 650.0, 600.0)]      # far (upper) and near (lower)
    _, uncertainty = geolocate_boxes(K, (0.0, 0.0, 50.0), rotation, boxes)
    assert uncertainty[0] > uncertainty[1] > 0.0
    only_position = GeolocationConfig(attitude_error_deg=0.0, position_error_m=2.0, height_error_m=0.0,
                                      pixel_error_px=0.0)
    _, uncertainty = geolocate_boxes(K, (0.0, 0.0, 50.0), rotation, boxes, only_position)
    assert uncertainty == pytest.approx([2.0, 2.0])


def test_boxes_above_the_horizon_or_too_far_are_not_placed():
    level = gimbal_to_world_rotation(0.0, -2.0)
    boxes = [(630.0, 300.0, 650.0, 335.0),         # foot above the horizon (row 338.5)
             (630.0, 300.0, 650.0, 345.0),         # just below it: kilometres away
             (630.0, 650.0, 650.0, 700.0)]         # near
    ground, uncertainty = geolocate_boxes(K, (0.0, 0.0, 50.0), level, boxes)
    assert np.isnan(ground[0]).all() and np.isnan(uncertainty[0])
    assert np.isnan(ground[1]).all() and np.isnan(uncertainty[1])
    assert np.isfinite(ground[2]).all() and np.isfinite(uncertainty[2])
    # A grazing ray that a degree of error lifts over the horizon is placed but infinitely uncertain.
    wide = GeolocationConfig(max_range_m=1e6)
    ground, uncertainty = geolocate_boxes(K, (0.0, 0.0, 50.0), level, [(630.0, 300.0, 650.0, 345.0)], wide)
    assert np.isfinite(ground[0]).all() and math.isinf(uncertainty[0])


def test_ground_points_go_onto_the_map_in_wgs84():
    frame = LocalFrame(GeoPoint(51.5363, -0.1027, 30.0))
    lat_lon = ground_to_wgs84(frame, [(0.0, 0.0), (100.0, 0.0), (np.nan, np.nan)])
    assert lat_lon[0] == pytest.approx([51.5363, -0.1027], abs=1e-9)
    east, north, _ = frame.to_enu(float(lat_lon[1, 0]), float(lat_lon[1, 1]))
    assert (east, north) == pytest.approx((100.0, 0.0), abs=1e-3)
    assert np.isnan(lat_lon[2]).all()
    assert ground_to_wgs84(frame, np.zeros((0, 2))).shape == (0, 2)


def test_empty_and_bad_input():
    rotation = gimbal_to_world_rotation(0.0, -60.0)
    ground, uncertainty = geolocate_boxes(K, (0.0, 0.0, 50.0), rotation, [])
    assert ground.shape == (0, 2) and uncertainty.shape == (0,)
    assert ground_size_m(K, (0.0, 0.0, 50.0), rotation, np.zeros((0, 4))).shape == (0,)
    with pytest.raises(ValueError, match="N x 4"):
        geolocate_boxes(K, (0.0, 0.0, 50.0), rotation, [(1.0, 2.0, 3.0)])
    with pytest.raises(ValueError, match="finite"):
        geolocate_boxes(K, (0.0, 0.0, 50.0), rotation, [(1.0, 2.0, np.nan, 4.0)])
    with pytest.raises(ValueError, match="u_max >= u_min"):
        geolocate_boxes(K, (0.0, 0.0, 50.0), rotation, [(10.0, 2.0, 3.0, 4.0)])
    with pytest.raises(ValueError, match="camera position"):
        geolocate_boxes(K, (0.0, np.nan, 50.0), rotation, [(1.0, 2.0, 3.0, 4.0)])
    with pytest.raises(ValueError, match="attitude_error_deg"):
        GeolocationConfig(attitude_error_deg=-1.0)


OBJECTS = {                       # length, width, height (as the simulator draws them)
    "two_wheeler": (1.8, 0.55, 1.7),
    "car": (4.4, 1.8, 1.45),
    "person": (0.35, 0.5, 1.75),
}


@pytest.mark.parametrize("pitch, margin_px", [(-90.0, 100), (-60.0, 100), (-35.0, 320)])
def test_ground_length_tells_two_wheelers_cars_and_people_apart(pitch, margin_px):
    # Anywhere in views down to 60 degrees; in the middle of a shallow one (towards its corners
    # axis-aligned boxes of turned objects read long).
    rng = np.random.default_rng(int(-pitch))
    position = np.array([0.0, 0.0, 50.0])
    rotation = gimbal_to_world_rotation(0.3, pitch)
    for kind, (length, width, height) in OBJECTS.items():
        for _ in range(40):
            uv = rng.uniform(margin_px, np.array([WIDTH, HEIGHT]) - margin_px, (1, 2))
            xy = ground_points_of_pixels(K, position, rotation, uv)[0, :2]
            box = prism_box(position, rotation, xy, rng.uniform(-math.pi, math.pi), length, width, height)
            size = ground_size_m(K, position, rotation, [box])[0]
            if kind == "two_wheeler":
                assert 1.4 <= size <= 2.5, (kind, size)
            elif kind == "car":
                assert 3.5 <= size <= 6.0, (kind, size)
            else:
                assert size < 1.0, (kind, size)


def test_ground_length_of_a_bike_seen_from_behind_is_its_length_not_its_rider():
    position = np.array([0.0, -30.0, 40.0])
    rotation = gimbal_to_world_rotation(math.pi / 2, -53.0)        # looking north at a bike riding north
    box = prism_box(position, rotation, (0.0, 0.0), math.pi / 2, 1.8, 0.55, 1.7)
    assert ground_size_m(K, position, rotation, [box])[0] == pytest.approx(1.8, abs=0.25)
    high = GeolocationConfig(max_range_m=10.0)
    assert np.isnan(ground_size_m(K, position, rotation, [box], high)[0])


# --------------------------------------------------------------------------- smoother
def test_smoother_recovers_velocity_from_noisy_positions():
    rng = np.random.default_rng(3)
    smoother = GroundTrackSmoother()
    velocity = np.array([6.0, -2.0])
    for step in range(60):
        t = step * 0.1
        truth = np.array([100.0, 50.0]) + velocity * t
        state = smoother.update("bike", t, truth + rng.normal(0.0, 0.3, 2), 0.45)
    assert state.velocity_xy == pytest.approx(velocity, abs=0.6)
    assert state.position_xy == pytest.approx(truth, abs=0.6)
    assert state.speed_m_s == pytest.approx(math.hypot(6.0, -2.0), abs=0.6)
    assert state.velocity_std_m_s < 1.5 and state.updates == 60
    ahead = smoother.predict("bike", 7.0)
    assert ahead.position_xy == pytest.approx(truth + velocity * 1.1, abs=1.5)


def test_smoother_follows_a_turn():
    smoother = GroundTrackSmoother()
    for step in range(100):
        t = step * 0.1
        heading = 0.1 * t                                    # turning at 0.1 rad/s at 8 m/s
        position = np.array([80.0 * math.sin(heading), 80.0 * (1 - math.cos(heading))])
        state = smoother.update(7, t, position, 0.5)
    assert state.velocity_xy == pytest.approx(8.0 * np.array([math.cos(heading), math.sin(heading)]), abs=0.8)
    assert "7" in smoother and smoother.track_ids == ["7"]


def test_smoother_ignores_old_measurements_and_restarts_after_gaps_and_jumps():
    smoother = GroundTrackSmoother(SmootherConfig(max_gap_s=2.0, max_outliers=3))
    for step in range(20):
        smoother.update("a", step * 0.1, (step * 0.5, 0.0), 0.3)
    before = smoother.predict("a", 1.9)
    late = smoother.update("a", 1.0, (500.0, 500.0), 0.3)
    assert late.position_xy == pytest.approx(before.position_xy) and late.updates == 20
    # One wild position is an outlier, not a move; three in a row are a new track.
    assert smoother.update("a", 2.0, (300.0, 0.0), 0.3).position_xy[0] < 20.0
    smoother.update("a", 2.1, (300.0, 0.0), 0.3)
    jumped = smoother.update("a", 2.2, (300.0, 0.0), 0.3)
    assert jumped.updates == 1 and jumped.position_xy == pytest.approx([300.0, 0.0])
    restarted = smoother.update("a", 10.0, (0.0, 0.0), 0.3)
    assert restarted.updates == 1 and restarted.velocity_xy == pytest.approx([0.0, 0.0])
    assert smoother.prune(30.0) == ["a"] and "a" not in smoother


def test_smoother_rejects_bad_measurements_clearly():
    smoother = GroundTrackSmoother()
    with pytest.raises(ValueError, match="ground position"):
        smoother.update("a", 0.0, (np.nan, 1.0), 0.5)
    with pytest.raises(ValueError, match="ground position"):
        smoother.update("a", 0.0, (1.0, 2.0, 3.0), 0.5)
    with pytest.raises(ValueError, match="uncertainty"):
        smoother.update("a", 0.0, (1.0, 2.0), math.inf)
    with pytest.raises(ValueError, match="stamp"):
        smoother.update("a", math.nan, (1.0, 2.0), 0.5)
    with pytest.raises(KeyError):
        smoother.predict("nobody", 1.0)
