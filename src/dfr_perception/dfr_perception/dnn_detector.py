"""Object detection with a YOLOv5/YOLOv8 ONNX model through OpenCV's DNN module, and the
factory that picks the motion or the DNN detector.

No model ships with the project and nothing is downloaded: the operator points
`DnnDetectorConfig.model_path` at an ONNX export (e.g. `yolov8n.onnx` exported at the
configured input size). Without a usable model the DNN detector raises ModelUnavailable,
and make_detector() falls back to the motion detector with a warning for the node to log.

The image is letterboxed (scaled to fit the network input, the rest padded) as the YOLO
exports expect, and the raw output is decoded by a pure function (so it is testable on
synthetic arrays): YOLOv8 exports give (1, 4 + classes, N) rows of (cx, cy, w, h, class
scores...), YOLOv5 exports (1, N, 5 + classes) rows with an objectness before the class
scores; either may come transposed. Boxes are mapped back through the letterbox to image
pixels and thinned by per-class non-maximum suppression (cv2.dnn.NMSBoxesBatched).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dfr_common.documented import documented
from dfr_perception.detection import Detection, Detector
from dfr_perception.motion_detector import MotionDetector, MotionDetectorConfig

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)
LAYOUTS = ("auto", "yolov5", "yolov8")


class ModelUnavailable(RuntimeError):
    """The DNN detector has no usable model; the message says what to configure."""


@dataclass
class DnnDetectorConfig:
    """Which model to run and how to read its output."""

    model_path: str = documented("", "YOLOv5/YOLOv8 ONNX file; empty for none (the motion detector is used)")
    input_width: int = documented(640, "network input width the model was exported with, pixels", 32, 4096)
    input_height: int = documented(640, "network input height the model was exported with, pixels", 32, 4096)
    class_names: tuple[str, ...] = documented(COCO_CLASSES, "the model's classes, in output order")
    keep_classes: tuple[str, ...] = documented(
        ("person", "bicycle", "car", "motorcycle", "bus", "truck"), "classes reported; empty for all")
    score_threshold: float = documented(0.35, "lowest class confidence reported", 0.0, 1.0)
    nms_threshold: float = documented(0.45, "IoU above which the weaker of two boxes of a class is dropped",
                                      0.0, 1.0)
    class_agnostic_nms: bool = documented(False, "suppress overlapping boxes across classes too")
    layout: str = documented("auto", "output layout: auto, yolov5 (objectness column) or yolov8 (none)")
    pad_value: int = documented(114, "grey level of the letterbox padding", 0, 255)
    max_detections: int = documented(100, "most detections reported per image (highest scores kept)", 1, 10000)

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if not self.class_names:
            raise ValueError("class_names must name the model's classes")
        unknown = sorted(set(self.keep_classes) - set(self.class_names))
        if unknown:
            raise ValueError(f"keep_classes names classes the model does not have: {unknown}")


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network input: input = image * scale + pad (pixel edges)."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    image_width: int
    image_height: int


def letterbox(image: np.ndarray, width: int, height: int, pad_value: int = 114) -> tuple[np.ndarray, Letterbox]:
    """The image scaled to fit width x height with its aspect kept and centred on padding, and the mapping."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    left, top = (width - new_w) // 2, (height - new_h) // 2
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    out = cv2.copyMakeBorder(resized, top, height - new_h - top, left, width - new_w - left, cv2.BORDER_CONSTANT,
                             value=(pad_value,) * 3)
    return out, Letterbox(new_w / w, new_h / h, float(left), float(top), w, h)


def _rows(output: np.ndarray, classes: int, layout: str) -> tuple[np.ndarray, str]:
    """The output as N x C rows, and its layout (yolov5 or yolov8)."""
    out = np.asarray(output, dtype=np.float32)
    while out.ndim > 2 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != 2:
        raise ValueError(f"YOLO output must be (1, C, N) or (1, N, C), got shape {np.shape(output)}")
    widths = {"yolov8": 4 + classes, "yolov5": 5 + classes}
    for name in (("yolov8", "yolov5") if layout == "auto" else (layout,)):
        c = widths[name]
        if out.shape[1] == c:
            return out, name
        if out.shape[0] == c:
            return out.T, name
    expected = " or ".join(f"{widths[n]} ({n})" for n in widths if layout in ("auto", n))
    raise ValueError(f"YOLO output of shape {np.shape(output)} does not fit {classes} classes: expected an axis of "
                     f"{expected}; check DnnDetectorConfig.class_names and layout")


