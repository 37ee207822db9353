"""The mapping demo, for real: robot processes + lidar simulator + path follower over ROS 2,
then the analysis.

A short run (4 robots, 60 s including start-up) into a temporary folder. The robots are driven
ONLY by cmd_vel: the path follower reads their odometry and publishes Twist, the simulator moves
them as unicycles; they talk over a communication radius (neighbours from odometry). summary.json
holds per-robot metrics for the team and for the offline individual baseline, the pictures exist,
every robot stayed within TRACKING_BOUND of its path (from the simulator's recorded poses), and
every team robot's map beats every individual robot's on the validation loss (a real, failable
comparison: the individual robots train on exactly the scans they received, for as many rounds).
About 2 minutes on a busy 2-core machine.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

pytest.importorskip("dinno_core.tasks.mapping.task")

ROBOTS = 4
TRACKING_BOUND = 0.35
"""Metres: the farthest a cmd_vel-driven robot may stray from its path (measured: <= 0.19)."""
PNG = b"\x89PNG\r\n\x1a\n"
NUM_PARAMS = 25_601
"""The demo's mapping network (the paper's Fourier-feature MLP)."""


@pytest.mark.slow
def test_demo_team_beats_individual_robots(tmp_path, ros_env):
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "dinno_ros.demo", "--out", str(out), "--duration", "60",
               "--robots", str(ROBOTS), "--quiet"]
    # As on a fresh machine: no team key named anywhere; the demo gives its robots <out>/team.key.
    env = {k: v for k, v in ros_env.items() if k != "DINNO_TEAM_KEY_FILE"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert done.stdout.strip().splitlines()[-1] == str(out / "summary.json")
    assert (out / "team.key").stat().st_mode & 0o777 == 0o600

    summary = json.loads((out / "summary.json").read_text())
    robots = [f"robot_{i}" for i in range(ROBOTS)]
    assert list(summary["robots"]) == robots and summary["robots_without_weights"] == []
    assert set(summary["team_run"]["processes"].values()) <= {"stopped", "finished"}, summary["team_run"]
    for robot in robots:
        entry = summary["robots"][robot]
        assert entry["rounds_done"] >= 30, entry  # the team really trained
        assert entry["scans_used"] > 0 and entry["scans_malformed"] == 0
        for side in ("team", "individual"):
            for metric in ("validation_loss", "occupancy_accuracy", "occupancy_iou", "unseen_accuracy"):
                value = entry[side][metric]
                assert value is not None and math.isfinite(value), (robot, side, metric)
        assert entry["margin"]["validation_loss"] > 0, entry
        # the weights went out every round it stepped (float32, the default encoding; a catch-up
        # adopts rounds without sending them, hence the half)
        assert entry["bytes_sent"] >= 0.5 * entry["rounds_done"] * 4 * NUM_PARAMS, entry

    comparison = summary["comparison"]
    assert comparison["every_robot_beats_its_individual"], comparison
    assert comparison["every_robot_beats_every_individual"], comparison
    assert comparison["margin_worst_team_vs_best_individual"] > 0.05, comparison
    assert comparison["ratio_mean_individual_to_mean_team"] > 1.5, comparison
    assert summary["team_mean"]["validation_loss"] < summary["initial"]["validation_loss"]
    assert summary["baseline"]["rounds"] == max(e["rounds_done"] for e in summary["robots"].values())

    radio = summary["radio"]  # what the team put on the radio, in the summary and printed
    assert radio["bytes_sent"] == sum(e["bytes_sent"] for e in summary["robots"].values())
    assert radio["team_bytes_per_second"] > 0 and radio["mean_bytes_per_round_per_robot"] >= 2 * NUM_PARAMS, radio
    assert "kB/s for the team" in output

    agreement = summary["agreement"]  # one map, not four
    assert agreement["max_pairwise_mean_abs_map_difference"] < 0.1, agreement
    assert agreement["cells_where_robots_disagree"] < 0.25, agreement

    tracking = summary["path_tracking"]  # the robots drove themselves, and kept to their paths
    assert len(tracking["max_distance"]) == ROBOTS and max(tracking["max_distance"]) < TRACKING_BOUND, tracking
    assert min(tracking["distance_driven"]) > 5.0, tracking
    assert summary["team_run"]["processes"].get("controller") in ("stopped", "finished"), summary["team_run"]
    for name in ("maps.png", "training_loss.png", "neighbour_distance.png"):
        assert (out / name).read_bytes()[:8] == PNG, name
    team = json.loads((out / "team.json").read_text())
    assert team["robot_ids"] == robots and (out / "sim_trace.npz").is_file()
    assert "every team robot's map beats every individual robot's" in output
