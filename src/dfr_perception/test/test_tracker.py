"""The tracker: one id per object through a crossing and a short occlusion, births and deaths
as configured, real elapsed time between irregular frames, low-score detections keeping a
track alive, tiny fast objects matched by distance, camera motion carried along, and bad
stamps refused. Also the box helpers it shares with the detectors."""
import math

import numpy as np
import pytest

from dfr_perception.detection import Detection, as_boxes, box_centres, iou_matrix
from dfr_perception.tracker import Tracker, TrackerConfig

FPS = 30.0


def box(cx, cy, w=20.0, h=12.0, score=0.9, label="moving"):
    return Detection(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score, label)


def ids_by_object(history, centres_by_frame, max_dist=15.0):
    """For each object, the ids of the confirmed tracks nearest to it frame by frame, in the frames where
    the objects are far enough apart for "nearest" to say which is which."""
    seen = {}
    for tracks, centres in zip(history, centres_by_frame):
        points = np.array(list(centres.values()))
        gaps = np.linalg.norm(points[:, None] - points[None], axis=2) + np.eye(len(points)) * 1e9
        if gaps.min() < 2 * max_dist:
            continue
        for k, centre in centres.items():
            near = [t for t in tracks if t.state == "confirmed"
                    and math.dist(((t.box[0] + t.box[2]) / 2, (t.box[1] + t.box[3]) / 2), centre) < max_dist]
            if near:
                seen.setdefault(k, []).append(min(near, key=lambda t: math.dist(
                    ((t.box[0] + t.box[2]) / 2, (t.box[1] + t.box[3]) / 2), centre)).track_id)
    return seen


def test_crossing_objects_keep_their_ids():
    tracker = Tracker()
    rng = np.random.default_rng(1)
    history, truth = [], []
    for k in range(90):
        t = k / FPS
        a = (100.0 + 120.0 * t, 200.0 + 60.0 * t)          # the two cross at about t = 1.5 s
        b = (100.0 + 120.0 * t, 380.0 - 60.0 * t)
        dets = [box(*np.add(c, rng.normal(0, 1.0, 2))) for c in (a, b)]
        history.append(tracker.update(dets, t))
        truth.append({0: a, 1: b})
    seen = ids_by_object(history[5:], truth[5:])
    assert len(seen[0]) >= 65 and len(seen[1]) >= 65           # all but the frames close to the crossing
    assert len(set(seen[0])) == 1 and len(set(seen[1])) == 1
    assert set(seen[0]) != set(seen[1])


def test_short_occlusion_keeps_the_id_and_the_lost_track_predicts():
    tracker = Tracker(TrackerConfig(max_lost_s=1.0))
    ids, lost_boxes = [], []
    for k in range(60):
        t = k / FPS
        centre = (50.0 + 90.0 * t, 240.0)
        hidden = 25 <= k < 33                                     # 8 frames behind a tree
        tracks = tracker.update([] if hidden else [box(*centre)], t)
        assert len(tracks) == 1
        ids.append(tracks[0].track_id)
        if hidden:
            assert tracks[0].state == "lost"
            lost_boxes.append((tracks[0].box, centre))
        elif k >= 2:
            assert tracks[0].state == "confirmed"
    assert len(set(ids)) == 1
    # While lost it kept moving with the object.
    for b, centre in lost_boxes:
        assert abs((b[0] + b[2]) / 2 - centre[0]) < 3.0


def test_birth_needs_min_hits_and_a_blip_dies():
    tracker = Tracker(TrackerConfig(min_hits=3))
    states = [tracker.update([box(100, 100)], k / FPS)[0].state for k in range(4)]
    assert states == ["tentative", "tentative", "confirmed", "confirmed"]
    tracker.update([box(100, 100), box(400, 300)], 4 / FPS)          # a one-frame blip elsewhere
    assert len(tracker.tracks()) == 2
    tracks = tracker.update([box(100, 100)], 5 / FPS)
    assert len(tracks) == 1 and tracks[0].state == "confirmed"


def test_low_confidence_detection_does_not_start_a_track():
    tracker = Tracker()
    for k in range(5):
        assert tracker.update([box(100, 100, score=0.4)], k / FPS) == []


