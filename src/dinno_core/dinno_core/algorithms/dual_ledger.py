"""Edge duals that stay equal and opposite when messages are lost one way.

Why
---
DiNNO's dual of robot ``i`` is the sum of its edge duals, ``p_i = sum_j lambda_ij``, and each
round both ends of an edge add ``rho (theta_i - theta_j)`` and ``rho (theta_j - theta_i)``: the
edge duals stay equal and opposite, so ``sum_i p_i = 0``. At a fixed point (consensus on
``theta*``, ``grad l_i(theta*) + p_i = 0``) summing over robots gives ``sum_i grad l_i(theta*) =
-sum_i p_i``: ``theta*`` is the team's optimum exactly when the duals sum to zero. When the
radio delivers round ``k`` one way only (``i`` hears ``j`` but ``j`` misses ``i``), ``i`` adds its
increment and ``j`` does not, ``sum_i p_i`` moves by ``rho (theta_i^k - theta_j^k)`` for good,
and the team converges, in agreement, to a wrong point. Nothing local shows it.

What
----
Every robot tells each neighbour, with each message, which of that neighbour's recent rounds it
*used* (a bit mask over the last :data:`ACK_BITS` rounds: acknowledged rounds). A robot applies
its increment for a round as the paper does, at once, and keeps it *pending* with the edge and
round. When the neighbour's acknowledgement for that round arrives:

* the neighbour used our weights too: both ends applied the increment, it is confirmed;
* the neighbour did not: only we applied it, we subtract it again (reverted).

An increment still unacknowledged after ``window`` rounds is reverted too (the link has been
silent for that long; the neighbour, hearing nothing from us either, reverts its own). So both
ends keep exactly the increments of the rounds *both* used, the edge duals stay equal and
opposite and ``sum_i p_i`` returns to zero: the team converges to the loss-free optimum. With no
loss every increment is confirmed and the iterates are exactly the paper's; the primal steps of
lossy rounds used an increment that was later taken back, a transient perturbation of the dual
that does not move the fixed point.

Limit (two generals): a link that delivers one way only for ``window`` rounds in a row, right
after a round both ends used, leaves one end confirming and the other expiring that increment.
Counted as ``expired``; it needs a one-way outage of ``window`` rounds, and near consensus the
increment ``rho (theta_i - theta_j)`` is small.

This module is plain tensor bookkeeping batched over ``R`` robots; only :class:`Dinno` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

ACK_BITS = 32
"""Rounds one acknowledgement mask covers (``uint32`` on the wire); the largest ``window``."""


@dataclass
class Acknowledgements:
    """What each inbox slot's sender said about using this robot's weights.

    ``bits[r, k]`` bit ``b`` set: the sender of slot ``k`` used robot ``r``'s weights of round
    ``round[r, k] - b``, for ``b < span[r, k]`` (older bits say nothing: the sender had not kept
    count yet, e.g. it just restarted). ``round[r, k] = -1``: no acknowledgement from that slot
    this round (its message was lost, or it is padding). All ``[R, K]`` int64.
    """

    round: Tensor
    bits: Tensor
    span: Tensor

    @classmethod
    def none(cls, shape: tuple[int, int], device: torch.device | str = "cpu") -> Acknowledgements:
        return cls(round=torch.full(shape, -1, dtype=torch.long, device=device),
                   bits=torch.zeros(shape, dtype=torch.long, device=device),
                   span=torch.zeros(shape, dtype=torch.long, device=device))


@dataclass
class _Pending:
    """The increments of one round: ``delta [R, K, n]`` towards ``senders [R, K]``."""

    round: int
    senders: Tensor
    pending: Tensor
    delta: Tensor


class DualLedger:
    """Pending edge-dual increments of ``R`` robots and their reconciliation."""

    COUNTERS = ("confirmed", "reverted", "expired")

    def __init__(self, num_robots: int, window: int, device: torch.device | str = "cpu") -> None:
        if not 1 <= window <= ACK_BITS:
            raise ValueError(f"window must be in 1..{ACK_BITS}, got {window}")
        self.window = window
        self.entries: list[_Pending] = []
        self.counts = {name: torch.zeros(num_robots, dtype=torch.long, device=device) for name in self.COUNTERS}

    def record(self, round_index: int, senders: Tensor, present: Tensor, delta: Tensor) -> None:
        """Round ``round_index`` added ``delta [R, K, n]`` (zero where not ``present``) to the duals."""
        if present.any():
            self.entries.append(_Pending(round_index, senders.clone(), present.clone(), delta.clone()))

    def resolve(self, dual: Tensor, senders: Tensor, acks: Acknowledgements) -> None:
        """Confirm or revert (``dual -= delta``) every pending increment these acknowledgements cover."""
        known = acks.round >= 0
        for entry in self.entries:
            age = acks.round - entry.round
            covered = known & (age >= 0) & (age < acks.span.clamp(max=ACK_BITS))
            used = covered & (((acks.bits >> age.clamp(0, ACK_BITS - 1)) & 1) == 1)
            same = entry.senders[:, :, None] == senders[:, None, :]  # [R, K_entry, K_inbox]
            resolved = (same & covered[:, None, :]).any(dim=2) & entry.pending
            confirmed = (same & used[:, None, :]).any(dim=2) & resolved
            reverted = resolved & ~confirmed
            if reverted.any():
                dual -= (entry.delta * reverted[..., None]).sum(dim=1)
            self.counts["confirmed"] += confirmed.sum(dim=1)
            self.counts["reverted"] += reverted.sum(dim=1)
            entry.pending &= ~resolved
        self.entries = [entry for entry in self.entries if entry.pending.any()]

    def expire(self, dual: Tensor, round_index: int) -> None:
        """Revert the increments still unacknowledged ``window`` rounds after their round."""
        keep = []
        for entry in self.entries:
            if round_index - entry.round >= self.window:
                dual -= (entry.delta * entry.pending[..., None]).sum(dim=1)
                self.counts["expired"] += entry.pending.sum(dim=1)
            else:
                keep.append(entry)
        self.entries = keep

    def forget(self, round_index: int, rows: Tensor) -> None:
        """Drop round ``round_index``'s increments of the robots in ``rows`` (their update was rolled back)."""
        for entry in self.entries:
            if entry.round == round_index:
                entry.pending[rows] = False
        self.entries = [entry for entry in self.entries if entry.pending.any()]

    def unresolved(self) -> Tensor:
        """Pending increments per robot, ``[R]``."""
        total = torch.zeros_like(self.counts["confirmed"])
        for entry in self.entries:
            total += entry.pending.sum(dim=1)
        return total

    def state_dict(self) -> dict[str, Any]:
        return {
            "entries": [{"round": e.round, "senders": e.senders.clone(), "pending": e.pending.clone(),
                         "delta": e.delta.clone()} for e in self.entries],
            **{name: value.clone() for name, value in self.counts.items()},
        }

    def load_state_dict(self, state: dict[str, Any] | None, like: Tensor) -> None:
        """Restore (``None``: a checkpoint from before reconciliation, nothing pending)."""
        if state is None:
            self.entries = []
            for value in self.counts.values():
                value.zero_()
            return
        self.entries = [_Pending(int(e["round"]), e["senders"].to(like.device).long(),
                                 e["pending"].to(like.device).bool(), e["delta"].to(like))
                        for e in state["entries"]]
        for name in self.COUNTERS:
            self.counts[name] = state[name].to(like.device).long().clone()


def dual_imbalance(dual: Tensor) -> float:
    """``||sum_i p_i|| / sum_i ||p_i||`` over the robots of ``dual [R, n]``: 0 for edge duals that
    are equal and opposite, up to 1 when loss has moved the team's duals (and so its answer).
    NaN when every dual is zero."""
    scale = float(dual.norm(dim=1).sum())
    return float(dual.sum(dim=0).norm()) / scale if scale > 0 else float("nan")


def dual_probe(dual: Tensor, key: int) -> Tensor:
    """``<p_i, u>`` for every robot ``[R]``, with ``u`` a unit direction fixed by ``key`` (e.g. the
    model fingerprint): a scalar each robot can publish whose team sum is ``<sum_i p_i, u>``,
    which is zero exactly when the edge duals cancel."""
    generator = torch.Generator().manual_seed(int(key) & (2**63 - 1))
    direction = torch.randn(dual.shape[1], generator=generator, dtype=torch.float64)
    direction /= direction.norm()
    return dual.to(torch.float64) @ direction.to(dual.device)
