"""The predator–prey RL task: its parts (prey, actions, returns, PPO loss), PPO learning on one
robot, DiNNO's consensus on policies, and an end-to-end experiment with its plot and animation.

Every run here is seeded and single-threaded, so it replays exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from dinno_core.config import ExperimentConfig, validate
from dinno_core.experiment import initial_weights, main, run_algorithm
from dinno_core.tasks.predator_prey.ppo import (
    ACTION_VARIANCE,
    PpoTargets,
    discounted_returns,
    gaussian_log_prob,
    ppo_loss,
)
from dinno_core.tasks.predator_prey.world import flee_nearest, mpe_action_to_force

pytest.importorskip("vmas")

ADAM = {"name": "adam", "persistent_state": True}
SMALL_GAME = {"name": "predator_prey", "num_envs": 64, "steps_per_round": 10, "episode_length": 50}


def small_config(num_robots: int, rounds: int, algorithms: dict, eval_every: int = 5,
                 game: dict | None = None) -> ExperimentConfig:
    return validate(ExperimentConfig, {
        "name": "predator_prey_small", "seed": 1, "rounds": rounds, "eval_every": eval_every, "torch_threads": 1,
        "task": {**SMALL_GAME, **(game or {})}, "graph": {"kind": "complete", "num_robots": num_robots},
        "algorithms": algorithms,
    }, "test")


# ----------------------------------------------------------------------------- parts


def test_prey_runs_from_the_nearest_predator_and_never_into_a_wall():
    prey = torch.tensor([[0.0, 0.0], [0.95, 0.0]])
    predators = torch.tensor([[[0.5, 0.1], [-0.2, 0.0], [0.0, 0.9]], [[0.7, 0.0], [0.0, 0.5], [0.0, -0.8]]])
    force = flee_nearest(prey, predators, bound=1.0, margin=0.1)
    torch.testing.assert_close(force[0], torch.tensor([1.0, 0.0]))  # nearest is (-0.2, 0): run +x
    torch.testing.assert_close(force[1], torch.tensor([0.0, 0.0]))  # would run +x into the wall at x = 1


def test_mpe_actions_become_forces_like_mpe():
    action = torch.tensor([[0.3, 1.0, 0.2, -0.5, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(mpe_action_to_force(action), torch.tensor([[0.8, -1.0], [0.0, 0.0]]))


def test_returns_with_lambda_one_are_the_rewards_to_go_and_stop_at_episode_ends():
    rewards = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    values = torch.tensor([[0.5], [0.5], [0.5], [0.5]])
    ends = torch.tensor([[False], [True], [False], [False]])
    advantages, returns = discounted_returns(rewards, values, torch.tensor([10.0]), ends, gamma=0.5, lam=1.0)
    # episode 1 ends after step 1: 1 + 0.5*2, 2; episode 2 is cut by the round: bootstrapped with 10
    torch.testing.assert_close(returns[:, 0], torch.tensor([2.0, 2.0, 3 + 0.5 * (4 + 0.5 * 10), 4 + 0.5 * 10]))
    torch.testing.assert_close(advantages, returns - values)


def test_ppo_loss_is_the_clipped_surrogate_plus_the_value_error():
    means = torch.zeros(2, 5)
    actions = torch.full((2, 5), 0.1)
    old = gaussian_log_prob(actions, means) - torch.tensor([0.0, 1.0])  # ratios 1 and e (clipped to 1.2)
    targets = PpoTargets.pack(actions, old, torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0]))
    outputs = torch.cat((means, torch.zeros(2, 1)), dim=1)
    expected = -(1.0 + 1.2) / 2 + 4.0
    torch.testing.assert_close(ppo_loss(outputs, targets, clip=0.2), torch.tensor(expected))
    assert ACTION_VARIANCE == 0.5


def test_robot_count_must_match_the_predators():
    config = small_config(3, 1, {"individual": {"kind": "individual"}})
    task, _, _ = initial_weights(config, torch.float32)
    with pytest.raises(ValueError, match="3 predators"):
        task.robot_data(2)


# ----------------------------------------------------------------------------- learning


def test_ppo_on_one_robot_improves_its_reward(restore_torch_threads):
    """One predator and its own PPO (one robot training alone) learns to close in on the prey."""
    game = {"num_envs": 256, "steps_per_round": 8, "episode_length": 25}
    config = small_config(1, rounds=24, eval_every=4, game=game,
                          algorithms={"individual": {"kind": "individual", "steps_per_round": 5, "batch_size": 0,
                                                     "optimizer": ADAM, "lr": {"kind": "constant", "start": 0.003}}})
    _, _, theta0 = initial_weights(config, torch.float32)
    curves, final, _, _ = run_algorithm(config, "individual", config.algorithms["individual"], theta0)
    reward = curves.metrics["predator_reward"]  # -0.1 x distance to the prey per step, +10 per catch
    assert len(reward) == 6
    early, late = sum(reward[:2]) / 2, sum(reward[-2:]) / 2
    assert late > early + 0.4, reward  # measured: about -4.1 -> -3.2
    assert final["rejected_updates"] == 0


def test_dinno_robots_end_closer_to_each_other_than_individual_robots(restore_torch_threads):
    common = {"batch_size": 0, "lr": {"kind": "constant", "start": 0.0003}}
    config = small_config(3, rounds=8, eval_every=8, algorithms={
        "dinno": {"kind": "dinno", "rho_init": 1.0, "primal_steps": 5, "optimizer": {"name": "adam"}, **common},
        "individual": {"kind": "individual", "steps_per_round": 5, "optimizer": ADAM, **common},
    })
    _, _, theta0 = initial_weights(config, torch.float32)
    finals = {name: run_algorithm(config, name, algorithm, theta0)[1] for name, algorithm in config.algorithms.items()}
    assert finals["dinno"]["consensus_error"] < 0.5 * finals["individual"]["consensus_error"], finals
    assert finals["dinno"]["action_disagreement"] < 0.5 * finals["individual"]["action_disagreement"], finals
    assert finals["individual"]["consensus_error"] > 0.0


# ----------------------------------------------------------------------------- experiment


def test_experiment_writes_reward_curves_against_environment_steps_and_the_animation(tmp_path,
                                                                                   restore_torch_threads):
    data = {
        "name": "predator_prey_e2e", "seed": 0, "rounds": 2, "eval_every": 1, "torch_threads": 1,
        "task": {**SMALL_GAME, "episode_length": 20, "animation_stride": 4},
        "graph": {"kind": "complete", "num_robots": 3},
        "algorithms": {
            "dinno": {"kind": "dinno", "rho_init": 1.0, "primal_steps": 2, "batch_size": 0},
            "dsgt": {"kind": "dsgt", "batch_size": 0, "lr": {"kind": "constant", "start": 0.001}},
            "centralized": {"kind": "centralized", "steps_per_round": 2, "batch_size": 0},
            "individual": {"kind": "individual", "steps_per_round": 2, "batch_size": 256},
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["headline_metric"] == "episode_reward"
    assert results["curve_x"] == "environment_steps"
    for name, algorithm in results["algorithms"].items():
        assert algorithm["curves"]["environment_steps"] == [640.0, 1280.0], name
        assert len(algorithm["curves"]["episode_reward"]) == 2
        for key in ("episode_reward", "predator_reward", "captures", "action_disagreement", "consensus_error"):
            assert key in algorithm["final"], (name, key)
    assert results["algorithms"]["centralized"]["final"]["action_disagreement"] == 0.0
    assert (out / "episode_reward.png").stat().st_size > 0
    from PIL import Image

    with Image.open(out / "episode.gif") as gif:
        assert gif.n_frames == 20 // 4 + 1
        assert gif.size[0] > gif.size[1]  # two games side by side
    assert str(out / "episode.gif") in results["figures"]
