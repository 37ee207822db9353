"""Distributed linear least squares: a convex task with a known centralized optimum.

Each robot sees only a few rows of the regression, too few to identify the solution alone;
together they do. With exact (enough) primal steps DiNNO is C-ADMM and must reach the optimum.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, PositiveInt
from torch import Tensor, nn

from dinno_core.tasks.base import Forward, LocalData, Task, TensorData


class ConvexTaskConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Literal["linear_regression"] = "linear_regression"
    num_features: PositiveInt = 5
    rows_per_robot: PositiveInt = 3
    noise_std: float = 0.1


class LinearRegressionTask(Task):
    """``y = X w* + noise``; robot ``i`` holds ``rows_per_robot`` rows (fewer than features)."""

    name = "linear_regression"

    def __init__(self, config: ConvexTaskConfig, num_robots: int, seed: int) -> None:
        self.config = config
        generator = torch.Generator().manual_seed(seed)
        rows = num_robots * config.rows_per_robot
        self.inputs = torch.randn(rows, config.num_features, generator=generator)
        true_weights = torch.randn(config.num_features, generator=generator)
        self.targets = self.inputs @ true_weights + config.noise_std * torch.randn(rows, generator=generator)
        self.num_robots = num_robots

    def build_model(self) -> nn.Module:
        return nn.Linear(self.config.num_features, 1, bias=False)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return 0.5 * ((outputs.squeeze(-1) - targets) ** 2).sum()

    def robot_data(self, num_robots: int) -> list[LocalData]:
        per_robot = self.config.rows_per_robot
        return [
            TensorData(self.inputs[i * per_robot:(i + 1) * per_robot], self.targets[i * per_robot:(i + 1) * per_robot])
            for i in range(num_robots)
        ]

    def pooled_data(self) -> LocalData:
        return TensorData(self.inputs, self.targets)

    def optimum(self) -> Tensor:
        """The centralized least-squares solution ``argmin_w sum_i l_i(w)``."""
        return torch.linalg.lstsq(self.inputs.double(), self.targets.double()[:, None]).solution[:, 0]

    def evaluate(self, forward: Forward) -> dict[str, Tensor]:
        outputs = forward(self.inputs)
        residual = outputs.squeeze(-1) - self.targets.to(outputs)
        return {"validation_loss": 0.5 * (residual**2).mean(dim=1)}


def build_task(config: ConvexTaskConfig, num_robots: int, seed: int) -> LinearRegressionTask:
    return LinearRegressionTask(config, num_robots, seed)
