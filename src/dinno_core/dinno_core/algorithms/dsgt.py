"""Decentralized stochastic gradient tracking, synchronous."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dinno_core.algorithms.base import DistributedAlgorithm, Inbox, SampleFn
from dinno_core.algorithms.config import DsgtConfig
from dinno_core.algorithms.schedules import learning_rate
from dinno_core.params import FlatModel


class Dsgt(DistributedAlgorithm):
    """Gradient tracking: ``x_i <- sum_j W_ij (x_j - alpha y_j)``,
    ``y_i <- sum_j W_ij y_j + g_i(x_i new) - g_i(x_i old)``, ``y^0 = g^0``.

    Each robot sends two vectors per round: ``x - alpha * y`` and ``y``.
    """

    payload_vectors = 2
    payload_starts_with_weights = False

    def __init__(self, model: FlatModel, theta: Tensor, config: DsgtConfig) -> None:
        super().__init__(model, theta)
        self.config = config
        self.tracker: Tensor | None = None
        self.last_gradient: Tensor | None = None

    def initialize(self, sample: SampleFn) -> None:
        if self.tracker is None:
            inputs, targets = sample(self.config.batch_size)
            _, grads = self.model.loss_and_grad(self.theta, inputs, targets)
            self.tracker, self.last_gradient = grads.clone(), grads.clone()

    def _step_size(self) -> float:
        return learning_rate(self.config.lr, self.round)

    def outgoing(self) -> Tensor:
        if self.tracker is None:
            raise RuntimeError("DSGT needs initialize(sample) before its first round")
        return torch.stack([self.theta - self._step_size() * self.tracker, self.tracker], dim=1)

    def _update(self, inbox: Inbox, sample: SampleFn) -> Tensor:
        if self.tracker is None or self.last_gradient is None:
            raise RuntimeError("DSGT needs initialize(sample) before its first round")
        own = self.outgoing()
        self.parameter.data = inbox.mix(own[:, 0], 0)
        mixed_tracker = inbox.mix(own[:, 1], 1)
        inputs, targets = sample(self.config.batch_size)
        losses, grads = self.model.loss_and_grad(self.theta, inputs, targets)
        self.tracker = mixed_tracker + grads - self.last_gradient
        self.last_gradient = grads
        return losses

    def _guarded_state(self) -> dict[str, Tensor]:
        assert self.tracker is not None and self.last_gradient is not None
        return {"theta": self.parameter.data, "tracker": self.tracker, "last_gradient": self.last_gradient}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(tracker=None if self.tracker is None else self.tracker.clone(),
                     last_gradient=None if self.last_gradient is None else self.last_gradient.clone())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tracker = None if state["tracker"] is None else state["tracker"].to(self.theta).clone()
        self.last_gradient = None if state["last_gradient"] is None else state["last_gradient"].to(self.theta).clone()
