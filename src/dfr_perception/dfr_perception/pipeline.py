"""From a drone's image to tracks on the ground and the one target it keeps: detection,
tracking, geolocation, a class from size and speed, and the target's selection, loss and
re-acquisition. Plain Python: the perception node and the evaluation both run it.

Frames: the drone's home frame, ENU metres over flat ground (z = height above it), as
in dfr_common.camera_geometry; gimbal angles in MAVLink's MOUNT convention.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from dfr_common.camera_geometry import gimbal_to_world_rotation, ground_homography
from dfr_common.documented import documented
from dfr_perception.detection import Detector
from dfr_perception.geolocation import (
    GeolocationConfig,
    GroundTrackSmoother,
    SmootherConfig,
    geolocate_boxes,
    ground_size_m,
)
from dfr_perception.target_selection import (
    CandidateTrack,
    SelectionConfig,
    TargetCriteria,
    class_membership,
    infer_class,
    select_target,
)
from dfr_perception.tracker import Tracker, TrackerConfig

_EDGE_MARGIN_PX = 3.0   # a box this close to the image's edge may be cut by it
_HELD_LOST_S = 0.5      # a target lost this long may be taken over while the tracker still holds its track


@dataclass(frozen=True)
class CameraPose:
    """Where the camera was when the image was taken."""

    position_enu: tuple[float, float, float]     # the drone, in its home frame; z above the ground
    heading_enu_rad: float                       # the drone's nose, from east, counter-clockwise
    gimbal_pitch_deg: float                      # MOUNT: 0 level, -90 straight down
    gimbal_yaw_deg: float = 0.0                  # MOUNT: from the nose, positive right
    gimbal_roll_deg: float = 0.0

    def rotation(self) -> np.ndarray:
        return gimbal_to_world_rotation(self.heading_enu_rad, self.gimbal_pitch_deg, self.gimbal_roll_deg,
                                        self.gimbal_yaw_deg)

    def finite(self) -> bool:
        values = (*self.position_enu, self.heading_enu_rad, self.gimbal_pitch_deg, self.gimbal_yaw_deg,
                  self.gimbal_roll_deg)
        return all(math.isfinite(v) for v in values)


@dataclass(frozen=True)
class GroundTrack:
    """A track of this image, in the image and on the ground."""

    track_id: int
    state: str                                   # tentative | confirmed | lost
    box: tuple[float, float, float, float]
    confidence: float
    position_xy: np.ndarray                      # home-frame ENU metres; NaN where it could not be placed
    uncertainty_m: float
    velocity_xy: np.ndarray                      # m/s on the ground
    ground_size_m: float
    object_class: str

    @property
    def speed_m_s(self) -> float:
        return float(np.hypot(*self.velocity_xy))

    @property
    def placed(self) -> bool:
        return bool(np.isfinite(self.position_xy).all())


class PerceptionPipeline:
    """One camera's detector, tracker and ground smoother."""

    def __init__(self, detector: Detector, tracker: TrackerConfig | None = None,
                 geolocation: GeolocationConfig | None = None, smoother: SmootherConfig | None = None,
                 selection: SelectionConfig | None = None):
        self.detector = detector
        self.tracker = Tracker(tracker)
        self.geolocation = geolocation or GeolocationConfig()
        self.smoother_config = smoother or SmootherConfig()
        self.smoother = GroundTrackSmoother(self.smoother_config)
        self.selection = selection or SelectionConfig()
        self.last_detections: list = []          # the last image's, for evaluation traces
        self._ground_before: np.ndarray | None = None   # the last image's ground-to-pixel homography
        self._whole_size: dict[int, float] = {}         # each track's ground size when last seen whole

    def reset(self) -> None:
        """A new mission or a gap in the images: nothing carries over."""
        reset = getattr(self.detector, "reset", None)
        if reset is not None:
            reset()
        self.tracker.reset()
        self.smoother = GroundTrackSmoother(self.smoother_config)
        self._ground_before = None
        self._whole_size.clear()

    def process(self, image: np.ndarray, stamp_s: float, pose: CameraPose, k: np.ndarray) -> list[GroundTrack]:
        ground_now = ground_homography(k, pose.position_enu, pose.rotation()) if pose.finite() else None
        hint = None
        if ground_now is not None and self._ground_before is not None:
            hint = ground_motion_homography(self._ground_before, ground_now)
        self._ground_before = ground_now
        detections = self.detector.detect(image, camera_motion_hint=hint)
        self.last_detections = detections
        image_motion = getattr(self.detector, "last_homography", None)
        tracks = self.tracker.update(detections, stamp_s, image_motion if image_motion is not None else hint)
        live = {t.track_id for t in tracks}
        for stale in [i for i in self.smoother.track_ids if int(i) not in live]:
            self.smoother.drop(stale)
        for stale in [i for i in self._whole_size if i not in live]:
            del self._whole_size[stale]
        if not tracks:
            return []
        boxes = np.array([t.box for t in tracks], dtype=float)
        if not pose.finite():
            ground = np.full((len(tracks), 2), np.nan)
            uncertainty = np.full(len(tracks), np.nan)
            sizes = np.full(len(tracks), np.nan)
        else:
            rotation = pose.rotation()
            ground, uncertainty = geolocate_boxes(k, pose.position_enu, rotation, boxes, self.geolocation)
            sizes = ground_size_m(k, pose.position_enu, rotation, boxes, self.geolocation)
        sizes = self._sizes_of_whole_boxes(tracks, boxes, sizes, image.shape[1], image.shape[0])
        out = []
        for track, xy, sigma, size in zip(tracks, ground, uncertainty, sizes):
            velocity = np.full(2, np.nan)
            position = np.asarray(xy, dtype=float)
            if track.state != "lost" and np.isfinite(xy).all() and math.isfinite(float(sigma)):
                state = self.smoother.update(str(track.track_id), stamp_s, xy, float(sigma))
                position, velocity = state.position_xy, state.velocity_xy
            speed = float(np.hypot(*velocity)) if np.isfinite(velocity).all() else math.nan
            kind = infer_class(float(size), speed, self.selection) if math.isfinite(float(size)) and \
                math.isfinite(speed) else "unknown"
            out.append(GroundTrack(track.track_id, track.state, tuple(float(v) for v in track.box),
                                   float(track.score), position, float(sigma), velocity, float(size), kind))
        return out

    def _sizes_of_whole_boxes(self, tracks, boxes: np.ndarray, sizes: np.ndarray, width: int,
                              height: int) -> np.ndarray:
        """Each track's ground size as last measured with its whole box in the image. A box cut by the
        image's edge measures only the part in view: a car leaving the frame measured as an e-bike for
        its last image, and was chosen as the e-bike the drone was sent for."""
        margin = _EDGE_MARGIN_PX
        cut = (boxes[:, 0] <= margin) | (boxes[:, 1] <= margin) | (boxes[:, 2] >= width - 1 - margin) | \
              (boxes[:, 3] >= height - 1 - margin)
        out = np.array(sizes, dtype=float)
        for n, track in enumerate(tracks):
            if not cut[n] and math.isfinite(out[n]):
                self._whole_size[track.track_id] = float(out[n])
            elif cut[n]:
                out[n] = self._whole_size.get(track.track_id, math.nan)
        return out


