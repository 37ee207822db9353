"""DiNNO: consensus ADMM with an inexact primal step (Yu, Vincent, Schwager, RA-L 2022)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from dinno_core.algorithms.base import DistributedAlgorithm, Inbox, PrimalSolver, RoundStats, SampleFn
from dinno_core.algorithms.config import DinnoConfig
from dinno_core.algorithms.dual_ledger import DualLedger
from dinno_core.algorithms.metric_penalty import GradientScale
from dinno_core.algorithms.penalty import ResidualBalancing
from dinno_core.algorithms.proximal import ProximalAdam
from dinno_core.algorithms.schedules import learning_rate
from dinno_core.params import FlatModel


class Dinno(DistributedAlgorithm):
    """DiNNO for ``R`` robots. Per robot ``i`` and round ``k``:

    1. ``p_i <- p_i + sum_j rho_ij (theta_i^k - theta_j^k)``
    2. ``B`` optimizer steps from ``theta_i^k`` on
       ``l_i(theta) + theta . p_i + sum_j rho_ij ||theta - (theta_i^k + theta_j^k) / 2||^2``
    3. the penalty for the next round: ``rho_i <- min(gamma * rho_i, rho_max)``, then, with
       ``config.rho_adaptation``, residual balancing from this round's local residuals
       (:class:`~dinno_core.algorithms.penalty.ResidualBalancing`).

    ``rho_ij = (rho_i + rho_j) / 2``, the mean of the penalties both ends announced with their
    weights for the round (:meth:`outgoing_penalty`, ``Inbox.sender_rho``): the same number at both
    ends, so the edge's dual changes are equal and opposite and ``sum_i p_i`` stays zero even when
    adaptation gives robots different ρ. Without adaptation every robot has the same ρ and this is
    the paper's rule; a sender that does not announce its ρ counts as having the receiver's.

    With ``rho_adaptation.kind == "adam_metric"`` ρ is a vector, one penalty per weight:
    ``rho_i = metric_scale * (sqrt(v_hat_i) + eps) / lr``, each weight's Adam metric from the second
    moment of the robot's own task-loss gradient
    (:class:`~dinno_core.algorithms.metric_penalty.GradientScale`, with either primal step), so the
    pull towards the neighbours is the same fraction of every weight's step whatever its gradient's
    scale, and it grows as the learning rate decays. It travels as a second payload vector
    (``payload_vectors == 2``) and ``rho_ij`` is again the mean of both ends' vectors.

    Only ``theta`` (and ρ) is sent; the dual ``p_i`` stays local. A neighbour absent from the inbox
    contributes no term, so dropped links are a time-varying graph. ``config.primal_step``
    picks how step 3 is taken: the configured torch optimizer on the whole objective (the
    paper), or :class:`~dinno_core.algorithms.proximal.ProximalAdam`.

    Under message loss the step-2 increment of each edge is kept pending until the neighbour
    acknowledges the round, and reverted if it did not use it (``config.reconcile_window``,
    :class:`~dinno_core.algorithms.dual_ledger.DualLedger`), so ``sum_i p_i`` stays zero and the
    team converges to the loss-free optimum. The inbox must name its senders and carry their
    acknowledgements for that; without them (or with window 0) the update is the paper's.
    """

    def __init__(self, model: FlatModel, theta: Tensor, config: DinnoConfig) -> None:
        super().__init__(model, theta)
        self.config = config
        self.dual = torch.zeros_like(self.theta)
        self.rho = self._scheduled(torch.full((self.num_robots,), config.rho_init, dtype=theta.dtype,
                                              device=theta.device))
        """Each robot's penalty for the coming round (announced with its weights)."""
        self.gradient_scale: GradientScale | None = None
        """``adam_metric``: the moments the penalty per weight is made from."""
        if config.rho_adaptation.kind == "adam_metric":
            self.gradient_scale = GradientScale(self.num_robots, self.theta.shape[1], config.optimizer.betas[1],
                                                theta.dtype, theta.device)
        self.payload_vectors = 1 if self.gradient_scale is None else 2
        """The weights, then (``adam_metric``) the penalty of each weight for the coming round."""
        self.solver: PrimalSolver | ProximalAdam
        if config.primal_step == "adam_proximal":
            self.solver = ProximalAdam(self.parameter, config.optimizer.betas)
        else:
            self.solver = PrimalSolver(config.optimizer, self.parameter)
        self.ledger = DualLedger(self.num_robots, config.reconcile_window or 1, theta.device)
        self._recording = False
        self.penalty: ResidualBalancing | None = None
        if config.rho_adaptation.kind == "residual_balancing":
            self.penalty = ResidualBalancing(config.rho_adaptation, self.num_robots, self.theta.shape[1],
                                             theta.dtype, theta.device)

    def _scheduled(self, rho: Tensor) -> Tensor:
        rho = rho * self.config.rho_scaling
        return rho if self.config.rho_max is None else rho.clamp(max=self.config.rho_max)

    def _penalty_per_weight(self, round_index: int | None = None) -> Tensor:
        """``adam_metric``: each robot's penalty per weight in round ``round_index`` (default: the
        coming one), ``[R, n]``."""
        assert self.gradient_scale is not None
        lr = learning_rate(self.config.lr, self.round if round_index is None else round_index)
        rho = self.gradient_scale.penalty(self.config.rho_adaptation.metric_scale, lr)
        return rho if self.config.rho_max is None else rho.clamp(max=self.config.rho_max)

    def outgoing(self) -> Tensor:
        if self.gradient_scale is not None:
            return torch.stack([self.theta, self._penalty_per_weight()], dim=1)
        return super().outgoing()

    def outgoing_penalty(self) -> Tensor | None:
        return None if self.gradient_scale is not None else self.rho

    def edge_penalty(self, inbox: Inbox) -> Tensor:
        """``rho_ij``: the mean of both ends' announced penalties (0 in empty slots), ``[R, K]``, or
        ``[R, K, n]`` per weight with ``adam_metric``."""
        if self.gradient_scale is not None:
            # Both ends use the same decoded numbers (the wire may round them, even below 0).
            own = self._penalty_per_weight() if inbox.own_sent is None else inbox.own_sent[:, 1].to(self.theta)
            edge = 0.5 * (own[:, None, :].clamp(min=0.0) + inbox.payloads[:, :, 1].to(own).clamp(min=0.0))
            return torch.where(inbox.mask[..., None], edge, 0.0)
        own = self.rho[:, None].expand(inbox.mask.shape)
        theirs = own if inbox.sender_rho is None else inbox.sender_rho.to(own)
        theirs = torch.where(torch.isfinite(theirs) & (theirs > 0), theirs, own)  # NaN: not announced
        return torch.where(inbox.mask, 0.5 * (own + theirs), 0.0)

    def _reconciles(self, inbox: Inbox) -> bool:
        return self.config.reconcile_window > 0 and inbox.senders is not None and inbox.acks is not None

    def step(self, inbox: Inbox, sample: SampleFn) -> RoundStats:
        # Reconciling earlier rounds only subtracts finite increments, so it happens before the
        # guarded update (a rolled-back update must not undo it).
        self._recording = self._reconciles(inbox)
        if self._recording:
            self.ledger.resolve(self.dual, inbox.senders, inbox.acks)
            self.ledger.expire(self.dual, self.round)
        return super().step(inbox, sample)

    def _update(self, inbox: Inbox, sample: SampleFn) -> Tensor:
        theta_k = self.theta.clone()
        # This robot's side of each edge is its weights as its neighbours received them (the wire
        # may round them, e.g. 8-bit): the edge's two dual changes then cancel exactly.
        sent = theta_k if inbox.own_sent is None else inbox.own_sent[:, 0].to(theta_k)
        neighbours = inbox.masked(0)  # [R, K, n]
        edge_rho = self.edge_penalty(inbox)  # [R, K], or [R, K, n] per weight
        if edge_rho.dim() == 2:
            weight = edge_rho.sum(dim=1)[:, None]  # sum_j rho_ij
            weighted_sum = torch.einsum("rk,rkn->rn", edge_rho, neighbours)  # sum_j rho_ij theta_j
            edge_rho = edge_rho[:, :, None]
        else:
            weight = edge_rho.sum(dim=1)
            weighted_sum = (edge_rho * neighbours).sum(dim=1)
        delta = edge_rho * (sent[:, None, :] - neighbours)  # each edge's dual change
        self.dual += weight * sent - weighted_sum
        if self._recording:  # each edge's share of that increment, until the neighbour acknowledges
            self.ledger.record(self.round, inbox.senders, inbox.mask, torch.where(inbox.mask[..., None], delta, 0.0))
        anchor = weight * sent + weighted_sum  # sum_j rho_ij (theta_i^k + theta_j^k), as both ends see them
        lr = learning_rate(self.config.lr, self.round)
        observe = None if self.gradient_scale is None else self.gradient_scale.observe
        if isinstance(self.solver, ProximalAdam):
            if not self.config.optimizer.persistent_state:
                self.solver.reset()
            loss = self.solver.run(
                self.model, sample, self.config.primal_steps, self.config.batch_size, lr,
                linear=self.dual - anchor,
                curvature=2.0 * weight + self.config.optimizer.weight_decay, observe=observe,
            )
        else:
            def augmented_gradient(theta: Tensor) -> Tensor:
                return self.dual + 2.0 * weight * theta - anchor

            loss = self.solver.run(
                self.model, sample, self.config.primal_steps, self.config.batch_size, lr, augmented_gradient, observe,
            )
        if self.gradient_scale is not None:  # for logs and monitors: each robot's median penalty per weight
            self.rho = self._penalty_per_weight(self.round + 1).median(dim=1).values
            return loss
        self.rho = self._scheduled(self.rho)  # the next round's penalty, announced with the new weights
        if self.penalty is not None:
            self.rho = self.penalty.update(self.rho, theta_k, neighbours.sum(dim=1), inbox.degree, self.dual,
                                           self.round)
        return loss

    def _guarded_state(self) -> dict[str, Tensor]:
        return {"theta": self.parameter.data, "dual": self.dual}

    def _forget_rejected(self, rejected: Tensor) -> None:
        self.solver.reset_rows(rejected)
        self.ledger.forget(self.round, rejected)
        if self.penalty is not None:
            self.penalty.forget(rejected)
        if self.gradient_scale is not None:
            self.gradient_scale.reset_rows(rejected)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update(dual=self.dual.clone(), rho=self.rho.clone(), optimizer=self.solver.state_dict(),
                     ledger=self.ledger.state_dict())
        if self.penalty is not None:
            state["penalty"] = self.penalty.state_dict()
        if self.gradient_scale is not None:
            state["gradient_scale"] = self.gradient_scale.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.dual = state["dual"].to(self.theta).clone()
        self.rho = state["rho"].to(self.theta).clone()
        self.ledger.load_state_dict(state.get("ledger"), self.theta)
        if self.penalty is not None:
            if state.get("penalty") is None:  # saved without adaptation: its history starts now
                self.penalty.forget(torch.ones(self.num_robots, dtype=torch.bool, device=self.theta.device))
            else:
                self.penalty.load_state_dict(state["penalty"])
        if self.gradient_scale is not None:
            if state.get("gradient_scale") is None:  # saved without the metric penalty: moments start now
                self.gradient_scale.reset_rows(torch.ones(self.num_robots, dtype=torch.bool, device=self.theta.device))
            else:
                self.gradient_scale.load_state_dict(state["gradient_scale"])
        if isinstance(self.solver, ProximalAdam):
            if state.get("optimizer") is None:  # saved by the plain optimizer path
                self.solver.reset()
            else:
                self.solver.load_state_dict(state["optimizer"])
        else:
            self.solver.load_state_dict(state.get("optimizer"), learning_rate(self.config.lr, self.round))
