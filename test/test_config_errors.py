"""Errors a careless user makes end as one clear message naming the field: never a traceback,
nothing started, nothing overwritten. dinno-experiment, dinno-team and the robot node."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from dinno_core.config import ConfigError, load_experiment_config
from dinno_core.experiment import main as experiment_main
from dinno_core.tasks.mapping.plans import builtin_paths_yaml, builtin_plan_yaml
from dinno_ros.process_spec import process_command
from dinno_ros.team import main as team_main
from dinno_ros.team_config import load_team_config
from dinno_ros.team_spec import hardware_robot_process

REPO = Path(__file__).resolve().parents[1]
TEAM_CONVEX = REPO / "config" / "team_convex.yaml"

EXPERIMENT = {
    "name": "careless", "seed": 0, "rounds": 2, "eval_every": 1,
    "task": {"name": "linear_regression", "num_features": 3, "rows_per_robot": 2},
    "graph": {"kind": "cycle", "num_robots": 3},
    "algorithms": {"dinno": {"kind": "dinno", "batch_size": 2}},
}


def run_experiment_cli(tmp_path: Path, capsys, data: dict | None = None, text: bytes | None = None,
                       args: tuple[str, ...] = ()) -> str:
    config = tmp_path / "experiment.yaml"
    if text is not None:
        config.write_bytes(text)
    else:
        config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    code = experiment_main([str(config), "--out", str(out), *args])
    error = capsys.readouterr().err
    assert code == 2, error
    assert "Traceback" not in error and not (out / "results.json").exists()
    return error


def with_task(**task) -> dict:
    return {**EXPERIMENT, "task": task}


def user_map(tmp_path: Path) -> tuple[Path, Path]:
    """A user's map_server plan and path file (copies of the built-in office) in tmp_path/maps."""
    maps = tmp_path / "maps"
    maps.mkdir()
    plan_yaml = builtin_plan_yaml("office")
    plan = yaml.safe_load(plan_yaml.read_text())
    (maps / Path(plan["image"]).name).write_bytes((plan_yaml.parent / plan["image"]).read_bytes())
    plan["image"] = Path(plan["image"]).name
    (maps / "office.yaml").write_text(yaml.safe_dump(plan))
    (maps / "office_paths.yaml").write_text(builtin_paths_yaml("office").read_text())
    return maps / "office.yaml", maps / "office_paths.yaml"


# ------------------------------------------------------------------------------ config files


def test_a_user_map_without_paths_names_task_paths(tmp_path, capsys):
    plan, _ = user_map(tmp_path)
    error = run_experiment_cli(tmp_path, capsys, with_task(name="mapping", plan=str(plan)))
    assert "invalid configuration" in error and "task" in error and "give 'paths'" in error


def test_a_plan_that_does_not_exist_names_task_plan(tmp_path, capsys):
    error = run_experiment_cli(tmp_path, capsys, with_task(name="mapping", plan="no/such/plan.yaml"))
    assert "task.plan" in error and "neither a built-in plan" in error and "no/such/plan.yaml" in error


def test_relative_paths_in_a_config_start_at_its_folder(tmp_path, monkeypatch):
    plan, paths = user_map(tmp_path)
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump(with_task(name="mapping", plan="maps/office.yaml", paths="maps/office_paths.yaml")))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # not the config's folder
    loaded = load_experiment_config(config)
    assert Path(loaded.task.plan) == plan and Path(loaded.task.paths) == paths
    team = yaml.safe_load(TEAM_CONVEX.read_text())
    team.update(results_dir="runs/convex", checkpoint={"directory": "ckpt"})
    (tmp_path / "team.yaml").write_text(yaml.safe_dump(team))
    loaded_team = load_team_config(tmp_path / "team.yaml")
    assert loaded_team.results_dir == str(tmp_path / "runs" / "convex")
    assert loaded_team.checkpoint.directory == str(tmp_path / "ckpt")


def test_a_binary_file_as_config(tmp_path, capsys):
    error = run_experiment_cli(tmp_path, capsys, text=bytes(range(256)) * 8)
    assert "not a text file" in error


