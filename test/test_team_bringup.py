"""dinno-team for real: robot node processes, Fast DDS on localhost (conftest.py's domain and
discovery range), config/team_convex.yaml.

* a full run exits 0 and writes team.json with every robot's results; the robots agree and sit
  at the least-squares optimum;
* SIGINT mid-run: every child is gone, each robot still wrote its results, exit status 130;
* a robot that crashes (a rejected parameter) makes dinno-team exit 1.

Config errors caught before anything starts are tested in test_team_spec.py (in-process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dinno_core.config import build_task
from dinno_ros.team_config import load_team_config

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TEAM_CONVEX = REPO / "config" / "team_convex.yaml"
RUN_TIMEOUT = 180.0  # four processes importing torch + rclpy on a loaded 2-core machine


def dinno_team() -> list[str]:
    script = Path(sys.executable).with_name("dinno-team")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dinno_ros.team"]


def run_team(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([*dinno_team(), *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> tuple[int, str]:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"dinno-team did not finish within {timeout} s:\n{output[-4000:]}")
    return process.returncode, output


def logs(out: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in sorted((out / "logs").glob("*.log")))


def child_pids(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for_rounds(robots: list[str], rounds: int, team: subprocess.Popen, deadline: float) -> dict[str, int]:
    """Listen to the robots' dinno/status until each reported ``rounds`` rounds (or the deadline)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node

    from dinno_msgs.msg import RobotStatus

    latest = {robot: 0 for robot in robots}
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node("test_status_listener", context=context)
        for robot in robots:
            node.create_subscription(RobotStatus, f"/{robot}/dinno/status",
                                     lambda msg: latest.__setitem__(msg.robot, max(latest.get(msg.robot, 0), msg.round)), 10)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        while time.monotonic() < deadline and team.poll() is None and min(latest.values()) < rounds:
            executor.spin_once(timeout_sec=0.2)
        executor.shutdown()
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
    return latest


def test_team_convex_reaches_consensus(tmp_path, ros_env):
    out = tmp_path / "out"
    started = time.monotonic()
    code, output = finish(run_team([str(TEAM_CONVEX), "--out", str(out)], ros_env, tmp_path))
    elapsed = time.monotonic() - started
    assert code == 0, f"exit code {code}\n{output[-4000:]}\n{logs(out)}"
    team = json.loads((out / "team.json").read_text())
    config = load_team_config(TEAM_CONVEX)
    assert team["stop_reason"] == "every robot finished its rounds"
    assert list(team["robots"]) == config.robot_ids
    assert {p["state"] for p in team["processes"].values()} == {"finished"}
    weights = []
    for robot, entry in team["robots"].items():
        results = entry["results"]
        assert results is not None, f"{robot}: {entry.get('results_error')}\n{logs(out)}"
        assert results["robot"] == robot and results["finished"] is True
        assert results["rounds_done"] == config.rounds
        weights.append(np.asarray(results["weights"], dtype=np.float64))
        history = team["history"][robot]
        assert history["round"], f"no status of {robot} reached the monitor"
        assert history["round"][-1] == config.rounds
    for name in ("training_loss.png", "neighbour_distance.png", "config.yaml"):
        assert (out / name).stat().st_size > 0
    for robot in config.robot_ids:
        assert (out / "params" / f"{robot}.params.yaml").is_file()
        assert (out / "logs" / f"{robot}.log").is_file()

    # Consensus at the centralized least-squares optimum (the task as every robot builds it).
    torch.manual_seed(config.seed)
    optimum = build_task(config.task, config.num_robots, config.seed).optimum().numpy()
    weights = np.stack(weights)
    spread = np.max(np.linalg.norm(weights - weights.mean(axis=0), axis=1)) / np.linalg.norm(optimum)
    error = np.max(np.linalg.norm(weights - optimum, axis=1)) / np.linalg.norm(optimum)
    assert spread < 1e-3, f"robots disagree: relative spread {spread:.2e}"
    assert error < 1e-3, f"robots away from the optimum: relative error {error:.2e}"
    print(f"team_convex: {elapsed:.1f} s wall, {team['seconds']:.1f} s team, spread {spread:.1e}, error {error:.1e}")


