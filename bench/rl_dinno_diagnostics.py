"""Why DiNNO lags on predator–prey: the forces in its primal step, measured round by round.

Runs one algorithm of ``rl_predator_prey.yaml`` (optionally with overrides) through the
experiment's own ``run_algorithm`` and records, at the first primal step of every round (at
``theta_i^k``), per robot and split into actor and critic weights:

- ``g``: the PPO loss gradient (the task signal);
- ``dual``: ``p_i`` after this round's dual step;
- ``pen``: the penalty gradient at ``theta_i^k``, ``rho * sum_j (theta_i^k - theta_j^k)``;
- ``sign``: the fraction of weights whose first Adam step (Adam re-created every round: the
  first step is ``lr * sign(gradient)``) has the sign of the PPO gradient, i.e. is steered by
  the task rather than by the dual and penalty terms;
- ``cos_ij``: the mean cosine between two robots' PPO gradients (1: the same signal, 0: noise);
- ``cos_gp``: the mean cosine between ``-p_i`` and the robot's PPO gradient this round;
- ``move``: how far the round's primal step moved the weights, ``||theta_i^{k+1} - theta_i^k||``.

The recording wraps ``PrimalSolver.run`` (nothing in the algorithm changes). Example:

    nice -n 15 .venv/bin/python bench/rl_dinno_diagnostics.py dinno --rounds 150 \
        --set task.shared_reward=true --out /tmp/diag_dinno.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml

import dinno_core
from dinno_core.algorithms import base as algorithms_base
from dinno_core.algorithms.proximal import ProximalAdam
from dinno_core.config import ExperimentConfig
from dinno_core.experiment import initial_weights, run_algorithm

CONFIG = Path(dinno_core.__file__).parent / "configs" / "rl_predator_prey.yaml"
RECORD: list[dict[str, float]] = []
ORIGINAL_RUN = algorithms_base.PrimalSolver.run
ORIGINAL_PROXIMAL_RUN = ProximalAdam.run
ACTOR_SIZE = 0


def _norms(values: torch.Tensor) -> tuple[float, float]:
    """Mean over robots of the actor and critic parts' norms."""
    return (float(values[:, :ACTOR_SIZE].norm(dim=1).mean()), float(values[:, ACTOR_SIZE:].norm(dim=1).mean()))


def recording_run(self: Any, model: Any, sample: Any, steps: int, batch_size: int, lr: float,
                  extra_gradient: Any = None) -> torch.Tensor:
    theta = self.parameter.detach()
    if OPTIONS.get("no_dual") and extra_gradient is not None:  # diagnostic: penalty only, p_i = 0
        CURRENT["algorithm"].dual.zero_()
    inputs, targets = sample(batch_size)
    _, grads = model.loss_and_grad(theta, inputs, targets)
    entry: dict[str, float] = {}
    entry["g_actor"], entry["g_critic"] = _norms(grads)
    robots = grads.shape[0]
    if robots > 1:
        unit = torch.nn.functional.normalize(grads[:, :ACTOR_SIZE], dim=1)
        cos = unit @ unit.T
        entry["cos_ij_actor"] = float((cos.sum() - cos.diagonal().sum()) / (robots * (robots - 1)))
    if extra_gradient is not None:
        extra = extra_gradient(theta)
        algorithm = CURRENT["algorithm"]
        dual = algorithm.dual
        penalty = extra - dual
        entry["dual_actor"], entry["dual_critic"] = _norms(dual)
        entry["pen_actor"], entry["pen_critic"] = _norms(penalty)
        total = grads + extra
        same = (torch.sign(total) == torch.sign(grads)).double()
        entry["sign_actor"] = float(same[:, :ACTOR_SIZE].mean())
        entry["sign_critic"] = float(same[:, ACTOR_SIZE:].mean())
        entry["cos_gp_actor"] = float(torch.nn.functional.cosine_similarity(
            grads[:, :ACTOR_SIZE], -dual[:, :ACTOR_SIZE], dim=1).mean())
    start = theta.clone()
    loss = ORIGINAL_RUN(self, model, sample, steps, batch_size, lr, extra_gradient)
    entry["move_actor"], entry["move_critic"] = _norms(self.parameter.detach() - start)
    RECORD.append(entry)
    return loss


