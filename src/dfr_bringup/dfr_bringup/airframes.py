"""Real airframes: the flight controller link that each vehicle's MAVROS opens.

config/airframes/real.yaml maps vehicle ids of the fleet file to a MAVROS connection:

    airframes:
      uav1:
        fcu_url: serial:///dev/ttyUSB0:921600   # MAVROS fcu_url
        tgt_system: 1                           # the autopilot's MAV_SYS_ID
        tgt_component: 1                        # optional, default 1 (the autopilot)
        gcs_url: udp-b://@                      # optional: relay to a ground station

launch/real.launch.py starts one MAVROS per entry. Mistakes that would otherwise show
up as a silent link in the field are refused here, each with the file and the entry.
"""
from __future__ import annotations

from dataclasses import dataclass

from dfr_common.config_file import load_yaml
from dfr_common.fleet import Fleet

# The connection URL schemes MAVROS's libmavconn opens (mavconn::MAVConnInterface::open_url).
MAVROS_URL_SCHEMES = ("serial", "serial-hwfc", "udp", "udp-b", "udp-pb", "tcp", "tcp-l")
KEYS = ("fcu_url", "tgt_system", "tgt_component", "gcs_url")


class AirframeConfigError(ValueError):
    """The airframes file is missing, malformed or inconsistent with the fleet file."""


@dataclass(frozen=True)
class Airframe:
    vehicle_id: str
    fcu_url: str
    tgt_system: int
    tgt_component: int = 1
    gcs_url: str = ""


def check_mavros_url(value, where: str, key: str, optional: bool = False) -> str:
    """A MAVROS connection URL, scheme://..., with a scheme libmavconn knows."""
    if optional and value in (None, ""):
        return ""
    if not isinstance(value, str) or not value.strip():
        raise AirframeConfigError(f"{where}: '{key}' must be a MAVROS URL such as serial:///dev/ttyUSB0:921600 "
                                  f"or udp://:14540@192.168.1.10:14580, got {value!r}")
    scheme, sep, rest = value.partition("://")
    if not sep:
        raise AirframeConfigError(f"{where}: '{key}' {value!r} has no scheme; write it as serial://{value} for a "
                                  f"serial port, or use one of {', '.join(s + '://' for s in MAVROS_URL_SCHEMES)}")
    if scheme.lower() not in MAVROS_URL_SCHEMES:
        raise AirframeConfigError(f"{where}: '{key}' {value!r}: MAVROS has no URL scheme '{scheme}://'; "
                                  f"it opens {', '.join(s + '://' for s in MAVROS_URL_SCHEMES)}")
    if not rest.strip():
        raise AirframeConfigError(f"{where}: '{key}' {value!r} names no device or address after '{scheme}://'")
    if scheme.lower().startswith("serial") and not rest.startswith("/"):
        raise AirframeConfigError(f"{where}: '{key}' {value!r}: a serial URL needs a device path, "
                                  f"e.g. serial:///dev/ttyUSB0:921600")
    return value


def _id(entry: dict, key: str, where: str, default=None) -> int:
    value = entry.get(key, default)
    if value is None:
        raise AirframeConfigError(f"{where}: missing '{key}' (the autopilot's MAVLink system id, 1-255)")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 255:
        raise AirframeConfigError(f"{where}: '{key}' must be a whole number from 1 to 255, got {value!r}")
    return value


def parse_airframes(data, fleet: Fleet, source: str = "<airframes>") -> dict[str, Airframe]:
    """The airframes of the parsed YAML, keyed by vehicle id, in fleet order."""
    if not isinstance(data, dict) or "airframes" not in data:
        raise AirframeConfigError(f"{source}: expected a mapping with 'airframes:' at the top level")
    entries = data["airframes"]
    if not isinstance(entries, dict) or not entries:
        raise AirframeConfigError(f"{source}: 'airframes' must map vehicle ids to their MAVROS links; it is empty "
                                  "or not a mapping")
    airframes: dict[str, Airframe] = {}
    systems: dict[int, str] = {}
    for vehicle_id, entry in entries.items():
        where = f"{source}: airframes.{vehicle_id}"
        if vehicle_id not in fleet.vehicles:
            raise AirframeConfigError(f"{where}: unknown vehicle '{vehicle_id}': the fleet file {fleet.source} has "
                                      f"{', '.join(fleet.vehicles)}")
        if not isinstance(entry, dict):
            raise AirframeConfigError(f"{where}: expected a mapping with fcu_url and tgt_system, got {entry!r}")
        unknown = [k for k in entry if k not in KEYS]
        if unknown:
            raise AirframeConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                                      f"an airframe has {', '.join(KEYS)}")
        if "fcu_url" not in entry:
            raise AirframeConfigError(f"{where}: missing 'fcu_url' (MAVROS's link to the flight controller, "
                                      "e.g. serial:///dev/ttyUSB0:921600)")
        fcu_url = check_mavros_url(entry["fcu_url"], where, "fcu_url")
        gcs_url = check_mavros_url(entry.get("gcs_url"), where, "gcs_url", optional=True)
        tgt_system = _id(entry, "tgt_system", where)
        tgt_component = _id(entry, "tgt_component", where, default=1)
        if tgt_system in systems:
            raise AirframeConfigError(f"{where}: tgt_system {tgt_system} is already {systems[tgt_system]}'s; "
                                      "each autopilot needs its own MAV_SYS_ID")
        systems[tgt_system] = vehicle_id
        airframes[vehicle_id] = Airframe(vehicle_id, fcu_url, tgt_system, tgt_component, gcs_url)
    return {v: airframes[v] for v in fleet.vehicles if v in airframes}


def load_airframes(path, fleet: Fleet) -> dict[str, Airframe]:
    return parse_airframes(load_yaml(path, AirframeConfigError, "airframes file"), fleet, str(path))
