"""The target keeper: which track a drone keeps, who chose it, and how it survives loss and handover."""
from __future__ import annotations

import numpy as np
import pytest

from dfr_perception.pipeline import GroundTrack, TargetKeeper, TargetKeeperConfig
from dfr_perception.target_selection import TargetCriteria

BIKE = TargetCriteria.from_incident("dangerous_driving", "E-bike ridden at speed on the pavement")


def track(track_id, x, y, vx=0.0, vy=0.0, size=1.8, kind="two_wheeler", state="confirmed", confidence=0.8):
    return GroundTrack(track_id, state, (0.0, 0.0, 10.0, 10.0), confidence, np.array([x, y], float), 1.5,
                       np.array([vx, vy], float), size, kind)


def keeper(**config):
    k = TargetKeeper(TargetKeeperConfig(**config))
    k.set_incident(BIKE, (0.0, 0.0))
    return k


def run(k, frames):
    """frames: a list of track lists, one per 0.2 s."""
    state = None
    for n, tracks in enumerate(frames):
        state = k.update(n * 0.2, tracks)
    return state


def test_the_incident_words_choose_the_fast_two_wheeler_once_it_is_old_enough():
    k = keeper(min_age_s=1.0)
    slow_bike = track(1, 20, 0, vx=0.5)
    walker = track(2, 5, 5, vx=1.2, size=0.5, kind="person")
    fast_bike = track(3, -30, 10, vy=9.0)
    state = run(k, [[slow_bike, walker, fast_bike]] * 4)
    assert state.state == "none"                     # too young
    state = run(k, [[slow_bike, walker, fast_bike]] * 8)
    assert state.state == "tracking" and state.track.track_id == 3 and state.selected_by == "incident"
    assert "two-wheeler" in state.reason


def test_a_clearly_better_match_replaces_the_first_choice_and_says_so():
    k = keeper(min_age_s=0.0, switch_margin=0.5)
    run(k, [[track(1, 10, 0, vx=4.0)]] * 3)
    assert k.target_id == 1
    events = []
    for n in range(3):
        events += k.update(1.0 + 0.2 * n, [track(1, 10, 0, vx=4.0), track(2, 0, 5, vy=12.0)]).events
    assert k.target_id == 2 and any("re-chosen: track 2" in e for e in events)


def test_a_target_whose_class_flickers_is_kept_and_a_far_one_does_not_take_over_while_it_is_unseen():
    k = keeper(min_age_s=0.0)
    run(k, [[track(1, 0, 0, vy=10.0)]] * 3)
    assert k.target_id == 1
    # Seen end-on at a turn, the e-bike measures as a car for a moment; a faster two-wheeler ahead appears.
    state = k.update(1.0, [track(1, 0, 6, vy=10.0, size=4.2, kind="car"), track(2, 0, 50, vy=15.0)])
    assert state.state == "tracking" and k.target_id == 1
    # Lost for a moment: a track far from where the target should be is not taken as the target.
    state = k.update(1.2, [track(1, 0, 8, vy=10.0, state="lost"), track(2, 0, 53, vy=15.0)])
    assert state.state == "lost" and k.target_id == 1
    state = k.update(1.4, [track(1, 0, 10, vy=10.0), track(2, 0, 56, vy=15.0)])
    assert state.state == "tracking" and k.target_id == 1


def test_the_operators_choice_stands_and_is_recorded_as_theirs():
    k = keeper(min_age_s=0.0)
    tracks = [track(1, 10, 0, vx=9.0), track(2, 40, 0, vx=4.0, size=4.5, kind="car")]
    run(k, [tracks] * 3)
    assert k.target_id == 1
    assert k.operator_select(2, "pilot 7", tracks) == "track 2 chosen by pilot 7"
    state = k.update(1.0, tracks)
    assert state.track.track_id == 2 and state.selected_by == "operator:pilot 7"
    state = k.update(1.2, tracks + [track(3, 0, 0, vx=14.0)])        # a faster bike does not take over
    assert state.track.track_id == 2
    with pytest.raises(ValueError, match="no track 9 in view; tracks now: 1, 2"):
        k.operator_select(9, "pilot 7", tracks)


