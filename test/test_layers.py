"""The layers: the core, and the plain parts of dinno_ros under the node (exchange, trainer, data
sources, settings, team spec), import and work without rclpy; no module imports in a cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

PLAIN_MODULES = ["dinno_core", "dinno_core.experiment", "dinno_core.team", "dinno_core.tasks.mapping.team_analysis",
                 "dinno_ros.exchange", "dinno_ros.exchange_records", "dinno_ros.trainer", "dinno_ros.robot_report",
                 "dinno_ros.data_sources", "dinno_ros.robot_settings", "dinno_ros.parameters",
                 "dinno_ros.ros_names", "dinno_ros.weights_codec", "dinno_ros.team_config", "dinno_ros.process_spec",
                 "dinno_ros.team_spec", "dinno_ros.launch_plans", "dinno_ros.supervisor"]

BLOCK_RCLPY = """
import sys
class _NoRos:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("rclpy", "launch", "launch_ros"):
            raise ImportError(f"{name} is blocked: this module must work without ROS")
        return None
sys.meta_path.insert(0, _NoRos())
"""


@pytest.mark.parametrize("module", PLAIN_MODULES)
def test_module_imports_without_rclpy(module):
    code = BLOCK_RCLPY + f"import {module}\nassert 'rclpy' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def test_a_trainer_trains_without_rclpy():
    code = BLOCK_RCLPY + """
import threading
from dinno_core.algorithms.config import LocalConfig
from dinno_core.tasks.convex import ConvexTaskConfig
from dinno_ros.robot_settings import RobotSettings
from dinno_ros.trainer import RobotTrainer
settings = RobotSettings(robot_id="r0", team=("r0",), algorithm=LocalConfig(batch_size=2), task=ConvexTaskConfig(),
                         rounds=3)
trainer = RobotTrainer(settings)
trainer.run(threading.Event())
assert trainer.finished and trainer.round == 3
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def _imports(path: Path, package_root: Path) -> set[str]:
    """Modules of our packages that ``path`` imports at its top level (not inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.If):  # TYPE_CHECKING blocks are not imports at run time
            continue
    return {name for name in found if name.split(".")[0] in ("dinno_core", "dinno_ros")}


def test_no_import_cycle_between_modules():
    import networkx as nx

    modules: dict[str, Path] = {}
    for package in ("dinno_core", "dinno_ros"):
        root = SRC / package
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        for imported in _imports(path, SRC):
            if imported in modules and imported != name:
                graph.add_edge(name, imported)
    # A package's __init__ re-exporting its modules is not a cycle of the code's layers.
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    graph.remove_edges_from([(m, p) for m, p in list(graph.edges) if p in packages and m.startswith(p + ".")])
    cycles = list(nx.simple_cycles(graph))
    assert cycles == [], cycles


def test_only_the_algorithms_change_an_algorithms_state():
    """No ``.parameter.data`` / ``.round =`` write to an algorithm outside dinno_core/algorithms."""
    import re

    pattern = re.compile(r"\.parameter\.data\b|\balgorithm\w*\.round\s*[-+*/]?=(?!=)")
    offenders = []
    for path in SRC.rglob("*.py"):
        if "dinno_core/algorithms" in path.as_posix():
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_robot_node_is_a_thin_shell_and_no_module_does_several_jobs():
    node = SRC / "dinno_ros" / "dinno_ros" / "robot_node.py"
    assert len(node.read_text().splitlines()) < 250
    big = {path.name: n for path in (SRC / "dinno_ros" / "dinno_ros").glob("*.py")
           if (n := len(path.read_text().splitlines())) > 450}
    assert big == {}