def test_lost_track_dies_after_max_lost_s_and_ids_are_never_reused():
    tracker = Tracker(TrackerConfig(max_lost_s=0.5, min_hits=2))
    for k in range(3):
        first = tracker.update([box(100, 100)], k / FPS)[0].track_id
    t = 2 / FPS
    assert tracker.update([], t + 0.49)[0].state == "lost"
    assert tracker.update([], t + 0.51) == []
    again = tracker.update([box(100, 100)], t + 0.6)[0].track_id
    tracker.reset()
    after_reset = tracker.update([box(100, 100)], 0.0)[0].track_id
    assert first < again < after_reset


def test_irregular_and_dropped_frames_use_real_time():
    rng = np.random.default_rng(3)
    tracker = Tracker()
    velocity = np.array([150.0, -40.0])                      # px/s
    t, ids, first = 0.0, [], None
    for k in range(80):
        t += rng.uniform(0.01, 0.12) * (3 if k % 17 == 0 else 1)   # jittery, now and then a drop
        centre = np.array([80.0, 400.0]) + velocity * t
        tracks = tracker.update([box(*(centre + rng.normal(0, 0.7, 2)))], t)
        ids.append(tracks[0].track_id)
        first = t if first is None else first
    assert len(set(ids)) == 1
    assert np.allclose(tracks[0].velocity_px_s, velocity, atol=8.0)
    assert tracks[0].age_s == pytest.approx(t - first)
    assert tracks[0].hits == 80 and tracks[0].time_since_update_s == 0.0


def test_low_score_detections_keep_a_confirmed_track_alive():
    """Two-stage association: a partly hidden vehicle scores low for a while."""
    def run(config):
        tracker = Tracker(config)
        ids, states = [], []
        for k in range(50):
            score = 0.3 if 15 <= k < 40 else 0.9
            tracks = tracker.update([box(60.0 + 2.5 * k, 200.0, score=score)], k / FPS)
            ids.extend(t.track_id for t in tracks)
            states.append(tracks[0].state if tracks else None)
        return set(ids), states

    ids, states = run(TrackerConfig(max_lost_s=0.5))
    assert len(ids) == 1 and all(s == "confirmed" for s in states[3:])
    # Without the second stage (low-score detections ignored) the track is lost, dies and is replaced.
    ids_one_stage, _ = run(TrackerConfig(max_lost_s=0.5, low_score=0.5))
    assert len(ids_one_stage) == 2


def test_low_score_detection_does_not_revive_a_lost_track():
    tracker = Tracker()
    for k in range(4):
        tracker.update([box(100, 100)], k / FPS)
    tracker.update([], 4 / FPS)
    tracks = tracker.update([box(100, 100, score=0.3)], 5 / FPS)
    assert tracks[0].state == "lost"
    tracks = tracker.update([box(100, 100, score=0.9)], 6 / FPS)
    assert tracks[0].state == "confirmed" and len(tracks) == 1


def test_tiny_fast_object_is_matched_by_distance():
    """A 4-pixel e-bike moving 10 pixels a frame never overlaps its last box."""
    def run(config):
        tracker = Tracker(config)
        ids = set()
        for k in range(30):
            tracks = tracker.update([box(20.0 + 10.0 * k, 100.0 + 1.0 * k, 4.0, 4.0)], k / FPS)
            ids |= {t.track_id for t in tracks if t.state == "confirmed"}
        return ids

    assert len(run(TrackerConfig())) == 1
    assert run(TrackerConfig(centre_gate_chi2=0.0)) == set()   # IoU alone never confirms it


def test_a_lost_small_track_does_not_take_a_mover_many_box_sizes_away():
    """A 5 x 10 px rider at rest, unseen for a second at 5 Hz: its uncertainty now spans a hundred pixels,
    but something moving 60 px away (four box sizes) is not it."""
    def run(config):
        tracker = Tracker(config)
        for k in range(5):
            tracker.update([box(200.0, 200.0, 5.0, 10.0)], k * 0.2)
        for k in range(5, 10):
            tracker.update([], k * 0.2)
        return {t.track_id: t.state for t in tracker.update([box(260.0, 200.0, 5.0, 10.0)], 2.0)}

    assert run(TrackerConfig()) == {1: "lost", 2: "tentative"}            # the mover starts a track of its own
    assert run(TrackerConfig(centre_gate_max_sizes=0.0)) == {1: "confirmed"}   # unbounded, the rider jumps to it


