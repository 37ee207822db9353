"""What a robot puts on the radio: its weights in a wire encoding, or only their change.

:class:`WireEncoder` turns each round's weights ``[R, m, n]`` (batched over robots) into what goes
into the payload and what the receivers will decode. With ``delta`` and a lossy encoding
(``float16``, ``uint8``) a robot sends the change of its weights since a *reference*: its own
weights of an earlier round **as its receivers decoded them**. Every receiver adds the decoded
change to the same reference (:class:`ReferenceStore`), so both ends hold bit-identical values.
Because the reference is what was decoded, not the exact weights, rounding errors do not pile up
(closed-loop coding, as in DPCM): each message is within the encoding's error of the *change*,
whose range is far smaller than the weights' once training settles, so the same 8-bit message
carries the weights more exactly. That is where delta pays; float32 is exact already and the
same size either way, so it refuses ``delta``.

A reference must be a round every receiver holds, i.e. one every receiver acknowledged having
used (the acknowledgements DiNNO's dual ledger already carries with every message,
:class:`~dinno_core.algorithms.dual_ledger.Acknowledgements`): the newest such round among the
sender's last :data:`DELTA_HISTORY`. Without one (start, restart, a new neighbour in range, lost
messages) a robot sends its weights themselves, a key frame, as it does every
:data:`KEY_FRAME_EVERY` rounds anyway. A receiver that meets a change since a round it does not
hold drops it (the ROS exchange counts ``unknown_base``) until a key frame or a newer
acknowledgement heals it.

The simulated team and the ROS trainer use the same :class:`WireEncoder`, so an offline run sends
exactly what the robots send.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dinno_core.algorithms.dual_ledger import Acknowledgements
from dinno_core.quantization import WIRE_ENCODINGS, wire_roundtrip

DELTA_HISTORY = 8
"""Rounds of its own sent weights a robot keeps as references; a receiver keeps as many per sender
(plus :data:`REFERENCE_SLACK`)."""
REFERENCE_SLACK = 2
"""Extra rounds a receiver keeps: the sender's newest acknowledgement is about two rounds old."""
ACK_DELAY = 2
"""The newest round a robot may refer to is this many rounds before the one it sends: its
neighbours acknowledge its round ``r`` in their round ``r + 1`` messages, which it has for certain
only once it decided round ``r + 1``. (A fast neighbour's acknowledgement can come earlier; using
it would make what is sent depend on timing, and runs irreproducible.)"""
KEY_FRAME_EVERY = 20
"""Every this many rounds a robot sends its weights themselves even when it could send a change,
so a neighbour that cannot know what it needs (restarted from an older checkpoint, or just in
range) can decode it within this many rounds, catch up and start acknowledging."""
FULL = -1
"""``base_round`` of a message that holds the weights themselves (a key frame)."""


@dataclass
class WireMessage:
    """One round's messages of ``R`` robots."""

    values: Tensor
    """``[R, m, n]``: what each payload encodes: the weights, or their change since ``base_round``."""
    base_round: Tensor
    """``[R]`` int64: the reference round of each robot's change, :data:`FULL` for the weights themselves."""
    sent: Tensor
    """``[R, m, n]``: what the receivers decode (the robots' weights as the wire delivers them)."""
    round: int


def delta_problem(encoding: str, delta: bool) -> str | None:
    """Why ``delta`` cannot be used with ``encoding`` (None: it can): the one rule behind the node's
    ``delta_encoding`` and the experiments' ``wire_delta``."""
    if delta and encoding == "float32":
        return "needs encoding float16 or uint8 (float32 is exact, and a change costs as many bytes as the weights)"
    return None


def acknowledged(acks: Acknowledgements, receivers: Tensor, rounds: Tensor) -> Tensor:
    """``[R, H]`` bool: robot ``r`` may use its round ``rounds[h]`` as reference, i.e. every one of its
    receivers (``receivers [R, K]`` bool, aligned with ``acks [R, K]``) acknowledged using it.
    A robot without receivers has no reference (its message goes to nobody)."""
    age = acks.round[..., None] - rounds.to(acks.round)  # [R, K, H]: bit index of each round
    used = (acks.round[..., None] >= 0) & (age >= 0) & (age < acks.span[..., None])
    used &= ((acks.bits[..., None] >> age.clamp(0, 62)) & 1).bool()
    return (used | ~receivers[..., None]).all(dim=1) & receivers.any(dim=1, keepdim=True)


