"""Running the real ``ros2 launch`` in tests (helpers, not a test module).

``ros2 launch`` comes from the ROS 2 command-line tool wheels (``launch``, ``launch_ros``,
``ros2launch``), which have no PyPI release: ``.ci/run`` installs them from
``../shared/ros2-tools`` and a ROS install has them anyway. Where they are missing the tests
that need them skip, naming what to install.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def ros2_launch_or_skip() -> list[str]:
    """``[ros2, launch]`` of this venv, or skip the test saying why."""
    try:
        import launch  # noqa: F401
        import launch_ros  # noqa: F401
        import ros2launch  # noqa: F401
    except ImportError as error:
        pytest.skip(f"`ros2 launch` is not installed ({error}); install the wheels of ../shared/ros2-tools "
                    "(.ci/run does) or use a ROS 2 install")
    ros2 = VENV_BIN / "ros2"
    if not ros2.exists():
        pytest.skip(f"{ros2} is missing: install ros2cli (../shared/ros2-tools)")
    return [str(ros2), "launch"]


def launch_env(env: dict[str, str], *prefixes: str | os.PathLike) -> dict[str, str]:
    """``env`` with ``AMENT_PREFIX_PATH`` = ``prefixes`` (overlays first) + this venv."""
    paths = [str(p) for p in prefixes] + [sys.prefix]
    return {**env, "AMENT_PREFIX_PATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}


def start(command: list[str], env: dict[str, str], cwd: Path, log: Path | None = None) -> subprocess.Popen:
    """Start ``command`` in its own process group (as a terminal runs a foreground job), its
    output going to ``log`` (default ``cwd/launch.log``): a file, so a long run never blocks on
    a full pipe while the test does something else."""
    log = log or cwd / "launch.log"
    with open(log, "w") as stream:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stream,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    process.log = log  # type: ignore[attr-defined]
    return process


def output_of(process: subprocess.Popen) -> str:
    return Path(process.log).read_text(errors="replace")  # type: ignore[attr-defined]


def finish(process: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait for the launch to end by itself; on timeout kill its whole group and fail."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        process.wait()
        pytest.fail(f"`{' '.join(process.args[:3])}` did not end within {timeout:.0f} s:\n"
                    f"{output_of(process)[-6000:]}")
    return process.returncode, output_of(process)


def wait_for_output(process: subprocess.Popen, needle: str, timeout: float) -> bool:
    """Wait until ``needle`` is in the process's output (False: timeout or it ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if needle in output_of(process):
            return True
        time.sleep(0.3)
    return needle in output_of(process)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid`` (Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def wait_group_gone(pgid: int, timeout: float) -> list[int]:
    """Wait until no process of group ``pgid`` is left; returns those still there at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = group_members(pgid)
        if not left:
            return []
        time.sleep(0.2)
    return group_members(pgid)