def recording_proximal_run(self: Any, model: Any, sample: Any, steps: int, batch_size: int, lr: float,
                           linear: torch.Tensor, curvature: torch.Tensor) -> torch.Tensor:
    """``primal_step: adam_proximal``: the PPO gradient, the dual and the weights' motion."""
    theta = self.parameter.detach()
    _, grads = model.loss_and_grad(theta, *sample(batch_size))
    entry: dict[str, float] = {}
    entry["g_actor"], entry["g_critic"] = _norms(grads)
    entry["dual_actor"], entry["dual_critic"] = _norms(CURRENT["algorithm"].dual)
    start = theta.clone()
    loss = ORIGINAL_PROXIMAL_RUN(self, model, sample, steps, batch_size, lr, linear, curvature)
    entry["move_actor"], entry["move_critic"] = _norms(self.parameter.detach() - start)
    RECORD.append(entry)
    return loss


CURRENT: dict[str, Any] = {}
OPTIONS: dict[str, Any] = {}


def _set(config: dict[str, Any], assignment: str) -> None:
    key, _, value = assignment.partition("=")
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)


def main() -> None:
    global ACTOR_SIZE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("algorithm")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--set", action="append", default=[], help="dotted.key=yaml_value override")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", type=Path, default=None, help="save the final weights here")
    parser.add_argument("--no-dual", action="store_true",
                        help="diagnostic only: zero DiNNO's dual before every primal step (penalty only)")
    args = parser.parse_args()
    OPTIONS["no_dual"] = args.no_dual
    raw = yaml.safe_load(args.config.read_text())
    raw["rounds"] = args.rounds
    for assignment in args.set:
        _set(raw, assignment)
    config = ExperimentConfig.model_validate(raw)
    torch.set_num_threads(config.torch_threads)
    task, flat, theta0 = initial_weights(config, getattr(torch, config.dtype))
    ACTOR_SIZE = sum(size for name, size in zip(flat.spec.names, flat.spec.sizes) if name.startswith("actor."))
    from dinno_core.algorithms import build_algorithm as original_build
    import dinno_core.experiment as experiment

    def capturing_build(*a: Any, **k: Any) -> Any:
        algorithm = original_build(*a, **k)
        CURRENT["algorithm"] = algorithm
        return algorithm

    experiment.build_algorithm = capturing_build
    algorithms_base.PrimalSolver.run = recording_run
    ProximalAdam.run = recording_proximal_run
    rows: list[dict[str, float]] = []

    def report(done: int, values: dict[str, float] | None) -> None:
        if values is None:
            return
        recent = RECORD[-config.eval_every:]
        row = {"round": done, "episode_reward": values["episode_reward"],
               "consensus_error": values["consensus_error"],
               "action_disagreement": values.get("action_disagreement", 0.0)}
        for key in (recent[0] if recent else {}):
            row[key] = sum(r[key] for r in recent) / len(recent)
        rows.append(row)
        print(" ".join(f"{k}={v:.4g}" for k, v in row.items()), flush=True)

    began, cpu = time.perf_counter(), time.process_time()
    curves, final, theta, _ = run_algorithm(config, args.algorithm, config.algorithms[args.algorithm], theta0, report)
    result = {"algorithm": args.algorithm, "overrides": args.set, "no_dual": args.no_dual, "rounds": args.rounds, "rows": rows,
              "final_episode_reward": final["episode_reward"], "wall_s": time.perf_counter() - began,
              "cpu_s": time.process_time() - cpu}
    args.out.write_text(json.dumps(result, indent=1))
    if args.weights is not None:  # for bench/rl_action_means.py
        torch.save({args.algorithm: theta}, args.weights)
    print(f"final episode_reward {final['episode_reward']:.1f}  wall {result['wall_s']:.0f} s  cpu {result['cpu_s']:.0f} s")


if __name__ == "__main__":
    main()
