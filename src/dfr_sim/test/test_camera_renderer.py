"""The embedded camera: its geometry is a pinhole's, its ground is fixed in the world and
textured enough to track, its actors appear where and as large as they should, and its
memory stays bounded however large the area."""
import math
import tracemalloc

import cv2
import numpy as np
import pytest

from dfr_sim.camera_bench import benchmark_render, synthetic_town
from dfr_sim.camera_renderer import (
    ActorBox,
    CameraModel,
    CameraRenderer,
    RenderConfig,
    car,
    ebike_with_rider,
    gimbal_to_world_rotation,
    ground_homography,
    pedestrian,
    project,
    render,
)
from dfr_sim.gimbal import angles_to_point as look_at_angles
from dfr_sim.ground_texture import GroundStyle, GroundTexture

NORTH = math.pi / 2
QUIET = RenderConfig(noise_std=0.0)


@pytest.fixture(scope="module")
def town():
    bounds, roads, parks, buildings = synthetic_town(600.0, seed=3)
    return GroundTexture(bounds, roads, parks, buildings, seed=7)


@pytest.fixture
def camera():
    return CameraModel(640, 480, math.radians(80.0))


def down(vehicle_yaw=NORTH):
    return gimbal_to_world_rotation(vehicle_yaw, -90.0)