def test_a_lost_target_is_reported_then_re_acquired_where_it_should_be():
    k = keeper(min_age_s=0.0, reacquire_radius_m=10.0)
    run(k, [[track(1, 0, 0, vx=5.0)]] * 3)
    state = k.update(0.8, [track(1, 3, 0, vx=5.0, state="lost")])
    assert state.state == "lost" and state.track.track_id == 1
    # a new track where the target should be 1 s later (5 m/s east) takes over its identity
    state = k.update(1.4, [track(7, 8.0, 0.5, vx=5.0)])
    assert state.state == "tracking" and k.target_id == 7
    assert any("re-acquired" in e for e in state.events)


def test_a_car_where_a_lost_e_bike_should_be_does_not_take_it_over():
    """Seen in a run of the evening peak: a car that took over the lost e-bike led the drone 1.8 km away."""
    k = keeper(min_age_s=0.0, reacquire_radius_m=10.0)
    run(k, [[track(1, 0, 0, vx=8.0)]] * 3)
    k.update(0.8, [track(1, 4, 0, vx=8.0, state="lost")])
    # A new track, still at rest as new tracks are, but car-sized (its class not settled yet).
    state = k.update(1.0, [track(7, 8.0, 0.0, size=8.7, kind="unknown")])
    assert state.state == "lost" and k.target_id == 1
    state = k.update(1.2, [track(7, 10.0, 0.0, vx=8.0, size=4.8, kind="car")])
    assert state.state == "lost" and k.target_id == 1
    # A bike-sized one, though at rest as new tracks are, does.
    state = k.update(1.4, [track(7, 12.0, 0.0, vx=8.0, size=4.8, kind="car"), track(8, 11.0, 1.0, size=1.9)])
    assert state.state == "tracking" and k.target_id == 8


def test_a_track_that_takes_over_a_lost_target_carries_its_velocity_until_it_has_its_own():
    k = keeper(min_age_s=0.0, reacquire_radius_m=10.0, carry_velocity_s=1.0)
    run(k, [[track(1, 0, 0, vx=8.0)]] * 3)
    k.update(0.8, [track(1, 4, 0, vx=8.0, state="lost")])
    # the new track's own filter starts from rest: the follower is told the rider still moves at 8 m/s
    state = k.update(1.0, [track(7, 8.0, 0.0, vx=0.0)])
    assert k.target_id == 7 and np.allclose(state.track.velocity_xy, (8.0, 0.0))
    state = k.update(1.6, [track(7, 12.0, 0.0, vx=6.5)])
    assert np.allclose(state.track.velocity_xy, (8.0, 0.0))
    # a second after it took over, its own velocity is reported
    state = k.update(2.2, [track(7, 16.0, 0.0, vx=6.5)])
    assert np.allclose(state.track.velocity_xy, (6.5, 0.0))


def test_a_rider_who_turned_back_is_taken_over_behind_where_he_was_and_carries_his_new_heading():
    """Found in the evening peak's chase: a rider lost at the end of a street and seen again coming back was
    not where his last velocity put him, so no new track could take him over, and the search ran on."""
    k = keeper(min_age_s=0.0, reacquire_radius_m=25.0, carry_velocity_s=1.0)
    run(k, [[track(1, 0, 0, vx=10.0)]] * 3)
    k.update(0.6, [track(1, 6, 0, vx=10.0, state="lost")])
    # 2 s on, the last velocity puts him at x = 26; he is at x = -8, coming back.
    state = k.update(2.6, [track(9, -8.0, 0.0, vx=0.0)])
    assert state.state == "tracking" and k.target_id == 9
    assert state.track.velocity_xy == pytest.approx((-10.0, 0.0))
    # A track well off the way he may have gone is not him.
    k2 = keeper(min_age_s=0.0, reacquire_radius_m=25.0)
    run(k2, [[track(1, 0, 0, vx=10.0)]] * 3)
    k2.update(0.6, [track(1, 6, 0, vx=10.0, state="lost")])
    assert k2.update(2.6, [track(9, 10.0, 40.0)]).state == "lost"


def test_a_relief_takes_the_track_where_the_relieved_drones_target_should_be():
    k = keeper(min_age_s=0.0)
    k.handover((100.0, 0.0), (0.0, 8.0), stamp_s=0.0, from_vehicle="uav4")
    state = k.update(2.0, [track(5, 100.0, 16.0, vy=8.0), track(6, 90.0, 60.0, vy=8.0)])
    assert state.track.track_id == 5 and state.selected_by == "handover:uav4"


