"""Camera geometry: pixels back-projected onto the ground land where the projection put them,
and rays that never reach the ground say so with NaN."""
import math
from types import SimpleNamespace

import numpy as np
import pytest

from dfr_common.camera_geometry import (
    gimbal_to_world_rotation,
    ground_homography,
    ground_points_of_pixels,
    in_image,
    intersect_ground,
    intrinsic_matrix,
    pixel_rays,
    project,
    project_points,
)

NORTH = math.pi / 2
FX = 400.0
K = np.array([[FX, 0.0, 319.5], [0.0, FX, 239.5], [0.0, 0.0, 1.0]])
CAMERA = SimpleNamespace(fx=FX, fy=FX, cx=319.5, cy=239.5, width=640, height=480)


def test_round_trip_ground_points_through_the_image():
    rng = np.random.default_rng(11)
    for _ in range(20):
        position = np.array([*rng.uniform(-200, 200, 2), rng.uniform(10, 150)])
        rotation = gimbal_to_world_rotation(rng.uniform(-math.pi, math.pi), rng.uniform(-90, -20),
                                            rng.uniform(-5, 5), rng.uniform(-180, 180))
        # Ground points spread over the image.
        uv_grid = np.stack(np.meshgrid(np.linspace(0, 639, 7), np.linspace(0, 479, 5)), -1).reshape(-1, 2)
        ground = ground_points_of_pixels(K, position, rotation, uv_grid, max_range_m=1e6)
        seen = np.isfinite(ground[:, 0])
        assert seen.sum() >= 10
        assert np.all(ground[seen, 2] == 0.0)
        uv, visible = project(CAMERA, position, rotation, ground[seen, :2])
        assert visible.all()
        assert uv == pytest.approx(uv_grid[seen], abs=1e-6)
        back = ground_points_of_pixels(K, position, rotation, uv, max_range_m=1e6)
        assert back == pytest.approx(ground[seen], abs=1e-6)


def test_straight_down_camera_sees_the_point_below_at_the_centre():
    rotation = gimbal_to_world_rotation(0.7, -90.0)
    ground = ground_points_of_pixels(K, (0.0, 0.0, 80.0), rotation, [(319.5, 239.5)])
    assert ground[0] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    # Heading north, looking down: image right is east, image up is north.
    ground = ground_points_of_pixels(K, (5.0, 6.0, 80.0), gimbal_to_world_rotation(NORTH, -90.0),
                                     [(319.5 + 40.0, 239.5 - 20.0)])
    assert ground[0] == pytest.approx([5.0 + 80.0 * 40 / FX, 6.0 + 80.0 * 20 / FX, 0.0])


def test_oblique_case_by_hand():
    # Facing north, 30 degrees down from 60 m: the centre ray meets the ground 60 / tan(30) north.
    rotation = gimbal_to_world_rotation(NORTH, -30.0)
    centre = ground_points_of_pixels(K, (0.0, 0.0, 60.0), rotation, [(319.5, 239.5)])
    assert centre[0] == pytest.approx([0.0, 60.0 / math.tan(math.radians(30.0)), 0.0])
    # A row 100 px lower looks atan(100 / fx) further down.
    lower = ground_points_of_pixels(K, (0.0, 0.0, 60.0), rotation, [(319.5, 339.5)])
    depression = math.radians(30.0) + math.atan(100.0 / FX)
    assert lower[0] == pytest.approx([0.0, 60.0 / math.tan(depression), 0.0])
    # A column 100 px right of centre on the centre row: x = range along the axis * 100 / fx.
    right = ground_points_of_pixels(K, (0.0, 0.0, 60.0), rotation, [(419.5, 239.5)])
    slant = 60.0 / math.sin(math.radians(30.0))
    assert right[0] == pytest.approx([slant * 100.0 / FX, 60.0 / math.tan(math.radians(30.0)), 0.0])
    # On a raised ground plane the camera is effectively lower.
    raised = ground_points_of_pixels(K, (0.0, 0.0, 60.0), rotation, [(319.5, 239.5)], ground_z=10.0)
    assert raised[0] == pytest.approx([0.0, 50.0 / math.tan(math.radians(30.0)), 10.0])


