"""Atomic checkpoint and results files (write to a temporary file, fsync, rename)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from dinno_core.checkpoint import atomic_write

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` (tensors, optimizer state, generator states) atomically."""
    payload = {"format": CHECKPOINT_FORMAT, **state}
    atomic_write(Path(path), lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint` (tensors and plain containers only)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a dinno_ros checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def json_safe(value: Any) -> Any:
    """``value`` with NaN/Inf floats replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Strict JSON (non-finite numbers become null), written atomically."""
    text = json.dumps(json_safe(data), indent=2, allow_nan=False).encode()
    atomic_write(Path(path), lambda handle: handle.write(text))
