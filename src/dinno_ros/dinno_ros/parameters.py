"""ROS parameters generated from the core's pydantic models (one source of truth).

``algorithm.*`` parameters come from the model of the chosen ``algorithm.kind``
(:class:`~dinno_core.algorithms.config.DinnoConfig`, ``DsgdConfig``, ``DsgtConfig``,
``LocalConfig``) and ``task.*`` from the config class of the chosen ``task.name``; nested models
become dotted names (``algorithm.lr.start``, ``algorithm.optimizer.name``). Defaults are read
from a default instance of the model (so ``algorithm.lr.start`` defaults to DiNNO's 5e-3, not
the schedule class's own default), types, bounds and allowed values from the field annotations.

The values are validated by pydantic itself after they are read, and every error is reported
with the full parameter name, the offending value and what is allowed. Plain logic: no rclpy
import here (the node turns :class:`ParameterSpec` into ``declare_parameter`` calls).
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from dinno_core.config import TASKS, ConfigError, algorithm_models, validation_problems
from dinno_ros.robot_settings import ROBOT_ALGORITHMS, NodeOptions, RobotSettings


@dataclass(frozen=True)
class ParameterSpec:
    """One ROS parameter derived from a model field."""

    name: str
    default: Any
    """``None`` means "not set": the model's own default (``None``) applies."""
    description: str
    constraints: str
    """Human-readable bounds / allowed values (ParameterDescriptor.additional_constraints)."""
    type_name: str
    """``string``, ``integer``, ``double``, ``bool``, ``string_array``, ``integer_array``,
    ``double_array`` or ``any``."""
    low: float | int | None = None
    """Smallest allowed value of a number (inclusive: a strict ``> 0`` shows as 0 here and is
    enforced by the model), for the descriptor's ``integer_range``/``floating_point_range``."""
    high: float | int | None = None
    """Largest allowed value of a number (inclusive)."""


def _unwrap(annotation: Any) -> tuple[Any, list[Any], bool]:
    """``(core type, constraint metadata, optional)`` of a field annotation."""
    optional = False
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            args = typing.get_args(annotation)
            annotation, metadata = args[0], metadata + list(args[1:])
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, metadata, optional
            annotation = args[0]
        else:
            return annotation, metadata, optional


def _type_name(core: Any) -> str:
    if typing.get_origin(core) is Literal:
        return "string"
    if core is bool:
        return "bool"
    if core is int:
        return "integer"
    if core is float:
        return "double"
    if core in (str, Path):
        return "string"
    if typing.get_origin(core) in (tuple, list):
        elements = {_unwrap(a)[0] for a in typing.get_args(core) if a is not Ellipsis}
        if elements == {str}:
            return "string_array"
        if elements == {int}:
            return "integer_array"
        if elements <= {int, float}:
            return "double_array"
    return "any"


def _constraint_text(core: Any, metadata: list[Any], optional: bool) -> str:
    parts = []
    if typing.get_origin(core) is Literal:
        parts.append("one of: " + ", ".join(str(v) for v in typing.get_args(core)))
    for item in metadata:
        for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
    if typing.get_origin(core) in (tuple, list):
        args = typing.get_args(core)
        parts.append("a list" if Ellipsis in args or typing.get_origin(core) is list else f"{len(args)} values")
        for item in metadata_of_elements(args):
            parts.append(f"each {item}")
    if optional:
        parts.append("optional (leave unset for none)")
    return "; ".join(parts)


def metadata_of_elements(args: tuple[Any, ...]) -> list[str]:
    """Bounds of a sequence's element type (``tuple[PositiveInt, ...]`` → ``['> 0']``)."""
    texts: list[str] = []
    for arg in args:
        if arg is Ellipsis:
            continue
        _, metadata, _ = _unwrap(arg)
        for item in metadata:
            for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
                value = getattr(item, attribute, None)
                if value is not None and f"{symbol} {value}" not in texts:
                    texts.append(f"{symbol} {value}")
    return texts


INT64_MAX = 2**63 - 1


