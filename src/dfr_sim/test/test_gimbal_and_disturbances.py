"""The gimbal slews within its limits and aims at points; wind and GPS error behave as configured."""
import math

import numpy as np
import pytest
from model_harness import Clock, enter_offboard, run, take_off

from dfr_common import px4
from dfr_sim.disturbances import GaussMarkov
from dfr_sim.gimbal import Gimbal, GimbalLimits, angles_to_point
from dfr_sim.mavros_conversions import FRAME_BODY_NED, FRAME_LOCAL_OFFSET_NED, SetpointError, local_setpoint
from dfr_sim.multirotor import Multirotor, MultirotorConfig


def test_the_gimbal_slews_at_its_rate_and_stops_at_its_limits():
    gimbal = Gimbal(GimbalLimits(slew_deg_s=90.0, pitch_min_deg=-90.0))
    gimbal.command_angles(2, -120.0, 0.0, 0.0)
    gimbal.step(0.5, (0, 0, 50), 0.0)
    assert gimbal.pitch == pytest.approx(-45.0)
    gimbal.step(1.0, (0, 0, 50), 0.0)
    assert gimbal.pitch == pytest.approx(-90.0)


def test_angles_to_a_point_follow_the_mount_convention():
    # Facing north (ENU yaw 90 deg); a point 100 m east and 100 m below is 90 deg to the right, 45 deg down.
    pitch, yaw = angles_to_point((0, 0, 100), math.pi / 2, (100, 0, 0))
    assert (pitch, yaw) == (pytest.approx(-45.0), pytest.approx(90.0))


def test_gauss_markov_has_the_configured_spread():
    process = GaussMarkov((2.0,), 1.0, np.random.default_rng(3))
    samples = [process.step(0.5)[0] for _ in range(20000)]
    assert np.std(samples) == pytest.approx(2.0, rel=0.1)


def test_gps_error_moves_the_truth_not_the_estimate_in_a_hover():
    model, clock = Multirotor("uav1", MultirotorConfig(gps_noise_m=3.0, gps_noise_time_s=30.0)), Clock()
    take_off(model, clock)
    enter_offboard(model, clock, 10.0)
    offsets, estimates = [], []
    for _ in range(300):
        run(model, clock, 1.0, setpoint=(0.0, 0.0, 10.0))
        offsets.append(model.position[:2] - model.estimated_position[:2])
        estimates.append(np.linalg.norm(model.estimated_position[:2]))
    # PX4 holds its estimate on the setpoint; its 1/s position loop lags the drifting error by a
    # fraction of a metre (the error moves about 0.8 m/s^0.5 at these settings) ...
    assert np.mean(estimates[10:]) < 1.0
    # ... so the truth wanders with the GPS error, over five correlation times.
    assert np.std(np.array(offsets)) == pytest.approx(3.0, rel=0.5)


def test_the_speed_limit_is_an_airspeed_limit_in_wind():
    config = MultirotorConfig(max_speed_m_s=12.0, wind_east_m_s=-8.0)
    model, clock = Multirotor("uav1", config), Clock()
    take_off(model, clock)
    enter_offboard(model, clock, 10.0)
    run(model, clock, 15.0, velocity=(12.0, 0.0, 0.0))           # straight into the wind
    assert model.velocity[0] == pytest.approx(4.0, abs=0.3)
    run(model, clock, 15.0, velocity=(-12.0, 0.0, 0.0))          # with it: the ground speed asked for is kept
    assert model.velocity[0] == pytest.approx(-12.0, abs=0.3)
    assert model.mode == px4.OFFBOARD


def test_body_and_offset_frames_are_turned_by_the_heading():
    here = np.array([10.0, 20.0, 30.0])
    _, velocity, _, _ = local_setpoint(FRAME_BODY_NED, 0b110111000111, (0, 0, 0), (5.0, 0.0, 0.0), 0.0, 0.0,
                                       here, math.pi / 2)
    assert velocity == pytest.approx([0.0, 5.0, 0.0])                      # forward while facing north
    position, _, _, _ = local_setpoint(FRAME_LOCAL_OFFSET_NED, 0b110111111000, (1.0, 2.0, 3.0), (0, 0, 0), 0.0,
                                       0.0, here, 0.0)
    assert position == pytest.approx([11.0, 22.0, 33.0])
    with pytest.raises(SetpointError, match="invalid coordinate frame 3"):
        local_setpoint(3, 0, (0, 0, 0), (0, 0, 0), 0.0, 0.0, here, 0.0)
    with pytest.raises(SetpointError, match="non-finite position"):
        local_setpoint(1, 0b110111111000, (float("nan"), 0, 0), (0, 0, 0), 0.0, 0.0, here, 0.0)


def test_the_geofence_returns_a_vehicle_that_flies_past_its_distance():
    model, clock = Multirotor("uav1", MultirotorConfig(geofence_max_horizontal_m=100.0, geofence_action=3)), Clock()
    take_off(model, clock)
    enter_offboard(model, clock, 10.0)
    run(model, clock, 30.0, setpoint=(300.0, 0.0, 10.0))
    assert model.mode == px4.AUTO_RTL
    assert any(e.text.startswith("Geofence breached: maximum distance") for e in model.events)
