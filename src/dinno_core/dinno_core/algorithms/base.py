"""What every algorithm shares: the inbox of neighbour payloads, round statistics, and the
batched inner optimizer loop.

Every tensor keeps a leading robot axis ``R``: the simulated team steps all ``N`` robots at
once (``R = N``), a ROS node steps itself (``R = 1``). Both call the same methods.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from dinno_core.algorithms.config import OptimizerConfig
from dinno_core.algorithms.dual_ledger import Acknowledgements
from dinno_core.params import FlatModel

SampleFn = Callable[[int], tuple[Tensor, Tensor]]
"""``sample(batch_size) -> (inputs [R, B, ...], targets [R, B, ...])``, one batch per robot."""


@dataclass
class Inbox:
    """The payloads each robot received from its neighbours this round.

    ``payloads[r, k]`` is the ``k``-th neighbour's message to robot ``r`` (``m`` vectors of
    ``n`` values); ``mask[r, k]`` says whether it is present. An absent neighbour (padding,
    a dropped link, a message that missed the deadline) contributes nothing: that is exactly
    a time-varying graph. ``sender_degrees[r, k]`` is that neighbour's degree this round,
    used for Metropolis weights.

    ``senders[r, k]`` (optional) is the team index of slot ``k``'s sender and ``acks`` what the
    senders acknowledged (see :mod:`dinno_core.algorithms.dual_ledger`); with both, DiNNO keeps
    its edge duals equal and opposite under one-sided loss. Without them it is the paper's rule.
    ``sender_rho`` (optional) carries each sender's penalty for the round (DiNNO with an adaptive ρ).
    """

    payloads: Tensor
    mask: Tensor
    sender_degrees: Tensor
    senders: Tensor | None = field(default=None)
    acks: Acknowledgements | None = field(default=None)
    own_sent: Tensor | None = field(default=None)
    """``[R, m, n]``: each robot's own payload as its neighbours received it (after the wire's
    encoding, e.g. 8-bit); None: exactly its weights. DiNNO uses it on its side of every edge so
    both ends see the same numbers and quantization cannot move the duals' sum."""
    sender_rho: Tensor | None = field(default=None)
    """``[R, K]``: each sender's DiNNO penalty for this round (what it will use on the edge), so
    both ends of an edge can use the same ``rho_ij``; None where senders do not say."""

    @classmethod
    def empty(cls, num_robots: int, payload_vectors: int, num_params: int, dtype: torch.dtype,
              device: torch.device | str = "cpu") -> Inbox:
        """No neighbours at all: every robot trains locally this round."""
        return cls(
            payloads=torch.zeros(num_robots, 0, payload_vectors, num_params, dtype=dtype, device=device),
            mask=torch.zeros(num_robots, 0, dtype=torch.bool, device=device),
            sender_degrees=torch.zeros(num_robots, 0, dtype=dtype, device=device),
        )

    @property
    def degree(self) -> Tensor:
        """Number of neighbours heard by each robot this round, ``[R]``."""
        return self.mask.sum(dim=1).to(self.payloads.dtype)

    def masked(self, vector: int) -> Tensor:
        """Payload vector ``vector`` of every neighbour, zero where absent: ``[R, K, n]``."""
        return torch.where(self.mask[..., None], self.payloads[:, :, vector], 0.0)

    def neighbour_sum(self, vector: int = 0) -> Tensor:
        """Sum over present neighbours of payload vector ``vector``: ``[R, n]``."""
        return self.masked(vector).sum(dim=1)

    def metropolis_weights(self) -> tuple[Tensor, Tensor]:
        """Metropolis–Hastings mixing weights: ``(self_weight [R], neighbour_weight [R, K])``.

        ``W_ij = 1 / (1 + max(d_i, d_j))`` over present neighbours, ``W_ii = 1 - sum_j W_ij``.
        """
        own = self.degree[:, None]
        weights = torch.where(self.mask, 1.0 / (1.0 + torch.maximum(own, self.sender_degrees)), 0.0)
        return 1.0 - weights.sum(dim=1), weights

    def mix(self, own: Tensor, vector: int = 0) -> Tensor:
        """``W_ii * own + sum_j W_ij * payload_j`` for every robot: ``[R, n]``."""
        self_weight, weights = self.metropolis_weights()
        return self_weight[:, None] * own + (weights[..., None] * self.masked(vector)).sum(dim=1)


@dataclass
class RoundStats:
    """What one round produced, per robot."""

    training_loss: Tensor
    """Mean task loss over the round's minibatches, ``[R]`` (the local loss, not the Lagrangian)."""
    rejected: Tensor
    """Robots whose update produced NaN/Inf and was rolled back, ``[R]`` bool."""


