"""The two ways this workspace is built, checked for real.

* pip route (what ``make`` does): ``dinno_msgs`` built by scikit-build-core into the venv;
  a WeightUpdate must survive rclpy serialization bit-exactly.
* colcon route (what ROS users do on a robot): ``colcon build`` of src/ in a temporary copy
  of the workspace against the venv's ROS (``AMENT_PREFIX_PATH=sys.prefix``), then, in a
  fresh shell that sourced ``install/setup.bash``, the messages and both Python packages
  must import from the colcon install, and dinno_ros' launch/config files (top-level
  ``launch/`` and ``config/``, reached through symlinks) must be in share/dinno_ros.

Missing tools are failures with a clear message, never skips.
"""

from __future__ import annotations

import array
import glob
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.prefix) / "bin"
PACKAGES = ("dinno_msgs", "dinno_core", "dinno_ros")
EXECUTABLES = ("robot_node", "lidar_sim", "dinno-team", "dinno-demo")


def _require_tool(name: str, hint: str) -> str:
    path = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if path is None:
        pytest.fail(f"'{name}' not found on PATH or in {VENV_BIN}: {hint}", pytrace=False)
    return path


def _weight_update(n: int = 1000):
    try:
        from dinno_msgs.msg import WeightUpdate
    except ImportError as exc:  # pragma: no cover - message for humans
        pytest.fail(f"dinno_msgs is not installed in {sys.prefix} ({exc}); run `make msgs`", pytrace=False)
    values = np.random.default_rng(1234).standard_normal(n).astype("<f4")
    values[:4] = [np.inf, -0.0, np.finfo(np.float32).tiny, np.float32(1.0) / 3]  # awkward bits
    msg = WeightUpdate()
    msg.header.stamp.sec = 1_700_000_000
    msg.header.stamp.nanosec = 123_456_789
    msg.sender = "robot_7"
    msg.round = 4_000_000_000
    msg.fingerprint = 0xFEDC_BA98_7654_3210
    msg.num_params = n
    msg.num_vectors = 1
    msg.degree = 65_535
    msg.encoding = WeightUpdate.ENCODING_FLOAT32
    payload = array.array("B")
    payload.frombytes(memoryview(values).cast("B"))  # one copy: the fastest way measured
    msg.payload = payload
    return msg, values


# --------------------------------------------------------------------------------------------
# pip route
# --------------------------------------------------------------------------------------------
def test_pip_msgs_weight_update_roundtrip_bit_exact():
    from rclpy.serialization import deserialize_message, serialize_message

    msg, values = _weight_update(1000)
    WeightUpdate = type(msg)
    assert WeightUpdate.ENCODING_FLOAT32 == 0 and WeightUpdate.ENCODING_FLOAT16 == 1

    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 4000
    back = deserialize_message(data, WeightUpdate)

    assert back == msg
    received = np.frombuffer(back.payload, dtype="<f4")  # zero-copy view of the payload
    assert received.shape == (1000,)
    assert received.tobytes() == values.tobytes()  # bit-exact, -0.0 and inf included
    assert (back.sender, back.round, back.fingerprint) == ("robot_7", 4_000_000_000, 0xFEDC_BA98_7654_3210)
    assert (back.num_params, back.num_vectors, back.degree, back.encoding) == (1000, 1, 65_535, 0)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (1_700_000_000, 123_456_789)


def test_pip_msgs_robot_status_roundtrip():
    from dinno_msgs.msg import RobotStatus
    from rclpy.serialization import deserialize_message, serialize_message

    msg = RobotStatus(
        robot="robot_1", round=12, training_loss=0.25, neighbour_distance=float("nan"), rho=0.5,
        round_rate=3.0, neighbours_heard=["robot_0", "robot_2"], messages_dropped=3,
    )
    back = deserialize_message(serialize_message(msg), RobotStatus)
    assert back.robot == "robot_1" and back.round == 12 and back.messages_dropped == 3
    assert list(back.neighbours_heard) == ["robot_0", "robot_2"]
    assert (back.training_loss, back.rho, back.round_rate) == (0.25, 0.5, 3.0)
    assert np.isnan(back.neighbour_distance)


def test_pip_msgs_installed_into_venv_prefix():
    """Installed where the ros-* wheels put theirs, without the stray egg-info (pitfall 3)."""
    import dinno_msgs

    site = Path(sysconfig.get_paths()["purelib"])
    assert Path(dinno_msgs.__file__).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert not list(site.glob("dinno_msgs-*.egg-info")), "stray ament_cmake_python egg-info installed"
    prefix = Path(sys.prefix)
    assert (prefix / "share/ament_index/resource_index/packages/dinno_msgs").is_file()
    assert (prefix / "share/dinno_msgs/msg/WeightUpdate.msg").is_file()


