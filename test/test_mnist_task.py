"""Tests for dinno_core.tasks.mnist: the paper's CNN, data sources, splits, evaluation, learnability."""

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from dinno_core.params import FlatModel
from dinno_core.tasks.mnist import (
    MnistNotFoundError,
    MnistTask,
    MnistTaskConfig,
    build_mnist_cnn,
    build_task,
    find_shared_npz,
    load_digit_arrays,
    robot_classes,
    split_indices,
)

SHARED_NPZ, _ = find_shared_npz()


@pytest.fixture(autouse=True)
def single_thread():
    """These tensors are tiny: one thread is faster and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits_task() -> MnistTask:
    return build_task(MnistTaskConfig(source="digits"), num_robots=10, seed=0)


def test_cnn_matches_paper():
    model = build_mnist_cnn()
    assert sum(p.numel() for p in model.parameters()) == 28_440
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_cnn_runs_vmapped_over_robots(digits_task):
    flat = FlatModel(digits_task.build_model(), digits_task.loss)
    theta = torch.stack([flat.initial_weights(), flat.initial_weights() * 0.5, torch.zeros(28_440)])
    inputs, targets = digits_task.pooled_data().sample(8, torch.Generator().manual_seed(0))
    losses, grads = flat.loss_and_grad(theta, inputs.expand(3, *inputs.shape), targets.expand(3, 8))
    assert losses.shape == (3,) and grads.shape == (3, 28_440)
    assert torch.isfinite(grads).all()
    assert flat.forward(theta, inputs).shape == (3, 8, 10)


def test_digits_source_shapes_and_normalization(digits_task):
    assert digits_task.train_images.shape[1:] == (1, 28, 28)
    assert digits_task.test_images.shape[1:] == (1, 28, 28)
    assert digits_task.train_images.dtype == torch.float32
    assert digits_task.train_labels.dtype == torch.int64
    assert len(digits_task.train_images) + len(digits_task.test_images) == 1797
    assert set(digits_task.train_labels.tolist()) == set(range(10))
    assert digits_task.train_images.min() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)  # background


def test_by_class_gives_each_robot_one_class(digits_task):
    data = digits_task.robot_data(10)
    assert len(data) == 10
    for robot, local in enumerate(data):
        assert set(local.targets.tolist()) == {robot}
    assert sum(len(d) for d in data) == len(digits_task.train_labels)


def test_by_class_other_team_sizes():
    assert robot_classes(3) == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    labels = np.repeat(np.arange(10), 7)
    shards = split_indices(labels, 20, "by_class", seed=1)
    assert all(set(labels[s].tolist()) == {r % 10} for r, s in enumerate(shards))
    assert sorted(np.concatenate(shards).tolist()) == list(range(70))
    assert {len(s) for s in shards} == {3, 4}


def test_iid_split_equal_shards_and_deterministic():
    labels = np.repeat(np.arange(10), 10)
    shards = split_indices(labels, 4, "iid", seed=3)
    assert [len(s) for s in shards] == [25] * 4
    assert sorted(np.concatenate(shards).tolist()) == list(range(100))
    assert all(len(set(labels[s].tolist())) > 1 for s in shards)
    again = split_indices(labels, 4, "iid", seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again))
    other = split_indices(labels, 4, "iid", seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(shards, other))


def test_caps_limit_data():
    task = build_task(MnistTaskConfig(source="digits", max_train_per_class=5, max_test=30), num_robots=10, seed=0)
    assert len(task.train_labels) == 50 and len(task.test_labels) == 30
    assert np.bincount(task.train_labels.numpy()).tolist() == [5] * 10


def test_evaluate_returns_per_robot_metrics(digits_task):
    flat = FlatModel(digits_task.build_model(), digits_task.loss)
    theta = torch.stack([flat.initial_weights(), torch.zeros(28_440)])
    digits_task.eval_chunk = 100  # exercise chunking (450 test images)
    metrics = digits_task.evaluate(lambda inputs: flat.forward(theta, inputs))
    digits_task.eval_chunk = 1000
    assert metrics["validation_loss"].shape == (2,) and metrics["accuracy"].shape == (2,)
    assert metrics["validation_loss"][1].item() == pytest.approx(np.log(10), abs=1e-5)  # zero weights: uniform
    assert 0.0 <= metrics["accuracy"].min() and metrics["accuracy"].max() <= 1.0
    whole = digits_task.evaluate(lambda inputs: flat.forward(theta, inputs))
    torch.testing.assert_close(whole["validation_loss"], metrics["validation_loss"])


def test_central_training_on_digits_learns(digits_task):
    torch.manual_seed(0)
    model = digits_task.build_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data, generator = digits_task.pooled_data(), torch.Generator().manual_seed(0)
    for _ in range(200):
        inputs, targets = data.sample(64, generator)
        optimizer.zero_grad()
        digits_task.loss(model(inputs), targets).backward()
        optimizer.step()
    with torch.no_grad():
        metrics = digits_task.evaluate(lambda inputs: model(inputs).unsqueeze(0))
    assert metrics["accuracy"].item() > 0.8


@pytest.mark.skipif(SHARED_NPZ is None, reason="shared/data/mnist10k.npz not found (optional real-MNIST data)")
def test_shared_npz_loads():
    task = build_task(MnistTaskConfig(source="npz", path=SHARED_NPZ, max_test=500), num_robots=10, seed=0)
    assert task.origin.startswith("npz:")
    assert task.train_images.shape == (8000, 1, 28, 28) and len(task.test_labels) == 500
    assert task.train_images.mean().abs() < 0.1 and (task.train_images.std() - 1).abs() < 0.1
    assert [set(d.targets.tolist()) for d in task.robot_data(10)] == [{i} for i in range(10)]


def test_explicit_npz_path(tmp_path: Path):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(20, dtype=np.uint8) % 10,
        "test_images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "test_labels": np.arange(5, dtype=np.uint8),
    }
    np.savez(tmp_path / "tiny.npz", **arrays)
    task = build_task(MnistTaskConfig(path=tmp_path / "tiny.npz"), num_robots=10, seed=0)
    assert task.train_images.shape == (20, 1, 28, 28) and task.test_labels.tolist() == [0, 1, 2, 3, 4]


def test_missing_data_lists_what_was_tried(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DINNO_MNIST_NPZ", str(tmp_path / "absent.npz"))
    monkeypatch.setattr("dinno_core.tasks.mnist.find_shared_npz", lambda: (None, ["shared npz (test stub)"]))
    with pytest.raises(MnistNotFoundError, match="torchvision.*shared npz"):
        load_digit_arrays(MnistTaskConfig())
    # A path the config names that is missing is an error naming it, never a fallback to another file.
    with pytest.raises(ValidationError, match="path\n.*no such file: .*absent_too.npz"):
        MnistTaskConfig(path=tmp_path / "absent_too.npz")


def test_env_var_locates_npz(tmp_path: Path, monkeypatch):
    target = tmp_path / "elsewhere.npz"
    target.write_bytes(b"")
    monkeypatch.setenv("DINNO_MNIST_NPZ", str(target))
    found, _ = find_shared_npz()
    assert found == target


def test_config_validation():
    with pytest.raises(ValidationError, match="extra"):
        MnistTaskConfig(sauce="digits")
    with pytest.raises(ValidationError, match="root"):
        MnistTaskConfig(source="torchvision")
    with pytest.raises(ValidationError, match="root"):
        MnistTaskConfig(download=True)
    with pytest.raises(ValidationError, match="split"):
        MnistTaskConfig(split="dirichlet")
    with pytest.raises(ValidationError, match="max_test"):
        MnistTaskConfig(max_test=0)
    assert MnistTaskConfig.model_validate({"name": "mnist", "source": "digits"}).split == "by_class"
