"""Checkpoints: atomic save/load of algorithm state, and moving between team and robot states."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

import torch
from torch import Tensor


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it and rename it over ``path``.

    A reader, or a restart after SIGKILL, sees the old file or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda stream: torch.save(state, stream))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors only, no pickled code)."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def select_robot(state: Any, robot: int, num_robots: int) -> Any:
    """Robot ``robot``'s slice of a team state: every tensor with a leading robot axis keeps
    only that row (as a batch of one), everything else is copied as is."""
    if isinstance(state, Tensor):
        return state[robot:robot + 1].clone() if state.ndim >= 1 and state.shape[0] == num_robots else state.clone()
    if isinstance(state, dict):
        return {key: select_robot(value, robot, num_robots) for key, value in state.items()}
    if isinstance(state, list | tuple):
        return type(state)(select_robot(value, robot, num_robots) for value in state)
    return state