# --------------------------------------------------------------------------------------------
# colcon route
# --------------------------------------------------------------------------------------------
_CHECK_INSTALL = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from ament_index_python.packages import get_package_share_directory
    from rclpy.serialization import deserialize_message, serialize_message
    import dinno_msgs, dinno_core, dinno_ros
    from dinno_msgs.msg import RobotStatus, WeightUpdate

    v = np.arange(1000, dtype="<f4")
    m = WeightUpdate(sender="r", num_params=1000, num_vectors=1, payload=v.tobytes())
    back = deserialize_message(serialize_message(m), WeightUpdate)
    json.dump({
        "modules": {mod.__name__: os.path.realpath(mod.__file__)
                    for mod in (dinno_msgs, dinno_core, dinno_ros)},
        "roundtrip": np.frombuffer(back.payload, "<f4").tobytes() == v.tobytes(),
        "share": {p: os.path.realpath(get_package_share_directory(p))
                  for p in ("dinno_msgs", "dinno_core", "dinno_ros")},
        "status": str(RobotStatus()),
    }, sys.stdout)
    """
)


def _copy_workspace(dest: Path) -> tuple[set[str], set[str]]:
    """Copy what colcon needs (src/, launch/, config/, colcon.meta), keeping symlinks.

    Adds one probe launch file and one probe config file so that the symlink + data_files
    route is exercised even before the real ones exist. Returns the expected file names.
    """
    ignore = shutil.ignore_patterns("build", "install", "log", "*.egg-info", "__pycache__", "*.pyc")
    shutil.copytree(REPO / "src", dest / "src", symlinks=True, ignore=ignore)
    for name in ("launch", "config"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name, symlinks=False, ignore=ignore)
        else:
            (dest / name).mkdir()
    shutil.copy2(REPO / "colcon.meta", dest / "colcon.meta")
    (dest / "launch/zz_build_probe.launch.py").write_text("# probe written by test_workspace_build\n")
    (dest / "config/zz_build_probe.yaml").write_text("probe: true\n")
    for link in ("launch", "config"):
        assert (dest / "src/dinno_ros" / link).is_symlink(), f"src/dinno_ros/{link} must be a symlink to ../../{link}"
    launch = {Path(p).name for p in glob.glob(str(dest / "launch/*.launch.py"))}
    config = {Path(p).name for p in glob.glob(str(dest / "config/*.yaml"))}
    return launch, config


ONE_ROBOT_TEAM = textwrap.dedent(
    """
    name: one_robot
    seed: 0
    rounds: 5
    round_timeout: 1.0
    robots: 1
    graph: {kind: complete}
    task: {name: linear_regression, num_features: 3, rows_per_robot: 4}
    algorithm: {kind: individual, batch_size: 0, optimizer: {name: sgd}, lr: {kind: constant, start: 0.05}}
    """
)


def _colcon_env() -> dict[str, str]:
    env = dict(os.environ)  # passed through: keeps the ros-* wheels' LD_LIBRARY_PATH bootstrap
    env["AMENT_PREFIX_PATH"] = sys.prefix  # pitfall 1: else "No 'rosidl_typesupport_c' found"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module", params=[False, True], ids=["copy", "symlink-install"])
def colcon_workspace(request, tmp_path_factory) -> dict:
    """A workspace with this repository's packages built by ``colcon build`` (plain, and
    ``--symlink-install`` as the README's robot route does). Built once per mode."""
    symlink = request.param
    colcon = _require_tool("colcon", "install colcon-common-extensions (requirements.txt)")
    _require_tool("cmake", "cmake >= 3.16 is needed to build dinno_msgs")
    if not (shutil.which("c++") or shutil.which("g++")):
        pytest.fail("no C++ compiler (c++/g++) on PATH: needed for the rosidl type supports", pytrace=False)
    root = tmp_path_factory.mktemp("symlink" if symlink else "copy")
    ws = root / "ws"
    ws.mkdir()
    launch_files, config_files = _copy_workspace(ws)
    env = _colcon_env()
    build = subprocess.run(
        [colcon, "--log-base", "log", "build", "--base-paths", "src", "--build-base", "build",
         "--install-base", "install", "--event-handlers", "console_cohesion+", "status-", "summary+",
         *(["--symlink-install"] if symlink else [])],
        cwd=ws, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=540,
    )
    return {"root": root, "ws": ws, "symlink": symlink, "env": env, "build": build,
            "launch_files": launch_files, "config_files": config_files}