def test_distance_fallback_does_not_steal_an_overlapping_match():
    tracker = Tracker(TrackerConfig(min_hits=1))
    tracker.update([box(100, 100)], 0.0)
    tracks = tracker.update([box(104, 100), box(112, 100, 20.0, 12.0)], 1 / FPS)
    first = min(tracks, key=lambda t: t.track_id)
    assert (first.box[0] + first.box[2]) / 2 < 106.0


def test_camera_motion_carries_tracks_along():
    """A parked car, and the camera jumps 80 px and zooms in 10% between two frames."""
    def run(with_motion):
        tracker = Tracker()
        for k in range(10):
            tracker.update([box(300, 200)], k / FPS)
        jump = np.array([[1.1, 0.0, -110.0], [0.0, 1.1, -20.0], [0.0, 0.0, 1.0]])   # 300,200 -> 220,200
        tracks = tracker.update([box(220, 200, 22.0, 13.2)], 10 / FPS, jump if with_motion else None)
        return tracks

    carried = run(True)
    assert len(carried) == 1 and carried[0].state == "confirmed" and carried[0].track_id == 1
    assert np.allclose(carried[0].velocity_px_s, 0.0, atol=5.0)
    assert carried[0].box[2] - carried[0].box[0] == pytest.approx(22.0, abs=0.5)
    assert {t.track_id for t in run(False) if t.state != "lost"} == {2}      # without it: a new track
    with pytest.raises(ValueError, match="3 x 3"):
        Tracker().update([], 0.0, np.eye(2))


def test_track_fields_and_labels():
    tracker = Tracker(TrackerConfig(min_hits=1))
    tracker.update([box(100, 100, label="car", score=0.8)], 10.0)
    tracks = tracker.update([box(103, 100, label="car", score=0.7)], 10.1)
    (track,) = tracks
    assert track.label == "car" and track.score == pytest.approx(0.7)
    assert track.hits == 2 and track.age_s == pytest.approx(0.1) and track.time_since_update_s == 0.0
    assert track.box[2] > track.box[0] and track.box[3] > track.box[1]
    assert track.velocity_px_s[0] > 0.0


def test_bad_stamps_are_refused():
    tracker = Tracker()
    tracker.update([], 5.0)
    with pytest.raises(ValueError, match="backwards"):
        tracker.update([], 4.0)
    with pytest.raises(ValueError, match="finite"):
        tracker.update([], float("nan"))
    tracker.reset()
    tracker.update([], 1.0)                                  # after a reset the clock may start again


@pytest.mark.parametrize("kwargs, message", [
    ({"low_score": 0.7, "high_score": 0.5}, "low_score"),
    ({"new_track_score": 0.3}, "new_track_score"),
    ({"min_hits": 0}, "min_hits"),
])
def test_bad_config_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrackerConfig(**kwargs)


def test_many_tracks_each_keep_their_id():
    rng = np.random.default_rng(7)
    tracker = Tracker()
    start = rng.uniform(50, 600, (20, 2))
    velocity = rng.normal(0, 40, (20, 2))
    history, truth = [], []
    for k in range(60):
        t = k / FPS
        centres = start + velocity * t
        history.append(tracker.update([box(*c, w=24.0, h=16.0) for c in centres], t))
        truth.append(dict(enumerate(map(tuple, centres))))
    seen = ids_by_object(history[3:], truth[3:], max_dist=6.0)
    assert len(seen) == 20
    assert all(len(set(v)) == 1 for v in seen.values())
    assert len(tracker) == 20


# --------------------------------------------------------------------------- shared box helpers
def test_iou_matrix_of_known_boxes():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float)
    expected = np.array([[50 / 150, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert np.allclose(iou_matrix(a, b), expected)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    assert np.allclose(iou_matrix([box(5, 5, 10, 10)], [(0, 0, 10, 10)]), 1.0)
    assert np.allclose(box_centres(as_boxes([box(5, 7)])), [[5, 7]])
    with pytest.raises(ValueError, match="N x 4"):
        iou_matrix(np.zeros((2, 3)), b)
    with pytest.raises(ValueError, match="NaN"):
        iou_matrix(np.array([[0, 0, np.nan, 1]]), b)


@pytest.mark.parametrize("values, message", [
    ((0, 0, 10, 10, 1.5), "score"),
    ((10, 0, 0, 10, 0.5), "inverted"),
    ((0, 0, float("nan"), 10, 0.5), "non-finite"),
])
def test_detection_refuses_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        Detection(*values)
