"""What each mission recorded, kept under retention: its target's track and its (redacted) video.

Where a drone's target was, each time perception saw it, is a recording of a person's movements,
and the video is what critics fear most: both go in the retention store (dfr_audit.retention)
when the mission ends, each logged there as footage_recorded ("track" or "footage"), and are
deleted with a log entry once the retention period has passed, unless the incident is marked as
evidence. A mission's recordings are finished when its vehicle moves on to another mission or to
none, or when everything is finished at shutdown; a mission that recorded nothing leaves nothing.
Plain Python and OpenCV: the audit node feeds it.
"""
from __future__ import annotations

import itertools
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from dfr_common.sampling import sample_due

TRACK_FILE = "target_track.json"
FOOTAGE_FILE = "footage.avi"
TRACK_FORMAT = 1


class _PerMission:
    """Something recorded per (vehicle, mission), finished when the vehicle leaves the mission."""

    def __init__(self):
        self._open: dict[tuple[str, str], object] = {}       # (vehicle, mission) -> what is being recorded
        self._mission: dict[str, str] = {}                    # vehicle -> its current mission
        self._finished: set[tuple[str, str]] = set()          # a late arrival does not reopen one

    def _recording(self, vehicle_id: str, mission_id: str, start):
        """The open recording of the mission, started with start() if new; None if the mission is over."""
        key = (vehicle_id, mission_id)
        if not mission_id or key in self._finished:
            return None
        if key not in self._open:
            self._open[key] = start()
        return self._open[key]

    def on_mission(self, vehicle_id: str, mission_id: str) -> list:
        """The vehicle's current mission ("" when idle): what the missions it has left recorded."""
        previous = self._mission.get(vehicle_id)
        self._mission[vehicle_id] = mission_id
        if previous == mission_id:
            return []
        return self._finish([key for key in self._open if key[0] == vehicle_id and key[1] != mission_id])

    def current_mission(self, vehicle_id: str) -> str:
        return self._mission.get(vehicle_id, "")

    def finish_all(self) -> list:
        return self._finish(list(self._open))

    def _finish(self, keys) -> list:
        done = []
        for key in keys:
            self._finished.add(key)
            finished = self._close(key, self._open.pop(key))
            if finished is not None:
                done.append(finished)
        return done

    def _close(self, key: tuple[str, str], recording):
        raise NotImplementedError


# --------------------------------------------------------------------------- target tracks
@dataclass(frozen=True)
class TrackPoint:
    stamp_s: float               # ROS time of the image it was seen in
    track_id: int
    latitude: float
    longitude: float


@dataclass(frozen=True)
class FinishedTrack:
    """One mission's target track, ready for the store."""

    vehicle_id: str
    mission_id: str
    incident_id: str
    points: tuple[TrackPoint, ...]

    def as_json(self) -> dict:
        return {"format": TRACK_FORMAT, "vehicle_id": self.vehicle_id, "mission_id": self.mission_id,
                "incident_id": self.incident_id,
                "points": [{"stamp_s": p.stamp_s, "track_id": p.track_id, "latitude": p.latitude,
                            "longitude": p.longitude} for p in self.points]}


@dataclass
class _Track:
    incident_id: str
    points: list[TrackPoint] = field(default_factory=list)


class MissionTracks(_PerMission):
    """Target sightings per mission."""

    def __init__(self, max_points: int = 100_000):
        super().__init__()
        self.max_points = max_points

    def add(self, vehicle_id: str, mission_id: str, incident_id: str, point: TrackPoint) -> None:
        """A sighting of the mission's target; one without a mission or a finite position is not kept."""
        if not (math.isfinite(point.latitude) and math.isfinite(point.longitude)):
            return
        track = self._recording(vehicle_id, mission_id, lambda: _Track(incident_id))
        if track is not None and len(track.points) < self.max_points:
            track.points.append(point)

    def _close(self, key, track: _Track) -> FinishedTrack | None:
        return FinishedTrack(key[0], key[1], track.incident_id, tuple(track.points)) if track.points else None


# --------------------------------------------------------------------------- video
@dataclass(frozen=True)
class FinishedFootage:
    """One mission's video, in a scratch file the store takes over."""

    vehicle_id: str
    mission_id: str
    incident_id: str
    path: Path
    frames: int


@dataclass
class _Video:
    incident_id: str
    path: Path
    writer: cv2.VideoWriter | None = None
    size: tuple[int, int] | None = None
    frames: int = 0
    last_s: float = -math.inf


class MissionFootage(_PerMission):
    """Each mission's images into one Motion-JPEG AVI, at most `rate_hz` of them per second of ROS time."""

    def __init__(self, rate_hz: float = 2.0, scratch_dir: str | None = None):
        super().__init__()
        if not (math.isfinite(rate_hz) and rate_hz > 0.0):
            raise ValueError(f"rate_hz is {rate_hz}; give a positive rate")
        self.rate_hz = rate_hz
        self._scratch = Path(tempfile.mkdtemp(prefix="dfr_footage_", dir=scratch_dir))
        self._counter = itertools.count(1)

    def add(self, vehicle_id: str, mission_id: str, incident_id: str, stamp_s: float, image: np.ndarray) -> bool:
        """One image (H x W x 3 RGB, or grey); False where it is not kept (rate, no mission, another size)."""
        video = self._recording(vehicle_id, mission_id, lambda: _Video(incident_id, self._scratch_path(
            vehicle_id, mission_id)))
        if video is None or not sample_due(video.last_s, stamp_s, self.rate_hz):
            return False
        frame = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else cv2.cvtColor(image,
                                                                                            cv2.COLOR_GRAY2BGR)
        size = (frame.shape[1], frame.shape[0])
        if video.writer is None:
            video.writer = cv2.VideoWriter(str(video.path), cv2.VideoWriter_fourcc(*"MJPG"), self.rate_hz, size)
            if not video.writer.isOpened():
                raise OSError(f"OpenCV cannot write Motion-JPEG video to {video.path}")
            video.size = size
        elif size != video.size:
            return False
        video.writer.write(frame)
        video.frames += 1
        video.last_s = stamp_s
        return True

    def close(self) -> None:
        """Finish nothing more: drop the scratch folder (what the store did not take with it)."""
        for video in self._open.values():
            if video.writer is not None:
                video.writer.release()
        self._open.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _scratch_path(self, vehicle_id: str, mission_id: str) -> Path:
        """A folder of its own (named by a counter: ids are not file names) for the store's file name."""
        folder = self._scratch / str(next(self._counter))
        folder.mkdir()
        return folder / FOOTAGE_FILE

    def _close(self, key, video: _Video) -> FinishedFootage | None:
        if video.writer is None:
            return None
        video.writer.release()
        return FinishedFootage(key[0], key[1], video.incident_id, video.path, video.frames)