def _range(type_name: str, metadata: list[Any]) -> tuple[float | int | None, float | int | None]:
    """Inclusive ``(low, high)`` of an integer or double field from its ``ge/gt/le/lt`` bounds;
    ``(None, None)`` when it has none. An open side is the type's limit (int64, infinity)."""
    if type_name not in ("integer", "double"):
        return None, None
    low = high = None
    for item in metadata:
        for attribute in ("ge", "gt"):
            value = getattr(item, attribute, None)
            if value is not None:
                low = value + 1 if (attribute == "gt" and type_name == "integer") else value
        for attribute in ("le", "lt"):
            value = getattr(item, attribute, None)
            if value is not None:
                high = value - 1 if (attribute == "lt" and type_name == "integer") else value
    if low is None and high is None:
        return None, None
    if type_name == "integer":
        return int(-INT64_MAX - 1 if low is None else low), int(INT64_MAX if high is None else high)
    return float("-inf" if low is None else low), float("inf" if high is None else high)


def _wire_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):  # ROS arrays are lists; ints stay ints (integer arrays)
        return list(value)
    return value


def model_parameters(model: type[BaseModel], prefix: str, defaults: BaseModel | None = None,
                     skip: tuple[str, ...] = ()) -> list[ParameterSpec]:
    """Parameters for every field of ``model`` (recursing into nested models) under ``prefix``.

    ``defaults`` is the instance whose values are the defaults (``model()`` if omitted and
    constructible). Fields named in ``skip`` (the discriminator) are left out.
    """
    if defaults is None:
        try:
            defaults = model()
        except ValidationError:
            defaults = None
    specs: list[ParameterSpec] = []
    for field_name, info in model.model_fields.items():
        if field_name in skip:
            continue
        name = f"{prefix}.{field_name}" if prefix else field_name
        core, metadata, optional = _unwrap(info.annotation)
        metadata = metadata + list(info.metadata)
        if defaults is not None:
            default = getattr(defaults, field_name)
        else:
            default = None if info.is_required() else info.get_default(call_default_factory=True)
        if isinstance(core, type) and issubclass(core, BaseModel):
            specs += model_parameters(core, name, default if isinstance(default, BaseModel) else None)
            continue
        doc = (info.description or "").strip()
        description = f"{model.__name__}.{field_name}" + (f": {doc}" if doc else "")
        type_name = _type_name(core)
        low, high = _range(type_name, metadata)
        specs.append(ParameterSpec(name=name, default=_wire_default(default), description=description,
                                   constraints=_constraint_text(core, metadata, optional),
                                   type_name=type_name, low=low, high=high))
    return specs


# ----------------------------------------------------------------------------- algorithms


def algorithm_parameters(kind: str) -> list[ParameterSpec]:
    """The ``algorithm.*`` parameters of ``kind`` (besides ``algorithm.kind`` itself)."""
    model = algorithm_models()[kind]
    defaults = model(kind=kind) if "kind" in model.model_fields else model()
    return model_parameters(model, "algorithm", defaults, skip=("kind",))


def task_model(name: str) -> type[BaseModel]:
    """The config model of task ``name`` (``ConfigError`` if unknown or not importable)."""
    if name not in TASKS:
        raise ConfigError(f"parameter 'task.name': {name!r} is not a task; allowed: {', '.join(TASKS)}")
    from dinno_core import config as core_config

    try:
        return core_config._task_config_class(name)  # the core's own name → model lookup
    except ImportError as error:
        raise ConfigError(f"parameter 'task.name': task {name!r} is not available in this "
                          f"installation ({error})") from None


def task_parameters(name: str) -> list[ParameterSpec]:
    return model_parameters(task_model(name), "task", skip=("name",))


# ----------------------------------------------------------------------------- validation


