"""Decentralized SGD with Metropolis mixing, synchronous (every robot mixes round-k values)."""

from __future__ import annotations

from torch import Tensor

from dinno_core.algorithms.base import DistributedAlgorithm, Inbox, SampleFn
from dinno_core.algorithms.config import DsgdConfig
from dinno_core.algorithms.schedules import learning_rate
from dinno_core.params import FlatModel


class Dsgd(DistributedAlgorithm):
    """``theta_i <- sum_j W_ij theta_j - alpha * grad l_i(theta_i; batch)``."""

    def __init__(self, model: FlatModel, theta: Tensor, config: DsgdConfig) -> None:
        super().__init__(model, theta)
        self.config = config

    def _update(self, inbox: Inbox, sample: SampleFn) -> Tensor:
        inputs, targets = sample(self.config.batch_size)
        losses, grads = self.model.loss_and_grad(self.theta, inputs, targets)
        step = learning_rate(self.config.lr, self.round)
        self.parameter.data = inbox.mix(self.theta, 0) - step * grads
        return losses
