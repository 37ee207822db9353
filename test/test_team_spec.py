"""Team config → team spec (processes, ROS parameters, remappings), params files and command lines
read back by the real rcl parser, config errors, launch files (with stand-in launch modules),
and the progress table. No robot processes: fast."""

from __future__ import annotations

import io

import math
import sys
import types
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.node import Node

from dinno_ros.progress import TeamProgress
from dinno_core.config import ConfigError
from dinno_ros.launch_plans import gazebo_launch_plan, hardware_launch_plan, parse_bool, parse_id_list, team_launch_plan
from dinno_ros.process_spec import flatten_parameters, process_command, render_params_yaml, ros_arguments
from dinno_ros.team import main
from dinno_ros.team_config import load_team_config, team_config_from_dict
from dinno_ros.team_spec import (
    build_team_spec,
    check_robot_parameters,
    hardware_robot_process,
    unknown_robot_parameters,
)

REPO = Path(__file__).resolve().parents[1]
TEAM_CONVEX = REPO / "config" / "team_convex.yaml"
LAUNCH_DIR = REPO / "launch"
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))


def base_config(**changes) -> dict:
    data = {
        "name": "unit",
        "rounds": 10,
        "robots": 3,
        "graph": {"kind": "cycle"},
        "task": {"name": "linear_regression", "num_features": 4},
        "algorithm": {"kind": "dinno", "rho_init": 1.0, "lr": {"start": 0.05}},
    }
    data.update(changes)
    return data


def spec_of(tmp_path=None, **changes):
    return build_team_spec(team_config_from_dict(base_config(**changes)),
                           results_dir=str(tmp_path) if tmp_path else "/r")


# ----------------------------------------------------------------------------- the spec


def test_team_convex_spec():
    config = load_team_config(TEAM_CONVEX)
    spec = build_team_spec(config, results_dir="/results/x")
    assert spec.robots == ("robot_0", "robot_1", "robot_2", "robot_3")
    assert [p.role for p in spec.processes] == ["robot"] * 4
    assert spec.graph["kind"] == "cycle" and spec.graph["connected"] and spec.graph["num_edges"] == 4
    expected_neighbours = {"robot_0": ["robot_1", "robot_3"], "robot_1": ["robot_0", "robot_2"],
                           "robot_2": ["robot_1", "robot_3"], "robot_3": ["robot_0", "robot_2"]}
    for process in spec.processes:
        p = process.parameters
        assert process.package == "dinno_ros" and process.executable == "robot_node"
        assert process.module == "dinno_ros.robot_node"
        assert process.namespace == f"/{process.key}" and process.node_name == "dinno_robot"
        assert process.fully_qualified_name == f"/{process.key}/dinno_robot"
        assert process.status_topic == f"/{process.key}/dinno/status"
        assert p["robot_id"] == process.key
        assert p["team"] == list(spec.robots)
        assert p["neighbours"] == expected_neighbours[process.key]
        assert "communication_radius" not in p
        assert p["rounds"] == config.rounds and p["seed"] == config.seed
        assert p["round_timeout"] == config.round_timeout
        assert p["algorithm.kind"] == "dinno" and p["algorithm.rho_init"] == 1.0
        assert p["algorithm.lr.start"] == 0.05 and p["algorithm.optimizer.name"] == "sgd"
        assert p["algorithm.optimizer.betas"] == [0.9, 0.999]
        assert p["task.name"] == "linear_regression" and p["task.rows_per_robot"] == 3
        assert p["results_path"] == f"/results/x/robots/{process.key}.json"
        assert not any(k.startswith("checkpoint") or k == "resume" for k in p)
        assert all(v is not None and v != [] for v in p.values())
        assert process.remappings == {}


