"""What the launch files in ``launch/`` do, as functions of their (string) launch arguments:
load and validate, build the processes, write their params files, and return a typed
:class:`LaunchPlan` (the processes' ``launch_ros.actions.Node`` arguments, and Gazebo's
command). The launch files only declare arguments and wrap a plan in actions, so this logic is
tested without launch/launch_ros installed.
"""

from __future__ import annotations

import os
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from dinno_core.config import ConfigError
from dinno_ros.message_auth import provide_team_key
from dinno_ros.process_spec import ProcessSpec, launch_node_arguments, write_params_files
from dinno_ros.ros_names import check_ros_name
from dinno_ros.team_config import ControllerConfig, TeamConfig, load_team_config
from dinno_ros.team_spec import TeamSpec, build_team_spec, hardware_robot_process


@dataclass(frozen=True)
class LaunchPlan:
    """The processes one launch file starts and everything it logs about them."""

    processes: tuple[ProcessSpec, ...]
    params_files: dict[str, list[str]]
    """Process key → the params files it loads, in order (later ones win)."""
    results_dir: str | None
    spec: TeamSpec | None = None
    """The whole team (team launches); None for one hardware robot."""
    gz_cmd: tuple[str, ...] = ()
    """Gazebo's command line (the Gazebo launch only)."""
    world: str = ""
    bridge_config: str = ""
    nodes: list[dict[str, Any]] = field(init=False)
    """``launch_ros.actions.Node`` keyword arguments of every process (names common to Humble,
    Jazzy and Kilted)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", [launch_node_arguments(p, self.params_files[p.key])
                                           for p in self.processes])

    @property
    def process(self) -> ProcessSpec:
        """The one process of a single-robot plan."""
        if len(self.processes) != 1:
            raise ValueError(f"this plan has {len(self.processes)} processes")
        return self.processes[0]


def _join(directory: str, *parts: str) -> str:
    return str(PurePath(directory, *parts))


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
    return os.path.abspath(os.path.expanduser(str(path)))


def _results_dir(config: TeamConfig, out: str) -> str:
    return _absolute(out or config.results_dir or _join("results", config.name))


def _with_team_key(config: TeamConfig, results: str) -> TeamConfig:
    """A team launched on one host shares ``<results>/team.key`` unless it names a key or runs open."""
    key = provide_team_key(config.parameters, os.environ, results)
    if key is None:
        return config
    return config.model_copy(update={"parameters": {**config.parameters, "team_key_file": str(key)}})


def team_launch_plan(config_path: str, out: str = "", use_sim_time: str = "",
                     require_simulator: bool = False) -> LaunchPlan:
    """``team_sim.launch.py``: every process of a team config as Node keyword arguments.

    ``out``: results folder ('' = the config's). ``use_sim_time``: '' keeps the config's.
    ``require_simulator``: the config must have a ``simulator`` section (the sim launch).
    """
    config = load_team_config(config_path)
    if require_simulator and config.simulator is None:
        raise ConfigError(f"{config_path}: this launch runs the team on the embedded simulator, but the "
                          "config has no 'simulator' section (add e.g. simulator: {} for the defaults)")
    results = _results_dir(config, out)
    config = _with_team_key(config, results)
    sim_time = None if use_sim_time == "" else parse_bool(use_sim_time, "use_sim_time")
    spec = build_team_spec(config, results_dir=results, use_sim_time=sim_time)
    files = write_params_files(spec.processes, _join(results, "params"))
    return LaunchPlan(processes=spec.processes, params_files={k: [v] for k, v in files.items()},
                      results_dir=results, spec=spec)


def gazebo_launch_plan(config_path: str, world: str, bridge_config: str, out: str = "",
                       gz_command: str = "gz sim", gz_args: str = "-r", plan: str = "",
                       gazebo: str = "harmonic") -> LaunchPlan:
    """``team_gazebo.launch.py``: Gazebo, one ros_gz_bridge (config-file mode) and the robots.

    ``world`` / ``bridge_config``: the SDF world and the bridge YAML written by
    ``python -m dinno_core.tasks.mapping.gazebo PLAN --robots N --out DIR``; or leave both empty
    and give ``plan`` (a built-in plan name or a map_server YAML) to have them written into
    ``<results>/gazebo`` for the team's size. Robots use simulated time (the bridge carries
    ``/clock``); a simulator section in the config is ignored (Gazebo simulates).
    ``gz_command``: ``gz sim`` (Harmonic and newer), ``ign gazebo`` (Fortress, with Humble);
    ``gazebo`` (``harmonic``/``fortress``, see :func:`dinno_ros.launch_support.gazebo_flavour`)
    names the systems a generated world loads. A mapping team gets the path follower (the
    config's controller section, else the defaults): Gazebo's robots move only by cmd_vel.
    The plan carries ``gz_cmd`` (argv) and ``world``/``bridge_config`` too.
    """
    config = load_team_config(config_path)
    results = _results_dir(config, out)
    config = _with_team_key(config, results)
    if not world and not bridge_config:
        if not plan:
            raise ConfigError("give world:= and bridge_config:= (from python -m dinno_core.tasks.mapping.gazebo), "
                              "or plan:= to generate them")
        from dinno_core.tasks.mapping.gazebo import write_gazebo_files

        world_path, bridge_path = write_gazebo_files(plan, config.num_robots, _join(results, "gazebo"),
                                                     gazebo=gazebo)
        world, bridge_config = str(world_path), str(bridge_path)
    elif not world or not bridge_config:
        raise ConfigError("world:= and bridge_config:= go together (both files come from the same "
                          "python -m dinno_core.tasks.mapping.gazebo run)")
    world, bridge_config = _absolute(world), _absolute(bridge_config)
    controller = config.controller or (ControllerConfig() if getattr(config.task, "name", "") == "mapping" else None)
    config = config.model_copy(update={"simulator": None, "controller": controller})
    spec = build_team_spec(config, results_dir=results, use_sim_time=True)
    bridge = ProcessSpec(
        role="bridge", key="bridge", package="ros_gz_bridge", executable="parameter_bridge", module=None,
        namespace="/", node_name="dinno_gz_bridge",
        parameters={"config_file": bridge_config, "use_sim_time": True},
    )
    spec = TeamSpec(**{**spec.__dict__, "processes": (*spec.processes, bridge)})
    files = write_params_files(spec.processes, _join(results, "params"))
    return LaunchPlan(processes=spec.processes, params_files={k: [v] for k, v in files.items()},
                      results_dir=results, spec=spec,
                      gz_cmd=(*shlex.split(gz_command), *shlex.split(gz_args), world),
                      world=world, bridge_config=bridge_config)


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
) -> LaunchPlan:
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
        params_dir = tempfile.mkdtemp(prefix=f"dinno_{robot_id}_")
    else:
        params_dir = _join(results, "params")
    files = write_params_files([process], params_dir)
    params_files = ([_absolute(params_file)] if params_file else []) + [files[process.key]]
    return LaunchPlan(processes=(process,), params_files={process.key: params_files}, results_dir=results)


def parse_id_list(text: str) -> list[str]:
    """``"a, b,c"`` or ``"[a, b, c]"`` → ``["a", "b", "c"]``; empty text → ``[]`` (launch arguments)."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    items = [item.strip().strip("'\"") for item in text.split(",")]
    return [item for item in items if item]

