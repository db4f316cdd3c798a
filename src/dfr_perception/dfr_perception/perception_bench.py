"""How fast perception runs on one core: the motion detector on synthetic moving-camera video and
the tracker on synthetic detections. The project's `make bench` calls these; run this module to
print both as JSON (`python -m dfr_perception.perception_bench`).

Inputs are generated before the clock starts, and only detect() or update() is timed; the
detector's warm-up frames (which do less work) are run first and not counted.
"""
from __future__ import annotations

import json
import time

import cv2
import numpy as np

from dfr_perception.detection import Detection
from dfr_perception.motion_detector import MotionDetector, MotionDetectorConfig
from dfr_perception.synthetic_sequence import SyntheticSequence, SyntheticSequenceConfig, two_vehicles
from dfr_perception.tracker import Tracker, TrackerConfig


def _summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


def bench_detector(width: int = 640, height: int = 480, frames: int = 120, seed: int = 0,
                   config: MotionDetectorConfig | None = None) -> dict:
    """Frames per second of the motion detector on one core (cv2.setNumThreads(1)) over `frames` frames of a
    camera that pans, rotates and zooms over two moving vehicles, after its warm-up."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    cfg = config or MotionDetectorConfig()
    warm_up = cfg.warm_up_frames + 1
    sequence = SyntheticSequence(SyntheticSequenceConfig(
        width=width, height=height, frames=warm_up + frames, seed=seed, pan_px_per_frame=(2.5, 0.8),
        objects=two_vehicles(width, height, 3.0)))
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        detector = MotionDetector(cfg)
        for k in range(warm_up):
            detector.detect(sequence.frame(k).image)
        seconds, found = [], 0
        for k in range(warm_up, warm_up + frames):
            image = sequence.frame(k).image
            start = time.perf_counter()
            found += len(detector.detect(image))
            seconds.append(time.perf_counter() - start)
    finally:
        cv2.setNumThreads(threads)
    return {"width": int(width), "height": int(height), "frames": int(frames),
            "processing_width": int(min(cfg.processing_width, width)), "fps": float(frames / sum(seconds)),
            **_summary(seconds), "detections_per_frame": found / frames, "status": detector.last_status}


def _tracker_inputs(tracks: int, steps: int, seed: int) -> tuple[list[list[Detection]], np.ndarray]:
    """Detections of `tracks` boxes bouncing around a 1280 x 720 image at 30 frames a second, with jitter,
    a few low scores and a few misses, and the (slightly irregular) stamps."""
    rng = np.random.default_rng(seed)
    size = np.array([1280.0, 720.0])
    centre = rng.uniform(40, size - 40, (tracks, 2))
    velocity = rng.normal(0.0, 60.0, (tracks, 2))
    half = rng.uniform(6, 30, (tracks, 2))
    stamps = np.cumsum(rng.uniform(0.028, 0.039, steps))
    frames = []
    for dt in np.diff(np.r_[0.0, stamps]):
        centre += velocity * dt
        bounce = (centre < 40) | (centre > size - 40)
        velocity[bounce] *= -1.0
        seen = rng.random(tracks) > 0.03
        score = np.where(rng.random(tracks) < 0.1, rng.uniform(0.15, 0.45, tracks), rng.uniform(0.6, 1.0, tracks))
        lo = centre - half + rng.normal(0, 1.0, (tracks, 2))
        hi = centre + half + rng.normal(0, 1.0, (tracks, 2))
        frames.append([Detection(float(a), float(b), float(c), float(d), float(s))
                       for (a, b), (c, d), s, ok in zip(lo, hi, score, seen) if ok])
    return frames, stamps


def bench_tracker(tracks: int = 20, steps: int = 2000, seed: int = 0, config: TrackerConfig | None = None) -> dict:
    """Updates per second of the tracker with `tracks` objects (about as many detections each update)."""
    if tracks < 0 or steps < 1:
        raise ValueError(f"need tracks >= 0 and steps >= 1, got {tracks} and {steps}")
    frames, stamps = _tracker_inputs(tracks, steps, seed)
    tracker = Tracker(config)
    seconds, live = [], []
    for dets, stamp in zip(frames, stamps.tolist()):
        start = time.perf_counter()
        out = tracker.update(dets, stamp)
        seconds.append(time.perf_counter() - start)
        live.append(len(out))
    return {"tracks": int(tracks), "steps": int(steps), "updates_per_s": float(steps / sum(seconds)),
            **_summary(seconds), "mean_live_tracks": float(np.mean(live))}


def main() -> None:
    report = {"detector_640x480": bench_detector(640, 480), "detector_1280x720": bench_detector(1280, 720),
              "tracker_20": bench_tracker(20)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
