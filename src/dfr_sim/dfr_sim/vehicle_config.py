"""Per-vehicle differences from the fleet-wide airframe: `uav9.initial_battery_fraction=0.4`.

One `vehicle.*` parameter set describes the airframe every vehicle flies; a test or a
scenario often needs one vehicle to differ (a half-empty battery, a slower airframe).
The overrides are checked against the same field types and ranges as the parameters.
"""
from __future__ import annotations

import dataclasses
import math

from dfr_sim.multirotor import MultirotorConfig

_FIELDS = {f.name: f for f in dataclasses.fields(MultirotorConfig)}


class VehicleOverrideError(ValueError):
    """An override names no vehicle or field, or carries a value the field does not accept."""


def parse_overrides(entries, vehicle_ids) -> dict[str, dict[str, object]]:
    """`["uav1.max_speed_m_s=15", ...]` → {"uav1": {"max_speed_m_s": 15.0}}."""
    overrides: dict[str, dict[str, object]] = {}
    for entry in entries:
        where = f"vehicle_overrides entry '{entry}'"
        target, sep, text = entry.partition("=")
        vehicle_id, dot, name = target.strip().partition(".")
        if not sep or not dot:
            raise VehicleOverrideError(f"{where}: expected VEHICLE.FIELD=VALUE")
        if vehicle_id not in vehicle_ids:
            raise VehicleOverrideError(f"{where}: no vehicle '{vehicle_id}' in the fleet")
        field = _FIELDS.get(name)
        if field is None:
            raise VehicleOverrideError(f"{where}: no field '{name}' (see the vehicle.* parameters)")
        overrides.setdefault(vehicle_id, {})[name] = _value(field, text.strip(), where)
    return overrides


def _value(field, text: str, where: str):
    kind = type(field.default)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if kind is str:
            return text
        value = kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
    except ValueError:
        raise VehicleOverrideError(f"{where}: '{text}' is not a {kind.__name__}") from None
    low, high = field.metadata.get("min"), field.metadata.get("max")
    if isinstance(value, float) and not math.isfinite(value):
        raise VehicleOverrideError(f"{where}: {value} is not finite")
    if low is not None and not low <= value <= high:
        raise VehicleOverrideError(f"{where}: {value} is outside [{low}, {high}]")
    return value


def with_overrides(config: MultirotorConfig, fields: dict[str, object]) -> MultirotorConfig:
    return dataclasses.replace(config, **fields)
