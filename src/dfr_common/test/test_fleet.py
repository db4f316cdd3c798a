"""Unit tests of dfr_common.fleet: parsing and checking the fleet file, and vehicle homes."""
from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest

from dfr_common.fleet import (
    Base,
    Fleet,
    FleetConfigError,
    Site,
    Vehicle,
    fleet_and_vehicle_ids,
    load_fleet,
    parse_fleet,
)
from dfr_common.geodesy import LocalFrame

REPO = Path(__file__).resolve().parents[3]
ISLINGTON_YAML = REPO / "config" / "fleet" / "islington.yaml"

# WGS 84, for an independent check of the dock offsets.
WGS84_A = 6378137.0
WGS84_E2 = 6.69437999014e-3

VALID = {
    "site": {"name": "Testville", "ground_amsl_m": 30.0, "geoid_undulation_m": 46.0},
    "bases": [
        {"id": "alpha", "name": "Alpha station", "latitude": 51.5338, "longitude": -0.1109},
        {"id": "bravo", "latitude": 51.5497, "longitude": -0.1420},
    ],
    "vehicles": [
        {"id": "uav1", "base": "alpha", "dock": [-6.0, 0.0]},
        {"id": "uav2", "base": "alpha"},
        {"id": "uav3", "base": "bravo", "dock": [3, -4]},
    ],
}


def valid() -> dict:
    return copy.deepcopy(VALID)


# --- parse_fleet on valid data ----------------------------------------------------------------------------------


def test_parse_valid_fleet():
    fleet = parse_fleet(valid(), "test.yaml")
    assert isinstance(fleet, Fleet)
    assert fleet.site == Site("Testville", 30.0, 46.0)
    assert list(fleet.bases) == ["alpha", "bravo"]
    assert fleet.bases["alpha"] == Base("alpha", "Alpha station", 51.5338, -0.1109)
    assert fleet.bases["bravo"].name == "bravo"          # name defaults to the id
    assert list(fleet.vehicles) == ["uav1", "uav2", "uav3"]
    assert fleet.vehicles["uav1"] == Vehicle("uav1", "alpha", -6.0, 0.0)
    assert fleet.vehicles["uav2"] == Vehicle("uav2", "alpha", 0.0, 0.0)    # dock defaults to [0, 0]
    assert fleet.vehicles["uav3"] == Vehicle("uav3", "bravo", 3.0, -4.0)   # ints become floats
    assert isinstance(fleet.vehicles["uav3"].dock_east_m, float)
    assert fleet.source == "test.yaml"


def test_site_name_is_optional_and_numbers_may_be_ints():
    data = valid()
    data["site"] = {"ground_amsl_m": 0, "geoid_undulation_m": -12}
    site = parse_fleet(data).site
    assert site == Site("", 0.0, -12.0)
    assert isinstance(site.ground_amsl_m, float)


def test_base_on_the_edge_of_the_map_is_accepted():
    data = valid()
    data["bases"][0].update(latitude=-90.0, longitude=180.0)
    assert parse_fleet(data).bases["alpha"].latitude == -90.0


def test_vehicle_helpers():
    fleet = parse_fleet(valid())
    assert fleet.vehicles["uav1"].namespace == "/uav1"
    ground = fleet.base_ground_point("bravo")
    assert (ground.latitude, ground.longitude, ground.altitude) == (51.5497, -0.1420, 76.0)


def test_site_ellipsoid_height_adds_the_geoid():
    site = Site("s", 30.0, 46.0)
    assert site.ellipsoid_height(30.0) == 76.0


def test_fleet_config_error_is_a_value_error():
    assert issubclass(FleetConfigError, ValueError)


# --- parse_fleet error paths ------------------------------------------------------------------------------------


def _set(path, value):
    """A mutation of the valid data: set data[path...] = value."""
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


def _delete(path):
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return mutate


def _append(path, value):
    def mutate(data):
        target = data
        for key in path:
            target = target[key]
        target.append(copy.deepcopy(value))
    return mutate


