"""The paper's MNIST experiment: a small CNN, each robot holding (by default) ONE digit class.

Images come from, in order of preference for ``source: auto``: an ``.npz`` named in the config,
torchvision's MNIST already on disk under ``root``, the project's ``shared/data/mnist10k.npz``
(``DINNO_MNIST_NPZ`` or a search upward from the working directory and from this file). The
``digits`` source uses scikit-learn's bundled 8×8 digits scaled into the MNIST frame (no
download; used by the tests).
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from torch import Tensor, nn

from dinno_core.config_paths import resolve_path
from dinno_core.tasks.base import Forward, Task, TensorData

logger = logging.getLogger(__name__)

NUM_CLASSES = 10
IMAGE_SIZE = 28
MNIST_MEAN = 0.1307
"""Standard MNIST pixel mean (of x/255); fixed so no robot needs the pooled data's statistics."""
MNIST_STD = 0.3081
SHARED_NPZ = Path("shared/data/mnist10k.npz")
NPZ_ENV_VAR = "DINNO_MNIST_NPZ"
DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0
"""The digits train/test split is fixed (like MNIST's), independent of the experiment seed."""


def build_mnist_cnn() -> nn.Module:
    """The paper's CNN: Conv(1→3, 5×5)–ReLU–MaxPool2–Flatten–FC 432→64–ReLU–FC 64→10 (28,440 params).

    Input ``[B, 1, 28, 28]`` normalized images, output logits ``[B, 10]``. Buffer-free and
    batch-norm-free, so it runs under ``functional_call`` + ``vmap`` over robots.
    """
    return nn.Sequential(
        nn.Conv2d(1, 3, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3 * 12 * 12, 64),
        nn.ReLU(),
        nn.Linear(64, NUM_CLASSES),
    )


# --------------------------------------------------------------------------- configuration


class MnistTaskConfig(BaseModel):
    """Where the digits come from and how they are dealt out to robots."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["mnist"] = "mnist"
    source: Literal["auto", "npz", "torchvision", "digits"] = "auto"
    path: Path | None = None
    """An ``.npz`` with ``train_images, train_labels, test_images, test_labels`` (uint8 ``[N, 28, 28]``)."""
    root: Path | None = None
    """torchvision's MNIST root directory."""
    download: bool = False
    """Let torchvision download MNIST into ``root`` (never in tests)."""
    split: Literal["by_class", "iid"] = "by_class"
    max_train_per_class: int | None = Field(default=None, ge=1)
    """Keep only the first k training images of each class (quick runs)."""
    max_test: int | None = Field(default=None, ge=1)
    """Keep only the first k test images (quick runs)."""

    @field_validator("path", "root")
    @classmethod
    def _relative_to_the_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = resolve_path(value, info)
        if info.field_name == "path" and not path.is_file():
            raise ValueError(f"no such file: {path} (an .npz with train_images, train_labels, test_images, "
                             "test_labels)")
        return path

    @model_validator(mode="after")
    def _source_has_its_location(self) -> MnistTaskConfig:
        if self.source == "torchvision" and self.root is None:
            raise ValueError("source 'torchvision' needs field 'root'")
        if self.download and self.root is None:
            raise ValueError("download: true needs field 'root' (where to put MNIST)")
        return self


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class DigitArrays:
    """Raw images (uint8 ``[N, 28, 28]``) and labels (int64 ``[N]``) of a train/test split."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    origin: str


class MnistNotFoundError(FileNotFoundError):
    """No configured or discoverable MNIST source was available."""


def load_npz(path: Path) -> DigitArrays:
    """Reads an ``.npz`` with keys ``train_images, train_labels, test_images, test_labels``."""
    try:
        with np.load(path) as archive:
            missing = {"train_images", "train_labels", "test_images", "test_labels"} - set(archive.files)
            if missing:
                raise ValueError(f"{path} lacks keys {sorted(missing)}")
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, AttributeError, TypeError) as error:
        raise ValueError(f"{path} is not a readable .npz archive ({type(error).__name__}: {error})") from None
    except ValueError as error:
        if "lacks keys" in str(error):
            raise
        raise ValueError(f"{path} is not an .npz archive ({error})") from None
    for key in ("train_images", "test_images"):
        if arrays[key].shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"{path}: {key} has shape {arrays[key].shape}, expected [N, 28, 28]")
    return DigitArrays(
        arrays["train_images"].astype(np.uint8),
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"].astype(np.uint8),
        arrays["test_labels"].astype(np.int64),
        origin=f"npz:{path}",
    )


def load_torchvision(root: Path, download: bool) -> DigitArrays:
    """torchvision's MNIST under ``root``; raises ``ImportError`` / ``RuntimeError`` if unavailable."""
    from torchvision.datasets import MNIST  # optional dependency

    train = MNIST(str(root), train=True, download=download)
    test = MNIST(str(root), train=False, download=download)
    return DigitArrays(
        train.data.numpy().astype(np.uint8),
        train.targets.numpy().astype(np.int64),
        test.data.numpy().astype(np.uint8),
        test.targets.numpy().astype(np.int64),
        origin=f"torchvision:{root}",
    )