def _sourced(ws: Path, command: str) -> str:
    """A bash script: the venv's ROS underneath, the workspace's install/setup.bash on top."""
    return (f'set -eo pipefail; export AMENT_PREFIX_PATH="{sys.prefix}"; '
            f'source "{ws / "install" / "setup.bash"}"; {command}')


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_colcon_build_workspace(colcon_workspace):
    ws, build, env = colcon_workspace["ws"], colcon_workspace["build"], colcon_workspace["env"]
    bash = _require_tool("bash", "bash is needed to source install/setup.bash")
    assert build.returncode == 0, f"colcon build failed (exit {build.returncode}):\n{build.stdout[-12000:]}"
    assert "-DBUILD_TESTING=OFF" in (ws / "log/latest_build/dinno_msgs/command.log").read_text(), \
        "colcon.meta's cmake-args were not applied"

    install = ws / "install"
    check = subprocess.run(
        [bash, "-c", _sourced(ws, 'exec python -c "$CHECK"')], cwd=colcon_workspace["root"],
        env={**env, "CHECK": _CHECK_INSTALL}, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120,
    )
    assert check.returncode == 0, f"import check in the sourced workspace failed:\n{check.stderr[-8000:]}"
    report = json.loads(check.stdout)

    for name, path in report["modules"].items():
        # --symlink-install: the Python packages are the workspace's sources, linked.
        assert Path(path).is_relative_to(install.resolve() if not colcon_workspace["symlink"] else ws.resolve()), \
            f"{name} imported from {path}, not the colcon workspace"
    for name, path in report["share"].items():
        assert Path(path) == (install / name / "share" / name).resolve(), f"share dir of {name}: {path}"
    assert report["roundtrip"] is True
    assert "neighbours_heard=[]" in report["status"]

    share = install / "dinno_ros/share/dinno_ros"
    assert (share / "package.xml").is_file()
    assert {p.name for p in (share / "launch").glob("*.launch.py")} == colcon_workspace["launch_files"]
    assert {p.name for p in (share / "config").glob("*.yaml")} == colcon_workspace["config_files"]
    lib = install / "dinno_ros/lib/dinno_ros"
    missing = [exe for exe in EXECUTABLES if not (lib / exe).is_file()]
    assert not missing, f"executables missing from {lib} (setup.cfg install_scripts): {missing}"
    assert (install / "dinno_core/share/dinno_core/package.xml").is_file()
    assert (install / "dinno_msgs/share/dinno_msgs/msg/WeightUpdate.msg").is_file()


def _launch_one_robot(command_prefix: str, env: dict[str, str], cwd: Path, bash: str) -> tuple[Path, str]:
    """``ros2 launch dinno_ros robot_hardware.launch.py`` with a one-robot, five-round team:
    the node trains, writes its results (creating the folder) and exits, then the launch ends."""
    config = cwd / "one_robot.yaml"
    config.write_text(ONE_ROBOT_TEAM)
    results = cwd / "results"
    launch = (f"ros2 launch dinno_ros robot_hardware.launch.py robot_id:=robot_0 "
              f"team_config:={config} results_dir:={results}")
    run = subprocess.run([bash, "-c", command_prefix + launch], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=240,
                         start_new_session=True)
    assert run.returncode == 0, f"ros2 launch exited {run.returncode}:\n{run.stdout[-6000:]}"
    return results, run.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ros2_launch_from_colcon_install(colcon_workspace, ros_env):
    """The README's robot route: `ros2 launch dinno_ros ...` finds the launch file and the node
    executable in the sourced workspace (not in the venv) and the node runs to its end."""
    from launch_tools import ros2_launch_or_skip

    ros2_launch_or_skip()
    bash = _require_tool("bash", "bash is needed to source install/setup.bash")
    if colcon_workspace["build"].returncode != 0:
        pytest.fail("colcon build failed (see test_colcon_build_workspace)", pytrace=False)
    ws = colcon_workspace["ws"]
    cwd = colcon_workspace["root"] / "launch_run"
    cwd.mkdir()
    env = {**colcon_workspace["env"], **{k: v for k, v in ros_env.items() if k.startswith("ROS_")}}
    prefix = _sourced(ws, 'test "$(ros2 pkg prefix dinno_ros)" = "' + str(ws / "install" / "dinno_ros") + '"; ')
    results, output = _launch_one_robot(prefix, env, cwd, bash)
    exe = ws / "install" / "dinno_ros" / "lib" / "dinno_ros" / "robot_node"
    assert str(exe) in output or "robot_node-1" in output, output[-4000:]
    data = json.loads((results / "robots" / "robot_0.json").read_text())
    assert data["rounds_done"] == 5 and data["finished"] is True
    assert (results / "robots" / "robot_0.weights.npy").is_file()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ros2_launch_from_venv(tmp_path, ros_env):
    """The pip route: with AMENT_PREFIX_PATH=.venv, `ros2 pkg executables` lists the nodes and
    `ros2 launch dinno_ros <file>` runs a node to its end, as in a colcon workspace."""
    from launch_tools import launch_env, ros2_launch_or_skip

    ros2_launch_or_skip()
    bash = _require_tool("bash", "bash is needed")
    env = launch_env(ros_env)
    listed = subprocess.run([str(VENV_BIN / "ros2"), "pkg", "executables", "dinno_ros"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert {line.split()[1] for line in listed.stdout.splitlines()} >= {"robot_node", "lidar_sim"}, listed.stdout
    share = Path(sys.prefix) / "share" / "dinno_ros"
    for folder in ("launch", "config"):
        assert not (share / folder).is_symlink(), f"{share / folder} is a link: os.walk (ros2 launch) skips it"
    results, _ = _launch_one_robot(f'export PATH="{VENV_BIN}:$PATH"; ', env, tmp_path, bash)
    assert json.loads((results / "robots" / "robot_0.json").read_text())["rounds_done"] == 5
