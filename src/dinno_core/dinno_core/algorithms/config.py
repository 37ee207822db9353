"""Typed hyperparameters of every algorithm (pydantic); bad values fail before anything runs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LearningRateSchedule(_Strict):
    """Per-round learning rate: ``constant`` (start), or ``linear``/``log`` from start to end.

    ``log`` interpolates geometrically (evenly in log space) over ``rounds`` rounds, as in the
    paper's reference; after ``rounds`` the rate stays at ``end``.
    """

    kind: Literal["constant", "linear", "log"] = "constant"
    start: PositiveFloat = 1e-3
    end: PositiveFloat | None = None
    rounds: PositiveInt | None = None

    @model_validator(mode="after")
    def _needs_end(self) -> LearningRateSchedule:
        if self.kind != "constant" and (self.end is None or self.rounds is None):
            raise ValueError(f"lr.kind={self.kind!r} needs lr.end and lr.rounds")
        return self


class OptimizerConfig(_Strict):
    """The inner (primal) optimizer. Only element-wise optimizers, so robots stay independent."""

    name: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam"
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0.0)
    persistent_state: bool = False
    """Keep moments across rounds; the reference re-creates the optimizer every round."""


class PenaltyAdaptationConfig(_Strict):
    """How DiNNO adapts ρ (see :mod:`dinno_core.algorithms.penalty`):

    - ``none``: the paper's schedule only;
    - ``residual_balancing``: per robot from local residuals, ``rho *= tau`` when the primal
      residual exceeds ``mu`` times the dual residual, ``rho /= tau`` in the opposite case, during
      the first ``rounds`` rounds only and within ``[rho_min, rho_max]``;
    - ``adam_metric``: a penalty per weight, ``metric_scale`` times its Adam metric
      ``(sqrt(v_hat) + eps) / lr`` (``v_hat``: the robot's own task-loss gradient's second moment,
      kept across rounds; see :mod:`dinno_core.algorithms.metric_penalty`), sent with the weights;
      with either primal step. ``rho_init``, ``rho_scaling`` and the residual balancing fields do
      not apply; ``rho_max`` caps it.
    """

    kind: Literal["none", "residual_balancing", "adam_metric"] = "none"
    metric_scale: PositiveFloat = 0.035
    """``adam_metric``: the penalty of each weight as a fraction of its Adam metric."""
    mu: float = Field(10.0, gt=1.0)
    tau: float = Field(2.0, gt=1.0)
    rounds: PositiveInt = 200
    normalized: bool = True
    """Compare relative residuals (primal / weight norm, dual / dual norm): scale-free."""
    rho_min: PositiveFloat | None = 1e-6
    rho_max: PositiveFloat | None = 1e3

    @model_validator(mode="after")
    def _ordered_bounds(self) -> PenaltyAdaptationConfig:
        if self.rho_min is not None and self.rho_max is not None and self.rho_min > self.rho_max:
            raise ValueError(f"rho_min ({self.rho_min}) must not exceed rho_max ({self.rho_max})")
        return self


class DinnoConfig(_Strict):
    kind: Literal["dinno"] = "dinno"
    rho_init: PositiveFloat = 0.5
    rho_scaling: float = Field(1.0, ge=1.0)
    rho_max: PositiveFloat | None = None
    rho_adaptation: PenaltyAdaptationConfig = PenaltyAdaptationConfig()
    """Adapt ρ per robot from local residuals in the first rounds (``kind: none``: the paper's schedule)."""
    primal_steps: PositiveInt = 2
    primal_step: Literal["optimizer", "adam_proximal"] = "optimizer"
    """``optimizer``: the paper's step, ``optimizer`` steps on the whole augmented Lagrangian.
    ``adam_proximal``: Adam moments of the task-loss gradient only, the dual and penalty terms
    minimized exactly in Adam's metric (see :mod:`dinno_core.algorithms.proximal`); needs
    ``optimizer.name: adam`` and keeps its moments across rounds when ``persistent_state``."""
    batch_size: int = 64
    optimizer: OptimizerConfig = OptimizerConfig()
    lr: LearningRateSchedule = LearningRateSchedule(kind="constant", start=5e-3)
    reconcile_window: int = Field(16, ge=0, le=32)
    """Rounds an edge's dual increment waits for the neighbour's acknowledgement before it is
    reverted (:mod:`dinno_core.algorithms.dual_ledger`), so messages lost one way never move
    the answer. 0: no reconciliation, the paper's per-robot dual (drifts under one-sided loss)."""

    @model_validator(mode="after")
    def _proximal_needs_adam(self) -> DinnoConfig:
        if self.primal_step == "adam_proximal" and self.optimizer.name != "adam":
            raise ValueError(
                f"primal_step='adam_proximal' needs optimizer.name='adam', got {self.optimizer.name!r} "
                "(or use primal_step='optimizer' with any of adam, adamw, sgd, rmsprop)"
            )
        return self


class DsgdConfig(_Strict):
    kind: Literal["dsgd"] = "dsgd"
    lr: LearningRateSchedule = LearningRateSchedule(kind="constant", start=5e-3)
    batch_size: int = 64


class DsgtConfig(_Strict):
    kind: Literal["dsgt"] = "dsgt"
    lr: LearningRateSchedule = LearningRateSchedule(kind="constant", start=5e-3)
    batch_size: int = 64


class LocalConfig(_Strict):
    """Training without communication: ``individual`` (each robot alone) or ``centralized``
    (one model on the pooled data of all robots)."""

    kind: Literal["individual", "centralized"] = "individual"
    steps_per_round: PositiveInt = 2
    batch_size: int = 64
    optimizer: OptimizerConfig = OptimizerConfig(persistent_state=True)
    lr: LearningRateSchedule = LearningRateSchedule(kind="constant", start=5e-3)


AlgorithmConfig = Annotated[
    DinnoConfig | DsgdConfig | DsgtConfig | LocalConfig, Field(discriminator="kind")
]
