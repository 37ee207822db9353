"""Plain logic the launch files run besides their plans: pre-flight checks and the team's end.

No launch/launch_ros import: tested without them (the launch files wrap these in actions).

* :func:`check_gazebo` — the Gazebo launch starts nothing unless the Gazebo command (``gz`` or
  ``ign``) is on PATH and ``ros_gz_bridge``'s ``parameter_bridge`` is installed; otherwise it
  raises :class:`LaunchRefused` with ONE line saying what is missing and how to get it
  (``ros2 launch`` prints it as ``Caught exception in launch ...: <line>`` and exits 1).
* :func:`gazebo_flavour` — which Gazebo a command runs: ``harmonic`` (``gz sim``, Garden and
  newer: ``gz-sim-*`` systems, ``gz.msgs``) or ``fortress`` (``ign gazebo``, Humble's Gazebo:
  ``ignition-gazebo-*`` systems, ``ignition.msgs``).
* :class:`TeamEnd` — follows the robot processes' exits: when every robot has exited the launch
  shuts down (the simulator and bridge with it); a robot that exited non-zero makes the end a
  failure, reported in one line.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass, field

__all__ = ["GAZEBO_FLAVOURS", "LaunchRefused", "TeamEnd", "check_gazebo", "gazebo_flavour"]

GAZEBO_FLAVOURS = ("harmonic", "fortress")


class LaunchRefused(RuntimeError):
    """A launch that must not start anything; the message is one line for the user."""


def gazebo_flavour(gz_command: str) -> str:
    """``harmonic`` for ``gz sim ...``, ``fortress`` for ``ign gazebo ...``."""
    words = shlex.split(gz_command)
    program = os.path.basename(words[0]) if words else ""
    if program == "ign":
        return "fortress"
    if program == "gz":
        return "harmonic"
    raise LaunchRefused(f"gz_command {gz_command!r}: expected 'gz sim' (Harmonic and newer) or 'ign gazebo' "
                        "(Fortress, with Humble)")


def _package_executable(package: str, executable: str) -> str | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError:  # pragma: no cover - every ROS install has it
        return None
    try:
        prefix = get_package_prefix(package)
    except (PackageNotFoundError, ValueError, KeyError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        return None
    path = os.path.join(prefix, "lib", package, executable)
    return path if os.access(path, os.X_OK) else None


def check_gazebo(gz_command: str, path: str | None = None) -> str:
    """Refuse (:class:`LaunchRefused`, one line) unless Gazebo and ros_gz_bridge are installed.

    ``path``: the PATH to search (default: the environment's). Returns the flavour.
    """
    flavour = gazebo_flavour(gz_command)
    program = shlex.split(gz_command)[0]
    missing = []
    if shutil.which(program, path=path) is None:
        hint = ("Gazebo Fortress: apt install ignition-fortress" if flavour == "fortress"
                else "Gazebo Harmonic: https://gazebosim.org/docs/harmonic/install, or gz_command:='ign gazebo' "
                     "for Fortress")
        missing.append(f"'{program}' is not on PATH ({hint})")
    if _package_executable("ros_gz_bridge", "parameter_bridge") is None:
        missing.append("ROS package ros_gz_bridge (parameter_bridge) is not installed "
                       "(apt install ros-$ROS_DISTRO-ros-gz-bridge)")
    if missing:
        raise LaunchRefused("team_gazebo.launch.py needs Gazebo and ros_gz_bridge, nothing was started: "
                            + "; ".join(missing))
    return flavour


@dataclass
class TeamEnd:
    """The robots' exits: ``exited(robot, code)`` returns True once every robot has exited."""

    robots: tuple[str, ...]
    codes: dict[str, int | None] = field(default_factory=dict)

    def exited(self, robot: str, code: int | None) -> bool:
        self.codes[robot] = code
        return self.finished

    @property
    def finished(self) -> bool:
        return set(self.robots) <= set(self.codes)

    @property
    def failures(self) -> dict[str, int | None]:
        return {robot: code for robot, code in self.codes.items() if code != 0}

    def summary(self) -> str:
        """One line about the team's end."""
        if self.failures:
            listed = ", ".join(f"{robot} (exit {code})" for robot, code in sorted(self.failures.items()))
            return f"robots failed: {listed}"
        return f"every robot finished ({len(self.robots)} robots)"
