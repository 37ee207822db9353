"""A team of DiNNO robots as data: the typed team config and every process it starts.

Pure Python (pydantic, PyYAML, the core's configs): no rclpy, no launch import, no file system
access in :func:`build_team_spec`. ``dinno-team`` (:mod:`dinno_ros.team`) and the launch files
in ``launch/`` both turn a team config into processes through this module, so the two can't
drift apart.

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
    shutdown: {sigint_timeout: 10, sigterm_timeout: 5}      # dinno-team's stop sequence

Static graph kinds (complete, cycle, path, star, wheel, erdos_renyi, geometric) are built once
with the core's builders and give each robot a fixed ``neighbours`` list (robot ids); ``disk``
gives every robot ``communication_radius`` and the robots find their neighbours from their
teammates' odometry. ``graph.drop_probability`` and the ``centralized`` algorithm are
simulated-team settings and are rejected. Relative paths are relative to the working
directory of dinno-team / ros2 launch.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from dinno_core.algorithms.config import AlgorithmConfig, LocalConfig
from dinno_core.config import ConfigError, load_yaml, parse_task_config, validate
from dinno_core.graphs import GraphConfig, build_static_graph, describe
from dinno_ros.ros_names import (
    check_member,
    check_neighbours,
    check_remappings,
    check_ros_name,
    check_team,
    is_ros_name,
    normalise_namespace,
)

__all__ = [
    "ConfigError",
    "ProcessSpec",
    "TeamConfig",
    "TeamSpec",
    "build_team_spec",
    "command_line",
    "flatten_parameters",
    "gazebo_launch_plan",
    "hardware_launch_plan",
    "parse_bool",
    "team_launch_plan",
    "hardware_robot_process",
    "launch_node_arguments",
    "load_team_config",
    "parse_id_list",
    "params_file_name",
    "render_params_yaml",
    "ros_arguments",
    "process_command",
    "team_config_from_dict",
    "write_params_files",
]

PACKAGE = "dinno_ros"
ROBOT_EXECUTABLE = "robot_node"
ROBOT_MODULE = "dinno_ros.robot_node"
ROBOT_NODE_NAME = "dinno_robot"
STATUS_TOPIC = "dinno/status"
"""Relative status topic every robot publishes under its namespace (``/<robot>/dinno/status``)."""

# ----------------------------------------------------------------------------- config


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
    def _validate_task(cls, value: Any) -> BaseModel:
        return parse_task_config(value)

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
                "of robot processes; allowed: dinno, dsgd, dsgt, individual"
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


def team_config_from_dict(data: dict[str, Any], source: str = "team config") -> TeamConfig:
    """Validate a team config mapping; :class:`ConfigError` names every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    return validate(TeamConfig, data, source)


def load_team_config(path: str | PurePath) -> TeamConfig:
    """Read and validate a team config YAML file."""
    return team_config_from_dict(load_yaml(path), str(path))


# ----------------------------------------------------------------------------- ROS parameters


