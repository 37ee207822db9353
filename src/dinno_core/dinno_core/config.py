"""Typed experiment configuration, loaded from YAML and validated before anything runs."""

from __future__ import annotations

import importlib
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, ValidationInfo, field_validator

from dinno_core.config_paths import CONFIG_DIR
from dinno_core.algorithms.config import AlgorithmConfig, LocalConfig
from dinno_core.graphs import GraphConfig
from dinno_core.params import FlatModel
from dinno_core.tasks.base import Task
from dinno_core.wire_encoder import delta_problem
from torch import Tensor

TASKS: dict[str, str] = {
    "linear_regression": "dinno_core.tasks.convex",
    "mnist": "dinno_core.tasks.mnist",
    "mapping": "dinno_core.tasks.mapping.task",
    "predator_prey": "dinno_core.tasks.predator_prey.task",
}
"""Task name -> module providing ``<X>TaskConfig`` (with a ``name`` literal) and ``build_task``."""


class ConfigError(ValueError):
    """A configuration that cannot run; the message names every bad field and what is allowed."""


def _task_module(name: str):
    return importlib.import_module(TASKS[name])


def _task_config_class(name: str) -> type[BaseModel]:
    module = _task_module(name)
    classes = [
        value for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__name__.endswith("TaskConfig")
        and value.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise RuntimeError(f"{module.__name__} must define exactly one *TaskConfig class")
    return classes[0]


def parse_task_config(raw: Any, context: dict[str, Any] | None = None) -> BaseModel:
    """Validate a task section by its ``name`` against that task's own config model (``context``:
    the validation context, e.g. the config file's folder for relative paths)."""
    if isinstance(raw, BaseModel):
        return raw
    if not isinstance(raw, dict) or "name" not in raw:
        raise ValueError(f"task needs a 'name', one of: {', '.join(TASKS)}")
    if raw["name"] not in TASKS:
        raise ValueError(f"task.name {raw['name']!r} is unknown; allowed: {', '.join(TASKS)}")
    return _task_config_class(raw["name"]).model_validate(raw, context=context)


def build_task(config: BaseModel, num_robots: int, seed: int) -> Task:
    """The task a validated task config describes."""
    return _task_module(config.name).build_task(config, num_robots, seed)


@dataclass
class ModelSetup:
    """A task, its model as a :class:`~dinno_core.params.FlatModel` and the initial weights."""

    task: Task
    flat: FlatModel
    theta0: Tensor
    """Initial weights ``[n]``: every robot and every algorithm starts from these."""


def set_up_model(task_config: BaseModel, num_robots: int, seed: int, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu") -> ModelSetup:
    """seed → task → flat model → initial weights, the one way: the simulated team, every robot
    node, the demo's analysis and the benchmarks get the same weights from the same seed."""
    torch.manual_seed(seed)
    try:
        task = build_task(task_config, num_robots, seed)
    except (OSError, ValueError, KeyError) as error:  # files the task config names (plan, data)
        raise ConfigError(f"task: cannot build the {task_config.name} task: {error}") from None
    flat = FlatModel(task.build_model().to(dtype=dtype, device=device), task.loss)
    return ModelSetup(task, flat, flat.initial_weights())


class ExperimentConfig(BaseModel):
    """An offline comparison: every listed algorithm on the same task, graph, data and initial weights."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = "experiment"
    seed: NonNegativeInt = 0
    rounds: PositiveInt
    eval_every: PositiveInt = 10
    dtype: Literal["float32", "float64"] = "float32"
    device: Literal["cpu", "cuda"] = "cpu"
    torch_threads: PositiveInt | None = None
    wire_encoding: Literal["float32", "float16", "uint8"] = "float32"
    """How robots' payloads travel (:mod:`dinno_core.quantization`): what neighbours receive is
    rounded exactly as the ROS codec rounds it."""
    wire_delta: bool = False
    """Send the change since an acknowledged round instead of the weights (:mod:`dinno_core.wire_encoder`;
    float16 or uint8 only), as the ROS node's ``delta_encoding``."""
    task: Any
    graph: GraphConfig
    algorithms: dict[str, AlgorithmConfig] = Field(min_length=1)

    @field_validator("task", mode="before")
    @classmethod
    def _validate_task(cls, value: Any, info: ValidationInfo) -> BaseModel:
        return parse_task_config(value, info.context)

    @field_validator("wire_delta")
    @classmethod
    def _delta_needs_rounding(cls, value: bool, info: ValidationInfo) -> bool:
        problem = delta_problem(info.data.get("wire_encoding", "float32"), value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("device")
    @classmethod
    def _device_exists(cls, value: str) -> str:
        if value == "cuda" and not torch.cuda.is_available():
            raise ValueError("'cuda' but this machine has no usable CUDA device (torch.cuda.is_available() is "
                             "False); allowed here: cpu")
        return value

    @property
    def num_robots(self) -> int:
        return self.graph.num_robots

    def dump(self) -> dict[str, Any]:
        """A JSON-ready copy, with the task section expanded."""
        data = self.model_dump(mode="json", exclude={"task"})
        data["task"] = self.task.model_dump(mode="json")
        return data


def algorithm_models() -> dict[str, type[BaseModel]]:
    """``kind`` value → its config model, read from the AlgorithmConfig union (the one list of
    algorithms)."""
    union = typing.get_args(AlgorithmConfig)[0]
    models: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(union):
        for kind in typing.get_args(model.model_fields["kind"].annotation):
            models[kind] = model
    return models


ALGORITHM_KINDS: tuple[str, ...] = tuple(algorithm_models())


def _without_union_tags(location: tuple) -> tuple:
    """Drop the discriminator tag pydantic inserts (``algorithms.x.dinno.rho`` -> ``algorithms.x.rho``)."""
    if len(location) > 3 and location[0] == "algorithms" and location[2] in ALGORITHM_KINDS:
        return location[:2] + location[3:]
    if len(location) > 2 and location[0] == "algorithm" and location[1] in ALGORITHM_KINDS:
        return location[:1] + location[2:]
    return location


def validation_problems(error: ValidationError, prefix: str = "") -> list[tuple[str, str, Any]]:
    """``(dotted field name, message, input)`` for every problem of a pydantic error, with the
    union tags and pydantic's "Value error, " dropped; ``prefix`` goes in front of each name."""
    problems = []
    for item in error.errors():
        parts = [str(part) for part in _without_union_tags(item["loc"]) if not str(part).startswith("function-")]
        name = ".".join(part for part in (prefix, ".".join(parts)) if part)
        problems.append((name, item["msg"].removeprefix("Value error, "), item.get("input")))
    return problems


def format_validation_error(error: ValidationError, source: str) -> str:
    """The one-screen "invalid configuration" message of a config file."""
    lines = [f"{source}: invalid configuration"]
    lines += [f"  {name or '(top level)'}: {message}" for name, message, _ in validation_problems(error)]
    return "\n".join(lines)


def check_writable(directory: str | Path, what: str) -> Path:
    """Create ``directory`` if needed; :class:`ConfigError` naming ``what`` (e.g. ``--out``) if it
    cannot be created or written to."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"{what}: cannot create {path} ({error.strerror or error})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: {path} is not writable")
    return path


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; :class:`ConfigError` for anything else (missing, unreadable,
    binary, not YAML, absurdly nested)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected a YAML config)") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror or error})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def validate(model: type[BaseModel], data: dict[str, Any], source: str, base_dir: str | Path | None = None) -> Any:
    """``model.model_validate(data)``, turning pydantic's error into a :class:`ConfigError`.
    ``base_dir``: where relative paths in the data start (the config file's folder)."""
    try:
        return model.model_validate(data, context={CONFIG_DIR: str(base_dir)} if base_dir is not None else None)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def load_experiment_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read, apply ``overrides`` (command-line values), validate; relative paths start at the
    file's folder."""
    return validate(ExperimentConfig, {**load_yaml(path), **(overrides or {})}, str(path), Path(path).parent)


def is_centralized(config: AlgorithmConfig) -> bool:
    return isinstance(config, LocalConfig) and config.kind == "centralized"
