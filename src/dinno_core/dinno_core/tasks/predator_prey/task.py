"""Multi-robot reinforcement learning, predator–prey (DiNNO's third experiment), as a
:class:`~dinno_core.tasks.base.Task`.

Three predators (the robots) chase one scripted prey in VMAS's ``simple_tag`` arena with
obstacles. Every round, before the algorithms step, :meth:`PredatorPreyTask.advance` plays
``steps_per_round`` steps in each of ``num_envs`` games at once with the robots' CURRENT policies
(predator ``i`` acts with robot ``i``'s policy; a single centralized policy acts for all three),
and turns each predator's own observations, actions and rewards into its robot's PPO batch
(``num_envs × steps_per_round`` steps). The algorithms then take their steps on the PPO loss
(:func:`~dinno_core.tasks.predator_prey.ppo.ppo_loss`) exactly as on any other task: DiNNO's
``primal_steps`` are the PPO epochs, each a full-batch step (``batch_size: 0``).

Games run on across rounds (a round is a slice of every game, bootstrapped with the critic at its
end) and start at staggered points of their 200-step episodes, so every round's batch covers all
phases of an episode, like the reference's batch of whole episodes.

Metrics (each ``[R]``):

``episode_reward``
    mean TEAM episode reward (the sum over the predators of their rewards over one episode, as
    the reference logs it) of the full episodes that ended in the last ``episode_length /
    steps_per_round`` rounds; the same for every robot, since they play together. Until the
    first full episodes end it is ``episode_length`` × the last round's mean team reward per step.
``predator_reward``
    the robot's own predator's episode reward, same episodes (centralized: mean over predators).
``captures``
    predator–prey contacts per episode (team), same episodes.
``action_disagreement``
    how far the robot's policy is from the team's average policy: RMS over a fixed set of
    observations of ``|mean action_i - mean_j mean action_j|`` (0 for one policy).
"""

from __future__ import annotations

import hashlib
from collections import deque
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator
from torch import Tensor, nn

from dinno_core.tasks.base import Forward, Task
from dinno_core.tasks.predator_prey.ppo import (
    ActorCritic,
    PpoTargets,
    discounted_returns,
    ppo_loss,
    sample_actions,
)
from dinno_core.tasks.predator_prey.world import ACTION_SIZE, PredatorPreyWorld, WorldSpec

__all__ = ["PredatorPreyTask", "PredatorPreyTaskConfig", "RolloutData", "build_task"]

PROBE_OBSERVATIONS = 1024
"""Observations kept from the first rollout to measure how far the robots' policies disagree."""


