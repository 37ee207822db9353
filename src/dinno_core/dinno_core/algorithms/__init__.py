"""DiNNO and its baselines, each stepping ``R`` robots at once."""

from __future__ import annotations

from torch import Tensor

from dinno_core.algorithms.base import DistributedAlgorithm, Inbox, RoundStats, SampleFn
from dinno_core.algorithms.config import (
    AlgorithmConfig,
    DinnoConfig,
    DsgdConfig,
    DsgtConfig,
    LearningRateSchedule,
    LocalConfig,
    OptimizerConfig,
    PenaltyAdaptationConfig,
)
from dinno_core.algorithms.dinno import Dinno
from dinno_core.algorithms.dsgd import Dsgd
from dinno_core.algorithms.dsgt import Dsgt
from dinno_core.algorithms.local import LocalTraining
from dinno_core.params import FlatModel


def build_algorithm(config: AlgorithmConfig, model: FlatModel, theta: Tensor) -> DistributedAlgorithm:
    """The algorithm named by ``config.kind`` for the robots whose weights are ``theta [R, n]``."""
    if isinstance(config, DinnoConfig):
        return Dinno(model, theta, config)
    if isinstance(config, DsgdConfig):
        return Dsgd(model, theta, config)
    if isinstance(config, DsgtConfig):
        return Dsgt(model, theta, config)
    return LocalTraining(model, theta, config)


__all__ = [
    "AlgorithmConfig", "Dinno", "DinnoConfig", "DistributedAlgorithm", "Dsgd", "DsgdConfig", "Dsgt",
    "DsgtConfig", "Inbox", "LearningRateSchedule", "LocalConfig", "LocalTraining", "OptimizerConfig",
    "PenaltyAdaptationConfig",
    "RoundStats", "SampleFn", "build_algorithm",
]
