"""Unit tests of dfr_audit.track_recordings: which sightings make which mission's recording, and when."""
import math

from dfr_audit.track_recordings import MissionTracks, TrackPoint


def point(t, track_id=7, lat=51.54, lon=-0.10):
    return TrackPoint(t, track_id, lat, lon)


def test_a_mission_track_is_finished_when_its_vehicle_moves_on():
    tracks = MissionTracks()
    assert tracks.on_mission("uav1", "M1") == []
    tracks.add("uav1", "M1", "INC-1", point(1.0))
    tracks.add("uav1", "M1", "INC-1", point(1.2, track_id=9))
    assert tracks.on_mission("uav1", "M1") == []                # still on it
    (done,) = tracks.on_mission("uav1", "")
    assert (done.vehicle_id, done.mission_id, done.incident_id) == ("uav1", "M1", "INC-1")
    assert [p.track_id for p in done.points] == [7, 9]
    assert done.as_json()["points"][1] == {"stamp_s": 1.2, "track_id": 9, "latitude": 51.54, "longitude": -0.10}


def test_a_mission_that_saw_nothing_leaves_no_recording_and_others_are_apart():
    tracks = MissionTracks()
    tracks.on_mission("uav1", "M1")
    tracks.on_mission("uav2", "M2")
    tracks.add("uav2", "M2", "INC-2", point(3.0))
    assert tracks.on_mission("uav1", "M3") == []                # M1 saw nothing
    assert [t.mission_id for t in tracks.finish_all()] == ["M2"]


def test_late_sightings_of_a_finished_mission_and_placeless_ones_are_not_kept():
    tracks = MissionTracks()
    tracks.on_mission("uav1", "M1")
    tracks.add("uav1", "M1", "INC-1", point(1.0))
    assert len(tracks.on_mission("uav1", "")) == 1
    tracks.add("uav1", "M1", "INC-1", point(1.4))                # arrived after the status said idle
    tracks.add("uav1", "", "INC-1", point(1.5))                  # no mission
    tracks.add("uav1", "M4", "INC-1", point(1.6, lat=math.nan))  # no place
    assert tracks.finish_all() == []


def test_a_very_long_track_is_capped():
    tracks = MissionTracks(max_points=3)
    for i in range(10):
        tracks.add("uav1", "M1", "INC-1", point(float(i)))
    (done,) = tracks.finish_all()
    assert len(done.points) == 3
