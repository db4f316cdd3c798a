"""The perception bench: both measurements run on small inputs, return plain JSON-ready numbers
with the keys `make bench` reads, restore OpenCV's thread count, and are not absurdly slow."""
import json

import cv2
import pytest

from dfr_perception.motion_detector import MotionDetectorConfig
from dfr_perception.perception_bench import bench_detector, bench_tracker


def test_bench_detector_reports_speed_and_finds_the_vehicles():
    threads = cv2.getNumThreads()
    result = bench_detector(320, 240, frames=12, seed=1, config=MotionDetectorConfig(warm_up_frames=16))
    assert cv2.getNumThreads() == threads
    json.dumps(result)
    for key in ("fps", "p50_ms", "p99_ms", "mean_ms", "frames", "width", "height", "detections_per_frame"):
        assert key in result
    assert (result["width"], result["height"], result["frames"]) == (320, 240, 12)
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["fps"] > 20.0                       # the target is 60 at 640 x 480; this only catches a collapse
    assert result["detections_per_frame"] >= 1.0
    assert result["status"].startswith("ok")


def test_bench_tracker_reports_update_rate():
    result = bench_tracker(tracks=20, steps=200, seed=2)
    json.dumps(result)
    for key in ("updates_per_s", "p50_ms", "p99_ms", "mean_ms", "tracks", "steps"):
        assert key in result
    assert result["tracks"] == 20 and result["steps"] == 200
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["updates_per_s"] > 100.0            # the target is 500; this only catches a collapse
    assert 15 <= result["mean_live_tracks"] <= 30


@pytest.mark.parametrize("call", [lambda: bench_detector(frames=0), lambda: bench_tracker(steps=0)])
def test_bench_refuses_empty_runs(call):
    with pytest.raises(ValueError):
        call()
