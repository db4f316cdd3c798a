"""Privacy for what is kept: recorded video shows the target, not the bystanders around it.

A drone over a street films everyone on it. The operator needs the live picture; the
record of the mission needs only the suspect. Frames are blurred (or pixelated) except
inside the target's box, and the tracks stored with the mission are cut to the target's.

Boxes are pixels (u_min, v_min, u_max, v_max), OpenCV convention (the centre of pixel
(u, v) is at (u, v)).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from dfr_common.documented import documented
from dfr_perception.detection import checked_boxes

METHODS = ("blur", "pixelate")


@dataclass
class PrivacyConfig:
    """How the rest of the frame is made unrecognisable."""

    method: str = documented("blur", "blur (Gaussian) or pixelate everything but the kept boxes")
    kernel_px: int = documented(41, "Gaussian kernel width, pixels (odd); wider hides more", 3, 1001)
    block_px: int = documented(16, "pixelation block size, pixels", 2, 1000)
    margin_px: int = documented(8, "kept boxes are widened by this many pixels each side", 0, 1000)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        _check_kernel(self.kernel_px)
        if int(self.block_px) != self.block_px or self.block_px < 2:
            raise ValueError(f"block_px must be an integer >= 2, got {self.block_px}")
        _check_margin(self.margin_px)


def _check_kernel(kernel_px) -> int:
    if int(kernel_px) != kernel_px or kernel_px < 3 or kernel_px % 2 == 0:
        raise ValueError(f"kernel_px must be an odd integer >= 3, got {kernel_px}")
    return int(kernel_px)


def _check_margin(margin_px) -> int:
    if int(margin_px) != margin_px or margin_px < 0:
        raise ValueError(f"margin_px must be an integer >= 0, got {margin_px}")
    return int(margin_px)


def _image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image must be H x W or H x W x 1, 3 or 4 channels, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16, np.float32, np.float64):
        raise ValueError(f"image dtype must be uint8, uint16, float32 or float64, got {image.dtype}")
    return image


def obscure(image: np.ndarray, config: PrivacyConfig | None = None, kernel_px: int | None = None) -> np.ndarray:
    """The whole image blurred or pixelated (a new array)."""
    cfg = config or PrivacyConfig()
    img = np.ascontiguousarray(_image(image))
    height, width = img.shape[:2]
    if cfg.method == "pixelate":
        # Whole blocks from the image's top-left corner: pad to a multiple, average, repeat.
        block = int(cfg.block_px)
        rows, cols = math.ceil(height / block), math.ceil(width / block)
        padded = cv2.copyMakeBorder(img, 0, rows * block - height, 0, cols * block - width, cv2.BORDER_REPLICATE)
        small = cv2.resize(padded, (cols, rows), interpolation=cv2.INTER_AREA)
        out = np.repeat(np.repeat(small, block, axis=0), block, axis=1)[:height, :width]
    else:
        k = _check_kernel(kernel_px if kernel_px is not None else cfg.kernel_px)
        out = cv2.GaussianBlur(img, (k, k), 0, borderType=cv2.BORDER_REPLICATE)
    return out.reshape(img.shape)


def blur_except(image: np.ndarray, keep_boxes, kernel_px: int | None = None, margin_px: int | None = None,
                config: PrivacyConfig | None = None) -> np.ndarray:
    """A copy of the image obscured everywhere but inside keep_boxes (N x 4; empty or None: all).

    kernel_px and margin_px, when given, override the config's. Boxes partly outside the
    image keep the part inside; boxes wholly outside keep nothing. The input is not changed.
    """
    cfg = config or PrivacyConfig()
    margin = _check_margin(margin_px if margin_px is not None else cfg.margin_px)
    img = _image(image)
    boxes = checked_boxes(keep_boxes, "keep_boxes")
    out = obscure(img, cfg, kernel_px)
    height, width = img.shape[:2]
    for u_min, v_min, u_max, v_max in boxes:
        # Every pixel the widened box touches is kept.
        x0 = max(0, math.floor(u_min - margin + 0.5))
        y0 = max(0, math.floor(v_min - margin + 0.5))
        x1 = min(width, math.ceil(u_max + margin + 0.5))
        y1 = min(height, math.ceil(v_max + margin + 0.5))
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = img[y0:y1, x0:x1]
    return out


def _track_id_of(item, index: int) -> str:
    if isinstance(item, Mapping):
        if "track_id" not in item:
            raise ValueError(f"track {index} has no 'track_id'")
        return str(item["track_id"])
    if not hasattr(item, "track_id"):
        raise ValueError(f"track {index} ({type(item).__name__}) has no track_id")
    return str(item.track_id)


def redact_tracks(tracks, target_id):
    """Only the target's track, for the mission record.

    tracks: a mapping of track id to track (a mapping comes back), or an iterable of
    tracks with a `track_id` attribute or key (a list comes back). Ids compare as
    strings. target_id None (no target chosen) keeps nothing.
    """
    if isinstance(tracks, Mapping):
        if target_id is None:
            return {}
        return {k: v for k, v in tracks.items() if str(k) == str(target_id)}
    if not isinstance(tracks, Iterable) or isinstance(tracks, (str, bytes)):
        raise ValueError(f"tracks must be a mapping or an iterable of tracks, got {type(tracks).__name__}")
    items = list(tracks)
    ids = [_track_id_of(item, i) for i, item in enumerate(items)]
    if target_id is None:
        return []
    return [item for item, tid in zip(items, ids) if tid == str(target_id)]
