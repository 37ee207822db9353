"""DiNNO's penalty per weight, a fixed fraction of Adam's metric: ρ that needs no tuning.

With one scalar ρ the pull towards the neighbours, ``2 ρ d (θ - anchor)``, competes with each
weight's own step, whose size Adam sets per weight from its gradient's second moment: where that
is large the penalty is too weak to matter, where it is small the penalty freezes the weight
(measured on the office at round 100: 41 % of the weights had ``2 ρ d`` above Adam's metric,
while in the last layer it was about 150× below). The good scalar therefore depends on the
gradient's scale, the learning rate and the model, and had to be tuned per plan (0.0025 on the
office, 0.02 on the campus wing, 2 on MNIST).

Here every robot sets the penalty of each weight to ``metric_scale`` times that weight's Adam
metric, ``(sqrt(v_hat) + eps) / lr``, with ``v_hat`` the bias-corrected moving average of the
square of its own task-loss gradient (``beta2`` of the configured optimizer), so the penalty is
the same fraction of every weight's step, and it rises as the learning rate decays. Only local
information is used; the vector travels with the weights, and both ends of an edge use the mean
of their two vectors, so the edge's dual changes are equal and opposite and the sum of the duals
stays zero (:class:`~dinno_core.algorithms.dinno.Dinno`).

The moments are tracked here, apart from the primal step's optimizer, so the penalty is the same
whether the step is the paper's (Adam re-created every round on the whole augmented Lagrangian)
or :class:`~dinno_core.algorithms.proximal.ProximalAdam` (where they equal its own moments).

Guarantees: with the learning rate's schedule ending at a constant, ``v_hat`` settles and the
penalty with it, so the method ends as C-ADMM with a fixed (per-weight, symmetric) penalty, whose
fixed points are the consensus optima (the same argument as for any fixed ρ).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dinno_core.algorithms.proximal import adam_metric


class GradientScale:
    """Adam's second moment of each robot's task-loss gradient, kept across rounds, ``[R, n]``."""

    def __init__(self, num_robots: int, num_params: int, beta2: float, dtype: torch.dtype,
                 device: torch.device | str, eps: float = 1e-8) -> None:
        self.beta2 = beta2
        self.eps = eps
        self.exp_avg_sq = torch.zeros(num_robots, num_params, dtype=dtype, device=device)
        self.steps = torch.zeros(num_robots, dtype=dtype, device=device)

    def observe(self, grads: Tensor) -> None:
        """One step's task-loss gradients ``[R, n]``."""
        self.steps += 1
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grads, grads, value=1 - self.beta2)

    def penalty(self, scale: float, lr: float) -> Tensor:
        """``scale * (sqrt(v_hat) + eps) / lr`` per robot and weight ``[R, n]``."""
        return scale * adam_metric(self.exp_avg_sq, self.steps, self.beta2, self.eps, lr)

    def reset_rows(self, rows: Tensor) -> None:
        """Forget the moments of the robots in ``rows`` (a rolled-back update)."""
        self.exp_avg_sq[rows] = 0.0
        self.steps[rows] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"exp_avg_sq": self.exp_avg_sq.clone(), "steps": self.steps.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("exp_avg_sq", "steps"):
            current = getattr(self, name)
            value = state[name]
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"checkpoint gradient_scale.{name} has shape {tuple(value.shape)}, "
                                 f"expected {tuple(current.shape)}")
            current.copy_(value)
