"""Image boxes on the map: where a detected object stands, how sure that is, how fast it
moves over the ground and how long it is.

The drone's camera pose (position in a local ENU frame, world-from-optical rotation) and
its intrinsics K turn a pixel into a ray; the ray meets the flat ground where the object
stands. Everything here works on plain arrays so that any detector or tracker can feed it.

Boxes are N x 4 pixels (u_min, v_min, u_max, v_max), OpenCV convention (the centre of
pixel (u, v) is at (u, v)). Positions are ENU metres, z the height above the flat ground
at z = 0 unless the config says otherwise; velocities m/s; times seconds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dfr_common.camera_geometry import (
    as_position,
    as_rotation,
    intersect_ground,
    intrinsic_matrix,
    pixel_rays,
    project_points,
    rot_x,
    rot_y,
    rot_z,
)
from dfr_common.documented import documented
from dfr_common.geodesy import LocalFrame
from dfr_perception.detection import checked_boxes


@dataclass
class GeolocationConfig:
    """What is assumed about the pose and the ground when boxes are put on the map."""

    attitude_error_deg: float = documented(
        1.0, "camera attitude error assumed (any axis), degrees: gimbal encoders and autopilot attitude", 0.0, 30.0)
    position_error_m: float = documented(1.5, "horizontal error of the drone's position, metres", 0.0, 100.0)
    height_error_m: float = documented(1.0, "error of the drone's height above the ground, metres", 0.0, 100.0)
    pixel_error_px: float = documented(2.0, "error of the box edge where the object meets the ground, pixels",
                                       0.0, 100.0)
    ground_z_m: float = documented(0.0, "height of the flat ground in the local frame, metres")
    max_range_m: float = documented(1500.0, "boxes whose ground point is farther from the camera are not placed",
                                    1.0, 100000.0)
    assumed_object_height_m: float = documented(
        1.6, "height assumed for objects when measuring their ground length: rider, pedestrian, car roof", 0.1, 10.0)

    def __post_init__(self):
        for name in ("attitude_error_deg", "position_error_m", "height_error_m", "pixel_error_px"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        if not math.isfinite(self.ground_z_m):
            raise ValueError(f"ground_z_m must be finite, got {self.ground_z_m}")
        if not self.max_range_m > 0.0:
            raise ValueError(f"max_range_m must be > 0, got {self.max_range_m}")
        if not (math.isfinite(self.assumed_object_height_m) and self.assumed_object_height_m > 0.0):
            raise ValueError(f"assumed_object_height_m must be > 0, got {self.assumed_object_height_m}")


def box_foot_pixels(k, rotation_world_from_camera, boxes) -> np.ndarray:
    """The pixel (N x 2) where each boxed object meets the ground.

    The bottom-centre of the box, where 'bottom' is the way verticals run in the image:
    towards the nadir's vanishing point. For a camera level in roll looking obliquely
    that is the middle of the bottom edge; for one looking straight down it is the box's
    side nearest the image centre, and the box's centre when the object is right below.
    """
    b = checked_boxes(boxes)
    m = intrinsic_matrix(k)
    r = as_rotation(rotation_world_from_camera)
    if len(b) == 0:
        return np.zeros((0, 2))
    centre = np.column_stack([(b[:, 0] + b[:, 2]) / 2.0, (b[:, 1] + b[:, 3]) / 2.0])
    half = np.column_stack([(b[:, 2] - b[:, 0]) / 2.0, (b[:, 3] - b[:, 1]) / 2.0])
    down = r.T @ np.array([0.0, 0.0, -1.0])                       # world down in optical coordinates
    normalised = np.linalg.solve(m, np.column_stack([centre, np.ones(len(b))]).T).T[:, :2]
    # How a point at the box centre moves in the image as it moves down (normalised, then pixels).
    drift = down[:2][None, :] - normalised * down[2]
    direction = drift @ m[:2, :2].T
    length = np.linalg.norm(direction, axis=1)
    foot = centre.copy()
    moving = length > 1e-12
    unit = direction[moving] / length[moving, None]
    with np.errstate(divide="ignore"):
        to_edge = np.min(np.where(np.abs(unit) > 1e-12, half[moving] / np.abs(unit), np.inf), axis=1)
    step = to_edge
    if down[2] > 1e-12:       # the nadir is in front of the camera: verticals meet at its vanishing point
        vanishing = (m @ (down / down[2]))[:2]
        step = np.minimum(step, np.linalg.norm(vanishing[None, :] - centre[moving], axis=1))
    foot[moving] = centre[moving] + unit * step[:, None]
    return foot


def geolocate_boxes(k, camera_position_enu, rotation_world_from_camera, boxes,
                    config: GeolocationConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ground positions (N x 2, ENU metres) of boxed objects and their uncertainty (N, metres).

    The uncertainty is the root-sum-square of how far the ground point moves under each
    assumed error at its configured size: the attitude tilted about each world axis, the
    foot pixel moved along each image axis, the drone's position and height. Each term is
    the ground point recomputed with the error applied, not a linearisation, so grazing
    rays get the large uncertainty they deserve (infinite where the error lifts the ray
    above the horizon). NaN position and uncertainty where the foot is at or above the
    horizon or beyond max_range_m.
    """
    cfg = config or GeolocationConfig()
    m = intrinsic_matrix(k)
    c = as_position(camera_position_enu)
    r = as_rotation(rotation_world_from_camera)
    foot = box_foot_pixels(m, r, boxes)
    n = len(foot)
    if n == 0:
        return np.zeros((0, 2)), np.zeros(0)
    rays = pixel_rays(m, r, foot)
    ground = intersect_ground(c, rays, cfg.ground_z_m, cfg.max_range_m)[:, :2]
    placed = np.isfinite(ground[:, 0])

    # Each assumed error applied one way and then the other: a pair of ray sets from the camera where it is,
    # or the same rays from where it may be. Perturbed rays are followed as far as they go.
    perturbed = []
    tilt = math.radians(cfg.attitude_error_deg)
    if tilt > 0.0:
        perturbed += [rays @ axis(sign * tilt).T for axis in (rot_x, rot_y, rot_z) for sign in (1.0, -1.0)]
    if cfg.pixel_error_px > 0.0:
        steps = [np.array([sign * cfg.pixel_error_px, 0.0]) for sign in (1.0, -1.0)]
        steps += [np.array([0.0, sign * cfg.pixel_error_px]) for sign in (1.0, -1.0)]
        perturbed += np.split(pixel_rays(m, r, np.vstack([foot + step for step in steps])), len(steps))
    moved = [intersect_ground(c, np.vstack(perturbed), cfg.ground_z_m, math.inf)[:, :2]] if perturbed else []
    if cfg.height_error_m > 0.0:
        lift = np.array([0.0, 0.0, cfg.height_error_m])
        moved += [intersect_ground(c + sign * lift, rays, cfg.ground_z_m, math.inf)[:, :2] for sign in (1.0, -1.0)]
    variance = np.full(n, cfg.position_error_m ** 2)
    if moved:
        shift = np.linalg.norm(np.vstack(moved).reshape(-1, n, 2) - ground, axis=2)
        shift = np.where(np.isfinite(shift), shift, np.inf)
        # The worse of each pair, squared.
        variance += (np.maximum(shift[0::2], shift[1::2]) ** 2).sum(axis=0)
    uncertainty = np.sqrt(variance)
    uncertainty[~placed] = np.nan
    return ground, uncertainty


