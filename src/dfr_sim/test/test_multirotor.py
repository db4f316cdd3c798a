"""The vehicle model keeps PX4's rules: what it refuses, when it disarms, how it flies each mode."""
import math

import numpy as np
import pytest
from model_harness import DT, Clock, enter_offboard, events, run, take_off

from dfr_common import px4
from dfr_sim.multirotor import Multirotor, MultirotorConfig


@pytest.fixture
def vehicle():
    return Multirotor("uav1", MultirotorConfig(), ground_amsl_m=30.0), Clock()


def test_boots_in_hold_on_the_ground_disarmed(vehicle):
    model, _ = vehicle
    assert model.mode == px4.AUTO_LOITER
    assert not model.armed and model.landed
    assert model.landed_state == px4.LANDED_STATE_ON_GROUND


def test_unknown_mode_is_not_sent_and_changes_nothing(vehicle):
    model, clock = vehicle
    assert model.set_mode("HOVER_PLEASE", clock.now) is False
    assert model.mode == px4.AUTO_LOITER


def test_any_known_mode_is_taken_while_disarmed(vehicle):
    model, clock = vehicle
    assert model.set_mode("OFFBOARD", clock.now) is True
    assert model.mode == px4.OFFBOARD


@pytest.mark.parametrize("mode", [px4.AUTO_LAND, px4.AUTO_RTL])
def test_arming_refused_in_modes_that_prevent_it(vehicle, mode):
    model, clock = vehicle
    model.set_mode(mode, clock.now)
    assert model.arm(True, clock.now) == (False, px4.MAV_RESULT_TEMPORARILY_REJECTED)
    assert not model.armed
    assert any("Arming denied" in text for text in events(model))


def test_arming_refused_in_offboard_without_a_setpoint_stream(vehicle):
    model, clock = vehicle
    model.set_mode(px4.OFFBOARD, clock.now)
    assert model.arm(True, clock.now) == (False, px4.MAV_RESULT_TEMPORARILY_REJECTED)
    run(model, clock, 1.5, setpoint=(0.0, 0.0, 5.0))
    assert model.arm(True, clock.now) == (True, px4.MAV_RESULT_ACCEPTED)


def test_arming_refused_without_gps_and_with_a_critical_battery():
    model, clock = Multirotor("uav1", battery_fraction=0.05), Clock()
    assert model.arm(True, clock.now)[0] is False
    model = Multirotor("uav1")
    model.gps_ok = False
    assert model.arm(True, clock.now)[0] is False


def test_disarms_itself_when_armed_and_not_taken_off_within_ten_seconds(vehicle):
    model, clock = vehicle
    model.arm(True, clock.now)
    run(model, clock, 9.5)
    assert model.armed
    run(model, clock, 1.0)
    assert not model.armed
    assert "Disarmed by auto preflight disarming" in events(model)


def test_takeoff_with_nan_altitude_climbs_to_mis_takeoff_alt_then_holds(vehicle):
    model, clock = vehicle
    model.arm(True, clock.now)
    model.takeoff(clock.now, math.nan)
    assert model.mode == px4.AUTO_TAKEOFF
    run(model, clock, 0.5)
    assert model.landed_state == px4.LANDED_STATE_TAKEOFF
    run(model, clock, 8.0)
    assert model.mode == px4.AUTO_LOITER
    assert model.position[2] == pytest.approx(MultirotorConfig().takeoff_alt_m, abs=0.15)
    assert model.landed_state == px4.LANDED_STATE_IN_AIR
    run(model, clock, 15.0)       # holds, and is not disarmed: it has taken off
    assert model.armed and model.position[2] > 2.0


def test_takeoff_altitude_is_amsl(vehicle):
    model, clock = vehicle
    model.arm(True, clock.now)
    model.takeoff(clock.now, 30.0 + 20.0)    # ground at 30 m AMSL: 20 m up
    run(model, clock, 30.0)
    assert model.position[2] == pytest.approx(20.0, abs=0.15)


