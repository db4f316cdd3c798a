"""Multi-object tracking of detections in image pixels, in the spirit of ByteTrack.

Each track is a constant-velocity Kalman filter on its box: centre x, y, width, height and
their rates, predicted over the real time between updates (frames may be irregular or
dropped), with process noise that grows with that time. All tracks' filters live in
stacked numpy arrays, so a predict or an update is a handful of array operations whatever
the number of tracks.

Association, every update:

1. detections with score >= high_score go first, against every confirmed and lost track;
2. the remaining confirmed tracks (not lost ones) then take the low-score detections
   (low_score <= score < high_score): a vehicle half hidden by a tree scores low but is
   still the same vehicle, whereas a low score alone is too weak to revive a lost track;
3. high-score detections still unmatched go against tentative tracks; tentative tracks
   that find nothing are dropped at once (a one-frame blip should not linger);
4. high-score detections still unmatched (score >= new_track_score) start tentative tracks,
   confirmed after min_hits updates.

Each stage solves one assignment (scipy's linear_sum_assignment) on the cost 1 - IoU
between predicted and detected boxes, gated at min_iou. Small fast objects (an e-bike a
few pixels long) may not overlap their prediction at all, so a pair with too little IoU
may still match when the detection's centre lies within the track's predicted position
uncertainty (Mahalanobis distance of the centres, chi-square gate) and the sizes agree;
such pairs always cost more than any pair matched on IoU. A confirmed track that finds no
detection becomes lost and keeps predicting; matched again within max_lost_s it resumes
with its old id, otherwise it is removed. Ids are never reused, not even after reset().

The tracker works in image pixels. When the camera's image-to-image homography is known
(the motion detector's last_homography), pass it to update(): tracks are carried along
with the camera first, so a gimbal slew does not look like every object jumping.

Plain numpy and scipy, no clock: time comes in as stamp_s. The perception node wraps it.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from dfr_common.documented import documented
from dfr_perception.detection import Detection, iou_matrix

TENTATIVE, CONFIRMED, LOST = 0, 1, 2
_STATE_NAMES = ("tentative", "confirmed", "lost")
_NO_MATCH = 1e6                  # cost of a forbidden pair
_AXES = np.arange(4)             # cx, cy, w, h in the state; their rates are at +4


@dataclass(frozen=True)
class Track:
    """One tracked object, as of the last update."""

    track_id: int
    box: tuple[float, float, float, float]          # x_min, y_min, x_max, y_max, image pixels
    velocity_px_s: tuple[float, float]              # of the box centre
    score: float                                    # of the last detection matched
    label: str                                      # of the last detection matched
    state: str                                      # "tentative" | "confirmed" | "lost"
    hits: int                                       # detections matched so far
    age_s: float                                    # since the first detection
    time_since_update_s: float                      # since the last detection matched


@dataclass
class TrackerConfig:
    """Everything an operator may tune about tracking."""

    high_score: float = documented(0.5, "detections at least this confident are matched first and may start "
                                        "tracks", 0.0, 1.0)
    low_score: float = documented(0.1, "detections below this are ignored; between it and high_score they "
                                       "only keep confirmed tracks alive", 0.0, 1.0)
    new_track_score: float = documented(0.55, "an unmatched detection at least this confident starts a track",
                                        0.0, 1.0)
    min_iou: float = documented(0.1, "a pair overlapping less than this does not match on IoU", 0.0, 1.0)
    centre_gate_chi2: float = documented(9.21, "pairs without enough IoU may still match when the squared "
                                               "Mahalanobis distance of the centres is below this (9.21: 99% "
                                               "for 2 degrees of freedom); 0 off", 0.0, 100.0)
    centre_gate_max_sizes: float = documented(3.0, "a centre-distance match also needs the detection's centre within "
                                                    "this many of the track's box sizes (its larger side, padded by "
                                                    "the pixel noise) of the predicted centre: a lost track's "
                                                    "uncertainty grows fast, and without a bound it takes whatever "
                                                    "moves nearby; 0 no bound", 0.0, 100.0)
    max_size_ratio: float = documented(2.0, "a centre-distance match needs width and height within this factor",
                                       1.0, 10.0)
    min_hits: int = documented(3, "detections that confirm a track", 1, 100)
    max_lost_s: float = documented(1.5, "a lost track is removed after this long without a detection",
                                   0.0, 600.0)
    centre_accel_std_px_s2: float = documented(150.0, "process noise: unexplained acceleration of a box "
                                                      "centre, px/s^2 (camera shake, turns, braking)", 0.0, 1e5)
    size_accel_std_px_s2: float = documented(60.0, "process noise: unexplained rate of change of box size, "
                                                   "px/s^2", 0.0, 1e5)
    measurement_std_px: float = documented(2.0, "detector box noise, px, added to measurement_std_fraction of "
                                                "the box size", 0.0, 1e4)
    measurement_std_fraction: float = documented(0.05, "detector box noise as a fraction of box size",
                                                 0.0, 1.0)
    initial_velocity_std_px_s: float = documented(80.0, "uncertainty of a new track's velocity, px/s", 0.0, 1e5)
    initial_size_rate_std_px_s: float = documented(20.0, "uncertainty of how fast a new track's box grows or "
                                                         "shrinks, px/s", 0.0, 1e5)
    max_dt_s: float = documented(5.0, "longest prediction step; a longer gap is predicted over this long "
                                      "(tracks are then long lost anyway)", 0.01, 600.0)
    min_box_px: float = documented(1.0, "smallest width or height a track's box shrinks to", 0.01, 100.0)

    def __post_init__(self):
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            raise ValueError(f"need 0 <= low_score ({self.low_score}) <= high_score ({self.high_score}) <= 1")
        if self.new_track_score < self.high_score:
            raise ValueError(f"new_track_score ({self.new_track_score}) must be at least high_score "
                             f"({self.high_score}): only high-score detections start tracks")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be at least 1, got {self.min_hits}")


class Tracker:
    """Tracks detections from one camera; call update() once per processed frame, in time order."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Drop every track (ids already given out stay used)."""
        self._x = np.zeros((0, 8))          # cx, cy, w, h, vcx, vcy, vw, vh
        self._p = np.zeros((0, 8, 8))
        self._ids = np.zeros(0, np.int64)
        self._state = np.zeros(0, np.int8)
        self._hits = np.zeros(0, np.int64)
        self._born_s = np.zeros(0)
        self._updated_s = np.zeros(0)
        self._score = np.zeros(0)
        self._labels: list[str] = []
        self._stamp_s: float | None = None

    def __len__(self) -> int:
        return len(self._ids)

    # ------------------------------------------------------------------ Kalman filter
    def _predict(self, dt: float) -> None:
        if dt <= 0.0 or not len(self._ids):
            return
        cfg = self.config
        dt = min(dt, cfg.max_dt_s)
        self._x[:, :4] += dt * self._x[:, 4:]
        f = np.eye(8)
        f[_AXES, _AXES + 4] = dt
        # White-noise acceleration: per axis q * [[dt^3/3, dt^2/2], [dt^2/2, dt]].
        q = np.array([cfg.centre_accel_std_px_s2] * 2 + [cfg.size_accel_std_px_s2] * 2) ** 2
        noise = np.zeros((8, 8))
        noise[_AXES, _AXES] = q * dt ** 3 / 3.0
        noise[_AXES, _AXES + 4] = noise[_AXES + 4, _AXES] = q * dt ** 2 / 2.0
        noise[_AXES + 4, _AXES + 4] = q * dt
        self._p = f @ self._p @ f.T + noise
        self._x[:, 2:4] = np.maximum(self._x[:, 2:4], cfg.min_box_px)

    def _follow_camera(self, hom) -> None:
        """Map every track into the new image: centres through the homography, velocities, sizes and
        covariances through its local linearisation at each centre."""
        hom = np.asarray(hom, float)
        if hom.shape != (3, 3) or not np.isfinite(hom).all():
            raise ValueError(f"image_motion must be a finite 3 x 3 homography, got shape {hom.shape}")
        if not len(self._ids):
            return
        x = self._x
        w = hom[2, 0] * x[:, 0] + hom[2, 1] * x[:, 1] + hom[2, 2]
        if (np.abs(w) < 1e-9).any():
            raise ValueError("image_motion maps a track's centre to infinity")
        u = (hom[0, 0] * x[:, 0] + hom[0, 1] * x[:, 1] + hom[0, 2]) / w
        v = (hom[1, 0] * x[:, 0] + hom[1, 1] * x[:, 1] + hom[1, 2]) / w
        # d(u, v)/d(x, y) at each centre.
        jac = np.empty((len(x), 2, 2))
        jac[:, 0, 0], jac[:, 0, 1] = (hom[0, 0] - hom[2, 0] * u) / w, (hom[0, 1] - hom[2, 1] * u) / w
        jac[:, 1, 0], jac[:, 1, 1] = (hom[1, 0] - hom[2, 0] * v) / w, (hom[1, 1] - hom[2, 1] * v) / w
        scale = np.sqrt(np.abs(jac[:, 0, 0] * jac[:, 1, 1] - jac[:, 0, 1] * jac[:, 1, 0]))
        t = np.zeros((len(x), 8, 8))
        t[:, :2, :2] = t[:, 4:6, 4:6] = jac
        t[:, [2, 3, 6, 7], [2, 3, 6, 7]] = scale[:, None]
        self._x = np.einsum("nij,nj->ni", t, x)
        self._x[:, 0], self._x[:, 1] = u, v
        self._p = t @ self._p @ t.transpose(0, 2, 1)

    def _measurement_var(self, sizes: np.ndarray) -> np.ndarray:
        """N x 4 variances of measured cx, cy, w, h for boxes of these N x 2 (w, h) sizes."""
        cfg = self.config
        scale = np.tile(sizes, 2)                                     # cx goes with w, cy with h
        return (cfg.measurement_std_px + cfg.measurement_std_fraction * scale) ** 2

    def _correct(self, rows: np.ndarray, z: np.ndarray) -> None:
        """Kalman update of the tracks at rows with measurements z (N x 4: cx, cy, w, h)."""
        x, p = self._x[rows], self._p[rows]
        s = p[:, :4, :4] + _diag(self._measurement_var(z[:, 2:]))
        gain = np.linalg.solve(s, p[:, :4, :]).transpose(0, 2, 1)         # P H^T S^-1, as S is symmetric
        x = x + np.einsum("nij,nj->ni", gain, z - x[:, :4])
        p = p - gain @ p[:, :4, :]
        self._x[rows] = x
        self._p[rows] = 0.5 * (p + p.transpose(0, 2, 1))
        self._x[rows, 2:4] = np.maximum(self._x[rows, 2:4], self.config.min_box_px)

    # ------------------------------------------------------------------ association
    def _cost(self, rows: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Cost of matching tracks at rows with detected boxes; _NO_MATCH where gated out."""
        cfg = self.config
        if not len(rows) or not len(boxes):
            return np.zeros((len(rows), len(boxes)))
        x = self._x[rows]
        pred = np.concatenate([x[:, :2] - x[:, 2:4] / 2.0, x[:, :2] + x[:, 2:4] / 2.0], axis=1)
        iou = iou_matrix(pred, boxes)
        cost = np.where((iou >= cfg.min_iou) & (iou > 0.0), 1.0 - iou, _NO_MATCH)
        if cfg.centre_gate_chi2 > 0:
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
            sizes = boxes[:, 2:] - boxes[:, :2]
            d = centres[None, :, :] - x[:, None, :2]                          # tracks x detections x 2
            var = self._p[rows][:, :2, :2][:, None] + _diag(self._measurement_var(sizes)[:, :2])[None]
            det = var[..., 0, 0] * var[..., 1, 1] - var[..., 0, 1] * var[..., 1, 0]
            m2 = (var[..., 1, 1] * d[..., 0] ** 2 - 2 * var[..., 0, 1] * d[..., 0] * d[..., 1]
                  + var[..., 0, 0] * d[..., 1] ** 2) / det
            # Sizes padded by twice the detector's pixel noise: a box a few pixels across changes size by that
            # much from frame to frame (and its predicted size with it), which says nothing about identity.
            pad = 2.0 * cfg.measurement_std_px
            ratio = np.maximum((sizes[None, :, :] + pad) / (x[:, None, 2:4] + pad),
                               (x[:, None, 2:4] + pad) / (sizes[None] + pad))
            near = (m2 <= cfg.centre_gate_chi2) & (ratio.max(axis=2) <= cfg.max_size_ratio)
            if cfg.centre_gate_max_sizes > 0:
                reach = cfg.centre_gate_max_sizes * (x[:, 2:4].max(axis=1) + pad)
                near &= np.hypot(d[..., 0], d[..., 1]) <= reach[:, None]
            # Always dearer than any IoU match, cheaper the nearer.
            fallback = 1.0 - cfg.min_iou * (1.0 - m2 / cfg.centre_gate_chi2) * 0.999
            cost = np.where((cost >= _NO_MATCH) & near, fallback, cost)
        return cost

    @staticmethod
    def _assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of the cheapest admissible matching."""
        if cost.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        r, c = linear_sum_assignment(cost)
        ok = cost[r, c] < _NO_MATCH
        return r[ok], c[ok]

    # ------------------------------------------------------------------ update
    def update(self, detections: Sequence[Detection], stamp_s: float,
               image_motion: np.ndarray | None = None) -> list[Track]:
        """Fold in one frame's detections taken at stamp_s (seconds, any epoch, non-decreasing) and return
        every live track (tentative, confirmed and lost; filter on Track.state as needed).

        image_motion: the 3 x 3 homography from the previous update's image to this one (the motion
        detector's last_homography), when known. Tracks are carried along with it first, so a camera
        that turns or jumps does not look like every object moving, and velocities are then relative
        to the ground rather than to the image."""
        cfg = self.config
        stamp_s = float(stamp_s)
        if not math.isfinite(stamp_s):
            raise ValueError(f"stamp_s must be finite, got {stamp_s}")
        if self._stamp_s is not None and stamp_s < self._stamp_s:
            raise ValueError(f"stamp_s went backwards: {stamp_s} after {self._stamp_s}; call reset() when the "
                             f"clock jumps back")
        dt = 0.0 if self._stamp_s is None else stamp_s - self._stamp_s
        self._stamp_s = stamp_s
        if image_motion is not None:
            self._follow_camera(image_motion)
        self._predict(dt)

        boxes, scores, labels = _as_arrays(detections)
        kept = np.flatnonzero(scores >= cfg.low_score)
        # One cost matrix, all tracks by all kept detections; each stage takes its block.
        cost = self._cost(np.arange(len(self._ids)), boxes[kept])
        is_high = scores[kept] >= cfg.high_score
        high, low = np.flatnonzero(is_high), np.flatnonzero(~is_high)       # positions in kept
        matched_rows, matched_dets = [], []

        def stage(rows: np.ndarray, dets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r, c = self._assign(cost[np.ix_(rows, dets)])
            matched_rows.append(rows[r])
            matched_dets.append(dets[c])
            return _without(rows, r), _without(dets, c)

        # 1. high-score detections against confirmed and lost tracks
        rest_rows, rest_high = stage(np.flatnonzero(self._state != TENTATIVE), high)
        # 2. low-score detections against confirmed tracks still unmatched
        stage(rest_rows[self._state[rest_rows] == CONFIRMED], low)
        # 3. remaining high-score detections against tentative tracks
        unmatched_tentative, rest_high = stage(np.flatnonzero(self._state == TENTATIVE), rest_high)

        rows = np.concatenate(matched_rows).astype(np.int64)
        dets = kept[np.concatenate(matched_dets).astype(np.int64)]
        if len(rows):
            self._correct(rows, _box_to_z(boxes[dets]))
            self._hits[rows] += 1
            self._updated_s[rows] = stamp_s
            self._score[rows] = scores[dets]
            for row, det in zip(rows.tolist(), dets.tolist()):
                self._labels[row] = labels[det]
            self._state[rows] = np.where(self._hits[rows] >= cfg.min_hits, CONFIRMED, TENTATIVE)

        # Unmatched confirmed tracks become lost; lost too long, or tentative and unmatched: gone.
        unmatched = np.ones(len(self._ids), bool)
        unmatched[rows] = False
        self._state[unmatched & (self._state == CONFIRMED)] = LOST
        dead = unmatched & (self._state == LOST) & (stamp_s - self._updated_s > cfg.max_lost_s)
        dead[unmatched_tentative] = True
        if dead.any():
            self._remove(~dead)

        rest_high = kept[rest_high]
        births = rest_high[scores[rest_high] >= cfg.new_track_score]
        if len(births):
            self._add(boxes[births], scores[births], [labels[i] for i in births.tolist()], stamp_s)
        return self.tracks()

    def _remove(self, keep: np.ndarray) -> None:
        self._x, self._p, self._ids = self._x[keep], self._p[keep], self._ids[keep]
        self._state, self._hits, self._score = self._state[keep], self._hits[keep], self._score[keep]
        self._born_s, self._updated_s = self._born_s[keep], self._updated_s[keep]
        self._labels = [label for label, k in zip(self._labels, keep.tolist()) if k]

    def _add(self, boxes: np.ndarray, scores: np.ndarray, labels: list[str], stamp_s: float) -> None:
        cfg = self.config
        n = len(boxes)
        z = _box_to_z(boxes)
        x = np.zeros((n, 8))
        x[:, :4] = z
        p = np.zeros((n, 8, 8))
        idx = np.arange(4)
        p[:, idx, idx] = self._measurement_var(z[:, 2:])
        rate_std = np.array([cfg.initial_velocity_std_px_s] * 2 + [cfg.initial_size_rate_std_px_s] * 2)
        p[:, idx + 4, idx + 4] = rate_std ** 2
        ids = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        state = CONFIRMED if cfg.min_hits <= 1 else TENTATIVE
        self._x = np.concatenate([self._x, x])
        self._p = np.concatenate([self._p, p])
        self._ids = np.concatenate([self._ids, ids])
        self._state = np.concatenate([self._state, np.full(n, state, np.int8)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int64)])
        self._born_s = np.concatenate([self._born_s, np.full(n, stamp_s)])
        self._updated_s = np.concatenate([self._updated_s, np.full(n, stamp_s)])
        self._score = np.concatenate([self._score, scores])
        self._labels.extend(labels)

    def tracks(self) -> list[Track]:
        """Every live track as of the last update."""
        if not len(self._ids):
            return []
        x = self._x
        boxes = np.concatenate([x[:, :2] - x[:, 2:4] / 2.0, x[:, :2] + x[:, 2:4] / 2.0], axis=1).tolist()
        velocity = x[:, 4:6].tolist()
        now = self._stamp_s
        return [Track(int(i), tuple(b), tuple(v), float(s), label, _STATE_NAMES[st], int(h), now - born, now - upd)
                for i, b, v, s, label, st, h, born, upd in zip(
                    self._ids.tolist(), boxes, velocity, self._score.tolist(), self._labels, self._state.tolist(),
                    self._hits.tolist(), self._born_s.tolist(), self._updated_s.tolist())]


def _as_arrays(detections: Sequence[Detection]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if not detections:
        return np.zeros((0, 4)), np.zeros(0), []
    table = np.array([(d.x_min, d.y_min, d.x_max, d.y_max, d.score) for d in detections], float)
    return table[:, :4], table[:, 4], [d.label for d in detections]


def _box_to_z(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2.0, boxes[:, 2:] - boxes[:, :2]], axis=1)


def _diag(values: np.ndarray) -> np.ndarray:
    """Stack of diagonal matrices from N x k values: N x k x k."""
    out = np.zeros(values.shape + values.shape[-1:])
    idx = np.arange(values.shape[-1])
    out[..., idx, idx] = values
    return out


def _without(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """values less the entries at positions."""
    keep = np.ones(len(values), bool)
    keep[positions] = False
    return values[keep]
