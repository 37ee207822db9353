"""Paths inside a config: relative ones start at the config file's folder.

A model validated from a file gets the file's folder in its validation context
(``dinno_core.config.validate(..., base_dir=...)``); its path fields call :func:`resolve_path`.
Validated without one (a robot node's ROS parameters), a relative path starts at the working
directory.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationInfo

CONFIG_DIR = "config_dir"
"""Validation-context key: the folder of the config file being read."""


def resolve_path(value: str | Path, info: ValidationInfo | None) -> Path:
    """``value`` as a path, relative ones from the config file's folder when there is one."""
    path = Path(value).expanduser()
    base = (info.context or {}).get(CONFIG_DIR) if info is not None else None
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path
