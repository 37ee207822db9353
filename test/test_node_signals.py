"""Ctrl-C held down: the simulator and the path follower keep stopping cleanly.

A process gets SIGINT, then SIGINT again every 20 ms until it has exited (a user hammering
Ctrl-C; ``ros2 launch`` forwarding SIGINT to a process group that already got one). Whatever
phase each repeat lands in (spinning, saving, tearing down, the interpreter's exit), the node
finishes its report, writes what it writes (the simulator's scan trace) and exits with status 0,
with no traceback. The robot node's case, with its results, is in test_launch_files.py.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("dinno_core.tasks.mapping.task")

REPEAT = 0.02
"""Seconds between the repeated SIGINTs."""


def _started(log, marker: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while marker not in log.read_text():
        if process.poll() is not None:
            pytest.fail(f"exited early with {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {marker!r} within {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _interrupt_until_exit(process: subprocess.Popen, timeout: float = 60.0) -> tuple[int, int]:
    """SIGINT every REPEAT s until the process exits: (exit status, signals sent)."""
    sent, deadline = 0, time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"still running {timeout} s after the first SIGINT")
        try:
            process.send_signal(signal.SIGINT)
            sent += 1
        except ProcessLookupError:
            break
        time.sleep(REPEAT)
    return process.wait(), sent


@pytest.mark.parametrize("node", ["lidar_sim_node", "path_follower_node"])
def test_repeated_sigint_ends_with_status_0_and_everything_written(node, ros_env, tmp_path):
    log, trace = tmp_path / "node.log", tmp_path / "trace.npz"
    parameters = ["-p", "team:=[robot_0, robot_1]"]
    if node == "lidar_sim_node":
        parameters += ["-p", "wait_for_subscribers:=0.0", "-p", f"trace_path:={trace}"]
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", f"dinno_ros.{node}", "--ros-args", *parameters],
                                   env=ros_env, stdout=out, stderr=subprocess.STDOUT)
    _started(log, "robots start moving" if node == "lidar_sim_node" else "driving robot_0, robot_1", process)
    time.sleep(1.0)  # some scan ticks / commands
    code, sent = _interrupt_until_exit(process)
    text = log.read_text()
    assert code == 0, f"exit status {code} after {sent} SIGINTs:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    if node == "lidar_sim_node":
        assert "scan ticks written to" in text and "published" in text, text[-2000:]
        with np.load(trace) as data:
            assert len(data["stamps"]) > 0 and data["ranges"].shape[1:] == (2, data["ranges"].shape[2])
    else:
        assert "command ticks" in text, text[-2000:]


STUCK_TEAR_DOWN = """
import sys, time
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from dinno_ros.node_main import tear_down

rclpy.init()
node = Node("stuck_tear_down")
executor = SingleThreadedExecutor()
executor.add_node(node)
print("saved", flush=True)
tear_down(executor, node, exit_code=int(sys.argv[1]), before=lambda: time.sleep(120), limit_s=1.0)
print("tear-down returned", flush=True)
"""


@pytest.mark.parametrize("exit_code", [0, 1])
def test_a_stuck_tear_down_exits_with_the_nodes_status_and_says_where_it_was(exit_code, ros_env):
    """After everything is saved, a node whose tear-down hangs (here: waiting for acknowledgements
    that never come) exits within the limit with the status it would have returned, and prints
    the stack it was stuck in, instead of staying alive."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", STUCK_TEAR_DOWN, str(exit_code)], env=ros_env,
                            capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == exit_code, result.stderr[-3000:]
    assert "saved" in result.stdout and "tear-down returned" not in result.stdout
    assert "stuck_tear_down: tear-down did not finish within 1 s (everything was saved)" in result.stderr
    assert "time.sleep" in result.stderr or "<lambda>" in result.stderr, result.stderr[-3000:]
