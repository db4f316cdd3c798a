"""The motion detector: from a camera that pans, rotates and zooms, it finds the vehicles that
move, where they are now (not where they were), reports nothing on a still scene, says why
when camera motion is unknown, and refuses bad images clearly."""
import math

import cv2
import numpy as np
import pytest

from dfr_perception.detection import as_boxes, box_centres, iou_matrix
from dfr_perception.motion_detector import MotionDetector, MotionDetectorConfig
from dfr_perception.synthetic_sequence import (
    SyntheticObject,
    SyntheticSequence,
    SyntheticSequenceConfig,
    two_vehicles,
)
from dfr_perception.tracker import Tracker

WARM_UP = 30          # frames before the background is trusted (MotionDetectorConfig.warm_up_frames)
LONGEST_LAG = 15      # frames before anything is reported (the longest of reference_lags_frames)
# Tests that are not about the warm-up use a shorter one: enough for vehicles moving 3 px a frame.
QUICK = 18
QUICK_CONFIG = MotionDetectorConfig(warm_up_frames=QUICK)
GHOST_LAG = 8         # frames back whose position, seen now, is where a ghost would sit


def run(config: SyntheticSequenceConfig, detector_config: MotionDetectorConfig | None = None):
    seq = SyntheticSequence(config)
    detector = MotionDetector(detector_config)
    frames, detections, statuses, motions = [], [], [], []
    for frame in seq:
        detections.append(detector.detect(frame.image))
        frames.append(frame)
        statuses.append(detector.last_status)
        motions.append(detector.last_homography)
    detector.motions = motions
    return seq, frames, detections, statuses, detector


@pytest.fixture(scope="module")
def panning_two_vehicles():
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=70, seed=3, pan_px_per_frame=(2.5, 0.8),
                                  rotation_deg_per_frame=0.15, zoom_per_frame=1.0015,
                                  objects=two_vehicles(640, 480, speed_px=3.0))
    return run(cfg)


def test_each_moving_vehicle_found_where_it_is_now(panning_two_vehicles):
    seq, frames, detections, _, _ = panning_two_vehicles
    found = np.zeros(2, int)
    counted = np.zeros(2, int)
    closer_to_now = 0
    for frame, dets in zip(frames[WARM_UP:], detections[WARM_UP:]):
        boxes = as_boxes(dets)
        for k in frame.visible(0.99):
            counted[k] += 1
            if not len(boxes):
                continue
            iou = iou_matrix(frame.boxes[k], boxes)[0]
            best = int(np.argmax(iou))
            if iou[best] >= 0.3:
                found[k] += 1
                centre = box_centres(boxes[best])[0]
                now = box_centres(frame.boxes[k])[0]
                then = box_centres(seq.object_box(k, frame.index, frame.index - GHOST_LAG))[0]
                closer_to_now += np.linalg.norm(centre - now) < np.linalg.norm(centre - then)
    assert counted.min() >= 35, counted
    assert (found >= 0.9 * counted).all(), (found, counted)
    assert closer_to_now == found.sum()


def test_no_ghost_where_the_vehicles_were(panning_two_vehicles):
    seq, frames, detections, _, _ = panning_two_vehicles
    ghosts = false_positives = 0
    for frame, dets in zip(frames[WARM_UP:], detections[WARM_UP:]):
        boxes = as_boxes(dets)
        if not len(boxes):
            continue
        now = iou_matrix(frame.boxes, boxes).max(axis=0)
        then = np.stack([seq.object_box(k, frame.index, frame.index - GHOST_LAG) for k in range(2)])
        was = iou_matrix(then, boxes).max(axis=0)
        ghosts += int(((now < 0.1) & (was >= 0.1)).sum())
        false_positives += int((now < 0.1).sum())
    assert ghosts == 0
    assert false_positives / (len(frames) - WARM_UP) <= 0.1


def test_scores_are_in_range_and_vehicles_score_high(panning_two_vehicles):
    _, frames, detections, _, _ = panning_two_vehicles
    scores = [d.score for dets in detections[WARM_UP:] for d in dets]
    assert scores and all(0.0 <= s <= 1.0 for s in scores)
    assert np.median(scores) >= 0.5
    assert all(d.label == "moving" for dets in detections for d in dets)


