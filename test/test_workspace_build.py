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


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_colcon_build_workspace(tmp_path: Path):
    colcon = _require_tool("colcon", "install colcon-common-extensions (requirements.txt)")
    _require_tool("cmake", "cmake >= 3.16 is needed to build dinno_msgs")
    if not (shutil.which("c++") or shutil.which("g++")):
        pytest.fail("no C++ compiler (c++/g++) on PATH: needed for the rosidl type supports", pytrace=False)
    bash = _require_tool("bash", "bash is needed to source install/setup.bash")

    ws = tmp_path / "ws"
    ws.mkdir()
    launch_files, config_files = _copy_workspace(ws)

    env = dict(os.environ)  # passed through: keeps the ros-* wheels' LD_LIBRARY_PATH bootstrap
    env["AMENT_PREFIX_PATH"] = sys.prefix  # pitfall 1: else "No 'rosidl_typesupport_c' found"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    build = subprocess.run(
        [colcon, "--log-base", "log", "build", "--base-paths", "src", "--build-base", "build",
         "--install-base", "install", "--event-handlers", "console_cohesion+", "status-", "summary+"],
        cwd=ws, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=540,
    )
    assert build.returncode == 0, f"colcon build failed (exit {build.returncode}):\n{build.stdout[-12000:]}"
    assert "-DBUILD_TESTING=OFF" in (ws / "log/latest_build/dinno_msgs/command.log").read_text(), \
        "colcon.meta's cmake-args were not applied"

    install = ws / "install"
    script = (
        f'set -eo pipefail; export AMENT_PREFIX_PATH="{sys.prefix}"; '
        f'source "{install}/setup.bash"; exec python -c "$CHECK"'
    )
    check = subprocess.run(
        [bash, "-c", script], cwd=tmp_path, env={**env, "CHECK": _CHECK_INSTALL},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert check.returncode == 0, f"import check in the sourced workspace failed:\n{check.stderr[-8000:]}"
    report = json.loads(check.stdout)

    for name, path in report["modules"].items():
        assert Path(path).is_relative_to(install.resolve()), f"{name} imported from {path}, not the colcon install"
    for name, path in report["share"].items():
        assert Path(path) == (install / name / "share" / name).resolve(), f"share dir of {name}: {path}"
    assert report["roundtrip"] is True
    assert "neighbours_heard=[]" in report["status"]

    share = install / "dinno_ros/share/dinno_ros"
    assert (share / "package.xml").is_file()
    assert {p.name for p in (share / "launch").glob("*.launch.py")} == launch_files
    assert {p.name for p in (share / "config").glob("*.yaml")} == config_files
    lib = install / "dinno_ros/lib/dinno_ros"
    missing = [exe for exe in EXECUTABLES if not (lib / exe).is_file()]
    assert not missing, f"executables missing from {lib} (setup.cfg install_scripts): {missing}"
    assert (install / "dinno_core/share/dinno_core/package.xml").is_file()
    assert (install / "dinno_msgs/share/dinno_msgs/msg/WeightUpdate.msg").is_file()