def _off_the_way_m(position_xy: np.ndarray, way: tuple[np.ndarray, np.ndarray]) -> float:
    """How far a point lies from the segment `way` (start, end)."""
    start, end = way
    step = end - start
    length2 = float(np.dot(step, step))
    along = 0.0 if length2 < 1e-9 else min(1.0, max(0.0, float(np.dot(position_xy - start, step)) / length2))
    return float(np.hypot(*(position_xy - (start + along * step))))


def ground_motion_homography(ground_before: np.ndarray, ground_now: np.ndarray) -> np.ndarray | None:
    """How the ground moved in the image between two frames, from the camera poses alone: the map from
    the earlier frame's pixels to the later one's (None when the earlier view did not see the ground)."""
    try:
        hom = ground_now @ np.linalg.inv(ground_before)
    except np.linalg.LinAlgError:
        return None
    return hom / hom[2, 2] if np.isfinite(hom).all() and abs(hom[2, 2]) > 1e-12 else None


@dataclass
class TargetKeeperConfig:
    reacquire_radius_m: float = documented(25.0, "a new track this close to where a lost target should be now "
                                                 "takes over its identity", 1.0, 500.0)
    reacquire_within_s: float = documented(15.0, "how long after losing a target a new track may take it over",
                                           0.0, 600.0)
    turned_back_min_m: float = documented(5.0, "a track taking over a lost target this far behind where it was "
                                               "last seen (against its heading) means it turned back", 0.0, 100.0)
    handover_radius_m: float = documented(30.0, "a relief drone takes as its target the track this close to "
                                                "where the relieved drone's target should be now", 1.0, 500.0)
    min_age_s: float = documented(0.5, "a track must be this old to be chosen from the incident's description",
                                  0.0, 60.0)
    min_speed_when_fast_m_s: float = documented(3.5, "when the incident says the suspect is moving fast, slower "
                                                      "tracks are not candidates: faster than a jog; the parallax "
                                                      "of a roof or a lane marking seldom looks this fast for long",
                                                0.0, 50.0)
    switch_margin: float = documented(3.0, "while the incident's words choose, a track scoring this much more than "
                                           "the target takes its place", 0.0, 100.0)
    carry_velocity_s: float = documented(1.0, "a new track that takes over a lost target reports the target's "
                                              "last velocity until it is this old: its own starts from rest, and "
                                              "a follower told the rider has stopped lets it get away", 0.0, 30.0)
    class_patience_s: float = documented(30.0, "for this long after the first image only tracks of the class the "
                                               "incident names may be chosen; then the best of any class", 0.0, 3600.0)


