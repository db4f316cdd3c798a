"""Declaring node parameters with a description and a range, in one line each.

Every parameter an operator may change is declared here with what it means and the
values it may take, so `ros2 param describe` documents it and a value out of range is
refused when the node starts, not discovered in flight.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterValueException
from rclpy.parameter import Parameter


@dataclass(frozen=True)
class Param:
    name: str
    default: object
    description: str
    min: float | None = None
    max: float | None = None
    read_only: bool = False


class ParameterRangeError(ValueError):
    """A parameter's value lies outside its declared range."""


def _descriptor(spec: Param) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.min is not None or spec.max is not None:
        if isinstance(spec.default, bool):
            raise TypeError(f"{spec.name}: a bool parameter takes no range")
        if isinstance(spec.default, int):
            descriptor.integer_range = [IntegerRange(
                from_value=int(spec.min if spec.min is not None else -2**63),
                to_value=int(spec.max if spec.max is not None else 2**63 - 1), step=0)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(spec.min if spec.min is not None else -1e300),
                to_value=float(spec.max if spec.max is not None else 1e300), step=0.0)]
    return descriptor


def declare(node, specs) -> SimpleNamespace:
    """Declare every Param on the node and return their values by name.

    A value from a parameter file outside the declared range makes rclpy raise at
    declaration; this turns that into one error that names the parameter and range.
    """
    values = {}
    for spec in specs:
        # rclpy cannot tell the element type of an empty list: declare it as a string array.
        empty_list = isinstance(spec.default, list) and not spec.default
        default = Parameter.Type.STRING_ARRAY if empty_list else spec.default
        try:
            parameter = node.declare_parameter(spec.name, default, _descriptor(spec))
        except InvalidParameterValueException as err:
            raise ParameterRangeError(
                f"{node.get_fully_qualified_name()}: parameter '{spec.name}' must lie in "
                f"[{spec.min}, {spec.max}]: {err}") from err
        value = parameter.value
        if empty_list:
            value = list(value or [])
        values[spec.name.replace(".", "_")] = value
    return SimpleNamespace(**values)
