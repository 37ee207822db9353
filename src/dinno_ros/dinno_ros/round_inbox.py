"""One robot's round as the core algorithm sees it: the neighbour messages the exchange collected
(:class:`dinno_ros.exchange_records.RoundInputs`) turned into an :class:`~dinno_core.algorithms.Inbox`
with ``R = 1``. Plain logic, no rclpy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from dinno_core.algorithms import Inbox
from dinno_core.algorithms.dual_ledger import Acknowledgements
from dinno_ros.exchange_records import RoundInputs


def round_inbox(inputs: RoundInputs, team: Sequence[str], payload_vectors: int, num_params: int,
                dtype: torch.dtype) -> Inbox:
    """One slot per expected neighbour (absent ones masked), with its team index, degree, announced
    penalty and newest acknowledgement of our rounds, so DiNNO can keep its edge duals exact."""
    expected = list(inputs.expected) or list(inputs.neighbours)
    if not expected:
        return Inbox.empty(1, payload_vectors, num_params, dtype)
    heard = inputs.neighbours
    present = [j for j in expected if j in heard]
    payloads = torch.zeros(1, len(expected), payload_vectors, num_params, dtype=dtype)
    mask = torch.tensor([[j in heard for j in expected]])
    if present:
        payloads[0, mask[0]] = torch.from_numpy(np.stack([heard[j].values for j in present])).to(dtype)
    degrees = torch.tensor([[float(heard[j].degree) if j in heard else 0.0 for j in expected]], dtype=dtype)
    sender_rho = torch.tensor([[heard[j].rho if j in heard else math.nan for j in expected]], dtype=dtype)
    return Inbox(payloads=payloads, mask=mask, sender_degrees=degrees, sender_rho=sender_rho,
                 senders=torch.tensor([[list(team).index(j) for j in expected]]),
                 acks=acknowledgements_of(inputs.acks, expected))


def acknowledgements_of(acks: dict[str, tuple[int, int, int]], neighbours: Sequence[str]) -> Acknowledgements:
    """``[1, K]`` acknowledgements of our rounds by ``neighbours`` (``acks``: per neighbour its newest
    ``(round, bits, span)``; none known: round -1)."""
    rows = [acks.get(j, (-1, 0, 0)) for j in neighbours]
    return Acknowledgements(round=torch.tensor([[a[0] for a in rows]], dtype=torch.long),
                            bits=torch.tensor([[a[1] for a in rows]], dtype=torch.long),
                            span=torch.tensor([[a[2] for a in rows]], dtype=torch.long))
