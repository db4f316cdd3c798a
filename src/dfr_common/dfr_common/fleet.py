"""The fleet file: the site, its bases and the vehicles docked at each.

One YAML file (config/fleet/*.yaml) describes the network. The simulator spawns the
vehicles from it, dispatch knows which vehicles and bases exist, and the runner and
launch files start one bridge per vehicle from it. It is data, like a map, so nodes
take its path as a parameter rather than copying it into their own parameters.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from dfr_common.config_file import load_yaml
from dfr_common.geodesy import GeoPoint, LocalFrame


class FleetConfigError(ValueError):
    """The fleet file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Site:
    name: str
    ground_amsl_m: float          # the simulated flat ground, metres above mean sea level
    geoid_undulation_m: float     # geoid height above the WGS 84 ellipsoid at the site

    def ellipsoid_height(self, amsl_m: float) -> float:
        return amsl_m + self.geoid_undulation_m


@dataclass(frozen=True)
class Base:
    base_id: str
    name: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Vehicle:
    vehicle_id: str
    base_id: str
    dock_east_m: float = 0.0      # dock position relative to the base's reference point
    dock_north_m: float = 0.0

    @property
    def namespace(self) -> str:
        return "/" + self.vehicle_id


@dataclass(frozen=True)
class Fleet:
    site: Site
    bases: dict[str, Base]
    vehicles: dict[str, Vehicle]
    source: str = field(default="", compare=False)

    def base_ground_point(self, base_id: str) -> GeoPoint:
        base = self.bases[base_id]
        return GeoPoint(base.latitude, base.longitude,
                        self.site.ellipsoid_height(self.site.ground_amsl_m))

    def site_frame(self) -> LocalFrame:
        """The one ENU frame of the whole site (the first base's ground point), shared by every node
        that works in site metres: the ground world, its actors, the cameras."""
        return LocalFrame(self.base_ground_point(next(iter(self.bases))))

    def vehicle_home(self, vehicle_id: str) -> GeoPoint:
        """The vehicle's dock on the ground, WGS 84 with ellipsoid altitude."""
        vehicle = self.vehicles[vehicle_id]
        frame = LocalFrame(self.base_ground_point(vehicle.base_id))
        return frame.enu_to_point((vehicle.dock_east_m, vehicle.dock_north_m, 0.0))


def _require(mapping, key, where):
    if not isinstance(mapping, dict) or key not in mapping:
        raise FleetConfigError(f"{where}: missing '{key}'")
    return mapping[key]


def _list(mapping, key, where) -> list:
    value = _require(mapping, key, where)
    if value is None:
        return []
    if not isinstance(value, list):
        raise FleetConfigError(f"{where}: '{key}' must be a list")
    return value


def _number(mapping, key, where, default=None):
    value = mapping.get(key, default) if isinstance(mapping, dict) else default
    if value is None:
        raise FleetConfigError(f"{where}: missing '{key}'")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FleetConfigError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return float(value)


_ROS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _identifier(mapping, key, where):
    """Ids become ROS namespaces, which take ASCII letters, digits and _, starting with a letter."""
    value = _require(mapping, key, where)
    if not isinstance(value, str) or not _ROS_NAME.fullmatch(value):
        raise FleetConfigError(f"{where}: '{key}' must be a name of letters, digits and _, got {value!r}")
    return value


def parse_fleet(data, source: str = "<fleet>") -> Fleet:
    """Build a Fleet from the parsed YAML, checking every reference."""
    if not isinstance(data, dict):
        raise FleetConfigError(f"{source}: expected a mapping at the top level")
    site_data = _require(data, "site", source)
    if not isinstance(site_data, dict):
        raise FleetConfigError(f"{source}: site: expected a mapping with ground_amsl_m and geoid_undulation_m")
    site = Site(name=str(site_data.get("name", "")),
                ground_amsl_m=_number(site_data, "ground_amsl_m", f"{source}: site"),
                geoid_undulation_m=_number(site_data, "geoid_undulation_m", f"{source}: site"))

    bases: dict[str, Base] = {}
    for i, entry in enumerate(_list(data, "bases", source)):
        where = f"{source}: bases[{i}]"
        base_id = _identifier(entry, "id", where)
        if base_id in bases:
            raise FleetConfigError(f"{where}: duplicate base id '{base_id}'")
        latitude = _number(entry, "latitude", where)
        longitude = _number(entry, "longitude", where)
        if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
            raise FleetConfigError(f"{where}: position {latitude}, {longitude} is not on the Earth")
        bases[base_id] = Base(base_id, str(entry.get("name", base_id)), latitude, longitude)
    if not bases:
        raise FleetConfigError(f"{source}: no bases")

    vehicles: dict[str, Vehicle] = {}
    for i, entry in enumerate(_list(data, "vehicles", source)):
        where = f"{source}: vehicles[{i}]"
        vehicle_id = _identifier(entry, "id", where)
        if vehicle_id in vehicles:
            raise FleetConfigError(f"{where}: duplicate vehicle id '{vehicle_id}'")
        base_id = _require(entry, "base", where)
        if not isinstance(base_id, str) or base_id not in bases:
            raise FleetConfigError(f"{where}: unknown base '{base_id}'")
        dock = entry.get("dock", [0.0, 0.0])
        if not (isinstance(dock, list) and len(dock) == 2):
            raise FleetConfigError(f"{where}: 'dock' must be [east_m, north_m]")
        vehicles[vehicle_id] = Vehicle(vehicle_id, base_id,
                                       _number({"east": dock[0]}, "east", where),
                                       _number({"north": dock[1]}, "north", where))
    if not vehicles:
        raise FleetConfigError(f"{source}: no vehicles")
    return Fleet(site, bases, vehicles, source)


def load_fleet(path) -> Fleet:
    return parse_fleet(load_yaml(path, FleetConfigError, "fleet file"), str(path))


def fleet_and_vehicle_ids(fleet_file: str, vehicles) -> tuple[Fleet, list[str]]:
    """A node's `fleet_file` and `vehicles` parameters: the fleet, and the ids it names (every vehicle where it
    names none). Each error names the parameter, for the node's one-line refusal to start."""
    if not fleet_file:
        raise ValueError("parameter 'fleet_file' is empty: give the path of a fleet file")
    fleet = load_fleet(fleet_file)
    unknown = set(vehicles) - set(fleet.vehicles)
    if unknown:
        raise ValueError(f"parameter 'vehicles' names {sorted(unknown)}, not in {fleet_file}")
    return fleet, list(vehicles) or list(fleet.vehicles)