def test_spec_parameters_are_the_robot_nodes_own():
    """Every parameter the spec gives a robot is declared by the node (it exits on unknown ones)."""
    for algorithm in ({"kind": "dinno"}, {"kind": "dsgd"}, {"kind": "dsgt"}, {"kind": "individual"},
                      {"kind": "dinno", "rho_max": 4.0, "lr": {"kind": "log", "start": 0.1, "end": 0.01, "rounds": 9}}):
        spec = spec_of(algorithm=algorithm, checkpoint={"every": 5, "resume": True}, startup_timeout=3.0,
                       max_round_lead=20, parameters={"dtype": "float64", "encoding": "float16"})
        for process in spec.robot_processes:
            assert unknown_robot_parameters(process) == [], algorithm
    check_robot_parameters(build_team_spec(load_team_config(TEAM_CONVEX)))
    spec = spec_of(parameters={"no_such_thing": 1, "algorithm": {"lr": {"bogus": 1.0}}})
    assert unknown_robot_parameters(spec.processes[0]) == ["algorithm.lr.bogus", "no_such_thing"]
    with pytest.raises(ConfigError, match="no_such_thing"):
        check_robot_parameters(spec)


def test_a_keyless_team_is_checked_with_the_key_its_bringup_will_create(tmp_path, monkeypatch):
    """dinno-team / the demo on a fresh machine: no key named anywhere; the bringup creates
    <out>/team.key when it starts the robots, and the check before it must not refuse the team
    for lacking it (nor write anything)."""
    from dinno_ros.message_auth import TEAM_KEY_ENV
    from rich.console import Console

    from dinno_ros.team import TeamRun

    monkeypatch.delenv(TEAM_KEY_ENV, raising=False)
    spec = build_team_spec(load_team_config(TEAM_CONVEX))
    with pytest.raises(ConfigError, match="team_key_file': is required"):
        check_robot_parameters(spec)  # what a robot started without a key would say
    check_robot_parameters(spec, key_to_come=True)
    run = TeamRun(load_team_config(TEAM_CONVEX), tmp_path / "out", 1.0, Console(file=io.StringIO()), live=False)
    run.check()
    assert not (tmp_path / "out").exists()  # checked, nothing written
    bad = spec_of(parameters={"max_weight_step": -1.0})
    with pytest.raises(ConfigError, match="max_weight_step"):
        check_robot_parameters(bad, key_to_come=True)  # the stand-in key hides nothing else


def test_disk_graph_gives_radius_not_neighbours():
    spec = spec_of(graph={"kind": "disk", "radius": 2.5})
    assert spec.graph == {"kind": "disk", "radius": 2.5}
    for process in spec.processes:
        assert process.parameters["communication_radius"] == 2.5
        assert "neighbours" not in process.parameters


@pytest.mark.parametrize("kind, extra", [("complete", {}), ("path", {}), ("star", {}), ("wheel", {}),
                                         ("erdos_renyi", {"edge_probability": 0.6}),
                                         ("geometric", {"target_connectivity": 1.0, "connectivity_tolerance": 0.3})])
def test_static_graphs_give_symmetric_neighbour_lists(kind, extra):
    spec = spec_of(robots=5, graph={"kind": kind, **extra})
    neighbours = {p.key: set(p.parameters.get("neighbours", [])) for p in spec.processes}
    for robot, others in neighbours.items():
        assert robot not in others
        for other in others:
            assert robot in neighbours[other]
    assert sum(len(v) for v in neighbours.values()) == 2 * spec.graph["num_edges"]


def test_robot_ids_overrides_remappings_checkpoints(tmp_path):
    spec = spec_of(
        tmp_path, robots=["alpha", "bravo", "charlie"], graph={"kind": "path"},
        remappings={"scan": "/{robot}/front/scan"}, parameters={"torch_threads": 2, "dtype": "float64"},
        robot_overrides={"bravo": {"remappings": {"odom": "/bravo/odometry/filtered"},
                                   "parameters": {"torch_threads": 4}}},
        checkpoint={"every": 5}, use_sim_time=True, startup_timeout=12.0, max_round_lead=50,
    )
    alpha, bravo, charlie = spec.processes
    assert alpha.parameters["neighbours"] == ["bravo"] and bravo.parameters["neighbours"] == ["alpha", "charlie"]
    assert alpha.remappings == {"scan": "/alpha/front/scan"}
    assert bravo.remappings == {"scan": "/bravo/front/scan", "odom": "/bravo/odometry/filtered"}
    assert alpha.parameters["torch_threads"] == 2 and bravo.parameters["torch_threads"] == 4
    assert alpha.parameters["dtype"] == "float64"
    assert alpha.parameters["checkpoint_path"] == str(tmp_path / "checkpoints" / "alpha.pt")
    assert alpha.parameters["checkpoint_every"] == 5 and alpha.parameters["resume"] is False
    assert alpha.parameters["use_sim_time"] is True
    assert alpha.parameters["startup_timeout"] == 12.0 and alpha.parameters["max_round_lead"] == 50


