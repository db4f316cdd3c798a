"""Synthetic video from a moving aerial camera with KNOWN camera motion and object boxes.

Tests and the bench need frames where the truth is exact: a seeded, textured ground
(blurred noise for grain, rectangles for roofs and lots, lines for roads, so corners
track as they do over a town), seen by a camera that pans, rotates and zooms by a known
homography per frame (with optional sudden jumps, as a gimbal slew gives), and
rectangular "vehicles" with a body, a windscreen and a roof moving over it at known
velocities. Everything lives in ground-texture pixels; the camera maps them to the image
by a similarity, which is a homography of the simplest kind, so the detector's RANSAC
fit must find exactly it.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from dfr_common.documented import documented

_SHIFT = 4                      # fixed-point bits for sub-pixel polygon drawing
_ONE = 1 << _SHIFT
_NOISE_MARGIN = 64              # the noise pool is this much larger than a frame each way


@dataclass(frozen=True)
class SyntheticObject:
    """A rectangle moving at constant velocity over the ground (ground pixels, frame 0 centre)."""

    x: float
    y: float
    vx: float = 0.0              # ground pixels per frame
    vy: float = 0.0
    length: float = 28.0         # along the heading
    width: float = 13.0
    colour: tuple[int, int, int] = (200, 40, 40)
    label: str = "car"
    heading: float | None = None  # radians; None: along the velocity (or 0 when still)

    def centre_at(self, frame: int) -> tuple[float, float]:
        return (self.x + self.vx * frame, self.y + self.vy * frame)


@dataclass(frozen=True)
class SyntheticSequenceConfig:
    """How the synthetic camera moves and what it sees."""

    width: int = documented(640, "image width, pixels", 16, 8192)
    height: int = documented(480, "image height, pixels", 16, 8192)
    frames: int = documented(60, "number of frames", 1, 100000)
    seed: int = documented(0, "seed of the ground texture and of the sensor noise")
    pan_px_per_frame: tuple[float, float] = documented(
        (3.0, 1.0), "camera footprint translation over the ground, ground pixels per frame (x, y)")
    rotation_deg_per_frame: float = documented(0.15, "camera roll about the optical axis per frame, degrees")
    zoom_per_frame: float = documented(1.0015, "image scale factor per frame (1 for none)", 0.5, 2.0)
    start_scale: float = documented(1.0, "image pixels per ground pixel at frame 0", 0.05, 20.0)
    jumps: tuple[tuple[int, float, float], ...] = documented(
        (), "sudden camera moves: (frame, dx, dy) ground pixels added from that frame on")
    noise_std: float = documented(2.0, "per-frame sensor noise, grey levels", 0.0, 50.0)
    objects: tuple[SyntheticObject, ...] = field(default=(), metadata={"doc": "the moving (or still) objects"})

    def __post_init__(self):
        if int(self.width) < 16 or int(self.height) < 16:
            raise ValueError(f"synthetic image must be at least 16 x 16, got {self.width} x {self.height}")
        if int(self.frames) < 1:
            raise ValueError(f"frames must be at least 1, got {self.frames}")
        if not 0.5 <= self.zoom_per_frame <= 2.0:
            raise ValueError(f"zoom_per_frame must be in [0.5, 2], got {self.zoom_per_frame}")


@dataclass(frozen=True)
class SyntheticFrame:
    """One frame and its truth."""

    index: int
    image: np.ndarray            # H x W x 3 uint8 RGB
    boxes: np.ndarray            # N x 4 float (x_min, y_min, x_max, y_max) of every object, cut to the image
    visible_fraction: np.ndarray  # N: share of each object's box inside the image (0: out of view)
    labels: tuple[str, ...]
    homography: np.ndarray       # 3 x 3, ground pixels to image pixels

    def visible(self, min_fraction: float = 0.99) -> np.ndarray:
        """Indices of the objects at least min_fraction inside the image."""
        return np.flatnonzero(self.visible_fraction >= min_fraction)


def two_vehicles(width: int = 640, height: int = 480, speed_px: float = 3.0) -> tuple[SyntheticObject, ...]:
    """A white car in the upper part of the view driving right and a black one in the lower part driving
    left, speed_px ground pixels per frame each: their paths never cross."""
    cx, cy = width / 2.0, height / 2.0
    return (
        SyntheticObject(cx - width * 0.2, cy - height * 0.2, speed_px, 0.1 * speed_px, colour=(235, 232, 225)),
        SyntheticObject(cx + width * 0.2, cy + height * 0.2, -speed_px, -0.2 * speed_px, length=22.0, width=11.0,
                        colour=(28, 30, 34)),
    )


class SyntheticSequence:
    """Frames on demand: nothing but the ground texture is held, so long or large sequences are cheap."""

    def __init__(self, config: SyntheticSequenceConfig | None = None):
        self.config = cfg = config or SyntheticSequenceConfig()
        self._poses = self._camera_poses()
        origin, size = self._ground_extent()
        self._ground_origin = origin                      # ground pixel coordinates of canvas pixel (0, 0)
        self.ground = make_ground_texture(size[0], size[1], cfg.seed)
        self._noise_rng = np.random.default_rng(cfg.seed + 1)
        self._noise = _noise_pool(cfg.height, cfg.width, cfg.noise_std, cfg.seed) if cfg.noise_std > 0 else None

    def __len__(self) -> int:
        return int(self.config.frames)

    def __iter__(self) -> Iterator[SyntheticFrame]:
        for k in range(len(self)):
            yield self.frame(k)

    def _camera_poses(self) -> np.ndarray:
        """frames x 4: footprint centre x, y (ground px), roll (rad), scale (image px per ground px)."""
        cfg = self.config
        k = np.arange(int(cfg.frames), dtype=float)
        cx = cfg.width / 2.0 + cfg.pan_px_per_frame[0] * k
        cy = cfg.height / 2.0 + cfg.pan_px_per_frame[1] * k
        for frame, dx, dy in cfg.jumps:
            cx = cx + np.where(k >= frame, dx, 0.0)
            cy = cy + np.where(k >= frame, dy, 0.0)
        roll = np.radians(cfg.rotation_deg_per_frame) * k
        scale = cfg.start_scale * cfg.zoom_per_frame ** k
        return np.stack([cx, cy, roll, scale], axis=1)

    def homography(self, frame: int) -> np.ndarray:
        """Ground pixels to image pixels at a frame."""
        cx, cy, roll, scale = self._poses[frame]
        c, s = math.cos(roll) * scale, math.sin(roll) * scale
        w2, h2 = (self.config.width - 1) / 2.0, (self.config.height - 1) / 2.0
        return np.array([[c, -s, w2 - (c * cx - s * cy)], [s, c, h2 - (s * cx + c * cy)], [0.0, 0.0, 1.0]])

    def object_box(self, index: int, frame: int, position_frame: int | None = None) -> np.ndarray:
        """Box (x_min, y_min, x_max, y_max, not cut to the image) of object `index` as seen in `frame`, where it
        was at `position_frame` (default: the same frame). Where it WAS, seen now, is where a ghost would be."""
        obj = self.config.objects[index]
        outline = _object_polygons(obj, frame if position_frame is None else position_frame)[0][0]
        img = cv2.perspectiveTransform(outline[None], self.homography(frame))[0]
        return np.array([img[:, 0].min(), img[:, 1].min(), img[:, 0].max(), img[:, 1].max()])

    def _ground_extent(self):
        cfg = self.config
        corners = np.array([[-1, -1], [cfg.width, -1], [cfg.width, cfg.height], [-1, cfg.height]], float)
        pts = [cv2.perspectiveTransform(corners[None], np.linalg.inv(self.homography(k)))[0]
               for k in range(int(cfg.frames))]
        pts = np.concatenate(pts)
        margin = 24.0
        lo = np.floor(pts.min(axis=0) - margin)
        hi = np.ceil(pts.max(axis=0) + margin)
        return lo, (int(hi[0] - lo[0]), int(hi[1] - lo[1]))

    def frame(self, index: int) -> SyntheticFrame:
        cfg = self.config
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} outside 0..{len(self) - 1}")
        hom = self.homography(index)
        to_canvas = np.array([[1.0, 0.0, self._ground_origin[0]], [0.0, 1.0, self._ground_origin[1]], [0, 0, 1.0]])
        image = cv2.warpPerspective(self.ground, hom @ to_canvas, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT)
        n = len(cfg.objects)
        boxes = np.zeros((n, 4))
        visible = np.zeros(n)
        for k, obj in enumerate(cfg.objects):
            body = _object_polygons(obj, index)
            img_polys = [cv2.perspectiveTransform(p[None], hom)[0] for p, _ in body]
            for poly, (_, colour) in zip(img_polys, body):
                cv2.fillConvexPoly(image, np.round(poly * _ONE).astype(np.int32), colour, cv2.LINE_AA, _SHIFT)
            outline = img_polys[0]
            full = np.array([outline[:, 0].min(), outline[:, 1].min(), outline[:, 0].max(), outline[:, 1].max()])
            cut = full.copy()
            cut[[0, 2]] = np.clip(cut[[0, 2]], -0.5, cfg.width - 0.5)
            cut[[1, 3]] = np.clip(cut[[1, 3]], -0.5, cfg.height - 0.5)
            area = (full[2] - full[0]) * (full[3] - full[1])
            boxes[k] = cut
            visible[k] = max(0.0, (cut[2] - cut[0])) * max(0.0, (cut[3] - cut[1])) / area if area > 0 else 0.0
        if self._noise is not None:
            plus, minus = self._noise
            oy, ox = (int(v) for v in self._noise_rng.integers(0, _NOISE_MARGIN, 2))
            cv2.add(image, plus[oy:oy + cfg.height, ox:ox + cfg.width], dst=image)
            cv2.subtract(image, minus[oy:oy + cfg.height, ox:ox + cfg.width], dst=image)
        return SyntheticFrame(index, image, boxes, visible, tuple(o.label for o in cfg.objects), hom)


def _noise_pool(height: int, width: int, std: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor noise larger than a frame, as its positive and negative parts; each frame takes a window of it
    at a random offset (drawing fresh Gaussian noise for every frame costs more than the frame itself)."""
    rng = np.random.default_rng(seed + 2)
    noise = np.round(rng.normal(0.0, std, (height + _NOISE_MARGIN, width + _NOISE_MARGIN, 3))).astype(np.int16)
    return np.clip(noise, 0, 255).astype(np.uint8), np.clip(-noise, 0, 255).astype(np.uint8)


