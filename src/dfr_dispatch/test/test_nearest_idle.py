"""Unit tests of dfr_dispatch.nearest_idle and fleet_picture: choosing the idle drone nearest a scene."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from pymap3d.vincenty import vdist

from dfr_common.fleet import load_fleet
from dfr_common.mission import Phase
from dfr_dispatch.fleet_picture import FleetPicture, VehicleView, not_ready_reason
from dfr_dispatch.nearest_idle import nearest_idle

REPO = Path(__file__).resolve().parents[3]
FLEET_FILE = REPO / "config" / "fleet" / "islington.yaml"

SCENE = (51.5412, -0.1027)                  # Upper Street
ISLINGTON = (51.5338, -0.1109)              # about 1.0 km from the scene
KENTISH_TOWN = (51.5497, -0.1420)           # about 2.9 km
STOKE_NEWINGTON = (51.5579, -0.0748)        # about 2.7 km


def view(vehicle_id: str, position=(math.nan, math.nan), base_id: str = "b", **kw) -> VehicleView:
    return VehicleView(vehicle_id, base_id, latitude=position[0], longitude=position[1], **kw)


# --- nearest_idle -----------------------------------------------------------------------------------------------


def test_empty_list_gives_none():
    assert nearest_idle(*SCENE, []) is None


def test_single_vehicle_is_chosen_with_its_distance():
    only = view("uav1", ISLINGTON)
    chosen, distance = nearest_idle(*SCENE, [only])
    assert chosen is only
    expected, _ = vdist(*ISLINGTON, *SCENE)
    assert distance == pytest.approx(float(expected), rel=1e-5)
    assert isinstance(distance, float)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_nearest_among_several(order):
    views = [view("kentish", KENTISH_TOWN), view("islington", ISLINGTON), view("stoke", STOKE_NEWINGTON)]
    chosen, distance = nearest_idle(*SCENE, [views[i] for i in order])
    assert chosen.vehicle_id == "islington"
    assert distance == pytest.approx(float(vdist(*ISLINGTON, *SCENE)[0]), rel=1e-5)


def test_nearest_is_by_distance_not_by_degrees():
    # 0.010 degrees of longitude (about 690 m here) is shorter than 0.008 degrees of latitude (about 890 m).
    east = view("east", (SCENE[0], SCENE[1] + 0.010))
    north = view("north", (SCENE[0] + 0.008, SCENE[1]))
    chosen, distance = nearest_idle(*SCENE, [north, east])
    assert chosen is east
    assert distance == pytest.approx(693.0, abs=5.0)


def test_vehicle_on_the_scene_is_at_zero_distance():
    chosen, distance = nearest_idle(*SCENE, [view("far", KENTISH_TOWN), view("here", SCENE)])
    assert chosen.vehicle_id == "here"
    assert distance == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("bad", [(math.nan, math.nan), (math.nan, -0.1), (51.5, math.nan)])
def test_vehicle_with_nan_position_is_never_chosen(bad):
    # Placed first, and "at" the scene in its good coordinate: still never chosen.
    views = [view("lost", bad), view("stoke", STOKE_NEWINGTON), view("kentish", KENTISH_TOWN)]
    chosen, distance = nearest_idle(*SCENE, views)
    assert chosen.vehicle_id == "stoke"
    assert math.isfinite(distance)


def test_only_nan_positions_gives_none():
    assert nearest_idle(*SCENE, [view("a"), view("b", (math.nan, 0.0))]) is None


# --- FleetPicture -----------------------------------------------------------------------------------------------


@pytest.fixture
def picture() -> FleetPicture:
    return FleetPicture(load_fleet(FLEET_FILE), stale_after_s=5.0)


def report(vehicle_id: str, now: float, position=ISLINGTON, available: bool = True, base_id="islington"):
    return view(vehicle_id, position, base_id=base_id, available=available,
                last_seen_s=now)


def test_new_picture_knows_every_vehicle_and_none_is_idle(picture):
    assert sorted(picture.vehicles) == [f"uav{i}" for i in range(1, 10)]
    assert picture.vehicles["uav4"].base_id == "kentish_town"
    assert math.isnan(picture.vehicles["uav4"].latitude)
    assert picture.idle(now_s=0.0) == []
    assert picture.reserved == {}


def test_available_vehicle_reported_recently_is_idle(picture):
    picture.update(report("uav1", now=100.0))
    picture.update(report("uav5", now=100.0, position=KENTISH_TOWN, base_id="kentish_town"))
    assert sorted(v.vehicle_id for v in picture.idle(now_s=101.0)) == ["uav1", "uav5"]


def test_unavailable_vehicle_is_not_idle(picture):
    picture.update(report("uav1", now=100.0, available=False))
    assert picture.idle(now_s=100.0) == []


@pytest.mark.parametrize(("now", "idle"), [(100.0, True), (104.9, True), (105.0, True), (105.1, False),
                                           (1000.0, False)])
def test_stale_vehicle_is_not_idle(picture, now, idle):
    picture.update(report("uav2", now=100.0))
    assert [v.vehicle_id for v in picture.idle(now_s=now)] == (["uav2"] if idle else [])


def test_latest_report_replaces_the_earlier_one(picture):
    picture.update(report("uav2", now=100.0))
    picture.update(report("uav2", now=101.0, available=False))
    assert picture.idle(now_s=101.0) == []
    picture.update(report("uav2", now=102.0, position=STOKE_NEWINGTON))
    (idle,) = picture.idle(now_s=102.0)
    assert (idle.latitude, idle.longitude) == STOKE_NEWINGTON


def test_reserved_vehicle_is_not_idle_until_released(picture):
    picture.update(report("uav1", now=100.0))
    picture.update(report("uav2", now=100.0))
    picture.reserve("uav1", "INC-000001")
    assert picture.reserved == {"uav1": "INC-000001"}
    assert [v.vehicle_id for v in picture.idle(now_s=100.0)] == ["uav2"]
    picture.release("uav1")
    assert picture.reserved == {}
    assert sorted(v.vehicle_id for v in picture.idle(now_s=100.0)) == ["uav1", "uav2"]


def test_releasing_an_unreserved_vehicle_is_harmless(picture):
    picture.release("uav3")
    picture.release("nobody")
    assert picture.reserved == {}


def test_update_from_an_unknown_vehicle_raises_key_error(picture):
    with pytest.raises(KeyError, match="unknown vehicle 'uav10'"):
        picture.update(report("uav10", now=1.0))
    assert "uav10" not in picture.vehicles


def test_each_vehicle_not_free_says_why(picture):
    picture.update(report("uav1", now=100.0))
    picture.update(report("uav2", now=100.0))
    picture.update(report("uav3", now=90.0))
    picture.update(view("uav4", KENTISH_TOWN, available=False, last_seen_s=100.0, not_ready="no link to its autopilot"))
    picture.update(report("uav5", now=100.0, available=False))
    picture.reserve("uav2", "INC-000007")
    assert picture.why_not_free("uav2", now_s=101.0) == "sent to INC-000007"
    assert picture.why_not_free("uav3", now_s=101.0) == "no status for 11 s"
    assert picture.why_not_free("uav4", now_s=101.0) == "no link to its autopilot"
    assert picture.why_not_free("uav5", now_s=101.0) == "reports itself unavailable"
    assert picture.why_not_free("uav6", now_s=101.0) == "no status from it yet"
    assert picture.why_not_free("uav1", now_s=101.0) == "free, and not weighed by the policy"


@pytest.mark.parametrize(("status", "reason"), [
    ((False, False, True, Phase.IDLE.value, "", 0.9), "no link to its autopilot"),
    ((True, True, False, Phase.TRANSIT.value, "INC-000003", 0.8), "in transit on INC-000003"),
    ((True, True, False, Phase.LAND.value, "", 0.3), "in land"),
    ((True, False, True, 42, "", 0.3), "in phase 42"),
    ((True, True, True, Phase.IDLE.value, "", 0.9), "armed or off the ground"),
    ((True, False, True, Phase.IDLE.value, "", 0.25), "not fit to launch (battery 25%, or no GPS fix or home yet)"),
    ((True, False, True, Phase.IDLE.value, "", math.nan), "not fit to launch (battery unknown, or no GPS fix"),
])
def test_a_vehicle_reporting_itself_unavailable_is_described_by_its_status(status, reason):
    assert not_ready_reason(*status).startswith(reason)


def test_dispatch_picks_the_nearest_idle_vehicle_of_the_picture(picture):
    picture.update(report("uav1", now=10.0, position=ISLINGTON))
    picture.update(report("uav4", now=10.0, position=KENTISH_TOWN, base_id="kentish_town"))
    picture.update(report("uav7", now=10.0, position=STOKE_NEWINGTON, base_id="stoke_newington"))
    chosen, _ = nearest_idle(*SCENE, picture.idle(now_s=11.0))
    assert chosen.vehicle_id == "uav1"
    picture.reserve("uav1", "INC-000001")
    chosen, _ = nearest_idle(*SCENE, picture.idle(now_s=11.0))
    assert chosen.vehicle_id == "uav7"         # Stoke Newington is a little nearer than Kentish Town