def test_simulator_is_an_extra_process_with_its_own_parameters():
    spec = spec_of(simulator={"parameters": {"rate": 10.0, "seed": 7}, "namespace": "sim"})
    assert [p.role for p in spec.processes] == ["robot"] * 3 + ["simulator"]
    sim = spec.process("simulator")
    assert (sim.package, sim.executable, sim.module) == ("dinno_ros", "lidar_sim", "dinno_ros.lidar_sim_node")
    assert sim.namespace == "/sim" and sim.fully_qualified_name == "/sim/lidar_sim"
    assert sim.parameters["team"] == ["robot_0", "robot_1", "robot_2"]
    assert sim.parameters["task.name"] == "linear_regression"
    assert sim.parameters["rate"] == 10.0 and sim.parameters["seed"] == 7  # its own parameters win
    assert spec_of(simulator={}).process("simulator").namespace == "/"


def test_flatten_parameters():
    flat = flatten_parameters({"a": {"b": {"c": 1}, "d": None, "e": [], "f": (1, 2.5)}, "g": ["x", "y"], "h": True})
    assert flat == {"a.b.c": 1, "a.f": [1.0, 2.5], "g": ["x", "y"], "h": True}
    with pytest.raises(ValueError, match="one type"):
        flatten_parameters({"mixed": [1, "a"]})
    with pytest.raises(ValueError, match="not a ROS parameter value"):
        flatten_parameters({"obj": object()})
    with pytest.raises(ValueError, match="not valid"):
        flatten_parameters({"bad name": 1})


# ----------------------------------------------------------------------------- rendering, read back by rcl


def _parameters_as_rcl_reads_them(process, ros_args: list[str]) -> dict:
    """Start a node named like the process with these --ros-args, in-process; its parameters."""
    context = rclpy.Context()
    rclpy.init(args=["test", *ros_args], context=context)
    try:
        node = Node("placeholder", context=context, automatically_declare_parameters_from_overrides=True)
        assert node.get_fully_qualified_name() == process.fully_qualified_name
        values = {name: p.value for name, p in node.get_parameters_by_prefix("").items()}
        node.destroy_node()
        return values
    finally:
        rclpy.try_shutdown(context=context)


def _normalise(value):
    return list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "array" else value


@pytest.mark.parametrize("form", ["params_file", "command_line"])
def test_parameters_read_back_by_rcl(tmp_path, form):
    spec = spec_of(tmp_path, robots=["r1", "on", "yes"], graph={"kind": "complete"},
                   parameters={"weights_topic": "1", "encoding": "float32"}, checkpoint={"every": 3})
    for process in spec.processes:
        if form == "params_file":
            text = render_params_yaml(process)
            document = yaml.safe_load(text)
            assert list(document) == [process.fully_qualified_name]
            assert document[process.fully_qualified_name]["ros__parameters"] == process.parameters
            path = tmp_path / f"{process.key}.yaml"
            path.write_text(text)
            args = ros_arguments(process, params_file=path)
            assert args[-2:] == ["--params-file", str(path)]
        else:
            args = ros_arguments(process)
        values = _parameters_as_rcl_reads_them(process, args)
        for name, value in process.parameters.items():
            assert _normalise(values[name]) == value, (form, name)
            assert type(_normalise(values[name])) is type(value), (form, name)  # "on", "1" stay strings