def _object_polygons(obj: SyntheticObject, frame: int) -> list[tuple[np.ndarray, tuple[int, int, int]]]:
    """Ground polygons of a vehicle: body, windscreen (dark, towards the front) and a lighter roof panel."""
    heading = obj.heading if obj.heading is not None else (math.atan2(obj.vy, obj.vx) if (obj.vx or obj.vy) else 0.0)
    x, y = obj.centre_at(frame)
    c, s = math.cos(heading), math.sin(heading)
    rot = np.array([[c, s], [-s, c]])

    def rect(along0, along1, across):
        local = np.array([[along0, -across], [along1, -across], [along1, across], [along0, across]], float)
        return (local @ rot + (x, y)).astype(np.float32)

    half_l, half_w = obj.length / 2.0, obj.width / 2.0
    body_rgb = tuple(int(v) for v in obj.colour)
    glass_rgb = tuple(int(v * 0.25) for v in obj.colour)
    roof_rgb = tuple(int(min(255, v * 0.6 + 100)) for v in obj.colour)
    return [
        (rect(-half_l, half_l, half_w), body_rgb),
        (rect(0.1 * half_l, 0.45 * half_l, 0.8 * half_w), glass_rgb),
        (rect(-0.5 * half_l, 0.1 * half_l, 0.75 * half_w), roof_rgb),
        (rect(-0.85 * half_l, -0.6 * half_l, 0.7 * half_w), glass_rgb),
    ]