def ground_to_wgs84(frame: LocalFrame, ground_xy) -> np.ndarray:
    """WGS 84 (latitude, longitude) degrees, N x 2, of ground points (N x 2 ENU metres in frame);
    NaN rows (boxes not placed) stay NaN."""
    xy = np.asarray(ground_xy, dtype=float)
    if xy.size == 0:
        return np.zeros((0, 2))
    xy = xy.reshape(-1, 2)
    out = np.full(xy.shape, np.nan)
    placed = np.all(np.isfinite(xy), axis=1)
    if np.any(placed):
        lat, lon, _ = frame.to_geodetic(xy[placed, 0], xy[placed, 1], np.zeros(int(placed.sum())))
        out[placed] = np.column_stack([lat, lon])
    return out


def ground_size_m(k, camera_position_enu, rotation_world_from_camera, boxes,
                  config: GeolocationConfig | None = None) -> np.ndarray:
    """Each boxed object's length on the ground (N, metres): the longer of its two extents.

    An upright object of height assumed_object_height_m stretches its box along the
    image's verticals (towards and away from the nadir) by the image of that height at
    its foot; that stretch is taken off the box first. The two midlines of what is left
    (across and down its middle) are carried to the ground and measured. Midlines, not
    corners: a box around a turned object, carried to the ground from an oblique view,
    is a skewed quadrilateral whose corners reach far beyond the object. Boxes are axis
    aligned, so a turned object still reads somewhat long (up to about 1.4 times at 45
    degrees, more towards the corners of a shallow view). NaN where a ray misses the
    ground or reaches beyond max_range_m.
    """
    cfg = config or GeolocationConfig()
    m = intrinsic_matrix(k)
    c = as_position(camera_position_enu)
    r = as_rotation(rotation_world_from_camera)
    b = checked_boxes(boxes)
    if len(b) == 0:
        return np.zeros(0)
    foot = box_foot_pixels(m, r, b)
    foot_ground = intersect_ground(c, pixel_rays(m, r, foot), cfg.ground_z_m, cfg.max_range_m)
    head = project_points(m, c, r, foot_ground + np.array([0.0, 0.0, cfg.assumed_object_height_m]))
    stretch = np.nan_to_num(head - foot)          # image of the object's height, from foot to head
    lo = b[:, :2] - np.minimum(stretch, 0.0)
    hi = b[:, 2:] - np.maximum(stretch, 0.0)
    middle = (lo + hi) / 2.0
    lo, hi = np.minimum(lo, middle), np.maximum(hi, middle)       # an object lower than assumed: no extent left
    ends = np.stack([np.column_stack([lo[:, 0], middle[:, 1]]), np.column_stack([hi[:, 0], middle[:, 1]]),
                     np.column_stack([middle[:, 0], lo[:, 1]]), np.column_stack([middle[:, 0], hi[:, 1]])], axis=1)
    ground = intersect_ground(c, pixel_rays(m, r, ends.reshape(-1, 2)), cfg.ground_z_m,
                              cfg.max_range_m)[:, :2].reshape(-1, 4, 2)
    across = np.linalg.norm(ground[:, 1] - ground[:, 0], axis=1)
    down = np.linalg.norm(ground[:, 3] - ground[:, 2], axis=1)
    sizes = np.maximum(across, down)
    sizes[~np.isfinite(foot_ground[:, 0])] = np.nan
    return sizes


