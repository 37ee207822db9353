"""How the simulated team's round grows with the team: MNIST DiNNO at N = 10, 30, 100 robots.

The paper's MNIST setting (the CNN, B = 2 Adam steps of batch 64, cycle graph). Every team
size and both batched formulations of the CNN (``FlatModel``'s default, grouped convolutions
and batched matrix products, against ``torch.func.vmap``) run in ONE process, round-robin in
short blocks, so machine load hits all of them alike; the median block is reported. Beside
each, the same arithmetic as ONE model: a plain forward+backward of the N·64 images with a
single weight set, twice (B = 2), which no per-robot formulation can beat.

Memory per robot is measured in child processes (peak RSS after a few rounds, N = 10 and
N = 100, a straight line through both), plus the bytes of per-robot state the team keeps.

    .venv/bin/python bench/bench_team_scaling.py [--sizes 10 30 100] [--blocks 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from dinno_core.algorithms import DinnoConfig, LearningRateSchedule, build_algorithm
from dinno_core.graphs import StaticGraph, cycle_graph
from dinno_core.params import FlatModel
from dinno_core.tasks.mnist import MnistTaskConfig, build_task
from dinno_core.team import SimulatedTeam, TeamData

CONFIG = DinnoConfig(rho_init=0.5, rho_scaling=1.0003, primal_steps=2, batch_size=64,
                     lr=LearningRateSchedule(kind="log", start=5e-3, end=5e-4, rounds=2000))


def build_team(task, num_robots: int, formulation: str) -> SimulatedTeam:
    torch.manual_seed(0)
    flat = FlatModel(task.build_model(), task.loss, formulation=formulation)
    theta0 = flat.initial_weights().repeat(num_robots, 1)
    return SimulatedTeam(build_algorithm(CONFIG, flat, theta0), StaticGraph(cycle_graph(num_robots)),
                         TeamData(task.robot_data(num_robots), 0))


class FusedReference:
    """The round's arithmetic for one shared weight set: B plain forward+backward passes of N·64 images."""

    def __init__(self, task, num_robots: int) -> None:
        torch.manual_seed(0)
        self.model = task.build_model()
        self.loss = task.loss
        generator = torch.Generator().manual_seed(0)
        self.inputs, self.targets = task.pooled_data().sample(num_robots * CONFIG.batch_size, generator)

    def run_round(self) -> None:
        for _ in range(CONFIG.primal_steps):
            loss = self.loss(self.model(self.inputs), self.targets)
            torch.autograd.grad(loss, list(self.model.parameters()))


def time_block(runner, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        runner.run_round()
    return (time.perf_counter() - start) / rounds


def state_bytes_per_robot(team: SimulatedTeam) -> int:
    """Bytes of per-robot tensors the team keeps between rounds (weights, dual, optimizer moments)."""
    algorithm = team.algorithm
    tensors = [algorithm.theta, algorithm.dual]
    optimizer = getattr(algorithm.solver, "optimizer", None)
    if optimizer is not None:
        tensors += [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
    total = sum(t.numel() * t.element_size() for t in tensors if t.ndim >= 1 and t.shape[0] == algorithm.num_robots)
    return total // algorithm.num_robots


def child_peak_rss(num_robots: int, source: str, threads: int) -> dict:
    """Peak RSS (bytes) of a fresh process after loading the data, and after 3 rounds of an N-robot team."""
    code = (
        "import json, resource, sys, torch\n"
        f"torch.set_num_threads({threads})\n"
        "sys.path.insert(0, 'bench')\n"
        "import bench_team_scaling as b\n"
        f"task = b.build_task(b.MnistTaskConfig(source={source!r}), {num_robots}, 0)\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        f"team = b.build_team(task, {num_robots}, 'auto')\n"
        "[team.run_round() for _ in range(3)]\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps({'base': base, 'peak': peak, 'state': b.state_bytes_per_robot(team)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 30, 100])
    parser.add_argument("--blocks", type=int, default=7, help="round-robin blocks (the median is reported)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per block")
    parser.add_argument("--source", default="auto", help="MNIST source (auto uses the 10k file if found)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true", help="skip the child processes measuring RSS")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base_task = build_task(MnistTaskConfig(source=args.source), 10, 0)
    runners: dict[tuple[int, str], object] = {}
    for n in args.sizes:
        task = build_task(MnistTaskConfig(source=args.source), n, 0) if n != 10 else base_task
        runners[(n, "auto")] = build_team(task, n, "auto")
        runners[(n, "vmap")] = build_team(task, n, "vmap")
        runners[(n, "fused")] = FusedReference(task, n)
    for runner in runners.values():
        runner.run_round()  # warm-up
    times: dict[tuple[int, str], list[float]] = {key: [] for key in runners}
    for _ in range(args.blocks):
        for key, runner in runners.items():
            times[key].append(time_block(runner, args.rounds))
    ms = {key: 1e3 * statistics.median(values) for key, values in times.items()}
    smallest = args.sizes[0]
    print(f"MNIST DiNNO round (B={CONFIG.primal_steps}, batch {CONFIG.batch_size}, cycle graph), "
          f"torch threads={torch.get_num_threads()}, median of {args.blocks} blocks x {args.rounds} rounds, "
          "all in one process")
    print(f"{'N':>4} | {'batched ms':>10} {'x N=' + str(smallest):>8} {'/ fused':>8} | "
          f"{'vmap ms':>8} {'x N=' + str(smallest):>8} {'/ fused':>8} | {'fused ms':>8} | {'vmap/batched':>12}")
    for n in args.sizes:
        auto, vm, fused = ms[(n, "auto")], ms[(n, "vmap")], ms[(n, "fused")]
        print(f"{n:>4} | {auto:>10.1f} {auto / ms[(smallest, 'auto')]:>8.2f} {auto / fused:>8.2f} | "
              f"{vm:>8.1f} {vm / ms[(smallest, 'vmap')]:>8.2f} {vm / fused:>8.2f} | {fused:>8.1f} | {vm / auto:>12.2f}")
    if args.no_memory or len(args.sizes) < 2:
        return
    low, high = args.sizes[0], args.sizes[-1]
    small, large = child_peak_rss(low, args.source, args.threads), child_peak_rss(high, args.source, args.threads)
    slope = ((large["peak"] - large["base"]) - (small["peak"] - small["base"])) / (high - low)
    print(f"memory: peak RSS growth per robot (N={low} -> N={high}, child processes): {slope / 2**20:.2f} MiB; "
          f"state kept per robot (weights, dual, Adam moments): {large['state'] / 2**10:.0f} KiB; "
          f"peak RSS of the N={high} team {large['peak'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
