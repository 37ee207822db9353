"""The path follower on real odometry: each robot's odometry starts at zero where it was switched on.

The embedded simulator with ``motion: cmd_vel`` and ``odometry_origin: start`` (odometry in each
robot's own frame, as a real driver gives it) and the path follower given the robots' start
poses (``initial_poses``, what their ``frame.initial_pose`` says): the robots drive along their
paths (checked on the simulator's recorded world poses). Separate processes over ROS, ~30 s.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("dinno_core.tasks.mapping.task")

from dinno_core.tasks.mapping.task import MappingTaskConfig, build_task  # noqa: E402

TEAM = ["robot_0", "robot_1"]
DRIVE_SECONDS = 12.0
TRACKING_BOUND = 0.35
"""Metres from its path a driven robot may be once it has started (test_demo's bound)."""


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def test_follower_drives_robots_whose_odometry_starts_at_zero(tmp_path, ros_env):
    task = build_task(MappingTaskConfig(validation_scans=1), len(TEAM), 0)
    starts = np.stack([p.pose_at(o) for p, o in zip(task.paths, task.path_offsets)])
    trace = tmp_path / "trace.npz"
    team = f"team:=[{', '.join(TEAM)}]"
    sim = subprocess.Popen([sys.executable, "-m", "dinno_ros.lidar_sim_node", "--ros-args", "-p", team,
                            "-p", "motion:=cmd_vel", "-p", "odometry_origin:=start", "-p", f"trace_path:={trace}",
                            "-p", "wait_for_subscribers:=0.0", "-p", "odom_rate_hz:=20.0"],
                           env=ros_env, stdout=(tmp_path / "sim.log").open("w"), stderr=subprocess.STDOUT)
    poses = ", ".join(f"{v:.9f}" for v in starts.ravel())
    follower = subprocess.Popen([sys.executable, "-m", "dinno_ros.path_follower_node", "--ros-args", "-p", team,
                                 "-p", f"initial_poses:=[{poses}]"],
                                env=ros_env, stdout=(tmp_path / "follower.log").open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "cmd_vel received" not in (tmp_path / "sim.log").read_text():
            assert sim.poll() is None and follower.poll() is None, (tmp_path / "sim.log").read_text()
            assert time.monotonic() < deadline, "no start within 120 s"
            if "driving robot_0" in (tmp_path / "follower.log").read_text():
                break
            time.sleep(0.2)
        time.sleep(DRIVE_SECONDS + 5.0)  # start-up of the subscriptions, then driving
    finally:
        codes = [_stop(follower), _stop(sim)]
    assert codes == [0, 0], (tmp_path / "sim.log").read_text()[-3000:] + (tmp_path / "follower.log").read_text()[-3000:]
    with np.load(trace) as data:
        recorded, stamps = data["poses"], data["stamps"]
    assert recorded.shape[1:] == (len(TEAM), 3) and len(stamps) > 20
    moved = np.linalg.norm(recorded[-1, :, :2] - recorded[0, :, :2], axis=1)
    assert np.all(moved > 2.0), moved  # they drove (0.6 m/s for several seconds)
    settled = stamps >= stamps[0] + 2.0
    for i, path in enumerate(task.paths):
        points = path.sample(0.01)
        distance = np.linalg.norm(points[None, :, :] - recorded[settled, i, None, :2], axis=2).min(axis=1)
        assert distance.max() < TRACKING_BOUND, (TEAM[i], float(distance.max()))