def test_takeoff_below_current_height_does_not_climb(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    height = model.position[2]
    model.takeoff(clock.now, 30.0 + 1.0)
    assert "Already higher than takeoff altitude" in events(model)
    run(model, clock, 3.0)
    assert model.position[2] == pytest.approx(height, abs=0.2)


def test_takeoff_with_a_position_climbs_then_holds_over_it(vehicle):
    # As PX4 does: which is why a client must send NaN, not the 0, 0 a fresh message holds.
    model, clock = vehicle
    model.arm(True, clock.now)
    model.takeoff(clock.now, math.nan, position=(40.0, -30.0))
    run(model, clock, 4.0)
    assert math.hypot(*model.position[:2]) < 0.5          # climbs in place first
    run(model, clock, 30.0)
    assert model.mode == px4.AUTO_LOITER
    assert model.position[:2] == pytest.approx([40.0, -30.0], abs=0.3)


def test_offboard_refused_while_armed_without_a_stream_and_taken_with_one(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    assert model.set_mode(px4.OFFBOARD, clock.now) is True     # mode_sent, as MAVROS says
    assert model.mode == px4.AUTO_LOITER                       # but PX4 did not switch
    assert any("Switching to OFFBOARD is currently not available" in t for t in events(model))
    enter_offboard(model, clock)
    assert model.mode == px4.OFFBOARD


def test_a_stream_slower_than_two_hertz_is_not_enough(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    run(model, clock, 3.0, setpoint=(0.0, 0.0, 10.0), rate_hz=1.2)
    assert model.offboard_signal_ok(clock.now)          # fresh: refused for its rate alone
    assert not model.offboard_stream_ready(clock.now)
    model.set_mode(px4.OFFBOARD, clock.now)
    assert model.mode == px4.AUTO_LOITER
    run(model, clock, 1.0, setpoint=(0.0, 0.0, 10.0), rate_hz=4.0)
    model.set_mode(px4.OFFBOARD, clock.now)
    assert model.mode == px4.OFFBOARD


def test_offboard_is_left_for_position_mode_after_a_second_without_setpoints(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    enter_offboard(model, clock)
    run(model, clock, 5.0, setpoint=(0.0, 0.0, 10.0))
    assert model.mode == px4.OFFBOARD
    run(model, clock, 0.8)         # the last setpoint is 0.9 s old: still within COM_OF_LOSS_T
    assert model.mode == px4.OFFBOARD
    run(model, clock, 0.3)
    assert model.mode == px4.POSCTL
    assert "Failsafe: offboard signal lost" in events(model)
    height = model.position[2]
    run(model, clock, 5.0)
    assert model.position[2] == pytest.approx(height, abs=0.5)     # holds where it was


def test_offboard_loss_without_a_remote_control_returns_home():
    model, clock = Multirotor("uav1", MultirotorConfig(rc_available=False)), Clock()
    take_off(model, clock)
    enter_offboard(model, clock)
    run(model, clock, 3.0)
    assert model.mode == px4.AUTO_RTL


def test_offboard_flies_to_a_position_setpoint_within_its_limits(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    enter_offboard(model, clock, 30.0)
    speeds = []
    for _ in range(600):
        run(model, clock, DT * 2, setpoint=(300.0, 400.0, 30.0))
        speeds.append(float(np.linalg.norm(model.velocity[:2])))
    assert model.position == pytest.approx([300.0, 400.0, 30.0], abs=0.3)
    assert max(speeds) <= MultirotorConfig().max_speed_m_s + 1e-6


def test_velocity_feed_forward_is_followed(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    enter_offboard(model, clock)
    for _ in range(100):
        p = model.position.copy()
        model.setpoint(clock.now, position=(p[0], p[1], 10.0), velocity=(5.0, 0.0, 0.0))
        run(model, clock, DT)
    assert model.velocity[0] == pytest.approx(5.0, abs=0.3)


def test_land_descends_lands_and_disarms_two_seconds_later(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    assert model.land(clock.now) == (True, px4.MAV_RESULT_ACCEPTED)
    assert model.mode == px4.AUTO_LAND
    run(model, clock, 2.0)
    assert model.landed_state == px4.LANDED_STATE_LANDING
    while not model.landed:
        run(model, clock, DT)
    landed_at = clock.now
    assert model.armed
    run(model, clock, 2.2)
    assert not model.armed
    assert "Disarmed by landing" in events(model)
    assert clock.now - landed_at >= 2.0
    assert model.mode == px4.AUTO_LOITER      # back to the mode it was armed in


def test_disarming_in_the_air_is_refused(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    assert model.arm(False, clock.now) == (False, px4.MAV_RESULT_TEMPORARILY_REJECTED)
    assert model.armed


def test_return_to_launch_climbs_to_sixty_metres_flies_home_and_lands(vehicle):
    model, clock = vehicle
    take_off(model, clock)
    enter_offboard(model, clock, 20.0)
    run(model, clock, 60.0, setpoint=(200.0, 0.0, 20.0))
    model.set_mode(px4.AUTO_RTL, clock.now)
    peak = 0.0
    for _ in range(int(300 / DT)):
        run(model, clock, DT)
        peak = max(peak, model.position[2])
        if not model.armed:
            break
    assert not model.armed
    assert peak == pytest.approx(60.0, abs=1.0)
    assert np.linalg.norm(model.position[:2]) < 1.5


def test_battery_drains_in_flight_and_the_critical_level_returns_home():
    config = MultirotorConfig(battery_capacity_wh=200.0 * 150.0 / 3600.0)
    model, clock = Multirotor("uav1", config, battery_fraction=0.2), Clock()
    take_off(model, clock)
    enter_offboard(model, clock, 20.0)
    start = model.battery_fraction
    run(model, clock, 10.0, setpoint=(0.0, 0.0, 20.0))
    assert model.battery_fraction < start
    while model.mode == px4.OFFBOARD and clock.now < 200:
        run(model, clock, 1.0, setpoint=(0.0, 0.0, 20.0))
    assert model.mode == px4.AUTO_RTL
    assert model.battery_fraction <= config.battery_critical
    assert any(text.startswith("Low battery") for text in events(model))
    assert any(text.startswith("Critical battery") for text in events(model))


def test_emergency_battery_lands_where_it_is():
    config = MultirotorConfig(battery_capacity_wh=100.0 * 150.0 / 3600.0)
    model, clock = Multirotor("uav1", config, battery_fraction=0.12), Clock()
    take_off(model, clock)
    model.set_mode(px4.AUTO_LOITER, clock.now)
    while model.mode != px4.AUTO_LAND and clock.now < 200:
        run(model, clock, 0.5)
    assert model.mode == px4.AUTO_LAND
    assert model.battery_fraction <= config.battery_emergency


def test_a_disarmed_drone_on_the_ground_charges_in_its_dock_and_warns_again_when_next_low():
    config = MultirotorConfig(dock_charge_per_s=0.01)
    model, clock = Multirotor("uav1", config, battery_fraction=0.10), Clock()
    run(model, clock, 1.0)
    model._check_battery(clock.now)
    assert any(text.startswith("Low battery") for text in events(model))
    run(model, clock, 10.0)
    assert model.battery_fraction == pytest.approx(0.21, abs=1e-6)      # 11 s at 1 % a second
    run(model, clock, 100.0)
    assert model.battery_fraction == 1.0
    model.battery_fraction = 0.12
    model._check_battery(clock.now)
    assert sum(text.startswith("Low battery") for text in events(model)) == 2


def test_no_charging_in_the_air_nor_without_a_dock_charger():
    model, clock = Multirotor("uav1", MultirotorConfig(), battery_fraction=0.5), Clock()
    run(model, clock, 10.0)
    assert model.battery_fraction == 0.5
    flying = Multirotor("uav1", MultirotorConfig(dock_charge_per_s=0.01), battery_fraction=0.5)
    take_off(flying, clock)
    level = flying.battery_fraction
    run(flying, clock, 5.0)
    assert flying.battery_fraction < level


def test_config_fields_carry_their_parameter_documentation():
    import dataclasses
    for f in dataclasses.fields(MultirotorConfig):
        assert f.metadata.get("doc"), f"{f.name} has no description"
