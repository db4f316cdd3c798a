"""Fault commands and schedules: checked before use, and applied as PX4 would experience them."""
import pytest
from model_harness import Clock, enter_offboard, run, take_off

from dfr_common import px4
from dfr_sim import faults
from dfr_sim.faults import FaultCommand, FaultError
from dfr_sim.multirotor import Multirotor, MultirotorConfig
from dfr_sim.vehicle_config import VehicleOverrideError, parse_overrides

VEHICLES = {"uav1", "uav2"}


@pytest.mark.parametrize("command, message", [
    (FaultCommand("uav9", "gps_loss"), "no vehicle 'uav9'"),
    (FaultCommand("uav1", "sunspots"), "unknown fault 'sunspots'"),
    (FaultCommand("uav1", "refuse_mode", argument="WARP"), "needs a PX4 mode name"),
    (FaultCommand("uav1", "battery_level", value=1.5), "fraction in [0, 1]"),
    (FaultCommand("uav1", "battery_drain", value=float("nan")), "drain multiplier"),
])
def test_bad_fault_commands_are_refused_with_the_reason(command, message):
    with pytest.raises(FaultError, match=message.replace("[", r"\[").replace("]", r"\]")):
        faults.check(command, VEHICLES)


def test_a_refused_mode_is_refused_until_the_fault_is_lifted():
    model, clock = Multirotor("uav1"), Clock()
    faults.apply(model, FaultCommand("uav1", "refuse_mode", argument="auto.land"), clock.now)
    assert model.set_mode(px4.AUTO_LAND, clock.now) is True      # MAVROS sent it ...
    assert model.mode != px4.AUTO_LAND                            # ... and PX4 said no
    faults.apply(model, FaultCommand("uav1", "refuse_mode", active=False, argument="AUTO.LAND"), clock.now)
    model.set_mode(px4.AUTO_LAND, clock.now)
    assert model.mode == px4.AUTO_LAND


def test_an_injected_pre_arm_failure_refuses_arming():
    model, clock = Multirotor("uav1"), Clock()
    faults.apply(model, FaultCommand("uav1", "refuse_arming", argument="Preflight Fail: compass"), clock.now)
    assert model.arm(True, clock.now) == (False, px4.MAV_RESULT_TEMPORARILY_REJECTED)
    assert model.events[-1].text == "Arming denied: Preflight Fail: compass"


def test_link_loss_in_flight_triggers_the_data_link_failsafe_after_its_timeout():
    model, clock = Multirotor("uav1", MultirotorConfig(datalink_loss_action=2)), Clock()
    take_off(model, clock)
    faults.apply(model, FaultCommand("uav1", "link_loss"), clock.now)
    run(model, clock, 9.0)
    assert model.mode == px4.AUTO_LOITER
    run(model, clock, 2.0)
    assert model.mode == px4.AUTO_RTL
    faults.apply(model, FaultCommand("uav1", "link_loss", active=False), clock.now)
    assert model.link_up and model.events[-1].text == "Data link regained"


def test_gps_loss_in_offboard_falls_back_to_altitude_mode_with_a_pilot_and_lands_without():
    for rc, expected in ((True, px4.ALTCTL), (False, px4.AUTO_LAND)):
        model, clock = Multirotor("uav1", MultirotorConfig(rc_available=rc)), Clock()
        take_off(model, clock)
        enter_offboard(model, clock, 10.0)
        faults.apply(model, FaultCommand("uav1", "gps_loss"), clock.now)
        run(model, clock, 0.5, setpoint=(0.0, 0.0, 10.0))
        assert model.mode == expected
        assert model.set_mode(px4.AUTO_LOITER, clock.now) and model.mode == expected   # refused: no position


def test_battery_drain_multiplies_the_drain():
    normal, fast, clock = Multirotor("a"), Multirotor("b"), Clock()
    for model in (normal, fast):
        take_off(model, clock)
    faults.apply(fast, FaultCommand("b", "battery_drain", value=10.0), clock.now)
    start = (normal.battery_fraction, fast.battery_fraction)
    run(normal, clock, 10.0)
    clock.now -= 10.0
    run(fast, clock, 10.0)
    assert (start[1] - fast.battery_fraction) == pytest.approx(10 * (start[0] - normal.battery_fraction), rel=0.05)


def test_a_schedule_switches_faults_on_and_off_in_sim_time():
    schedule = faults.parse_schedule([{"at_s": 5, "vehicle": "uav1", "fault": "link_loss", "duration_s": 3}],
                                     VEHICLES)
    timeline = faults.FaultTimeline(schedule)
    assert timeline.due(4.9) == []
    assert [c.active for c in timeline.due(5.0)] == [True]
    assert [c.active for c in timeline.due(8.0)] == [False]


@pytest.mark.parametrize("entry, message", [
    ({"vehicle": "uav1", "fault": "gps_loss"}, r"faults\[0\]: 'at_s' is required"),
    ({"at_s": -1, "vehicle": "uav1", "fault": "gps_loss"}, r"faults\[0\].at_s"),
    ({"at_s": 1, "vehicle": "uav1", "fault": "gps_loss", "when": 3}, "unknown keys"),
    ({"at_s": 1, "vehicle": "uav7", "fault": "gps_loss"}, "no vehicle 'uav7'"),
])
def test_a_bad_schedule_entry_is_named(entry, message):
    with pytest.raises(FaultError, match=message):
        faults.parse_schedule([entry], VEHICLES)


def test_vehicle_overrides_are_typed_and_range_checked():
    assert parse_overrides(["uav2.initial_battery_fraction=0.4", "uav2.rc_available=false"], VEHICLES) == {
        "uav2": {"initial_battery_fraction": 0.4, "rc_available": False}}
    for entry, message in (("uav2.max_speed_m_s=900", "outside"), ("uav3.max_speed_m_s=9", "no vehicle"),
                           ("uav2.warp=1", "no field 'warp'"), ("uav2.max_speed_m_s", "VEHICLE.FIELD=VALUE"),
                           ("uav2.battery_cells=four", "not a int"), ("uav2.max_speed_m_s=nan", "not finite")):
        with pytest.raises(VehicleOverrideError, match=message):
            parse_overrides([entry], VEHICLES)
