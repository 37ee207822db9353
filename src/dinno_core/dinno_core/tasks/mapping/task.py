"""Multi-robot implicit mapping (DiNNO's second experiment) as a :class:`~dinno_core.tasks.base.Task`.

Robots drive their own closed paths through a floor plan. Every round each robot advances
``speed · scan_period`` metres, takes a lidar scan (all robots in one vectorized ray cast),
turns it into labelled points and appends them to its sliding window of recent scans (its
private data). All robots learn one occupancy network (:class:`FourierMLP`).

Metrics (each a tensor ``[R]``, one value per robot model):

``validation_loss``
    mean binary cross-entropy (from logits) on the points of ``validation_scans`` noise-free
    scans from random free poses (fixed by the seed). The paper reports the SUM over 25
    batches of the batch mean, i.e. 25 × this value (its 17.35 start ≈ 25 · ln 2).
``occupancy_accuracy``
    fraction of known cells of the evaluation grid (``validation_grid_resolution`` m) whose
    thresholded prediction (p > 0.5) matches the ground truth. A cell is occupied in the
    ground truth when its centre is within half a cell of an occupied pixel.
``occupancy_iou``
    intersection over union of the occupied class on the same cells (insensitive to the
    ~90 % of free cells that make accuracy look good).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from torch import Tensor, nn
from torch.func import functional_call

from dinno_core.params import ParamSpec
from dinno_core.config_paths import resolve_path
from dinno_core.tasks.base import Forward, LocalData, Task
from dinno_core.tasks.mapping.floorplan import FloorPlan, load_floor_plan
from dinno_core.tasks.mapping.model import FourierMLP
from dinno_core.tasks.mapping.paths import RobotPath, load_paths
from dinno_core.tasks.mapping.plans import BUILTIN_PLANS, builtin_paths_yaml, builtin_plan_yaml
from dinno_core.tasks.mapping.raycast import LidarSpec, cast_rays
from dinno_core.tasks.mapping.scan_points import BeamSampling, PooledWindows, SlidingWindow, scans_to_points

__all__ = ["FOURIER_SCALE_PER_METRE", "LidarConfig", "MappingTask", "MappingTaskConfig", "build_task"]

FOURIER_SCALE_PER_METRE = 1.3
"""Default first-layer frequency per metre of half-extent: 20 on the 30 m office, whose maps at
10 / 20 / 40 reached occupied-IoU 0.51 / 0.64 / 0.61 after 800 centralized Adam steps."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LidarConfig(_Strict):
    """LaserScan-shaped lidar parameters; ``angle_max=None`` means a full 360° circle."""

    num_beams: PositiveInt = 20
    angle_min: float = -math.pi
    angle_max: float | None = None
    range_min: NonNegativeFloat = 0.1
    range_max: PositiveFloat = 10.0
    noise_std: NonNegativeFloat = 0.01
    rate_hz: PositiveFloat = 10.0

    @model_validator(mode="after")
    def _check(self) -> LidarConfig:
        if self.range_min >= self.range_max:
            raise ValueError(f"lidar.range_min ({self.range_min}) must be < lidar.range_max ({self.range_max})")
        if self.angle_max is not None and self.angle_max < self.angle_min:
            raise ValueError(f"lidar.angle_max ({self.angle_max}) must be >= lidar.angle_min ({self.angle_min})")
        return self

    def to_spec(self) -> LidarSpec:
        angle_max = self.angle_max
        if angle_max is None:
            angle_max = self.angle_min + 2 * math.pi * (self.num_beams - 1) / self.num_beams
        return LidarSpec(
            num_beams=self.num_beams,
            angle_min=self.angle_min,
            angle_max=angle_max,
            range_min=self.range_min,
            range_max=self.range_max,
            noise_std=self.noise_std,
            rate_hz=self.rate_hz,
        )


