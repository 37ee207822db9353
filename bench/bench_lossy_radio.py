"""A 4-robot team on a lossy radio, before and after issue 11, side by side (run by hand, as root).

Every robot in its own network namespace (UDP only, private /dev/shm, veths to a bridge; the
harness of test/test_ros_netns.py), nftables dropping ``--loss`` % of each robot's outgoing UDP.
Two teams run at the same time, on the same machine load:

* ``today``: the shipped Fast DDS profile (50 ms heartbeats), acknowledged edge duals, absent
  neighbours not waited for;
* ``before``: Fast DDS defaults (3 s heartbeat period), the paper's per-robot dual
  (``reconcile_window: 0``), every neighbour waited for every round (``absent_after`` huge).

Prints rounds/s, timeouts and the largest relative distance of a robot from the optimum.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))

from dinno_core.config import build_task  # noqa: E402
from dinno_core.tasks.convex import ConvexTaskConfig  # noqa: E402
from dinno_ros.message_auth import write_team_key  # noqa: E402
from netns_team import NetnsTeam, unavailable  # noqa: E402

ROBOTS = ["robot_0", "robot_1", "robot_2", "robot_3"]
TASK = {"name": "linear_regression", "num_features": 5, "rows_per_robot": 3, "noise_std": 0.1}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loss", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    why = unavailable()
    if why:
        print(f"bench_lossy_radio: {why}", file=sys.stderr)
        return 2
    import os

    work = Path(tempfile.mkdtemp(prefix="dinno-bench-lossy-"))
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", "42")
    env["ROS_LOG_DIR"] = str(work / "ros")
    env["DINNO_TEAM_KEY_FILE"] = str(write_team_key(work / "team.key"))
    algorithm = {"kind": "dinno", "rho_init": 1.0, "primal_steps": 20, "batch_size": 0,
                 "optimizer": {"name": "sgd"}, "lr": {"kind": "constant", "start": 0.05}}
    variants = {
        "today": ({}, {}),
        "before": ({"DINNO_FASTDDS_PROFILE": "off"},
                   {"absent_after": 1_000_000, "algorithm": {**algorithm, "reconcile_window": 0}}),
    }
    teams = {}
    try:
        for name, (extra_env, params) in variants.items():
            (work / name).mkdir()
            team = NetnsTeam(work / name, ROBOTS, {**env, **extra_env}, {
                "seed": 0, "rounds": args.rounds, "round_timeout": 2.0, "startup_timeout": 120.0,
                "algorithm": algorithm, "task": TASK, **params})
            team.create()
            teams[name] = team
        for team in teams.values():
            for robot in ROBOTS:
                team.set_loss(robot, args.loss)
            for i, robot in enumerate(ROBOTS):
                team.start(robot, {"neighbours": [ROBOTS[(i - 1) % 4], ROBOTS[(i + 1) % 4]]})
        torch.manual_seed(0)
        optimum = build_task(ConvexTaskConfig(**TASK), len(ROBOTS), 0).optimum().numpy()
        print(f"{args.loss} % loss, {args.rounds} rounds, 4 robots on a ring")
        for name, team in teams.items():
            codes = team.wait(1800)
            if any(code != 0 for code in codes.values()):
                print(f"{name}: a robot failed: {codes}")
                continue
            results = [team.results(r) for r in ROBOTS]
            rate = min(r["rounds_stepped_this_run"] / r["training_s"] for r in results)
            error = max(float(np.linalg.norm(np.array(r["weights"]) - optimum) / np.linalg.norm(optimum))
                        for r in results)
            print(f"  {name:7s} {rate:6.1f} rounds/s  timeouts {sum(r['timeouts'] for r in results):4d}  "
                  f"largest relative error {error:.1e}  reverted/expired "
                  f"{sum(r['dual']['reverted'] for r in results)}/{sum(r['dual']['expired'] for r in results)}")
    finally:
        for team in teams.values():
            team.stop()
            team.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
