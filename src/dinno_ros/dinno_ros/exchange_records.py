"""The records of a round exchange (plain data): why a message was dropped, a validated
message, a link's health, what a round decided, which neighbour rounds were used (the
acknowledgements) and a snapshot of the counters.
:class:`dinno_ros.exchange.RoundExchange` fills them; the trainer, the diagnostics and the
results read them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from dinno_core.algorithms.dual_ledger import ACK_BITS


class DropReason(str, Enum):
    """Why an incoming weight message was dropped (the ``drops`` counters' keys)."""

    UNKNOWN_SENDER = "unknown_sender"
    UNAUTHENTICATED = "unauthenticated"
    FOREIGN_MODEL = "foreign_model"
    MALFORMED = "malformed"
    DUPLICATE_SENDER = "duplicate_sender"
    STALE = "stale"
    ABSURD_ROUND = "absurd_round"
    UNKNOWN_BASE = "unknown_base"
    NON_FINITE = "non_finite"
    OUT_OF_BOUNDS = "out_of_bounds"


@dataclass(frozen=True)
class Received:
    """A validated neighbour message: its values ``float32 [m, n]`` and what came with them."""

    sender: str
    round: int
    values: np.ndarray
    degree: int
    received_at: float
    rho: float = float("nan")
    """The penalty the sender announced for the round (NaN: none)."""


@dataclass
class LinkStats:
    """Health of the link from one teammate, as seen by this robot."""

    received: int = 0
    """Messages accepted (valid, current or later round)."""
    used: int = 0
    """Rounds in which its message was in this robot's inbox."""
    missed: int = 0
    """Rounds in which it was expected but its message was not there in time."""
    missed_in_a_row: int = 0
    """Consecutive expected rounds missed, up to the last decided round."""
    last_round: int | None = None
    """Round of its newest accepted message."""
    last_heard: float | None = None
    """Clock time of its newest well-formed message (accepted or stale) or accepted waiting signal."""
    drops: Counter = field(default_factory=Counter)
    """Dropped messages by :class:`DropReason` value."""
    absent: bool = False
    """Missed ``absent_after`` rounds in a row and not heard since: not waited for."""
    session: int | None = None
    """Process session of its newest accepted message."""
    retired_sessions: set = field(default_factory=set)
    duplicate: bool = False
    """Two processes have been heard under this robot id."""
    signals: int = 0
    """"Still waiting" signals accepted (:mod:`dinno_ros.round_waiting`)."""
    waited_past_timeout: int = 0
    """Rounds in which this robot waited past ``round_timeout`` for it because it signalled that
    it was alive and still in an earlier round."""

    def copy(self) -> LinkStats:
        return LinkStats(self.received, self.used, self.missed, self.missed_in_a_row, self.last_round,
                         self.last_heard, Counter(self.drops), self.absent, self.session,
                         set(self.retired_sessions), self.duplicate, self.signals, self.waited_past_timeout)


@dataclass
class RoundInputs:
    """What :meth:`RoundExchange.wait_for_round` decided for one round."""

    round: int
    neighbours: dict[str, Received]
    """The round-``k`` messages to step with, in team order (empty on catch-up/stop)."""
    expected: tuple[str, ...]
    missing: tuple[str, ...]
    """Expected neighbours whose round-``k`` message is not in :attr:`neighbours`."""
    timed_out: bool = False
    catch_up_to: int | None = None
    """Set when this robot is behind: do not step, move to this round instead."""
    latest: dict[str, Received] = field(default_factory=dict)
    """On catch-up: every expected neighbour's newest held message (for warm starts)."""
    stopped: bool = False
    """The exchange was closed (shutdown) while waiting."""
    acks: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    """Per expected neighbour, its newest acknowledgement of our rounds: ``(round, bits, span)``,
    bit ``b`` = it used our round ``round - b`` (see :class:`dinno_core.algorithms.dual_ledger.Acknowledgements`)."""


@dataclass
class ExchangeSnapshot:
    """A consistent copy of the counters, for monitoring."""

    round: int
    drops: dict[str, int]
    superseded: int
    accepted: int
    links: dict[str, LinkStats]
    expected: tuple[str, ...]


class UsedRounds:
    """Which of each teammate's rounds this robot used, as ``ACK_BITS``-wide bit sets (bit 0 = the
    newest recorded round): what every outgoing message acknowledges. Guarded by the exchange's lock."""

    def __init__(self, teammates: Iterable[str], start_round: int) -> None:
        self._bits = {name: 0 for name in teammates}
        self.restart(start_round)

    def restart(self, round_index: int) -> None:
        """This process starts (or resumes) at ``round_index``: it knows nothing of earlier rounds."""
        self._bits = {name: 0 for name in self._bits}
        self._newest = int(round_index) - 1
        self._first = int(round_index)

    def record(self, round_index: int, used: Iterable[str]) -> None:
        """The teammates whose round-``round_index`` weights this robot used."""
        shift = round_index - self._newest
        if shift > 0:
            mask = (1 << ACK_BITS) - 1
            for name in self._bits:
                self._bits[name] = (self._bits[name] << shift) & mask if shift < ACK_BITS else 0
            self._newest = round_index
        for name in used:
            self._bits[name] |= 1 << (self._newest - round_index)

    def acknowledgements(self, round_index: int) -> tuple[list[str], list[int], int]:
        """``(robots, bits, span)`` for our round-``round_index`` message: bit ``b`` = we used the
        robot's round ``round_index - 1 - b``."""
        shift = (round_index - 1) - self._newest
        robots, bits = [], []
        for name, value in self._bits.items():
            robots.append(name)
            bits.append(0 if shift >= ACK_BITS else (value << shift) & ((1 << ACK_BITS) - 1) if shift >= 0
                        else value >> -shift)
        return robots, bits, max(0, min(ACK_BITS, round_index - self._first))