# --------------------------------------------------------------------------- camera model
def test_intrinsics_and_camera_info(camera):
    fx = 320.0 / math.tan(math.radians(40.0))
    assert camera.fx == pytest.approx(fx) and camera.fy == pytest.approx(fx)
    assert (camera.cx, camera.cy) == (319.5, 239.5)
    assert camera.vertical_fov_rad == pytest.approx(2 * math.atan(240.0 / fx))
    info = camera.camera_info()
    assert info["distortion_model"] == "plumb_bob" and info["d"] == [0.0] * 5
    assert info["k"] == pytest.approx([fx, 0, 319.5, 0, fx, 239.5, 0, 0, 1])
    assert info["r"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    assert info["p"] == pytest.approx([fx, 0, 319.5, 0, 0, fx, 239.5, 0, 0, 0, 1, 0])
    assert (info["width"], info["height"]) == (640, 480)


def test_bad_camera_is_refused():
    with pytest.raises(ValueError, match="horizontal_fov_rad"):
        CameraModel(640, 480, math.pi)
    with pytest.raises(ValueError, match="pixels"):
        CameraModel(1, 480, 1.0)


# --------------------------------------------------------------------------- geometry
def test_point_below_a_down_looking_camera_is_at_the_image_centre(camera):
    uv, visible = project(camera, (12.0, -7.0, 60.0), down(0.4), [(12.0, -7.0)])
    assert visible[0]
    assert uv[0] == pytest.approx([camera.cx, camera.cy])


def test_ground_offset_lands_where_pinhole_maths_says(camera):
    # Heading north, looking down: east is image right, north is image up.
    uv, visible = project(camera, (0.0, 0.0, 60.0), down(), [(10.0, 5.0)])
    assert visible[0]
    assert uv[0] == pytest.approx([camera.cx + camera.fx * 10 / 60, camera.cy - camera.fy * 5 / 60])


def test_horizon_of_a_level_camera_is_the_centre_row(camera, town):
    rot = gimbal_to_world_rotation(0.3, 0.0)
    far = 1e7 * np.array([math.cos(0.3), math.sin(0.3)])
    uv, _ = project(camera, (0.0, 0.0, 50.0), rot, [(*far, 50.0)])
    assert uv[0, 1] == pytest.approx(camera.cy, abs=1e-6)
    ground_far, _ = project(camera, (0.0, 0.0, 50.0), rot, [far / 10])
    assert camera.cy < ground_far[0, 1] < camera.cy + 1
    img = render(town, camera, (0.0, 0.0, 50.0), rot, config=QUIET).astype(int)
    sky, ground = img[: int(camera.cy) - 5], img[int(camera.cy) + 40:]
    assert np.all(sky[..., 2] > sky[..., 0])                  # blue above
    assert ground[..., 2].mean() < ground[..., 1].mean()      # not sky below


def test_pitch_sign_negative_looks_down_positive_up(camera):
    pos = (0.0, 0.0, 60.0)
    ahead = 60.0 / math.tan(math.radians(30.0))
    uv, visible = project(camera, pos, gimbal_to_world_rotation(NORTH, -30.0), [(0.0, ahead)])
    assert visible[0] and uv[0] == pytest.approx([camera.cx, camera.cy])
    uv, _ = project(camera, pos, gimbal_to_world_rotation(NORTH, 10.0),
                    [(0.0, 100.0, 60.0 + 100.0 * math.tan(math.radians(10.0)))])
    assert uv[0] == pytest.approx([camera.cx, camera.cy])


def test_gimbal_yaw_is_clockwise_from_the_nose(camera):
    pos = (0.0, 0.0, 40.0)
    east, west = (1000.0, 0.0, 40.0), (-1000.0, 0.0, 40.0)
    uv, _ = project(camera, pos, gimbal_to_world_rotation(NORTH, 0.0, yaw_deg=90.0), [east])
    assert uv[0] == pytest.approx([camera.cx, camera.cy])
    uv, _ = project(camera, pos, gimbal_to_world_rotation(NORTH, 0.0, yaw_deg=-90.0), [west])
    assert uv[0] == pytest.approx([camera.cx, camera.cy])
    # The vehicle's own yaw is ENU: 0 faces east.
    uv, _ = project(camera, pos, gimbal_to_world_rotation(0.0, 0.0), [east])
    assert uv[0] == pytest.approx([camera.cx, camera.cy])


def test_roll_right_side_down_raises_the_horizon_on_the_right(camera):
    pos = (0.0, 0.0, 40.0)
    right_on_horizon = (1e6, 1e6, 40.0)         # north-east, 45 degrees right of a camera facing north
    uv, _ = project(camera, pos, gimbal_to_world_rotation(NORTH, 0.0, roll_deg=10.0), [right_on_horizon])
    assert uv[0, 0] > camera.cx and uv[0, 1] < camera.cy - 20
    uv, _ = project(camera, pos, gimbal_to_world_rotation(NORTH, 0.0, roll_deg=-10.0), [right_on_horizon])
    assert uv[0, 1] > camera.cy + 20


def test_rotation_is_proper_and_optical(camera):
    rot = gimbal_to_world_rotation(1.1, -35.0, 5.0, 20.0)
    assert rot @ rot.T == pytest.approx(np.eye(3), abs=1e-12)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    assert down(NORTH)[:, 2] == pytest.approx([0.0, 0.0, -1.0])      # optical z: forward, here down
    assert down(NORTH)[:, 1] == pytest.approx([0.0, -1.0, 0.0])      # image down: south


def test_look_at_angles_round_trip(camera):
    rng = np.random.default_rng(5)
    for _ in range(50):
        cam = np.array([*rng.uniform(-500, 500, 2), rng.uniform(5, 120)])
        target = cam[:2] + rng.uniform(-300, 300, 2)
        yaw = rng.uniform(-math.pi, math.pi)
        pitch_deg, yaw_deg = look_at_angles(cam, yaw, target)
        assert -90.0 <= pitch_deg < 0.0 and -180.0 < yaw_deg <= 180.0
        uv, visible = project(camera, cam, gimbal_to_world_rotation(yaw, pitch_deg, 0.0, yaw_deg), [target])
        assert visible[0] and uv[0] == pytest.approx([camera.cx, camera.cy], abs=1e-6)
    assert look_at_angles((3.0, 4.0, 50.0), 1.0, (3.0, 4.0)) == (-90.0, 0.0)


def test_points_behind_the_camera_are_not_visible(camera):
    uv, visible = project(camera, (0.0, 0.0, 30.0), gimbal_to_world_rotation(NORTH, -10.0),
                          [(0.0, -50.0), (0.0, 200.0)])
    assert not visible[0] and np.isnan(uv[0]).all()
    assert visible[1]


def test_ground_homography_agrees_with_project(camera):
    pos, rot = (5.0, -3.0, 70.0), gimbal_to_world_rotation(0.7, -50.0, 3.0, -12.0)
    pts = np.array([(10.0, 40.0), (-20.0, 80.0), (35.0, 60.0)])
    uvw = np.hstack([pts, np.ones((3, 1))]) @ ground_homography(camera, pos, rot).T
    uv, _ = project(camera, pos, rot, pts)
    assert uvw[:, :2] / uvw[:, 2:] == pytest.approx(uv)


# --------------------------------------------------------------------------- actors
def test_ebike_appears_at_its_pixel_with_its_colour_and_size(camera, town):
    bike, rider = (255, 0, 255), (0, 255, 255)
    heading = 0.6
    target = (40.0, 25.0)
    actors = ebike_with_rider(*target, heading, bike_rgb=bike, rider_rgb=rider)
    img = render(town, camera, (*target, 60.0), down(), actors, config=QUIET).astype(int)
    u, v = (int(round(x)) for x in project(camera, (*target, 60.0), down(), [(*target, 1.7)])[0][0])
    assert np.abs(img[v, u] - rider).max() <= 3                    # the rider on top, seen from above
    match = np.all(np.abs(img - bike) <= 3, axis=-1)
    rows, cols = np.nonzero(match)
    assert len(rows) > 10
    # Heading north, looking down: ENU east is image right, north is image up.
    along = (cols - u) * math.cos(heading) - (rows - v) * math.sin(heading)
    length_px = along.max() - along.min() + 1
    expected = 1.8 * camera.fx / (60.0 - 0.85)
    assert 10.5 <= length_px <= 13.0 and abs(length_px - expected) <= 1.5


def test_actors_accept_tuples_objects_and_composites(camera, town):
    class Walker:
        position = (30.0, 30.0, 0.0)
        heading, length, width, height = 0.0, 0.6, 0.6, 1.8
        color = (255, 255, 0)

    class Group:
        def boxes(self):
            return pedestrian(20.0, 30.0, 0.0, rgb=(0, 0, 255))

    class Rider:            # as the ground actor model reports one: drawn by its kind
        kind, position, heading = "ebike", (35.0, 24.0, 0.0), 0.0
        length_m, width_m, height_m, colour = 1.8, 0.7, 1.7, (255, 128, 0)

    actors = [(40.0, 30.0, 0.0, 1.0, 1.0, 1.0, (255, 0, 0)), Walker(), Group(),
              ActorBox(50.0, 30.0, 0.0, 1.0, 1.0, 1.0, (0, 255, 0)), Rider()]
    pos = (35.0, 30.0, 50.0)
    img = render(town, camera, pos, down(), actors, config=QUIET).astype(int)
    tops = ((40.0, 1.0, (255, 0, 0)), (30.0, 1.8, (255, 255, 0)), (20.0, 1.75, (0, 0, 255)), (50.0, 1.0, (0, 255, 0)))
    u, v = (int(round(t)) for t in project(camera, pos, down(), [(35.0, 24.0, 1.7)])[0][0])
    assert np.abs(img[v, u] - (255, 128, 0)).max() <= 3                     # the rider on top
    assert np.abs(img[v, u + 5] - ebike_with_rider(0, 0, 0)[0].colour).max() <= 3   # the bike beyond
    for x, top, colour in tops:
        u, v = (int(round(t)) for t in project(camera, pos, down(), [(x, 30.0, top)])[0][0])
        near = img[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3)      # small boxes: edge pixels are blended
        assert np.abs(near - colour).max(axis=1).min() <= 3
    with pytest.raises(TypeError, match="actor 0"):
        render(town, camera, pos, down(), [object()], config=QUIET)


def test_actors_behind_the_camera_are_not_drawn(camera, town):
    pos, rot = (0.0, 0.0, 20.0), gimbal_to_world_rotation(NORTH, -20.0)
    plain = render(town, camera, pos, rot, config=QUIET)
    behind = render(town, camera, pos, rot, car(0.0, -30.0, 0.0) + car(0.0, 2.0, 0.0, rgb=(0, 0, 0)),
                    config=QUIET)
    np.testing.assert_array_equal(plain, behind)


def test_actor_stands_out_from_the_ground_in_an_oblique_view(camera, town):
    pos = (0.0, -60.0, 40.0)
    pitch, yaw = look_at_angles(pos, NORTH, (0.0, 0.0))
    rot = gimbal_to_world_rotation(NORTH, pitch, 0.0, yaw)
    plain = render(town, camera, pos, rot, config=QUIET).astype(int)
    with_car = render(town, camera, pos, rot, car(0.0, 0.0, 0.3), config=QUIET).astype(int)
    changed = np.any(np.abs(with_car - plain) > 30, axis=-1)
    rows, cols = np.nonzero(changed)
    assert 100 < changed.sum() < 5000
    assert abs(np.median(cols) - camera.cx) < 15 and abs(np.median(rows) - camera.cy) < 15


# --------------------------------------------------------------------------- ground texture
def test_ground_is_deterministic_for_a_seed(camera):
    bounds, roads, parks, buildings = synthetic_town(400.0, seed=1)
    pos, rot = (10.0, 10.0, 60.0), gimbal_to_world_rotation(0.5, -45.0)
    a = render(GroundTexture(bounds, roads, parks, buildings, seed=4), camera, pos, rot)
    b = render(GroundTexture(bounds, roads, parks, buildings, seed=4), camera, pos, rot)
    c = render(GroundTexture(bounds, roads, parks, buildings, seed=5), camera, pos, rot)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 2


def test_a_tile_is_the_same_however_often_and_beside_whatever_it_is_drawn(town):
    fine = town.levels[0]
    first = fine.tile(3, 4).copy()
    fine.cache.clear()
    np.testing.assert_array_equal(fine.tile(3, 4), first)
    # The apron of one tile is its neighbour's edge: no seam between tiles.
    right = fine.tile(4, 4)
    np.testing.assert_array_equal(first[:, -2:], right[:, :2])


def test_down_looking_frame_over_houses_has_trackable_corners(camera, town):
    img = render(town, camera, (60.0, 40.0, 60.0), down(0.2), config=QUIET)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    corners = cv2.goodFeaturesToTrack(grey, 500, 0.01, 8)
    assert corners is not None and len(corners) >= 50
    # Spread over the frame, not bunched on one edge.
    rows = (corners[:, 0, 1] // 160).astype(int)
    assert len(set(rows)) == 3
    # And fine grain: a bare patch of grass still has texture.
    assert grey.astype(float).std() > 10


def test_consecutive_frames_differ_by_the_ground_homography(camera, town):
    config = RenderConfig(noise_std=0.0)
    actor = ebike_with_rider(58.0, 44.0, 0.5)
    pos_a, rot_a = (60.0, 40.0, 60.0), gimbal_to_world_rotation(0.2, -80.0)
    pos_b, rot_b = (60.6, 40.3, 60.1), gimbal_to_world_rotation(0.21, -80.0, 0.2, 0.3)
    a = render(town, camera, pos_a, rot_a, actor, config=config)
    b = render(town, camera, pos_b, rot_b, actor, config=config)
    a_to_b = ground_homography(camera, pos_b, rot_b) @ np.linalg.inv(ground_homography(camera, pos_a, rot_a))
    warped = cv2.warpPerspective(a, a_to_b, (camera.width, camera.height), flags=cv2.INTER_LINEAR)
    keep = np.zeros((camera.height, camera.width), bool)
    keep[30:-30, 30:-30] = True
    u, v = project(camera, pos_b, rot_b, [(58.0, 44.0)])[0][0]
    keep[int(v) - 20:int(v) + 20, int(u) - 20:int(u) + 20] = False       # the actor moved relative to the ground
    compensated = np.abs(warped.astype(int) - b)[keep].mean()
    raw = np.abs(a.astype(int) - b)[keep].mean()
    assert compensated < 4.0 and compensated < 0.3 * raw
    # The actor itself stands out of the compensated difference.
    box = np.abs(warped.astype(int) - b)[int(v) - 8:int(v) + 8, int(u) - 8:int(u) + 8]
    assert box.max() > 60


def test_sensor_noise_changes_every_frame_and_is_small(camera, town):
    renderer = CameraRenderer(town, camera, RenderConfig(noise_std=2.0, noise_seed=3))
    pos, rot = (0.0, 0.0, 60.0), down()
    a, b = renderer.render(pos, rot), renderer.render(pos, rot)
    clean = render(town, camera, pos, rot, config=QUIET)
    diff = a.astype(int) - clean
    assert 1.0 < diff.std() < 3.0 and abs(diff.mean()) < 0.3
    assert np.any(a != b)


def test_tile_caches_stay_within_their_limits(camera):
    bounds, roads, parks, buildings = synthetic_town(800.0, seed=2)
    style = GroundStyle(fine_cache_tiles=6, mid_cache_tiles=4)
    texture = GroundTexture(bounds, roads, parks, buildings, style=style)
    for k in range(12):
        x, y = -300.0 + 50.0 * k, -250.0 + 40.0 * k
        for pitch in (-90.0, -30.0):
            img = render(texture, camera, (x, y, 80.0), gimbal_to_world_rotation(0.3 * k, pitch), config=QUIET)
            assert img.shape == (480, 640, 3)
            for held, most in texture.cache_info().values():
                assert held <= most
    assert texture.cache_info()["0.25 m/px"] == (6, 6)


def test_a_10_km_city_texture_holds_no_full_resolution_raster(camera):
    roads = [(np.array([[-5000.0, y], [5000.0, y]]), 10.0, "primary") for y in (-3000.0, 0.0, 3000.0)]
    roads += [(np.array([[x, -5000.0], [x, 5000.0]]), 8.0, "residential") for x in (-2000.0, 2500.0)]
    buildings = [np.array([[x, 20.0], [x + 10, 20.0], [x + 10, 30.0], [x, 30.0]]) for x in range(-4000, 4000, 40)]
    parks = [np.array([[1000.0, 1000.0], [1400.0, 1000.0], [1400.0, 1300.0], [1000.0, 1300.0]])]
    tracemalloc.start()
    try:
        texture = GroundTexture((-5000.0, -5000.0, 5000.0, 5000.0), roads, parks, buildings)
        _, built_peak = tracemalloc.get_traced_memory()
        for pos, pitch in (((4900.0, -4900.0, 60.0), -90.0), ((0.0, 0.0, 60.0), -30.0)):
            img = render(texture, camera, pos, gimbal_to_world_rotation(0.8, pitch), config=QUIET)
            assert img.std() > 5
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_resolution = (10000 / 0.25) ** 2 * 3
    assert built_peak < 120e6 and peak < 250e6 < full_resolution
    assert texture.coarse_m_per_px >= 2.0
    assert texture.memory_bytes() < 120e6
    assert max(m.nbytes for m in texture._mips) <= 4096 * 4096 * 3


def test_bad_geometry_gets_a_clear_error():
    with pytest.raises(ValueError, match="bounds"):
        GroundTexture((0.0, 0.0, -1.0, 10.0))
    with pytest.raises(ValueError, match="road 1: width"):
        GroundTexture((0, 0, 100, 100), roads=[(np.zeros((2, 2)) + [[0, 0], [1, 1]], 5.0, "residential"),
                                               (np.array([[0.0, 0.0], [5.0, 5.0]]), -1.0, "residential")])
    with pytest.raises(ValueError, match="building 0: needs at least 3"):
        GroundTexture((0, 0, 100, 100), buildings=[np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])])
    with pytest.raises(ValueError, match="park 0: coordinates must be finite"):
        GroundTexture((0, 0, 100, 100), parks=[np.array([[0.0, 0.0], [1.0, np.nan], [0.0, 1.0]])])


