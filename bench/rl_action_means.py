"""Where the final policies' action means lie, per algorithm, on predator–prey.

Plays 50 games of 200 steps with each algorithm's final weights (``weights.pt`` of a
``dinno-experiment`` run of ``rl_predator_prey.yaml``) and reports, over every predator and step:
the fraction of action-mean components outside MPE's clipping range [0, 1], the mean of
``|mean|``, the force the mean action asks for (``(right - left, up - down)`` after clipping):
the norm of its average over all states (a policy that pushes one way whatever it sees: up to
1.4) and its spread over states (how much the push depends on what the predator sees), and the
team episode reward of these games. A policy whose means sit far outside
[0, 1] no longer moves under the fixed action noise (std 0.71): its clipped action is constant.

    nice -n 15 .venv/bin/python bench/rl_action_means.py results/rl_predator_prey/weights.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import dinno_core
from dinno_core.config import load_experiment_config, set_up_model
from dinno_core.tasks.predator_prey.ppo import sample_actions
from dinno_core.tasks.predator_prey.world import ACTION_SIZE, mpe_action_to_force

CONFIG = Path(dinno_core.__file__).parent / "configs" / "rl_predator_prey.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--games", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_experiment_config(CONFIG)
    weights = torch.load(args.weights)
    for name, theta in weights.items():
        setup = set_up_model(config.task, config.num_robots, config.seed, getattr(torch, config.dtype))
        task, flat = setup.task, setup.flat
        theta = theta.to(setup.theta0.dtype)
        world = task.make_world(args.games, "action-means")
        generator = torch.Generator().manual_seed(1)
        means, total = [], torch.zeros(args.games)
        with torch.no_grad():
            for _ in range(task.config.episode_length):
                outputs = task.act(lambda x: flat.forward(theta, x), world.observations)
                mean = outputs[..., :ACTION_SIZE]
                means.append(mean)
                actions, _ = sample_actions(mean, generator)
                _, rewards, _ = world.step(actions)
                total += rewards.sum(dim=1)
        stacked = torch.stack(means)
        outside = ((stacked < 0) | (stacked > 1)).double().mean()
        far = ((stacked < -1) | (stacked > 2)).double().mean()
        force = mpe_action_to_force(stacked)  # the mean action's force [T, E, P, 2], in [-1, 1]
        spread = float(force.reshape(-1, 2).std(dim=0).norm())
        steady = float(force.reshape(-1, 2).mean(dim=0).norm())
        print(f"{name:16s} team reward {float(total.mean()):8.1f}  means outside [0,1] {float(outside):.2f}  "
              f"outside [-1,2] {float(far):.2f}  mean |mean| {float(stacked.abs().mean()):.2f}  "
              f"force: mean over states {steady:.2f}, spread over states {spread:.2f}")


if __name__ == "__main__":
    main()