def test_camera_motion_matches_the_known_homography(panning_two_vehicles):
    seq, _, _, _, detector = panning_two_vehicles
    last = len(seq) - 1
    truth = seq.homography(last) @ np.linalg.inv(seq.homography(last - 1))
    corners = np.array([[[0.0, 0.0], [639.0, 0.0], [639.0, 479.0], [0.0, 479.0], [320.0, 240.0]]])
    estimated = cv2.perspectiveTransform(corners, detector.last_homography)[0]
    expected = cv2.perspectiveTransform(corners, truth)[0]
    assert np.abs(estimated - expected).max() < 1.0


def test_detections_feed_the_tracker_one_id_per_vehicle(panning_two_vehicles):
    _, frames, detections, _, detector = panning_two_vehicles
    tracker = Tracker()
    ids = [set(), set()]
    for frame, dets, motion in zip(frames, detections, detector.motions):
        tracks = [t for t in tracker.update(dets, frame.index / 30.0, motion) if t.state == "confirmed"]
        if frame.index < WARM_UP + 3 or not tracks:
            continue
        iou = iou_matrix(frame.boxes, np.array([t.box for t in tracks]))
        for k in range(2):
            if iou[k].max() >= 0.3:
                ids[k].add(tracks[int(np.argmax(iou[k]))].track_id)
    assert len(ids[0]) == 1 and len(ids[1]) == 1 and ids[0] != ids[1]


def test_static_scene_seen_by_a_moving_camera_reports_nothing():
    parked = tuple(SyntheticObject(x, y, colour=c) for x, y, c in
                   ((200, 150, (235, 232, 225)), (420, 300, (230, 190, 40)), (300, 380, (20, 20, 25))))
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=50, seed=5, pan_px_per_frame=(3.0, -1.2),
                                  rotation_deg_per_frame=0.3, zoom_per_frame=0.998, objects=parked)
    _, _, detections, statuses, _ = run(cfg)
    reported = sum(len(d) for d in detections[WARM_UP:])
    assert reported / (len(detections) - WARM_UP) <= 0.05
    assert statuses[-1].startswith("ok")


def test_seeds_worked_out_only_where_they_count_match_the_whole_frame():
    """Once the background is trusted, the seeds are sampled only where they count: the same differences,
    up to where the tolerance's darkest and brightest are taken (before or after resampling)."""
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=4, seed=3, pan_px_per_frame=(2.5, 0.8),
                                  rotation_deg_per_frame=0.15, zoom_per_frame=1.0015,
                                  objects=two_vehicles(640, 480, speed_px=6.0))
    detector = MotionDetector(MotionDetectorConfig(processing_width=640, reference_lags_frames=(1, 2, 3),
                                                   warm_up_frames=3))
    for frame in SyntheticSequence(cfg):
        detector.detect(frame.image)
    grey = detector._history[-1].image
    references = [detector._history[-1 - k] for k in (1, 2, 3)]
    where = np.zeros(grey.shape, np.uint8)
    where[100:380:3, 50:600:2] = 255
    whole = detector._seed_difference(grey, references).astype(int)
    sparse = detector._seed_difference(grey, references, where=where).astype(int)
    assert not sparse[where == 0].any()
    inner = np.zeros(grey.shape, bool)
    inner[110:370, 60:590] = True            # clear of the border every reference leaves
    picked = (where > 0) & inner
    gap = np.abs(whole[picked] - sparse[picked])
    assert np.mean(gap <= 2) > 0.99 and gap.max() <= 30
    # The vehicles stand out in both.
    for box in frame.boxes:
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        assert sparse[y0:y1, x0:x1].max() > 60 and whole[y0:y1, x0:x1].max() > 60


