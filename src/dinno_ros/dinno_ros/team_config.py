"""The team config: a team of DiNNO robot processes as one typed YAML file (pydantic).

Pure Python: no rclpy, no launch import. :mod:`dinno_ros.team_spec` turns a validated config
into the processes it starts.

Team config (YAML; every field is checked before anything starts, errors name the field and
what is allowed)::

    name: team_convex               # names the default results folder results/<name>
    seed: 0                         # initial weights, data split, minibatches (as in the core)
    rounds: 60                      # per robot; 0 = run until stopped
    round_timeout: 2.0              # s to wait for neighbours' weights before stepping anyway
    startup_timeout: 30.0           # optional: s to wait to hear every neighbour before round 1
    max_round_lead: 1000            # optional: the node's absurd-round bound
    robots: 4                       # robot_0 .. robot_3, or a list of ids: [alpha, bravo, charlie]
    graph: {kind: cycle}            # core GraphConfig; num_robots defaults to the team size
    task: {name: linear_regression, num_features: 5, rows_per_robot: 3}   # core task section
    algorithm: {kind: dinno, rho_init: 1.0, lr: {start: 0.05}}           # one core AlgorithmConfig
    results_dir: results/convex     # optional; dinno-team --out / launch out:= win
    checkpoint: {every: 10, resume: false}   # optional (omit: none); files <results>/checkpoints
    torch_threads: 1                # per robot process (default 1: robots share the CPU)
    use_sim_time: false
    remappings: {scan: "/{robot}/front/scan"}   # every robot; {robot} = its id
    parameters: {dtype: float64}    # further robot node parameters (nested → dotted names)
    robot_overrides:                # per robot id
      alpha: {remappings: {odom: /alpha/odometry/filtered}, parameters: {torch_threads: 2}}
    simulator: {parameters: {}}     # optional extra process (default: dinno_ros lidar_sim)
    controller: {parameters: {follow: {speed: 0.6}}}   # optional path follower (mapping): robots
                                    # drive by cmd_vel; the simulator then needs motion: cmd_vel
    shutdown: {sigint_timeout: 10, sigterm_timeout: 5}      # dinno-team's stop sequence

Static graph kinds (complete, cycle, path, star, wheel, erdos_renyi, geometric) are built once
with the core's builders and give each robot a fixed ``neighbours`` list (robot ids); ``disk``
gives every robot ``communication_radius`` and the robots find their neighbours from their
teammates' odometry. ``graph.drop_probability`` and the ``centralized`` algorithm are
simulated-team settings and are rejected. Relative paths in a config file (``results_dir``,
``checkpoint.directory``, ``task.plan`` / ``task.paths``, ``task.path``) start at the config
file's folder.
"""


from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dinno_core.algorithms.config import AlgorithmConfig, LocalConfig
from dinno_core.config import ConfigError, load_yaml, parse_task_config, validate
from dinno_core.config_paths import resolve_path
from dinno_core.graphs import GraphConfig
from dinno_ros.process_spec import flatten_parameters
from dinno_ros.robot_settings import ROBOT_ALGORITHMS
from dinno_ros.ros_names import check_remappings, check_ros_name, check_team, normalise_namespace