class MappingTaskConfig(_Strict):
    """Everything that defines a mapping task (see the module docstring for the metrics)."""

    name: Literal["mapping"] = "mapping"
    plan: str = "office"
    """A built-in plan name (office, campus_wing) or the path of a map_server YAML."""
    paths: str | None = None
    """A robot path YAML; None uses the built-in plan's own path set."""
    num_robots: PositiveInt | None = None
    """None: as many robots as paths (or as build_task is told)."""
    lidar: LidarConfig = LidarConfig()
    samples_per_beam: PositiveInt = 25
    occupied_per_beam: int = Field(1, ge=0)
    occupied_depth: NonNegativeFloat = 0.05
    """Occupied samples lie in [hit, hit + occupied_depth] metres along the beam."""
    free_margin: NonNegativeFloat = 0.05
    """Free samples stop this many metres before the hit."""
    window_scans: PositiveInt = 800
    scans_per_round: PositiveInt = 1
    speed: PositiveFloat = 0.4
    """Robot speed along its path, m/s."""
    scan_period: PositiveFloat = 0.5
    """Seconds of driving between consecutive scans."""
    validation_scans: PositiveInt = 500
    validation_clearance: NonNegativeFloat = 0.3
    validation_grid_resolution: PositiveFloat = 0.2
    hidden_widths: tuple[PositiveInt, ...] = (256, 64, 64, 64)
    fourier_scale: PositiveFloat | None = None
    """First-layer frequency on normalized coordinates; None: FOURIER_SCALE_PER_METRE × the plan's
    half-extent in metres (20 for the office), so every plan gets the same detail per metre."""
    eval_chunk_points: PositiveInt = 65536
    """Bound on robots × points per forward call in evaluate() (memory)."""
    seed: int = 0

    @field_validator("plan", "paths")
    @classmethod
    def _existing_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A built-in plan's name, or an existing file (relative: from the config file's folder)."""
        if value is None or value in BUILTIN_PLANS:
            return value
        path = resolve_path(value, info)
        if not path.is_file():
            what = "map_server YAML" if info.field_name == "plan" else "robot path YAML"
            raise ValueError(f"{value!r} is neither a built-in plan ({', '.join(BUILTIN_PLANS)}) nor an existing "
                             f"{what} (looked for {path})")
        return str(path)

    @model_validator(mode="after")
    def _check(self) -> MappingTaskConfig:
        if self.plan not in BUILTIN_PLANS and self.paths is None:
            raise ValueError(f"plan {self.plan!r} is a user map: give 'paths' (a robot path YAML) as well")
        if self.occupied_per_beam > self.samples_per_beam:
            raise ValueError(
                f"occupied_per_beam ({self.occupied_per_beam}) must not exceed "
                f"samples_per_beam ({self.samples_per_beam})"
            )
        if not self.hidden_widths:
            raise ValueError("hidden_widths needs at least one layer")
        return self

    @property
    def sampling(self) -> BeamSampling:
        return BeamSampling(self.samples_per_beam, self.occupied_per_beam, self.occupied_depth, self.free_margin)


class EvalGrid:
    """Cell centres of a regular grid over the plan's known bounds; row 0 is the TOP (max y)."""

    def __init__(self, plan: FloorPlan, resolution: float) -> None:
        xmin, ymin, xmax, ymax = plan.known_bounds()
        self.resolution = resolution
        self.cols = max(1, math.ceil((xmax - xmin) / resolution))
        self.rows = max(1, math.ceil((ymax - ymin) / resolution))
        self.xmin, self.ymin = xmin, ymin
        self.extent = (xmin, xmin + self.cols * resolution, ymin, ymin + self.rows * resolution)
        """(left, right, bottom, top) in metres, for matplotlib's imshow(extent=...)."""
        xs = xmin + (np.arange(self.cols) + 0.5) * resolution
        ys = ymin + (self.rows - 1 - np.arange(self.rows) + 0.5) * resolution
        grid_x, grid_y = np.meshgrid(xs, ys)
        self.centres = np.stack([grid_x, grid_y], axis=-1)  # [rows, cols, 2]
        dist = plan.lookup(plan.distance_to_occupied(), self.centres, outside=np.inf)
        self.occupied = dist <= resolution / 2
        self.known = plan.lookup(~plan.unknown, self.centres, outside=False) | self.occupied

    def cell_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, cols, inside)`` of world points ``[..., 2]``."""
        cols = np.floor((xy[..., 0] - self.xmin) / self.resolution).astype(np.int64)
        rows = self.rows - 1 - np.floor((xy[..., 1] - self.ymin) / self.resolution).astype(np.int64)
        inside = (rows >= 0) & (rows < self.rows) & (cols >= 0) & (cols < self.cols)
        return rows, cols, inside


class MappingTask(Task):
    """Robots on paths through a floor plan, learning its occupancy together."""

    name = "mapping"

    def __init__(
        self, plan: FloorPlan, paths: list[RobotPath], config: MappingTaskConfig, num_robots: int, seed: int
    ) -> None:
        if not paths:
            raise ValueError("the mapping task needs at least one robot path")
        if num_robots < 1:
            raise ValueError(f"num_robots must be >= 1, got {num_robots}")
        self.plan = plan
        self.config = config
        self.num_robots = num_robots
        self.seed = seed
        self.spec = config.lidar.to_spec()
        self.sampling = config.sampling
        # Robot i drives path i mod P; robots sharing a path are spread evenly along it.
        self.paths = [paths[i % len(paths)] for i in range(num_robots)]
        sharing = math.ceil(num_robots / len(paths))
        self.path_offsets = np.array([(i // len(paths)) * p.length / sharing for i, p in enumerate(self.paths)])
        self.bounds = plan.known_bounds()
        self.grid = EvalGrid(plan, config.validation_grid_resolution)
        points_per_scan = self.spec.num_beams * self.sampling.samples_per_beam
        self.windows = [SlidingWindow(config.window_scans, points_per_scan) for _ in range(num_robots)]
        self.coverage = np.zeros((num_robots, self.grid.rows, self.grid.cols), dtype=bool)
        self._scan_rng = np.random.default_rng([seed, 1])
        self.scans_taken = 0
        self.poses = self._poses_at_scan(0)
        self._validation = self._make_validation(np.random.default_rng([seed, 2]))
        known = torch.from_numpy(self.grid.known)
        self._grid_points = torch.from_numpy(self.grid.centres[self.grid.known]).float()
        self._grid_truth = torch.from_numpy(self.grid.occupied)[known]

    # ------------------------------------------------------------------ Task API
    def build_model(self) -> nn.Module:
        widths = (2, *self.config.hidden_widths, 1)
        scale = self.config.fourier_scale
        if scale is None:
            xmin, ymin, xmax, ymax = self.bounds
            scale = FOURIER_SCALE_PER_METRE * max(xmax - xmin, ymax - ymin) / 2
        return FourierMLP(self.bounds, widths, scale)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype))

    def robot_data(self, num_robots: int) -> list[LocalData]:
        if num_robots != self.num_robots:
            raise ValueError(f"this mapping task was built for {self.num_robots} robots, not {num_robots}")
        return list(self.windows)

    def pooled_data(self) -> LocalData:
        return PooledWindows(self.windows)

    def positions(self) -> np.ndarray:
        return self.poses[:, :2].copy()

    def advance(self, round_index: int, forward: Forward | None = None) -> None:
        """Drive every robot to its poses for round ``round_index`` and take ``scans_per_round`` scans each."""
        for j in range(self.config.scans_per_round):
            scan_index = round_index * self.config.scans_per_round + j
            self.poses = self._poses_at_scan(scan_index)
            self.record_scans(cast_rays(self.plan, self.poses, self.spec, self._scan_rng), self.poses)

    def record_scans(self, ranges: np.ndarray, poses: np.ndarray) -> None:
        """Add one scan per robot (``ranges [N, B]`` taken at world poses ``[N, 3]``) to the windows."""
        for window, (points, labels) in zip(
            self.windows, scans_to_points(ranges, poses, self.spec, self.sampling, self._scan_rng)
        ):
            window.append(points, labels)
        self._mark_coverage(ranges, poses)
        self.scans_taken += 1

    @torch.no_grad()
    def evaluate(self, forward: Forward) -> dict[str, Tensor]:
        points, targets = self._validation
        logits = self._forward_chunks(forward, points)  # [R, V]
        targets = targets.to(device=logits.device, dtype=logits.dtype).expand_as(logits)
        bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").mean(dim=1)
        predicted = self._forward_chunks(forward, self._grid_points) > 0  # [R, G]
        truth = self._grid_truth.to(predicted.device)
        accuracy = (predicted == truth).float().mean(dim=1)
        union = (predicted | truth).sum(dim=1)
        iou = (predicted & truth).sum(dim=1) / union.clamp_min(1)
        return {"validation_loss": bce, "occupancy_accuracy": accuracy, "occupancy_iou": iou.float()}

    # --------------------------------------------------------------- map views
    def ground_truth_map(self) -> np.ndarray:
        """The evaluation grid's truth ``[H, W]``: 1 occupied, 0 free, NaN unknown (row 0 = top)."""
        return np.where(self.grid.known, self.grid.occupied.astype(float), np.nan)

    @torch.no_grad()
    def render_map(self, weights: Tensor | nn.Module) -> np.ndarray:
        """Predicted occupancy probability ``[H, W]`` in [0, 1] on the evaluation grid (row 0 = top).

        ``weights`` is a flat weight vector of :meth:`build_model`'s model or such a model.
        """
        if isinstance(weights, nn.Module):
            model = weights
            params = dict(model.named_parameters())
        else:
            if getattr(self, "_render_model", None) is None:
                with torch.random.fork_rng(devices=[]):  # building a model must not move the caller's RNG
                    self._render_model = self.build_model()
            model = self._render_model
            params = ParamSpec.of(model).unflatten(weights.detach().float())
        buffers = dict(model.named_buffers())
        points = torch.from_numpy(self.grid.centres.reshape(-1, 2)).float()
        chunk = self.config.eval_chunk_points
        logits = torch.cat(
            [functional_call(model, (params, buffers), (points[i : i + chunk],)) for i in range(0, len(points), chunk)]
        )
        return torch.sigmoid(logits).reshape(self.grid.rows, self.grid.cols).numpy()

    def coverage_mask(self, robot: int) -> np.ndarray:
        """Evaluation-grid cells ``[H, W]`` that robot ``robot``'s lidar has ever observed."""
        return self.coverage[robot].copy()

    def unseen_region_accuracy(self, pred_map: np.ndarray, robot: int) -> float:
        """Accuracy of ``pred_map`` (from :meth:`render_map`, thresholded at 0.5) on the known
        cells robot ``robot`` never observed; NaN if it has observed them all."""
        cells = self.grid.known & ~self.coverage[robot]
        if not cells.any():
            return float("nan")
        return float(((pred_map[cells] > 0.5) == self.grid.occupied[cells]).mean())

    def unseen_region_iou(self, pred_map: np.ndarray, robot: int) -> float:
        """Occupied-class IoU of ``pred_map`` on the known cells robot ``robot`` never observed."""
        cells = self.grid.known & ~self.coverage[robot]
        predicted, truth = pred_map[cells] > 0.5, self.grid.occupied[cells]
        union = (predicted | truth).sum()
        return float((predicted & truth).sum() / union) if union else float("nan")

    def save_figures(self, weights: dict[str, Tensor], flat: object, out_dir: Path) -> list[Path]:
        """Map pictures for the experiment runner: ``weights[algorithm]`` is ``[R, n]`` (see
        :func:`~dinno_core.tasks.mapping.figures.save_map_figures`)."""
        from dinno_core.tasks.mapping.figures import save_map_figures

        return save_map_figures(self, weights, out_dir)

    # ---------------------------------------------------------------- helpers
    def _poses_at_scan(self, scan_index: int) -> np.ndarray:
        distance = self.config.speed * self.config.scan_period * scan_index
        return np.stack([p.pose_at(offset + distance) for p, offset in zip(self.paths, self.path_offsets)])

    def _forward_chunks(self, forward: Forward, points: Tensor) -> Tensor:
        chunk = max(1024, self.config.eval_chunk_points // self.num_robots)
        return torch.cat([forward(points[i : i + chunk]) for i in range(0, len(points), chunk)], dim=1)

    def _make_validation(self, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
        plan = self.plan
        safe = plan.free & (plan.distance_to_occupied() >= self.config.validation_clearance)
        rows, cols = np.nonzero(safe)
        if len(rows) == 0:
            raise ValueError(f"plan {plan.name!r} has no free cell {self.config.validation_clearance} m from walls")
        pick = rng.integers(len(rows), size=self.config.validation_scans)
        xy = plan.grid_to_world(rows[pick], cols[pick])
        yaw = rng.uniform(-math.pi, math.pi, size=self.config.validation_scans)
        poses = np.concatenate([xy, yaw[:, None]], axis=1)
        ranges = cast_rays(plan, poses, self.spec)  # noise-free ground truth
        scans = scans_to_points(ranges, poses, self.spec, self.sampling, rng)
        points = torch.from_numpy(np.concatenate([p for p, _ in scans]))
        labels = torch.from_numpy(np.concatenate([lab for _, lab in scans]))
        return points, labels

    def _mark_coverage(self, ranges: np.ndarray, poses: np.ndarray) -> None:
        """Mark the grid cells every beam passed through (up to and including its hit) as observed."""
        step = self.grid.resolution / 2
        with np.errstate(invalid="ignore"):
            reach = np.where(np.isposinf(ranges) | (ranges >= self.spec.range_max), self.spec.range_max, ranges)
            reach = np.where(np.isfinite(reach) & (reach >= self.spec.range_min), reach, 0.0)  # [N, B]
        t = np.arange(0.0, self.spec.range_max + step, step)  # [K]
        t = np.minimum(t[None, None, :], reach[..., None] + step / 2)  # the hit's cell too
        angle = poses[:, 2:3] + self.spec.angles()[None, :]
        xy = poses[:, None, None, :2] + t[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)[:, :, None, :]
        rows, cols, inside = self.grid.cell_of(xy)
        robot = np.broadcast_to(np.arange(len(poses))[:, None, None], rows.shape)
        self.coverage[robot[inside], rows[inside], cols[inside]] = True


def _resolve(name_or_path: str, kind: str) -> Path:
    if name_or_path in BUILTIN_PLANS:
        return builtin_plan_yaml(name_or_path) if kind == "plan" else builtin_paths_yaml(name_or_path)
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"{kind} {name_or_path!r} is neither a built-in plan {BUILTIN_PLANS} nor an existing file"
        )
    return path


def build_task(config: MappingTaskConfig, num_robots: int | None = None, seed: int | None = None) -> MappingTask:
    """Load the plan and paths named by ``config`` and build the task.

    ``num_robots`` (else ``config.num_robots``, else one robot per path) and ``seed`` (else
    ``config.seed``) let the experiment runner override the config.
    """
    plan = load_floor_plan(_resolve(config.plan, "plan"))
    if config.paths is not None:
        paths_file = _resolve(config.paths, "paths")
    elif config.plan in BUILTIN_PLANS:
        paths_file = builtin_paths_yaml(config.plan)
    else:
        raise ValueError(f"plan {config.plan!r} is a user map: give 'paths' (a robot path YAML) as well")
    paths = load_paths(paths_file).paths
    if num_robots is not None and config.num_robots is not None and num_robots != config.num_robots:
        raise ValueError(f"num_robots={num_robots} disagrees with the task config's num_robots={config.num_robots}")
    count = num_robots or config.num_robots or len(paths)
    return MappingTask(plan, paths, config, count, config.seed if seed is None else seed)