ERRORS = {
    # site
    "no site": (_delete(["site"]), r"missing 'site'"),
    "site without ground height": (_delete(["site", "ground_amsl_m"]), r"site: missing 'ground_amsl_m'"),
    "site without undulation": (_delete(["site", "geoid_undulation_m"]), r"site: missing 'geoid_undulation_m'"),
    "site ground NaN": (_set(["site", "ground_amsl_m"], math.nan), r"'ground_amsl_m' must be a finite number"),
    "site undulation inf": (_set(["site", "geoid_undulation_m"], math.inf),
                            r"'geoid_undulation_m' must be a finite number"),
    "site ground a string": (_set(["site", "ground_amsl_m"], "30"), r"'ground_amsl_m' must be a finite number"),
    "site ground a bool": (_set(["site", "ground_amsl_m"], True), r"'ground_amsl_m' must be a finite number"),
    # bases
    "no bases key": (_delete(["bases"]), r"missing 'bases'"),
    "empty bases": (_set(["bases"], []), r"no bases"),
    "null bases": (_set(["bases"], None), r"no bases"),
    "base without id": (_delete(["bases", 0, "id"]), r"bases\[0\]: missing 'id'"),
    "base id with hyphen": (_set(["bases", 1, "id"], "kentish-town"), r"bases\[1\]: 'id' must be a name"),
    "base id starting with digit": (_set(["bases", 0, "id"], "1st"), r"bases\[0\]: 'id' must be a name"),
    "base id empty": (_set(["bases", 0, "id"], ""), r"'id' must be a name"),
    "base id an int": (_set(["bases", 0, "id"], 7), r"'id' must be a name"),
    "duplicate base": (_set(["bases", 1, "id"], "alpha"), r"bases\[1\]: duplicate base id 'alpha'"),
    "base without latitude": (_delete(["bases", 0, "latitude"]), r"bases\[0\]: missing 'latitude'"),
    "base latitude NaN": (_set(["bases", 0, "latitude"], math.nan), r"'latitude' must be a finite number"),
    "base longitude inf": (_set(["bases", 1, "longitude"], -math.inf), r"'longitude' must be a finite number"),
    "base latitude a string": (_set(["bases", 0, "latitude"], "51.5"), r"'latitude' must be a finite number"),
    "base latitude off Earth": (_set(["bases", 0, "latitude"], 90.5), r"bases\[0\]: position .* not on the Earth"),
    "base latitude off Earth south": (_set(["bases", 0, "latitude"], -91), r"not on the Earth"),
    "base longitude off Earth": (_set(["bases", 1, "longitude"], 180.01), r"bases\[1\]: .*not on the Earth"),
    # vehicles
    "no vehicles key": (_delete(["vehicles"]), r"missing 'vehicles'"),
    "empty vehicles": (_set(["vehicles"], []), r"no vehicles"),
    "vehicle without id": (_delete(["vehicles", 2, "id"]), r"vehicles\[2\]: missing 'id'"),
    "vehicle id with space": (_set(["vehicles", 0, "id"], "uav 1"), r"vehicles\[0\]: 'id' must be a name"),
    "vehicle id with slash": (_set(["vehicles", 0, "id"], "fleet/uav1"), r"'id' must be a name"),
    "vehicle id a float": (_set(["vehicles", 0, "id"], 1.0), r"'id' must be a name"),
    "duplicate vehicle": (_set(["vehicles", 2, "id"], "uav1"), r"vehicles\[2\]: duplicate vehicle id 'uav1'"),
    "vehicle without base": (_delete(["vehicles", 1, "base"]), r"vehicles\[1\]: missing 'base'"),
    "unknown base": (_set(["vehicles", 1, "base"], "charlie"), r"vehicles\[1\]: unknown base 'charlie'"),
    "dock too short": (_set(["vehicles", 0, "dock"], [1.0]), r"vehicles\[0\]: 'dock' must be \[east_m, north_m\]"),
    "dock too long": (_set(["vehicles", 0, "dock"], [1.0, 2.0, 3.0]), r"'dock' must be \[east_m, north_m\]"),
    "dock a string": (_set(["vehicles", 0, "dock"], "1, 2"), r"'dock' must be \[east_m, north_m\]"),
    "dock a mapping": (_set(["vehicles", 0, "dock"], {"east": 1, "north": 2}), r"'dock' must be"),
    "dock east NaN": (_set(["vehicles", 0, "dock"], [math.nan, 0.0]), r"vehicles\[0\]: 'east' must be a finite"),
    "dock north inf": (_set(["vehicles", 0, "dock"], [0.0, math.inf]), r"'north' must be a finite number"),
    "dock east a string": (_set(["vehicles", 0, "dock"], ["6", 0.0]), r"'east' must be a finite number"),
    "dock north null": (_set(["vehicles", 0, "dock"], [0.0, None]), r"missing 'north'"),
    "vehicle entry not a mapping": (_append(["vehicles"], "uav9"), r"vehicles\[3\]: missing 'id'"),
}


@pytest.mark.parametrize("mutate,pattern", list(ERRORS.values()), ids=list(ERRORS))
def test_parse_fleet_error(mutate, pattern):
    data = valid()
    mutate(data)
    with pytest.raises(FleetConfigError, match=pattern) as info:
        parse_fleet(data, "bad.yaml")
    assert str(info.value).startswith("bad.yaml")     # every message names the file


@pytest.mark.parametrize("data", [None, [], "site: x", 42])
def test_parse_fleet_rejects_non_mapping_top_level(data):
    with pytest.raises(FleetConfigError, match="expected a mapping at the top level"):
        parse_fleet(data, "bad.yaml")


@pytest.mark.parametrize("site", [None, [], "Islington"])
def test_parse_fleet_rejects_non_mapping_site(site):
    data = valid()
    data["site"] = site
    with pytest.raises(FleetConfigError, match="site"):
        parse_fleet(data, "bad.yaml")


@pytest.mark.parametrize("vehicle_id", ["uav\u00e9", "\u0434\u0440\u043e\u043d1"])
def test_parse_fleet_rejects_non_ascii_vehicle_id(vehicle_id):
    data = valid()
    data["vehicles"][0]["id"] = vehicle_id
    with pytest.raises(FleetConfigError, match="'id' must be a name"):
        parse_fleet(data, "bad.yaml")


