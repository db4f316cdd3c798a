"""Moving objects in video from a moving aerial camera, by ego-motion compensated differencing.

Seen from a drone, the street is (nearly) a plane, so consecutive frames differ by a
homography plus whatever moves on its own. Each frame, corners of the previous frame are
followed into the current one (pyramidal Lucas-Kanade) and a homography is fit to them
with RANSAC. All work happens on a small grey copy of the frame (`processing_width`);
boxes are scaled back to full-resolution pixels.

Why not plain frame differencing: |current - warped previous| lights up both where an
object is now and where it was (the "ghost"), and one pair of frames cannot tell the two
apart; for a vehicle of uniform colour that moves less than its length between the two
frames, the difference is a strip at its front and an equally strong strip behind it. So
two kinds of evidence are combined:

* a background of the ground: a running average of past frames, not updated under moving
  objects. The current frame differs from it wherever an object is NOW (all of it,
  whatever its colour) and not where an object was, since the background there is the
  ground seen before the object came. It starts, after a warm-up (`warm_up_frames`), as
  the per-pixel median of the warm-up frames, which leaves out whatever moved through;
* motion seeds: the current frame compared with a few earlier frames
  (`reference_lags_frames`), each mapped straight into the current frame; a pixel is a
  seed when it differs from most of them. They are worked out only where they count (where
  the frame differs from the trusted background, or the background is not trusted yet),
  each reference sampled at those pixels alone: resampling three references whole was
  most of the detector's time. A difference from the background is reported
  only where enough seeds confirm that something moves now; a background that is merely
  stale (an object that stopped, a change of light) is slowly learnt instead.

A blob whose outline is sharper in the background than in the frame is a ghost (the
background learnt an object that has since left): it is dropped and the background is
corrected there at once. Where the background has not been seen often enough (ground just
come into view), seeds alone decide. Differences are taken against the darkest and
brightest of a small neighbourhood of the reference (`alignment_tolerance_px`), so the
sub-pixel misregistration of chained homographies does not light up every textured edge;
the border a warp leaves is never reported; parts of one object closer than
`merge_gap_px` (a roof and a windscreen) are one detection.

The background is kept in the pixels of an anchor frame that moves on only when the view
leaves it: warping a running average along with the camera every frame would blur it more
with every frame.

Limits: flat-world geometry, so tall structures seen at an angle show parallax that a
homography cannot remove; an object that stops disappears (its seeds stop); luminance
only (a car as bright as the road under it is invisible); nothing is reported for the
longest reference lag after the start or after a camera motion that could be neither
followed in the image nor taken from the drone's pose (detect()'s camera_motion_hint), and
until `warm_up_frames` have passed, the seeds alone decide, every reference agreeing; an object
slower than its own length per warm-up leaves a ghost that takes longer to clear. Plain
OpenCV and numpy: the perception node wraps it.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from dfr_common.documented import documented
from dfr_perception.detection import Detection


@dataclass
class MotionDetectorConfig:
    """Everything an operator may tune about the motion detector."""

    processing_width: int = documented(320, "frames wider than this are shrunk to it before any work, pixels",
                                       64, 4096)
    blur_kernel_px: int = documented(3, "Gaussian blur on the shrunk grey frame, odd kernel size; 1 for none",
                                     1, 15)
    # camera motion
    max_features: int = documented(160, "corners followed from frame to frame to estimate camera motion", 20, 5000)
    feature_refresh_fraction: float = documented(0.7, "corners are found afresh when fewer than this share of "
                                                      "max_features survive as inliers", 0.0, 1.0)
    feature_quality: float = documented(0.01, "goodFeaturesToTrack quality level (fraction of the best corner)",
                                        1e-4, 0.5)
    feature_min_distance_px: float = documented(8.0, "minimum spacing of corners, processing pixels", 1.0, 100.0)
    feature_block_px: int = documented(5, "neighbourhood over which corner strength is measured, processing "
                                          "pixels", 3, 31)
    flow_window_px: int = documented(15, "Lucas-Kanade window, processing pixels", 5, 101)
    flow_pyramid_levels: int = documented(3, "Lucas-Kanade pyramid levels: more follows faster camera moves",
                                          0, 8)
    min_tracked_features: int = documented(25, "fewer corners followed than this and camera motion is unknown",
                                           4, 5000)
    ransac_reproj_threshold_px: float = documented(1.5, "RANSAC inlier distance, processing pixels", 0.1, 20.0)
    min_inlier_ratio: float = documented(0.4, "share of followed corners the homography must explain", 0.05, 1.0)
    max_scale_change: float = documented(0.5, "a homography that scales the image (or tilts it in perspective) "
                                              "by more than this fraction in one frame is refused: a gimbal tilting "
                                              "6 degrees in a frame towards an oblique view reaches 0.3", 0.01, 5.0)
    max_pose_scale_change: float = documented(0.6, "a camera motion from the pose (detect()'s hint) that scales the "
                                                   "image or tilts it in perspective by more than this fraction "
                                                   "in one frame is a pose glitch and is ignored; larger than "
                                                   "max_scale_change, since a gimbal slewing at an oblique view "
                                                   "really does that", 0.01, 10.0)
    # evidence of motion
    reference_lags_frames: tuple[int, ...] = documented(
        (5, 10, 15), "how many frames back each seed reference is; the longest should be about the time an "
                     "object takes to move its own length")
    min_agreeing_references: int = documented(0, "a pixel is a motion seed when it differs from at least this "
                                                 "many references; 0 for a majority", 0, 64)
    background_memory_frames: int = documented(10, "the background is a running average over about this many "
                                                   "frames", 2, 250)
    warm_up_frames: int = documented(30, "frames after a (re)start before anything is reported; the background "
                                         "then starts as the median of these frames, so it should be long enough "
                                         "for the slowest object of interest to move twice its length", 1, 250)
    warm_up_median_frames: int = documented(9, "frames, spread over the warm-up, whose median starts the "
                                               "background", 3, 64)
    background_margin_fraction: float = documented(0.15, "the background is kept in the pixels of an anchor "
                                                         "frame with this much margin on each side (a fraction "
                                                         "of the frame); the anchor moves on when the view "
                                                         "leaves it", 0.0, 2.0)
    anchor_max_distortion: float = documented(0.1, "the anchor also moves on when the view has zoomed by more "
                                                   "than this fraction or turned by more than this many "
                                                   "radians since, to keep resampling sharp", 0.01, 1.0)
    changed_learning_factor: float = documented(
        0.05, "where the frame differs from the background but nothing is reported (an object that stopped, a "
              "change of light), the background learns this much slower than elsewhere, so that the parts of "
              "objects that the seeds miss do not bleed into it", 0.0, 1.0)
    min_background_frames: int = documented(4, "a background pixel is trusted once seen in this many frames; "
                                               "before that, seeds alone decide", 1, 250)
    alignment_tolerance_px: int = documented(1, "differences are taken against the min/max of this radius "
                                                "around each reference pixel, to forgive misregistration", 0, 5)
    min_difference: float = documented(22.0, "grey-level difference below which nothing moves", 1.0, 255.0)
    noise_sigmas: float = documented(5.0, "the threshold also rises to this many robust standard deviations "
                                          "of the frame's difference image (sensor noise, flicker); 0 off",
                                     0.0, 50.0)
    min_seed_pixels: int = documented(3, "seed pixels an object needs to be reported, processing pixels", 1, 10000)
    ghost_edge_ratio: float = documented(1.0, "a blob whose outline is this many times sharper in the background "
                                              "than in the frame is a ghost (where an object was when the "
                                              "background was learnt) and is dropped; 0 off", 0.0, 10.0)
    min_seed_fraction: float = documented(0.2, "share of an object's moving pixels that must be seeds: a few "
                                                "stray seeds do not keep a stale patch of background alive",
                                          0.0, 1.0)
    # blobs
    open_kernel_px: int = documented(2, "opening kernel on the moving mask, processing pixels (removes specks); "
                                        "0 or 1 for none", 0, 15)
    merge_gap_px: float = documented(8.0, "parts of the mask closer than this are one object, full-resolution "
                                          "pixels", 0.0, 500.0)
    border_margin_px: int = documented(3, "pixels next to the border a warp leaves invalid are ignored, "
                                          "processing pixels", 0, 50)
    min_area_px: float = documented(30.0, "smallest blob reported (moving pixels), full-resolution square pixels",
                                    0.0, 1e7)
    max_area_fraction: float = documented(0.1, "a blob larger than this share of the image is a registration "
                                               "failure, not an object", 1e-4, 1.0)
    max_aspect_ratio: float = documented(6.0, "longer side over shorter side above which a blob is an edge "
                                              "artefact", 1.0, 100.0)
    score_full_scale: float = documented(60.0, "mean difference inside a blob, grey levels, that scores 1", 1.0, 255.0)
    max_detections: int = documented(64, "most blobs reported per frame (highest scores kept)", 1, 10000)

    def __post_init__(self):
        lags = tuple(int(k) for k in self.reference_lags_frames)
        if not lags or min(lags) < 1 or len(set(lags)) != len(lags):
            raise ValueError(f"reference_lags_frames must be distinct positive frame counts, got "
                             f"{self.reference_lags_frames}")
        self.reference_lags_frames = tuple(sorted(lags))
        if self.min_agreeing_references > len(lags):
            raise ValueError(f"min_agreeing_references ({self.min_agreeing_references}) cannot exceed the number "
                             f"of reference lags ({len(lags)})")
        if self.blur_kernel_px < 1 or self.blur_kernel_px % 2 == 0:
            raise ValueError(f"blur_kernel_px must be odd and at least 1, got {self.blur_kernel_px}")
        if self.processing_width < 64:
            raise ValueError(f"processing_width must be at least 64, got {self.processing_width}")
        if self.warm_up_frames < max(lags):
            raise ValueError(f"warm_up_frames ({self.warm_up_frames}) must be at least the longest reference lag "
                             f"({max(lags)})")
        if self.min_background_frames > 255 or self.background_memory_frames < 2:
            raise ValueError("min_background_frames must be at most 255 and background_memory_frames at least 2")

    @property
    def agreeing_references(self) -> int:
        return self.min_agreeing_references or len(self.reference_lags_frames) // 2 + 1


def config_for_frame_rate(frame_rate_hz: float, reference_lags_s=(0.2, 0.4, 0.6), warm_up_s: float = 3.0,
                          **settings) -> MotionDetectorConfig:
    """A configuration whose look-back is set in seconds: the lags and the warm-up that work for a fast
    rider at one frame rate are the same lengths of time at another (at 5 images a second, 1, 2 and 3
    frames; at 10, 2, 4 and 6). Short lags suit a camera that follows: after a pan the newly seen ground
    can be compared with the frames before it sooner, and a rider at 8 m/s clears its own length in
    0.2 s seen from 40 m."""
    if not frame_rate_hz > 0:
        raise ValueError(f"frame_rate_hz must be positive, got {frame_rate_hz}")
    lags = sorted({max(1, round(lag * frame_rate_hz)) for lag in reference_lags_s})
    warm_up = max(max(lags), round(warm_up_s * frame_rate_hz))
    return MotionDetectorConfig(reference_lags_frames=tuple(lags), warm_up_frames=warm_up, **settings)


@dataclass
class _Reference:
    image: np.ndarray               # blurred grey, processing size
    to_current: np.ndarray          # 3 x 3: its pixels to the newest frame's pixels
    _range: np.ndarray | None = None

    def value_range(self, radius: int) -> np.ndarray:
        """The darkest and the brightest pixel within radius of each (H x W x 2): what the current frame is
        compared with, to forgive the sub-pixel misregistration of chained homographies. Found once per
        frame, when it is first compared."""
        if self._range is None:
            kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
            self._range = cv2.merge([cv2.erode(self.image, kernel), cv2.dilate(self.image, kernel)])
        return self._range


class MotionDetector:
    """Moving-object detector for one camera stream; call detect() on every frame, in order.

    After each call `last_status` says in words what happened (warming up, camera motion
    unknown and why, or how many objects), and `last_homography` is the camera's
    previous-to-current homography in full-resolution pixels (None when unknown).
    """

    # From a drone on scene (40 m, about 0.1 m a pixel at 640 px) a person is 15 to 25 pixels seen from above,
    # under min_area_px, and one standing still does not move at all.
    finds_people = False

    def __init__(self, config: MotionDetectorConfig | None = None):
        self.config = config or MotionDetectorConfig()
        self.last_status = "no frame yet"
        self.last_homography: np.ndarray | None = None
        cap = self.config.background_memory_frames
        # Learning rate by number of sightings: a plain mean at first, then a running average.
        self._alpha_by_count = (1.0 / np.minimum(np.arange(256) + 1, cap)).astype(np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: the next frame is treated as the first."""
        self._history: deque[_Reference] = deque(maxlen=self.config.warm_up_frames + 1)
        self._features: np.ndarray | None = None
        self._image_shape: tuple[int, ...] | None = None
        self._moving_mask: np.ndarray | None = None
        self._background: _AnchoredBackground | None = None
        self._background_rebuilt = False

    # ------------------------------------------------------------------ input
    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """Blurred grey frame at processing size, and the (x, y) scale from full resolution to it."""
        if not isinstance(image, np.ndarray):
            raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise ValueError(f"image must be uint8, got {image.dtype}")
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"image must be H x W grey or H x W x 3 RGB, got shape {image.shape}")
        image = np.ascontiguousarray(image)          # OpenCV needs rows in one piece
        height, width = image.shape[:2]
        if height < 16 or width < 16:
            raise ValueError(f"image must be at least 16 x 16 pixels, got {width} x {height}")
        cfg = self.config
        shrink = min(1.0, cfg.processing_width / width)
        size = (max(16, round(width * shrink)), max(16, round(height * shrink)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if shrink < 1.0 else image
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY) if small.ndim == 3 else np.ascontiguousarray(small)
        if cfg.blur_kernel_px > 1:
            grey = cv2.GaussianBlur(grey, (cfg.blur_kernel_px, cfg.blur_kernel_px), 0)
        return grey, (size[0] / width, size[1] / height)

    def _new_features(self, grey: np.ndarray) -> np.ndarray | None:
        cfg = self.config
        mask = None if self._moving_mask is None else cv2.bitwise_not(self._moving_mask)  # movers are outliers
        return cv2.goodFeaturesToTrack(grey, cfg.max_features, cfg.feature_quality, cfg.feature_min_distance_px,
                                       mask=mask, blockSize=cfg.feature_block_px)

    def _next_features(self, grey: np.ndarray, followed: np.ndarray | None) -> np.ndarray | None:
        """Keep following the inlier corners while enough survive: finding corners costs more than following."""
        if followed is not None and len(followed) >= self.config.feature_refresh_fraction * self.config.max_features:
            return followed.reshape(-1, 1, 2).astype(np.float32)
        return self._new_features(grey)

    def _restart(self, grey: np.ndarray, status: str) -> list[Detection]:
        self._history.clear()
        self._moving_mask = None
        self._history.append(_Reference(grey, np.eye(3)))
        self._features = self._new_features(grey)
        self._background = _AnchoredBackground(grey, self.config.background_margin_fraction,
                                               self.config.anchor_max_distortion)
        self._background_rebuilt = False
        self.last_status = status
        self.last_homography = None
        return []

    # ------------------------------------------------------------------ camera motion
    def _camera_motion(self, previous: np.ndarray, current: np.ndarray, hint: np.ndarray | None = None):
        """Previous-to-current homography in processing pixels (or None), why, and the inlier corners
        where they are now (worth following into the next frame). A hint (processing pixels) is where
        the corners are looked for first."""
        cfg = self.config
        points = self._features
        if points is None or len(points) < cfg.min_tracked_features:
            found = 0 if points is None else len(points)
            return None, (f"only {found} corners found in the previous frame (need {cfg.min_tracked_features}): "
                          f"too little texture"), None
        window = (cfg.flow_window_px, cfg.flow_window_px)
        if hint is not None:
            guess = cv2.perspectiveTransform(points.astype(np.float32), hint).astype(np.float32)
            moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, points, guess, winSize=window,
                                                        maxLevel=cfg.flow_pyramid_levels,
                                                        flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
        else:
            moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, points, None, winSize=window,
                                                        maxLevel=cfg.flow_pyramid_levels)
        ok = status.reshape(-1) == 1
        tracked = int(ok.sum())
        if tracked < cfg.min_tracked_features:
            return None, (f"only {tracked} of {len(points)} corners followed into this frame "
                          f"(need {cfg.min_tracked_features}): camera moved too fast or the view changed"), None
        src, dst = points[ok].reshape(-1, 2), moved[ok].reshape(-1, 2)
        hom, inliers = cv2.findHomography(src, dst, cv2.RANSAC, cfg.ransac_reproj_threshold_px)
        if hom is None or inliers is None or abs(hom[2, 2]) < 1e-12:
            return None, f"no homography fits the {tracked} followed corners", None
        ratio = float(inliers.sum()) / tracked
        if ratio < cfg.min_inlier_ratio:
            return None, (f"the homography explains only {ratio:.0%} of {tracked} followed corners "
                          f"(need {cfg.min_inlier_ratio:.0%}): scene not planar or camera motion too fast"), None
        hom = hom / hom[2, 2]
        h, w = current.shape
        scale, perspective = _distortion(hom, current.shape)
        if abs(scale - 1.0) > cfg.max_scale_change or perspective > cfg.max_scale_change:
            return None, (f"implausible camera motion in one frame (scale {scale:.2f}, perspective "
                          f"{perspective:.2f}, limit {cfg.max_scale_change})"), None
        kept = dst[inliers.reshape(-1) > 0]
        edge = cfg.flow_window_px / 2.0
        inside = ((kept[:, 0] >= edge) & (kept[:, 0] <= w - 1 - edge)
                  & (kept[:, 1] >= edge) & (kept[:, 1] <= h - 1 - edge))
        return hom, f"{tracked}/{len(points)} corners followed, {ratio:.0%} inliers", kept[inside]

    # ------------------------------------------------------------------ detection
    def detect(self, image: np.ndarray, camera_motion_hint: np.ndarray | None = None) -> list[Detection]:
        """Moving objects in this frame (boxes in its full-resolution pixels); [] while warming up.

        camera_motion_hint: the previous-to-current homography of the ground in full-resolution
        pixels, as the drone's pose and gimbal say (the pipeline's ground_motion_homography).
        It steers the corner following, and stands in for the image's own estimate in a frame
        where that fails (a fast gimbal slew, buildings crowding out the ground), so that one
        bad frame does not cost a whole warm-up.
        """
        cfg = self.config
        grey, scale = self._prepare(image)
        shape = image.shape[:2]
        if self._image_shape is None or not self._history:
            self._image_shape = shape
            return self._restart(grey, "first frame: nothing to compare with yet")
        if shape != self._image_shape:
            old = self._image_shape
            self._image_shape = shape
            return self._restart(grey, f"image size changed from {old[1]} x {old[0]} to {shape[1]} x {shape[0]}; "
                                       f"history reset")

        hint = _plausible_hint(camera_motion_hint, scale, grey.shape, cfg.max_pose_scale_change)
        hom, why, followed = self._camera_motion(self._history[-1].image, grey, hint)
        if hom is None and hint is not None:
            hom, why, followed = hint, f"camera motion from the pose ({why})", None
        if hom is None:
            return self._restart(grey, f"camera motion unknown: {why}; history reset")
        for ref in self._history:
            ref.to_current = hom @ ref.to_current
        self._history.append(_Reference(grey, np.eye(3)))
        self.last_homography = _to_full_resolution(hom, scale)
        self._background.follow(hom)

        available = len(self._history) - 1
        if available >= cfg.warm_up_frames and not self._background_rebuilt:
            self._rebuild_background()
        background, count = self._background.view()
        background = cv2.convertScaleAbs(background)
        _, ready = cv2.threshold(count, cfg.min_background_frames - 1, 255, cv2.THRESH_BINARY)
        background_diff = _tolerant_difference(grey, background, cfg.alignment_tolerance_px)
        if not self._background_rebuilt:
            changed = cv2.bitwise_and(ready, (background_diff > cfg.min_difference).view(np.uint8) * np.uint8(255))
            detections = []
            if available >= max(cfg.reference_lags_frames):
                # The seeds can already tell what moves now; the background is not trusted anywhere yet.
                # Without it to tell an object from its ghost, every reference must agree: where the
                # object was in one of them, the others show the ground it left.
                lags = cfg.reference_lags_frames
                references = [self._history[-1 - k] for k in lags]
                valid = self._covered_by_all(references, grey.shape)
                seeds_diff = self._seed_difference(grey, references, agreeing=len(lags))
                nowhere = np.zeros_like(ready)
                found = self._objects(grey, background, background_diff, seeds_diff, nowhere, valid, scale, shape,
                                      self._changes(background_diff, nowhere, valid))
                detections, self._moving_mask = found.detections, found.moving
            self._learn_background(grey, count, self._moving_mask if detections else None, changed, None)
            self._features = self._next_features(grey, followed)
            self.last_status = (f"warming up: {available} of {cfg.warm_up_frames} frames, {len(detections)} "
                                f"moving by the seeds alone; {why}")
            return detections

        references = [self._history[-1 - k] for k in cfg.reference_lags_frames]
        valid = self._covered_by_all(references, grey.shape)
        changes = self._changes(background_diff, ready, valid)
        # Seeds count only where the frame differs from the trusted background and where the background is
        # not trusted yet: comparing the rest of the frame with each reference would be wasted.
        needed = cv2.bitwise_and(cv2.bitwise_or(changes.changed, cv2.bitwise_not(ready)), valid)
        seeds_diff = self._seed_difference(grey, references, where=needed)
        found = self._objects(grey, background, background_diff, seeds_diff, ready, valid, scale, shape, changes)
        detections = found.detections
        self._moving_mask = found.moving
        self._learn_background(grey, count, found.moving, found.changed, found.ghosts)
        self._features = self._next_features(grey, followed)
        self.last_status = f"ok: {len(detections)} moving, {why}"
        return detections

    def _rebuild_background(self) -> None:
        """Once the history spans the warm-up, start the background afresh from the median of the frames in it:
        the running average so far still holds whatever moved in the first frames."""
        h, w = self._history[-1].image.shape
        step = max(1, (len(self._history) - 1) // max(1, self.config.warm_up_median_frames - 1))
        samples = list(self._history)[::-1][::step]
        warped = [_warp(ref.image, ref.to_current, (w, h), cv2.INTER_LINEAR, cv2.BORDER_CONSTANT) for ref in samples]
        median = _kth_largest(warped, len(warped) // 2 + 1)
        covered = np.full((h, w), 255, np.uint8)
        for ref in samples:
            covered = cv2.bitwise_and(covered, _coverage(ref.to_current, (w, h)))
        covered = cv2.erode(covered, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        self._background.replace(median, covered > 0, self.config.min_background_frames)
        self._background_rebuilt = True

    def _learn_background(self, grey: np.ndarray, count: np.ndarray, moving: np.ndarray | None,
                          changed: np.ndarray, ghosts: np.ndarray | None) -> None:
        """Average the current frame into the background: slowly where it changed, not at all under
        moving objects, and outright where a ghost showed that the background was wrong."""
        alpha = cv2.LUT(count, self._alpha_by_count)
        np.multiply(alpha, self.config.changed_learning_factor, out=alpha, where=changed > 0)
        if moving is not None:
            np.copyto(alpha, 0.0, where=moving > 0)
        if ghosts is not None:
            np.copyto(alpha, 1.0, where=ghosts > 0)
        self._background.learn(grey, alpha)

    def _covered_by_all(self, references: list[_Reference], shape: tuple[int, int]) -> np.ndarray:
        """Where every reference covers the current frame, less the border a warp leaves."""
        cfg = self.config
        h, w = shape
        valid = np.full((h, w), 255, np.uint8)
        for ref in references:
            valid = cv2.bitwise_and(valid, _coverage(ref.to_current, (w, h)))
        margin = cfg.border_margin_px + cfg.alignment_tolerance_px
        if margin > 0:
            valid = cv2.erode(valid, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8),
                              borderType=cv2.BORDER_CONSTANT, borderValue=0)
        return valid

    def _seed_difference(self, grey: np.ndarray, references: list[_Reference], agreeing: int | None = None,
                         where: np.ndarray | None = None) -> np.ndarray:
        """The k-th largest (k agreeing references) of the differences from each reference: everywhere, or only
        at the non-zero pixels of a uint8 mask (0 elsewhere). A pixel's difference from a reference is how far
        it lies outside the darkest and brightest of the reference around the spot it came from."""
        radius = self.config.alignment_tolerance_px
        h, w = grey.shape
        k = min(agreeing or self.config.agreeing_references, len(references))
        if where is None:
            # Resampled whole, the range is taken around the resampled pixel: the same up to rounding, and a
            # third of the cost of resampling the darkest and the brightest.
            return _kth_largest([_tolerant_difference(grey, _warp(ref.image, ref.to_current, (w, h),
                                                                  cv2.INTER_LINEAR, cv2.BORDER_REPLICATE), radius)
                                 for ref in references], k)
        # Only where the seeds count: each reference is sampled at those pixels alone, a small share of the
        # cost of resampling it whole.
        ys, xs = _pixels(where)
        seeds_diff = np.zeros((h, w), np.uint8)
        if len(ys) == 0:
            return seeds_diff
        here = np.column_stack([xs, ys, np.ones(len(xs))])
        value = grey[ys, xs]
        diffs = np.empty((len(references), len(ys)), np.uint8)
        for row, ref in enumerate(references):
            there = here @ np.linalg.inv(ref.to_current).T
            low, high = _sample(ref.value_range(radius), there[:, 0] / there[:, 2], there[:, 1] / there[:, 2])
            diffs[row] = _outside(value, low, high)
        seeds_diff[ys, xs] = np.partition(diffs, len(references) - k, axis=0)[len(references) - k]
        return seeds_diff

    def _changes(self, background_diff: np.ndarray, ready: np.ndarray, valid: np.ndarray) -> _Changes:
        trusted = cv2.bitwise_and(ready, valid)
        threshold = self._threshold(background_diff, trusted)
        _, changed = cv2.threshold(background_diff, threshold, 255, cv2.THRESH_BINARY)
        return _Changes(trusted, threshold, cv2.bitwise_and(changed, ready))

    def _threshold(self, difference: np.ndarray, where: np.ndarray) -> float:
        cfg = self.config
        threshold = cfg.min_difference
        if cfg.noise_sigmas > 0:
            sample = difference[::4, ::4][where[::4, ::4] > 0]
            if sample.size:
                # The median of a mostly still difference image is a robust scale of its noise.
                threshold = max(threshold, cfg.noise_sigmas * 1.4826 * float(np.median(sample)))
        return threshold

    def _objects(self, grey, background, background_diff, seeds_diff, ready, valid, scale, shape,
                 changes: _Changes) -> _Found:
        """Threshold, group, confirm by seeds, drop ghosts and filter: the detections and the masks that steer
        the background's learning."""
        cfg = self.config
        height, width = shape
        trusted, threshold, changed = changes.trusted, changes.threshold, changes.changed
        _, seeds = cv2.threshold(seeds_diff, threshold, 255, cv2.THRESH_BINARY)
        seeds = cv2.bitwise_and(seeds, valid)
        # Against the background where it is trusted; where it is not, seeds alone.
        moving = cv2.bitwise_or(cv2.bitwise_and(changed, valid), cv2.bitwise_and(seeds, cv2.bitwise_not(ready)))
        if cfg.open_kernel_px > 1:
            moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, np.ones((cfg.open_kernel_px,) * 2, np.uint8))
        gap = int(round(cfg.merge_gap_px * min(scale) / 2.0))
        grouped = cv2.dilate(moving, np.ones((2 * gap + 1,) * 2, np.uint8)) if gap > 0 else moving
        label_type = cv2.CV_16U if moving.size // 4 < 65535 else cv2.CV_32S
        count, groups = cv2.connectedComponents(grouped, connectivity=8, ltype=label_type)
        found = _Found([], np.zeros_like(moving), changed, None)
        if count <= 1:
            return found
        ys, xs = _pixels(moving)
        group_of_pixel = groups[ys, xs].astype(np.int64)
        moving_count = np.bincount(group_of_pixel, minlength=count)
        seed_count = np.bincount(groups[cv2.bitwise_and(seeds, moving) > 0], minlength=count)
        seeded = (seed_count >= cfg.min_seed_pixels) & (seed_count >= cfg.min_seed_fraction * moving_count)
        if not seeded.any():
            return found
        ghost = seeded & self._ghosts(grey, background, moving, trusted, groups, count)
        if ghost.any():
            found.ghosts = cv2.bitwise_and(moving, ghost.astype(np.uint8)[groups] * np.uint8(255))
        confirmed = (seeded & ~ghost)[group_of_pixel]
        if not confirmed.any():
            return found
        ys, xs, group_of_pixel = ys[confirmed], xs[confirmed], group_of_pixel[confirmed]
        diff_at = np.where(ready[ys, xs] > 0, background_diff[ys, xs], seeds_diff[ys, xs]).astype(float)
        order = np.argsort(group_of_pixel, kind="stable")
        ys, xs, group_of_pixel, diff_at = ys[order], xs[order], group_of_pixel[order], diff_at[order]
        starts = np.flatnonzero(np.r_[True, group_of_pixel[1:] != group_of_pixel[:-1]])
        area = np.diff(np.r_[starts, len(ys)]).astype(float)
        x0, x1 = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts) + 1
        y0, y1 = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts) + 1
        scores = np.clip(np.add.reduceat(diff_at, starts) / area / cfg.score_full_scale, 0.0, 1.0)
        bw, bh = (x1 - x0).astype(float), (y1 - y0).astype(float)
        aspect = np.maximum(bw, bh) / np.minimum(bw, bh)
        keep = ((area / (scale[0] * scale[1]) >= cfg.min_area_px) & (area <= cfg.max_area_fraction * moving.size)
                & (aspect <= cfg.max_aspect_ratio))
        lookup = np.zeros(count, np.uint8)
        lookup[group_of_pixel[starts[keep]]] = 255
        found.moving = lookup[groups]
        rank = np.argsort(-scores[keep], kind="stable")[: cfg.max_detections]
        sx, sy = scale
        # Processing pixel edges x - 0.5 .. x + w - 0.5, in full-resolution pixel coordinates.
        x_min = np.clip(x0[keep][rank] / sx - 0.5, -0.5, width - 0.5)
        x_max = np.clip(x1[keep][rank] / sx - 0.5, -0.5, width - 0.5)
        y_min = np.clip(y0[keep][rank] / sy - 0.5, -0.5, height - 0.5)
        y_max = np.clip(y1[keep][rank] / sy - 0.5, -0.5, height - 0.5)
        found.detections = [Detection(float(a), float(b), float(c), float(d), float(s), "moving")
                            for a, b, c, d, s in zip(x_min, y_min, x_max, y_max, scores[keep][rank])]
        return found

    def _ghosts(self, grey, background, moving, trusted, groups, count) -> np.ndarray:
        """Per group, whether it is a ghost: an object's outline shows in the image where the object is,
        but in the background where it was (a background learnt while it stood there)."""
        ratio = self.config.ghost_edge_ratio
        if ratio <= 0:
            return np.zeros(count, bool)
        edges_now, edges_then = _edge_strength(grey), _edge_strength(background)
        # The background is smoother than any one frame (it is an average): compare outlines relative to that.
        sharpness_now = cv2.mean(edges_now, trusted)[0]
        if sharpness_now <= 0:
            return np.zeros(count, bool)
        smoothing = cv2.mean(edges_then, trusted)[0] / sharpness_now
        outline = cv2.morphologyEx(moving, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
        ys, xs = _pixels(outline)
        labels = groups[ys, xs]
        outline_now = np.bincount(labels, weights=edges_now[ys, xs], minlength=count)
        outline_then = np.bincount(labels, weights=edges_then[ys, xs], minlength=count)
        # Only where the background is trusted does it say anything.
        judged = np.bincount(labels, weights=trusted[ys, xs] > 0, minlength=count) >= 0.5 * np.bincount(
            labels, minlength=count)
        return judged & (outline_then > ratio * smoothing * outline_now)


class _AnchoredBackground:
    """The running-average background, kept in the pixels of an anchor frame (plus a margin).

    Each frame is resampled into it once and it is resampled out once per frame; warping the
    average itself along with the camera every frame would blur it a little more each time,
    until thin lines and fine texture differed from it everywhere. The anchor moves on to the
    current frame when the view leaves the canvas or has zoomed or turned much.
    """

    def __init__(self, grey: np.ndarray, margin_fraction: float, max_distortion: float):
        self.shape = grey.shape
        self.max_distortion = max_distortion
        h, w = grey.shape
        self.margin = (int(round(w * margin_fraction)), int(round(h * margin_fraction)))
        self._anchor_here(grey.astype(np.float32), np.ones((h, w), np.uint8))

    def _anchor_here(self, image: np.ndarray, count: np.ndarray) -> None:
        h, w = self.shape
        mx, my = self.margin
        self.image = np.zeros((h + 2 * my, w + 2 * mx), np.float32)
        self.count = np.zeros(self.image.shape, np.uint8)          # sightings of each pixel, saturating
        self.image[my:my + h, mx:mx + w] = image
        self.count[my:my + h, mx:mx + w] = count
        self.to_anchor = np.array([[1.0, 0.0, mx], [0.0, 1.0, my], [0.0, 0.0, 1.0]])   # current -> canvas

    def _quad(self) -> np.ndarray:
        h, w = self.shape
        corners = np.array([[[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]]])
        return cv2.perspectiveTransform(corners, self.to_anchor)[0]

    def follow(self, hom: np.ndarray) -> None:
        """The camera moved by hom (previous to current frame)."""
        self.to_anchor = self.to_anchor @ np.linalg.inv(hom)
        self.to_anchor /= self.to_anchor[2, 2]
        quad = self._quad()
        ch, cw = self.image.shape
        outside = (quad[:, 0].min() < -0.5 or quad[:, 1].min() < -0.5 or quad[:, 0].max() > cw - 0.5
                   or quad[:, 1].max() > ch - 0.5)
        a = self.to_anchor[:2, :2]
        zoom = abs(math.sqrt(abs(np.linalg.det(a))) - 1.0)
        turn = abs(math.atan2(a[1, 0] - a[0, 1], a[0, 0] + a[1, 1]))
        turned = zoom > self.max_distortion or turn > self.max_distortion
        if outside or turned:
            image, count = self.view()
            self._anchor_here(image, count)

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        """The background (float32) and its sightings (uint8) in the current frame's pixels."""
        h, w = self.shape
        from_anchor = np.linalg.inv(self.to_anchor)
        image = _warp(self.image, from_anchor, (w, h), cv2.INTER_LINEAR, cv2.BORDER_CONSTANT)
        count = _warp(self.count, from_anchor, (w, h), cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)
        # Pixels blended with unseen ones by the bilinear warp count as unseen.
        count = cv2.erode(count, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        return image, count

    def learn(self, grey: np.ndarray, alpha: np.ndarray) -> None:
        """background += alpha * (grey - background), alpha per pixel of the current frame."""
        alpha[:2, :] = alpha[-2:, :] = 0.0      # edge pixels would blend with the outside when resampled
        alpha[:, :2] = alpha[:, -2:] = 0.0
        quad = self._quad()
        ch, cw = self.image.shape
        x0, y0 = max(0, int(math.floor(quad[:, 0].min()))), max(0, int(math.floor(quad[:, 1].min())))
        x1, y1 = min(cw, int(math.ceil(quad[:, 0].max())) + 1), min(ch, int(math.ceil(quad[:, 1].max())) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        into = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]) @ self.to_anchor
        size = (x1 - x0, y1 - y0)
        sample = _warp(grey, into, size, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT).astype(np.float32)
        rate = _warp(alpha, into, size, cv2.INTER_NEAREST, cv2.BORDER_CONSTANT)
        region = self.image[y0:y1, x0:x1]
        np.subtract(sample, region, out=sample)
        np.multiply(sample, rate, out=sample)
        region += sample
        self.count[y0:y1, x0:x1] = cv2.add(self.count[y0:y1, x0:x1], (rate > 0).view(np.uint8))

    def replace(self, image: np.ndarray, where: np.ndarray, count: int) -> None:
        """Set the background to image (current frame's pixels) where `where`, counted as seen `count` times."""
        current, seen = self.view()
        current[where] = image[where]
        seen[where] = np.maximum(seen[where], count)
        self._anchor_here(current, seen)


def _coverage(hom: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """255 where a frame of this size, mapped by hom, covers a frame of this size."""
    w, h = size
    corners = np.array([[[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]]], np.float32)
    quad = cv2.perspectiveTransform(corners, hom)[0]
    cover = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(cover, np.round(quad * 16).astype(np.int32), 255, cv2.LINE_8, 4)
    return cover


@dataclass
class _Changes:
    trusted: np.ndarray             # where the background is trusted and every reference covers the frame
    threshold: float                # grey levels, for the background and the seeds alike
    changed: np.ndarray             # differs from the trusted background by more than the threshold


@dataclass
class _Found:
    detections: list[Detection]
    moving: np.ndarray              # reported objects, dilated by the merge gap
    changed: np.ndarray             # differs from the trusted background
    ghosts: np.ndarray | None       # pixels of ghosts, to be replaced in the background


def _pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the non-zero pixels of a uint8 mask (cv2.findNonZero: quicker than np.nonzero)."""
    found = cv2.findNonZero(mask)
    if found is None:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    found = found.reshape(-1, 2)
    return found[:, 1].astype(np.intp), found[:, 0].astype(np.intp)


def _edge_strength(grey: np.ndarray) -> np.ndarray:
    """|d/dx| + |d/dy| (Sobel), in 16-bit integers."""
    dx = cv2.Sobel(grey, cv2.CV_16S, 1, 0, ksize=3)
    dy = cv2.Sobel(grey, cv2.CV_16S, 0, 1, ksize=3)
    return cv2.add(cv2.convertScaleAbs(dx), cv2.convertScaleAbs(dy), dtype=cv2.CV_16U)


def _tolerant_difference(grey: np.ndarray, reference: np.ndarray, radius: int) -> np.ndarray:
    """How far each pixel lies outside the range of the reference around it (0 inside): plain |difference|
    for radius 0, and forgiving of misregistration up to radius pixels otherwise."""
    if radius <= 0:
        return cv2.absdiff(grey, reference)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    return _outside(grey, cv2.erode(reference, kernel), cv2.dilate(reference, kernel))


def _outside(value: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """How far each uint8 value lies below low or above high (0 between), any shape. As columns: OpenCV
    would read a 1-D array of up to four values as a scalar."""
    value_, low, high = value.reshape(-1, 1), low.reshape(-1, 1), high.reshape(-1, 1)
    return cv2.max(cv2.subtract(value_, high), cv2.subtract(low, value_)).reshape(value.shape)


def _warp(image: np.ndarray, hom: np.ndarray, size: tuple[int, int], interpolation: int, border: int) -> np.ndarray:
    """warpPerspective, or the quicker warpAffine where the perspective terms move no pixel by 0.01 px."""
    w, h = size
    if (abs(hom[2, 0]) * w + abs(hom[2, 1]) * h) * (w + h) < 0.01 and abs(hom[2, 2] - 1.0) < 1e-9:
        return cv2.warpAffine(image, hom[:2], size, flags=interpolation, borderMode=border, borderValue=0)
    return cv2.warpPerspective(image, hom, size, flags=interpolation, borderMode=border, borderValue=0)


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each channel of an image at points (bilinear, edges replicated, as _warp samples it)."""
    n = len(x)
    width = 1024                            # remap's maps are images: laid out in rows of this many points
    rows = -(-n // width)
    map_x = np.zeros(rows * width, np.float32)
    map_y = np.zeros(rows * width, np.float32)
    map_x[:n], map_y[:n] = x, y
    sampled = cv2.remap(image, map_x.reshape(rows, width), map_y.reshape(rows, width), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    sampled = sampled.reshape(rows * width, -1)[:n]
    return tuple(np.ascontiguousarray(sampled[:, c]) for c in range(sampled.shape[1]))


def _kth_largest(arrays: list[np.ndarray], k: int) -> np.ndarray:
    """Per pixel, the k-th largest of several uint8 images: k bubble passes of a sorting network."""
    work = list(arrays)
    n = len(work)
    for p in range(k):
        for j in range(n - 1 - p):
            work[j], work[j + 1] = cv2.min(work[j], work[j + 1]), cv2.max(work[j], work[j + 1])
    return work[n - k]


def _small_from_full(scale: tuple[float, float]) -> np.ndarray:
    """Full-resolution pixels to processing pixels (u_small + 0.5 = (u_full + 0.5) * scale)."""
    sx, sy = scale
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _to_processing(hom: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    to_small = _small_from_full(scale)
    small = to_small @ hom @ np.linalg.inv(to_small)
    return small / small[2, 2]


def _distortion(hom: np.ndarray, shape: tuple[int, int]) -> tuple[float, float]:
    """How much one frame's homography scales the image, and how far its perspective terms tilt it."""
    h, w = shape
    return math.sqrt(abs(np.linalg.det(hom[:2, :2]))), abs(hom[2, 0]) * w + abs(hom[2, 1]) * h


def _plausible_hint(hint, scale: tuple[float, float], shape: tuple[int, int], max_change: float) -> np.ndarray | None:
    """The hint in processing pixels, or None when there is none or it is not a homography one frame
    of camera motion could give (a pose glitch)."""
    if hint is None:
        return None
    hint = np.asarray(hint, dtype=float)
    if hint.shape != (3, 3) or not np.isfinite(hint).all() or abs(hint[2, 2]) < 1e-12:
        return None
    small = _to_processing(hint / hint[2, 2], scale)
    zoom, perspective = _distortion(small, shape)
    if abs(zoom - 1.0) > max_change or perspective > max_change:
        return None
    return small


def _to_full_resolution(hom: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """A processing-pixel homography in full-resolution pixels (u_small + 0.5 = (u_full + 0.5) * scale)."""
    to_small = _small_from_full(scale)
    full = np.linalg.inv(to_small) @ hom @ to_small
    return full / full[2, 2]