def decode_yolo_output(output: np.ndarray, box: Letterbox, class_names: tuple[str, ...],
                       keep_classes: tuple[str, ...] = (), score_threshold: float = 0.35,
                       nms_threshold: float = 0.45, layout: str = "auto", class_agnostic_nms: bool = False,
                       max_detections: int = 100) -> list[Detection]:
    """Detections, in image pixels, from a raw YOLOv5/YOLOv8 output for an image letterboxed by `box`."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    rows, kind = _rows(output, len(class_names), layout)
    rows = rows[np.isfinite(rows).all(axis=1)]
    class_scores = rows[:, 4:] if kind == "yolov8" else rows[:, 5:] * rows[:, 4:5]
    class_ids = np.argmax(class_scores, axis=1) if len(rows) else np.zeros(0, np.int64)
    scores = class_scores[np.arange(len(rows)), class_ids]
    wanted = np.ones(len(class_names), bool)
    if keep_classes:
        wanted = np.isin(np.asarray(class_names), np.asarray(keep_classes))
    keep = (scores >= score_threshold) & wanted[class_ids] & (rows[:, 2] > 0) & (rows[:, 3] > 0)
    rows, class_ids, scores = rows[keep], class_ids[keep], scores[keep]
    if not len(rows):
        return []
    # Network input (pixel edges, letterboxed) -> image pixel centres.
    x0 = (rows[:, 0] - rows[:, 2] / 2 - box.pad_x) / box.scale_x - 0.5
    y0 = (rows[:, 1] - rows[:, 3] / 2 - box.pad_y) / box.scale_y - 0.5
    x1 = (rows[:, 0] + rows[:, 2] / 2 - box.pad_x) / box.scale_x - 0.5
    y1 = (rows[:, 1] + rows[:, 3] / 2 - box.pad_y) / box.scale_y - 0.5
    x0, x1 = np.clip(x0, -0.5, box.image_width - 0.5), np.clip(x1, -0.5, box.image_width - 0.5)
    y0, y1 = np.clip(y0, -0.5, box.image_height - 0.5), np.clip(y1, -0.5, box.image_height - 0.5)
    rects = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).tolist()
    if class_agnostic_nms:
        kept = cv2.dnn.NMSBoxes(rects, scores.tolist(), score_threshold, nms_threshold)
    else:
        kept = cv2.dnn.NMSBoxesBatched(rects, scores.tolist(), class_ids.tolist(), score_threshold, nms_threshold)
    kept = np.asarray(kept, np.int64).reshape(-1)
    kept = kept[np.argsort(-scores[kept], kind="stable")][:max_detections]
    return [Detection(float(x0[i]), float(y0[i]), float(x1[i]), float(y1[i]), float(min(1.0, scores[i])),
                      class_names[class_ids[i]]) for i in kept.tolist()]


def load_onnx(model_path: str):
    """The OpenCV DNN network of an ONNX file, or ModelUnavailable saying what to fix."""
    if not model_path:
        raise ModelUnavailable("no DNN model configured: set DnnDetectorConfig.model_path (the perception node's "
                               "dnn model_path parameter) to a YOLOv5/YOLOv8 ONNX file, or use detector kind "
                               "'motion'")
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise ModelUnavailable(f"DNN model file {str(path)!r} does not exist: check DnnDetectorConfig.model_path")
    if not os.access(path, os.R_OK):
        raise ModelUnavailable(f"DNN model file {str(path)!r} is not readable by this process: check its "
                               f"permissions")
    try:
        net = cv2.dnn.readNetFromONNX(str(path))
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(f"OpenCV could not load {str(path)!r} as an ONNX model ({reason}): export the model "
                               f"to ONNX (opset 12 or later) and set DnnDetectorConfig.model_path to it") from exc
    if net.empty():
        raise ModelUnavailable(f"{str(path)!r} loaded as an empty network: re-export the ONNX model")
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


class DnnDetector:
    """YOLO detector; `net` may be given instead of loading config.model_path (anything with setInput and
    forward, e.g. a shared cv2.dnn.Net)."""

    finds_people = True     # COCO's person class, standing or moving

    def __init__(self, config: DnnDetectorConfig | None = None, net=None):
        self.config = config or DnnDetectorConfig()
        self.net = net if net is not None else load_onnx(self.config.model_path)

    def detect(self, image: np.ndarray, camera_motion_hint: np.ndarray | None = None) -> list[Detection]:
        """Objects of the kept classes in an H x W x 3 RGB (or H x W grey) uint8 image, in its pixels.
        One image is enough: the camera's motion does not matter."""
        cfg = self.config
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ValueError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
            image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2RGB)
        if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
            raise ValueError(f"image must be H x W x 3 RGB or H x W grey, got shape {image.shape}")
        fitted, box = letterbox(image, cfg.input_width, cfg.input_height, cfg.pad_value)
        # The exports take RGB scaled to 0..1, which the image already is but for the scale.
        blob = cv2.dnn.blobFromImage(fitted, 1.0 / 255.0, (cfg.input_width, cfg.input_height), swapRB=False,
                                     crop=False)
        self.net.setInput(blob)
        output = self.net.forward()
        return decode_yolo_output(output, box, cfg.class_names, cfg.keep_classes, cfg.score_threshold,
                                  cfg.nms_threshold, cfg.layout, cfg.class_agnostic_nms, cfg.max_detections)


def make_detector(kind: str, motion_config: MotionDetectorConfig | None = None,
                  dnn_config: DnnDetectorConfig | None = None) -> tuple[Detector, str | None]:
    """The detector of this kind ("motion" or "dnn"), and a warning for the log when a DNN detector was asked
    for but no usable model is configured and the motion detector stands in."""
    choice = str(kind).strip().lower()
    if choice == "motion":
        return MotionDetector(motion_config), None
    if choice == "dnn":
        try:
            return DnnDetector(dnn_config), None
        except ModelUnavailable as exc:
            return MotionDetector(motion_config), f"DNN detector unavailable, using the motion detector: {exc}"
    raise ValueError(f"unknown detector kind {kind!r}: expected 'motion' or 'dnn'")