def test_first_frame_and_warm_up_say_so_and_the_seeds_report_only_what_moves(panning_two_vehicles):
    _, frames, detections, statuses, _ = panning_two_vehicles
    assert detections[0] == [] and statuses[0].startswith("first frame")
    assert all(d == [] for d in detections[1:LONGEST_LAG])
    assert all(s.startswith("warming up") for s in statuses[1:WARM_UP])
    # From the longest lag on, the seeds alone find the vehicles, and nothing else.
    seeded = [(f, d) for f, d in zip(frames[LONGEST_LAG:WARM_UP], detections[LONGEST_LAG:WARM_UP]) if d]
    assert len(seeded) >= (WARM_UP - LONGEST_LAG) // 2
    for frame, dets in seeded:
        assert (iou_matrix(frame.boxes, as_boxes(dets)).max(axis=0) >= 0.1).all(), frame.index
    assert statuses[WARM_UP].startswith("ok") and detections[WARM_UP]


def test_sudden_camera_jump_resets_then_recovers():
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=50, seed=4, pan_px_per_frame=(2.0, 0.5),
                                  jumps=((24, 160.0, 60.0),), objects=two_vehicles(640, 480, 3.0))
    seq, frames, detections, statuses, _ = run(cfg, QUICK_CONFIG)
    assert "history reset" in statuses[24] and "camera motion unknown" in statuses[24]
    assert detections[24] == []
    # Nothing false around the jump; found again once the window has refilled.
    for frame, dets in zip(frames[QUICK:], detections[QUICK:]):
        if dets:
            assert (iou_matrix(frame.boxes, as_boxes(dets)).max(axis=0) >= 0.1).all(), frame.index
    recovered = [bool(d) and iou_matrix(f.boxes, as_boxes(d)).max() >= 0.3 for f, d in zip(frames, detections)]
    assert all(recovered[QUICK:24])
    assert detections[24 + LONGEST_LAG - 1] == [] and all(recovered[24 + LONGEST_LAG:])


def _pose_hints(seq: SyntheticSequence) -> list:
    """What a drone's pose would say of each frame's camera motion: here, the sequence's own truth."""
    return [None] + [seq.homography(k) @ np.linalg.inv(seq.homography(k - 1)) for k in range(1, len(seq))]


def test_with_the_pose_a_camera_jump_is_followed_without_reset():
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=40, seed=4, pan_px_per_frame=(2.0, 0.5),
                                  jumps=((24, 160.0, 60.0),), objects=two_vehicles(640, 480, 3.0))
    seq = SyntheticSequence(cfg)
    detector = MotionDetector(QUICK_CONFIG)
    for frame, hint in zip(seq, _pose_hints(seq)):
        dets = detector.detect(frame.image, camera_motion_hint=hint)
        if frame.index >= QUICK:
            assert detector.last_status.startswith("ok"), (frame.index, detector.last_status)
            assert dets and (iou_matrix(frame.boxes, as_boxes(dets)).max(axis=0) >= 0.1).all(), frame.index


def test_where_the_image_cannot_be_followed_the_pose_carries_the_camera_motion():
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=30, seed=4, pan_px_per_frame=(2.0, 0.5),
                                  rotation_deg_per_frame=0.2, objects=two_vehicles(640, 480, 3.0))
    seq = SyntheticSequence(cfg)
    # No fit of the image's own corners is ever good enough: every frame's motion must come from the pose.
    detector = MotionDetector(MotionDetectorConfig(warm_up_frames=QUICK, min_tracked_features=5000))
    statuses = []
    for frame, hint in zip(seq, _pose_hints(seq)):
        dets = detector.detect(frame.image, camera_motion_hint=hint)
        statuses.append(detector.last_status)
        if frame.index >= QUICK:
            assert dets and (iou_matrix(frame.boxes, as_boxes(dets)).max(axis=0) >= 0.1).all(), frame.index
    assert all("camera motion from the pose (only" in s for s in statuses[1:]), statuses[1]


def test_an_implausible_pose_hint_is_ignored():
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=QUICK + 3, seed=4, pan_px_per_frame=(2.0, 0.5),
                                  objects=two_vehicles(640, 480, 3.0))
    seq = SyntheticSequence(cfg)
    glitches = [np.diag([3.0, 3.0, 1.0]),      # a pose glitch: the view would treble in size in one frame
                np.full((3, 3), np.nan), np.zeros((3, 3)), np.eye(2)]
    plain, hinted = MotionDetector(QUICK_CONFIG), MotionDetector(QUICK_CONFIG)
    for frame in seq:
        expected = plain.detect(frame.image)
        got = hinted.detect(frame.image, camera_motion_hint=glitches[frame.index % len(glitches)])
        assert as_boxes(got).tolist() == as_boxes(expected).tolist()
        assert hinted.last_status == plain.last_status


