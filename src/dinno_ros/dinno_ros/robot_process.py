"""Start robot nodes as separate processes (tests, benchmarks, scripts without ros2 launch).

``write_params_file`` writes a ROS parameters YAML (``/**: ros__parameters: ...``) from a nested
dict; ``robot_command`` is the command line of one robot. The environment is passed through
unchanged: the ros-* wheels' re-exec hook needs LD_LIBRARY_PATH and its marker together.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def write_params_file(path: str | Path, parameters: dict[str, Any]) -> Path:
    """``parameters`` (nested dicts allowed: ``{"algorithm": {"kind": "dinno"}}``) as a params file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters}}, sort_keys=False))
    return path


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return str(value)


def robot_command(robot_id: str, params_file: str | Path | None = None, overrides: dict[str, Any] | None = None,
                  python: str = sys.executable) -> list[str]:
    """``python -m dinno_ros.robot_node --ros-args -r __ns:=/<robot_id> [--params-file F] -p k:=v ...``."""
    command = [python, "-m", "dinno_ros.robot_node", "--ros-args", "-r", f"__ns:=/{robot_id}"]
    if params_file is not None:
        command += ["--params-file", str(params_file)]
    command += ["-p", f"robot_id:={robot_id}"]
    for name, value in (overrides or {}).items():
        command += ["-p", f"{name}:={_literal(value)}"]
    return command


def start_robot(robot_id: str, params_file: str | Path | None = None, overrides: dict[str, Any] | None = None,
                env: dict[str, str] | None = None, log_path: str | Path | None = None) -> subprocess.Popen:
    """Start one robot process; stdout and stderr go to ``log_path`` (or are inherited)."""
    out = open(log_path, "wb") if log_path is not None else None  # noqa: SIM115 - owned by the child
    try:
        return subprocess.Popen(robot_command(robot_id, params_file, overrides), env=env if env is not None else dict(os.environ),
                                stdout=out, stderr=subprocess.STDOUT if out else None)
    finally:
        if out is not None:
            out.close()


def stop_robots(processes: Sequence[subprocess.Popen], sig: int = signal.SIGINT, timeout: float = 30.0) -> list[int | None]:
    """Send ``sig`` to each running robot, wait up to ``timeout`` s, kill what is left; exit codes."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(sig)
    codes = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            codes.append(None)
    return codes


def complete_neighbours(team: Sequence[str], robot_id: str) -> list[str]:
    return [r for r in team if r != robot_id]


def cycle_neighbours(team: Sequence[str], robot_id: str) -> list[str]:
    i, n = team.index(robot_id), len(team)
    return sorted({team[(i - 1) % n], team[(i + 1) % n]} - {robot_id}, key=team.index)