PACKAGE = "dinno_ros"

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckpointConfig(_Strict):
    """Per-robot checkpoints under ``<results>/checkpoints/<robot>.pt`` (the section turns them on)."""

    every: NonNegativeInt = 0
    """Save every this many rounds; 0 = only when the robot stops."""
    resume: bool = False
    """Resume each robot from its checkpoint when the file exists."""
    directory: str | None = None
    """Where the checkpoints live; default ``<results>/checkpoints``."""

    @field_validator("directory")
    @classmethod
    def _directory(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(resolve_path(value, info))


class RobotOverride(_Strict):
    """Settings for one robot that differ from the team's."""

    remappings: dict[str, str] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("remappings")
    @classmethod
    def _remaps(cls, value: dict[str, str]) -> dict[str, str]:
        return check_remappings(value)


class SimulatorConfig(_Strict):
    """An extra process next to the robots, e.g. the embedded lidar simulator.

    It gets the ROS parameters ``team`` (robot ids), ``seed``, ``use_sim_time`` and the task
    section (``task.*``), then ``parameters`` (which win).
    """

    package: str = PACKAGE
    executable: str = "lidar_sim"
    module: str = "dinno_ros.lidar_sim_node"
    node_name: str = "lidar_sim"
    namespace: str = "/"
    parameters: dict[str, Any] = Field(default_factory=dict)
    remappings: dict[str, str] = Field(default_factory=dict)

    @field_validator("module")
    @classmethod
    def _module(cls, value: str) -> str:
        if not all(part.isidentifier() for part in value.split(".")):
            raise ValueError(f"module {value!r} is not a dotted Python module name")
        return value

    @field_validator("node_name")
    @classmethod
    def _node_name(cls, value: str) -> str:
        return check_ros_name(value, "node_name")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return normalise_namespace(value)

    @field_validator("remappings")
    @classmethod
    def _remaps(cls, value: dict[str, str]) -> dict[str, str]:
        return check_remappings(value)


class ControllerConfig(SimulatorConfig):
    """The path follower that drives mapping robots by ``cmd_vel`` (one process for the team).

    It gets ``team``, ``seed``, ``use_sim_time`` and the task section like the simulator, then
    ``parameters`` (``follow.speed``, ``follow.max_turn_rate``, ... see
    ``dinno_ros.path_follower_node``). With the embedded simulator, give the simulator
    ``parameters: {motion: cmd_vel}``; the Gazebo launch always starts one for a mapping team
    (Gazebo's robots move only by cmd_vel).
    """

    executable: str = "path_follower"
    module: str = "dinno_ros.path_follower_node"
    node_name: str = "path_follower"


class ShutdownConfig(_Strict):
    """How ``dinno-team`` stops its processes: SIGINT, wait, SIGTERM, wait, SIGKILL."""

    sigint_timeout: PositiveFloat = 10.0
    sigterm_timeout: PositiveFloat = 5.0


class TeamConfig(_Strict):
    """A team of robot processes training one model together (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str = "team"
    seed: int = 0
    rounds: NonNegativeInt
    """Rounds each robot runs before it writes its results and exits; 0 = until stopped."""
    round_timeout: PositiveFloat = 5.0
    startup_timeout: NonNegativeFloat | None = None
    """How long a robot waits before its first round to hear every neighbour once (node default if unset)."""
    max_round_lead: PositiveInt | None = None
    """How many rounds a robot may run ahead of its slowest neighbour (the node's default if unset)."""
    robots: PositiveInt | list[str]
    """Team size (ids ``robot_0..robot_{N-1}``) or the robot ids; the order is the robot index."""
    graph: GraphConfig
    task: Any
    algorithm: AlgorithmConfig
    results_dir: str | None = None
    """Default results folder (``results/<name>`` when unset); ``dinno-team --out`` wins."""
    checkpoint: CheckpointConfig | None = None
    """Robot checkpoints (omit for none)."""
    torch_threads: PositiveInt | None = 1
    """torch threads per robot process (several robots share the CPU)."""
    use_sim_time: bool = False
    remappings: dict[str, str] = Field(default_factory=dict)
    """Topic remappings for every robot; ``{robot}`` in a target is replaced by the robot id."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Extra ROS parameters for every robot (nested mappings become dotted names)."""
    robot_overrides: dict[str, RobotOverride] = Field(default_factory=dict)
    simulator: SimulatorConfig | None = None
    controller: ControllerConfig | None = None
    """Path follower driving the robots by cmd_vel (mapping task; see :class:`ControllerConfig`)."""
    shutdown: ShutdownConfig = ShutdownConfig()

    @model_validator(mode="before")
    @classmethod
    def _graph_size_from_team(cls, data: Any) -> Any:
        """``graph.num_robots`` defaults to the team size."""
        if isinstance(data, dict) and isinstance(data.get("graph"), dict) and "num_robots" not in data["graph"]:
            robots = data.get("robots")
            size = robots if isinstance(robots, int) and not isinstance(robots, bool) else (
                len(robots) if isinstance(robots, list) else None)
            if size is not None:
                data = {**data, "graph": {**data["graph"], "num_robots": size}}
        return data

    @field_validator("task", mode="before")
    @classmethod
    def _validate_task(cls, value: Any, info: ValidationInfo) -> BaseModel:
        return parse_task_config(value, info.context)

    @field_validator("results_dir")
    @classmethod
    def _results_dir(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else str(resolve_path(value, info))

    @field_validator("robots")
    @classmethod
    def _robot_ids(cls, value: int | list[str]) -> int | list[str]:
        if isinstance(value, list):
            check_team(value)
        return value

    @field_validator("algorithm")
    @classmethod
    def _distributed_algorithm(cls, value: Any) -> Any:
        if isinstance(value, LocalConfig) and value.kind == "centralized":
            raise ValueError(
                "kind 'centralized' pools every robot's data in one model and cannot run as a team "
                f"of robot processes; allowed: {', '.join(ROBOT_ALGORITHMS)}"
            )
        return value

    @field_validator("remappings")
    @classmethod
    def _remaps(cls, value: dict[str, str]) -> dict[str, str]:
        check_remappings({source: target.replace("{robot}", "robot") for source, target in value.items()})
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TeamConfig:
        ids = self.robot_ids
        if self.graph.num_robots != len(ids):
            raise ValueError(
                f"graph.num_robots is {self.graph.num_robots} but the team has {len(ids)} robots "
                "(leave graph.num_robots out to use the team size)"
            )
        if self.graph.drop_probability > 0.0:
            raise ValueError(
                "graph.drop_probability is a simulated-team setting; a ROS team loses messages on "
                "the real network (round_timeout handles it). Allowed: 0"
            )
        unknown = sorted(set(self.robot_overrides) - set(ids))
        if unknown:
            raise ValueError(
                f"robot_overrides names unknown robots {', '.join(unknown)}; allowed: {', '.join(ids)}"
            )
        motion = (self.simulator.parameters.get("motion", "scripted") if self.simulator is not None else None)
        if motion == "cmd_vel" and self.controller is None:
            raise ValueError("simulator.parameters.motion is cmd_vel but there is no controller section: the "
                             "robots would stand still (add controller: {} for the path follower)")
        if self.controller is not None and self.simulator is not None and motion != "cmd_vel":
            raise ValueError("controller is set but the simulator moves the robots along scripted paths: set "
                             "simulator.parameters.motion: cmd_vel (or drop the controller section)")
        if self.controller is not None and getattr(self.task, "name", None) != "mapping":
            raise ValueError(f"controller drives mapping robots along their paths; task.name is "
                             f"{getattr(self.task, 'name', None)!r}")
        reserved = {"robot_id", "team", "neighbours", "communication_radius"}
        for where, params in [("parameters", self.parameters)] + [
                (f"robot_overrides.{r}.parameters", o.parameters) for r, o in self.robot_overrides.items()]:
            try:
                flat = flatten_parameters(params)
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
            clash = sorted(reserved & set(flat))
            if clash:
                raise ValueError(f"{where} may not set {', '.join(clash)}: they come from robots and graph")
        return self

    @property
    def robot_ids(self) -> list[str]:
        if isinstance(self.robots, int):
            return [f"robot_{index}" for index in range(self.robots)]
        return list(self.robots)

    @property
    def num_robots(self) -> int:
        return len(self.robot_ids)

    def dump(self) -> dict[str, Any]:
        """A JSON-ready copy with the task section expanded."""
        data = self.model_dump(mode="json", exclude={"task"})
        data["task"] = self.task.model_dump(mode="json")
        return data


def team_config_from_dict(data: dict[str, Any], source: str = "team config",
                          base_dir: str | PurePath | None = None) -> TeamConfig:
    """Validate a team config mapping; :class:`ConfigError` names every bad field. ``base_dir``:
    where relative paths start (the config file's folder; default the working directory)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    return validate(TeamConfig, data, source, base_dir)


def load_team_config(path: str | PurePath) -> TeamConfig:
    """Read and validate a team config YAML file; relative paths in it start at its folder."""
    return team_config_from_dict(load_yaml(path), str(path), base_dir=Path(path).parent)


