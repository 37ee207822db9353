"""A team as processes: every ROS process a team config starts (:class:`TeamSpec`), and the one
robot process of a robot on real hardware (:func:`hardware_robot_process`).

Pure Python: no rclpy, no launch import, no file system access. ``dinno-team``
(:mod:`dinno_ros.team`) and the launch files (through :mod:`dinno_ros.launch_plans`) both turn
a team config into processes here, so the two can't drift apart. The config itself is
:mod:`dinno_ros.team_config`; a process and its command line, :mod:`dinno_ros.process_spec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from dinno_core.config import ConfigError
from dinno_core.graphs import build_static_graph, describe
from dinno_ros.parameters import ALWAYS_ALLOWED, robot_parameters, validate_robot
from dinno_ros.process_spec import ProcessSpec, flatten_parameters
from dinno_ros.ros_names import check_member, check_neighbours, check_remappings, check_team, normalise_namespace
from dinno_ros.team_config import PACKAGE, RobotOverride, TeamConfig

ROBOT_EXECUTABLE = "robot_node"
ROBOT_MODULE = "dinno_ros.robot_node"
ROBOT_NODE_NAME = "dinno_robot"


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

    for role, section in (("simulator", config.simulator), ("controller", config.controller)):
        if section is None:
            continue
        params = flatten_parameters({"team": ids, "seed": config.seed, "use_sim_time": sim_time})
        params.update(task)
        params.update(flatten_parameters(section.parameters))
        processes.append(ProcessSpec(
            role=role, key=role, package=section.package, executable=section.executable,
            module=section.module, namespace=section.namespace, node_name=section.node_name, parameters=params,
            remappings=dict(section.remappings),
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


# ----------------------------------------------------------------------------- robot parameters


def unknown_robot_parameters(process: ProcessSpec) -> list[str]:
    """Parameters in a robot's spec that the robot node does not declare (it would exit with 2).

    Uses the node's own parameter list (:func:`dinno_ros.parameters.robot_parameters`: its
    settings models and the ``algorithm.*`` / ``task.*`` parameters generated from the core's
    models), so the check is the node's.
    """
    params = process.parameters
    known = {p.name for p in robot_parameters(params.get("algorithm.kind"), params.get("task.name"))}
    return sorted(set(params) - known - set(ALWAYS_ALLOWED))


def check_robot_parameters(spec: TeamSpec, key_to_come: bool = False) -> None:
    """:class:`ConfigError` naming each robot parameter the node would reject, found with the
    node's own validation (:func:`dinno_ros.parameters.validate_robot`) before anything starts.

    ``key_to_come``: the bringup will give the robots a team key it creates when it starts them
    (:func:`dinno_ros.message_auth.provide_team_key`); a stand-in key is checked in its place, so
    nothing is written before the config is known to be good."""
    import tempfile

    from dinno_ros.message_auth import write_team_key

    problems = []
    with tempfile.TemporaryDirectory(prefix="dinno-key-check-") as scratch:
        stand_in = str(write_team_key(Path(scratch) / "team.key")) if key_to_come else ""
        for process in spec.robot_processes:
            parameters = dict(process.parameters)
            if stand_in and not parameters.get("team_key_file") and parameters.get("auth") != "open":
                parameters["team_key_file"] = stand_in
            try:
                validate_robot(parameters)
            except ConfigError as error:
                problems += [f"  {process.key}: {line}" for line in str(error).splitlines()]
    if problems:
        raise ConfigError("invalid team config (robot parameters from 'parameters', 'robot_overrides' or the "
                          "team settings)\n" + "\n".join(problems))
