"""Each mission's target track, kept as a recording under retention.

Where a drone's target was, each time perception saw it, is a recording of a person's movements:
it goes in the retention store (dfr_audit.retention) when the mission ends, is logged there as
footage_recorded (kind "track"), and is deleted with its log entry once the retention period has
passed, unless its incident is marked as evidence. Plain Python: the audit node feeds it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

TRACK_FILE = "target_track.json"
TRACK_FORMAT = 1


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
class _Open:
    incident_id: str
    points: list[TrackPoint] = field(default_factory=list)


class MissionTracks:
    """Target sightings per mission; a mission's track is finished when its vehicle moves on to another
    mission or to none, or when everything is finished at shutdown. A mission that never saw a target
    leaves no recording."""

    def __init__(self, max_points: int = 100_000):
        self.max_points = max_points
        self._open: dict[tuple[str, str], _Open] = {}        # (vehicle, mission) -> its sightings
        self._mission: dict[str, str] = {}                    # vehicle -> its current mission
        self._finished: set[tuple[str, str]] = set()          # a late sighting does not reopen one

    def add(self, vehicle_id: str, mission_id: str, incident_id: str, point: TrackPoint) -> None:
        """A sighting of the mission's target; one without a mission or a finite position is not kept."""
        if not mission_id or (vehicle_id, mission_id) in self._finished \
                or not (math.isfinite(point.latitude) and math.isfinite(point.longitude)):
            return
        entry = self._open.setdefault((vehicle_id, mission_id), _Open(incident_id))
        if len(entry.points) < self.max_points:
            entry.points.append(point)

    def on_mission(self, vehicle_id: str, mission_id: str) -> list[FinishedTrack]:
        """The vehicle's current mission ("" when idle): the tracks of the missions it has left."""
        previous = self._mission.get(vehicle_id)
        self._mission[vehicle_id] = mission_id
        if previous == mission_id:
            return []
        return self._finish([key for key in self._open if key[0] == vehicle_id and key[1] != mission_id])

    def finish_all(self) -> list[FinishedTrack]:
        return self._finish(list(self._open))

    def _finish(self, keys: list[tuple[str, str]]) -> list[FinishedTrack]:
        finished = []
        for key in keys:
            entry = self._open.pop(key)
            self._finished.add(key)
            if entry.points:
                finished.append(FinishedTrack(key[0], key[1], entry.incident_id, tuple(entry.points)))
        return finished