class WireEncoder:
    """Encodes ``R`` robots' weights round by round (``delta``: their change since an acknowledged round)."""

    def __init__(self, encoding: str = "float32", delta: bool = False, history: int = DELTA_HISTORY,
                 key_frame_every: int = KEY_FRAME_EVERY) -> None:
        if encoding not in WIRE_ENCODINGS:
            raise ValueError(f"unknown wire encoding {encoding!r}; allowed: {', '.join(WIRE_ENCODINGS)}")
        problem = delta_problem(encoding, delta)
        if problem:
            raise ValueError(f"delta encoding {problem}")
        if history < 1 or key_frame_every < 1:
            raise ValueError(f"history and key_frame_every must be >= 1, got {history} and {key_frame_every}")
        self.encoding = encoding
        self.delta = delta
        self.history = history
        self.key_frame_every = key_frame_every
        self._rounds: list[int] = []
        self._sent: list[Tensor] = []  # float32 [R, m, n] per round in _rounds
        self.messages = 0
        """Messages encoded (robots x rounds)."""
        self.key_frames = 0
        """Of those, messages that held the weights themselves (no change: no delta, or no reference)."""
        self.relative_error_sum = 0.0
        """Sum over messages of ``||decoded - weights|| / ||weights||`` (what the encoding costs)."""

    @property
    def rounds(self) -> Tensor:
        """``[H]`` the rounds whose sent weights are kept as references, oldest first."""
        return torch.tensor(self._rounds, dtype=torch.long)

    def encode(self, values: Tensor, round_index: int, acked: Tensor | None = None) -> WireMessage:
        """This round's messages. ``acked [R, H]`` (:func:`acknowledged` over :attr:`rounds`): the
        references each robot may use. Raises :class:`ValueError` for non-finite weights in uint8."""
        if not self.delta:
            base = torch.full((values.shape[0],), FULL, dtype=torch.long, device=values.device)
            return self._counted(WireMessage(values, base, wire_roundtrip(values, self.encoding), round_index), values)
        weights = values.detach().to(torch.float32)
        full = wire_roundtrip(weights, self.encoding)
        base = torch.full((weights.shape[0],), FULL, dtype=torch.long, device=weights.device)
        sent, payload = full, weights
        rounds = self.rounds.to(weights.device)
        if acked is not None and rounds.numel():
            acked = acked & (rounds >= round_index - self.history) & (rounds <= round_index - ACK_DELAY)
        if acked is not None and bool(acked.any()) and round_index % self.key_frame_every:
            newest, slot = torch.where(acked, rounds, FULL).max(dim=1)
            reference = torch.zeros_like(weights)
            for h in slot.unique().tolist():  # over the (few) rounds referred to, not over robots
                rows = slot == h
                reference[rows] = self._sent[h][rows]
            change = weights - reference
            decoded = reference + wire_roundtrip(change, self.encoding)
            has = (newest >= 0)[:, None, None]
            base, sent, payload = newest, torch.where(has, decoded, full), torch.where(has, change, weights)
        self._remember(round_index, sent)
        return self._counted(WireMessage(payload, base, sent.to(values.dtype), round_index), values)

    def _counted(self, message: WireMessage, values: Tensor) -> WireMessage:
        if self.encoding != "float32":  # float32 is exact: nothing to count but messages
            error = (message.sent - values).flatten(1).norm(dim=1) / values.flatten(1).norm(dim=1).clamp_min(1e-30)
            self.relative_error_sum += float(error.sum())
        self.messages += values.shape[0]
        self.key_frames += int((message.base_round == FULL).sum())
        return message

    def _remember(self, round_index: int, sent: Tensor) -> None:
        if self._rounds and self._rounds[-1] >= round_index:  # the same round again (or a restart): drop newer
            keep = [i for i, r in enumerate(self._rounds) if r < round_index]
            self._rounds = [self._rounds[i] for i in keep]
            self._sent = [self._sent[i] for i in keep]
        self._rounds.append(int(round_index))
        self._sent.append(sent.clone())
        del self._rounds[:-self.history], self._sent[:-self.history]

    def state_dict(self) -> dict[str, Any]:
        return {"rounds": list(self._rounds), "sent": [s.clone() for s in self._sent]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rounds = [int(r) for r in state["rounds"]][-self.history:]
        self._sent = [s.clone() for s in state["sent"]][-self.history:]


class ReferenceStore:
    """A receiver's copies of each sender's recent weights as decoded (float32 numpy), by round."""

    def __init__(self, keep: int = DELTA_HISTORY + REFERENCE_SLACK) -> None:
        self.keep = keep
        self._values: dict[str, dict[int, np.ndarray]] = {}

    def get(self, sender: str, round_index: int) -> np.ndarray | None:
        return self._values.get(sender, {}).get(int(round_index))

    def store(self, sender: str, round_index: int, values: np.ndarray) -> None:
        held = self._values.setdefault(sender, {})
        held[int(round_index)] = values
        for old in [r for r in held if r <= round_index - self.keep]:
            del held[old]

    def forget(self, sender: str) -> None:
        """``sender`` restarted: its new process never references the old one's rounds."""
        self._values.pop(sender, None)


def apply_change(reference: np.ndarray, change: np.ndarray) -> np.ndarray:
    """A receiver's side of :meth:`WireEncoder.encode`: reference + decoded change, in float32
    (the sender adds in float32 too, so both ends hold the same bits)."""
    return np.add(reference, change, dtype=np.float32)
