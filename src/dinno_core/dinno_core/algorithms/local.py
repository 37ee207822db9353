"""Training without communication: each robot alone (individual) or one model on all data
(centralized, run with ``R = 1`` on the pooled data)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from dinno_core.algorithms.base import DistributedAlgorithm, Inbox, PrimalSolver, SampleFn
from dinno_core.algorithms.config import LocalConfig
from dinno_core.algorithms.schedules import learning_rate
from dinno_core.params import FlatModel


class LocalTraining(DistributedAlgorithm):
    """``steps_per_round`` optimizer steps on the local loss; the inbox is ignored."""

    def __init__(self, model: FlatModel, theta: Tensor, config: LocalConfig) -> None:
        super().__init__(model, theta)
        self.config = config
        self.solver = PrimalSolver(config.optimizer, self.parameter)

    def _update(self, inbox: Inbox, sample: SampleFn) -> Tensor:
        return self.solver.run(
            self.model, sample, self.config.steps_per_round, self.config.batch_size,
            learning_rate(self.config.lr, self.round),
        )

    def _forget_rejected(self, rejected: Tensor) -> None:
        self.solver.reset_rows(rejected)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["optimizer"] = self.solver.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.solver.load_state_dict(state.get("optimizer"), learning_rate(self.config.lr, self.round))
