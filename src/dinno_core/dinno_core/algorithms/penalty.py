"""DiNNO's penalty ρ adapted from local residuals: residual balancing, robot by robot.

Boyd et al., *Distributed Optimization and Statistical Learning via ADMM* (2011), §3.4.1, raise ρ
when the primal residual (disagreement) dominates the dual residual (the change of the
consensus target) and lower it in the opposite case. Here every robot does this with what it
already has, so nothing extra travels:

- primal residual ``r_i = ||theta_i^k - m_i^k||``, with ``m_i^k`` the mean of the neighbours'
  weights received this round;
- dual residual ``s_i = rho_i ||m_i^k - m_i^{k-1}||``, the change of that mean times ρ (what the
  change of the target does to robot ``i``'s penalty gradient).

With ``normalized`` (Wohlberg 2017, "ADMM penalty parameter selection by residual balancing")
both are relative: ``r_i / max(||theta_i||, ||m_i||)`` and ``s_i / ||p_i||`` (the dual carries the
scale of the loss's gradients), which makes the rule invariant to rescaling the loss or the
weights, so one setting serves tasks whose good ρ differ by orders of magnitude.

Rule, per robot and round: if ``r > mu s`` then ``rho *= tau``; if ``s > mu r`` then ``rho /= tau``.
A robot adapts only in rounds where it heard a neighbour in this and the previous round.

Safety: the usual ADMM guarantees assume a fixed (or eventually fixed) ρ. Adaptation happens
only in the first ``rounds`` rounds and within ``[rho_min, rho_max]``; after that ρ only follows
DiNNO's ``rho_scaling`` schedule, so the method is C-ADMM from there on. Robots may end with
different ρ: each announces its ρ with its weights and both ends of an edge use the mean of the
two (:meth:`dinno_core.algorithms.dinno.Dinno.edge_penalty`), so the edge's dual changes cancel
and the sum of the duals stays zero (the consensus point is the optimum's).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dinno_core.algorithms.config import PenaltyAdaptationConfig


class ResidualBalancing:
    """Per-robot residual balancing of ρ for ``R`` robots (state: last round's neighbour mean).

    ``update(rho, theta_k, neighbour_sum, degree, dual, round_index)`` returns the new ``rho [R]``.
    """

    def __init__(self, config: PenaltyAdaptationConfig, num_robots: int, num_params: int,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        self.config = config
        self.previous_mean = torch.zeros(num_robots, num_params, dtype=dtype, device=device)
        self.has_previous = torch.zeros(num_robots, dtype=torch.bool, device=device)
        self.primal_residual = torch.zeros(num_robots, dtype=dtype, device=device)
        """The last round's residuals (relative ones when ``normalized``), for logs and tests."""
        self.dual_residual = torch.zeros(num_robots, dtype=dtype, device=device)

    def update(self, rho: Tensor, theta_k: Tensor, neighbour_sum: Tensor, degree: Tensor, dual: Tensor,
               round_index: int) -> Tensor:
        """``rho [R]`` after this round's balancing; ``degree [R]`` neighbours heard this round."""
        config = self.config
        heard = degree > 0
        mean = neighbour_sum / degree.clamp(min=1.0)[:, None]
        primal = (theta_k - mean).norm(dim=1)
        dual_residual = rho * (mean - self.previous_mean).norm(dim=1)
        if config.normalized:
            tiny = torch.finfo(theta_k.dtype).tiny
            primal = primal / torch.maximum(theta_k.norm(dim=1), mean.norm(dim=1)).clamp(min=tiny)
            dual_residual = dual_residual / dual.norm(dim=1).clamp(min=tiny)
        active = heard & self.has_previous & (round_index < config.rounds)
        active &= torch.isfinite(primal) & torch.isfinite(dual_residual)
        grow = active & (primal > config.mu * dual_residual)
        shrink = active & (dual_residual > config.mu * primal) & ~grow
        factor = torch.where(grow, config.tau, torch.where(shrink, 1.0 / config.tau, 1.0))
        lower = config.rho_min if config.rho_min is not None else 0.0
        upper = config.rho_max if config.rho_max is not None else float("inf")
        adapted = torch.where(active, (rho * factor).clamp(min=lower, max=upper), rho)
        self.previous_mean = torch.where(heard[:, None], mean, self.previous_mean)
        self.has_previous = heard
        self.primal_residual = torch.where(heard, primal, 0.0)
        self.dual_residual = torch.where(heard, dual_residual, 0.0)
        return adapted

    def forget(self, rows: Tensor) -> None:
        """A robot whose round was rolled back starts its residual history again."""
        self.has_previous[rows] = False

    def state_dict(self) -> dict[str, Any]:
        return {"previous_mean": self.previous_mean.clone(), "has_previous": self.has_previous.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        previous = state["previous_mean"]
        if tuple(previous.shape) != tuple(self.previous_mean.shape):
            raise ValueError(f"checkpoint previous_mean has shape {tuple(previous.shape)}, "
                             f"expected {tuple(self.previous_mean.shape)}")
        self.previous_mean = previous.to(self.previous_mean).clone()
        self.has_previous = state["has_previous"].to(self.has_previous).clone()