@dataclass
class TargetState:
    state: str                                   # none | tracking | lost
    track: GroundTrack | None = None
    last_seen_s: float = math.nan
    selected_by: str = ""
    reason: str = ""
    events: list[str] = field(default_factory=list)


class TargetKeeper:
    """Which track one drone keeps as its target, who chose it and why; loss and re-acquisition."""

    def __init__(self, config: TargetKeeperConfig | None = None, selection: SelectionConfig | None = None):
        self.config = config or TargetKeeperConfig()
        self.selection = selection or SelectionConfig()
        self.criteria: TargetCriteria | None = None
        self.incident_xy: np.ndarray | None = None
        self.target_id: int | None = None
        self.selected_by = ""
        self.reason = ""
        self.last: GroundTrack | None = None
        self.last_seen_s = math.nan
        self._operator_pick: tuple[int, str] | None = None
        self._handover: tuple[np.ndarray, np.ndarray, float, str] | None = None
        self._first_seen: dict[int, float] = {}
        self._started_s: float | None = None
        self._carried: tuple[int, np.ndarray] | None = None      # a taking-over track and the velocity it carries

    def set_incident(self, criteria: TargetCriteria | None, incident_xy) -> None:
        """The mission's incident: its words choose the target unless the operator does."""
        self.criteria = criteria
        self.incident_xy = None if incident_xy is None else np.asarray(incident_xy, dtype=float)

    def clear(self) -> None:
        self.target_id, self.last, self.last_seen_s = None, None, math.nan
        self.selected_by = self.reason = ""
        self._operator_pick = self._handover = None
        self._first_seen.clear()
        self._started_s = None
        self._carried = None

    def operator_select(self, track_id: int, who: str, tracks: list[GroundTrack]) -> str:
        """The operator's choice among the current tracks; ValueError (with the ids there are) if it is not one."""
        ids = [t.track_id for t in tracks if t.state != "lost"]
        if track_id not in ids:
            raise ValueError(f"no track {track_id} in view; tracks now: {', '.join(map(str, ids)) or 'none'}")
        self._operator_pick = (track_id, who)
        return f"track {track_id} chosen by {who}"

    def handover(self, position_xy, velocity_xy, stamp_s: float, from_vehicle: str) -> None:
        """A relieved drone's target as last seen: this drone takes the track that fits where it is now."""
        self._handover = (np.asarray(position_xy, float), np.asarray(velocity_xy, float), float(stamp_s),
                          from_vehicle)

    def update(self, stamp_s: float, tracks: list[GroundTrack]) -> TargetState:
        events: list[str] = []
        for t in tracks:
            self._first_seen.setdefault(t.track_id, stamp_s)
        by_id = {t.track_id: t for t in tracks}
        if self._operator_pick is not None and self._operator_pick[0] in by_id:
            track_id, who = self._operator_pick
            self._take(track_id, f"operator:{who}", f"chosen by {who}", events)
            self._operator_pick = None
        if self.target_id is None and self._handover is not None:
            self._take_handover(stamp_s, tracks, events)
        if self._started_s is None:
            self._started_s = stamp_s
        if self.target_id is not None and (self.target_id not in by_id or by_id[self.target_id].state == "lost"):
            # The tracker lost it, or gave it up: a new track where it should be now takes it over, before any
            # other choice. While the tracker still holds the lost track (it may yet see it again), only a
            # confirmed one: a rider slowing to turn back, or a new track of him starting from rest, is not
            # fast enough for the incident's words, and waiting for the old track to be dropped lost riders
            # at every turn in the evening peak's chase.
            held = self.target_id in by_id
            if not held or stamp_s - self.last_seen_s >= _HELD_LOST_S:
                self._reacquire(stamp_s, tracks, events, confirmed_only=held)
        if self.criteria is not None and self._handover is None and self.selected_by in ("", "incident"):
            self._choose_from_incident(stamp_s, tracks, by_id, events)
        current = by_id.get(self.target_id) if self.target_id is not None else None
        if current is not None and current.state != "lost" and current.placed:
            current = self._with_carried_velocity(current, stamp_s)
            self.last, self.last_seen_s = current, stamp_s
            return TargetState("tracking", current, stamp_s, self.selected_by, self.reason, events)
        if self.target_id is None:
            return TargetState("none", events=events)
        return TargetState("lost", self.last, self.last_seen_s, self.selected_by, self.reason, events)

    def _choose_from_incident(self, stamp_s: float, tracks: list[GroundTrack], by_id: dict, events: list[str]):
        """The incident's words choose, and keep choosing while nobody else has: a better match replaces a
        target that is lost or not of the class they name."""
        wanted = self.criteria.object_class
        strict = wanted is not None and stamp_s - self._started_s < self.config.class_patience_s
        candidates = [CandidateTrack(str(t.track_id), t.position_xy, t.velocity_xy, t.ground_size_m,
                                     t.confidence, stamp_s - self._first_seen[t.track_id])
                      for t in tracks if t.state == "confirmed" and t.placed
                      and np.isfinite(t.velocity_xy).all() and math.isfinite(t.ground_size_m)
                      and stamp_s - self._first_seen[t.track_id] >= self.config.min_age_s
                      and (not strict or t.object_class == wanted)
                      and (not self.criteria.prefer_fast or t.speed_m_s >= self.config.min_speed_when_fast_m_s)]
        current = by_id.get(self.target_id) if self.target_id is not None else None
        taking_over = (current is None or current.state == "lost") and self._recently_seen(stamp_s)
        if taking_over:
            # The target is out of sight for a moment: only a track where it should be now may replace it,
            # not the next best match anywhere in view (a false track ahead would lead the camera away).
            way = self._way_since_seen(stamp_s)
            candidates = [c for c in candidates
                          if _off_the_way_m(np.asarray(c.position_xy), way) <= self.config.reacquire_radius_m
                          and self._like_target(by_id[int(c.track_id)])]
        if not candidates:
            return
        chosen, reason, scores = select_target(candidates, self.criteria, self.incident_xy, self.selection)
        if chosen is None or int(chosen) == self.target_id:
            return
        if current is not None and current.state != "lost":
            # A target in view is kept unless a clearly better one has come: its class from size and speed
            # flickers (an e-bike seen end-on at a turn may measure as a car), and a switch on one frame's
            # class would hand the camera to whatever else moves.
            # Left out of this frame's candidates (its class or speed off for a moment), it is kept too.
            totals = {tid: s.total for tid, s in scores.items() if s.excluded is None}
            if str(self.target_id) not in totals or \
                    totals[str(chosen)] - totals[str(self.target_id)] < self.config.switch_margin:
                return
        if self.target_id is not None:
            events.append(f"target re-chosen: track {chosen} fits the incident better than track "
                          f"{self.target_id}")
        self._take(int(chosen), "incident", reason, events)
        if taking_over:
            self._carry_velocity(by_id[int(chosen)])

    def _target_class(self) -> str | None:
        """The class the target is kept as: the one the incident names, else the one it was last seen as."""
        if self.criteria is not None and self.criteria.object_class is not None:
            return self.criteria.object_class
        if self.last is not None and self.last.object_class in self.selection.classes:
            return self.last.object_class
        return None

    def _like_target(self, track: GroundTrack) -> bool:
        """Whether a track may take over the target: its size fits (a car does not take over a lost e-bike
        because it is where the e-bike should be). Judged at the target's last speed: a new track's own
        starts from rest."""
        wanted = self._target_class()
        if wanted is None or self.last is None:
            return True
        speed = self.last.speed_m_s if math.isfinite(self.last.speed_m_s) else 0.0
        return class_membership(track.ground_size_m, speed, self.selection)[wanted] >= \
            self.selection.min_class_membership

    def _carry_velocity(self, track: GroundTrack) -> None:
        """The track taking over the target as last seen reports its speed for a while (its own starts from
        rest). Its heading is the last one, unless the new track lies behind where the target was: then the
        rider turned back, and the way from there to the new track is the better guess."""
        velocity = self.last.velocity_xy if self.last is not None else None
        if velocity is None or not np.isfinite(velocity).all():
            self._carried = None
            return
        velocity = np.asarray(velocity, float)
        moved = track.position_xy - self.last.position_xy
        distance = float(np.hypot(*moved))
        if distance >= self.config.turned_back_min_m and float(np.dot(moved, velocity)) < 0.0:
            velocity = moved / distance * float(np.hypot(*velocity))
        self._carried = (track.track_id, velocity)

    def _with_carried_velocity(self, track: GroundTrack, stamp_s: float) -> GroundTrack:
        if self._carried is None or self._carried[0] != track.track_id:
            return track
        if stamp_s - self._first_seen.get(track.track_id, stamp_s) >= self.config.carry_velocity_s:
            self._carried = None
            return track
        return dataclasses.replace(track, velocity_xy=self._carried[1].copy())

    def _take(self, track_id: int, by: str, reason: str, events: list[str]) -> None:
        if self.target_id != track_id:
            events.append(f"target: track {track_id} ({by}): {reason}")
        self.target_id, self.selected_by, self.reason = track_id, by, reason

    def _predicted(self, position, velocity, since_s: float, now_s: float) -> np.ndarray:
        v = velocity if np.isfinite(velocity).all() else np.zeros(2)
        return position + v * max(0.0, now_s - since_s)

    def _nearest(self, tracks: list[GroundTrack], distance, radius: float) -> GroundTrack | None:
        """The live, placed track other than the target whose `distance(track)` (a tuple, compared in order)
        is least, its first element within `radius`."""
        near = [(distance(t), t) for t in tracks
                if t.state != "lost" and t.placed and t.track_id != self.target_id]
        near = [(d, t) for d, t in near if d[0] <= radius]
        return min(near, key=lambda x: x[0])[1] if near else None

    def _take_handover(self, stamp_s: float, tracks: list[GroundTrack], events: list[str]) -> None:
        position, velocity, since, vehicle = self._handover
        where = self._predicted(position, velocity, since, stamp_s)
        match = self._nearest(tracks, lambda t: (float(np.hypot(*(t.position_xy - where))),),
                              self.config.handover_radius_m)
        if match is not None:
            self._handover = None
            self._take(match.track_id, f"handover:{vehicle}",
                       f"{vehicle}'s target, {float(np.hypot(*(match.position_xy - where))):.0f} m from where it "
                       "should be", events)

    def _recently_seen(self, stamp_s: float) -> bool:
        return self.last is not None and math.isfinite(self.last_seen_s) and \
            stamp_s - self.last_seen_s <= self.config.reacquire_within_s

    def _reacquire(self, stamp_s: float, tracks: list[GroundTrack], events: list[str],
                   confirmed_only: bool = False) -> None:
        if not self._recently_seen(stamp_s):
            return
        way = self._way_since_seen(stamp_s)
        # On the way it may have gone; of two there, the one nearer where its last velocity puts it.
        match = self._nearest([t for t in tracks if self._like_target(t)
                               and (not confirmed_only or t.state == "confirmed")],
                              lambda t: (_off_the_way_m(t.position_xy, way),
                                         float(np.hypot(*(t.position_xy - way[1])))),
                              self.config.reacquire_radius_m)
        if match is not None:
            events.append(f"target re-acquired: track {match.track_id} takes over from track {self.target_id}")
            self.target_id = match.track_id
            self._carry_velocity(match)

    def _way_since_seen(self, stamp_s: float) -> tuple[np.ndarray, np.ndarray]:
        """The way a lost target may have gone since it was last seen: anywhere from where it was (it stopped,
        or turned back) to where its last velocity takes it by now. A point predicted along the last velocity
        alone lost every rider who turned back at the end of a street."""
        start = np.asarray(self.last.position_xy, float)
        return start, self._predicted(start, self.last.velocity_xy, self.last_seen_s, stamp_s)