def test_small_camera_jump_is_followed_without_reset():
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=30, seed=4, pan_px_per_frame=(2.0, 0.5),
                                  jumps=((24, 30.0, 10.0),), objects=two_vehicles(640, 480, 3.0))
    _, frames, detections, statuses, _ = run(cfg, QUICK_CONFIG)
    assert all(s.startswith("ok") for s in statuses[QUICK:])
    for frame, dets in zip(frames[QUICK:], detections[QUICK:]):
        assert dets and (iou_matrix(frame.boxes, as_boxes(dets)).max(axis=0) >= 0.1).all(), frame.index


def test_textureless_view_gives_a_readable_status():
    detector = MotionDetector()
    flat = np.full((240, 320, 3), 128, np.uint8)
    assert detector.detect(flat) == []
    assert detector.detect(flat) == []
    assert "camera motion unknown" in detector.last_status and "corners" in detector.last_status
    assert detector.last_homography is None


def test_image_size_change_restarts():
    detector = MotionDetector()
    seq = SyntheticSequence(SyntheticSequenceConfig(width=320, height=240, frames=3))
    detector.detect(seq.frame(0).image)
    detector.detect(seq.frame(1).image)
    assert detector.detect(np.ascontiguousarray(seq.frame(2).image[:200])) == []
    assert "size changed" in detector.last_status


def test_grey_input_and_large_frames_give_full_resolution_boxes():
    cfg = SyntheticSequenceConfig(width=1280, height=720, frames=QUICK + 10, seed=2, pan_px_per_frame=(1.5, 0.3),
                                  rotation_deg_per_frame=0.05, start_scale=2.0, objects=two_vehicles(1280, 720, 3.0))
    seq = SyntheticSequence(cfg)
    detector = MotionDetector(QUICK_CONFIG)
    hits = counted = 0
    for frame in seq:
        dets = detector.detect(cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY))
        if frame.index >= QUICK:
            visible = frame.visible(0.99)
            counted += len(visible)
            if dets:
                hits += int((iou_matrix(frame.boxes[visible], as_boxes(dets)).max(axis=1) >= 0.3).sum())
    assert counted == 2 * (len(seq) - QUICK)
    assert hits >= 0.9 * counted


def test_higher_contrast_scores_higher():
    objects = (SyntheticObject(200, 160, 3.0, 0.0, colour=(245, 245, 245)),
               SyntheticObject(420, 320, -3.0, 0.0, colour=(175, 175, 175)))
    cfg = SyntheticSequenceConfig(width=640, height=480, frames=QUICK + 20, seed=6, pan_px_per_frame=(1.0, 0.5),
                                  objects=objects)
    _, frames, detections, _, _ = run(cfg, QUICK_CONFIG)
    scores = [[], []]
    for frame, dets in zip(frames[QUICK:], detections[QUICK:]):
        if dets:
            iou = iou_matrix(frame.boxes, as_boxes(dets))
            for k in range(2):
                best = int(np.argmax(iou[k]))
                if iou[k, best] >= 0.3:
                    scores[k].append(dets[best].score)
    assert len(scores[0]) >= 15 and scores[1]
    assert np.mean(scores[0]) > np.mean(scores[1])


@pytest.mark.parametrize("image, message", [
    (np.zeros((0, 0, 3), np.uint8), "at least 16 x 16"),
    (np.zeros((240, 320, 3), np.float32), "uint8"),
    (np.zeros((240, 320, 4), np.uint8), "grey or H x W x 3"),
    (np.zeros((2, 240, 320, 3), np.uint8), "grey or H x W x 3"),
    ([[1, 2], [3, 4]], "numpy array"),
])
def test_bad_images_are_refused_clearly(image, message):
    with pytest.raises(ValueError, match=message):
        MotionDetector().detect(image)


