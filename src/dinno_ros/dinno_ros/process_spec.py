"""One ROS process as data (:class:`ProcessSpec`) and the ways to start it: its parameters
flattened to ROS names, its params file, its ``--ros-args`` command line and its
``launch_ros.actions.Node`` arguments.

Pure Python (PyYAML): no rclpy, no launch import. ``dinno-team``, the launch files, the tests
and the benchmarks all build a process's command line here (:func:`process_command`).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import yaml

from dinno_ros.ros_names import is_ros_name

STATUS_TOPIC = "dinno/status"
"""Relative status topic every robot publishes under its namespace (``/<robot>/dinno/status``)."""

# ----------------------------------------------------------------------------- ROS parameters


def _parameter_value(name: str, value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = list(value)
        if all(isinstance(v, bool) for v in items):
            return items
        if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            return items
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return [float(v) for v in items]
        if all(isinstance(v, str) for v in items):
            return items
        raise ValueError(
            f"parameter {name!r}: a ROS array holds one type (bool, integer, double or string), got {value!r}"
        )
    raise ValueError(f"parameter {name!r}: {type(value).__name__} {value!r} is not a ROS parameter value")


def flatten_parameters(parameters: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings → ROS parameters with dotted names (``{"lr": {"start": 1}}`` → ``lr.start``).

    ``None`` values and empty lists are left out: a ROS parameters file can't express them
    (``[]`` loads as "not set"), so the node's default applies. Tuples become lists, integer
    members of a list with doubles become doubles.
    """
    flat: dict[str, Any] = {}
    for key, value in parameters.items():
        name = f"{prefix}{key}"
        if not isinstance(key, str) or not key or any(not is_ros_name(p) for p in key.split(".")):
            raise ValueError(f"parameter name {name!r} is not valid (letters, digits, '_', '.')")
        if isinstance(value, dict):
            flat.update(flatten_parameters(value, f"{name}."))
        elif value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        else:
            flat[name] = _parameter_value(name, value)
    return flat


# ----------------------------------------------------------------------------- the process


@dataclass(frozen=True)
class ProcessSpec:
    """One ROS process of the team: how to start it and with which parameters."""

    role: str
    """``robot``, ``simulator`` or ``bridge`` (the Gazebo launch's ros_gz_bridge)."""
    key: str
    """Robot id, ``simulator`` or ``bridge``; names the log and params files."""
    package: str
    executable: str
    module: str | None
    """Python module run by ``dinno-team`` (``python -m``); None for non-Python executables."""
    namespace: str
    node_name: str
    parameters: dict[str, Any]
    remappings: dict[str, str] = field(default_factory=dict)

    @property
    def fully_qualified_name(self) -> str:
        return f"{self.namespace.rstrip('/')}/{self.node_name}"

    @property
    def status_topic(self) -> str:
        return f"{self.namespace.rstrip('/')}/{STATUS_TOPIC}"


# ----------------------------------------------------------------------------- rendering


def params_file_name(process: ProcessSpec) -> str:
    return f"{process.key}.params.yaml"


def render_params_yaml(process: ProcessSpec) -> str:
    """The process's ROS parameters file: ``/<ns>/<node>: {ros__parameters: {...}}``.

    Strings that YAML would read as something else (``"1"``, ``"on"``) are quoted, so the rcl
    parser gets the types the spec holds.
    """
    document = {process.fully_qualified_name: {"ros__parameters": dict(process.parameters)}}
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text[:-4].strip() if text.endswith("\n...") else text.removesuffix("...").strip()


def ros_arguments(process: ProcessSpec, params_file: str | PurePath | None = None,
                  base_params_files: Iterable[str | PurePath] = ()) -> list[str]:
    """``--ros-args`` for the process: namespace, node name, parameters, remappings.

    ``base_params_files`` (e.g. a user's ``config/robot.yaml``) are loaded first; then the
    process's own parameters, from ``params_file`` (see :func:`render_params_yaml`) or else each
    as a ``-p name:=value`` (YAML flow syntax, e.g. ``team:=[a, b]``), so they win.
    """
    args = ["--ros-args", "-r", f"__ns:={process.namespace}", "-r", f"__node:={process.node_name}"]
    for path in base_params_files:
        args += ["--params-file", str(path)]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    else:
        for name, value in process.parameters.items():
            args += ["-p", f"{name}:={_yaml_value(value)}"]
    for source, target in process.remappings.items():
        args += ["-r", f"{source}:={target}"]
    return args


def process_command(process: ProcessSpec, python: str, params_file: str | PurePath | None = None,
                    base_params_files: Iterable[str | PurePath] = ()) -> list[str]:
    """``[python, -m, module, --ros-args, ...]``: the process as ``dinno-team`` starts it (the
    one way a robot's command line is built; see :func:`ros_arguments`)."""
    if process.module is None:
        raise ValueError(f"{process.key} ({process.package}/{process.executable}) is not a Python module")
    return [python, "-m", process.module, *ros_arguments(process, params_file, base_params_files)]


def command_line(command: list[str]) -> str:
    """A shell-quoted command line (for logs and ``team.json``)."""
    return shlex.join(command)


def launch_node_arguments(process: ProcessSpec, params_files: list[str]) -> dict[str, Any]:
    """Keyword arguments for ``launch_ros.actions.Node`` (names common to Humble, Jazzy, Kilted).

    ``params_files``: parameter file paths, later ones win; the launch files pass a user's file
    (if any) and then the spec's own file written with :func:`render_params_yaml`, so a node
    started by ``ros2 launch`` gets exactly the parameters ``dinno-team`` would give it (a dict
    would go through launch_ros' YAML re-typing of strings instead).
    """
    return {
        "package": process.package,
        "executable": process.executable,
        "namespace": process.namespace,
        "name": process.node_name,
        "parameters": [str(path) for path in params_files],
        "remappings": list(process.remappings.items()),
        "output": "screen",
        "emulate_tty": True,
    }


def write_params_files(processes: Iterable[ProcessSpec], directory: str | PurePath) -> dict[str, str]:
    """Write each process's params file into ``directory`` (created); returns key → path.

    The one helper here that touches the file system (used by ``dinno-team`` and the launch
    files).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for process in processes:
        path = folder / params_file_name(process)
        path.write_text(render_params_yaml(process))
        paths[process.key] = str(path)
    return paths


