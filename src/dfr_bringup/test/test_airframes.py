"""Unit tests of dfr_bringup.airframes: config/airframes/real.yaml, parsed and checked."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from dfr_bringup.airframes import (
    MAVROS_URL_SCHEMES,
    Airframe,
    AirframeConfigError,
    load_airframes,
    parse_airframes,
)
from dfr_common.fleet import load_fleet

REPO = Path(__file__).resolve().parents[3]
FLEET = load_fleet(REPO / "config" / "fleet" / "islington.yaml")
VALID = {"airframes": {
    "uav3": {"fcu_url": "udp://:14542@192.168.1.13:14582", "tgt_system": 3},
    "uav1": {"fcu_url": "serial:///dev/ttyUSB0:921600", "tgt_system": 1, "gcs_url": "udp-b://@"},
}}


def parse(data):
    return parse_airframes(data, FLEET, "real.yaml")


def with_entry(vehicle_id, **entry):
    data = copy.deepcopy(VALID)
    data["airframes"][vehicle_id] = entry
    return data


def test_a_valid_file_gives_each_vehicle_its_link_in_fleet_order():
    airframes = parse(VALID)
    assert list(airframes) == ["uav1", "uav3"]
    assert airframes["uav1"] == Airframe("uav1", "serial:///dev/ttyUSB0:921600", 1, 1, "udp-b://@")
    assert airframes["uav3"] == Airframe("uav3", "udp://:14542@192.168.1.13:14582", 3, 1, "")


def test_the_shipped_example_file_is_valid():
    airframes = load_airframes(REPO / "config" / "airframes" / "real.yaml", FLEET)
    assert set(airframes) <= set(FLEET.vehicles) and airframes
    assert len({a.tgt_system for a in airframes.values()}) == len(airframes)


@pytest.mark.parametrize("url", ["serial:///dev/ttyACM0:57600", "serial-hwfc:///dev/ttyTHS1:921600",
                                 "udp://:14540@127.0.0.1:14580", "udp-b://@", "udp-pb://@:14550",
                                 "tcp://192.168.1.12:5760", "tcp-l://:5760", "UDP://:14540@10.0.0.1:14580"])
def test_every_mavros_scheme_is_accepted(url):
    assert parse(with_entry("uav2", fcu_url=url, tgt_system=2))["uav2"].fcu_url == url
    assert len(MAVROS_URL_SCHEMES) == 7


def test_an_unknown_vehicle_is_named_with_the_fleet():
    with pytest.raises(AirframeConfigError, match=r"real.yaml: airframes.uav42: unknown vehicle 'uav42'.*uav1, uav2"):
        parse(with_entry("uav42", fcu_url="serial:///dev/ttyUSB3:921600", tgt_system=42))


def test_a_missing_fcu_url_is_refused():
    with pytest.raises(AirframeConfigError, match=r"airframes.uav2: missing 'fcu_url'"):
        parse(with_entry("uav2", tgt_system=2))


@pytest.mark.parametrize("url, message", [
    ("http://10.0.0.2:80", "MAVROS has no URL scheme 'http://'"),
    ("/dev/ttyUSB0:921600", "has no scheme; write it as serial:///dev/ttyUSB0:921600"),
    ("udp://", "names no device or address after 'udp://'"),
    ("serial://ttyUSB0:921600", "a serial URL needs a device path"),
    ("", "must be a MAVROS URL"),
    (14540, "must be a MAVROS URL"),
])
def test_a_bad_fcu_url_is_refused_with_the_reason(url, message):
    with pytest.raises(AirframeConfigError, match=message):
        parse(with_entry("uav2", fcu_url=url, tgt_system=2))


def test_a_bad_gcs_url_is_refused_too():
    with pytest.raises(AirframeConfigError, match="'gcs_url' 'qgc://x'"):
        parse(with_entry("uav2", fcu_url="serial:///dev/ttyUSB1:921600", tgt_system=2, gcs_url="qgc://x"))


def test_a_duplicate_tgt_system_names_both_vehicles():
    with pytest.raises(AirframeConfigError, match=r"airframes.uav2: tgt_system 1 is already uav1's"):
        parse(with_entry("uav2", fcu_url="serial:///dev/ttyUSB1:921600", tgt_system=1))


@pytest.mark.parametrize("value", [0, 256, True, "2", 2.0, None])
def test_tgt_system_must_be_a_mavlink_system_id(value):
    entry = {"fcu_url": "serial:///dev/ttyUSB1:921600"}
    if value is not None:
        entry["tgt_system"] = value
    with pytest.raises(AirframeConfigError, match="tgt_system"):
        parse(with_entry("uav2", **entry))


def test_a_misspelt_key_is_refused_not_ignored():
    with pytest.raises(AirframeConfigError, match=r"unknown key\(s\) 'fcu_uri'"):
        parse(with_entry("uav2", fcu_uri="serial:///dev/ttyUSB1:921600", fcu_url="serial:///dev/x:1", tgt_system=2))


@pytest.mark.parametrize("data", [None, [], {"vehicles": {}}, {"airframes": {}}, {"airframes": ["uav1"]}])
def test_a_file_without_airframes_is_refused(data):
    with pytest.raises(AirframeConfigError, match="real.yaml"):
        parse(data)


def test_a_missing_file_names_itself(tmp_path):
    with pytest.raises(AirframeConfigError, match="cannot read airframes file .*nowhere.yaml"):
        load_airframes(tmp_path / "nowhere.yaml", FLEET)