def _parameter_value(name: str, value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = list(value)
        if all(isinstance(v, bool) for v in items):
            return items
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return items
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return [float(v) for v in items]
        if all(isinstance(v, str) for v in items):
            return items
        raise ValueError(
            f"parameter {name!r}: a ROS array holds one type (bool, integer, double or string), got {value!r}"
        )
    raise ValueError(f"parameter {name!r}: {type(value).__name__} {value!r} is not a ROS parameter value")


def flatten_parameters(parameters: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → ROS parameters with dotted names (``{"lr": {"start": 1}}`` → ``lr.start``).

    ``None`` values and empty lists are left out: a ROS parameters file can't express them
    (``[]`` loads as "not set"), so the node's default applies. Tuples become lists, integer
    members of a list with doubles become doubles.
    """
    flat: dict[str, Any] = {}
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if not isinstance(key, str) or not key or any(not is_ros_name(p) for p in key.split(".")):
            raise ValueError(f"parameter name {name!r} is not valid (letters, digits, '_', '.')")
        if isinstance(value, dict):
            flat.update(flatten_parameters(value, f"{name}."))
        elif value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        else:
            flat[name] = _parameter_value(name, value)
    return flat


# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ProcessSpec:
    """One ROS process of the team: how to start it and with which parameters."""

    role: str
    """``robot``, ``simulator`` or ``bridge`` (the Gazebo launch's ros_gz_bridge)."""
    key: str
    """Robot id, ``simulator`` or ``bridge``; names the log and params files."""
    package: str
    executable: str
    module: str | None
    """Python module run by ``dinno-team`` (``python -m``); None for non-Python executables."""
    namespace: str
    node_name: str
    parameters: dict[str, Any]
    remappings: dict[str, str] = field(default_factory=dict)

    @property
    def fully_qualified_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.node_name}"

    @property
    def status_topic(self) -> str:
        return f"{self.namespace.rstrip('/')}/{STATUS_TOPIC}"


@dataclass(frozen=True)
class TeamSpec:
    """Every process of a team, plus what the bringup needs to watch and collect them."""

    name: str
    robots: tuple[str, ...]
    processes: tuple[ProcessSpec, ...]
    results_dir: str
    rounds: int
    graph: dict[str, Any]
    """``kind``, and for static graphs ``edges`` (robot id pairs) and the core's ``describe`` summary."""
    config: dict[str, Any]
    shutdown: dict[str, float]

    @property
    def robot_processes(self) -> list[ProcessSpec]:
        return [p for p in self.processes if p.role == "robot"]

    def process(self, key: str) -> ProcessSpec:
        for process in self.processes:
            if process.key == key:
                return process
        raise KeyError(key)


def _join(directory: str, *parts: str) -> str:
    return str(PurePath(directory, *parts))


def _static_neighbours(config: TeamConfig) -> tuple[dict[str, list[str]], dict[str, Any]]:
    ids = config.robot_ids
    graph = build_static_graph(config.graph)
    neighbours = {
        ids[i]: [ids[j] for j in sorted(graph.neighbors(i)) if j != i] for i in range(len(ids))
    }
    edges = sorted((ids[min(i, j)], ids[max(i, j)]) for i, j in graph.edges() if i != j)
    summary = {"kind": config.graph.kind, **describe(graph), "edges": [list(e) for e in edges]}
    return neighbours, summary


def build_team_spec(config: TeamConfig, results_dir: str | PurePath | None = None,
                    use_sim_time: bool | None = None) -> TeamSpec:
    """Every process a team config starts, with its ROS parameters and remappings.

    ``results_dir`` overrides the config's (default ``results/<name>``); the robots' file
    parameters (``results_path``, ``checkpoint_path``) are placed under it as given, so pass an
    absolute path when the processes may run in another working directory. ``use_sim_time``
    overrides the config's (the Gazebo launch sets it).
    """
    results = str(results_dir if results_dir is not None else (config.results_dir or _join("results", config.name)))
    sim_time = config.use_sim_time if use_sim_time is None else use_sim_time
    ids = config.robot_ids
    if config.graph.kind == "disk":
        neighbours: dict[str, list[str]] | None = None
        graph: dict[str, Any] = {"kind": "disk", "radius": config.graph.radius}
    else:
        neighbours, graph = _static_neighbours(config)

    shared: dict[str, Any] = {
        "team": ids,
        "seed": config.seed,
        "rounds": config.rounds,
        "round_timeout": config.round_timeout,
        "startup_timeout": config.startup_timeout,
        "max_round_lead": config.max_round_lead,
        "torch_threads": config.torch_threads,
        "use_sim_time": sim_time,
    }
    algorithm = flatten_parameters(config.algorithm.model_dump(mode="json"), "algorithm.")
    task = flatten_parameters(config.task.model_dump(mode="json"), "task.")
    checkpoint = config.checkpoint
    checkpoint_dir = (checkpoint.directory if checkpoint else None) or _join(results, "checkpoints")

    processes: list[ProcessSpec] = []
    for robot in ids:
        override = config.robot_overrides.get(robot, RobotOverride())
        params: dict[str, Any] = {"robot_id": robot, **flatten_parameters(shared)}
        if neighbours is None:
            params["communication_radius"] = float(config.graph.radius)
        elif neighbours[robot]:
            params["neighbours"] = neighbours[robot]
        # else: an isolated robot (one-robot team); an empty array can't be a ROS parameter.
        params.update(algorithm)
        params.update(task)
        params["results_path"] = _join(results, "robots", f"{robot}.json")
        if checkpoint is not None:
            params["checkpoint_path"] = _join(checkpoint_dir, f"{robot}.pt")
            params["checkpoint_every"] = checkpoint.every
            params["resume"] = checkpoint.resume
        params.update(flatten_parameters(config.parameters))
        params.update(flatten_parameters(override.parameters))
        remappings = {k: v.replace("{robot}", robot) for k, v in config.remappings.items()}
        remappings.update(override.remappings)
        processes.append(ProcessSpec(
            role="robot", key=robot, package=PACKAGE, executable=ROBOT_EXECUTABLE, module=ROBOT_MODULE,
            namespace=f"/{robot}", node_name=ROBOT_NODE_NAME, parameters=params, remappings=remappings,
        ))

    if config.simulator is not None:
        sim = config.simulator
        params = flatten_parameters({"team": ids, "seed": config.seed, "use_sim_time": sim_time})
        params.update(task)
        params.update(flatten_parameters(sim.parameters))
        processes.append(ProcessSpec(
            role="simulator", key="simulator", package=sim.package, executable=sim.executable,
            module=sim.module, namespace=sim.namespace, node_name=sim.node_name, parameters=params,
            remappings=dict(sim.remappings),
        ))

    return TeamSpec(
        name=config.name, robots=tuple(ids), processes=tuple(processes), results_dir=results,
        rounds=config.rounds, graph=graph, config=config.dump(),
        shutdown=config.shutdown.model_dump(),
    )


def hardware_robot_process(
    robot_id: str,
    team: list[str] | None = None,
    neighbours: list[str] | None = None,
    communication_radius: float | None = None,
    namespace: str | None = None,
    remappings: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
    node_name: str = ROBOT_NODE_NAME,
) -> ProcessSpec:
    """ONE robot node on real hardware (``launch/robot_hardware.launch.py``).

    Only what is given is set (a params file loaded before this spec's may hold the rest):
    ``team`` (robot ids), ``neighbours`` (static graph) or ``communication_radius`` (metres;
    neighbours from teammates' odometry), further ``parameters`` (nested → dotted). The
    namespace defaults to ``/<robot_id>``, which the teammates' default
    ``neighbour_weights_topic`` (``/{robot}/dinno/weights``) expects.
    """
    team = check_team(team) if team else []
    check_member(robot_id, team)
    neighbours = check_neighbours(robot_id, team, neighbours or [])
    if communication_radius is not None and not communication_radius > 0:
        raise ValueError(f"communication_radius must be > 0 metres, got {communication_radius}")
    if neighbours and communication_radius is not None:
        raise ValueError("give either neighbours (static graph) or communication_radius (disk graph), not both")
    params: dict[str, Any] = {"robot_id": robot_id}
    if team:
        params["team"] = team
    if neighbours:
        params["neighbours"] = neighbours
    elif communication_radius is not None:
        params["communication_radius"] = float(communication_radius)
    extra = flatten_parameters(parameters or {})
    clash = sorted({"robot_id", "team", "neighbours", "communication_radius"} & set(extra))
    if clash:
        raise ValueError(f"parameters may not set {', '.join(clash)}: pass them as arguments")
    params.update(extra)
    return ProcessSpec(
        role="robot", key=robot_id, package=PACKAGE, executable=ROBOT_EXECUTABLE, module=ROBOT_MODULE,
        namespace=normalise_namespace(namespace if namespace else f"/{robot_id}"), node_name=node_name,
        parameters=params, remappings=check_remappings(dict(remappings or {})),
    )


def parse_id_list(text: str) -> list[str]:
    """``"a, b,c"`` or ``"[a, b, c]"`` → ``["a", "b", "c"]``; empty text → ``[]`` (launch arguments)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    items = [item.strip().strip("'\"") for item in text.split(",")]
    return [item for item in items if item]


# ----------------------------------------------------------------------------- rendering


def params_file_name(process: ProcessSpec) -> str:
    return f"{process.key}.params.yaml"


def render_params_yaml(process: ProcessSpec) -> str:
    """The process's ROS parameters file: ``/<ns>/<node>: {ros__parameters: {...}}``.

    Strings that YAML would read as something else (``"1"``, ``"on"``) are quoted, so the rcl
    parser gets the types the spec holds.
    """
    document = {process.fully_qualified_name: {"ros__parameters": dict(process.parameters)}}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def ros_arguments(process: ProcessSpec, params_file: str | PurePath | None = None) -> list[str]:
    """``--ros-args`` for the process: namespace, node name, parameters, remappings.

    With ``params_file`` the parameters come from that file (see :func:`render_params_yaml`),
    otherwise each is a ``-p name:=value`` (YAML flow syntax, e.g. ``team:=[a, b]``).
    """
    args = ["--ros-args", "-r", f"__ns:={process.namespace}", "-r", f"__node:={process.node_name}"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    else:
        for name, value in process.parameters.items():
            args += ["-p", f"{name}:={_yaml_value(value)}"]
    for source, target in process.remappings.items():
        args += ["-r", f"{source}:={target}"]
    return args


def process_command(process: ProcessSpec, python: str, params_file: str | PurePath | None = None) -> list[str]:
    """``[python, -m, module, --ros-args, ...]``: the process as ``dinno-team`` starts it."""
    if process.module is None:
        raise ValueError(f"{process.key} ({process.package}/{process.executable}) is not a Python module")
    return [python, "-m", process.module, *ros_arguments(process, params_file)]


def command_line(command: list[str]) -> str:
    """A shell-quoted command line (for logs and ``team.json``)."""
    return shlex.join(command)


def launch_node_arguments(process: ProcessSpec, params_files: list[str]) -> dict[str, Any]:
    """Keyword arguments for ``launch_ros.actions.Node`` (names common to Humble, Jazzy, Kilted).

    ``params_files``: parameter file paths, later ones win; the launch files pass a user's file
    (if any) and then the spec's own file written with :func:`render_params_yaml`, so a node
    started by ``ros2 launch`` gets exactly the parameters ``dinno-team`` would give it (a dict
    would go through launch_ros' YAML re-typing of strings instead).
    """
    return {
        "package": process.package,
        "executable": process.executable,
        "namespace": process.namespace,
        "name": process.node_name,
        "parameters": [str(path) for path in params_files],
        "remappings": list(process.remappings.items()),
        "output": "screen",
        "emulate_tty": True,
    }


def write_params_files(spec_or_processes: TeamSpec | list[ProcessSpec], directory: str | PurePath) -> dict[str, str]:
    """Write each process's params file into ``directory`` (created); returns key → path.

    The one helper here that touches the file system (used by ``dinno-team`` and the launch
    files).
    """
    from pathlib import Path

    processes = spec_or_processes.processes if isinstance(spec_or_processes, TeamSpec) else spec_or_processes
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for process in processes:
        path = folder / params_file_name(process)
        path.write_text(render_params_yaml(process))
        paths[process.key] = str(path)
    return paths


# ----------------------------------------------------------------------------- launch plans
# What the launch files in launch/ do, as functions of their (string) launch arguments: load
# and validate, build the spec, write the params files, return launch_ros.actions.Node keyword
# arguments (and the Gazebo command). The launch files only declare arguments and wrap these
# results in actions, so this logic is tested without launch/launch_ros installed.


def parse_bool(text: str | bool, name: str = "argument") -> bool:
    """Launch-argument booleans: true/false, 1/0, yes/no, on/off (any case)."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name}: {text!r} is not a boolean; allowed: true, false")


def _absolute(path: str | PurePath) -> str:
    import os

    return os.path.abspath(os.path.expanduser(str(path)))


def _results_dir(config: TeamConfig, out: str) -> str:
    return _absolute(out or config.results_dir or _join("results", config.name))


def team_launch_plan(config_path: str, out: str = "", use_sim_time: str = "",
                     require_simulator: bool = False) -> dict[str, Any]:
    """``team_sim.launch.py``: every process of a team config as Node keyword arguments.

    ``out``: results folder ('' = the config's). ``use_sim_time``: '' keeps the config's.
    ``require_simulator``: the config must have a ``simulator`` section (the sim launch).
    Returns ``{"spec", "results_dir", "params_files", "nodes"}``.
    """
    config = load_team_config(config_path)
    if require_simulator and config.simulator is None:
        raise ConfigError(f"{config_path}: this launch runs the team on the embedded simulator, but the "
                          "config has no 'simulator' section (add e.g. simulator: {} for the defaults)")
    results = _results_dir(config, out)
    sim_time = None if use_sim_time == "" else parse_bool(use_sim_time, "use_sim_time")
    spec = build_team_spec(config, results_dir=results, use_sim_time=sim_time)
    files = write_params_files(spec, _join(results, "params"))
    return {
        "spec": spec, "results_dir": results, "params_files": files,
        "nodes": [launch_node_arguments(p, [files[p.key]]) for p in spec.processes],
    }


def gazebo_launch_plan(config_path: str, world: str, bridge_config: str, out: str = "",
                       gz_command: str = "gz sim", gz_args: str = "-r", plan: str = "") -> dict[str, Any]:
    """``team_gazebo.launch.py``: Gazebo, one ros_gz_bridge (config-file mode) and the robots.

    ``world`` / ``bridge_config``: the SDF world and the bridge YAML written by
    ``python -m dinno_core.tasks.mapping.gazebo PLAN --robots N --out DIR``; or leave both empty
    and give ``plan`` (a built-in plan name or a map_server YAML) to have them written into
    ``<results>/gazebo`` for the team's size. Robots use simulated time (the bridge carries
    ``/clock``); a simulator section in the config is ignored (Gazebo simulates).
    ``gz_command``: ``gz sim`` (Harmonic and newer), ``ign gazebo`` (Fortress, with Humble).
    Returns the team plan plus ``gz_cmd`` (argv list) and ``world``/``bridge_config``.
    """
    config = load_team_config(config_path)
    results = _results_dir(config, out)
    if not world and not bridge_config:
        if not plan:
            raise ConfigError("give world:= and bridge_config:= (from python -m dinno_core.tasks.mapping.gazebo), "
                              "or plan:= to generate them")
        from dinno_core.tasks.mapping.gazebo import write_gazebo_files

        world_path, bridge_path = write_gazebo_files(plan, config.num_robots, _join(results, "gazebo"))
        world, bridge_config = str(world_path), str(bridge_path)
    elif not world or not bridge_config:
        raise ConfigError("world:= and bridge_config:= go together (both files come from the same "
                          "python -m dinno_core.tasks.mapping.gazebo run)")
    world, bridge_config = _absolute(world), _absolute(bridge_config)
    config = config.model_copy(update={"simulator": None})
    spec = build_team_spec(config, results_dir=results, use_sim_time=True)
    bridge = ProcessSpec(
        role="bridge", key="bridge", package="ros_gz_bridge", executable="parameter_bridge", module=None,
        namespace="/", node_name="dinno_gz_bridge",
        parameters={"config_file": bridge_config, "use_sim_time": True},
    )
    spec = TeamSpec(**{**spec.__dict__, "processes": (*spec.processes, bridge)})
    files = write_params_files(spec, _join(results, "params"))
    return {
        "spec": spec, "results_dir": results, "params_files": files,
        "nodes": [launch_node_arguments(p, [files[p.key]]) for p in spec.processes],
        "gz_cmd": [*shlex.split(gz_command), *shlex.split(gz_args), world],
        "world": world, "bridge_config": bridge_config,
    }


def hardware_launch_plan(
    robot_id: str,
    team: str = "",
    neighbours: str = "",
    communication_radius: str = "",
    namespace: str = "",
    scan_topic: str = "",
    odom_topic: str = "",
    params_file: str = "",
    team_config: str = "",
    results_dir: str = "",
    use_sim_time: str = "",
) -> dict[str, Any]:
    """``robot_hardware.launch.py``: ONE robot node on a real robot, from launch arguments.

    Two ways, combinable:

    * ``team_config``: a team config YAML; the robot's parameters are its entry in the team
      spec (team, static neighbours or radius, algorithm, task, rounds, results and
      checkpoint paths under ``results_dir`` or the config's);
    * ``team`` (comma list), ``neighbours`` (comma list) or ``communication_radius`` (metres),
      everything else from ``params_file`` (a ROS params file such as ``config/robot.yaml``)
      and the node's defaults.

    Non-empty arguments override the team config's. ``scan_topic`` / ``odom_topic``: the robot
    driver's topics, remapped onto the node's ``scan`` / ``odom``. The generated params file
    is loaded after ``params_file``, so arguments win; it is written to ``<results_dir>/params``
    (a temporary folder when neither results_dir nor team_config is given). Empty
    ``use_sim_time`` leaves it to the files (default false).
    """
    check_ros_name(robot_id, "robot_id")
    team_ids = parse_id_list(team)
    neighbour_ids = parse_id_list(neighbours)
    try:
        radius = float(communication_radius) if communication_radius.strip() else None
    except ValueError:
        raise ValueError(f"communication_radius: {communication_radius!r} is not a number (metres)") from None
    if radius == 0.0:
        radius = None  # the node's own convention: 0 = use neighbours
    parameters: dict[str, Any] = {}
    remappings: dict[str, str] = {}
    if team_config:
        config = load_team_config(team_config)
        if robot_id not in config.robot_ids:
            raise ConfigError(f"robot_id {robot_id!r} is not in the team of {team_config}; allowed: "
                              f"{', '.join(config.robot_ids)}")
        results: str | None = _results_dir(config, results_dir)
        base = build_team_spec(config, results_dir=results).process(robot_id)
        parameters = dict(base.parameters)
        remappings.update(base.remappings)
        team_ids = team_ids or list(parameters["team"])
        configured_neighbours = list(parameters.pop("neighbours", []))
        configured_radius = parameters.pop("communication_radius", None)
        if not neighbour_ids and radius is None:
            neighbour_ids, radius = configured_neighbours, configured_radius
        for name in ("robot_id", "team"):
            parameters.pop(name, None)
    else:
        results = _absolute(results_dir) if results_dir else None
        if results is not None:
            parameters["results_path"] = _join(results, "robots", f"{robot_id}.json")
    if use_sim_time != "":
        parameters["use_sim_time"] = parse_bool(use_sim_time, "use_sim_time")
    if scan_topic:
        remappings["scan"] = scan_topic
    if odom_topic:
        remappings["odom"] = odom_topic
    process = hardware_robot_process(
        robot_id, team_ids, neighbours=neighbour_ids, communication_radius=radius, namespace=namespace,
        remappings=remappings, parameters=parameters,
    )
    if results is None:
        import tempfile

        params_dir = tempfile.mkdtemp(prefix=f"dinno_{robot_id}_")
    else:
        params_dir = _join(results, "params")
    files = write_params_files([process], params_dir)
    params_files = ([_absolute(params_file)] if params_file else []) + [files[process.key]]
    return {"process": process, "results_dir": results, "params_files": params_files,
            "nodes": [launch_node_arguments(process, params_files)]}
