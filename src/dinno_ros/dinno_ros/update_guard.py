"""The bounded-change check on neighbours' weights (plain numpy, no ROS imports).

A message can be well formed, authenticated and finite and still be absurd: a faulty or
compromised teammate sending ``1e6 x`` its weights would drag every robot with it for good.
Every neighbour vector that passed the other checks must also be *close*:

* to this robot's own current weights: ``||theta_j - theta_i|| <= max_distance * (||theta_i|| + scale)``;
* to that neighbour's own recent history: ``||theta_j - theta_j^last|| <= max_step * (||theta_j^last|| + scale)``,
  where ``theta_j^last`` is its last accepted vector (skipped until one was accepted).

``scale`` keeps both bounds meaningful near zero weights. The thresholds are node parameters
(``max_weight_distance``, ``max_weight_step``, ``weight_scale``, declared in
:class:`dinno_ros.robot_settings.RobotSettings`).
A vector failing either is dropped and counted (``out_of_bounds``) and never reaches the
algorithm, so no robot's weights move further than the bounds allow in one round, whatever a
neighbour sends. Only the first payload vector (the weights) is checked; DSGT's tracker is a
gradient and has no such scale.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class GuardLimits:
    max_distance: float = 10.0
    max_step: float = 10.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("max_distance", "max_step", "scale"):
            value = getattr(self, name)
            if not value > 0 or math.isnan(value):
                raise ValueError(f"{name} must be > 0, got {value}")


class UpdateGuard:
    """Thread-safe: the training thread sets the reference, the receive path checks."""

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._own: np.ndarray | None = None
        self._own_norm = 0.0
        self._last: dict[str, tuple[np.ndarray, float]] = {}

    def set_reference(self, own: np.ndarray) -> None:
        """This robot's current weights ``[n]`` (a copy is kept)."""
        own = np.array(own, dtype=np.float64).reshape(-1)
        with self._lock:
            self._own, self._own_norm = own, float(np.linalg.norm(own))

    def check(self, sender: str, weights: np.ndarray) -> str | None:
        """``None`` if ``weights [n]`` of ``sender`` is within bounds, else why not. Checks only:
        :meth:`remember` the weights once the message is accepted (a bounded message can still be
        dropped for its timing, and must not become the sender's history then)."""
        limits = self.limits
        weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        with self._lock:
            own, own_norm = self._own, self._own_norm
            last = self._last.get(sender)
        if own is not None:
            distance = float(np.linalg.norm(weights - own))
            bound = limits.max_distance * (own_norm + limits.scale)
            if not distance <= bound:
                return f"|theta_j - theta_i| = {distance:.3g} > {bound:.3g} (max_weight_distance {limits.max_distance:g})"
        if last is not None:
            step = float(np.linalg.norm(weights - last[0]))
            bound = limits.max_step * (last[1] + limits.scale)
            if not step <= bound:
                return f"moved {step:.3g} since its last accepted weights > {bound:.3g} (max_weight_step {limits.max_step:g})"
        return None

    def remember(self, sender: str, weights: np.ndarray) -> None:
        """``sender``'s accepted weights ``[n]``: the reference of its next step check."""
        weights = np.array(weights, dtype=np.float64).reshape(-1)
        with self._lock:
            self._last[sender] = (weights, float(np.linalg.norm(weights)))

    def forget(self, sender: str) -> None:
        """Drop ``sender``'s history (it restarted: its next weights may be far from its last)."""
        with self._lock:
            self._last.pop(sender, None)