# --------------------------------------------------------------------------- ground tracks
@dataclass
class SmootherConfig:
    """How ground positions of one track become a position and a velocity."""

    acceleration_std_m_s2: float = documented(
        1.0, "how hard targets are assumed to accelerate, m/s^2 (process noise); higher follows turns sooner",
        0.01, 50.0)
    initial_speed_std_m_s: float = documented(10.0, "speed uncertainty of a new track, m/s", 0.1, 100.0)
    min_position_std_m: float = documented(0.3, "measurements are never trusted more than this, metres", 0.01, 100.0)
    max_gap_s: float = documented(3.0, "a track unseen for longer starts afresh, seconds", 0.1, 600.0)
    outlier_gate_sigma: float = documented(
        5.0, "a position farther than this many standard deviations from the prediction is an outlier", 1.0, 100.0)
    max_outliers: int = documented(3, "after this many outliers in a row the track starts afresh (it jumped)",
                                   1, 100)
    forget_after_s: float = documented(10.0, "tracks not updated for this long are dropped by prune()",
                                       0.1, 3600.0)

    def __post_init__(self):
        for name in ("acceleration_std_m_s2", "initial_speed_std_m_s", "min_position_std_m", "max_gap_s",
                     "outlier_gate_sigma", "forget_after_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")
        if int(self.max_outliers) < 1:
            raise ValueError(f"max_outliers must be >= 1, got {self.max_outliers}")


@dataclass(frozen=True)
class GroundTrackState:
    """One track on the ground at stamp_s."""

    track_id: str
    stamp_s: float
    position_xy: np.ndarray        # ENU metres
    velocity_xy: np.ndarray        # ENU m/s
    position_std_m: float          # root of the position variances' sum
    velocity_std_m_s: float
    updates: int                   # measurements taken since the track (re)started

    @property
    def speed_m_s(self) -> float:
        return float(np.hypot(*self.velocity_xy))


class _Filter:
    __slots__ = ("x", "p", "stamp", "updates", "outliers")

    def __init__(self, x, p, stamp):
        self.x, self.p, self.stamp, self.updates, self.outliers = x, p, stamp, 1, 0