def test_command_line_and_remappings():
    process = spec_of(remappings={"scan": "/{robot}/front/scan"}).processes[0]
    command = process_command(process, "/venv/bin/python", params_file="/p/robot_0.yaml")
    assert command[:6] == ["/venv/bin/python", "-m", "dinno_ros.robot_node", "--ros-args", "-r", "__ns:=/robot_0"]
    assert command[6:8] == ["-r", "__node:=dinno_robot"]
    assert command[8:10] == ["--params-file", "/p/robot_0.yaml"]
    assert command[10:] == ["-r", "scan:=/robot_0/front/scan"]


# ----------------------------------------------------------------------------- config errors


@pytest.mark.parametrize("changes, field, allowed", [
    ({"graph": {"kind": "ring"}}, "graph.kind", "'cycle'"),
    ({"algorithm": {"kind": "centralized"}}, "algorithm", "allowed: dinno, dsgd, dsgt, individual"),
    ({"algorithm": {"kind": "dino"}}, "algorithm", "'dinno'"),
    ({"algorithm": {"kind": "dinno", "rho_init": -1}}, "  algorithm.rho_init", "greater than 0"),
    ({"task": {"name": "chess"}}, "task", "allowed: linear_regression"),
    ({"robots": ["a", "b", "a"]}, "robots", "repeated: a"),
    ({"robots": ["a", "2b"]}, "robots", "not starting with a digit"),
    ({"robots": 0}, "robots", "greater than 0"),
    ({"graph": {"kind": "cycle", "num_robots": 5}}, "graph.num_robots is 5", "team has 3 robots"),
    ({"graph": {"kind": "cycle", "drop_probability": 0.2}}, "graph.drop_probability", "Allowed: 0"),
    ({"graph": {"kind": "disk"}}, "graph", "needs field 'radius'"),
    ({"rounds": -1}, "rounds", "greater than or equal to 0"),
    ({"round_timeout": 0}, "round_timeout", "greater than 0"),
    ({"robot_overrides": {"robot_9": {}}}, "robot_overrides", "allowed: robot_0, robot_1, robot_2"),
    ({"parameters": {"neighbours": ["robot_1"]}}, "parameters may not set neighbours", "come from robots and graph"),
    ({"remappings": {"scan": "not a topic"}}, "remappings", "valid ROS topic name"),
    ({"simulator": {"module": "not-a-module"}}, "simulator.module", "dotted Python module"),
    ({"checkpoint": {"every": -1}}, "checkpoint.every", "greater than or equal to 0"),
    ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
])
def test_bad_config_names_the_field(changes, field, allowed):
    with pytest.raises(ConfigError) as error:
        team_config_from_dict(base_config(**changes), "team.yaml")
    message = str(error.value)
    assert message.startswith("team.yaml: invalid configuration")
    assert field in message and allowed in message, message