def test_rays_at_or_above_the_horizon_or_too_far_give_nan():
    level = gimbal_to_world_rotation(NORTH, 0.0)
    ground = ground_points_of_pixels(K, (0.0, 0.0, 50.0), level, [(319.5, 239.5), (319.5, 100.0), (319.5, 300.0)])
    assert np.isnan(ground[0]).all() and np.isnan(ground[1]).all()     # at and above the horizon
    assert np.isfinite(ground[2]).all()
    # Below the horizon but 5 km away by default is too far; a longer max range reaches it.
    grazing = [(319.5, 239.5 + FX * 50.0 / 8000.0)]
    assert np.isnan(ground_points_of_pixels(K, (0.0, 0.0, 50.0), level, grazing)).all()
    far = ground_points_of_pixels(K, (0.0, 0.0, 50.0), level, grazing, max_range_m=1e5)
    assert far[0, 1] == pytest.approx(8000.0)
    # A camera on or under the ground, and NaN pixels, see no ground.
    assert np.isnan(ground_points_of_pixels(K, (0.0, 0.0, 0.0), gimbal_to_world_rotation(0, -90), [(10, 10)])).all()
    assert np.isnan(ground_points_of_pixels(K, (0.0, 0.0, 50.0), level, [(np.nan, 300.0)])).all()


def test_points_behind_the_camera_do_not_project():
    uv = project_points(K, (0.0, 0.0, 30.0), gimbal_to_world_rotation(NORTH, -10.0), [(0.0, -50.0), (0.0, 200.0)])
    assert np.isnan(uv[0]).all() and np.isfinite(uv[1]).all()
    assert list(in_image(uv, 640, 480)) == [False, True]


def test_pixel_rays_are_unit_and_the_centre_ray_is_the_optical_axis():
    rotation = gimbal_to_world_rotation(0.3, -45.0, 2.0, 10.0)
    rays = pixel_rays(K, rotation, [(319.5, 239.5), (0.0, 0.0), (639.0, 479.0)])
    assert np.linalg.norm(rays, axis=1) == pytest.approx([1.0, 1.0, 1.0])
    assert rays[0] == pytest.approx(rotation[:, 2])


def test_homography_agrees_with_projection_and_takes_k_or_a_camera():
    position, rotation = (5.0, -3.0, 70.0), gimbal_to_world_rotation(0.7, -50.0, 3.0, -12.0)
    pts = np.array([(10.0, 40.0), (-20.0, 80.0), (35.0, 60.0)])
    for intrinsics in (K, K.reshape(-1).tolist(), SimpleNamespace(k=K)):
        uvw = np.hstack([pts, np.ones((3, 1))]) @ ground_homography(intrinsics, position, rotation).T
        assert uvw[:, :2] / uvw[:, 2:] == pytest.approx(project_points(K, position, rotation, pts))


def test_ground_intersection_of_explicit_rays():
    pts = intersect_ground((0.0, 0.0, 10.0), [(1.0, 0.0, -1.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
    assert pts[0] == pytest.approx([10.0, 0.0, 0.0])
    assert np.isnan(pts[1:]).all()


def test_bad_arguments_are_refused_clearly():
    rotation = gimbal_to_world_rotation(0.0, -90.0)
    with pytest.raises(ValueError, match="intrinsic matrix"):
        intrinsic_matrix(np.eye(2))
    with pytest.raises(ValueError, match="fx, fy > 0"):
        intrinsic_matrix(np.diag([-1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="non-finite"):
        intrinsic_matrix(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="camera position"):
        ground_points_of_pixels(K, (0.0, np.nan, 10.0), rotation, [(1.0, 1.0)])
    with pytest.raises(ValueError, match="camera position"):
        ground_points_of_pixels(K, (0.0, 10.0), rotation, [(1.0, 1.0)])
    with pytest.raises(ValueError, match="proper rotation"):
        pixel_rays(K, 2.0 * np.eye(3), [(1.0, 1.0)])
    with pytest.raises(ValueError, match="N x 2"):
        pixel_rays(K, rotation, [(1.0, 2.0, 3.0)])
    with pytest.raises(ValueError, match="max_range_m"):
        ground_points_of_pixels(K, (0.0, 0.0, 10.0), rotation, [(1.0, 1.0)], max_range_m=0.0)
