"""Why the paper's reference DSGT is ahead of ours early on: the order of mixing, measured.

Runs gradient tracking on an MNIST config (default ``mnist_cycle.yaml``: 10 robots, one digit
each, alpha = 5e-3, batch 64) from the same initial weights, with the same minibatches, in three
variants, and prints the mean test accuracy over robots every ``--eval-every`` rounds:

- ``ours``: :class:`dinno_core.algorithms.Dsgt`, the synchronous recursion of Pu & Nedić
  (adapt-then-combine): ``x+ = W (x - alpha y)``, ``y+ = W y + g(x+) - g(x)``.
- ``synchronous CTA``: ``x+ = W x - alpha y`` (combine-then-adapt, the reference's formula),
  every robot using its neighbours' round-k values.
- ``in-place CTA (reference)``: the reference's loops: robots 0..N-1 update ``x`` one after
  another, robot ``i`` mixing the already-updated ``x_j`` of neighbours ``j < i``; then the same
  for ``y``. Gradients depend only on a robot's own ``x``, so they are computed batched.
- ``ours, step x m^2``: ours with the step the in-place order takes in effect. In-place mixing
  is ``x+ = G x - alpha M y`` with ``M = (I - L)^-1`` (``L`` the part of ``W`` below the
  diagonal) and ``G = M (W - L)`` row-stochastic: the weighted mean (left Perron vector ``pi``
  of ``G``) moves by ``alpha m`` times the trackers with ``m = pi^T M 1``, and the trackers
  themselves settle at ``m`` times a weighted mean gradient, so the step is ``m^2 alpha``.

This is a measurement script, run by hand; the in-place variant is not an algorithm of the
library (a robot cannot read a neighbour's weights of the same round before that neighbour
has sent them).

    .venv/bin/python bench/dsgt_mixing_order.py [--config mnist_cycle.yaml] [--rounds 160]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import networkx as nx
import torch

import dinno_core
from dinno_core.algorithms import Dsgt, DsgtConfig
from dinno_core.config import load_experiment_config, set_up_model
from dinno_core.graphs import StaticGraph, build_graph
from dinno_core.team import SimulatedTeam, TeamData

CONFIGS = Path(dinno_core.__file__).parent / "configs"


def metropolis(graph: nx.Graph) -> torch.Tensor:
    size = graph.number_of_nodes()
    weights = torch.zeros(size, size)
    for i, j in graph.edges:
        weights[i, j] = weights[j, i] = 1.0 / (1 + max(graph.degree(i), graph.degree(j)))
    return weights + torch.diag(1.0 - weights.sum(dim=1))


def mix_in_place(weights: torch.Tensor, values: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``v_i <- sum_j W_ij v_j + offset_i`` for i = 0..N-1 in turn, reading already-updated rows."""
    values = values.clone()
    for i in range(values.shape[0]):
        values[i] = weights[i] @ values + offset[i]
    return values


def in_place_step_multiplier(weights: torch.Tensor) -> float:
    """``m = pi^T (I - L)^-1 1``: how much in-place mixing enlarges each step (see above)."""
    lower = torch.tril(weights.double(), -1)
    inverse = torch.linalg.inv(torch.eye(len(weights), dtype=torch.float64) - lower)
    values, vectors = torch.linalg.eig((inverse @ (weights.double() - lower)).T)
    pi = vectors[:, values.real.argmax()].real
    pi = pi / pi.sum()
    return float(pi @ inverse.sum(dim=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="mnist_cycle.yaml")
    parser.add_argument("--rounds", type=int, default=160)
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default="ours,synchronous CTA,in-place CTA (reference),ours step x m^2",
                        help="comma-separated subset of the variants")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_experiment_config(CONFIGS / args.config)
    dsgt_config = config.algorithms["dsgt"]
    assert isinstance(dsgt_config, DsgtConfig) and dsgt_config.lr.kind == "constant"
    alpha, batch = dsgt_config.lr.start, dsgt_config.batch_size
    setup = set_up_model(config.task, config.num_robots, config.seed)
    task, flat = setup.task, setup.flat
    theta0 = setup.theta0.repeat(config.num_robots, 1)
    graph = build_graph(config.graph).graph_at(0)
    weights = metropolis(graph)

    def accuracy(theta: torch.Tensor) -> float:
        return float(task.evaluate(lambda inputs: flat.forward(theta, inputs))["accuracy"].mean())

    multiplier = in_place_step_multiplier(weights)
    print(f"{args.config}: {config.num_robots} robots, alpha {alpha}, batch {batch}, {args.rounds} rounds, "
          f"in-place step multiplier m = {multiplier:.2f} (m^2 = {multiplier**2:.2f})")
    for variant in args.variants.split(","):
        began = time.perf_counter()
        data = TeamData(task.robot_data(config.num_robots), config.seed)
        curve = []
        if variant.startswith("ours"):
            if variant != "ours":
                dsgt_config = dsgt_config.model_copy(
                    update={"lr": dsgt_config.lr.model_copy(update={"start": alpha * multiplier**2})})
            team = SimulatedTeam(Dsgt(flat, theta0, dsgt_config), StaticGraph(graph), data)
            for k in range(1, args.rounds + 1):
                team.run_round()
                if k % args.eval_every == 0:
                    curve.append((k, accuracy(team.algorithm.theta)))
        else:
            x = theta0.clone()
            _, y = flat.loss_and_grad(x, *data.sample(batch))
            old = y.clone()
            for k in range(1, args.rounds + 1):
                if variant.startswith("in-place"):
                    x = mix_in_place(weights, x, -alpha * y)
                else:
                    x = weights @ x - alpha * y
                _, new = flat.loss_and_grad(x, *data.sample(batch))
                y = mix_in_place(weights, y, new - old) if variant.startswith("in-place") else weights @ y + new - old
                old = new
                if k % args.eval_every == 0:
                    curve.append((k, accuracy(x)))
        seconds = time.perf_counter() - began
        print(f"{variant:>26}: " + ", ".join(f"round {k} {value:.3f}" for k, value in curve) + f"  ({seconds:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
