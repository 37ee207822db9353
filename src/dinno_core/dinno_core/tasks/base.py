"""The task interface shared by the simulated team, the experiment runner and the ROS node."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn


class LocalData(Protocol):
    """One robot's private training data."""

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw a minibatch ``(inputs [B, ...], targets [B, ...])`` using ``generator``."""
        ...


class TensorData:
    """A fixed in-memory dataset; minibatches are drawn uniformly with replacement.

    ``batch_size <= 0`` returns the whole set, which makes a deterministic full-batch
    gradient (used by the convex consensus test).
    """

    def __init__(self, inputs: Tensor, targets: Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"inputs ({len(inputs)}) and targets ({len(targets)}) differ in length")
        if len(inputs) == 0:
            raise ValueError("a robot's dataset is empty")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.inputs)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if batch_size <= 0:
            return self.inputs, self.targets
        index = torch.randint(len(self.inputs), (batch_size,), generator=generator)
        return self.inputs[index], self.targets[index]


Forward = Callable[[Tensor], Tensor]
"""Runs every robot's model on shared inputs ``[V, ...]`` and returns outputs ``[R, V, ...]``."""


class Task(ABC):
    """A distributed learning problem.

    Subclasses give the model, the loss (which must work under ``torch.func.vmap``), each
    robot's private data and the validation metrics. Streaming tasks (mapping) also move
    their robots each round through :meth:`advance` and report positions for disk graphs.
    """

    name: str = "task"
    headline_metric: str = "validation_loss"
    """The metric :meth:`evaluate` must report, shown in progress lines."""
    environment_steps_per_round: int | None = None
    """On-policy tasks: environment steps played per round (curves are also recorded against them)."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A fresh model; its parameters define the flat weight vector every robot shares."""

    @abstractmethod
    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        """Mean loss of one robot's minibatch; a scalar, vmap-compatible."""

    @abstractmethod
    def robot_data(self, num_robots: int) -> list[LocalData]:
        """Each robot's private training data, in robot order."""

    @abstractmethod
    def pooled_data(self) -> LocalData:
        """All robots' data together, for the centralized reference."""

    @abstractmethod
    def evaluate(self, forward: Forward) -> dict[str, Tensor]:
        """Validation metrics per robot, each a tensor ``[R]``; must include :attr:`headline_metric`."""

    def advance(self, round_index: int, forward: Forward | None = None) -> None:  # noqa: B027 - optional hook
        """Move the world one round forward (streaming tasks); static tasks do nothing.

        ``forward`` runs the robots' current models (``[V, ...] -> [R, V, ...]``): on-policy tasks
        (reinforcement learning) collect the round's data with it; others ignore it.
        """

    def positions(self) -> np.ndarray | None:
        """Robot positions ``[N, 2]`` in metres, for disk communication graphs; None if static."""
        return None