def test_nothing_is_chosen_from_slow_tracks_when_the_words_say_fast():
    k = keeper(min_age_s=0.0)
    state = run(k, [[track(1, 0, 0, vx=0.6), track(2, 10, 0, vx=0.2)]] * 10)
    assert state.state == "none" and k.target_id is None


def test_the_pose_says_how_the_ground_moves_in_the_image():
    """ground_motion_homography: a ground point's pixel in one frame maps to its pixel in the next, however
    the drone moved and the gimbal turned in between."""
    from dfr_common.camera_geometry import ground_homography, project_points
    from dfr_perception.pipeline import CameraPose, ground_motion_homography

    k = np.array([[400.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]])
    before = CameraPose((0.0, 0.0, 50.0), 0.3, -60.0, 5.0)
    after = CameraPose((3.0, 1.5, 52.0), 0.35, -48.0, -10.0)
    hom = ground_motion_homography(ground_homography(k, before.position_enu, before.rotation()),
                                   ground_homography(k, after.position_enu, after.rotation()))
    ground = np.array([[20.0, 60.0, 0.0], [-15.0, 45.0, 0.0], [5.0, 80.0, 0.0]])
    uv_before = project_points(k, before.position_enu, before.rotation(), ground)
    uv_after = project_points(k, after.position_enu, after.rotation(), ground)
    moved = hom @ np.c_[uv_before, np.ones(3)].T
    np.testing.assert_allclose((moved[:2] / moved[2]).T, uv_after, atol=1e-6)


def test_a_lost_target_the_tracker_still_holds_is_taken_over_by_a_confirmed_track_on_its_way():
    """Seen in the evening peak's chase: a rider slowing to turn back lost his track, and the new one, starting
    from rest, was too slow for the incident's words; waiting for the tracker to drop the old track (1.5 s)
    let him ride out of view."""
    k = keeper(min_age_s=0.0, reacquire_radius_m=25.0)
    run(k, [[track(1, 0, 0, vx=10.0)]] * 3)
    state = k.update(0.6, [track(1, 6, 0, vx=10.0, state="lost"), track(9, 2.0, 0.0, state="tentative")])
    assert state.state == "lost" and k.target_id == 1              # a tentative track does not take over
    state = k.update(0.8, [track(1, 8, 0, vx=10.0, state="lost"), track(9, 1.0, 0.0)])
    assert state.state == "lost" and k.target_id == 1              # nor does anything a frame after the loss
    state = k.update(1.0, [track(1, 10, 0, vx=10.0, state="lost"), track(9, 0.0, 0.0)])
    assert state.state == "tracking" and k.target_id == 9
    assert any("track 9 takes over from track 1" in e for e in state.events)


class _ScriptedDetector:
    """Gives the boxes it is given, one list per image."""

    finds_people = False

    def __init__(self, frames):
        self.frames = list(frames)

    def detect(self, image, camera_motion_hint=None):
        from dfr_perception.detection import Detection
        return [Detection(*box, score=0.9) for box in self.frames.pop(0)]


def test_a_box_cut_by_the_image_edge_keeps_the_size_its_track_had_whole():
    """Seen in the evening peak: a car leaving the image measured as an e-bike on its last image (its box cut
    by the edge) and was chosen as the e-bike the drone was sent for."""
    from dfr_perception.pipeline import CameraPose, PerceptionPipeline

    k = np.array([[400.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]])
    pose = CameraPose((0.0, 0.0, 40.0), 0.0, -90.0)              # straight down: 0.1 m a pixel
    # A car 4.5 m long driving down the image at 8 m/s, then out of it: 3.5 m, then 1.9 m of it in view.
    whole = [[(300.0, 300.0 + 16 * n, 320.0, 345.0 + 16 * n)] for n in range(9)]
    cut = [[(300.0, 444.0, 320.0, 479.0)], [(300.0, 460.0, 320.0, 479.0)]]
    pipeline = PerceptionPipeline(_ScriptedDetector(whole + cut))
    image = np.zeros((480, 640), np.uint8)
    for n in range(len(whole)):
        tracks = pipeline.process(image, 0.2 * n, pose, k)
    size = tracks[0].ground_size_m
    assert tracks[0].object_class == "car"
    for n in range(len(whole), len(whole) + len(cut)):
        tracks = pipeline.process(image, 0.2 * n, pose, k)
        assert tracks[0].state == "confirmed"
        assert tracks[0].ground_size_m == size and tracks[0].object_class == "car"