# --- load_fleet -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def islington() -> Fleet:
    return load_fleet(ISLINGTON_YAML)


def test_load_islington_counts(islington):
    assert set(islington.bases) == {"islington", "kentish_town", "stoke_newington"}
    assert len(islington.vehicles) == 9
    per_base = {b: sorted(v.vehicle_id for v in islington.vehicles.values() if v.base_id == b)
                for b in islington.bases}
    assert per_base == {"islington": ["uav1", "uav2", "uav3"],
                        "kentish_town": ["uav4", "uav5", "uav6"],
                        "stoke_newington": ["uav7", "uav8", "uav9"]}
    assert islington.site == Site("Islington", 30.0, 46.0)
    assert islington.source == str(ISLINGTON_YAML)
    assert islington.bases["kentish_town"] == Base("kentish_town", "Kentish Town police station", 51.5497, -0.1420)


def test_load_fleet_accepts_a_string_path():
    assert load_fleet(str(ISLINGTON_YAML)).vehicles.keys() == load_fleet(ISLINGTON_YAML).vehicles.keys()


def test_load_fleet_missing_file(tmp_path):
    with pytest.raises(FleetConfigError, match="cannot read fleet file"):
        load_fleet(tmp_path / "nope.yaml")


def test_load_fleet_invalid_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("site: {name: [unclosed\n")
    with pytest.raises(FleetConfigError, match="not valid YAML"):
        load_fleet(path)


def test_load_fleet_empty_file(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(FleetConfigError, match="expected a mapping"):
        load_fleet(path)


def test_load_fleet_reports_errors_with_the_path(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(ISLINGTON_YAML.read_text().replace("id: uav2,", "id: uav1,"))
    with pytest.raises(FleetConfigError, match=r"dup\.yaml: vehicles\[1\]: duplicate vehicle id 'uav1'"):
        load_fleet(path)


# --- vehicle_home -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("vehicle_id", [f"uav{i}" for i in range(1, 10)])
def test_vehicle_home_applies_the_dock_offset_in_metres(islington, vehicle_id):
    vehicle = islington.vehicles[vehicle_id]
    base = islington.bases[vehicle.base_id]
    home = islington.vehicle_home(vehicle_id)
    # Ellipsoid height = ground AMSL + geoid undulation = 30 + 46.
    assert home.altitude == pytest.approx(76.0, abs=1e-3)
    enu = LocalFrame(islington.base_ground_point(base.base_id)).point_to_enu(home)
    np.testing.assert_allclose(enu, [vehicle.dock_east_m, vehicle.dock_north_m, 0.0], atol=1e-3)
    # Independent check: on a parallel of latitude, east metres = dlon * (N + h) * cos(lat).
    lat = math.radians(base.latitude)
    prime_vertical = WGS84_A / math.sqrt(1.0 - WGS84_E2 * math.sin(lat) ** 2)
    expected_dlon = math.degrees(vehicle.dock_east_m / ((prime_vertical + 76.0) * math.cos(lat)))
    assert home.longitude - base.longitude == pytest.approx(expected_dlon, abs=1e-9)
    assert home.latitude == pytest.approx(base.latitude, abs=1e-9)


def test_docks_stand_six_metres_apart(islington):
    homes = [islington.vehicle_home(v) for v in ("uav1", "uav2", "uav3")]
    frame = LocalFrame(homes[1])
    east = [float(frame.point_to_enu(h)[0]) for h in homes]
    assert east == pytest.approx([-6.0, 0.0, 6.0], abs=1e-3)


def test_vehicle_home_uses_the_site_heights():
    data = valid()
    data["site"].update(ground_amsl_m=12.5, geoid_undulation_m=-30.0)
    fleet = parse_fleet(data)
    assert fleet.vehicle_home("uav3").altitude == pytest.approx(-17.5, abs=1e-3)
    enu = LocalFrame(fleet.base_ground_point("bravo")).point_to_enu(fleet.vehicle_home("uav3"))
    np.testing.assert_allclose(enu, [3.0, -4.0, 0.0], atol=1e-3)


def test_vehicle_home_of_unknown_vehicle_raises_key_error(islington):
    with pytest.raises(KeyError):
        islington.vehicle_home("uav99")


def test_a_nodes_fleet_and_vehicles_parameters_name_the_vehicles_or_the_parameter_at_fault():
    path = str(REPO / "config" / "fleet" / "islington.yaml")
    fleet, ids = fleet_and_vehicle_ids(path, [])
    assert ids == list(fleet.vehicles) and len(ids) == 9
    assert fleet_and_vehicle_ids(path, ["uav4", "uav1"])[1] == ["uav4", "uav1"]
    with pytest.raises(ValueError, match=r"parameter 'vehicles' names \['uav99'\], not in .*islington.yaml"):
        fleet_and_vehicle_ids(path, ["uav1", "uav99"])
    with pytest.raises(ValueError, match="parameter 'fleet_file' is empty"):
        fleet_and_vehicle_ids("", [])
