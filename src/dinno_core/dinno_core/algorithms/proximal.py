"""DiNNO's primal step as Adam-preconditioned proximal-gradient steps.

The primal objective of robot ``i`` is a task loss plus a known diagonal quadratic,

    l_i(theta) + theta . linear_i + 0.5 * curvature_i * ||theta||^2,

with ``linear_i = p_i - rho * sum_j (theta_i^k + theta_j^k)`` and ``curvature_i = 2 rho d_i``.
Each step linearizes only the task loss, with Adam's bias-corrected moments of its gradient,
and minimizes the rest exactly in Adam's diagonal metric ``D = (sqrt(v_hat) + eps) / lr``:

    theta <- (D * theta - m_hat - linear) / (D + curvature)

With no neighbours and a zero dual this is exactly Adam. Because the moments only ever see
task-loss gradients, whose distribution does not jump when the dual, rho or the neighbours
change, they are kept across rounds like a centralized optimizer's. Moments of the whole
augmented gradient cannot be kept that way (the primal step then diverges), which is why the
plain optimizer path re-creates its optimizer every round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from dinno_core.algorithms.base import SampleFn
from dinno_core.params import FlatModel


def adam_metric(exp_avg_sq: Tensor, steps: Tensor, beta2: float, eps: float, lr: float) -> Tensor:
    """Adam's diagonal metric ``(sqrt(v_hat) + eps) / lr`` per robot and weight ``[R, n]``, from the
    second moments ``[R, n]`` and step counts ``[R]``; a robot that has not stepped has ``v_hat = 0``."""
    second = exp_avg_sq / (1 - beta2 ** steps.clamp(min=1.0))[:, None]
    return (second.sqrt() + eps) / lr


class ProximalAdam:
    """Adam-preconditioned proximal steps for ``R`` robots at once, with per-robot state."""

    def __init__(self, parameter: nn.Parameter, betas: tuple[float, float], eps: float = 1e-8) -> None:
        self.parameter = parameter
        self.betas = betas
        self.eps = eps
        self.exp_avg = torch.zeros_like(parameter.data)
        self.exp_avg_sq = torch.zeros_like(parameter.data)
        self.steps = torch.zeros(parameter.shape[0], dtype=parameter.dtype, device=parameter.device)

    def run(self, model: FlatModel, sample: SampleFn, steps: int, batch_size: int, lr: float,
            linear: Tensor, curvature: Tensor, observe: Callable[[Tensor], None] | None = None) -> Tensor:
        """``steps`` proximal steps on every robot; returns the mean task loss per robot ``[R]``.

        ``linear`` is ``[R, n]``; ``curvature`` is ``[R, 1]`` (or ``[R, n]``), non-negative.
        ``observe`` is handed every step's task-loss gradients ``[R, n]``.
        """
        beta1, beta2 = self.betas
        theta = self.parameter.data
        total = torch.zeros(theta.shape[0], dtype=theta.dtype, device=theta.device)
        for _ in range(steps):
            inputs, targets = sample(batch_size)
            losses, grads = model.loss_and_grad(theta, inputs, targets)
            if observe is not None:
                observe(grads)
            self.steps += 1
            self.exp_avg.lerp_(grads, 1 - beta1)
            self.exp_avg_sq.mul_(beta2).addcmul_(grads, grads, value=1 - beta2)
            first = self.exp_avg / (1 - beta1 ** self.steps)[:, None]
            metric = adam_metric(self.exp_avg_sq, self.steps, beta2, self.eps, lr)
            theta.copy_((metric * theta - first - linear) / (metric + curvature))
            total += losses.detach()
        return total / steps

    def reset(self) -> None:
        """Forget every robot's moments."""
        self.exp_avg.zero_()
        self.exp_avg_sq.zero_()
        self.steps.zero_()

    def reset_rows(self, rows: Tensor) -> None:
        """Forget the moments of the robots in ``rows`` (a rolled-back update)."""
        self.exp_avg[rows] = 0.0
        self.exp_avg_sq[rows] = 0.0
        self.steps[rows] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(), "steps": self.steps.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"exp_avg", "exp_avg_sq", "steps"} - set(state)
        if missing:
            raise ValueError(
                f"checkpoint optimizer state lacks {sorted(missing)}: it was not saved with primal_step='adam_proximal'"
            )
        for name in ("exp_avg", "exp_avg_sq", "steps"):
            current = getattr(self, name)
            value = state[name]
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"checkpoint {name} has shape {tuple(value.shape)}, expected {tuple(current.shape)}")
            current.copy_(value)
