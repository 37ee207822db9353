"""Declaring a node's plain parameters with descriptors and checking their types, shared by the
robot node and the lidar simulator. Errors are collected, so a node reports every bad parameter
at once before it starts."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter


def coerce(kind: str, value: Any) -> Any:
    """The parameter value as ``kind`` (string, string_array, bool, integer, double), or ``TypeError``."""
    if kind == "string_array":
        if value is None:
            return []
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return list(value)
    elif kind == "string" and isinstance(value, str):
        return value
    elif kind == "bool" and isinstance(value, bool):
        return value
    elif kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif kind == "double" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(kind)


def declare_checked(node: Node, errors: list[str], name: str, default: Any, kind: str, description: str,
                    constraints: str) -> Any:
    """Declare ``name`` with a descriptor and return its value as ``kind``; on a wrong type append
    a message naming the parameter and what is allowed to ``errors`` and return ``default``."""
    descriptor = ParameterDescriptor(description=description, additional_constraints=constraints)
    try:
        if kind == "string_array":
            value = node.declare_parameter(name, Parameter.Type.STRING_ARRAY, descriptor).value
        else:
            descriptor.dynamic_typing = True
            value = node.declare_parameter(name, default, descriptor).value
    except InvalidParameterTypeException as error:
        override = getattr(node, "_parameter_overrides", {}).get(name)
        if kind == "string_array" and override is not None and override.value is not None \
                and len(override.value) == 0:
            # An empty list has no element type (rclpy makes it a byte array): it is just empty.
            node.declare_parameter(name, Parameter.Type.STRING_ARRAY, descriptor, ignore_override=True)
            return []
        errors.append(f"parameter '{name}': expected a {kind.replace('_', ' ')} ({error})")
        return [] if kind == "string_array" else default
    try:
        return coerce(kind, value)
    except TypeError:
        errors.append(f"parameter '{name}': expected a {kind.replace('_', ' ')}, got {value!r}"
                      + (f"; allowed: {constraints}" if constraints else ""))
        return default
