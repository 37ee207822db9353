"""Cost of DiNNO's two primal steps on the mapping task: ``optimizer`` (the paper's, a torch Adam
re-created every round) against ``adam_proximal``.

7 robots of mapping_office.yaml (B=5 steps of 1,024 points, disk graph), both teams in one
process on the same scans, alternating in blocks so machine load affects both alike; the ratio
is what to read.

    .venv/bin/python bench/bench_primal_step.py [--rounds 60] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import dinno_core
from dinno_core.algorithms import build_algorithm
from dinno_core.config import load_experiment_config, set_up_model
from dinno_core.graphs import StaticGraph, disk_graph
from dinno_core.team import SimulatedTeam, TeamData

CONFIG = Path(dinno_core.__file__).parent / "configs" / "mapping_office.yaml"


def build_teams() -> dict[str, SimulatedTeam]:
    config = load_experiment_config(CONFIG)
    proximal = config.algorithms["dinno"]
    plain = proximal.model_copy(update={"primal_step": "optimizer", "optimizer": proximal.optimizer.model_copy(
        update={"persistent_state": False})})
    setup = set_up_model(config.task, config.num_robots, config.seed)
    task, flat = setup.task, setup.flat
    for round_index in range(200):  # fill the windows
        task.advance(round_index)
    theta0 = setup.theta0.repeat(config.num_robots, 1)
    graph = StaticGraph(disk_graph(task.positions(), config.graph.radius))
    return {
        name: SimulatedTeam(build_algorithm(algorithm, flat, theta0), graph,
                            TeamData(task.robot_data(config.num_robots), config.seed))
        for name, algorithm in (("optimizer (paper)", plain), ("adam_proximal", proximal))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=60, help="rounds per variant (split into blocks)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    teams = build_teams()
    for team in teams.values():
        team.run_round()  # warm-up
    seconds = dict.fromkeys(teams, 0.0)
    blocks = 6
    per_block = max(args.rounds // blocks, 1)
    for _ in range(blocks):
        for name, team in teams.items():
            start = time.perf_counter()
            for _ in range(per_block):
                team.run_round()
            seconds[name] += time.perf_counter() - start
    rounds = per_block * blocks
    print(f"7-robot office mapping DiNNO (B=5, batch 1024), torch threads={torch.get_num_threads()}, {rounds} rounds each")
    for name, spent in seconds.items():
        print(f"  {name:18s}: {rounds / spent:6.2f} rounds/s")
    names = list(teams)
    print(f"  cost ratio (proximal / paper): {seconds[names[1]] / seconds[names[0]]:.2f}")


if __name__ == "__main__":
    main()