def test_dinno_team_rejects_bad_configs_before_starting(tmp_path, capsys):
    config = tmp_path / "team.yaml"
    config.write_text(yaml.safe_dump(base_config(graph={"kind": "hypercube"})))
    assert main([str(config), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "graph.kind" in error and "'cycle'" in error
    config.write_text(yaml.safe_dump(base_config(parameters={"no_such_parameter": 1})))
    assert main([str(config), "--out", str(tmp_path / "out")]) == 2
    assert "robot_0: parameter 'no_such_parameter' is unknown" in capsys.readouterr().err
    # Values only the robots check are found before anything starts, with the robots' own validation.
    config.write_text(yaml.safe_dump(base_config(seed=-1, parameters={"encoding": "float64"})))
    assert main([str(config), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "robot_0: parameter 'seed'" in error and "robot_0: parameter 'encoding'" in error
    assert "Traceback" not in error
    assert main([str(config), "--duration", "-1"]) == 2
    assert not (tmp_path / "out").exists()


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_team_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rounds: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_team_config(bad)
    missing = tmp_path / "missing_fields.yaml"
    missing.write_text("name: x\n")
    with pytest.raises(ConfigError) as error:
        load_team_config(missing)
    for field in ("rounds", "robots", "graph", "task", "algorithm"):
        assert f"  {field}: Field required" in str(error.value)


# ----------------------------------------------------------------------------- launch plans


def test_team_launch_plan(tmp_path):
    plan = team_launch_plan(str(TEAM_CONVEX), out=str(tmp_path), use_sim_time="true")
    assert plan.results_dir == str(tmp_path)
    assert len(plan.nodes) == 4
    for node, process in zip(plan.nodes, plan.spec.processes):
        assert node["package"] == "dinno_ros" and node["executable"] == "robot_node"
        assert node["namespace"] == process.namespace and node["name"] == "dinno_robot"
        (params_file,) = node["parameters"]
        document = yaml.safe_load(Path(params_file).read_text())
        assert document[process.fully_qualified_name]["ros__parameters"]["use_sim_time"] is True
    with pytest.raises(ConfigError, match="no 'simulator' section"):
        team_launch_plan(str(TEAM_CONVEX), out=str(tmp_path), require_simulator=True)


def test_team_launch_plan_gives_a_keyless_team_one_shared_key(tmp_path, monkeypatch):
    """``ros2 launch dinno_ros team_sim.launch.py`` on a config naming no key: the robots sign with
    ``<out>/team.key`` (as under dinno-team), created once and never overwritten."""
    from dinno_ros.message_auth import TEAM_KEY_ENV, TeamKey

    monkeypatch.delenv(TEAM_KEY_ENV, raising=False)
    plan = team_launch_plan(str(TEAM_CONVEX), out=str(tmp_path))
    key_file = tmp_path / "team.key"
    TeamKey.from_file(key_file)  # a valid key
    key = key_file.read_bytes()
    for node, process in zip(plan.nodes, plan.spec.processes):
        (params_file,) = node["parameters"]
        document = yaml.safe_load(Path(params_file).read_text())
        assert document[process.fully_qualified_name]["ros__parameters"]["team_key_file"] == str(key_file)
    team_launch_plan(str(TEAM_CONVEX), out=str(tmp_path))
    assert key_file.read_bytes() == key
    monkeypatch.setenv(TEAM_KEY_ENV, str(key_file))  # a key named by the environment is left to the robots
    again = team_launch_plan(str(TEAM_CONVEX), out=str(tmp_path / "other"))
    assert not (tmp_path / "other" / "team.key").exists()
    assert "team_key_file" not in str(again.spec.processes[0].parameters)


def test_gazebo_launch_plan(tmp_path):
    world, bridge = tmp_path / "office.sdf", tmp_path / "office_bridge.yaml"
    plan = gazebo_launch_plan(str(TEAM_CONVEX), world=str(world), bridge_config=str(bridge), out=str(tmp_path / "r"),
                              gz_command="ign gazebo", gz_args="-r -s")
    assert plan.gz_cmd == ("ign", "gazebo", "-r", "-s", str(world))
    roles = [p.role for p in plan.spec.processes]
    assert roles == ["robot"] * 4 + ["bridge"]
    bridge_node = plan.nodes[-1]
    assert (bridge_node["package"], bridge_node["executable"]) == ("ros_gz_bridge", "parameter_bridge")
    bridge_params = yaml.safe_load(Path(bridge_node["parameters"][0]).read_text())
    assert bridge_params["/dinno_gz_bridge"]["ros__parameters"]["config_file"] == str(bridge)
    for process in plan.spec.robot_processes:
        assert process.parameters["use_sim_time"] is True
    with pytest.raises(ConfigError, match="go together"):
        gazebo_launch_plan(str(TEAM_CONVEX), world=str(world), bridge_config="")
    with pytest.raises(ConfigError, match="plan:="):
        gazebo_launch_plan(str(TEAM_CONVEX), world="", bridge_config="")


def test_gazebo_launch_plan_generates_the_world(tmp_path):
    pytest.importorskip("dinno_core.tasks.mapping.gazebo")
    plan = gazebo_launch_plan(str(TEAM_CONVEX), world="", bridge_config="", out=str(tmp_path), plan="office")
    assert Path(plan.world).is_file() and Path(plan.world).parent == tmp_path / "gazebo"
    bridge = yaml.safe_load(Path(plan.bridge_config).read_text())
    ros_topics = {entry["ros_topic_name"] for entry in bridge}
    for robot in plan.spec.robots:  # the world's robots are the team's, on the node's default topics
        assert f"/{robot}/scan" in ros_topics and f"/{robot}/odom" in ros_topics
    assert "/clock" in ros_topics


def test_hardware_launch_plan_from_arguments(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a plan without results_dir writes
    plan = hardware_launch_plan("robot_1", team="robot_0, robot_1,robot_2", neighbours="[robot_0]",
                                scan_topic="/front/scan", odom_topic="/odometry/filtered",
                                params_file=str(REPO / "config" / "robot.yaml"), results_dir=str(tmp_path),
                                use_sim_time="false")
    (node,) = plan.nodes
    assert node["namespace"] == "/robot_1" and node["name"] == "dinno_robot"
    assert node["remappings"] == [("scan", "/front/scan"), ("odom", "/odometry/filtered")]
    assert node["parameters"][0] == str(REPO / "config" / "robot.yaml")  # the user's file first: arguments win
    params = yaml.safe_load(Path(node["parameters"][1]).read_text())["/robot_1/dinno_robot"]["ros__parameters"]
    assert params == {"robot_id": "robot_1", "team": ["robot_0", "robot_1", "robot_2"], "neighbours": ["robot_0"],
                      "results_path": str(tmp_path / "robots" / "robot_1.json"), "use_sim_time": False}
    radius = hardware_launch_plan("robot_1", team="robot_0,robot_1", communication_radius="3", namespace="/a/b")
    assert radius.process.parameters["communication_radius"] == 3.0
    assert radius.process.namespace == "/a/b"
    assert hardware_launch_plan("robot_1").process.parameters == {"robot_id": "robot_1"}


def test_hardware_launch_plan_from_team_config(tmp_path):
    plan = hardware_launch_plan("robot_2", team_config=str(TEAM_CONVEX), results_dir=str(tmp_path))
    team_process = build_team_spec(load_team_config(TEAM_CONVEX), results_dir=str(tmp_path)).process("robot_2")
    assert plan.process.parameters == team_process.parameters  # the same robot dinno-team would start
    moved = hardware_launch_plan("robot_2", team_config=str(TEAM_CONVEX), communication_radius="4.0",
                                 results_dir=str(tmp_path))
    assert moved.process.parameters["communication_radius"] == 4.0
    assert "neighbours" not in moved.process.parameters
    with pytest.raises(ConfigError, match="allowed: robot_0, robot_1, robot_2, robot_3"):
        hardware_launch_plan("robot_7", team_config=str(TEAM_CONVEX))


@pytest.mark.parametrize("kwargs, message", [
    ({"robot_id": "2x"}, "not a valid ROS name"),
    ({"robot_id": "a", "team": ["b", "c"]}, "not in the team; allowed: b, c"),
    ({"robot_id": "a", "team": ["a", "b"], "neighbours": ["c"]}, r"\['c'\] are not teammates of 'a'; allowed: b"),
    ({"robot_id": "a", "neighbours": ["a"]}, "are not teammates"),
    ({"robot_id": "a", "team": ["a", "a"]}, "must be unique"),
    ({"robot_id": "a", "team": ["a", "b"], "neighbours": ["b"], "communication_radius": 2.0}, "not both"),
    ({"robot_id": "a", "communication_radius": -1.0}, "> 0"),
    ({"robot_id": "a", "parameters": {"team": ["a"]}}, "pass them as arguments"),
])
def test_hardware_robot_process_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hardware_robot_process(**kwargs)


def test_argument_parsing():
    assert parse_id_list("") == [] and parse_id_list("[a, 'b',c ]") == ["a", "b", "c"]
    assert parse_bool("True") is True and parse_bool("off") is False
    with pytest.raises(ValueError, match="allowed: true, false"):
        parse_bool("maybe", "use_sim_time")


# ----------------------------------------------------------------------------- launch files


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_compiles(path):
    compile(path.read_text(), str(path), "exec")


def test_all_launch_files_present():
    assert {p.name for p in LAUNCH_FILES} >= {"team_sim.launch.py", "team_gazebo.launch.py",
                                             "robot_hardware.launch.py"}


class _Action:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context.launch_configurations[self.name]


@pytest.fixture
def stand_in_launch(monkeypatch):
    """Minimal launch / launch_ros modules (not installable here) recording what the files build."""
    modules = {name: types.ModuleType(name) for name in
               ("launch", "launch.actions", "launch.substitutions", "launch.event_handlers", "launch.events",
                "launch_ros", "launch_ros.actions")}
    modules["launch"].LaunchDescription = lambda entities: list(entities)
    for name in ("DeclareLaunchArgument", "OpaqueFunction", "ExecuteProcess", "LogInfo", "EmitEvent",
                 "RegisterEventHandler"):
        setattr(modules["launch.actions"], name, type(name, (_Action,), {}))
    modules["launch.event_handlers"].OnProcessExit = type("OnProcessExit", (_Action,), {})
    modules["launch.events"].Shutdown = type("Shutdown", (_Action,), {})
    modules["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    modules["launch_ros.actions"].Node = type("Node", (_Action,), {})
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return modules


def _run_launch_file(path: Path, arguments: dict[str, str]) -> list:
    """Evaluate a launch file like `ros2 launch` would: defaults, then the OpaqueFunction."""
    namespace: dict = {"__file__": str(path), "__name__": path.stem}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    entities = namespace["generate_launch_description"]()
    declared = [e for e in entities if type(e).__name__ == "DeclareLaunchArgument"]
    configurations = {}
    for argument in declared:
        name = argument.args[0]
        assert argument.kwargs.get("description"), f"{path.name}: argument {name} has no description"
        if name in arguments:
            configurations[name] = arguments[name]
        else:
            assert "default_value" in argument.kwargs, f"{path.name}: required argument {name} not given"
            configurations[name] = argument.kwargs["default_value"]
    assert set(arguments) <= set(configurations), "unknown launch arguments given"
    context = types.SimpleNamespace(launch_configurations=configurations)
    actions = []
    for entity in entities:
        if type(entity).__name__ == "OpaqueFunction":
            actions += entity.kwargs["function"](context)
    return actions


def test_team_sim_launch_file(stand_in_launch, tmp_path):
    config = tmp_path / "team.yaml"
    config.write_text(yaml.safe_dump(base_config(simulator={"parameters": {"rate": 5.0}})))
    actions = _run_launch_file(LAUNCH_DIR / "team_sim.launch.py", {"config": str(config), "out": str(tmp_path / "o")})
    nodes = [a.kwargs for a in actions if type(a).__name__ == "Node"]
    expected = team_launch_plan(str(config), out=str(tmp_path / "o"), require_simulator=True).nodes
    assert nodes == expected and [n["executable"] for n in nodes] == ["robot_node"] * 3 + ["lidar_sim"]


def test_team_gazebo_launch_file_refuses_without_gazebo(stand_in_launch, tmp_path, monkeypatch):
    """Without gz and ros_gz_bridge (this machine) the launch builds no action at all; the real
    `ros2 launch` run of this is in test_launch_files.py."""
    from dinno_ros.launch_support import LaunchRefused

    monkeypatch.setenv("PATH", str(tmp_path))
    arguments = {"config": str(TEAM_CONVEX), "world": str(tmp_path / "w.sdf"),
                 "bridge_config": str(tmp_path / "b.yaml"), "out": str(tmp_path / "o")}
    with pytest.raises(LaunchRefused, match="nothing was started: 'gz' is not on PATH"):
        _run_launch_file(LAUNCH_DIR / "team_gazebo.launch.py", arguments)
    assert not (tmp_path / "o").exists()  # not even a params file


def test_robot_hardware_launch_file(stand_in_launch, tmp_path):
    arguments = {"robot_id": "robot_0", "team_config": str(TEAM_CONVEX), "scan_topic": "/scan",
                 "results_dir": str(tmp_path)}
    actions = _run_launch_file(LAUNCH_DIR / "robot_hardware.launch.py", arguments)
    (node,) = [a.kwargs for a in actions if type(a).__name__ == "Node"]
    assert node == hardware_launch_plan("robot_0", team_config=str(TEAM_CONVEX), scan_topic="/scan",
                                        results_dir=str(tmp_path)).nodes[0]


# ----------------------------------------------------------------------------- progress


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_team_progress_history_and_table():
    clock = _Clock()
    progress = TeamProgress(["a", "b"], rounds=10, extra=["simulator"], clock=clock)
    clock.now += 1.5
    progress.update("a", 1, 0.5, float("nan"), 1.0, 2.0, ["b"], 0)
    clock.now += 0.5
    progress.update("a", 2, 0.25, 0.1, 1.0, 2.0, ["b"], 1)
    progress.update("zz", 1, 0.0, 0.0, 0.0, 0.0, [], 0)  # not a teammate: ignored
    progress.set_state("b", "crashed", "exit 1")
    history = progress.history()
    assert history["a"]["round"] == [1, 2] and history["a"]["time"] == [1.5, 2.0]
    assert history["a"]["neighbour_distance"] == [None, 0.1]  # NaN → null in JSON
    assert history["a"]["messages_dropped"] == [0, 1] and history["b"]["round"] == []
    assert progress.robots["a"].state == "running" and progress.messages == 2
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(progress.table("unit"))
    text = console.export_text()
    assert "2/10" in text and "0.25" in text and "crashed (exit 1)" in text and "simulator" in text
    line = progress.summary_line()
    assert "a: running r=2/10" in line and "b: crashed" in line
    assert math.isnan(progress.robots["b"].training_loss)


def test_gazebo_launch_plan_drives_mapping_robots_and_writes_the_users_gazebo(tmp_path):
    """A mapping team in Gazebo gets the path follower (on simulated time, the team's task) and,
    for `ign gazebo`, a world naming Fortress' systems."""
    pytest.importorskip("dinno_core.tasks.mapping.gazebo")
    config = REPO / "config" / "team_mapping_demo.yaml"
    plan = gazebo_launch_plan(str(config), world="", bridge_config="", out=str(tmp_path), plan="office",
                              gz_command="ign gazebo", gazebo="fortress")
    roles = [p.role for p in plan.spec.processes]
    assert roles == ["robot"] * 7 + ["controller", "bridge"]
    controller = plan.spec.process("controller")
    assert (controller.package, controller.executable) == ("dinno_ros", "path_follower")
    assert controller.parameters["use_sim_time"] is True and controller.parameters["task.plan"] == "office"
    assert "motion" not in controller.parameters  # the simulator's setting stays with the (dropped) simulator
    world = Path(plan.world).read_text()
    assert "ignition-gazebo-velocity-control-system" in world and "gz-sim-" not in world


def test_controller_and_simulator_motion_must_agree(tmp_path):
    data = yaml.safe_load((REPO / "config" / "team_mapping_demo.yaml").read_text())
    without = {**data, "controller": None}
    with pytest.raises(ConfigError, match="robots would stand still"):
        team_config_from_dict(without)
    scripted = {**data, "simulator": {}}
    with pytest.raises(ConfigError, match="motion: cmd_vel"):
        team_config_from_dict(scripted)
    spec = build_team_spec(team_config_from_dict(data), results_dir=str(tmp_path))
    assert [p.role for p in spec.processes][-2:] == ["simulator", "controller"]
    assert spec.process("simulator").parameters["motion"] == "cmd_vel"
    assert spec.process("controller").parameters["team"] == list(spec.robots)
