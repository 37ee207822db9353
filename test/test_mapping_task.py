"""MappingTask: config, robots moving and scanning, data shapes, vmap, metrics, training smoke."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from dinno_core.params import FlatModel, ParamSpec
from dinno_core.tasks.mapping import (
    FloorPlan,
    FourierMLP,
    LidarConfig,
    MappingTask,
    MappingTaskConfig,
    PathSet,
    RobotPath,
    build_task,
    route_waypoints,
    save_floor_plan,
    save_paths,
)


@pytest.fixture(scope="module")
def two_rooms(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 10 x 6 m plan at 0.1 m: two rooms joined by a door, a table; one robot loop per room."""
    directory = tmp_path_factory.mktemp("two_rooms")
    occupied = np.zeros((60, 100), bool)
    occupied[:2], occupied[-2:], occupied[:, :2], occupied[:, -2:] = True, True, True, True
    occupied[:, 49:51] = True
    occupied[25:35, 49:51] = False
    occupied[10:14, 20:30] = True
    plan = FloorPlan(occupied, np.zeros_like(occupied), 0.1, (0.0, 0.0, 0.0), name="two_rooms")
    plan_yaml = save_floor_plan(plan, directory / "two_rooms.yaml")
    tours = ([[1.5, 1.5], [4.0, 1.2], [4.0, 4.5], [1.5, 4.5]], [[6.0, 1.5], [8.5, 1.5], [8.5, 4.5], [6.0, 4.5]])
    paths = [RobotPath(route_waypoints(plan, np.array(t), clearance=0.35), f"robot_{i}") for i, t in enumerate(tours)]
    paths_yaml = save_paths(PathSet(paths, 0.3, "two_rooms"), directory / "paths.yaml")
    return plan_yaml, paths_yaml


def small_config(two_rooms: tuple[Path, Path], **overrides: object) -> MappingTaskConfig:
    plan_yaml, paths_yaml = two_rooms
    fields = dict(plan=str(plan_yaml), paths=str(paths_yaml), window_scans=100, validation_scans=40,
                  lidar=LidarConfig(num_beams=32, range_max=8.0))
    fields.update(overrides)
    return MappingTaskConfig(**fields)


def test_config_is_strict_and_checked() -> None:
    with pytest.raises(ValidationError):
        MappingTaskConfig(plan="office", unknown_field=1)
    with pytest.raises(ValidationError, match="range_min"):
        MappingTaskConfig(lidar=LidarConfig(range_min=5.0, range_max=4.0))
    with pytest.raises(ValidationError, match="occupied_per_beam"):
        MappingTaskConfig(samples_per_beam=2, occupied_per_beam=3)
    config = MappingTaskConfig.model_validate({"name": "mapping", "plan": "campus_wing", "lidar": {"num_beams": 64}})
    assert config.lidar.to_spec().num_beams == 64
    with pytest.raises(ValidationError, match="plan\n.*neither a built-in plan"):  # found when the config is read
        MappingTaskConfig(plan="no_such_plan")
    with pytest.raises(FileNotFoundError, match="built-in"):  # a config built without validation
        build_task(MappingTaskConfig.model_construct(plan="no_such_plan", paths=None))


def test_builtin_office_task_moves_robots_and_fills_windows() -> None:
    task = build_task(MappingTaskConfig(plan="office", validation_scans=5), seed=1)
    assert isinstance(task, MappingTask) and task.num_robots == 7
    start = task.positions()
    assert start.shape == (7, 2)
    for k in range(3):
        task.advance(k)
    step = task.config.speed * task.config.scan_period
    moved = np.linalg.norm(task.positions() - start, axis=1)
    assert np.allclose(moved, 2 * step, rtol=0.1)  # two steps along smooth paths
    windows = task.robot_data(7)
    assert all(w.num_scans == 3 for w in windows)
    generator = torch.Generator().manual_seed(0)
    inputs, targets = windows[0].sample(12500, generator)
    assert inputs.shape == (12500, 2) and targets.shape == (12500,) and inputs.dtype == torch.float32
    assert set(torch.unique(targets).tolist()) <= {0.0, 1.0}
    assert 0.01 < targets.mean().item() < 0.15  # the paper's ~3 % occupied
    pooled_inputs, _ = task.pooled_data().sample(100, generator)
    assert pooled_inputs.shape == (100, 2)
    with pytest.raises(ValueError, match="7 robots"):
        task.robot_data(3)
    # More robots than paths: they share paths, spread along them.
    crowded = build_task(MappingTaskConfig(plan="office", validation_scans=5), num_robots=10, seed=1)
    assert crowded.positions().shape == (10, 2)
    assert np.linalg.norm(crowded.positions()[7] - crowded.positions()[0]) > 1.0


def test_robots_see_their_own_regions() -> None:
    task = build_task(MappingTaskConfig(plan="office", validation_scans=5, speed=1.0, scan_period=1.0))
    for k in range(60):
        task.advance(k)
    known = task.grid.known
    seen = np.stack([task.coverage_mask(i) & known for i in range(7)])
    assert seen.any(axis=0).mean() > 0.2
    for i in range(7):
        assert 0.02 < seen[i].sum() / known.sum() < 0.6  # nobody sees everything
        others = seen[np.arange(7) != i].any(axis=0)
        assert (seen[i] & ~others).sum() > 0.2 * seen[i].sum()  # a good part only robot i sees