class PredatorPreyTaskConfig(BaseModel):
    """The predator–prey game and the PPO settings that are part of the loss."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["predator_prey"] = "predator_prey"
    num_obstacles: int = Field(2, ge=0)
    observe_obstacles: bool = False
    """False (the paper's 12 inputs): obstacles block the way but are not in the observation."""
    shared_reward: bool = False
    """False: each predator gets its own rewards (+10 per contact with the prey, -0.1 x its
    distance to the prey); True: every predator gets the sum of all predators' rewards."""
    mpe_physics: bool = True
    """True: the original MPE's physics step (one 0.1 s step, contact force 100), as the paper's
    reference ran; False: VMAS's simple_tag tuning (10 substeps, contact force 500, 5x the cost)."""
    arena_bound: float = Field(1.0, gt=0.0)
    prey_wall_margin: float = Field(0.1, ge=0.0)
    episode_length: PositiveInt = 200
    num_envs: PositiveInt = 100
    """Games played at once (one VMAS call steps all of them)."""
    steps_per_round: PositiveInt = 20
    """Steps of every game per round: each robot's batch is ``num_envs × steps_per_round`` steps."""
    gamma: float = Field(0.99, gt=0.0, le=1.0)
    gae_lambda: float = Field(0.95, ge=0.0, le=1.0)
    """1.0: the reference's rewards-to-go (bootstrapped only where a round cuts an episode)."""
    clip: float = Field(0.2, gt=0.0, lt=1.0)
    hidden_widths: tuple[PositiveInt, ...] = (64, 64, 64)
    animation_algorithms: tuple[str, ...] = ("dinno", "individual")
    """Algorithms whose final policies play side by side in ``episode.gif`` (missing ones are skipped)."""
    animation_stride: PositiveInt = 2
    """Draw every k-th step of the animated episode."""

    @model_validator(mode="after")
    def _check(self) -> PredatorPreyTaskConfig:
        if self.prey_wall_margin >= self.arena_bound:
            raise ValueError(f"prey_wall_margin ({self.prey_wall_margin}) must be < arena_bound ({self.arena_bound})")
        if not self.hidden_widths:
            raise ValueError("hidden_widths needs at least one layer")
        return self


class RolloutData:
    """One robot's (or the pooled) PPO batch of the latest round: observations ``[B, obs]`` and
    targets ``[B, 8]`` (action, log-probability, advantage, return). Replaced every round.

    ``sample(batch_size <= 0)`` is the whole batch (one PPO epoch = one full-batch step, as in the
    reference); a positive size draws a minibatch with replacement.
    """

    def __init__(self) -> None:
        self.inputs: Tensor | None = None
        self.targets: Tensor | None = None

    def replace(self, inputs: Tensor, targets: Tensor) -> None:
        self.inputs, self.targets = inputs, targets

    def __len__(self) -> int:
        return 0 if self.inputs is None else len(self.inputs)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.inputs is None or self.targets is None:
            raise RuntimeError("no rollout yet: the task collects one in advance(round, forward)")
        if batch_size <= 0:
            return self.inputs, self.targets
        index = torch.randint(len(self.inputs), (batch_size,), generator=generator)
        return self.inputs[index], self.targets[index]


def _seed_for(seed: int, purpose: str) -> int:
    digest = hashlib.sha256(f"dinno-predator-prey:{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class PredatorPreyTask(Task):
    name = "predator_prey"
    headline_metric = "episode_reward"

    def __init__(self, config: PredatorPreyTaskConfig, num_robots: int, seed: int) -> None:
        self.config = config
        self.num_predators = num_robots
        self.seed = seed
        self.spec = WorldSpec(num_predators=num_robots, num_obstacles=config.num_obstacles,
                              bound=config.arena_bound, shared_reward=config.shared_reward,
                              observe_obstacles=config.observe_obstacles,
                              prey_wall_margin=config.prey_wall_margin, mpe_physics=config.mpe_physics)
        self.environment_steps_per_round = config.num_envs * config.steps_per_round
        self.robot_rollouts = [RolloutData() for _ in range(num_robots)]
        self.pooled_rollout = RolloutData()
        self.world: PredatorPreyWorld | None = None
        self.generator = torch.Generator().manual_seed(_seed_for(seed, "actions"))
        self.probe: Tensor | None = None
        window = max(1, -(-config.episode_length // config.steps_per_round))
        self._finished: deque[tuple[int, Tensor, Tensor]] = deque()
        """(round, predator returns [P], captures) of every full episode that ended in the last ``window`` rounds."""
        self._window = window
        self._last_step_reward: Tensor | None = None
        self._last_step_captures = 0.0
        self._rounds_collected = 0

    # ------------------------------------------------------------------ Task interface

    def build_model(self) -> nn.Module:
        return ActorCritic(self.spec.observation_size, self.config.hidden_widths)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return ppo_loss(outputs, targets, self.config.clip)

    def robot_data(self, num_robots: int) -> list[RolloutData]:
        if num_robots != self.num_predators:
            raise ValueError(f"the task has {self.num_predators} predators, asked for {num_robots} robots")
        return self.robot_rollouts

    def pooled_data(self) -> RolloutData:
        return self.pooled_rollout

    def advance(self, round_index: int, forward: Forward | None = None) -> None:
        """Play one round of every game with the robots' current policies and refill the batches.
        Without ``forward`` (replaying the task for figures) nothing is played."""
        if forward is None:
            return
        with torch.no_grad():
            self._collect(forward)

    @torch.no_grad()
    def evaluate(self, forward: Forward) -> dict[str, Tensor]:
        robots = self._robots_of(forward)
        if self._finished:
            returns = torch.stack([r for _, r, _ in self._finished])  # [episodes, P]
            captures = torch.tensor([c for _, _, c in self._finished], dtype=torch.float32)
            team = returns.sum(dim=1).mean()
            own = returns.mean(dim=0)
            caught = captures.mean()
        else:  # no full episode yet: the per-step rate of the last round
            step = self._last_step_reward if self._last_step_reward is not None else torch.zeros(self.num_predators)
            own = step * self.config.episode_length
            team, caught = own.sum(), torch.tensor(self._last_step_captures * self.config.episode_length)
        predator = own if robots == self.num_predators else own.mean().reshape(1)
        means = forward(self._probe())[..., :ACTION_SIZE]  # [R, V, 5]
        deviation = (means - means.mean(dim=0, keepdim=True)).pow(2).sum(dim=-1).mean(dim=-1).sqrt()
        return {
            "episode_reward": team.repeat(robots).float(),
            "predator_reward": predator.float(),
            "captures": caught.repeat(robots).float(),
            "action_disagreement": deviation.float(),
        }

    def save_figures(self, weights: dict[str, Tensor], flat: object, out_dir: Path) -> list[Path]:
        """``episode.gif``: one episode played by each of ``animation_algorithms``' final policies."""
        from dinno_core.tasks.predator_prey.animation import save_episode_gif

        chosen = {name: weights[name] for name in self.config.animation_algorithms if name in weights}
        if not chosen:
            return []
        return [save_episode_gif(self, chosen, flat, out_dir / "episode.gif")]

    # ------------------------------------------------------------------ rollouts

    def make_world(self, num_envs: int, purpose: str) -> PredatorPreyWorld:
        return PredatorPreyWorld(self.spec, num_envs, _seed_for(self.seed, purpose))

    def _robots_of(self, forward: Forward) -> int:
        return forward(torch.zeros(1, self.spec.observation_size)).shape[0]

    def act(self, forward: Forward, observations: Tensor) -> Tensor:
        """Each predator's output ``[E, P, 6]`` from its own robot's model (one model: all predators)."""
        num_envs, predators, size = observations.shape
        outputs = forward(observations.reshape(num_envs * predators, size))  # [R, E*P, 6]
        outputs = outputs.view(outputs.shape[0], num_envs, predators, -1)
        if outputs.shape[0] == 1:
            return outputs[0]
        if outputs.shape[0] != predators:
            raise ValueError(f"{outputs.shape[0]} policies for {predators} predators")
        return torch.diagonal(outputs, dim1=0, dim2=2).permute(0, 2, 1)  # predator p uses robot p

    def _start(self) -> None:
        config = self.config
        self.world = self.make_world(config.num_envs, "training")
        # Stagger the games: game e starts at step e * L / E of its first episode (that partial
        # episode is not counted), so every round sees every phase of an episode.
        self.episode_step = (torch.arange(config.num_envs) * config.episode_length) // config.num_envs
        self.fresh = torch.zeros(config.num_envs, dtype=torch.bool)
        self.episode_returns = torch.zeros(config.num_envs, self.num_predators)
        self.episode_captures = torch.zeros(config.num_envs)

    def _collect(self, forward: Forward) -> None:
        if self.world is None:
            self._start()
        assert self.world is not None
        config, world = self.config, self.world
        steps, envs, predators = config.steps_per_round, config.num_envs, self.num_predators
        observations = torch.zeros(steps, envs, predators, self.spec.observation_size)
        actions = torch.zeros(steps, envs, predators, ACTION_SIZE)
        log_probs = torch.zeros(steps, envs, predators)
        values = torch.zeros(steps, envs, predators)
        rewards = torch.zeros(steps, envs, predators)
        captures = torch.zeros(steps, envs)
        ends = torch.zeros(steps, envs, dtype=torch.bool)
        for t in range(steps):
            observations[t] = world.observations
            outputs = self.act(forward, world.observations).float()
            actions[t], log_probs[t] = sample_actions(outputs[..., :ACTION_SIZE], self.generator)
            values[t] = outputs[..., ACTION_SIZE]
            _, rewards[t], captured = world.step(actions[t])
            captures[t] = captured.sum(dim=1)
            self.episode_returns += rewards[t]
            self.episode_captures += captures[t]
            self.episode_step += 1
            ends[t] = self.episode_step >= config.episode_length
            if ends[t].any():
                self._finish_episodes(ends[t])
                world.reset_envs(ends[t])
        last_values = self.act(forward, world.observations).float()[..., ACTION_SIZE]
        advantages, returns = discounted_returns(rewards, values, last_values, ends[..., None].expand_as(rewards),
                                                 config.gamma, config.gae_lambda)
        mean = advantages.mean(dim=(0, 1), keepdim=True)
        std = advantages.std(dim=(0, 1), keepdim=True)
        advantages = (advantages - mean) / (std + 1e-8)  # per predator, as the reference
        targets = PpoTargets.pack(actions, log_probs, advantages, returns)  # [T, E, P, 8]
        per_robot_inputs = observations.permute(2, 0, 1, 3).reshape(predators, steps * envs, -1)
        per_robot_targets = targets.permute(2, 0, 1, 3).reshape(predators, steps * envs, -1)
        for rollout, inputs, target in zip(self.robot_rollouts, per_robot_inputs, per_robot_targets):
            rollout.replace(inputs, target)
        self.pooled_rollout.replace(per_robot_inputs.reshape(-1, per_robot_inputs.shape[-1]),
                                    per_robot_targets.reshape(-1, per_robot_targets.shape[-1]))
        if self.probe is None:
            generator = torch.Generator().manual_seed(_seed_for(self.seed, "probe"))
            pool = per_robot_inputs.reshape(-1, per_robot_inputs.shape[-1])
            self.probe = pool[torch.randperm(len(pool), generator=generator)[:PROBE_OBSERVATIONS]].clone()
        self._last_step_reward = rewards.mean(dim=(0, 1))
        self._last_step_captures = float(captures.mean())
        self._rounds_collected += 1
        while self._finished and self._finished[0][0] <= self._rounds_collected - self._window:
            self._finished.popleft()

    def _finish_episodes(self, ended: Tensor) -> None:
        for index in (ended & self.fresh).nonzero().flatten().tolist():
            self._finished.append((self._rounds_collected, self.episode_returns[index].clone(),
                                   float(self.episode_captures[index])))
        self.fresh |= ended
        self.episode_returns[ended] = 0.0
        self.episode_captures[ended] = 0.0
        self.episode_step[ended] = 0

    def _probe(self) -> Tensor:
        if self.probe is not None:
            return self.probe
        generator = torch.Generator().manual_seed(_seed_for(self.seed, "probe"))
        return torch.randn(PROBE_OBSERVATIONS, self.spec.observation_size, generator=generator)


def build_task(config: PredatorPreyTaskConfig, num_robots: int, seed: int) -> PredatorPreyTask:
    return PredatorPreyTask(config, num_robots, seed)