def load_sklearn_digits() -> DigitArrays:
    """scikit-learn's 1,797 bundled 8×8 digits, upsampled to 20×20 and centred in 28×28 like MNIST.

    Split 75/25 stratified with a fixed seed; pixel values are rescaled from 0..16 to 0..255.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = F.interpolate(images, size=(20, 20), mode="bilinear", align_corners=False)
    images = F.pad(images, (4, 4, 4, 4)).squeeze(1)
    pixels = (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        pixels, labels, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=labels
    )
    return DigitArrays(train_x, train_y, test_x, test_y, origin="sklearn-digits")


def find_shared_npz(start_dirs: list[Path] | None = None) -> tuple[Path | None, list[str]]:
    """The 10k-digit npz from ``$DINNO_MNIST_NPZ`` or ``shared/data/mnist10k.npz`` above the cwd or this file.

    Returns ``(path or None, list of places looked)``.
    """
    tried: list[str] = []
    env_path = os.environ.get(NPZ_ENV_VAR)
    if env_path:
        tried.append(f"${NPZ_ENV_VAR}={env_path}")
        if Path(env_path).is_file():
            return Path(env_path), tried
    else:
        tried.append(f"${NPZ_ENV_VAR} (unset)")
    starts = start_dirs if start_dirs is not None else [Path.cwd(), Path(__file__).resolve().parent]
    for start in starts:
        for directory in [start.resolve(), *start.resolve().parents]:
            candidate = directory / SHARED_NPZ
            if candidate.is_file():
                return candidate, tried
        tried.append(f"{SHARED_NPZ} in {start} and its parents")
    return None, tried


def load_digit_arrays(config: MnistTaskConfig) -> DigitArrays:
    """Loads images as ``config.source`` asks; ``auto`` tries npz path → torchvision on disk → shared npz."""
    if config.source == "digits":
        return load_sklearn_digits()
    if config.source == "torchvision":
        return load_torchvision(config.root, config.download)
    tried: list[str] = []
    if config.path is not None:  # the file the config names, or an error: never another file
        if config.path.is_file():
            return load_npz(config.path)
        raise MnistNotFoundError(f"path {config.path}: no such file")
    if config.source == "auto":
        if config.root is None:
            tried.append("torchvision (no 'root' configured)")
        else:
            try:
                return load_torchvision(config.root, config.download)
            except ImportError:
                tried.append("torchvision (not installed)")
            except RuntimeError as error:  # torchvision: "Dataset not found"
                tried.append(f"torchvision under {config.root} ({error})")
    found, looked = find_shared_npz()
    tried.extend(looked)
    if found is not None:
        return load_npz(found)
    raise MnistNotFoundError(
        "no MNIST data found; tried: " + "; ".join(tried) + ". Set 'path', 'root' (+ download: true), "
        f"${NPZ_ENV_VAR}, or use source: digits"
    )


# --------------------------------------------------------------------------- preparation and splits


def normalize_images(pixels: np.ndarray) -> Tensor:
    """uint8 ``[N, 28, 28]`` → float32 ``[N, 1, 28, 28]`` as ``(x/255 − mean) / std``."""
    images = torch.from_numpy(np.ascontiguousarray(pixels)).to(torch.float32).div_(255.0)
    return images.sub_(MNIST_MEAN).div_(MNIST_STD).unsqueeze(1)


def cap_per_class(labels: np.ndarray, limit: int | None) -> np.ndarray:
    """Indices of the first ``limit`` examples of each class, in dataset order (all if None)."""
    if limit is None:
        return np.arange(len(labels))
    keep = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        keep[np.flatnonzero(labels == label)[:limit]] = True
    return np.flatnonzero(keep)


def robot_classes(num_robots: int) -> list[list[int]]:
    """Digit classes each robot holds under ``by_class``.

    ``N = 10``: robot i holds digit i. ``N < 10``: round-robin, robot i holds ``i, i+N, …``.
    ``N > 10``: robot i holds digit ``i mod 10`` and shares it with the other robots of that
    residue (each gets an equal shard of the class).
    """
    if num_robots <= NUM_CLASSES:
        return [list(range(i, NUM_CLASSES, num_robots)) for i in range(num_robots)]
    return [[i % NUM_CLASSES] for i in range(num_robots)]


def split_indices(labels: np.ndarray, num_robots: int, split: str, seed: int) -> list[np.ndarray]:
    """Training-example indices for each robot; deterministic given ``seed``."""
    rng = np.random.default_rng(seed)
    if split == "iid":
        return [np.sort(shard) for shard in np.array_split(rng.permutation(len(labels)), num_robots)]
    if split != "by_class":
        raise ValueError(f"unknown split '{split}'")
    classes = robot_classes(num_robots)
    shards: list[list[np.ndarray]] = [[] for _ in range(num_robots)]
    for digit in range(NUM_CLASSES):
        holders = [robot for robot, held in enumerate(classes) if digit in held]
        members = rng.permutation(np.flatnonzero(labels == digit))
        for robot, shard in zip(holders, np.array_split(members, len(holders))):
            shards[robot].append(shard)
    return [np.sort(np.concatenate(parts)) if parts else np.array([], dtype=np.int64) for parts in shards]


# --------------------------------------------------------------------------- the task


class MnistTask(Task):
    """Digit classification with the paper's CNN; validation is the test set.

    ``robot_data(N)`` deals the training set out by class (the paper's setting) or i.i.d.
    """

    name = "mnist"

    def __init__(
        self,
        train_images: Tensor,
        train_labels: Tensor,
        test_images: Tensor,
        test_labels: Tensor,
        split: Literal["by_class", "iid"] = "by_class",
        seed: int = 0,
        eval_chunk: int = 1000,
        origin: str = "tensors",
    ) -> None:
        self.train_images = train_images
        self.train_labels = train_labels
        self.test_images = test_images
        self.test_labels = test_labels
        self.split = split
        self.seed = seed
        self.eval_chunk = eval_chunk
        self.origin = origin
        """Where the images came from (for logs)."""

    def build_model(self) -> nn.Module:
        return build_mnist_cnn()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(outputs, targets)

    def robot_indices(self, num_robots: int) -> list[np.ndarray]:
        """Which training examples each robot holds."""
        return split_indices(self.train_labels.numpy(), num_robots, self.split, self.seed)

    def robot_data(self, num_robots: int) -> list[TensorData]:
        if self.split == "by_class" and num_robots != NUM_CLASSES:
            logger.warning(
                "by_class split with %d robots (not 10): classes assigned round-robin: %s",
                num_robots,
                robot_classes(num_robots),
            )
        data = []
        for robot, indices in enumerate(self.robot_indices(num_robots)):
            if len(indices) == 0:
                raise ValueError(f"robot {robot} got no training data ({self.split} split, N={num_robots})")
            index = torch.from_numpy(indices)
            data.append(TensorData(self.train_images[index], self.train_labels[index]))
        return data

    def pooled_data(self) -> TensorData:
        return TensorData(self.train_images, self.train_labels)

    @torch.no_grad()
    def evaluate(self, forward: Forward) -> dict[str, Tensor]:
        """Per-robot mean test cross-entropy (``validation_loss``) and top-1 ``accuracy``, each ``[R]``."""
        loss_sum: Tensor | None = None
        correct: Tensor | None = None
        for start in range(0, len(self.test_labels), self.eval_chunk):
            inputs = self.test_images[start : start + self.eval_chunk]
            labels = self.test_labels[start : start + self.eval_chunk]
            logits = forward(inputs)  # [R, V, 10]
            robots, count = logits.shape[:2]
            losses = F.cross_entropy(
                logits.reshape(robots * count, -1), labels.repeat(robots), reduction="none"
            ).view(robots, count)
            hits = (logits.argmax(dim=-1) == labels).to(torch.float64)
            chunk_loss, chunk_correct = losses.to(torch.float64).sum(dim=1), hits.sum(dim=1)
            loss_sum = chunk_loss if loss_sum is None else loss_sum + chunk_loss
            correct = chunk_correct if correct is None else correct + chunk_correct
        total = len(self.test_labels)
        return {
            "validation_loss": (loss_sum / total).to(torch.float32),
            "accuracy": (correct / total).to(torch.float32),
        }


def build_task(config: MnistTaskConfig, num_robots: int, seed: int) -> MnistTask:
    """Loads the data the config names, applies the caps, and checks ``num_robots`` can be served."""
    arrays = load_digit_arrays(config)
    keep = cap_per_class(arrays.train_labels, config.max_train_per_class)
    test_count = len(arrays.test_labels) if config.max_test is None else config.max_test
    logger.info(
        "MNIST from %s: %d train, %d test images", arrays.origin, len(keep), min(test_count, len(arrays.test_labels))
    )
    task = MnistTask(
        normalize_images(arrays.train_images[keep]),
        torch.from_numpy(arrays.train_labels[keep]),
        normalize_images(arrays.test_images[:test_count]),
        torch.from_numpy(arrays.test_labels[:test_count]),
        split=config.split,
        seed=seed,
        origin=arrays.origin,
    )
    sizes = [len(indices) for indices in task.robot_indices(num_robots)]
    if min(sizes) == 0:
        raise ValueError(f"with {num_robots} robots some robot gets no training data (shard sizes {sizes})")
    return task
