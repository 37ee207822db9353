"""The launch files under the real ``ros2 launch`` (from this venv: AMENT_PREFIX_PATH=.venv).

* ``team_sim.launch.py`` with a small mapping team driven by cmd_vel runs to its end by itself
  (the launch stops the simulator and the path follower once every robot finished), exits 0,
  and every robot's results file exists;
* Ctrl-C three times (SIGINT to the launch's process group, 0.1 s apart): every robot still writes its
  results, nothing is left running;
* ``robot_hardware.launch.py`` starts one node that waits for sensor data, and stops cleanly on
  SIGINT (results written, nothing left);
* ``team_gazebo.launch.py`` on a machine without Gazebo exits non-zero with one clear line and
  starts no process.

Skipped, saying why, where the launch tools (../shared/ros2-tools) are not installed.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from launch_tools import (
    finish,
    group_members,
    kill_group,
    launch_env,
    output_of,
    ros2_launch_or_skip,
    start,
    wait_for_output,
    wait_group_gone,
)
from test_team_bringup import wait_for_rounds

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TEAM_RUN_TIMEOUT = 300.0  # 2 robots + simulator importing torch/rclpy on a loaded 2-core machine


def mapping_team(path: Path, rounds: int, robots: int = 2, **extra) -> Path:
    """A small mapping team on the embedded simulator (2 robots, a few beams, small batches)."""
    data = {
        "name": "launch_test", "seed": 0, "rounds": rounds, "round_timeout": 2.0, "startup_timeout": 120.0,
        "robots": robots, "graph": {"kind": "complete"},
        "task": {"name": "mapping", "plan": "office", "samples_per_beam": 8, "window_scans": 100,
                 "validation_scans": 4, "speed": 0.6,
                 "lidar": {"num_beams": 12, "range_min": 0.1, "range_max": 10.0, "noise_std": 0.01, "rate_hz": 5.0}},
        "algorithm": {"kind": "dinno", "rho_init": 0.01, "primal_steps": 2, "batch_size": 64,
                      "optimizer": {"name": "adam"}, "lr": {"kind": "constant", "start": 0.005}},
        "torch_threads": 1,
        "simulator": {},
        **extra,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def read_results(out: Path, robot: str) -> dict:
    return json.loads((out / "robots" / f"{robot}.json").read_text())


def test_team_sim_runs_to_its_end_and_every_robot_writes_results(tmp_path, ros_env):
    command = ros2_launch_or_skip()
    # Driven by cmd_vel: the launch also runs the path follower (and must stop it at the end).
    config = mapping_team(tmp_path / "team.yaml", rounds=8, simulator={"parameters": {"motion": "cmd_vel"}},
                          controller={})
    out = tmp_path / "out"
    env = launch_env(ros_env)
    env.pop("DINNO_TEAM_KEY_FILE", None)  # as a user would: no key named; the launch gives <out>/team.key
    launch = start([*command, "dinno_ros", "team_sim.launch.py", f"config:={config}", f"out:={out}"], env, tmp_path)
    code, output = finish(launch, TEAM_RUN_TIMEOUT)
    left = wait_group_gone(launch.pid, 10.0)
    kill_group(launch.pid)
    assert code == 0, output[-6000:]
    assert not left, f"processes left behind: {left}"
    assert "every robot finished (2 robots)" in output, output[-4000:]
    assert (out / "team.key").stat().st_mode & 0o777 == 0o600
    assert "[path_follower-4]" in output and "cmd_vel received" in output, output[-4000:]
    for robot in ("robot_0", "robot_1"):
        results = read_results(out, robot)
        assert results["finished"] is True and results["rounds_done"] == 8, results
        assert (out / "robots" / f"{robot}.weights.npy").is_file()


def test_ctrl_c_again_and_again_keeps_every_robots_results(tmp_path, ros_env):
    command = ros2_launch_or_skip()
    config = mapping_team(tmp_path / "team.yaml", rounds=0)
    out = tmp_path / "out"
    launch = start([*command, "dinno_ros", "team_sim.launch.py", f"config:={config}", f"out:={out}"],
                   launch_env(ros_env), tmp_path)
    try:
        rounds = wait_for_rounds(["robot_0", "robot_1"], 3, launch, time.monotonic() + TEAM_RUN_TIMEOUT)
        assert min(rounds.values()) >= 3, f"robots did not train: {rounds}"
        # Ctrl-C (the whole foreground group), then again and again while the robots save: every
        # 20 ms for 0.2 s (a small team saves in ~15 ms on an idle machine: the old 0.1 s gap
        # let a clean-clone CI run's robots finish saving before the second Ctrl-C).
        for _ in range(10):
            os.killpg(launch.pid, signal.SIGINT)
            time.sleep(0.02)
        code, output = finish(launch, 120.0)
    finally:
        left = wait_group_gone(launch.pid, 15.0)
        kill_group(launch.pid)
    assert not left, f"processes left behind: {left}\n{output[-4000:]}"
    assert "again: already stopping, saving the results first" in output, output[-6000:]  # it did hit a stop
    for robot in ("robot_0", "robot_1"):
        assert (out / "robots" / f"{robot}.json").is_file(), f"{robot} lost its results:\n{output[-6000:]}"
        results = read_results(out, robot)
        assert results["finished"] is False and results["rounds_done"] > 0, results
        assert (out / "robots" / f"{robot}.weights.npy").is_file()
    assert "Traceback" not in output, output[-6000:]


def test_hardware_launch_waits_for_sensor_data_and_stops_on_sigint(tmp_path, ros_env):
    command = ros2_launch_or_skip()
    config = mapping_team(tmp_path / "team.yaml", rounds=0, robots=3)
    out = tmp_path / "out"
    launch = start([*command, "dinno_ros", "robot_hardware.launch.py", "robot_id:=robot_1",
                    f"team_config:={config}", f"results_dir:={out}"], launch_env(ros_env), tmp_path)
    try:
        up = wait_for_output(launch, "robot robot_1 (index 1 of 3)", 180.0)
        assert up, output_of(launch)[-6000:]
        time.sleep(3.0)
        nodes = [pid for pid in group_members(launch.pid) if pid != launch.pid]
        assert len(nodes) == 1, f"expected one node process besides ros2 launch, got {nodes}"
        assert launch.poll() is None, "the launch ended without sensor data"
        os.killpg(launch.pid, signal.SIGINT)
        code, output = finish(launch, 60.0)
    finally:
        left = wait_group_gone(launch.pid, 15.0)
        kill_group(launch.pid)
    assert code == 0, output[-6000:]
    assert not left, f"processes left behind: {left}"
    results = read_results(out, "robot_1")
    assert results["rounds_done"] == 0 and results["finished"] is False, results  # no data, no rounds
    assert "Traceback" not in output, output[-4000:]


def test_gazebo_launch_without_gazebo_refuses_in_one_line_and_starts_nothing(tmp_path, ros_env):
    command = ros2_launch_or_skip()
    config = mapping_team(tmp_path / "team.yaml", rounds=5, robots=3)
    out = tmp_path / "out"
    bare = tmp_path / "bin"  # a PATH without gz/ign: only what the launch itself needs
    bare.mkdir()
    env = launch_env(ros_env)
    env["PATH"] = os.pathsep.join([str(Path(command[0]).parent), str(bare), "/usr/bin", "/bin"])
    for program in ("gz", "ign"):
        assert not any((Path(p) / program).exists() for p in env["PATH"].split(os.pathsep)), \
            f"{program} is installed here: this test needs a machine without Gazebo"
    launch = start([*command, "dinno_ros", "team_gazebo.launch.py", f"config:={config}", "plan:=office",
                    f"out:={out}"], env, tmp_path)
    started = time.monotonic()
    code, output = finish(launch, 120.0)
    left = wait_group_gone(launch.pid, 5.0)
    kill_group(launch.pid)
    assert code != 0, output[-4000:]
    errors = [line for line in output.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1, output[-4000:]
    assert "needs Gazebo and ros_gz_bridge, nothing was started" in errors[0]
    assert "'gz' is not on PATH" in errors[0] and "ros_gz_bridge" in errors[0]
    assert "Traceback" not in output and "FileNotFoundError" not in output, output
    assert "process started" not in output, output  # launch logs every process it starts
    assert not left, f"processes left behind: {left}"
    assert not (out / "robots").exists()
    assert time.monotonic() - started < 120.0
