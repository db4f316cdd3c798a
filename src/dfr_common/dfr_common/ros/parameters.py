"""Declaring node parameters with a description and a range, in one line each.

Every parameter an operator may change is declared with what it means and the
values it may take, so `ros2 param describe` documents it and a value out of range
stops the node at start-up rather than being discovered in flight. Nodes read their
parameters once, at start-up, so they are declared read-only: `ros2 param set` is
refused rather than silently ignored.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import SimpleNamespace

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    min: float | None = None
    max: float | None = None
    read_only: bool = True


class ParameterError(ValueError):
    """A parameter has the wrong type or lies outside its declared range."""


def _descriptor(spec: Param) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    bounded = spec.min is not None or spec.max is not None
    if isinstance(spec.default, float):
        # YAML and the command line write 10 for 10.0: take integers for float parameters too.
        descriptor.dynamic_typing = True
        if bounded:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(spec.min if spec.min is not None else -1e300),
                to_value=float(spec.max if spec.max is not None else 1e300), step=0.0)]
    elif bounded:
        if isinstance(spec.default, bool) or not isinstance(spec.default, int):
            raise TypeError(f"{spec.name}: only numeric parameters take a range")
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.min if spec.min is not None else -2**63),
            to_value=int(spec.max if spec.max is not None else 2**63 - 1), step=0)]
    return descriptor


def declare(node, specs) -> SimpleNamespace:
    """Declare every Param on the node and return their values by name ('a.b' becomes a_b).

    A value of the wrong type or outside its range stops the node at start-up with
    one error that names the node, the parameter and what it must be.
    """
    values = {}
    where = node.get_fully_qualified_name()
    for spec in specs:
        # rclpy cannot tell the element type of an empty list: declare it as a string array.
        empty_list = isinstance(spec.default, list) and not spec.default
        default = Parameter.Type.STRING_ARRAY if empty_list else spec.default
        try:
            value = node.declare_parameter(spec.name, default, _descriptor(spec)).value
        except (InvalidParameterValueException, InvalidParameterTypeException) as err:
            raise ParameterError(f"{where}: parameter '{spec.name}': {err}") from err
        if empty_list:
            value = list(value or [])
        elif isinstance(spec.default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"{where}: parameter '{spec.name}' must be a number, got {value!r}")
            value = float(value)
        if (spec.min is not None and not value >= spec.min) or (spec.max is not None and not value <= spec.max):
            raise ParameterError(f"{where}: parameter '{spec.name}' is {value!r}, outside [{spec.min}, {spec.max}]")
        values[spec.name.replace(".", "_")] = value
    return SimpleNamespace(**values)


def documented_params(config_class, prefix: str) -> list[Param]:
    """One `<prefix>.<field>` parameter per field of a configuration dataclass, with the description and
    range its `documented` field carries: the numbers an algorithm is tuned by, changeable in YAML."""
    return [Param(f"{prefix}.{f.name}", f.default, f.metadata.get("doc", ""), f.metadata.get("min"),
                  f.metadata.get("max")) for f in dataclasses.fields(config_class)]


def documented_config(config_class, values: SimpleNamespace, prefix: str):
    """The configuration dataclass from the parameters documented_params declared."""
    return config_class(**{f.name: getattr(values, f"{prefix}_{f.name}") for f in dataclasses.fields(config_class)})