def build_optimizer(config: OptimizerConfig, parameter: nn.Parameter, lr: float) -> torch.optim.Optimizer:
    """An element-wise torch optimizer over the stacked ``[R, n]`` weights.

    Because Adam, AdamW, SGD and RMSprop act element by element, one optimizer over the stacked
    tensor is exactly ``R`` independent per-robot optimizers.
    """
    if config.name == "adam":
        return torch.optim.Adam([parameter], lr=lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW([parameter], lr=lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD([parameter], lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.RMSprop([parameter], lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)


class PrimalSolver:
    """Takes optimizer steps on ``R`` robots' weights at once (the inexact primal step)."""

    def __init__(self, config: OptimizerConfig, parameter: nn.Parameter) -> None:
        self.config = config
        self.parameter = parameter
        self.optimizer: torch.optim.Optimizer | None = None

    def run(self, model: FlatModel, sample: SampleFn, steps: int, batch_size: int, lr: float,
            extra_gradient: Callable[[Tensor], Tensor] | None = None,
            observe: Callable[[Tensor], None] | None = None) -> Tensor:
        """``steps`` optimizer steps; returns the mean task loss per robot ``[R]``. ``observe`` is
        handed every step's task-loss gradients ``[R, n]`` (before ``extra_gradient`` is added)."""
        if self.optimizer is None or not self.config.persistent_state:
            self.optimizer = build_optimizer(self.config, self.parameter, lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = torch.zeros(self.parameter.shape[0], dtype=self.parameter.dtype, device=self.parameter.device)
        for _ in range(steps):
            inputs, targets = sample(batch_size)
            losses, grads = model.loss_and_grad(self.parameter.detach(), inputs, targets)
            if observe is not None:
                observe(grads)
            if extra_gradient is not None:
                grads = grads + extra_gradient(self.parameter.detach())
            self.parameter.grad = grads
            self.optimizer.step()
            total += losses.detach()
        self.parameter.grad = None
        return total / steps

    def reset_rows(self, rows: Tensor) -> None:
        """Zero the optimizer state (moments, buffers) of the robots in ``rows``."""
        if self.optimizer is None:
            return
        for value in self.optimizer.state.get(self.parameter, {}).values():
            if isinstance(value, Tensor) and value.ndim == 2 and value.shape[0] == rows.shape[0]:
                value[rows] = 0.0

    def state_dict(self) -> dict[str, Any] | None:
        if self.optimizer is None or not self.config.persistent_state:
            return None
        return copy.deepcopy(self.optimizer.state_dict())

    def load_state_dict(self, state: dict[str, Any] | None, lr: float) -> None:
        if state is None:
            self.optimizer = None
            return
        self.optimizer = build_optimizer(self.config, self.parameter, lr)
        self.optimizer.load_state_dict(state)


class DistributedAlgorithm(ABC):
    """One round-based distributed training algorithm for ``R`` robots.

    A round is: ``outgoing()`` is sent to the neighbours, the neighbours' payloads are
    collected into an :class:`Inbox`, then ``step(inbox, sample)`` updates every robot.
    """

    payload_vectors: int = 1
    """How many weight-sized vectors a robot sends per round (DSGT sends two)."""
    payload_starts_with_weights: bool = True
    """Whether the first vector sent is the weights themselves (a late robot may start from its
    neighbours' mean of it); DSGT sends ``x - alpha y`` instead."""

    def __init__(self, model: FlatModel, theta: Tensor) -> None:
        if theta.ndim != 2 or theta.shape[1] != model.spec.numel:
            raise ValueError(f"theta must be [R, {model.spec.numel}], got {tuple(theta.shape)}")
        self.model = model
        self.parameter = nn.Parameter(theta.detach().clone(), requires_grad=False)
        self.round = 0

    @property
    def theta(self) -> Tensor:
        """Current weights of every robot, ``[R, n]``."""
        return self.parameter.detach()

    @property
    def num_robots(self) -> int:
        return self.parameter.shape[0]

    def initialize(self, sample: SampleFn) -> None:  # noqa: B027 - optional hook
        """Work needed before the first ``outgoing()`` (DSGT's first gradient)."""

    def outgoing(self) -> Tensor:
        """What each robot sends its neighbours this round: ``[R, m, n]``."""
        return self.theta[:, None, :]

    def outgoing_penalty(self) -> Tensor | None:
        """The penalty each robot announces with its weights for the coming round, ``[R]``; None
        for algorithms without one."""
        return None

    @abstractmethod
    def _update(self, inbox: Inbox, sample: SampleFn) -> Tensor:
        """Update the state in place; return the per-robot training loss ``[R]``."""

    def _guarded_state(self) -> dict[str, Tensor]:
        """The per-robot tensors that must roll back together if an update goes non-finite."""
        return {"theta": self.parameter.data}

    def step(self, inbox: Inbox, sample: SampleFn) -> RoundStats:
        """Run one round for every robot. Non-finite results are rolled back per robot."""
        before = {name: value.clone() for name, value in self._guarded_state().items()}
        loss = self._update(inbox, sample)
        after = self._guarded_state()
        rejected = torch.zeros(self.num_robots, dtype=torch.bool, device=self.theta.device)
        for value in after.values():
            rejected |= ~torch.isfinite(value.reshape(self.num_robots, -1)).all(dim=1)
        if rejected.any():
            for name, value in after.items():
                value[rejected] = before[name][rejected]
            self._forget_rejected(rejected)
        self.round += 1
        return RoundStats(training_loss=loss, rejected=rejected)

    def _forget_rejected(self, rejected: Tensor) -> None:  # noqa: B027 - optional hook
        """Clear any other state a rolled-back robot's update may have poisoned."""

    def jump_to(self, round_index: int, theta: Tensor | None = None) -> None:
        """Continue from round ``round_index`` (a robot catching up with its team), optionally from
        the weights ``theta [R, n]`` (a warm start from the neighbours). Nothing else changes: the
        dual variables, optimizer moments and schedules carry on from where they are."""
        if round_index < 0:
            raise ValueError(f"round must be >= 0, got {round_index}")
        if theta is not None:
            if tuple(theta.shape) != tuple(self.parameter.shape):
                raise ValueError(f"theta has shape {tuple(theta.shape)}, expected {tuple(self.parameter.shape)}")
            self.parameter.data.copy_(theta)
        self.round = int(round_index)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: weights, round, and algorithm-specific state."""
        return {"theta": self.theta.clone(), "round": self.round}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        theta = state["theta"]
        if tuple(theta.shape) != tuple(self.parameter.shape):
            raise ValueError(f"checkpoint theta has shape {tuple(theta.shape)}, expected {tuple(self.parameter.shape)}")
        self.parameter.data.copy_(theta)
        self.round = int(state["round"])
