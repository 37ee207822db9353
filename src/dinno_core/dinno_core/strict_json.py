"""Strict JSON for results files: NaN/Inf become ``null`` (JSON has no NaN), written atomically.

The one copy of this conversion: ``dinno-experiment``'s ``results.json``, a robot node's results,
``dinno-team``'s ``team.json`` and the demo's ``summary.json`` all go through it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dinno_core.checkpoint import atomic_write


def finite_or_none(value: Any) -> float | None:
    """``float(value)``, or None for None / NaN / Inf."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def json_safe(value: Any) -> Any:
    """``value`` with NaN/Inf floats replaced by ``None``, tuples as lists (recursively)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def dumps(data: Any) -> str:
    return json.dumps(json_safe(data), indent=2, allow_nan=False)


def write_json(path: str | Path, data: Any) -> None:
    """Strict JSON (non-finite numbers become null), written atomically."""
    text = dumps(data).encode()
    atomic_write(Path(path), lambda handle: handle.write(text))
