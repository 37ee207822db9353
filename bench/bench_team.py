"""Rounds per second of the batched simulated team against a robot-by-robot loop.

The 10-robot MNIST DiNNO setting of the paper (B=2 Adam steps of batch 64, cycle graph).
Both variants run the same core objects on the same data in one process, alternating in
blocks so machine load affects both alike; the ratio is what to read.

    .venv/bin/python bench/bench_team.py [--rounds 60] [--source auto|digits]
"""

from __future__ import annotations

import argparse
import time

import torch

from dinno_core.algorithms import DinnoConfig, Inbox, LearningRateSchedule, build_algorithm
from dinno_core.graphs import StaticGraph, cycle_graph
from dinno_core.config import set_up_model
from dinno_core.tasks.mnist import MnistTaskConfig
from dinno_core.team import SimulatedTeam, TeamData, gather_inbox

NUM_ROBOTS = 10
CONFIG = DinnoConfig(rho_init=0.5, rho_scaling=1.0003, primal_steps=2, batch_size=64,
                     lr=LearningRateSchedule(kind="log", start=5e-3, end=5e-4, rounds=2000))


def build(source: str):
    setup = set_up_model(MnistTaskConfig(source=source), NUM_ROBOTS, 0)
    task, flat = setup.task, setup.flat
    theta0 = setup.theta0.repeat(NUM_ROBOTS, 1)
    datasets = task.robot_data(NUM_ROBOTS)
    graph = cycle_graph(NUM_ROBOTS)
    team = SimulatedTeam(build_algorithm(CONFIG, flat, theta0), StaticGraph(graph), TeamData(datasets, 0))
    robots = [(build_algorithm(CONFIG, flat, theta0[i:i + 1]), TeamData([datasets[i]], 0, [i]))
              for i in range(NUM_ROBOTS)]
    return team, robots, graph


def loop_round(robots, graph) -> None:
    inbox = gather_inbox(torch.cat([robot.outgoing() for robot, _ in robots]), graph)
    for i, (robot, data) in enumerate(robots):
        own = Inbox(inbox.payloads[i:i + 1], inbox.mask[i:i + 1], inbox.sender_degrees[i:i + 1])
        robot.step(own, data.sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=60, help="rounds per variant (split into blocks)")
    parser.add_argument("--source", default="auto", help="MNIST source (auto uses the 10k file if found)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    team, robots, graph = build(args.source)
    team.run_round()
    loop_round(robots, graph)  # warm-up
    batched_seconds = loop_seconds = 0.0
    blocks = 6
    per_block = max(args.rounds // blocks, 1)
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(per_block):
            team.run_round()
        batched_seconds += time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(per_block):
            loop_round(robots, graph)
        loop_seconds += time.perf_counter() - start
    rounds = per_block * blocks
    batched, looped = rounds / batched_seconds, rounds / loop_seconds
    print(f"10-robot MNIST DiNNO (B=2, batch 64), torch threads={torch.get_num_threads()}, {rounds} rounds each")
    print(f"  batched team      : {batched:8.1f} rounds/s")
    print(f"  robot-by-robot    : {looped:8.1f} rounds/s")
    print(f"  speed-up (ratio)  : {batched / looped:8.2f}x")


if __name__ == "__main__":
    main()
