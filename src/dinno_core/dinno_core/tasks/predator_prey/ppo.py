"""PPO as a DiNNO task loss: one flat weight vector holds the actor and the critic, the rollout
data are the "targets", and the clipped surrogate plus the value regression is the loss that
every algorithm minimizes (batched over robots with ``vmap`` like any other task).

As in the paper's reference: a Gaussian policy with a fixed covariance (0.5 I) around the actor's
output, advantages ``A = R - V`` normalized per batch, and separate actor/critic losses added
(their parameters are disjoint, so one Adam over both is exactly one Adam for each).
"""

from __future__ import annotations

import math
import torch
from torch import Tensor, nn

from dinno_core.tasks.predator_prey.world import ACTION_SIZE

ACTION_VARIANCE = 0.5
"""The reference's fixed policy covariance ``0.5 I``."""


def mlp(widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """``obs → [action mean (5) | value (1)]``: actor ``obs-64-64-64-5`` and critic ``obs-64-64-64-1``."""

    def __init__(self, observation_size: int, hidden: tuple[int, ...] = (64, 64, 64)) -> None:
        super().__init__()
        self.actor = mlp((observation_size, *hidden, ACTION_SIZE))
        self.critic = mlp((observation_size, *hidden, 1))

    def forward(self, observations: Tensor) -> Tensor:
        return torch.cat((self.actor(observations), self.critic(observations)), dim=-1)


class PpoTargets:
    """Column layout of the target tensor ``[B, 8]`` that travels with each observation."""

    ACTION = slice(0, ACTION_SIZE)
    LOG_PROB = ACTION_SIZE
    ADVANTAGE = ACTION_SIZE + 1
    RETURN = ACTION_SIZE + 2
    WIDTH = ACTION_SIZE + 3

    @staticmethod
    def pack(actions: Tensor, log_probs: Tensor, advantages: Tensor, returns: Tensor) -> Tensor:
        return torch.cat((actions, log_probs[..., None], advantages[..., None], returns[..., None]), dim=-1)


def gaussian_log_prob(actions: Tensor, means: Tensor) -> Tensor:
    """``log N(actions; means, 0.5 I)`` summed over the action components."""
    squared = (actions - means).pow(2).sum(dim=-1)
    return -0.5 * squared / ACTION_VARIANCE - 0.5 * ACTION_SIZE * math.log(2 * math.pi * ACTION_VARIANCE)


def sample_actions(means: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Actions drawn around ``means [..., 5]`` and their log-probabilities."""
    noise = torch.randn(means.shape, generator=generator, dtype=means.dtype, device=means.device)
    actions = means + math.sqrt(ACTION_VARIANCE) * noise
    return actions, gaussian_log_prob(actions, means)


def ppo_loss(outputs: Tensor, targets: Tensor, clip: float) -> Tensor:
    """Clipped-surrogate actor loss plus the critic's mean squared error (vmap-compatible)."""
    means, values = outputs[..., :ACTION_SIZE], outputs[..., ACTION_SIZE]
    log_probs = gaussian_log_prob(targets[..., PpoTargets.ACTION], means)
    ratio = torch.exp(log_probs - targets[..., PpoTargets.LOG_PROB])
    advantage = targets[..., PpoTargets.ADVANTAGE]
    surrogate = torch.minimum(ratio * advantage, ratio.clamp(1.0 - clip, 1.0 + clip) * advantage)
    return -surrogate.mean() + (values - targets[..., PpoTargets.RETURN]).pow(2).mean()


def discounted_returns(rewards: Tensor, values: Tensor, last_values: Tensor, episode_ends: Tensor,
                       gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation over a rollout segment ``[T, ...]``.

    ``episode_ends[t]``: the episode ended after step ``t`` (its time limit is treated as the end,
    as in the reference, so nothing is bootstrapped across it). A segment that stops mid-episode is
    bootstrapped with ``last_values``. ``lam = 1`` gives the reference's rewards-to-go ``R`` and
    ``A = R - V``. Returns ``(advantages, returns)``, both ``[T, ...]``.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_values)
    next_values = last_values
    for t in range(rewards.shape[0] - 1, -1, -1):  # a short loop over time, vectorized over envs and robots
        alive = (~episode_ends[t]).to(rewards.dtype)
        delta = rewards[t] + gamma * next_values * alive - values[t]
        running = delta + gamma * lam * alive * running
        advantages[t] = running
        next_values = values[t]
    return advantages, advantages + values
