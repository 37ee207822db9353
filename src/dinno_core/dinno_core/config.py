"""Typed experiment configuration, loaded from YAML and validated before anything runs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from dinno_core.algorithms.config import AlgorithmConfig, LocalConfig
from dinno_core.graphs import GraphConfig
from dinno_core.params import FlatModel
from dinno_core.tasks.base import Task
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


def parse_task_config(raw: Any) -> BaseModel:
    """Validate a task section by its ``name`` against that task's own config model."""
    if isinstance(raw, BaseModel):
        return raw
    if not isinstance(raw, dict) or "name" not in raw:
        raise ValueError(f"task needs a 'name', one of: {', '.join(TASKS)}")
    if raw["name"] not in TASKS:
        raise ValueError(f"task.name {raw['name']!r} is unknown; allowed: {', '.join(TASKS)}")
    return _task_config_class(raw["name"]).model_validate(raw)


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
    task = build_task(task_config, num_robots, seed)
    flat = FlatModel(task.build_model().to(dtype=dtype, device=device), task.loss)
    return ModelSetup(task, flat, flat.initial_weights())


class ExperimentConfig(BaseModel):
    """An offline comparison: every listed algorithm on the same task, graph, data and initial weights."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = "experiment"
    seed: int = 0
    rounds: PositiveInt
    eval_every: PositiveInt = 10
    dtype: Literal["float32", "float64"] = "float32"
    device: Literal["cpu", "cuda"] = "cpu"
    torch_threads: PositiveInt | None = None
    wire_encoding: Literal["float32", "float16", "uint8"] = "float32"
    """How robots' payloads travel (:mod:`dinno_core.quantization`): what neighbours receive is
    rounded exactly as the ROS codec rounds it."""
    task: Any
    graph: GraphConfig
    algorithms: dict[str, AlgorithmConfig] = Field(min_length=1)

    @field_validator("task", mode="before")
    @classmethod
    def _validate_task(cls, value: Any) -> BaseModel:
        return parse_task_config(value)

    @property
    def num_robots(self) -> int:
        return self.graph.num_robots

    def dump(self) -> dict[str, Any]:
        """A JSON-ready copy, with the task section expanded."""
        data = self.model_dump(mode="json", exclude={"task"})
        data["task"] = self.task.model_dump(mode="json")
        return data


_ALGORITHM_KINDS = {"dinno", "dsgd", "dsgt", "individual", "centralized"}


def _without_union_tags(location: tuple) -> tuple:
    """Drop the discriminator tag pydantic inserts (``algorithms.x.dinno.rho`` -> ``algorithms.x.rho``)."""
    if len(location) > 3 and location[0] == "algorithms" and location[2] in _ALGORITHM_KINDS:
        return location[:2] + location[3:]
    return location


def format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for item in error.errors():
        location = ".".join(str(part) for part in _without_union_tags(item["loc"])) or "(top level)"
        lines.append(f"  {location}: {item['msg']}")
    return "\n".join(lines)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def validate(model: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    """``model.model_validate(data)``, turning pydantic's error into a :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    return validate(ExperimentConfig, load_yaml(path), str(path))


def is_centralized(config: AlgorithmConfig) -> bool:
    return isinstance(config, LocalConfig) and config.kind == "centralized"
