"""Unit tests of dfr_audit.mission_recordings: which sightings and frames make which mission's recordings, and when."""
import math

import cv2
import numpy as np
import pytest

from dfr_audit.mission_recordings import MissionFootage, MissionTracks, TrackPoint


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


def test_each_mission_video_keeps_frames_at_the_rate_and_is_readable(tmp_path):
    footage = MissionFootage(rate_hz=2.0, scratch_dir=str(tmp_path))
    footage.on_mission("uav1", "M1")
    frame = np.zeros((48, 64, 3), np.uint8)
    kept = [footage.add("uav1", "M1", "INC-1", 10.0 + 0.2 * i, frame) for i in range(10)]   # 5 Hz for 2 s
    assert kept == [True, False, False, True, False, False, True, False, False, True]      # 0.5 s apart at least
    assert not footage.add("uav1", "M1", "INC-1", 12.0, np.zeros((10, 10, 3), np.uint8))  # another size
    assert not footage.add("uav2", "", "INC-1", 12.0, frame)                              # no mission
    (done,) = footage.on_mission("uav1", "")
    assert (done.mission_id, done.incident_id, done.frames, done.path.name) == ("M1", "INC-1", 4, "footage.avi")
    video = cv2.VideoCapture(str(done.path))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 4
    assert not footage.add("uav1", "M1", "INC-1", 20.0, frame)         # finished: a late frame is not kept
    footage.close()
    assert not any(tmp_path.iterdir())


def test_a_mission_without_frames_leaves_no_video(tmp_path):
    footage = MissionFootage(scratch_dir=str(tmp_path))
    footage.on_mission("uav1", "M1")
    assert footage.on_mission("uav1", "M2") == [] and footage.finish_all() == []


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan])
def test_the_video_rate_must_be_positive(rate):
    with pytest.raises(ValueError, match="positive rate"):
        MissionFootage(rate_hz=rate)
