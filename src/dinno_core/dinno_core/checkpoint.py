"""Checkpoints: atomic save/load of algorithm state, and moving between team and robot states."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically: a crash mid-write never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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
