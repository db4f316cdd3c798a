"""Mission items become local targets, and PX4's feasibility rules refuse what it could not fly."""
import math

import pytest
from model_harness import DT, Clock, events, take_off

from dfr_common import px4
from dfr_sim import mission_items as mi
from dfr_sim.multirotor import Multirotor, MultirotorConfig


def raw(command=mi.NAV_WAYPOINT, frame=mi.FRAME_GLOBAL_RELATIVE_ALT_INT, lat=51.0, lon=-0.1, alt=30.0, p1=0.0,
        p2=0.0, autocontinue=True):
    return mi.RawItem(frame, command, False, autocontinue, p1, p2, 0.0, 0.0, lat, lon, alt)


def to_enu(lat, lon):
    """A toy frame: a degree is 1000 m, so positions read directly in tests."""
    return (lon + 0.1) * 1000.0, (lat - 51.0) * 1000.0


def local(*items, home_height=0.0):
    return mi.to_local(list(items), to_enu, ground_amsl_m=30.0, home_height_m=home_height)


def test_relative_and_amsl_altitudes_become_heights_above_the_ground():
    rel, amsl = local(raw(alt=40.0), raw(frame=mi.FRAME_GLOBAL_INT, alt=70.0), home_height=2.0)
    assert (rel.east, rel.north, rel.height) == (pytest.approx(0.0), pytest.approx(0.0), 42.0)
    assert amsl.height == 40.0


def test_a_land_item_without_a_position_lands_where_the_vehicle_is():
    (land,) = local(raw(command=mi.NAV_LAND, lat=0.0, lon=0.0, alt=0.0))
    assert land.east is None and mi.problems([land], math.inf) == []


@pytest.mark.parametrize("item, problem", [
    (raw(command=31000), "unsupported command 31000"),
    (raw(frame=1), "unsupported frame 1"),
    (raw(lat=float("nan")), "no valid latitude and longitude"),
    (raw(alt=float("nan")), "no valid altitude"),
    (raw(alt=-5.0), "below the ground"),
    (raw(alt=500.0), "above the geofence ceiling"),
])
def test_infeasible_items_are_named(item, problem):
    found = mi.problems(local(item), max_height_m=120.0)
    assert len(found) == 1 and problem in found[0] and found[0].startswith("item 0")


def test_an_empty_mission_is_no_mission():
    assert mi.problems([], math.inf) == ["no mission"]


def fly(model, clock, seconds, until=None):
    for _ in range(int(seconds / DT)):
        clock.now += DT
        model.step(clock.now, DT)
        if until and until():
            return True
    return False


def test_a_mission_flies_from_the_ground_item_by_item_and_lands():
    model, clock = Multirotor("uav1"), Clock()
    items = local(raw(command=mi.NAV_TAKEOFF, lat=0.0, lon=0.0, alt=20.0),
                  raw(lat=51.05, lon=-0.1, alt=25.0, p1=2.0),              # 50 m north, hold 2 s
                  raw(command=mi.DO_CHANGE_SPEED, frame=mi.FRAME_MISSION, p2=3.0),
                  raw(command=mi.NAV_LOITER_TIME, lat=51.05, lon=-0.05, alt=25.0, p1=3.0),
                  raw(command=mi.NAV_LAND, lat=51.0, lon=-0.1, alt=0.0))
    assert model.push_mission(items, 0, clock.now)
    assert model.set_mode(px4.AUTO_MISSION, clock.now) and model.mode == px4.AUTO_MISSION
    assert model.arm(True, clock.now)[0]
    assert fly(model, clock, 300, until=lambda: not model.armed)
    assert list(model.mission_reached) == [0, 1, 2, 3, 4]       # the land item on landing
    assert model.position[:2] == pytest.approx([0.0, 0.0], abs=1.5)
    assert "Landing detected" in events(model)


def test_clearing_the_mission_in_flight_leaves_for_hold_and_set_current_jumps():
    model, clock = Multirotor("uav1"), Clock()
    model.push_mission(local(raw(lat=51.1, alt=30.0), raw(lat=51.2, alt=30.0)), 0, clock.now)
    model.set_mode(px4.AUTO_MISSION, clock.now)
    model.arm(True, clock.now)
    fly(model, clock, 10)
    assert model.set_mission_current(1, clock.now) and model.mission_seq == 1
    assert not model.set_mission_current(7, clock.now)
    model.clear_mission(clock.now)
    assert model.mode == px4.AUTO_LOITER and model.mission == []


def test_an_unknown_command_or_frame_is_refused_at_upload_and_the_old_mission_kept():
    model, clock = Multirotor("uav1"), Clock()
    assert model.push_mission(local(raw(lat=51.1)), 0, clock.now)
    for bad in (raw(command=31000), raw(frame=1)):
        assert not model.push_mission(local(bad), 0, clock.now)
        assert events(model)[-1].startswith("IGN MISSION_ITEM: Invalid item")
    assert len(model.mission) == 1 and model.mission[0].north == pytest.approx(100.0)


def test_an_infeasible_mission_may_be_selected_on_the_ground_but_not_armed_or_entered_in_flight():
    model, clock = Multirotor("uav1", MultirotorConfig(geofence_max_vertical_m=120.0)), Clock()
    model.push_mission(local(raw(alt=500.0)), 0, clock.now)
    model.set_mode(px4.AUTO_MISSION, clock.now)
    assert model.mode == px4.AUTO_MISSION                     # PX4 1.14: any mode while disarmed ...
    assert model.arm(True, clock.now)[0] is False              # ... and arming refuses
    assert "above the geofence ceiling" in events(model)[-1]
    model.set_mode(px4.AUTO_LOITER, clock.now)
    take_off(model, clock)
    model.set_mode(px4.AUTO_MISSION, clock.now)
    assert model.mode == px4.AUTO_LOITER
    assert "above the geofence ceiling" in events(model)[-1]