def test_a_5000_deep_yaml_as_config(tmp_path, capsys):
    error = run_experiment_cli(tmp_path, capsys, text=b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n")
    assert "nested too deeply" in error or "not valid YAML" in error


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: device: cuda is valid here")
def test_device_cuda_without_cuda_names_device(tmp_path, capsys):
    error = run_experiment_cli(tmp_path, capsys, {**EXPERIMENT, "device": "cuda"})
    assert "  device:" in error and "no usable CUDA device" in error


def test_an_mnist_path_that_is_not_an_npz(tmp_path, capsys):
    not_npz = tmp_path / "digits.npz"
    not_npz.write_text("these are not digits\n")
    error = run_experiment_cli(tmp_path, capsys, with_task(name="mnist", source="npz", path=str(not_npz)))
    assert "task" in error and "digits.npz" in error and "not an .npz" in error


def test_a_missing_mnist_npz_never_falls_back_to_another_file(tmp_path, capsys):
    error = run_experiment_cli(tmp_path, capsys, with_task(name="mnist", source="auto", path="missing.npz"))
    assert "task.path" in error and "no such file" in error and str(tmp_path / "missing.npz") in error


@pytest.mark.parametrize("rounds", ["0", "-3"])
def test_rounds_from_the_command_line_are_validated(tmp_path, capsys, rounds):
    error = run_experiment_cli(tmp_path, capsys, EXPERIMENT, args=("--rounds", rounds))
    assert "  rounds:" in error and "greater than 0" in error


@pytest.mark.parametrize("field", ["start", "end"])
def test_an_infinite_learning_rate_is_rejected(tmp_path, capsys, field):
    algorithm = {"kind": "dinno", "batch_size": 2, "lr": {"kind": "log", "start": 0.01, "end": 0.001, "rounds": 5}}
    algorithm["lr"][field] = float("inf")
    error = run_experiment_cli(tmp_path, capsys, {**EXPERIMENT, "algorithms": {"dinno": algorithm}})
    assert f"algorithms.dinno.lr.{field}" in error and "finite" in error


# ------------------------------------------------------------------------------ dinno-team


def test_dinno_team_out_into_an_unwritable_place(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    assert team_main([str(TEAM_CONVEX), "--out", str(blocker / "results")]) == 2
    error = capsys.readouterr().err
    assert "--out" in error and "cannot create" in error and "Traceback" not in error


@pytest.mark.parametrize("change, field", [
    ({"seed": -1}, "parameter 'seed'"),
    ({"round_timeout": float("inf")}, "round_timeout"),
    ({"parameters": {"encoding": "float64"}}, "parameter 'encoding'"),
    ({"parameters": {"weights_qos_depth": 100_000_000_000}}, "parameter 'weights_qos_depth'"),
    ({"parameters": {"delta_encoding": True}}, "parameter 'delta_encoding': needs encoding float16 or uint8"),
])
def test_dinno_team_validates_what_only_robots_check_before_starting(tmp_path, capsys, change, field):
    data = yaml.safe_load(TEAM_CONVEX.read_text())
    data.update(change)
    config = tmp_path / "team.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert team_main([str(config), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert field in error and "Traceback" not in error
    assert not out.exists()  # nothing started, nothing written


# ------------------------------------------------------------------------------ robot node


def node_errors(ros_context, **parameters) -> str:
    from rclpy.parameter import Parameter

    from dinno_ros.robot_node import RobotNode

    values = {"robot_id": "robot_0", "team": ["robot_0", "robot_1"], "neighbours": ["robot_1"], **parameters}
    with pytest.raises(ConfigError) as error:
        RobotNode(context=ros_context, namespace="/robot_0",
                  parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
    return str(error.value)


@pytest.mark.parametrize("parameters, expected", [
    ({"weights_qos_depth": 100_000_000_000}, "parameter 'weights_qos_depth': out of range; allowed: >= 1; <= 10000"),
    ({"weights_topic": "bad topic!!"}, "parameter 'weights_topic': topic 'bad topic!!' is not a valid ROS topic name"),
    ({"neighbour_weights_topic": "/{robot}/{x}"}, "parameter 'neighbour_weights_topic': only {robot} may appear"),
    ({"neighbours": ["bad-id"]}, "parameter 'neighbours': ['bad-id'] are not teammates of 'robot_0'"),
    ({"robot_id": "bad-id", "team": ["bad-id", "robot_1"]}, "parameter 'team': robot id 'bad-id' is not a valid ROS name"),
    ({"round_timeout": float("inf")}, "parameter 'round_timeout'"),
    ({"seed": -1}, "parameter 'seed': out of range; allowed: >= 0"),
    ({"delta_encoding": True}, "parameter 'delta_encoding': needs encoding float16 or uint8"),
])
def test_the_robot_node_names_each_bad_parameter(ros_context, parameters, expected):
    assert expected in node_errors(ros_context, **parameters)


def robot_process(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = process_command(hardware_robot_process("robot_0", ["robot_0", "robot_1"], neighbours=["robot_1"]),
                              sys.executable)
    return subprocess.run(command + arguments, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize("arguments, expected", [
    (["-r", "__ns:=/bad-ns"], "invalid ROS arguments: Couldn't parse remap rule: '-r __ns:=/bad-ns'"),
    (["--params-file", "/no/such/params.yaml"], "Couldn't parse params file: '--params-file /no/such/params.yaml'"),
    (["--params-file", "NOT_YAML"], "Couldn't parse params file"),
    (["-p", "weights_topic:=bad topic!!"], "parameter 'weights_topic'"),
])
def test_a_robot_process_given_bad_arguments_exits_2_without_a_traceback(tmp_path, ros_env, arguments, expected):
    if "NOT_YAML" in arguments:
        bad = tmp_path / "params.yaml"
        bad.write_text("robot_0: [unclosed\n")
        arguments = [str(bad) if a == "NOT_YAML" else a for a in arguments]
    result = robot_process(arguments, ros_env)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_in_a_robots_first_second_is_quiet(ros_env):
    for delay in (0.3, 1.0):
        command = process_command(hardware_robot_process("robot_0", ["robot_0", "robot_1"], neighbours=["robot_1"]),
                                  sys.executable)
        process = subprocess.Popen(command, env=ros_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        assert process.returncode in (0, 130), (process.returncode, err)
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_experiment_results_are_strict_json(tmp_path):
    """NaN never reaches a results file as a bare NaN (strict JSON: null)."""
    from dinno_core.checkpoint import write_json

    write_json(tmp_path / "r.json", {"a": [1.0, float("nan")], "b": {"c": float("inf")}})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1.0, None], "b": {"c": None}}
