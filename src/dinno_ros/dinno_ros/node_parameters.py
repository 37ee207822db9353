"""Declaring a node's parameters with descriptors and checking their types. Errors are collected,
so a node reports every bad parameter at once before it starts.

:func:`declare_specs` declares parameters generated from pydantic models
(:class:`dinno_ros.parameters.ParameterSpec`), with ``integer_range`` / ``floating_point_range``
descriptors carrying the models' bounds (``ros2 param describe`` shows them);
:func:`declare_checked` declares one parameter from a table row (the lidar simulator)."""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coerce(kind: str, value: Any) -> Any:
    """The parameter value as ``kind`` (string, string_array, bool, integer, double,
    double_array), or ``TypeError``."""
    if kind == "double_array":
        if value is not None and not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
            items = list(value)  # a list from YAML, an array.array from rclpy
            if all(_number(v) for v in items):
                return [float(v) for v in items]
    elif kind == "string_array":
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
    elif kind == "double" and _number(value):
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


def descriptor(spec: Any) -> ParameterDescriptor:
    """The descriptor of a generated parameter: description, constraints text and numeric range.

    Numbers stay dynamically typed (``round_timeout:=2`` is a valid double, as the models
    accept it); the range applies to values of the declared type.
    """
    result = ParameterDescriptor(description=spec.description, additional_constraints=spec.constraints)
    if spec.type_name == "string_array":
        return result
    result.dynamic_typing = True
    if spec.low is not None and spec.type_name == "integer":
        result.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=0)]
    elif spec.low is not None and spec.type_name == "double":
        result.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high),
                                                          step=0.0)]
    return result


def declare_specs(node: Node, specs: list[Any], errors: list[str]) -> dict[str, Any]:
    """Declare every spec; returns name → value (``None``: not set or rejected, with the reason
    appended to ``errors``)."""
    values: dict[str, Any] = {}
    for spec in specs:
        if node.has_parameter(spec.name):
            values[spec.name] = node.get_parameter(spec.name).value
            continue
        described = descriptor(spec)
        try:
            if spec.type_name == "string_array":
                value = node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, described).value
            else:
                value = node.declare_parameter(spec.name, spec.default, described).value
        except InvalidParameterTypeException as error:
            override = getattr(node, "_parameter_overrides", {}).get(spec.name)
            if spec.type_name == "string_array" and override is not None and override.value is not None \
                    and len(override.value) == 0:
                # An empty list has no element type (rclpy makes it a byte array): it is just empty.
                node.declare_parameter(spec.name, Parameter.Type.STRING_ARRAY, described, ignore_override=True)
                values[spec.name] = []
                continue
            errors.append(f"parameter '{spec.name}': expected a {spec.type_name.replace('_', ' ')} ({error})")
            value = None
        except InvalidParameterValueException:
            override = getattr(node, "_parameter_overrides", {}).get(spec.name)
            shown = "" if override is None else f" (got {override.value!r})"
            errors.append(f"parameter '{spec.name}': out of range; allowed: {spec.constraints}{shown}")
            value = None
        values[spec.name] = value
    return values


def parameter_overrides(node: Node) -> set[str]:
    """Names of the parameters given on the command line / in params files for this node."""
    return set(getattr(node, "_parameter_overrides", {}))  # rclpy keeps the --ros-args/-p values here


def declare_mapping_task(node: Node, errors: list[str], role: str) -> Any:
    """``task.name`` (only ``mapping``) and the mapping task's ``task.*`` parameters (generated from
    the core's ``MappingTaskConfig``), validated by the core's model: the task config, or None
    with the problems appended to ``errors``. ``role`` says what the node does with the task."""
    from dinno_core.config import ConfigError
    from dinno_ros.parameters import nest, task_model, task_parameters, validate_model

    name = declare_checked(node, errors, "task.name", "mapping", "string", f"Learning task ({role} the mapping "
                           "task only).", "mapping")
    if name != "mapping":
        errors.append(f"parameter 'task.name': {role} the mapping task, got {name!r}")
        return None
    raw = declare_specs(node, task_parameters("mapping"), errors)
    try:
        return validate_model(task_model("mapping"), {"name": "mapping", **nest(raw, "task")}, "task")
    except ConfigError as problem:
        errors.append(str(problem))
        return None


def check_no_unknown_parameters(node: Node, errors: list[str]) -> None:
    """Every parameter given on the command line / in params files must have been declared."""
    for name in sorted(parameter_overrides(node) - set(node._parameters)):
        errors.append(f"parameter '{name}' is unknown")
