"""What a detector reports, and the box arithmetic that detectors and the tracker share.

Boxes are image pixels (x_min, y_min, x_max, y_max) with OpenCV's convention that the
centre of pixel (column u, row v) is at (u, v): a box covering columns 10..19 fully is
(9.5, ..., 19.5, ...). Arrays of boxes are N x 4 float arrays in that order, so one
vectorised function serves every caller.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One object found in one image."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    score: float            # 0..1; the tracker splits high and low confidence on it
    label: str = "moving"   # "moving" for motion blobs, else a class name ("person", "bicycle", "car", ...)

    def __post_init__(self):
        values = (self.x_min, self.y_min, self.x_max, self.y_max, self.score)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"detection has a non-finite value: box {values[:4]}, score {self.score}")
        if self.x_max < self.x_min or self.y_max < self.y_min:
            raise ValueError(f"detection box is inverted: ({self.x_min}, {self.y_min}, {self.x_max}, {self.y_max})")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"detection score must be in [0, 1], got {self.score}")

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.x_min + self.x_max) / 2.0, (self.y_min + self.y_max) / 2.0)

    @property
    def width(self) -> float:
        return self.x_max - self.x_min

    @property
    def height(self) -> float:
        return self.y_max - self.y_min

    @property
    def area(self) -> float:
        return self.width * self.height


class Detector(Protocol):
    """Anything that turns one image into detections (the motion and the DNN detector)."""

    finds_people: bool      # whether it can find a person in a DFR drone's view on scene

    def detect(self, image: np.ndarray, camera_motion_hint: np.ndarray | None = None) -> list[Detection]:
        """camera_motion_hint: how the ground moved in the image since the last frame, from the pose
        (a 3 x 3 homography), for detectors that compensate the camera's motion; others ignore it."""


def as_boxes(boxes) -> np.ndarray:
    """An N x 4 float array from boxes, an N x 4 array-like, or a sequence of Detections."""
    if isinstance(boxes, np.ndarray):
        arr = boxes.astype(float, copy=False)
    elif isinstance(boxes, Sequence) and len(boxes) and isinstance(boxes[0], Detection):
        arr = np.array([d.box for d in boxes], float)
    else:
        arr = np.asarray(boxes, float)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must be N x 4 (x_min, y_min, x_max, y_max), got shape {arr.shape}")
    return arr


def checked_boxes(boxes, what: str = "boxes") -> np.ndarray:
    """as_boxes, and every box finite with u_max >= u_min and v_max >= v_min; ValueError naming `what`."""
    if boxes is None:
        return np.zeros((0, 4))
    try:
        b = as_boxes(boxes)
    except ValueError:
        raise ValueError(f"{what} must be N x 4 (u_min, v_min, u_max, v_max) pixels, got shape "
                         f"{np.shape(boxes)}") from None
    if not np.all(np.isfinite(b)):
        raise ValueError(f"{what} must be finite pixels")
    if np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
        raise ValueError(f"{what} must have u_max >= u_min and v_max >= v_min")
    return b


def detections_to_arrays(detections: Sequence[Detection]) -> tuple[np.ndarray, np.ndarray]:
    """(N x 4 boxes, N scores) of a list of detections."""
    if not detections:
        return np.zeros((0, 4)), np.zeros(0)
    table = np.array([(d.x_min, d.y_min, d.x_max, d.y_max, d.score) for d in detections], float)
    return table[:, :4], table[:, 4]


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """Intersection over union of every box in boxes_a (N x 4) with every box in boxes_b (M x 4): N x M.

    Two empty (zero-area) boxes have IoU 0, not NaN, so the result is always usable as a cost.
    """
    a, b = as_boxes(boxes_a), as_boxes(boxes_b)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("boxes contain NaN or infinity")
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(ix, 0.0, None) * np.clip(iy, 0.0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)


def box_centres(boxes) -> np.ndarray:
    """N x 2 centres of N x 4 boxes."""
    b = as_boxes(boxes)
    return np.stack([(b[:, 0] + b[:, 2]) / 2.0, (b[:, 1] + b[:, 3]) / 2.0], axis=1)


def clip_boxes(boxes, width: int, height: int) -> np.ndarray:
    """Boxes cut to the image (which spans -0.5 .. width - 0.5 in pixel coordinates)."""
    b = as_boxes(boxes).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], -0.5, width - 0.5)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], -0.5, height - 0.5)
    return b