def test_sigint_stops_every_child_and_keeps_results(tmp_path, ros_env):
    data = yaml.safe_load(TEAM_CONVEX.read_text())
    data["rounds"] = 0  # until stopped
    data["robots"] = 2  # fewer processes to start: the stop sequence is the same
    config = tmp_path / "team_forever.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    team = run_team([str(config), "--out", str(out)], ros_env, tmp_path)
    robots = load_team_config(config).robot_ids
    try:
        rounds = wait_for_rounds(robots, 3, team, deadline=time.monotonic() + RUN_TIMEOUT / 2)
        assert min(rounds.values()) >= 3, f"robots did not train: {rounds}\n{logs(out)}"
        children = child_pids(team.pid)
        assert len(children) == len(robots), children
        team.send_signal(signal.SIGINT)
        code, output = finish(team, timeout=60)
    finally:
        if team.poll() is None:
            team.kill()
            team.wait()
    assert code == 128 + signal.SIGINT, f"exit code {code}\n{output[-4000:]}\n{logs(out)}"
    assert not [pid for pid in children if alive(pid)], "children left behind"
    result = json.loads((out / "team.json").read_text())
    assert result["signal"] == "SIGINT" and result["stop_reason"] == "SIGINT received"
    for robot in robots:
        process = result["processes"][robot]
        assert process["state"] == "stopped" and process["signals_sent"] == ["SIGINT"], process
        results = result["robots"][robot]["results"]
        assert results is not None and results["rounds_done"] > 0 and results["finished"] is False


def test_values_only_a_robot_checks_stop_dinno_team_before_it_starts_anything(tmp_path, ros_env):
    data = yaml.safe_load(TEAM_CONVEX.read_text())
    data["robots"] = 1
    data["parameters"] = {"encoding": "float8"}  # a known parameter with a value the node rejects
    config = tmp_path / "team_bad.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    code, output = finish(run_team([str(config), "--out", str(out)], ros_env, tmp_path))
    assert code == 2, output[-4000:]
    assert "robot_0: parameter 'encoding'" in output and "float8" in output and "Traceback" not in output
    assert not out.exists()  # nothing started, nothing written


CRASHING_CHILD = """
import sys
print("robot_node: invalid parameters: a failure only the running robot sees", flush=True)
sys.exit(2)
"""


def test_crashing_robots_make_a_failed_run(tmp_path, ros_env):
    import dataclasses

    from rich.console import Console

    from dinno_ros.team import TeamRun

    (tmp_path / "crashing_child.py").write_text(CRASHING_CHILD)
    data = yaml.safe_load(TEAM_CONVEX.read_text())
    data["robots"] = 1
    config = tmp_path / "team.yaml"
    config.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    env = {**ros_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), ros_env.get("PYTHONPATH")]))}
    run = TeamRun(load_team_config(config), out, duration=None, console=Console(stderr=True), live=False, env=env)
    run.spec = dataclasses.replace(run.spec, processes=tuple(
        dataclasses.replace(p, module="crashing_child") for p in run.spec.processes))
    assert run.run().exit_code == 1
    result = json.loads((out / "team.json").read_text())
    assert result["stop_reason"] == "every robot exited"
    for robot in ("robot_0",):
        assert result["processes"][robot]["state"] == "crashed"
        assert result["processes"][robot]["exit_code"] == 2
        assert "only the running robot sees" in (out / "logs" / f"{robot}.log").read_text()


STUBBORN_CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGINT and SIGTERM", flush=True)
while True:
    time.sleep(0.1)
"""


def test_children_that_ignore_sigint_and_sigterm_get_killed(tmp_path, ros_env):
    """The stop sequence ends in SIGKILL; the run is a failure; the shm cleaner ran."""
    import dataclasses

    from rich.console import Console

    from dinno_ros.team import TeamRun

    (tmp_path / "stubborn_child.py").write_text(STUBBORN_CHILD)
    data = yaml.safe_load(TEAM_CONVEX.read_text())
    data.update(robots=2, shutdown={"sigint_timeout": 1.0, "sigterm_timeout": 1.0})
    config = tmp_path / "team.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**ros_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), ros_env.get("PYTHONPATH")]))}
    run = TeamRun(load_team_config(config), tmp_path / "out", duration=2.0, console=Console(stderr=True),
                  live=False, env=env)
    run.spec = dataclasses.replace(run.spec, processes=tuple(
        dataclasses.replace(p, module="stubborn_child") for p in run.spec.processes))
    started = time.monotonic()
    code = run.run().exit_code
    assert code == 1
    assert time.monotonic() - started < 60
    result = json.loads((tmp_path / "out" / "team.json").read_text())
    assert result["stop_reason"] == "duration 2 s passed"
    for robot in ("robot_0", "robot_1"):
        process = result["processes"][robot]
        assert process["state"] == "killed" and process["exit_code"] == -signal.SIGKILL
        assert process["signals_sent"] == ["SIGINT", "SIGTERM", "SIGKILL"]
        assert result["robots"][robot]["results"] is None and "was not written" in result["robots"][robot]["results_error"]
        assert "ignoring SIGINT and SIGTERM" in (tmp_path / "out" / "logs" / f"{robot}.log").read_text()
    assert result["shm_cleanup"]  # Fast DDS' cleaner ran (its report)