def make_ground_texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A seeded RGB ground with grain, roofs/lots and roads, so that features track and edges abound."""
    if width < 8 or height < 8:
        raise ValueError(f"ground texture must be at least 8 x 8, got {width} x {height}")
    rng = np.random.default_rng(seed)
    fine = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)).astype(np.float32), (0, 0), 1.2)
    coarse = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)).astype(np.float32), (0, 0), 8.0)
    grey = 120.0 + 12.0 * fine / (fine.std() + 1e-6) + 25.0 * coarse / (coarse.std() + 1e-6)
    ground = np.repeat(grey[..., None], 3, axis=2)
    ground *= np.array([0.95, 1.0, 0.9], np.float32)           # a green-grey cast
    area = width * height
    for _ in range(max(4, area // 6000)):                      # roofs and lots
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(15, 70), rng.uniform(15, 70)
        angle = rng.uniform(0, 180)
        box = cv2.boxPoints(((cx, cy), (w, h), angle))
        level = float(rng.uniform(40, 230))
        tint = rng.uniform(0.8, 1.2, 3) * level
        cv2.fillConvexPoly(ground, np.round(box).astype(np.int32), tuple(float(v) for v in tint))
    for _ in range(max(2, area // 150000)):                     # roads with their markings
        p0 = rng.uniform(0, 1, 2) * (width, height)
        direction = rng.normal(0, 1, 2)
        direction /= np.linalg.norm(direction) + 1e-9
        p1 = p0 + direction * max(width, height)
        p0 = p0 - direction * max(width, height)
        cv2.line(ground, tuple(int(v) for v in p0), tuple(int(v) for v in p1), (70, 70, 75), int(rng.uniform(10, 24)))
        cv2.line(ground, tuple(int(v) for v in p0), tuple(int(v) for v in p1), (235, 235, 225), 1)
    return np.clip(ground, 0, 255).astype(np.uint8)