@pytest.mark.parametrize("kwargs, message", [
    ({"reference_lags_frames": ()}, "distinct positive"),
    ({"reference_lags_frames": (4, 4, 8)}, "distinct positive"),
    ({"reference_lags_frames": (0, 4)}, "distinct positive"),
    ({"min_agreeing_references": 5}, "cannot exceed"),
    ({"blur_kernel_px": 4}, "odd"),
])
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MotionDetectorConfig(**kwargs)


def test_reset_forgets_history(panning_two_vehicles):
    seq = SyntheticSequence(SyntheticSequenceConfig(width=320, height=240, frames=2))
    detector = MotionDetector()
    detector.detect(seq.frame(0).image)
    detector.reset()
    assert detector.detect(seq.frame(1).image) == []
    assert detector.last_status.startswith("first frame")


# --------------------------------------------------------------------------- the project's simulator
def test_finds_vehicles_and_a_walker_in_the_simulators_view():
    sim = pytest.importorskip("dfr_sim.camera_renderer")
    from dfr_sim.camera_bench import synthetic_town
    from dfr_sim.ground_texture import GroundTexture

    bounds, roads, parks, buildings = synthetic_town(400.0, seed=3)
    texture = GroundTexture(bounds, roads, parks, buildings, seed=7)
    camera = sim.CameraModel(640, 480, math.radians(80.0))
    renderer = sim.CameraRenderer(texture, camera, sim.RenderConfig(actor_shadow_brightness=1.0))
    detector = MotionDetector(MotionDetectorConfig(processing_width=640, min_area_px=12.0))

    def footprint(parts, position, rotation):
        corners = []
        for b in parts:
            c, s = math.cos(b.heading), math.sin(b.heading)
            for along in (-b.length / 2, b.length / 2):
                for across in (-b.width / 2, b.width / 2):
                    for z in (b.base_height, b.base_height + b.height):
                        corners.append((b.x + c * along - s * across, b.y + s * along + c * across, z))
        uv, _ = renderer.project(position, rotation, np.array(corners))
        return np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])

    found = np.zeros(3, int)
    frames = 64
    for k in range(frames):
        t = k / 30.0
        position = np.array([-10.0 + 4.0 * t, -50.0 + 1.0 * t, 50.0])          # drifting at 4 m/s
        rotation = sim.gimbal_to_world_rotation(math.pi / 2 + 0.05 * t, -90.0)  # and turning slowly
        actors = [sim.car(-25.0 + 10.0 * t, -52.0, 0.0, rgb=(200, 200, 205)),
                  sim.ebike_with_rider(5.0 - 7.0 * t, -47.5, math.pi),
                  sim.pedestrian(-5.0, -44.0 + 1.4 * t, math.pi / 2)]
        dets = detector.detect(renderer.render(position, rotation, [b for a in actors for b in a]))
        if k < WARM_UP or not dets:
            continue
        truth = np.stack([footprint(a, position, rotation) for a in actors])
        iou = iou_matrix(truth, as_boxes(dets))
        found += iou.max(axis=1) >= 0.3
        assert (iou.max(axis=0) >= 0.1).all(), f"frame {k}: a detection on no actor"
    checked = frames - WARM_UP
    assert found[0] >= 0.9 * checked and found[1] >= 0.9 * checked, found
    assert found[2] >= 0.6 * checked, found             # a walker is 4 pixels across and slow


def test_a_look_back_set_in_seconds_is_the_same_time_at_any_frame_rate():
    from dfr_perception.motion_detector import config_for_frame_rate
    five = config_for_frame_rate(5.0, (0.4, 0.8, 1.2), 3.0, processing_width=320)
    ten = config_for_frame_rate(10.0, (0.4, 0.8, 1.2), 3.0)
    assert five.reference_lags_frames == (2, 4, 6) and five.warm_up_frames == 15 and five.processing_width == 320
    assert ten.reference_lags_frames == (4, 8, 12) and ten.warm_up_frames == 30
    assert config_for_frame_rate(1.0, (0.1, 0.2), 0.5).reference_lags_frames == (1,)   # never under one frame
    with pytest.raises(ValueError, match="frame_rate_hz"):
        config_for_frame_rate(0.0)
