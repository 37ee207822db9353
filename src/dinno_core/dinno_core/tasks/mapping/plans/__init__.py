"""Built-in floor plans (map_server YAML + PGM) and their robot path sets.

Each plan ``NAME`` ships ``NAME.yaml`` + ``NAME.pgm`` and ``NAME_paths.yaml``, all produced
deterministically by :mod:`dinno_core.tasks.mapping.plans.generate`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BUILTIN_PLANS", "PLAN_DIR", "builtin_paths_yaml", "builtin_plan_yaml"]

PLAN_DIR = Path(__file__).resolve().parent
BUILTIN_PLANS: tuple[str, ...] = ("office", "campus_wing")


def builtin_plan_yaml(name: str) -> Path:
    """The map YAML of built-in plan ``name``."""
    if name not in BUILTIN_PLANS:
        raise KeyError(f"unknown built-in floor plan {name!r}; choose from {BUILTIN_PLANS} or give a map YAML path")
    return PLAN_DIR / f"{name}.yaml"


def builtin_paths_yaml(name: str) -> Path:
    """The robot path file of built-in plan ``name``."""
    if name not in BUILTIN_PLANS:
        raise KeyError(f"no built-in paths for {name!r}; choose from {BUILTIN_PLANS}")
    return PLAN_DIR / f"{name}_paths.yaml"