def nest(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{"algorithm.lr.start": 1.0}`` → ``{"lr": {"start": 1.0}}`` for the given prefix.

    ``None`` values (unset optional parameters) are left out, so the model's default applies;
    lists become tuples only where pydantic wants them (it accepts lists for tuples).
    """
    tree: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or not name.startswith(prefix + "."):
            continue
        parts = name[len(prefix) + 1:].split(".")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = list(value) if isinstance(value, (tuple, list)) else value
    return tree


def parameter_problems(error: ValidationError, prefix: str) -> list[str]:
    """One line per problem, naming the full parameter, the value and what is allowed."""
    lines = []
    for name, message, value in validation_problems(error, prefix):
        shown = "" if isinstance(value, dict) or "got " in message else f" (got {value!r})"
        lines.append(f"parameter '{name}': {message}{shown}")
    return lines


def validate_model(model: type[BaseModel], data: dict[str, Any], prefix: str) -> BaseModel:
    """``model.model_validate(data)``; a :class:`ConfigError` naming the parameters otherwise."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError("\n".join(parameter_problems(error, prefix))) from None


# ----------------------------------------------------------------------------- the robot node


def choice_parameter(name: str, default: str, allowed: tuple[str, ...] | list[str], description: str) -> ParameterSpec:
    return ParameterSpec(name=name, default=default, description=description,
                         constraints="one of: " + ", ".join(allowed), type_name="string")


def robot_parameters(kind: str | None = None, task_name: str | None = None) -> list[ParameterSpec]:
    """Every parameter of a robot node: its own settings (:mod:`dinno_ros.robot_settings`), then
    ``algorithm.kind`` and ``task.name``, then the ``algorithm.*`` / ``task.*`` fields of the
    given kind / task (left out when ``None`` or not a valid choice)."""
    specs = model_parameters(RobotSettings, "", skip=("algorithm", "task")) + model_parameters(NodeOptions, "")
    specs.append(choice_parameter("algorithm.kind", "dinno", ROBOT_ALGORITHMS, "Training algorithm."))
    specs.append(choice_parameter("task.name", "linear_regression", tuple(TASKS), "Learning task."))
    if kind in ROBOT_ALGORITHMS:
        specs += algorithm_parameters(kind)
    if task_name in TASKS:
        try:
            specs += task_parameters(task_name)
        except ConfigError:
            pass
    return specs


ALWAYS_ALLOWED = ("use_sim_time",)
"""Parameters every rclpy node has (not ours to declare)."""


def validate_robot(values: dict[str, Any], given: set[str] | None = None,
                   errors: list[str] | None = None) -> tuple[Any, Any]:
    """A robot's parameter values → ``(RobotSettings, NodeOptions)``, validated once by the models.

    ``values``: parameter name → value (``None`` = not set: the model's default). ``given``: the
    names the user set (default: ``values``' names); those the node does not declare are
    reported as unknown. ``errors``: problems found earlier (wrong parameter types), reported
    together. Raises :class:`ConfigError` listing every problem, each naming its parameter.
    The robot node and ``dinno-team`` (before it starts anything) both call this.
    """
    problems = list(errors or [])
    kind = values.get("algorithm.kind") or "dinno"
    task_name = values.get("task.name") or "linear_regression"
    known = {spec.name for spec in robot_parameters(kind, task_name)} | set(ALWAYS_ALLOWED)
    for name in sorted(set(values if given is None else given) - known):
        group = name.split(".")[0]
        names = sorted(n for n in known if n.startswith(group + ".")) if group in ("algorithm", "task") else []
        problems.append(f"parameter '{name}' is unknown" + (f"; known {group} parameters: {', '.join(names)}"
                                                            if names else ""))
    algorithm = task = None
    if kind not in ROBOT_ALGORITHMS:
        problems.append(f"parameter 'algorithm.kind': {kind!r} is not allowed; allowed: {', '.join(ROBOT_ALGORITHMS)}")
    else:
        try:
            algorithm = validate_model(algorithm_models()[kind], {"kind": kind, **nest(values, "algorithm")},
                                       "algorithm")
        except ConfigError as error:
            problems.append(str(error))
    try:
        task = validate_model(task_model(task_name), {"name": task_name, **nest(values, "task")}, "task")
    except ConfigError as error:
        problems.append(str(error))
    settings = options = None
    for model in (RobotSettings, NodeOptions):
        fields = {name: values[name] for name in model.model_fields if values.get(name) is not None}
        for name in model.model_fields:  # nested settings (frame.*) come as dotted parameters
            nested = nest(values, name)
            if nested and name not in fields:
                fields[name] = nested
        if model is RobotSettings:
            fields.update(algorithm=algorithm, task=task)
        try:
            result = validate_model(model, fields, "")
        except ConfigError as error:
            problems.append(str(error))
            continue
        if model is RobotSettings:
            settings = result
        else:
            options = result
    if problems or settings is None or algorithm is None or task is None:
        raise ConfigError("\n".join(problems))
    return settings, options