class GroundTrackSmoother:
    """A constant-velocity Kalman filter per track: ground velocity from successive ground positions.

    A tracker's box jitter and the pose's noise put successive ground positions metres
    apart; differencing them gives speeds far too noisy to tell a cyclist from a car. The
    filter weighs each position by its geolocation uncertainty. Out-of-order measurements
    (older than the track's last) are ignored, and a track unseen for max_gap_s, or that
    jumps (max_outliers in a row beyond the gate: an identity switch), starts afresh.
    """

    def __init__(self, config: SmootherConfig | None = None):
        self.config = config or SmootherConfig()
        self._tracks: dict[str, _Filter] = {}

    def __contains__(self, track_id) -> bool:
        return str(track_id) in self._tracks

    @property
    def track_ids(self) -> list[str]:
        return list(self._tracks)

    def _new(self, z: np.ndarray, variance: float, stamp: float) -> _Filter:
        v0 = self.config.initial_speed_std_m_s ** 2
        return _Filter(np.array([z[0], z[1], 0.0, 0.0]), np.diag([variance, variance, v0, v0]), stamp)

    def _predicted(self, f: _Filter, stamp: float) -> tuple[np.ndarray, np.ndarray]:
        dt = stamp - f.stamp
        if dt <= 0.0:
            return f.x.copy(), f.p.copy()
        a = np.eye(4)
        a[0, 2] = a[1, 3] = dt
        q = self.config.acceleration_std_m_s2 ** 2
        block = q * np.array([[dt ** 3 / 3.0, dt ** 2 / 2.0], [dt ** 2 / 2.0, dt]])
        noise = np.zeros((4, 4))
        noise[np.ix_([0, 2], [0, 2])] = block
        noise[np.ix_([1, 3], [1, 3])] = block
        return a @ f.x, a @ f.p @ a.T + noise

    def _state(self, track_id: str, stamp: float, x: np.ndarray, p: np.ndarray, updates: int) -> GroundTrackState:
        return GroundTrackState(track_id, float(stamp), x[:2].copy(), x[2:].copy(),
                                float(math.sqrt(p[0, 0] + p[1, 1])), float(math.sqrt(p[2, 2] + p[3, 3])), updates)

    def update(self, track_id, stamp_s: float, ground_xy, uncertainty_m: float) -> GroundTrackState:
        """Take one ground position of a track (from geolocate_boxes) and return its state.

        uncertainty_m is taken as the radius of the position error (both axes together).
        """
        track_id = str(track_id)
        z = np.asarray(ground_xy, dtype=float).reshape(-1)
        if z.size != 2 or not np.all(np.isfinite(z)):
            raise ValueError(f"track {track_id}: ground position must be 2 finite metres, got {z.tolist()} "
                             "(boxes geolocate_boxes could not place give NaN: leave them out)")
        if not math.isfinite(stamp_s):
            raise ValueError(f"track {track_id}: stamp must be finite, got {stamp_s}")
        if not (uncertainty_m >= 0.0 and math.isfinite(uncertainty_m)):
            raise ValueError(f"track {track_id}: uncertainty must be finite and >= 0 metres, got {uncertainty_m}")
        cfg = self.config
        std = max(float(uncertainty_m) / math.sqrt(2.0), cfg.min_position_std_m)
        variance = std * std
        f = self._tracks.get(track_id)
        if f is None or stamp_s - f.stamp > cfg.max_gap_s:
            f = self._tracks[track_id] = self._new(z, variance, stamp_s)
            return self._state(track_id, stamp_s, f.x, f.p, f.updates)
        if stamp_s < f.stamp:
            return self._state(track_id, f.stamp, f.x, f.p, f.updates)
        x, p = self._predicted(f, stamp_s)
        innovation = z - x[:2]
        s = p[:2, :2] + variance * np.eye(2)
        if float(innovation @ np.linalg.solve(s, innovation)) > cfg.outlier_gate_sigma ** 2:
            f.outliers += 1
            if f.outliers >= cfg.max_outliers:
                f = self._tracks[track_id] = self._new(z, variance, stamp_s)
                return self._state(track_id, stamp_s, f.x, f.p, f.updates)
            return self._state(track_id, stamp_s, x, p, f.updates)
        gain = p[:, :2] @ np.linalg.inv(s)
        f.x = x + gain @ innovation
        f.p = (np.eye(4) - gain @ np.eye(2, 4)) @ p
        f.p = (f.p + f.p.T) / 2.0
        f.stamp, f.updates, f.outliers = float(stamp_s), f.updates + 1, 0
        return self._state(track_id, stamp_s, f.x, f.p, f.updates)

    def predict(self, track_id, stamp_s: float) -> GroundTrackState:
        """A track's state carried forward to stamp_s without a measurement; KeyError if unknown."""
        track_id = str(track_id)
        f = self._tracks.get(track_id)
        if f is None:
            raise KeyError(f"no ground track {track_id!r}")
        x, p = self._predicted(f, stamp_s)
        return self._state(track_id, max(stamp_s, f.stamp), x, p, f.updates)

    def drop(self, track_id) -> None:
        self._tracks.pop(str(track_id), None)

    def prune(self, now_s: float) -> list[str]:
        """Drop tracks not updated for forget_after_s; the ids dropped."""
        old = [t for t, f in self._tracks.items() if now_s - f.stamp > self.config.forget_after_s]
        for t in old:
            del self._tracks[t]
        return old