def test_camera_outside_the_area_or_looking_up_still_renders(camera, town):
    img = render(town, camera, (5000.0, 5000.0, 60.0), down(), config=QUIET)
    assert np.all(img == town.outside_rgb)
    sky = render(town, camera, (0.0, 0.0, 60.0), gimbal_to_world_rotation(0.0, 60.0), config=QUIET).astype(int)
    assert np.all(sky[..., 2] > sky[..., 0])


def test_benchmark_reports_rates_and_memory():
    result = benchmark_render(frames=3, width=160, height=120, area_m=600.0)
    assert result["down_fps"] > 0 and result["oblique_fps"] > 0
    assert result["peak_rss_mb"] > 0 and result["texture_raster_mb"] > 0


@pytest.mark.parametrize("kind, size", [("ebike", (1.8, 0.7, 1.7)), ("car", (4.4, 1.8, 1.45)),
                                        ("pedestrian", (0.5, 0.5, 1.75))])
def test_every_kind_of_ground_actor_is_drawn_in_its_colour(camera, town, kind, size):
    class Actor:            # as the simulator's ground truth reports one
        position, heading, colour = (35.0, 30.0, 0.0), 0.3, (250, 20, 200)
        length_m, width_m, height_m = size
    Actor.kind = kind
    pos = (35.0, 30.0, 40.0)
    img = render(town, camera, pos, down(), [Actor()], config=QUIET).astype(int)
    u, v = (int(round(t)) for t in project(camera, pos, down(), [(35.0, 30.0, size[2])])[0][0])
    near = img[v - 1:v + 2, u - 1:u + 2].reshape(-1, 3)
    assert np.min(np.abs(near - (250, 20, 200)).max(axis=1)) <= 40     # the top face, lit