def test_model_matches_the_paper_and_runs_under_vmap(two_rooms: tuple[Path, Path]) -> None:
    task = build_task(small_config(two_rooms, validation_scans=8, validation_grid_resolution=0.4))
    model = task.build_model()
    assert isinstance(model, FourierMLP)
    assert ParamSpec.of(model).numel == 25_601  # 2-256-64-64-64-1
    task.advance(0)
    flat = FlatModel(model, task.loss)
    theta = flat.initial_weights().repeat(3, 1) + 0.01 * torch.randn(3, ParamSpec.of(model).numel)
    generator = torch.Generator().manual_seed(0)
    batches = [task.robot_data(2)[0].sample(64, generator) for _ in range(3)]
    inputs = torch.stack([b[0] for b in batches])
    targets = torch.stack([b[1] for b in batches])
    losses, grads = flat.loss_and_grad(theta, inputs, targets)
    assert losses.shape == (3,) and grads.shape == theta.shape and torch.isfinite(grads).all()
    # vmap result equals a plain per-robot evaluation
    plain = torch.func.functional_call(model, ParamSpec.of(model).unflatten(theta[1]), (inputs[1],))
    torch.testing.assert_close(losses[1], task.loss(plain, targets[1]))
    metrics = task.evaluate(lambda v: flat.forward(theta, v))
    assert set(metrics) == {"validation_loss", "occupancy_accuracy", "occupancy_iou"}
    assert all(m.shape == (3,) for m in metrics.values())
    picture = task.render_map(theta[0])
    assert picture.shape == (task.grid.rows, task.grid.cols)
    assert picture.min() >= 0.0 and picture.max() <= 1.0


def test_centralized_training_smoke(two_rooms: tuple[Path, Path]) -> None:
    torch.manual_seed(0)
    task = build_task(small_config(two_rooms, hidden_widths=(128, 64)), seed=0)
    for k in range(60):
        task.advance(k)
    model = task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    data = task.pooled_data()

    def forward(points: torch.Tensor) -> torch.Tensor:
        return model(points)[None]

    before = task.evaluate(forward)
    for _ in range(200):
        inputs, targets = data.sample(512, generator)
        loss = task.loss(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = task.evaluate(forward)
    assert after["validation_loss"].item() < 0.35 * before["validation_loss"].item()
    assert after["occupancy_iou"].item() > 0.3
    assert after["occupancy_accuracy"].item() > 0.85
    # A map robot 0 never scanned (the right-hand room) is still predicted there from pooled data.
    picture = task.render_map(model)
    assert 0.0 <= task.unseen_region_accuracy(picture, 0) <= 1.0
    assert task.unseen_region_accuracy(picture, 0) > 0.8
    seen = task.coverage_mask(0)
    assert seen[:, : task.grid.cols // 2].mean() > seen[:, -task.grid.cols // 4 :].mean()  # robot 0: left room


@pytest.mark.parametrize("name", ["mapping_office", "mapping_office_paper", "mapping_campus_wing"])
def test_experiment_configs_validate(name: str) -> None:
    import dinno_core
    from dinno_core.config import load_experiment_config

    path = Path(dinno_core.__file__).parent / "configs" / f"{name}.yaml"
    config = load_experiment_config(path)
    assert isinstance(config.task, MappingTaskConfig)
    assert config.graph.kind == "disk" and config.num_robots >= 7


def test_mapping_experiment_writes_maps_and_unseen_regions_the_same_in_worker_processes(
    two_rooms: tuple[Path, Path], tmp_path: Path, restore_torch_threads: None
) -> None:
    import json

    import yaml

    from dinno_core.experiment import main

    config = {
        "name": "two_rooms_small", "seed": 1, "rounds": 6, "eval_every": 3, "torch_threads": 1,
        "task": small_config(two_rooms, samples_per_beam=8).model_dump(mode="json"),
        "graph": {"kind": "disk", "num_robots": 2, "radius": 20.0},
        "algorithms": {"dinno": {"kind": "dinno", "rho_init": 0.05, "primal_steps": 2, "batch_size": 64},
                       "individual": {"kind": "individual", "batch_size": 64}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert main([str(path), "--out", str(serial)]) == 0
    assert main([str(path), "--out", str(parallel), "--jobs", "2"]) == 0
    for out in (serial, parallel):
        for picture in ("maps.png", "maps_dinno.png", "maps_individual.png", "validation_loss.png"):
            assert (out / picture).stat().st_size > 1000, picture
    unseen = json.loads((serial / "unseen_regions.json").read_text())
    assert set(unseen) == {"dinno", "individual"} and len(unseen["dinno"]) == 2
    # Each robot drives one room, so each has unseen cells; the replayed task's coverage (used
    # by the worker-process run) must be the same as the serial run's.
    assert all(0.0 <= robot["accuracy"] <= 1.0 for robot in unseen["dinno"])
    assert json.loads((parallel / "unseen_regions.json").read_text()) == unseen
    one, two = (json.loads((out / "results.json").read_text())["algorithms"] for out in (serial, parallel))
    assert {name: a["final"] for name, a in one.items()} == {name: a["final"] for name, a in two.items()}
